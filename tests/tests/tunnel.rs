//! A real openconnect logs in, gets an address from the pool, and ping and TCP go through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn login_ping_and_tcp_through_the_tunnel() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    assert_eq!(up.reason, "connect");
    assert!(
        up.address.starts_with("192.168.231."),
        "address {} not from the pool",
        up.address
    );
    assert_ne!(up.address, lab::VPN_SERVER_IP.to_string());
    assert!(
        client.output().contains("CSTP connected"),
        "{}",
        client.output()
    );

    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains("3 received"), "{out}");

    lab.bulk_both_ways(4 << 20);

    // The server side of the tunnel: one tun device named from `device`.
    let (_, links) = lab.srv.exec(&["ip", "-o", "link", "show"]);
    assert!(
        links.contains("vpns0"),
        "no vpns0 in the server namespace:\n{links}"
    );
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
    server.assert_tun_offloads_used();
    server.assert_acks_filtered();
}
