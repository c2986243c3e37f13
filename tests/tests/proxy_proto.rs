//! `listen-proxy-proto` behind a real haproxy (`send-proxy-v2`, and v1 `send-proxy`), with the
//! real openconnect: the client logs in through the balancer, occtl and the logs name the
//! client's address (not haproxy's), wrong passwords charge and ban the client's address (never
//! the balancer's), DTLS comes up straight to rocserv's UDP port (matched by its session id),
//! and a connection without a header is refused with a log line.
//!
//! Layout, all inside the server namespace: haproxy listens on the lab's server address, port
//! 443 (what the client is pointed at), and relays to rocserv on the same address, port 4443,
//! so the balancer's address (10.231.0.1) is not a loopback one (loopback is never banned and
//! would prove nothing); rocserv's UDP port is 443 on that address, the port the client's DTLS
//! goes to.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::lab::{CLIENT_IP, SERVER_IP};
use rocserv_e2e::netns::Netns;
use rocserv_e2e::occtl::json;
use rocserv_e2e::output::Output;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// haproxy in the server namespace, killed (by PID) when dropped.
struct Haproxy {
    child: Child,
    _log: Output,
}

impl Haproxy {
    /// Relay `SERVER_IP:443` to rocserv at `SERVER_IP:4443` with `send` (`send-proxy-v2` or
    /// `send-proxy`) and wait until it listens.
    fn start(lab: &Lab, send: &str) -> Self {
        let conf = lab.dir.join("haproxy.cfg");
        std::fs::write(
            &conf,
            format!(
                "global\n    maxconn 200\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\
                 frontend vpn\n    bind {SERVER_IP}:443\n    default_backend rocserv\n\
                 backend rocserv\n    server r1 {SERVER_IP}:4443 {send}\n"
            ),
        )
        .unwrap();
        let mut child = lab
            .srv
            .command("haproxy")
            .args(["-db", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn haproxy (apt-get install haproxy)");
        let log = Output::capture(&mut child, "haproxy");
        let until = Instant::now() + WAIT;
        while !listening(&lab.srv, 443) {
            assert!(
                Instant::now() < until,
                "haproxy does not listen:\n{}",
                log.text()
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "haproxy exited:\n{}",
                log.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, _log: log }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening(ns: &Netns, port: u16) -> bool {
    let sport = format!(":{port}");
    !ns.exec_ok(&["ss", "-ltnH", "sport", "=", &sport])
        .trim()
        .is_empty()
}

fn config(lab: &Lab, socket: &Path) -> std::path::PathBuf {
    let host = SERVER_IP.to_string();
    lab.config(&[
        ("listen-host", &host),
        ("tcp-port", "4443"),
        ("udp-port", "443"),
        ("listen-proxy-proto", "true"),
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
    ])
}

/// The addresses `occtl -j show ip ban points` lists.
fn scored(socket: &Path) -> Vec<String> {
    json(socket, &["show", "ip", "ban", "points"])
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["IP"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and haproxy: run by tests/run-all.sh"]
fn proxy_v2_names_the_client_for_occtl_logs_and_bans() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let server = Server::start(&lab.srv, &config(&lab, &socket));
    let _haproxy = Haproxy::start(&lab, "send-proxy-v2");
    let (client_ip, balancer_ip) = (CLIENT_IP.to_string(), SERVER_IP.to_string());

    // A client that goes around the balancer sends no header: refused, logged, no worker.
    let before = server.log_len();
    let direct = ClientOptions {
        url: Some(format!("https://{SERVER_IP}:4443/")),
        ..ClientOptions::password("alice", "alice-pw")
    };
    let mut bypass = Client::start(&lab, &direct);
    let status = bypass.wait_exit(WAIT).expect("the direct client gives up");
    assert!(!status.success(), "{}", bypass.output());
    let line = server
        .wait_for_log_after(before, "connection refused: no PROXY protocol header", WAIT)
        .expect("refusal logged");
    assert!(line.contains(&format!("{client_ip}:")), "{line}");
    assert!(
        !server
            .log_text()
            .lines()
            .skip(before)
            .any(|l| l.contains("started as pid")),
        "a worker was spawned for a connection without a header"
    );

    // Through the balancer: the tunnel comes up, DTLS too (straight to our UDP port).
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("tunnel through haproxy");
    alice
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS up behind a TCP balancer");
    let line = server
        .wait_for_log("session started: user alice", WAIT)
        .unwrap();
    assert!(line.contains(&format!("{client_ip}:")), "{line}");
    let users = json(&socket, &["show", "users"]);
    assert_eq!(users[0]["Remote IP"], client_ip.as_str(), "{users}");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    drop(alice);

    // Wrong passwords: the client's address is charged and banned, never the balancer's.
    let mut runs = 0;
    while !server.log_text().contains(&format!("banning {client_ip}")) {
        runs += 1;
        assert!(
            runs <= 4,
            "not banned after {runs} runs:\n{}",
            server.log_text()
        );
        let (status, out) = run_to_exit(&lab, "alice", "wrong1\nwrong2\nwrong3", WAIT);
        assert!(!status.expect("client exits").success(), "{out}");
    }
    assert!(!server
        .log_text()
        .contains(&format!("banning {balancer_ip}")));
    let scores = scored(&socket);
    assert!(scores.contains(&client_ip), "{scores:?}");
    assert!(
        !scores.contains(&balancer_ip),
        "the balancer was charged: {scores:?}"
    );
    let bans = json(&socket, &["show", "ip", "bans"]);
    assert_eq!(bans.as_array().unwrap().len(), 1, "{bans}");
    assert_eq!(bans[0]["IP"], client_ip.as_str(), "{bans}");
    // The banned client is turned away after its header, before TLS and without a worker.
    let before = server.log_len();
    let (status, _) = run_to_exit(&lab, "bob", "bob-pw", WAIT);
    assert!(!status.expect("client exits").success());
    let line = server
        .wait_for_log_after(before, "rejected connection from banned IP", WAIT)
        .expect("the banned client refused");
    assert!(line.ends_with(&format!(" {client_ip}")), "{line}");
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and haproxy: run by tests/run-all.sh"]
fn proxy_v1_names_the_client_too() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let server = Server::start(&lab.srv, &config(&lab, &socket));
    let _haproxy = Haproxy::start(&lab, "send-proxy");
    let (client_ip, balancer_ip) = (CLIENT_IP.to_string(), SERVER_IP.to_string());

    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("tunnel through haproxy (v1)");
    let users = json(&socket, &["show", "users"]);
    assert_eq!(users[0]["Remote IP"], client_ip.as_str(), "{users}");
    drop(alice);
    server
        .wait_for_log("session ended: user alice", WAIT)
        .expect("alice gone");

    let (status, _) = run_to_exit(&lab, "bob", "wrong", WAIT);
    assert!(!status.expect("client exits").success());
    let scores = scored(&socket);
    assert!(scores.contains(&client_ip), "{scores:?}");
    assert!(
        !scores.contains(&balancer_ip),
        "the balancer was charged: {scores:?}"
    );
}
