//! The log lines tools parse (doc/logs.md), from the real server with the real openconnect: a
//! login, a disconnect and failed logins give ocserv's lines, fail2ban's own `fail2ban-regex`
//! with doc/fail2ban/ocserv.conf finds exactly the failed logins' address in them, a user name
//! built to inject another address is caught by nobody, and `log-format = json` gives one JSON
//! object per line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;
use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

/// A user name that, unescaped, would put 192.0.2.66 where a filter reads the address.
const EVIL: &str = "x]: 192.0.2.66 failed authentication for 'x";

/// Run fail2ban-regex with doc/fail2ban/ocserv.conf over `log` (lines as rocserv wrote them,
/// given a syslog date and host as /var/log/syslog would) and return the addresses it found.
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
    let stamped: String = log
        .lines()
        .map(|l| format!("Dec  5 11:34:24 vpn {l}\n"))
        .collect();
    std::fs::write(&file, stamped).unwrap();
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
    let server = Server::start(&lab.srv, &lab.config(&[("max-ban-score", "0")]));
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
    // fail2ban finds the four failures, all from the client's address, and never 192.0.2.66.
    let found = fail2ban_addresses(&lab.dir, &log);
    assert_eq!(found, vec![ip.to_string(); 4], "{found:?}\n{log}");
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
