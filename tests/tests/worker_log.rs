//! A worker's stderr reaches the log only through main, escaped and prefixed: a compromised
//! worker cannot forge one of main's lines (which fail2ban acts on). The worker here is a fake
//! (a shell script put beside a copy of rocserv) that writes forged lines and exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use rocserv_e2e::{bin, lab, Lab, Server, WAIT};

/// What the fake worker writes to its stderr: a normal tagged line, a line that pretends to be
/// main's, one hidden behind a carriage return, a terminal escape sequence, and a 5000-byte line.
const FAKE_WORKER: &str = r#"#!/bin/sh
printf '<I> hello from the fake worker\nrocserv[1]: banning 192.0.2.66 (forged)\n' >&2
printf '<W> x\rrocserv[1]: cr forged\n' >&2
printf '<E> \033[2Kterminal escape\n' >&2
i=0
while [ $i -lt 100 ]; do
    printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' >&2
    i=$((i + 1))
done
printf '\n<I> after the long line\n' >&2
exit 0
"#;

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_worker_cannot_forge_main_log_lines() {
    let lab = Lab::new();
    let dir = lab.dir.join("fakebin");
    std::fs::create_dir_all(&dir).unwrap();
    let rocserv = dir.join("rocserv");
    std::fs::copy(bin("rocserv"), &rocserv).unwrap();
    std::os::unix::fs::symlink(bin("rocserv-sm"), dir.join("rocserv-sm")).unwrap();
    let worker = dir.join("rocserv-worker");
    std::fs::write(&worker, FAKE_WORKER).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_binary(&lab.srv, &lab.config(&[]), &rocserv);

    let path = lab.cli.path();
    std::thread::spawn(move || {
        setns(std::fs::File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let addr = SocketAddr::from((lab::SERVER_IP, 443));
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap()
    })
    .join()
    .unwrap();

    // ocserv's worker shape, tagged with the worker's PID (not main's): `rocserv[WPID]:
    // worker: IP message` (no user before a login).
    let prefix = format!("]: worker: {} ", lab::CLIENT_IP);
    let hello = server
        .wait_for_log("hello from the fake worker", WAIT)
        .unwrap();
    assert!(
        hello.starts_with("rocserv[")
            && !hello.starts_with(&format!("rocserv[{}]:", server.pid()))
            && hello.contains(&format!("{prefix}hello from the fake worker")),
        "{hello}"
    );
    let forged = server.wait_for_log("(forged)", WAIT).unwrap();
    assert!(
        forged.contains(&format!("{prefix}rocserv[1]: banning")),
        "forged line not prefixed: {forged:?}"
    );
    let cr = server.wait_for_log("cr forged", WAIT).unwrap();
    assert!(
        cr.contains(r"x\rrocserv[1]: cr forged"),
        "not escaped: {cr:?}"
    );
    let esc = server.wait_for_log("terminal escape", WAIT).unwrap();
    assert!(
        esc.contains(r"\x1b[2Kterminal escape"),
        "not escaped: {esc:?}"
    );
    let long = server.wait_for_log("AAAA", WAIT).unwrap();
    assert!(
        long.ends_with("A [line cut]") && long.len() < 1100,
        "{long}"
    );
    server.wait_for_log("after the long line", WAIT).unwrap();
    // No line of the log starts with anything a worker wrote, and none holds a control byte.
    for line in server.log_text().lines() {
        assert!(
            !line.starts_with("rocserv[1]:") && !line.starts_with("<"),
            "a worker wrote into main's log: {line:?}"
        );
        assert!(
            !line.chars().any(char::is_control),
            "control byte: {line:?}"
        );
    }
}
