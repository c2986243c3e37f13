//! A TCP transfer through the tunnel (and single forged UDP datagrams, [`send_udp`]): an echo-hash server in the server namespace and a sender
//! in the client namespace, each on its own thread that entered the namespace with setns(2).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::netns::Netns;

/// Move the calling thread into the namespace at `path` (only this thread; see setns(2)).
fn enter(path: &str) {
    let file = std::fs::File::open(path).expect("open netns");
    setns(file, CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Send `len` pseudo-random bytes from the client namespace to `server_ip:port` (a listener
/// started here in the server namespace, bound to all of its addresses) and return
/// (bytes sent, bytes the server received, whether the server's digest matched ours).
pub fn transfer(
    srv: &Netns,
    cli: &Netns,
    server_ip: Ipv4Addr,
    port: u16,
    len: usize,
) -> (usize, usize, bool) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv_path = srv.path();
    let server = std::thread::spawn(move || {
        enter(&srv_path);
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
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
    });
    ready_rx
        .recv_timeout(crate::WAIT)
        .expect("server thread ready");
    let cli_path = cli.path();
    let client = std::thread::spawn(move || {
        enter(&cli_path);
        let data = pattern(len);
        let expect = ring::digest::digest(&ring::digest::SHA256, &data);
        let addr = SocketAddr::from((server_ip, port));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .expect("connect through tunnel");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        conn.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        conn.write_all(&data).expect("send");
        conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        (data.len(), got == expect.as_ref())
    });
    let (sent, matched) = client.join().expect("client thread");
    let received = server.join().expect("server thread");
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
    server_ip: Ipv4Addr,
    port: u16,
    len: usize,
) -> (usize, usize, bool) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv_path = srv.path();
    let server = std::thread::spawn(move || {
        enter(&srv_path);
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let data = pattern(len);
        let sent = conn.write_all(&data).map_or(0, |()| data.len());
        let _ = conn.shutdown(std::net::Shutdown::Write);
        sent
    });
    ready_rx
        .recv_timeout(crate::WAIT)
        .expect("server thread ready");
    let cli_path = cli.path();
    let client = std::thread::spawn(move || {
        enter(&cli_path);
        let addr = SocketAddr::from((server_ip, port));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .expect("connect through tunnel");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = Vec::with_capacity(len);
        let _ = conn.read_to_end(&mut got);
        let matched = got == pattern(len);
        (got.len(), matched)
    });
    let (received, matched) = client.join().expect("client thread");
    let sent = server.join().expect("server thread");
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
