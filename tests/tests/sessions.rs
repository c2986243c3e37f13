//! Session lifetime: cookie reconnects keep the address; a killed worker frees its address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::client::authenticate;
use rocserv_e2e::{procfs, Client, ClientOptions, Lab, Server, WAIT};

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn cookie_reconnect_gets_the_same_address() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let cookie = authenticate(&lab, "alice", "alice-pw").expect("authenticate");

    let mut first = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let up1 = first.wait_up(WAIT).expect("tunnel with the cookie");
    // SIGHUP: openconnect leaves without a BYE, like a laptop that lost its network; the cookie
    // must stay valid.
    let before = server.log_len();
    first.signal(Signal::SIGHUP);
    first.wait_exit(WAIT).expect("client exits on SIGHUP");
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("server saw the end");

    let mut second = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let up2 = second
        .wait_up(WAIT)
        .expect("tunnel again with the same cookie");
    assert_eq!(
        up1.address, up2.address,
        "a cookie reconnect must keep the address"
    );
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");

    // SIGUSR2: openconnect reconnects in place with its cookie and checks the address itself.
    second.signal(Signal::SIGUSR2);
    let up3 = second.wait_up(WAIT).expect("in-place reconnect");
    assert_eq!(up3.reason, "reconnect");
    assert_eq!(up3.address, up1.address);

    // A clean logout (BYE) kills the cookie.
    second.signal(Signal::SIGINT);
    second.wait_exit(WAIT).expect("client exits on SIGINT");
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("logout logged");
    let mut third = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let status = third.wait_exit(WAIT).expect("refused client exits");
    assert!(!status.success());
    assert!(
        third.output().contains("Cookie was rejected"),
        "{}",
        third.output()
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn killed_worker_frees_its_address_and_device() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(
        workers.len(),
        1,
        "one worker per connected client: {workers:?}"
    );
    // The client must not reconnect on its own while we look, nor close its connection (the
    // worker would then end by itself before we kill it): freeze it.
    client.signal(Signal::SIGSTOP);

    let before = server.log_len();
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).expect("kill -9 worker");
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("main noticed the dead worker");
    client.signal(Signal::SIGKILL);
    client.wait_exit(WAIT).expect("client killed");
    assert!(
        !procfs::alive(workers[0]),
        "the killed worker is still there (zombie not reaped?)"
    );
    let (_, links) = lab.srv.exec(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("vpns0"), "tun device left behind:\n{links}");

    let mut again = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    let up2 = again.wait_up(WAIT).expect("new login after the kill");
    assert_eq!(
        up.address, up2.address,
        "the address was not freed for its user"
    );
}

/// ocserv counts `session-timeout` from the login (its bug #599 was a reconnect restarting it):
/// a cookie reconnect 6 s into a 10 s session still ends about 10 s after the login, and the
/// CONNECT answer says how much is really left.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn session_timeout_counts_from_the_login_across_cookie_reconnects() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("session-timeout", "10")]));
    let t0 = std::time::Instant::now();
    let cookie = authenticate(&lab, "alice", "alice-pw").expect("authenticate");

    let mut first = Client::start(&lab, &ClientOptions::cookie(&cookie));
    first.wait_up(WAIT).expect("tunnel with the cookie");
    // Leave without a BYE at ~6 s (the cookie stays valid), then come back with the cookie.
    let six = t0 + Duration::from_secs(6);
    std::thread::sleep(six.saturating_duration_since(std::time::Instant::now()));
    let before = server.log_len();
    first.signal(Signal::SIGHUP);
    first.wait_exit(WAIT).expect("client exits on SIGHUP");
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("server saw the first tunnel end");

    let before = server.log_len();
    let mut opts = ClientOptions::cookie(&cookie);
    opts.extra = vec!["--dump-http-traffic".into()];
    let mut second = Client::start(&lab, &opts);
    second
        .wait_up(WAIT)
        .expect("tunnel again with the same cookie");
    let remaining = second
        .output()
        .lines()
        .find_map(|l| l.split("X-CSTP-Session-Timeout-Remaining: ").nth(1))
        .and_then(|v| v.trim().parse::<u64>().ok());
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("the reconnected tunnel ends by the session timeout");
    let ended = t0.elapsed();
    second.signal(Signal::SIGKILL);
    let _ = second.wait_exit(WAIT);
    assert!(
        ended >= Duration::from_secs(9) && ended < Duration::from_secs(13),
        "the session ended {ended:?} after the login, not ~10 s (restarted at the reconnect?)"
    );
    let remaining = remaining.expect("X-CSTP-Session-Timeout-Remaining in the CONNECT answer");
    assert!(
        remaining <= 4,
        "Session-Timeout-Remaining {remaining} after 6 s of 10"
    );
}

/// main enforces `session-timeout` itself: a worker that does not end the tunnel (frozen here
/// with SIGSTOP, as a compromised one would ignore it) is killed shortly after the timeout, and
/// the session ends as server-terminated (the cookie dies).
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn main_ends_a_session_whose_worker_ignores_the_timeout() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("session-timeout", "4")]));
    let t0 = std::time::Instant::now();
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    client.signal(Signal::SIGSTOP);
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGSTOP).expect("freeze the worker");
    let line = server
        .wait_for_log("session ended", WAIT)
        .expect("main ended the frozen worker's session");
    let ended = t0.elapsed();
    client.signal(Signal::SIGKILL);
    let _ = client.wait_exit(WAIT);
    assert!(line.contains("server terminated"), "{line}");
    // 4 s + main's grace before Terminate + its bounded wait before SIGKILL, plus slack.
    assert!(ended < Duration::from_secs(15), "ended after {ended:?}");
    assert!(
        !procfs::alive(workers[0]),
        "the frozen worker is still there"
    );
}
