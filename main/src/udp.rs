//! The shared DTLS port (protocol.md §4.6). main owns the UDP socket bound to
//! `udp-listen-host`/`listen-host` : `udp-port`, but reads only datagrams of flows it does not
//! know yet: a DTLS ClientHello names the session by the id we handed out at CONNECT
//! (`X-DTLS-App-ID` / `X-DTLS-Session-ID`). For such a datagram main makes a new UDP socket
//! bound to the same port (SO_REUSEPORT, see [`port_socket`]), `connect()`s it to the client and
//! passes it, with the datagram, to the worker serving that session. From then on the kernel
//! delivers that client's datagrams to the connected socket, so the data path never touches
//! main. A client whose address changes sends a new ClientHello to the shared socket and is
//! matched again (roaming); the worker moves the session to the new socket once that handshake
//! completes, so a replayed hello moves nothing (and each session gets only a few hand-overs,
//! [`crate::handover_budget`]). A NAT that rebinds only the client's port never sends a new
//! ClientHello: a DTLS application-data record from an unknown flow whose IP is the IP of exactly
//! one flow we handed over goes to that flow's worker as a candidate, as ocserv does; the worker adopts the new socket only if the record authenticates (protocol.md
//! §4.6), so a spoofed or replayed datagram changes nothing. Anything else is dropped; at most
//! one debug line per second says so. On a wildcard socket the destination address of each
//! datagram comes with it (`IP_PKTINFO` / `IPV6_RECVPKTINFO`, as in ocserv): the connected
//! socket binds to that address, so on a host with several addresses the worker's replies leave
//! from the one the client wrote to. The only parsing main does on these bytes is in
//! [`rocserv_proto::dtls::peek`] (the ClientHello's session id, the record type; bounded, fuzzed).
//!
//! The port takes internet traffic with spoofable sources, so its cost is bounded: a classic BPF
//! filter ([`rocserv_proto::dtls::filter`]) makes the kernel drop every datagram that cannot be
//! a ClientHello or a DTLS record before it is queued; the queue is large (a burst of garbage
//! that passes the filter does not push out the next real hello); datagrams are read in batches
//! (recvmmsg); and the demultiplexer runs on its own thread ([`spawn`]), so a flood that passes
//! the filter slows hand-overs, never main's accept loop, occtl or worker supervision.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, connect, recvmmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned,
    MsgFlags, MultiHeaders, RecvMsg, SockFlag, SockType, SockaddrLike as _, SockaddrStorage,
};
use rocserv_proto::config::Config;
use rocserv_proto::dtls::filter;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::handover_budget::{self, Budgets, Verdict};
use crate::state::{Shared, UdpHandover};

/// ocserv ignores repeated hand-overs of one client address within this time: retransmitted
/// ClientHellos that reached the shared socket before the connected one existed. Hand-overs per
/// session are bounded too ([`handover_budget`]).
const HANDOVER_GUARD: Duration = Duration::from_secs(3);
/// Larger first datagrams are not ClientHellos we can pass on (IPC message limit); the socket
/// filter drops them already.
const MAX_FIRST: usize = filter::MAX_DATAGRAM as usize;
/// Datagrams read per recvmmsg call.
const BATCH: usize = 32;
/// Receive buffer of the shared socket (the kernel doubles it for its accounting; memory is
/// charged only for what is queued). The default 208 KiB holds ~150 garbage datagrams of full
/// size: a short burst would push out the next real ClientHello.
const SHARED_SOCKET_BUF: usize = 4 << 20;
/// Bytes the kernel's socket filter sees before the payload (the UDP header).
const UDP_HEADER: u32 = 8;
/// Bound on remembered recent hand-overs (pruned when reached).
const MAX_RECENT: usize = 4096;
/// At most one rebound flow offered per session in this interval.
const REBIND_GUARD: Duration = Duration::from_secs(1);
/// At most one "dropped datagram" debug line per this interval.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// Bind the DTLS port if `udp-port` is set (and `no-udp` is off). Without an address,
/// `[::]` (dual-stack) if the system has IPv6, else `0.0.0.0`. Serve it with [`spawn`].
pub fn bind_shared(config: &Config) -> std::io::Result<Option<std::net::UdpSocket>> {
    let Some(port) = config.udp_port.filter(|_| !config.policy.no_udp) else {
        return Ok(None);
    };
    let socket = match config.udp_listen_host.or(config.listen_host) {
        Some(host) => shared_socket(SocketAddr::new(host, port))?,
        None => match shared_socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                shared_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?
            }
            Err(e) => return Err(e),
        },
    };
    Ok(Some(std::net::UdpSocket::from(socket)))
}

