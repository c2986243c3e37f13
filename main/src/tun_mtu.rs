//! Changing the MTU of an existing tun device, for a worker's `ToMain::TunMtu`
//! (`try-mtu-discovery`; ocserv's `set_tun_mtu` after CMD_TUN_MTU). Needs CAP_NET_ADMIN (main
//! runs as root). The caller bounds the value; this only talks to the kernel.
//!
//! A worker's device is addressed by its interface index ([`set_by_index`], an rtnetlink
//! RTM_NEWLINK with IFLA_MTU), taken when main created the device: names are reused (the next
//! `vpns%d` gets the lowest free number), so a late `TunMtu` of a worker whose device is gone
//! would otherwise change another user's device; an index is not reused (the kernel counts up).
//!
//! `unsafe` here: the name-addressed ioctls take a `struct ifreq`, which libc exposes as a plain
//! C struct and union that the tun crate offers no call for on a device it did not open.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::rtnetlink;

/// Set the MTU of the device whose interface index is `ifindex`. Fails with `ENODEV` when that
/// device no longer exists, whichever device now carries its old name.
pub fn set_by_index(ifindex: u32, mtu: u16) -> io::Result<()> {
    rtnetlink::request(&setlink_mtu(ifindex, mtu, SEQ)?, SEQ)
}

/// Set `device`'s MTU to `mtu`, by name (for tests and tools; workers' devices go by index).
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

/// The sequence number of our one request per socket.
const SEQ: u32 = 1;
const RTA_MTU_LEN: usize = 8;

/// `nlmsghdr` + `ifinfomsg{index}` + `rtattr IFLA_MTU` (rtnetlink(7)).
fn setlink_mtu(ifindex: u32, mtu: u16, seq: u32) -> io::Result<Vec<u8>> {
    let total = rtnetlink::NLMSG_HDR_LEN + rtnetlink::IFINFOMSG_LEN + RTA_MTU_LEN;
    let mut m = Vec::with_capacity(total);
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK;
    rtnetlink::header(&mut m, total, libc::RTM_NEWLINK, flags, seq)?;
    rtnetlink::ifinfomsg(&mut m, ifindex)?;
    rtnetlink::attr(&mut m, libc::IFLA_MTU, &u32::from(mtu).to_ne_bytes());
    Ok(m)
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
    fn setlink_request_layout() {
        let m = setlink_mtu(7, 1300, 9).unwrap();
        assert_eq!(m.len(), 40);
        assert_eq!(m[..4], 40u32.to_ne_bytes());
        assert_eq!(m[4..6], libc::RTM_NEWLINK.to_ne_bytes());
        assert_eq!(m[8..12], 9u32.to_ne_bytes());
        assert_eq!(m[20..24], 7i32.to_ne_bytes());
        assert_eq!(m[34..36], libc::IFLA_MTU.to_ne_bytes());
        assert_eq!(m[36..40], 1300u32.to_ne_bytes());
        assert!(setlink_mtu(u32::MAX, 1300, 1).is_err());
    }

    /// The bug this module's index addressing fixes: a worker whose device is gone must not
    /// change the MTU of the next device that got the same name. Runs in a network namespace
    /// of its own (this test thread only), so it touches no device of the host.
    #[test]
    #[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and /dev/net/tun: run by tests/run-all.sh"]
    fn an_old_index_never_reaches_a_newer_device_with_the_same_name() {
        std::thread::spawn(|| {
            // SAFETY: unshare takes flags by value; it moves only this thread to a fresh netns.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let (local, remote) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
            let old = crate::tun::create("rtst", Some((local, remote)), None, 1400).unwrap();
            let (old_name, old_index) = (old.name.clone(), old.ifindex);
            drop(old);
            let new = crate::tun::create("rtst", Some((local, remote)), None, 1400).unwrap();
            assert_eq!(new.name, old_name, "the kernel reuses the lowest free name");
            assert_ne!(new.ifindex, old_index);
            let err = set_by_index(old_index, 1300).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
            assert_eq!(
                get(&new.name).unwrap(),
                1400,
                "another device's MTU changed"
            );
            set_by_index(new.ifindex, 1300).unwrap();
            assert_eq!(get(&new.name).unwrap(), 1300);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn loopback_mtu_can_be_read() {
        // Every network namespace has `lo`; reading needs no privilege.
        assert!(get("lo").unwrap() >= 1280);
    }
}
