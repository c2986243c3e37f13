//! Garbage, plain HTTP and silence on the TCP port: each connection is closed cleanly and leaves
//! no process behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

/// Connect from the client namespace, send `payload`, and return how the server ended it:
/// the bytes it answered with before closing, and how long that took.
fn poke(lab: &Lab, payload: Vec<u8>) -> (Vec<u8>, Duration) {
    let path = lab.cli.path();
    std::thread::spawn(move || {
        setns(std::fs::File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let addr = SocketAddr::from((lab::SERVER_IP, 443));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let start = Instant::now();
        conn.write_all(&payload).unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let took = start.elapsed();
        assert!(took < WAIT, "the server kept a bad connection open");
        (answer, took)
    })
    .join()
    .unwrap()
}

fn wait_no_workers(server: &Server) {
    let deadline = Instant::now() + WAIT;
    while !server.workers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "workers left behind: {:?}",
            server.workers()
        );
        // Bounded poll of /proc: process exit has no signal we can wait on from here.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn garbage_plain_http_and_silence_leave_nothing_behind() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("auth-timeout", "3")]));
    // main + sec-mod, once the start's nft table reset (run beside the start, off its path) is
    // done.
    let deadline = Instant::now() + WAIT;
    while server
        .processes()
        .iter()
        .any(|p| rocserv_e2e::procfs::comm(*p).as_deref() == Some("nft"))
    {
        assert!(
            Instant::now() < deadline,
            "the start's nft reset never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let baseline = server.processes().len();

    let mut x: u32 = 7;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let (answer, _) = poke(&lab, garbage);
    assert!(
        answer.len() < 64,
        "answered garbage with {} bytes",
        answer.len()
    );
    wait_no_workers(&server);

    let (answer, _) = poke(&lab, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    assert!(
        !String::from_utf8_lossy(&answer).contains("config-auth"),
        "served XML without TLS"
    );
    wait_no_workers(&server);

    // A client that connects and says nothing is dropped after auth-timeout.
    let (_, took) = poke(&lab, Vec::new());
    assert!(
        took >= Duration::from_secs(2),
        "closed a silent client before auth-timeout ({took:?})"
    );
    wait_no_workers(&server);

    assert_eq!(
        server.processes().len(),
        baseline,
        "process count changed: {:?}",
        server.processes()
    );
    // And the server still serves a real client.
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("login after the bad input");
}

/// Connect from the client namespace and send `bytes` one every 500 ms (nothing when empty)
/// until the server closes; how long it kept the connection.
fn trickle(lab: &Lab, bytes: &'static [u8]) -> Duration {
    let path = lab.cli.path();
    std::thread::spawn(move || {
        setns(std::fs::File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let addr = SocketAddr::from((lab::SERVER_IP, 443));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let start = Instant::now();
        let mut next = bytes.iter();
        while start.elapsed() < WAIT {
            if let Some(b) = next.next() {
                if conn.write_all(&[*b]).is_err() {
                    break;
                }
            }
            let mut buf = [0u8; 256];
            match conn.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                // An alert, or the read timeout: keep trickling.
                Ok(_) | Err(_) => {}
            }
        }
        start.elapsed()
    })
    .join()
    .unwrap()
}

/// `handshake-timeout`: a connection that sends nothing, or trickles its TLS hello a byte at a
/// time, is closed after the handshake deadline, not after `auth-timeout`, and its worker goes.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn silent_and_trickling_connections_end_at_the_handshake_timeout() {
    let lab = Lab::new();
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("auth-timeout", "120"), ("handshake-timeout", "3")]),
    );
    // A TLS 1.2 ClientHello record header and the start of its body, then more of the same.
    const HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefghijklmnopqrstuvwxyz\
        abcdefghijklmnopqrstuvwxyz0123456789";
    for bytes in [&b""[..], HELLO] {
        let took = trickle(&lab, bytes);
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(8),
            "a slow connection ({} bytes offered) was kept {took:?}",
            bytes.len()
        );
        wait_no_workers(&server);
    }
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("a real client still logs in");
}
