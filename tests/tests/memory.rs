//! Memory given back after the login (worker/src/memory.rs: the worker trims its heap and drops
//! the stack below its frame when the tunnel starts and once DTLS is up; rt/src/memory.rs: main
//! and sec-mod trim their heaps). Dropped pages come back zeroed on their next use, so what must
//! hold is that nothing live was dropped: the tunnel keeps carrying pings and bulk data both
//! ways, over DTLS and over TLS, and the next login works.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

fn ping_ok(lab: &Lab, count: u32) {
    let (ok, out) = lab.ping_through_tunnel(count);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains(&format!("{count} received")), "{out}");
}

fn client(lab: &Lab, user: &str, password: &str, extra: &[&str]) -> Client {
    let mut opts = ClientOptions::password(user, password);
    opts.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    Client::start(lab, &opts)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn tunnels_work_after_the_login_memory_is_given_back() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("udp-port", "443")]));
    server
        .wait_for_log("(udp, DTLS)", WAIT)
        .expect("UDP socket bound");

    // DTLS: the worker released its memory at CONNECT and again after this log line.
    let mut first = client(&lab, "alice", "alice-pw", &[]);
    first.wait_up(WAIT).expect("tunnel up");
    server
        .wait_for_log("DTLS handshake completed", WAIT)
        .expect("DTLS up on the server");
    ping_ok(&lab, 3);
    lab.bulk_both_ways(4 << 20);
    ping_ok(&lab, 2);
    drop(first);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("first session ended");

    // TLS only (released at CONNECT only), in a new worker after the first one's exit.
    let mut second = client(&lab, "alice", "alice-pw", &["--no-dtls"]);
    second.wait_up(WAIT).expect("second tunnel up");
    ping_ok(&lab, 3);
    lab.bulk_both_ways(4 << 20);
    ping_ok(&lab, 2);
    drop(second);
}
