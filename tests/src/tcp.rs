//! TCP transfers through the tunnel, both ways (and single forged UDP datagrams, [`send_udp`]):
//! a listener in the server namespace and a peer in the client namespace, each on its own thread
//! that entered the namespace with setns(2).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::netns::Netns;

/// Move the calling thread into the namespace at `path` (only this thread; see setns(2)).
fn enter(path: &str) {
    let file = std::fs::File::open(path).expect("open netns");
    setns(file, CloneFlags::CLONE_NEWNET).expect("setns");
}

/// One TCP connection through the tunnel: a listener on `port` in the server namespace (all of
/// its addresses) accepts once and runs `on_server`; a thread in the client namespace connects
/// to `server_ip:port` and runs `on_client`. Both sockets time out after 30 s of silence.
fn connection<S, C>(
    srv: &Netns,
    cli: &Netns,
    server_ip: IpAddr,
    port: u16,
    on_server: impl FnOnce(TcpStream) -> S + Send + 'static,
    on_client: impl FnOnce(TcpStream) -> C + Send + 'static,
) -> (S, C)
where
    S: Send + 'static,
    C: Send + 'static,
{
    let with_timeouts = |conn: TcpStream| {
        let idle = Some(Duration::from_secs(30));
        conn.set_read_timeout(idle).expect("timeout");
        conn.set_write_timeout(idle).expect("timeout");
        conn
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv_path = srv.path();
    let server = std::thread::spawn(move || {
        enter(&srv_path);
        // IPv6 tests listen on `::` (which takes IPv4 too, as bindv6only is 0 by default).
        let any = if server_ip.is_ipv6() { "::" } else { "0.0.0.0" };
        let listener = TcpListener::bind((any, port)).expect("bind");
        ready_tx.send(()).expect("ready");
        let (conn, _) = listener.accept().expect("accept");
        on_server(with_timeouts(conn))
    });
    ready_rx
        .recv_timeout(crate::WAIT)
        .expect("server thread ready");
    let cli_path = cli.path();
    let client = std::thread::spawn(move || {
        enter(&cli_path);
        let addr = SocketAddr::from((server_ip, port));
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .expect("connect through tunnel");
        on_client(with_timeouts(conn))
    });
    let client = client.join().expect("client thread");
    (server.join().expect("server thread"), client)
}

/// Send `len` pseudo-random bytes from the client namespace to `server_ip:port` (a listener
/// started here in the server namespace, bound to all of its addresses) and return
/// (bytes sent, bytes the server received, whether the server's digest matched ours).
pub fn transfer(
    srv: &Netns,
    cli: &Netns,
    server_ip: impl Into<IpAddr>,
    port: u16,
    len: usize,
) -> (usize, usize, bool) {
    let hash_and_answer = |mut conn: TcpStream| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    ctx.update(&buf[..n]);
                    total += n;
                }
            }
        }
        let digest = ctx.finish();
        let _ = conn.write_all(digest.as_ref());
        total
    };
    let send_and_check = move |mut conn: TcpStream| {
        let data = pattern(len);
        let expect = ring::digest::digest(&ring::digest::SHA256, &data);
        conn.write_all(&data).expect("send");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        (data.len(), got == expect.as_ref())
    };
    let (received, (sent, matched)) = connection(
        srv,
        cli,
        server_ip.into(),
        port,
        hash_and_answer,
        send_and_check,
    );
    (sent, received, matched)
}

/// `len` pseudo-random bytes, the same on both ends.
fn pattern(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x: u32 = 0x1234_5678;
    for b in &mut data {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    data
}

/// The other direction: a listener in the server namespace sends `len` pseudo-random bytes to
/// the client, which connects from its namespace to `server_ip:port`. Returns (bytes sent, bytes
/// the client received, whether they are the bytes sent). Bulk data from the server is what the
/// tun device hands the worker as large TCP packets (offloads), so this checks their cutting.
pub fn transfer_down(
    srv: &Netns,
    cli: &Netns,
    server_ip: impl Into<IpAddr>,
    port: u16,
    len: usize,
) -> (usize, usize, bool) {
    let send = move |mut conn: TcpStream| {
        let data = pattern(len);
        let sent = conn.write_all(&data).map_or(0, |()| data.len());
        let _ = conn.shutdown(std::net::Shutdown::Write);
        sent
    };
    let receive = move |mut conn: TcpStream| {
        let mut got = Vec::with_capacity(len);
        let _ = conn.read_to_end(&mut got);
        (got.len(), got == pattern(len))
    };
    let (sent, (received, matched)) = connection(srv, cli, server_ip.into(), port, send, receive);
    (sent, received, matched)
}

/// Send one UDP datagram from `from` (an address of the namespace `ns`) to `to`: for forged
/// packets in tests (e.g. a record that pretends to come from a client's new port).
pub fn send_udp(ns: &Netns, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
    let path = ns.path();
    let payload = payload.to_vec();
    std::thread::spawn(move || {
        enter(&path);
        let socket = std::net::UdpSocket::bind(from).expect("bind");
        socket.send_to(&payload, to).expect("send");
    })
    .join()
    .expect("sender thread");
}

/// A UDP flood from a thread in `ns` to `to` (an address inside the test's namespaces): datagrams
/// of 1 to 1400 bytes that can be neither a DTLS ClientHello nor a DTLS record (first byte never
/// 22 or 23), as fast as the thread can send, until `stop` is set or `limit` has passed;
/// `sent` counts them as they go.
pub fn flood_udp(
    ns: &Netns,
    to: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limit: Duration,
) -> std::thread::JoinHandle<()> {
    let path = ns.path();
    std::thread::spawn(move || {
        enter(&path);
        let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("bind");
        let started = std::time::Instant::now();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut buf = [0u8; 1400];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < limit {
            for _ in 0..256 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let len = 1 + (state % 1400) as usize;
                for (i, b) in buf[..len.min(64)].iter_mut().enumerate() {
                    *b = (state >> (i % 8 * 8)) as u8 ^ i as u8;
                }
                if matches!(buf[0], 22 | 23) {
                    buf[0] = 0xff;
                }
                // ECONNREFUSED from an earlier ICMP error, or a full queue: keep going.
                if socket.send_to(&buf[..len], to).is_ok() {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    })
}