/// Serve the shared socket on a thread of its own ("rocserv-udp", with its own single-threaded
/// runtime) for the life of the process. Nothing on it may spawn a child process: a child's
/// death signal follows the thread that forked it ([`crate::spawn`]).
///
/// With `listen-netns` the thread moves into that namespace first, for good: the connected
/// per-client sockets it makes must share the listening socket's namespace (and port).
pub fn spawn(
    shared: Arc<Shared>,
    socket: std::net::UdpSocket,
    netns: Option<crate::service::Netns>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rocserv-udp".into())
        .spawn(move || {
            if let Some(netns) = netns {
                if let Err(e) = netns.enter() {
                    return log::error!(
                        "cannot enter listen-netns for the UDP thread ({e}); DTLS is off"
                    );
                }
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return log::error!("cannot start the UDP thread's runtime: {e}"),
            };
            runtime.block_on(async move {
                match UdpSocket::from_std(socket) {
                    Ok(socket) => run(shared, socket).await,
                    Err(e) => log::error!("cannot serve the UDP socket: {e}"),
                }
            });
        })
}

/// The shared socket: bound to `addr`, the destination of each datagram requested, the DTLS
/// filter attached and the receive buffer enlarged. Without the filter or the larger buffer
/// (which should not happen to root) it still works, with a warning: the demultiplexer drops
/// the same datagrams, at a higher cost.
fn shared_socket(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    prepare_shared(port_socket(addr)?)
}

/// A UDP socket systemd passed (socket activation) made what [`shared_socket`] makes:
/// non-blocking and with SO_REUSEPORT, without which no connected per-client socket could be
/// bound to its port (`ReusePort=yes` in the socket unit does it too).
pub fn adopt_shared(fd: OwnedFd) -> std::io::Result<std::net::UdpSocket> {
    socket2::SockRef::from(&fd).set_nonblocking(true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    Ok(std::net::UdpSocket::from(prepare_shared(fd)?))
}

/// The destination of each datagram requested, the filter attached, the buffer enlarged.
fn prepare_shared(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    request_destination(&fd)?;
    let program: Vec<socket2::SockFilter> = filter::socket_filter(UDP_HEADER)
        .iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    if let Err(e) = socket2::SockRef::from(&fd).attach_filter(&program) {
        log::warn!("cannot attach the DTLS socket filter to the UDP socket: {e}");
    }
    if let Err(e) = setsockopt(&fd, sockopt::RcvBufForce, &SHARED_SOCKET_BUF) {
        log::warn!("cannot enlarge the UDP socket's receive buffer: {e}");
    }
    Ok(fd)
}

/// A non-blocking UDP socket bound to `addr` with SO_REUSEPORT: the shared socket and every
/// connected per-client socket on the same port. Binding a second socket to a port needs
/// SO_REUSEPORT (or SO_REUSEADDR) on all of them. SO_REUSEPORT also requires the same effective
/// uid (root, main) for every socket of the group, where SO_REUSEADDR would let any local user
/// bind the port too and receive datagrams meant for us; so never SO_REUSEADDR.
fn port_socket(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    Ok(fd)
}

/// Ask the kernel for each datagram's destination address (ocserv main.c does the same).
fn request_destination(fd: &OwnedFd) -> std::io::Result<()> {
    match nix::sys::socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())?.family() {
        Some(AddressFamily::Inet6) => setsockopt(fd, sockopt::Ipv6RecvPacketInfo, &true)?,
        _ => setsockopt(fd, sockopt::Ipv4PacketInfo, &true)?,
    }
    Ok(())
}

