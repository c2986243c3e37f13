//! Path MTU socket options of the DTLS socket (`try-mtu-discovery`): whether datagrams carry
//! DF (IP_MTU_DISCOVER / IPV6_MTU_DISCOVER: `DO` = never fragment, a datagram too large for
//! the known path fails with EMSGSIZE; `DONT` = the kernel fragments, as ocserv sets with the
//! option off), and the path MTU the kernel knows for the connected socket (IP_MTU /
//! IPV6_MTU). Only getsockopt/setsockopt, both on the sandbox's list.
//!
//! `unsafe` here: nix wraps neither IP_MTU_DISCOVER nor the IPv6 options, so the calls go to
//! libc with pointers to local integers.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

/// Turn DF on (`true`: IP_PMTUDISC_DO) or off (IP_PMTUDISC_DONT) for the socket's family.
pub fn set_discovery(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let value: libc::c_int = if on {
        libc::IP_PMTUDISC_DO
    } else {
        libc::IP_PMTUDISC_DONT
    };
    if is_ipv6(fd)? {
        // The IPv6 constants have the same values (IPV6_PMTUDISC_DO = IP_PMTUDISC_DO). main's
        // shared socket is often `[::]`, so the client's flow may be IPv4-mapped: that traffic
        // follows the IPv4 option, which IPv6 UDP sockets accept too.
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, value)?;
    }
    set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, value)
}

/// The path MTU the kernel knows for the connected socket (interface, route or what ICMP
/// "fragmentation needed" / "packet too big" taught it); `None` when it does not say.
pub fn path_mtu(fd: BorrowedFd<'_>) -> Option<u16> {
    let mtu = if is_ipv6(fd).ok()? {
        get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        get_int(fd, libc::IPPROTO_IP, libc::IP_MTU)
    };
    // Loopback's 65536 does not fit a u16; any MTU that large is as good as unlimited.
    mtu.ok()
        .filter(|m| *m > 0)
        .map(|m| u16::try_from(m).unwrap_or(u16::MAX))
}

fn is_ipv6(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? == libc::AF_INET6)
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = socklen::<libc::c_int>();
    // SAFETY: the kernel reads `len` bytes from a live local int; the descriptor is borrowed,
    // hence open.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = socklen::<libc::c_int>();
    // SAFETY: the kernel writes at most `len` bytes into a live local int and updates `len`;
    // the descriptor is borrowed, hence open.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd as _;

    #[test]
    fn df_makes_oversized_datagrams_fail_and_the_path_mtu_is_known() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mtu = path_mtu(tx.as_fd()).expect("loopback path MTU");
        assert!(mtu >= 1280, "{mtu}");
        set_discovery(tx.as_fd(), true).unwrap();
        // Larger than the path (but a valid UDP datagram): refused with EMSGSIZE (loopback's
        // path is larger than any datagram, so this runs only where it is smaller).
        if let Some(size) = usize::from(mtu).checked_add(100).filter(|s| *s < 65_000) {
            let err = tx.send(&vec![0u8; size]).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
        }
        // Off again: the kernel fragments.
        set_discovery(tx.as_fd(), false).unwrap();
        let size = usize::from(mtu).saturating_add(100).min(60_000);
        tx.send(&vec![0u8; size]).unwrap();
    }

    #[test]
    fn ipv6_sockets_work_too() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        set_discovery(tx.as_fd(), true).unwrap();
        assert!(path_mtu(tx.as_fd()).is_some_and(|m| m >= 1280));
    }

    #[test]
    fn ipv4_mapped_flows_on_ipv6_sockets_work_too() {
        let Ok(tx) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 on this machine
        };
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        tx.connect(format!("[::ffff:127.0.0.1]:{port}")).unwrap();
        set_discovery(tx.as_fd(), true).unwrap();
        assert!(path_mtu(tx.as_fd()).is_some_and(|m| m >= 1280));
    }
}
