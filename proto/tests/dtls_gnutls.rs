//! Interop of `rocserv_proto::dtls::Server` (PSK mode) with a real GnuTLS client: a loopback
//! UDP echo server driven by our state machine, and `gnutls-cli --udp` with a PSK, for each
//! AES-GCM suite and for openconnect 9.01's own priority string (dependency-findings.md §1).
//! The legacy modes need `gnutls_session_set_premaster`, which gnutls-cli cannot do: a small C
//! client (`tests/dtls/legacy_client.c`, built here with `cc ... -lgnutls`) makes that call, as
//! openconnect does, for each legacy suite.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "an interop test owns a UDP socket, a clock and a child process; the library stays sans-IO"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a failure is a test failure"
)]

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rocserv_proto::dtls::{LegacySuite, Mode, Received, Server};

const PSK: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";
const SESSION_ID: [u8; 32] = [7; 32];
const MASTER: [u8; 48] = [0x3c; 48];
const LIMIT: Duration = Duration::from_secs(20);

/// A small xorshift generator: tests need no real entropy.
fn rng(state: &mut u64) -> impl FnMut(&mut [u8]) + '_ {
    move |buf: &mut [u8]| {
        for b in buf {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *b = *state as u8;
        }
    }
}

/// Echo every application record back; returns (what we negotiated, records echoed).
fn serve(socket: UdpSocket, mode: Mode, stop: mpsc::Receiver<()>) -> (String, usize, bool) {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = [0u8; 32];
    rng(&mut seed)(&mut random);
    let mut server = Server::new(mode, SESSION_ID, random);
    let mut echoed = 0;
    let mut buf = vec![0u8; 4096];
    let mut out = vec![0u8; 4096];
    let started = Instant::now();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while started.elapsed() < LIMIT && stop.try_recv().is_err() {
        let mut transmit = Vec::new();
        let now = Instant::now();
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                socket.connect(peer).unwrap();
                let got =
                    server.handle_datagram(&mut buf[..n], now, &mut rng(&mut seed), &mut transmit);
                match got {
                    Ok(Received::Data(data)) => {
                        let room = server.header_room();
                        out[room..room + data.len()].copy_from_slice(data);
                        let len = data.len();
                        let n = server
                            .seal_in_place(&mut out, len, &mut rng(&mut seed))
                            .unwrap();
                        socket.send(&out[..n]).unwrap();
                        echoed += 1;
                    }
                    Ok(Received::Closed) => break,
                    Ok(Received::Established | Received::Nothing) => {}
                    Err(e) => eprintln!("server: rejected datagram: {e}"),
                }
            }
            Err(_) => server.handle_timeout(now, &mut transmit),
        }
        for d in transmit {
            socket.send(&d).unwrap();
        }
    }
    (server.describe(), echoed, server.is_closed())
}

struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(priority: &str) -> (String, Vec<String>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = mpsc::channel();
    let server = thread::spawn(move || serve(socket, Mode::Psk { psk: PSK }, stop_rx));

    let hex: String = PSK.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Client(
        Command::new("gnutls-cli")
            .args(["--udp", "--pskusername=psk", &format!("--pskkey={hex}")])
            .arg(format!("--priority={priority}"))
            .args(["-p", &port.to_string(), "127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gnutls-cli is installed"),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.0.stderr.take().unwrap()),
    ] {
        let tx = lines_tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut seen = Vec::new();
    let wait_for = |needle: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };
    assert!(
        wait_for("Handshake was completed", &mut seen),
        "no handshake: {seen:#?}"
    );
    let stdin = child.0.stdin.as_mut().unwrap();
    stdin.write_all(b"hello over our dtls\n").unwrap();
    stdin.flush().unwrap();
    assert!(
        wait_for("hello over our dtls", &mut seen),
        "no echo: {seen:#?}"
    );
    drop(child);
    stop_tx.send(()).unwrap();
    let (described, echoed, _) = server.join().unwrap();
    assert_eq!(echoed, 1);
    (described, seen)
}

const BASE: &str = "NORMAL:-VERS-TLS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK";

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_psk_aes128_gcm() {
    let (described, seen) = run(&format!("{BASE}:-CIPHER-ALL:+AES-128-GCM"));
    assert_eq!(described, "DTLS1.2 PSK AES-128-GCM");
    assert!(seen.iter().any(|l| l.contains("AES-128-GCM")), "{seen:#?}");
}

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_psk_aes256_gcm() {
    let (described, seen) = run(&format!("{BASE}:-CIPHER-ALL:+AES-256-GCM"));
    assert_eq!(described, "DTLS1.2 PSK AES-256-GCM");
    assert!(seen.iter().any(|l| l.contains("AES-256-GCM")), "{seen:#?}");
}

/// openconnect 9.01's DTLS priority string (protocol.md §4.2): it offers 0x00A9 first.
#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_with_openconnect_priority() {
    let (described, _) = run(
        "NORMAL:-VERS-SSL3.0:+SHA256:%COMPAT:-3DES-CBC:-ARCFOUR-128:-VERS-TLS-ALL:+VERS-DTLS-ALL:-KX-ALL:+PSK",
    );
    assert_eq!(described, "DTLS1.2 PSK AES-256-GCM");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the C legacy client once per test process (tests run in parallel threads).
fn legacy_client() -> &'static std::path::Path {
    static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rocserv-legacy-client");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dtls/legacy_client.c");
        let status = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&exe)
            .arg(src)
            .arg("-lgnutls")
            .status()
            .expect("cc is installed");
        assert!(
            status.success(),
            "building the GnuTLS legacy client failed (libgnutls28-dev?)"
        );
        exe
    })
}

fn run_legacy(suite: LegacySuite, arg: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let (_stop_tx, stop_rx) = mpsc::channel();
    let mode = Mode::Legacy {
        master_secret: MASTER,
        suite,
    };
    let server = thread::spawn(move || serve(socket, mode, stop_rx));
    let output = Command::new(legacy_client())
        .args([&port.to_string(), arg, &hex(&MASTER), &hex(&SESSION_ID)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client failed: {stdout}{stderr}");
    assert!(stdout.contains("resumed=1"), "{stdout}");
    assert!(stdout.contains("echo ok"), "{stdout}");
    let (described, echoed, closed) = server.join().unwrap();
    assert_eq!(echoed, 1);
    assert!(closed, "the client's close_notify closes the server");
    assert!(described.contains(suite.name()), "{described}");
    stdout
}

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_legacy_dtls12_aes128_gcm() {
    let out = run_legacy(LegacySuite::Dtls12Aes128Gcm, "aes128gcm");
    assert!(out.contains("(DTLS1.2)-(RSA)-(AES-128-GCM)"), "{out}");
}

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_legacy_dtls12_aes256_gcm() {
    let out = run_legacy(LegacySuite::Dtls12Aes256Gcm, "aes256gcm");
    assert!(out.contains("(DTLS1.2)-(RSA)-(AES-256-GCM)"), "{out}");
}

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_legacy_dtls09_aes128_sha() {
    let out = run_legacy(LegacySuite::Dtls09Aes128Sha, "aes128sha");
    assert!(
        out.contains("(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)"),
        "{out}"
    );
}

#[test]
#[ignore = "needs gnutls-cli: run by tests/run-all.sh"]
fn gnutls_legacy_dtls09_aes256_sha() {
    let out = run_legacy(LegacySuite::Dtls09Aes256Sha, "aes256sha");
    assert!(
        out.contains("(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)"),
        "{out}"
    );
}
