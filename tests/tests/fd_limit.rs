//! main raises its open-files soft limit to the hard limit at start (systemd starts services at
//! 1024, about 330 clients' worth of main's descriptors), and names `max-clients` when even the
//! hard limit is too low for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{Lab, Server, WAIT};

/// rocserv started through `prlimit --nofile=SOFT:HARD` (which execs it: same pid).
fn start_limited(lab: &Lab, overrides: &[(&str, &str)], soft: u32, hard: u32) -> Server {
    let mut cmd = lab.srv.command("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg(rocserv_e2e::bin("rocserv"))
        .args(["-f", "-d", "2", "-c"])
        .arg(lab.config(overrides));
    let server = Server::spawn_command(cmd);
    if let Err(e) = server.wait_for_log("ready: listening on", WAIT) {
        panic!("server did not become ready: {e}");
    }
    server
}

/// (soft, hard) "Max open files" of a process.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn main_raises_its_soft_open_files_limit_to_the_hard_one() {
    let lab = Lab::new();
    let server = start_limited(&lab, &[("max-clients", "100")], 256, 8192);
    assert_eq!(nofile(server.pid()), (8192, 8192));
    assert!(
        !server.log_text().contains("open files in main"),
        "no warning when the limit suffices:\n{}",
        server.log_text()
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_hard_limit_too_low_for_max_clients_is_named_at_start() {
    let lab = Lab::new();
    let server = start_limited(&lab, &[("max-clients", "1000")], 256, 1024);
    assert_eq!(nofile(server.pid()), (1024, 1024));
    let line = server
        .wait_for_log("max-clients: 1000 clients need about", WAIT)
        .expect("the shortfall is named");
    assert!(line.contains("LimitNOFILE="), "{line}");
}
