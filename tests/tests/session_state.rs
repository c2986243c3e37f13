//! What occtl shows about a tunnel's channels (issue 14 item 1) with the real openconnect: the
//! TLS and DTLS suites in ocserv's (GnuTLS's) text, compared with what openconnect itself prints
//! for the same sessions; the DPD granted; the session's start; and, once the client's UDP is
//! blocked and the server fell back to TLS, `(no-dtls)` in `show users`, and the suite again
//! once UDP is back.
//!
//! openconnect stays quiet on UDP only while it keeps receiving, so (as in dtls_dpd.rs) the
//! server namespace streams UDP through the tunnel to a port the client namespace drops.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rocserv_e2e::netns::Netns;
use rocserv_e2e::occtl::{json, occtl};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};
use serde_json::Value;

const DPD: u64 = 2;
const SINK_PORT: &str = "5998";
/// How long main's view may lag the worker's (its reports are paced to one a second).
const REPORT_LAG: Duration = Duration::from_secs(5);

fn add_drop_rule(ns: &Netns, rule: &str) {
    let (_, tables) = ns.exec(&["nft", "list", "tables"]);
    if !tables.contains("inet e2e") {
        ns.exec_ok(&["nft", "add", "table", "inet", "e2e"]);
        ns.exec_ok(&[
            "nft",
            "add chain inet e2e input { type filter hook input priority 0 ; }",
        ]);
    }
    ns.exec_ok(&["nft", &format!("add rule inet e2e input {rule}")]);
}

/// One small UDP packet every 250 ms to the client's tunnel address (bounded); killed on drop.
struct Stream(Child);

