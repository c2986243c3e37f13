//! Start-up (issue 12 item 3): main listens before sec-mod is ready, so a client arriving
//! during the start waits in the backlog and is served once sec-mod is up; a start that then
//! fails closes the listener and exits non-zero.
//!
//! sec-mod is held in its start by a server key that is a FIFO: it blocks reading the key
//! until the test writes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use rocserv_e2e::client::authenticate;
use rocserv_e2e::{Lab, Server, WAIT};

/// The server's TCP port listens in its namespace.
fn listening(lab: &Lab) -> bool {
    let (_, out) = lab.srv.exec(&["ss", "-Hltn", "sport = :443"]);
    !out.trim().is_empty()
}

fn wait_listening(lab: &Lab, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if listening(lab) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A configuration whose server key is a FIFO at `fifo`.
fn held_config(lab: &Lab, fifo: &Path) -> std::path::PathBuf {
    let made = std::process::Command::new("mkfifo")
        .arg(fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    lab.config(&[("server-key", fifo.to_str().unwrap())])
}

/// Hand `bytes` to sec-mod, blocked reading the FIFO (opening for writing waits for it).
fn feed(fifo: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn login_during_the_start_waits_in_the_backlog() {
    let lab = Lab::new();
    let fifo = lab.dir.join("key.fifo");
    let conf = held_config(&lab, &fifo);
    let server = Server::spawn(&lab.srv, &conf);
    assert!(
        wait_listening(&lab, Duration::from_secs(5)),
        "not listening while sec-mod starts:\n{}",
        server.log_text()
    );
    assert!(!server.log_text().contains("ready: listening"));
    std::thread::scope(|s| {
        let login = s.spawn(|| authenticate(&lab, "alice", "alice-pw"));
        // The client is connected (the kernel accepted it into the backlog) and waits.
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !login.is_finished(),
            "the login ended before sec-mod was up"
        );
        feed(&fifo, &std::fs::read(&lab.pki.key).unwrap());
        server
            .wait_for_log("ready: listening on", WAIT)
            .expect("ready once the key is read");
        let cookie = login.join().unwrap().expect("the waiting login succeeds");
        assert!(!cookie.is_empty());
    });
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn failed_start_closes_the_early_listener() {
    let lab = Lab::new();
    let fifo = lab.dir.join("key.fifo");
    let conf = held_config(&lab, &fifo);
    let mut server = Server::spawn(&lab.srv, &conf);
    assert!(
        wait_listening(&lab, Duration::from_secs(5)),
        "not listening while sec-mod starts:\n{}",
        server.log_text()
    );
    std::thread::scope(|s| {
        let login = s.spawn(|| authenticate(&lab, "alice", "alice-pw"));
        std::thread::sleep(Duration::from_millis(500));
        feed(&fifo, b"not a key\n");
        let status = server.wait_exit(WAIT).expect("main exits");
        assert!(!status.success(), "a failed start exited with {status}");
        assert!(
            login.join().unwrap().is_err(),
            "a login succeeded without sec-mod"
        );
    });
    assert!(
        !listening(&lab),
        "the port still listens after the failed start"
    );
}
