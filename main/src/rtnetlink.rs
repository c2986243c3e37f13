//! One rtnetlink request and its ack (rtnetlink(7)), for main's device changes addressed by
//! interface index: a tun device's MTU (`tun_mtu`), its IPv6 end (`tun_ip6`), an ifb device's
//! removal (`rate_limit`). Messages in native byte order, one request per fresh socket.

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

pub const NLMSG_HDR_LEN: usize = 16;
/// `struct ifinfomsg`.
pub const IFINFOMSG_LEN: usize = 16;

/// Send `message` (sequence number `seq`) on a fresh rtnetlink socket and read the kernel's ack.
pub fn request(message: &[u8], seq: u32) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    sendto(
        sock.as_raw_fd(),
        message,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut answer = [0u8; 1024];
    let n = recv(sock.as_raw_fd(), &mut answer, MsgFlags::empty())?;
    ack_result(answer.get(..n).unwrap_or_default(), seq)
}

/// `nlmsghdr` of a message of `total` bytes.
pub fn header(
    m: &mut Vec<u8>,
    total: usize,
    kind: u16,
    flags: libc::c_int,
    seq: u32,
) -> io::Result<()> {
    let total = u32::try_from(total).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = u16::try_from(flags).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    m.extend_from_slice(&total.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    Ok(())
}

/// `ifinfomsg{AF_UNSPEC, index}`, no flag changes.
pub fn ifinfomsg(m: &mut Vec<u8>, ifindex: u32) -> io::Result<()> {
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    m.push(u8::try_from(libc::AF_UNSPEC).unwrap_or(0)); // ifi_family
    m.push(0); // padding
    m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    m.extend_from_slice(&index.to_ne_bytes()); // ifi_index: the device we mean
    m.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change: no flag changes
    Ok(())
}

/// One attribute (`rtattr`); callers keep values 4-byte multiples, so no padding is needed.
pub fn attr(m: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(value);
}

/// The kernel's answer to our request: an `NLMSG_ERROR` whose error is 0 (the ack) or -errno.
pub fn ack_result(answer: &[u8], seq: u32) -> io::Result<()> {
    let field = |at: usize| -> io::Result<[u8; 4]> {
        answer
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| io::Error::other("short netlink answer"))
    };
    let ty = answer
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or_else(|| io::Error::other("short netlink answer"))?;
    if ty != u16::try_from(libc::NLMSG_ERROR).unwrap_or(u16::MAX)
        || u32::from_ne_bytes(field(8)?) != seq
    {
        return Err(io::Error::other("unexpected netlink answer"));
    }
    match i32::from_ne_bytes(field(NLMSG_HDR_LEN)?) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e.saturating_neg())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_layout() {
        let ack = |seq: u32, err: i32| {
            let mut a = 36u32.to_ne_bytes().to_vec();
            a.extend_from_slice(&u16::try_from(libc::NLMSG_ERROR).unwrap().to_ne_bytes());
            a.extend_from_slice(&0u16.to_ne_bytes());
            a.extend_from_slice(&seq.to_ne_bytes());
            a.extend_from_slice(&0u32.to_ne_bytes());
            a.extend_from_slice(&err.to_ne_bytes());
            a.extend_from_slice(&[0; 16]);
            a
        };
        assert!(ack_result(&ack(9, 0), 9).is_ok());
        assert_eq!(
            ack_result(&ack(9, -libc::ENODEV), 9)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENODEV)
        );
        assert!(ack_result(&ack(8, 0), 9).is_err());
        assert!(ack_result(&ack(9, 0)[..10], 9).is_err());
    }
}
