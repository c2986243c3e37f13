//! Changing the MTU of an existing tun device by name (SIOCSIFMTU), for a worker's
//! `ToMain::TunMtu` (`try-mtu-discovery`; ocserv's `set_tun_mtu` after CMD_TUN_MTU). Needs
//! CAP_NET_ADMIN (main runs as root). The caller bounds the value; this only talks to the kernel.
//!
//! `unsafe` here: the ioctl takes a `struct ifreq`, which libc exposes as a plain C struct and
//! union that the tun crate offers no call for on a device it did not open.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Set `device`'s MTU to `mtu`.
pub fn set(device: &str, mtu: u16) -> io::Result<()> {
    let mut req = ifreq(device)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    let sock = control_socket()?;
    // SAFETY: SIOCSIFMTU reads a `struct ifreq` through the pointer, which points at a fully
    // initialised one that outlives the call; the descriptor is an open socket we own.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &req) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `device`'s MTU as the kernel has it (for tests and log lines).
pub fn get(device: &str) -> io::Result<u32> {
    let mut req = ifreq(device)?;
    let sock = control_socket()?;
    // SAFETY: SIOCGIFMTU writes the MTU into the `struct ifreq` the pointer refers to, which is
    // ours, initialised and alive for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds the MTU (an int).
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

/// Any socket will do for interface ioctls.
fn control_socket() -> io::Result<std::os::fd::OwnedFd> {
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// A zeroed `ifreq` naming `device` (shorter than IFNAMSIZ, no NUL inside).
fn ifreq(device: &str) -> io::Result<libc::ifreq> {
    let bytes = device.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `ifreq` is a C struct of integers, byte arrays and a union of such; all-zero is a
    // valid value of it (an empty name and a zero MTU).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_the_kernel() {
        for name in ["", "a\0b", "abcdefghijklmnop"] {
            assert_eq!(
                set(name, 1400).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn loopback_mtu_can_be_read() {
        // Every network namespace has `lo`; reading needs no privilege.
        assert!(get("lo").unwrap() >= 1280);
    }
}