/// Reads the shared socket in batches (recvmmsg): for each datagram its buffer, sender and
/// destination address.
struct Receiver {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Vec<Vec<u8>>,
}

/// One received datagram: its length, sender, destination (`None` when the kernel gave none),
/// and whether it was longer than the buffer.
#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    from: Option<SocketAddr>,
    destination: Option<IpAddr>,
    truncated: bool,
}

impl Receiver {
    fn new() -> Self {
        let control = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
        Self {
            headers: MultiHeaders::preallocate(BATCH, Some(control)),
            bufs: vec![vec![0u8; MAX_FIRST]; BATCH],
        }
    }

    /// Up to [`BATCH`] datagrams, without blocking (`WouldBlock` when there is none); then
    /// `each(datagram, meta)` for each.
    fn receive(
        &mut self,
        socket: &UdpSocket,
        mut each: impl FnMut(&[u8], Meta),
    ) -> std::io::Result<()> {
        let mut metas = [Meta {
            len: 0,
            from: None,
            destination: None,
            truncated: false,
        }; BATCH];
        let mut count = 0;
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let results = recvmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            for (meta, msg) in metas.iter_mut().zip(results) {
                *meta = describe(&msg);
                count += 1;
            }
        }
        for (meta, buf) in metas.iter().zip(&self.bufs).take(count) {
            each(buf.get(..meta.len).unwrap_or_default(), *meta);
        }
        Ok(())
    }
}

/// The sender and destination of one received message.
fn describe(msg: &RecvMsg<'_, '_, SockaddrStorage>) -> Meta {
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
            .or_else(|| {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
            })
    });
    let mut destination = None;
    for cmsg in msg.cmsgs().into_iter().flatten() {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                destination = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    Meta {
        len: msg.bytes,
        from,
        destination,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
    }
}

