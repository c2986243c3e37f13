//! A tun device's IPv6 end, as ocserv sets it (src/tun.c `os_set_ipv6_addr`, Linux): the
//! server's address as a /128 on the device and a route to the client's subnet through it.
//! rtnetlink requests (RTM_NEWADDR, RTM_NEWROUTE; rtnetlink(7)) addressed by interface index.
//! Needs CAP_NET_ADMIN (main runs as root); both go away with the device.

use std::io;
use std::net::Ipv6Addr;

use rocserv_proto::ipc::main_worker::Ipv6Link;

use crate::rtnetlink::{attr, header, request, NLMSG_HDR_LEN};

/// Put `link` on the device `ifindex`: `local/128` (no duplicate address detection: the
/// link has two ends and the address is ours on every tun) and `remote_net/prefix` routed
/// to it.
pub fn configure(ifindex: u32, link: &Ipv6Link) -> io::Result<()> {
    request(&new_address(ifindex, link.local, 1)?, 1)?;
    request(&new_route(ifindex, link.remote_net(), link.prefix, 2)?, 2)
}

/// `struct ifaddrmsg` (8 bytes) and `struct rtmsg` (12 bytes), then 4-aligned attributes.
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;
const RTA_V6_LEN: usize = 4 + 16;
const RTA_U32_LEN: usize = 4 + 4;

/// `IFA_F_NODAD` (linux/if_addr.h).
const IFA_F_NODAD: u32 = 0x02;

/// RTM_NEWADDR: `ifaddrmsg{AF_INET6, 128, IFA_F_NODAD, universe, index}` + IFA_LOCAL +
/// IFA_ADDRESS + IFA_FLAGS.
fn new_address(ifindex: u32, local: Ipv6Addr, seq: u32) -> io::Result<Vec<u8>> {
    let total = NLMSG_HDR_LEN + IFADDRMSG_LEN + 2 * RTA_V6_LEN + RTA_U32_LEN;
    let mut m = Vec::with_capacity(total);
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    header(&mut m, total, libc::RTM_NEWADDR, flags, seq)?;
    m.push(u8::try_from(libc::AF_INET6).unwrap_or(0)); // ifa_family
    m.push(128); // ifa_prefixlen
    m.push(u8::try_from(IFA_F_NODAD).unwrap_or(0)); // ifa_flags
    m.push(libc::RT_SCOPE_UNIVERSE); // ifa_scope
    m.extend_from_slice(&ifindex.to_ne_bytes()); // ifa_index
    attr(&mut m, libc::IFA_LOCAL, &local.octets());
    attr(&mut m, libc::IFA_ADDRESS, &local.octets());
    attr(&mut m, libc::IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
    Ok(m)
}

/// RTM_NEWROUTE: `rtmsg{AF_INET6, dst_len, main table, boot, universe, unicast}` + RTA_DST +
/// RTA_OIF.
fn new_route(ifindex: u32, dst: Ipv6Addr, prefix: u8, seq: u32) -> io::Result<Vec<u8>> {
    let total = NLMSG_HDR_LEN + RTMSG_LEN + RTA_V6_LEN + RTA_U32_LEN;
    let mut m = Vec::with_capacity(total);
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    header(&mut m, total, libc::RTM_NEWROUTE, flags, seq)?;
    m.push(u8::try_from(libc::AF_INET6).unwrap_or(0)); // rtm_family
    m.push(prefix.min(128)); // rtm_dst_len
    m.push(0); // rtm_src_len
    m.push(0); // rtm_tos
    m.push(libc::RT_TABLE_MAIN); // rtm_table
    m.push(libc::RTPROT_BOOT); // rtm_protocol
    m.push(libc::RT_SCOPE_UNIVERSE); // rtm_scope
    m.push(libc::RTN_UNICAST); // rtm_type
    m.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    attr(&mut m, libc::RTA_DST, &dst.octets());
    attr(&mut m, libc::RTA_OIF, &ifindex.to_ne_bytes());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_request_layout() {
        let local: Ipv6Addr = "fd00:1::1".parse().unwrap();
        let m = new_address(7, local, 3).unwrap();
        assert_eq!(m.len(), 16 + 8 + 20 + 20 + 8);
        assert_eq!(m[..4], u32::try_from(m.len()).unwrap().to_ne_bytes());
        assert_eq!(m[4..6], libc::RTM_NEWADDR.to_ne_bytes());
        assert_eq!(m[8..12], 3u32.to_ne_bytes());
        assert_eq!(m[16], libc::AF_INET6 as u8);
        assert_eq!(m[17], 128);
        assert_eq!(m[20..24], 7u32.to_ne_bytes());
        assert_eq!(m[24..26], 20u16.to_ne_bytes());
        assert_eq!(m[26..28], libc::IFA_LOCAL.to_ne_bytes());
        assert_eq!(m[28..44], local.octets());
    }

    #[test]
    fn route_request_layout() {
        let dst: Ipv6Addr = "fd00:1:0:7::".parse().unwrap();
        let m = new_route(9, dst, 64, 4).unwrap();
        assert_eq!(m.len(), 16 + 12 + 20 + 8);
        assert_eq!(m[..4], u32::try_from(m.len()).unwrap().to_ne_bytes());
        assert_eq!(m[4..6], libc::RTM_NEWROUTE.to_ne_bytes());
        assert_eq!(m[17], 64);
        assert_eq!(m[20], libc::RT_TABLE_MAIN);
        assert_eq!(m[23], libc::RTN_UNICAST);
        assert_eq!(m[30..32], libc::RTA_DST.to_ne_bytes());
        assert_eq!(m[32..48], dst.octets());
        assert_eq!(m[50..52], libc::RTA_OIF.to_ne_bytes());
        assert_eq!(m[52..56], 9u32.to_ne_bytes());
    }
}
