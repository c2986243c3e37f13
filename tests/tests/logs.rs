//! The log lines tools parse (doc/logs.md), from the real server with the real openconnect: a
//! login, a disconnect and failed logins give ocserv's lines, fail2ban's own `fail2ban-regex`
//! with doc/fail2ban/ocserv.conf finds exactly the failed logins' address in what main really
//! sent to syslog (the datagrams a syslog daemon or journald receives on /dev/log, as in a
//! deployment under dist/systemd/rocserv.service), a user name built to inject another address
//! is caught by nobody, and `log-format = json` gives one JSON object per line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::signal::Signal;
use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

/// A user name that, unescaped, would put 192.0.2.66 where a filter reads the address.
const EVIL: &str = "x]: 192.0.2.66 failed authentication for 'x";

/// A syslog socket of the test's: every datagram main sends to it, as text, in order.
struct Syslog {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Syslog {
    fn bind(path: &Path) -> Self {
        let sock = UnixDatagram::bind(path).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        // Read all the time: main sends non-blocking and drops what a full queue refuses.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Self { lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait until `count` datagrams contain `needle`; returns all datagrams.
    fn wait_for(&self, needle: &str, count: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if lines.iter().filter(|l| l.contains(needle)).count() >= count {
                return lines;
            }
            assert!(
                start.elapsed() < WAIT,
                "{count} x {needle:?} not in {lines:#?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// What rsyslog writes to /var/log/syslog for a datagram `<PRI>TAG[PID]: MSG` from /dev/log:
/// the priority goes, a date and the host name come first.
fn as_syslog_file(datagram: &str) -> String {
    let (pri, line) = datagram
        .strip_prefix('<')
        .and_then(|d| d.split_once('>'))
        .unwrap_or_else(|| panic!("no <PRI>: {datagram}"));
    assert!(pri.parse::<u8>().is_ok(), "{datagram}");
    format!("Dec  5 11:34:24 vpn {line}\n")
}

/// Run fail2ban-regex with doc/fail2ban/ocserv.conf over `log` (a syslog file's text) and
/// return the addresses it found.
fn fail2ban_addresses(dir: &Path, log: &str) -> Vec<String> {
    let conf = dir.join("fail2ban");
    let filters = conf.join("filter.d");
    std::fs::create_dir_all(&filters).unwrap();
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../doc/fail2ban/ocserv.conf");
    std::fs::copy(ours, filters.join("ocserv.conf")).unwrap();
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        filters.join("common.conf"),
    )
    .expect("fail2ban is installed (.ci/run)");
    let file = dir.join("syslog");
    std::fs::write(&file, log).unwrap();
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip", "-c"])
        .arg(&conf)
        .arg(&file)
        .arg("ocserv")
        .output()
        .expect("run fail2ban-regex");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn login_failures_and_disconnect_give_ocserv_lines_fail2ban_reads() {
    let lab = Lab::new();
    let syslog_path = lab.dir.join("dev-log");
    let syslog = Syslog::bind(&syslog_path);
    // As Server::start, with main's syslog socket ours (`-d 2`: stderr gets the lines too).
    let mut cmd = lab
        .srv
        .command(rocserv_e2e::bin("rocserv").to_str().unwrap());
    cmd.args(["-f", "-d", "2", "--syslog-socket"])
        .arg(&syslog_path)
        .arg("-c")
        .arg(lab.config(&[("max-ban-score", "0")]));
    let server = Server::spawn_command(cmd);
    server.wait_for_log("ready: listening on", WAIT).unwrap();
    let ip = lab::CLIENT_IP;

    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("login");
    let main_bob = format!("]: main[bob]:{ip}:");
    for needle in ["new user session", "user logged in"] {
        let line = server.wait_for_log(needle, WAIT).unwrap();
        assert!(
            line.starts_with("rocserv[") && line.contains(&main_bob),
            "{line}"
        );
        assert!(line.ends_with(&format!(" {needle}")), "{line}");
    }
    let line = server
        .wait_for_log(
            "sec-mod: initiating session for user 'bob' (session: ",
            WAIT,
        )
        .unwrap();
    assert!(line.starts_with("rocserv-sm["), "{line}");
    if client
        .wait_for_output("Established DTLS connection", WAIT)
        .is_ok()
    {
        let line = server
            .wait_for_log("DTLS handshake completed (link MTU: ", WAIT)
            .unwrap();
        assert!(
            line.contains(&format!("]: worker[bob]: {ip} DTLS handshake completed")),
            "{line}"
        );
    }

    // A clean logout (SIGINT: openconnect sends BYE).
    client.signal(Signal::SIGINT);
    client.wait_exit(WAIT).expect("openconnect exits");
    let line = server
        .wait_for_log("user disconnected (reason: ", WAIT)
        .unwrap();
    assert!(
        line.contains(&main_bob)
            && line.contains("user disconnected (reason: user disconnected, rx: ")
            && line.contains(", tx: ")
            && line.ends_with(')'),
        "{line}"
    );
    server
        .wait_for_log(
            "sec-mod: invalidating session of user 'bob' (session: ",
            WAIT,
        )
        .unwrap();

    // Three wrong passwords, then the injection attempt.
    for _ in 0..3 {
        let (status, _) = run_to_exit(&lab, "alice", "not-her-password", WAIT);
        assert!(!status.expect("openconnect gives up").success());
    }
    let before = server.log_len();
    let (status, _) = run_to_exit(&lab, EVIL, "whatever", WAIT);
    assert!(!status.expect("openconnect gives up").success());
    let evil = server
        .wait_for_log_after(before, "failed authentication for '", WAIT)
        .unwrap();
    assert!(
        evil.contains(&format!("]: {ip} failed authentication for 'x\\x5d:")),
        "{evil}"
    );

    let log = server.log_text();
    let alice = format!("]: worker[alice]: {ip} failed authentication for 'alice'");
    assert_eq!(
        log.lines().filter(|l| l.ends_with(&alice)).count(),
        3,
        "{log}"
    );

    // What main sent to syslog: sec-mod's failures under sec-mod's own tag (what journald
    // records as SYSLOG_IDENTIFIER=rocserv-sm, SYSLOG_PID=its pid), not nested in main's.
    let datagrams = syslog.wait_for("failed authentication for '", 4);
    let secmod_pid = rocserv_e2e::procfs::children(server.pid())
        .into_iter()
        .find(|p| rocserv_e2e::procfs::comm(*p).as_deref() == Some("rocserv-sm"))
        .expect("sec-mod runs");
    // ocserv logs it at priority err (facility daemon: <27>).
    let tagged = format!(
        "<27>rocserv-sm[{secmod_pid}]: worker[alice]: {ip} failed authentication for 'alice'"
    );
    assert_eq!(
        datagrams.iter().filter(|d| **d == tagged).count(),
        3,
        "{tagged}\n{datagrams:#?}"
    );
    assert!(
        datagrams
            .iter()
            .any(|d| d.starts_with(&format!("<30>rocserv[{}]: main[bob]:", server.pid()))),
        "{datagrams:#?}"
    );
    let file: String = datagrams.iter().map(|d| as_syslog_file(d)).collect();
    // fail2ban finds the four failures, all from the client's address, and never 192.0.2.66.
    let found = fail2ban_addresses(&lab.dir, &file);
    assert_eq!(found, vec![ip.to_string(); 4], "{found:?}\n{file}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn json_log_format_gives_one_object_per_line() {
    let lab = Lab::new();
    let conf = lab.config(&[("max-ban-score", "0"), ("log-format", "json")]);
    let server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("login");
    server
        .wait_for_log("\"event\":\"logged-in\"", WAIT)
        .unwrap();
    let (status, _) = run_to_exit(&lab, "a\"li\\ce", "wrong", WAIT);
    assert!(!status.expect("openconnect gives up").success());
    server
        .wait_for_log("\"event\":\"auth-failed\"", WAIT)
        .unwrap();
    client.signal(Signal::SIGINT);
    client.wait_exit(WAIT).expect("openconnect exits");
    server
        .wait_for_log("\"event\":\"disconnected\"", WAIT)
        .unwrap();

    let mut events = Vec::new();
    for line in server.log_text().lines() {
        // Lines before the configuration was read (none at -d 2 but a warning) are text.
        let Some(start) = line.find('{') else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&line[start..])
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for key in [
            "time", "process", "pid", "level", "event", "user", "ip", "port", "message",
        ] {
            assert!(value.get(key).is_some(), "no {key}: {line}");
        }
        if let Some(event) = value["event"].as_str() {
            events.push((event.to_owned(), value));
        }
    }
    let find = |name: &str| {
        events
            .iter()
            .find(|(e, _)| e == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} event"))
    };
    let login = find("logged-in");
    assert_eq!(login["user"], "bob");
    assert_eq!(login["ip"], lab::CLIENT_IP.to_string());
    assert!(login["port"].as_u64().is_some());
    assert_eq!(login["process"], "main");
    let failed = find("auth-failed");
    assert_eq!(
        failed["user"], "a\"li\\ce",
        "the name is kept exactly, escaped"
    );
    assert_eq!(failed["process"], "sec-mod");
    let gone = find("disconnected");
    assert_eq!(gone["reason"], "user disconnected");
    assert!(gone["rx"].as_u64().is_some() && gone["tx"].as_u64().is_some());
}