/// Serve the shared socket until the runtime stops. Never returns an error: receive errors are
/// logged and the loop goes on (bounded by the socket's readiness).
async fn run(shared: Arc<Shared>, socket: UdpSocket) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return log::error!("UDP socket has no address: {e}"),
    };
    let mut receiver = Receiver::new();
    let mut demux = Demux::default();
    loop {
        let received = socket
            .async_io(Interest::READABLE, || {
                receiver.receive(&socket, |datagram, meta| {
                    let Some(from) = meta.from else {
                        return log::debug!("UDP datagram without a source address");
                    };
                    if meta.truncated {
                        return demux.dropped(from, "oversized first datagram");
                    }
                    // The address the client wrote to, else the socket's own.
                    let ip = meta.destination.and_then(|d| in_family(d, local.ip()));
                    let local = SocketAddr::new(ip.unwrap_or(local.ip()), local.port());
                    if let Err(why) = demux.handle(&shared, local, datagram, from, Instant::now()) {
                        demux.dropped(from, why);
                    }
                })
            })
            .await;
        if let Err(e) = received {
            log::debug!("UDP receive failed: {e}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Which flows were handed over recently, where each session's flow went last, and the rate
/// limit of the drop log.
#[derive(Debug, Default)]
struct Demux {
    recent: HashMap<SocketAddr, Instant>,
    /// The client address of the latest hand-over of each DTLS id (for NAT rebinding).
    peers: HashMap<[u8; 32], SocketAddr>,
    /// When each session was last offered a rebound flow (at most one a second: a spoofer
    /// varying ports must not make main and the worker churn sockets).
    rebinds: HashMap<[u8; 32], Instant>,
    /// ClientHello hand-overs per session ([`handover_budget`]).
    budgets: Budgets,
    last_drop_log: Option<Instant>,
    dropped_since_log: u64,
}

impl Demux {
    /// One datagram from the shared socket. `Err` says why it was dropped.
    fn handle(
        &mut self,
        shared: &Shared,
        local: SocketAddr,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<(), &'static str> {
        let (id, route, hello) = match rocserv_proto::dtls::peek::client_hello_session_id(datagram)
        {
            Some(id) => {
                let route = shared.dtls_route(id).ok_or("unknown DTLS session id")?;
                let id = <[u8; 32]>::try_from(id).map_err(|_| "unknown DTLS session id")?;
                (id, route, true)
            }
            None => {
                let (id, route) = self.rebound(shared, datagram, from, now)?;
                (id, route, false)
            }
        };
        if datagram.len() > MAX_FIRST {
            return Err("oversized first datagram");
        }
        if self
            .recent
            .get(&from)
            .is_some_and(|at| now.saturating_duration_since(*at) < HANDOVER_GUARD)
        {
            return Err("repeated ClientHello of a flow just handed over");
        }
        // Per session too: the id is in clear text, so a replay may come from any address.
        if hello {
            if let Verdict::Refused { first } = self.budgets.take(id, now) {
                if first {
                    log::warn!(
                        "{from}: DTLS ClientHello for worker {} refused: its session had {} \
                         hand-overs, one more every {} s (replayed hellos?)",
                        route.worker.0,
                        handover_budget::BURST,
                        handover_budget::REFILL.as_secs()
                    );
                }
                return Err("the session's DTLS hand-over budget is used up");
            }
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent
                .retain(|_, at| now.saturating_duration_since(*at) < HANDOVER_GUARD);
        }
        let socket = connected(local, route.local_ip, from).map_err(|e| {
            log::warn!("{from}: cannot make a UDP socket for the DTLS flow: {e}");
            "socket creation failed"
        })?;
        let flow = UdpHandover {
            socket,
            first: datagram.to_vec(),
            peer: from,
        };
        route
            .handover
            .try_send(flow)
            .map_err(|_| "the worker's hand-over queue is full or gone")?;
        self.recent.insert(from, now);
        if self.peers.len() >= MAX_RECENT {
            self.peers.retain(|id, _| shared.dtls_route(id).is_some());
        }
        self.peers.insert(id, from);
        log::debug!("{from}: DTLS flow handed to worker {}", route.worker.0);
        Ok(())
    }

    /// A datagram that is not a ClientHello: the session whose last flow came from the same IP
    /// (on another port), if it is the only one, for a NAT rebinding.
    fn rebound(
        &mut self,
        shared: &Shared,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<([u8; 32], crate::state::DtlsRoute), &'static str> {
        if !rocserv_proto::dtls::peek::is_application_data(datagram) {
            return Err("not a DTLS ClientHello");
        }
        let mut same_ip = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.ip() == from.ip() && **peer != from);
        let (id, _) = same_ip.next().ok_or("DTLS record from an unknown flow")?;
        if same_ip.next().is_some() {
            return Err("DTLS record from an unknown port of an address with several sessions");
        }
        let id = *id;
        if self
            .rebinds
            .get(&id)
            .is_some_and(|at| now.saturating_duration_since(*at) < REBIND_GUARD)
        {
            return Err("DTLS record from a new port: one was offered less than a second ago");
        }
        let route = shared
            .dtls_route(&id)
            .ok_or("DTLS record for an ended session")?;
        if self.rebinds.len() >= MAX_RECENT {
            self.rebinds
                .retain(|_, at| now.saturating_duration_since(*at) < REBIND_GUARD);
        }
        self.rebinds.insert(id, now);
        log::debug!("{from}: DTLS record from a new port of a known client; asking its worker");
        Ok((id, route))
    }

    fn dropped(&mut self, from: SocketAddr, why: &str) {
        self.dropped_since_log = self.dropped_since_log.saturating_add(1);
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|at| now.saturating_duration_since(at) >= DROP_LOG_EVERY)
        {
            log::debug!(
                "{from}: UDP datagram dropped: {why} ({} dropped since the last such line)",
                self.dropped_since_log
            );
            self.last_drop_log = Some(now);
            self.dropped_since_log = 0;
        }
    }
}

/// A socket on our UDP port, connected to `peer`. `shared` is the shared socket's address with
/// the datagram's destination in place of a wildcard; when that is still a wildcard (no
/// destination reported), bound to the address the client's TCP connection reached
/// (`tcp_local`), in the shared socket's family; either way replies leave from the address the
/// client talks to.
fn connected(shared: SocketAddr, tcp_local: IpAddr, peer: SocketAddr) -> std::io::Result<OwnedFd> {
    let ip = if shared.ip().is_unspecified() {
        in_family(tcp_local, shared.ip()).unwrap_or(shared.ip())
    } else {
        shared.ip()
    };
    let fd = port_socket(SocketAddr::new(ip, shared.port()))?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(peer),
    )?;
    // A client uploading at ~1 Gbit/s overflows the default 208 KiB between two wake-ups of its
    // worker (measured: ~16k drops per 10 s, each a TCP retransmit through the tunnel). Memory is
    // charged only for what is queued. The worker cannot do this (no CAP_NET_ADMIN); failing
    // leaves the system default.
    for (what, result) in [
        (
            "receive",
            setsockopt(&fd, sockopt::RcvBufForce, &CLIENT_SOCKET_BUF),
        ),
        (
            "send",
            setsockopt(&fd, sockopt::SndBufForce, &CLIENT_SOCKET_BUF),
        ),
    ] {
        if let Err(err) = result {
            log::debug!("cannot enlarge a DTLS socket's {what} buffer: {err}");
        }
    }
    Ok(fd)
}

