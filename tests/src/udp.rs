//! Raw UDP from inside a namespace: capturing the datagrams a client sends (an `AF_PACKET`
//! socket, like tcpdump would, on a thread that entered the namespace) and an attacker's UDP
//! socket that sends one datagram and records what comes back.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};

use crate::netns::Netns;

/// How often the capture and listener threads look at their stop flag.
const POLL: Duration = Duration::from_millis(100);

fn enter(path: &str) {
    let file = std::fs::File::open(path).expect("open netns");
    setns(file, CloneFlags::CLONE_NEWNET).expect("setns");
}

/// The UDP payloads of IPv4 datagrams to port `dport` seen in a namespace (both directions of
/// every interface), until [`Capture::stop`] or [`crate::WAIT`] times two.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Capture {
    /// Start capturing; returns once the socket is open, so nothing sent afterwards is missed.
    pub fn start(ns: &Netns, dport: u16) -> Self {
        let path = ns.path();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter(&path);
            // Cooked packets (no link header) of every protocol; non-IPv4 ones are skipped.
            let fd = socket(
                AddressFamily::Packet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )
            .expect("AF_PACKET socket");
            // A UdpSocket only for its read timeout and recv(2) on the packet socket.
            let socket = UdpSocket::from(fd);
            socket.set_read_timeout(Some(POLL)).expect("timeout");
            ready_tx.send(()).expect("ready");
            let deadline = Instant::now() + crate::WAIT * 2;
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if let Some(payload) = udp_payload(&buf[..n], dport) {
                    seen.push(payload.to_vec());
                }
            }
            seen
        });
        ready_rx.recv_timeout(crate::WAIT).expect("capture ready");
        Self { stop, thread }
    }

    /// Stop and return the payloads seen, in order.
    pub fn stop(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("capture thread")
    }
}

/// The UDP payload of an IPv4 packet to `dport`.
fn udp_payload(ip: &[u8], dport: u16) -> Option<&[u8]> {
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(usize::from(ip.first()? & 0x0f) * 4..)?;
    (u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]) == dport).then(|| udp.get(8..))?
}

/// A UDP socket bound to `from` in a namespace that sent one datagram to `to` and keeps
/// recording what arrives, until [`Listener::stop`] or [`crate::WAIT`] times two.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u8>>>,
}

impl Listener {
    pub fn send(ns: &Netns, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Self {
        let path = ns.path();
        let payload = payload.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let socket = UdpSocket::bind(from).expect("bind");
            socket.set_read_timeout(Some(POLL)).expect("timeout");
            socket.send_to(&payload, to).expect("send");
            ready_tx.send(()).expect("sent");
            let deadline = Instant::now() + crate::WAIT * 2;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(n) = socket.recv(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
            }
            got
        });
        ready_rx.recv_timeout(crate::WAIT).expect("datagram sent");
        Self { stop, thread }
    }

    /// Stop and return the datagrams received, in order.
    pub fn stop(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("listener thread")
    }
}
