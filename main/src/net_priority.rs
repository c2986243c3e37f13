//! `net-priority`: the priority (SO_PRIORITY, 0-6) or TOS byte of the client's packets, set by
//! main on the client's sockets, as ocserv sets it on its worker's: the TCP connection (on
//! main's duplicate of the descriptor the worker holds, once the tunnel is granted: the policy
//! is known only then) and each UDP socket main makes for the client's DTLS. The worker's
//! seccomp filter does not allow these options, so a compromised worker cannot raise its own
//! priority. On an IPv6 socket the TOS byte goes into the traffic class, and into IP_TOS too
//! (for an IPv4 client on a dual-stack socket, whose packets are IPv4).

use std::io;
use std::os::fd::AsFd;

use rocserv_proto::policy::NetPriority;
use socket2::{Domain, SockRef};

/// Set `priority` on the socket `fd`.
pub fn apply(fd: impl AsFd, priority: NetPriority) -> io::Result<()> {
    let sock = SockRef::from(&fd);
    match priority {
        NetPriority::Priority(p) => sock.set_priority(u32::from(p)),
        NetPriority::Tos(tos) => {
            let domain = sock.local_addr()?.domain();
            if domain == Domain::IPV6 {
                sock.set_tclass_v6(u32::from(tos))?;
            }
            sock.set_tos_v4(u32::from(tos))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use std::net::{TcpListener, TcpStream, UdpSocket};

    use super::*;

    #[test]
    fn priority_and_tos_reach_tcp_and_udp_sockets_of_both_families() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp4 = TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        apply(&tcp4, NetPriority::Priority(5)).unwrap();
        assert_eq!(SockRef::from(&tcp4).priority().unwrap(), 5);
        apply(&tcp4, NetPriority::Tos(0x10)).unwrap();
        assert_eq!(SockRef::from(&tcp4).tos_v4().unwrap(), 0x10);

        let udp4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        apply(&udp4, NetPriority::Tos(0xb8)).unwrap();
        assert_eq!(SockRef::from(&udp4).tos_v4().unwrap(), 0xb8);
        apply(&udp4, NetPriority::Priority(6)).unwrap();
        assert_eq!(SockRef::from(&udp4).priority().unwrap(), 6);

        // A dual-stack socket: both the traffic class and IP_TOS (for IPv4-mapped peers).
        let Ok(udp6) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        apply(&udp6, NetPriority::Tos(0x28)).unwrap();
        assert_eq!(SockRef::from(&udp6).tclass_v6().unwrap(), 0x28);
        assert_eq!(SockRef::from(&udp6).tos_v4().unwrap(), 0x28);
    }
}