impl Stream {
    fn start(ns: &Netns, to: &str, secs: u64) -> Self {
        let script = format!(
            "for i in $(seq 1 {n}); do echo x > /dev/udp/{to}/{SINK_PORT}; sleep 0.25; done",
            n = secs * 4
        );
        let child = ns
            .command("bash")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the UDP stream");
        Self(child)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last text in parentheses-joined form that follows `marker` in openconnect's output.
fn suite_after(output: &str, marker: &str) -> String {
    let at = output
        .rfind(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{output}"));
    output[at + marker.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

/// `show users` as JSON until `done` holds for the one user (bounded poll of main's view,
/// which follows the worker's paced reports).
fn wait_user(socket: &Path, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + REPORT_LAG;
    loop {
        let users = json(socket, &["show", "users"]);
        let user = users[0].clone();
        if done(&user) {
            return user;
        }
        assert!(Instant::now() < until, "{what}: {user:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_table(socket: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    wait_table_for(socket, what, REPORT_LAG, done)
}

fn wait_table_for(socket: &Path, what: &str, lag: Duration, done: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + lag;
    loop {
        let text = occtl(socket, &["show", "users"]).stdout;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < until, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn occtl_names_the_suites_and_shows_the_fallback_to_tls_and_back() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let dpd = DPD.to_string();
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("udp-port", "443"),
        ("dpd", &dpd),
        // The configuration's mobile-dpd is not what a desktop client is granted.
        ("mobile-dpd", "300"),
        ("compression", "true"),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS established");
    let output = client.output();
    // openconnect (GnuTLS) prints its side's description of the very same sessions.
    let tls = suite_after(&output, "with ciphersuite ");
    let dtls = suite_after(&output, "Ciphersuite ");
    assert!(dtls.starts_with("(DTLS1.2)-(PSK)-"), "{dtls}");

    let alice = wait_user(&socket, "DTLS cipher never shown", |u| {
        u["DTLS cipher"].as_str().is_some_and(|s| !s.is_empty())
    });
    assert_eq!(
        alice["DTLS cipher"].as_str(),
        Some(dtls.as_str()),
        "{alice:#}"
    );
    assert_eq!(
        alice["TLS ciphersuite"].as_str(),
        Some(tls.as_str()),
        "{alice:#}"
    );
    assert_eq!(alice["DPD"], dpd, "the granted DPD");
    // openconnect offers oc-lz4 and lzs on both channels; ocserv's priority picks oc-lz4.
    assert_eq!(alice["CSTP compression"], "oc-lz4", "{alice:#}");
    assert_eq!(alice["DTLS compression"], "oc-lz4", "{alice:#}");
    let started = alice["raw_session_started_at"].as_u64().unwrap();
    let connected = alice["raw_connected_at"].as_u64().unwrap();
    assert!(started <= connected, "{alice:#}");
    assert!(started > 0);
    // The table's column is the cipher part, as ocserv's occtl prints it.
    let cipher = dtls["(DTLS1.2)-(PSK)-".len()..].to_owned();
    let table = wait_table(&socket, "DTLS not shown in use", |t| t.contains(&cipher));
    assert!(!table.contains("(no-dtls)"), "{table}");

    // The client's UDP stops reaching the server: after 3 x dpd the server sends over TLS.
    add_drop_rule(&lab.cli, &format!("udp dport {SINK_PORT} drop"));
    let _stream = Stream::start(&lab.srv, &up.address, 30);
    add_drop_rule(&lab.srv, "udp dport 443 drop");
    server
        .wait_for_log("sending over TLS", WAIT)
        .expect("the server fell back to TLS");
    let table = wait_table(&socket, "the fallback to TLS not shown", |t| {
        t.contains("(no-dtls)")
    });
    assert!(table.contains("alice"), "{table}");
    let alice = &json(&socket, &["show", "users"])[0];
    assert_eq!(alice["TLS ciphersuite"].as_str(), Some(tls.as_str()));

    // UDP comes back: openconnect redoes its DTLS handshake and the table names DTLS again.
    lab.srv.exec_ok(&["nft", "delete", "table", "inet", "e2e"]);
    let table = wait_table_for(&socket, "DTLS never back in use", WAIT, |t| {
        t.contains(&cipher) && !t.contains("(no-dtls)")
    });
    assert!(table.contains("alice"), "{table}");
    drop(client);
}

/// `Session started at` is the login (sec-mod's session), `Last connected at` this connection:
/// a tunnel opened with a cookie two seconds after the login shows both, and a reconnect with
/// the same cookie keeps the session's start. The reconnect is a mobile client: it was granted
/// (and occtl shows) `mobile-dpd`, not `dpd`.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn session_start_is_the_login_not_the_connection() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("persistent-cookies", "true"),
        ("dpd", "60"),
        ("mobile-dpd", "300"),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let cookie = rocserv_e2e::client::authenticate(&lab, "alice", "alice-pw").expect("login");
    // The times under test are whole seconds: let two pass between login and CONNECT.
    std::thread::sleep(Duration::from_millis(2100));
    let mut first = Client::start(&lab, &ClientOptions::cookie(&cookie));
    first.wait_up(WAIT).expect("tunnel with the cookie");
    let alice = json(&socket, &["show", "users"])[0].clone();
    let started = alice["raw_session_started_at"].as_u64().unwrap();
    let connected = alice["raw_connected_at"].as_u64().unwrap();
    assert!(started + 2 <= connected, "{alice:#}");
    assert_eq!(alice["DPD"], "60");
    let kicked = occtl(&socket, &["disconnect", "user", "alice"]);
    assert_eq!(kicked.code, Some(0), "{}{}", kicked.stdout, kicked.stderr);
    first
        .wait_exit(WAIT)
        .expect("client exits after disconnect");
    server
        .wait_for_log("session ended", WAIT)
        .expect("server logged the end");
    let mut mobile = ClientOptions::cookie(&cookie);
    // openconnect then sends `X-AnyConnect-Identifier-Platform: android` at CONNECT.
    mobile.extra = vec!["--os=android".to_owned()];
    let mut second = Client::start(&lab, &mobile);
    second.wait_up(WAIT).expect("reconnect with the cookie");
    let again = json(&socket, &["show", "users"])[0].clone();
    let restarted = again["raw_session_started_at"].as_u64().unwrap();
    // An age turned into a time at each CONNECT: equal up to the rounding to seconds.
    assert!(restarted.abs_diff(started) <= 1, "{started} vs {again:#}");
    assert!(again["raw_connected_at"].as_u64().unwrap() >= connected);
    assert_eq!(again["DPD"], "300", "{again:#}");
}

/// The legacy DTLS suites are named as openconnect (GnuTLS) names the same sessions.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn legacy_dtls_suites_are_named_as_openconnect_names_them() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("udp-port", "443"),
    ]);
    let server = Server::start(&lab.srv, &conf);
    for flags in [
        "--dtls-ciphers=OC-DTLS1_2-AES128-GCM",
        "--dtls-ciphers=OC-DTLS1_2-AES256-GCM",
        "--dtls-ciphers=AES128-SHA",
        "--dtls-ciphers=AES256-SHA",
    ] {
        let mut opts = ClientOptions::password("alice", "alice-pw");
        opts.extra = vec![flags.to_owned()];
        let mut client = Client::start(&lab, &opts);
        client.wait_up(WAIT).expect("tunnel up");
        client
            .wait_for_output("Established DTLS connection", WAIT)
            .unwrap_or_else(|e| panic!("{flags}: {e}"));
        let dtls = suite_after(&client.output(), "Ciphersuite ");
        let alice = wait_user(&socket, flags, |u| {
            u["DTLS cipher"].as_str().is_some_and(|s| !s.is_empty())
        });
        assert_eq!(
            alice["DTLS cipher"].as_str(),
            Some(dtls.as_str()),
            "{flags}"
        );
        let skip = server.log_len();
        drop(client);
        server
            .wait_for_log_after(skip, "user disconnect", WAIT)
            .expect("session end logged");
    }
}

/// A TLS 1.2 session (`tls-priorities` without TLS 1.3) is named as openconnect names it.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_tls12_session_is_named_as_openconnect_names_it() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("tls-priorities", "NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.3"),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let tls = suite_after(&client.output(), "with ciphersuite ");
    assert!(tls.starts_with("(TLS1.2)-"), "{tls}");
    let alice = wait_user(&socket, "TLS ciphersuite never shown", |u| {
        u["TLS ciphersuite"].as_str().is_some_and(|s| !s.is_empty())
    });
    assert_eq!(alice["TLS ciphersuite"].as_str(), Some(tls.as_str()));
    assert_eq!(alice["DTLS cipher"].as_str().unwrap_or(""), "", "{alice:#}");
}