/// Socket buffer size of each client's UDP socket (the kernel doubles it for its accounting).
const CLIENT_SOCKET_BUF: usize = 1 << 20;

/// `ip` expressed in the family of `like` (IPv4 as a v4-mapped IPv6 address for an IPv6
/// socket), or `None` if that is impossible.
fn in_family(ip: IpAddr, like: IpAddr) -> Option<IpAddr> {
    match (ip.to_canonical(), like) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        (IpAddr::V4(v4), IpAddr::V4(_)) => Some(IpAddr::V4(v4)),
        (IpAddr::V6(v6), IpAddr::V6(_)) => Some(IpAddr::V6(v6)),
        (IpAddr::V6(_), IpAddr::V4(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_shared_socket_family() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(in_family(v4, any6), Some(mapped));
        assert_eq!(in_family(mapped, any4), Some(v4));
        assert_eq!(in_family("2001:db8::1".parse().unwrap(), any4), None);
    }

    /// A wildcard shared socket like [`bind_shared`] makes, on an ephemeral port, without the
    /// filter (these tests send short datagrams).
    fn wildcard(ip: IpAddr) -> Option<UdpSocket> {
        let fd = match port_socket(SocketAddr::new(ip, 0)) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return None,
            Err(e) => panic!("{e}"),
        };
        request_destination(&fd).unwrap();
        Some(UdpSocket::from_std(std::net::UdpSocket::from(fd)).unwrap())
    }

    /// The datagrams of the first batch that arrives within 2 s.
    async fn receive_batch(shared: &UdpSocket) -> Vec<(Vec<u8>, Meta)> {
        let mut receiver = Receiver::new();
        let mut out = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(2),
            shared.async_io(Interest::READABLE, || {
                receiver.receive(shared, |d, meta| out.push((d.to_vec(), meta)))
            }),
        )
        .await
        .expect("datagram within 2 s")
        .unwrap();
        out
    }

    async fn receive_one(shared: &UdpSocket) -> (usize, SocketAddr, Option<IpAddr>) {
        let (_, meta) = receive_batch(shared).await.swap_remove(0);
        (meta.len, meta.from.unwrap(), meta.destination)
    }

    /// The start of the ClientHello openconnect sends (as in proto's peek tests).
    fn client_hello() -> Vec<u8> {
        let mut d = vec![0x16, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9b];
        d.extend_from_slice(&[1, 0, 0, 0x8f, 0, 0, 0, 0, 0, 0, 0, 0x8f, 0xfe, 0xfd]);
        d.extend_from_slice(&[0x26; 32]);
        d.push(32);
        d.extend_from_slice(&[0x5a; 32]);
        d.push(0);
        d
    }

    /// The kernel runs the filter on what the real socket receives (the UDP header first):
    /// garbage is dropped before main reads it, a hello and an application-data record pass.
    #[tokio::test]
    async fn the_kernel_drops_garbage_before_main_reads_it() {
        let fd = shared_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let shared = UdpSocket::from_std(std::net::UdpSocket::from(fd)).unwrap();
        let addr = shared.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut tls = client_hello();
        tls[1..3].copy_from_slice(&[3, 3]);
        let mut oversized = client_hello();
        oversized.resize(MAX_FIRST + 1, 0);
        let garbage: [&[u8]; 5] = [b"hello", &[0; 100], &tls, &client_hello()[..40], &oversized];
        for g in garbage {
            client.send_to(g, addr).unwrap();
        }
        let record = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 1, 0x42];
        client.send_to(&record, addr).unwrap();
        client.send_to(&client_hello(), addr).unwrap();
        // Loopback delivers in order: everything is queued once the last datagram arrived.
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(receive_batch(&shared).await.into_iter().map(|(d, _)| d));
        }
        assert_eq!(got, vec![record.to_vec(), client_hello()]);
    }

    #[test]
    fn the_shared_socket_has_a_large_queue() {
        let fd = shared_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let size = nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(size >= SHARED_SOCKET_BUF, "{size}");
        }
    }

    /// SO_REUSEADDR on our socket would let any user bind the same port with SO_REUSEADDR and
    /// take datagrams; SO_REUSEPORT needs the same uid.
    #[test]
    fn the_port_cannot_be_shared_through_reuseaddr() {
        let shared =
            std::net::UdpSocket::from(shared_socket("127.0.0.1:0".parse().unwrap()).unwrap());
        let addr = shared.local_addr().unwrap();
        let intruder = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        setsockopt(&intruder, sockopt::ReuseAddr, &true).unwrap();
        let bound = bind(intruder.as_raw_fd(), &SockaddrStorage::from(addr));
        assert_eq!(bound, Err(nix::errno::Errno::EADDRINUSE));
    }

    #[tokio::test]
    async fn destination_address_picks_the_reply_address() {
        // 127.0.0.0/8 is all ours: 127.0.0.2 stands for a second address of the host.
        let shared = wildcard(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).unwrap();
        let port = shared.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", ("127.0.0.2", port)).unwrap();
        let (n, from, destination) = receive_one(&shared).await;
        assert_eq!(n, 5);
        assert_eq!(from, client.local_addr().unwrap());
        let second: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(destination, Some(second));
        // The TCP connection reached 127.0.0.1; the datagram's address wins.
        let own = connected(
            SocketAddr::new(second, port),
            "127.0.0.1".parse().unwrap(),
            from,
        )
        .unwrap();
        let own = std::net::UdpSocket::from(own);
        own.send(b"reply").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 8];
        let (_, source) = client.recv_from(&mut buf).unwrap();
        assert_eq!(source, SocketAddr::new(second, port));
    }

    #[tokio::test]
    async fn dual_stack_socket_reports_mapped_destinations() {
        let Some(shared) = wildcard(IpAddr::V6(Ipv6Addr::UNSPECIFIED)) else {
            return; // no IPv6 here
        };
        let port = shared.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hi", ("127.0.0.2", port)).unwrap();
        let (_, _, destination) = receive_one(&shared).await;
        assert_eq!(destination, Some("::ffff:127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn connected_socket_shares_the_port() {
        let shared = shared_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let shared = std::net::UdpSocket::from(shared);
        let addr = shared.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = client.local_addr().unwrap();
        let fd = connected(addr, addr.ip(), peer).unwrap();
        let own = std::net::UdpSocket::from(fd);
        assert_eq!(own.local_addr().unwrap(), addr);
        // The kernel now hands this client's datagrams to the connected socket.
        client.send_to(b"x", addr).unwrap();
        own.set_nonblocking(false).unwrap();
        own.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(own.recv(&mut buf).unwrap(), 1);
    }
}
