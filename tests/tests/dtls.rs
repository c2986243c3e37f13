//! DTLS with the real openconnect (protocol.md §4): PSK-NEGOTIATE and every legacy suite come
//! up, data goes over UDP, DPD is answered over DTLS, and blocked UDP falls back to TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use rocserv_e2e::netns::Netns;
use rocserv_e2e::{lab, tcp, Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";

/// The lab configuration with DTLS on the TCP port's number, plus `extra`.
fn dtls_config(lab: &Lab, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let mut options = vec![("udp-port", "443")];
    options.extend_from_slice(extra);
    lab.config(&options)
}

fn client(lab: &Lab, extra: &[&str]) -> Client {
    let mut opts = ClientOptions::password("alice", "alice-pw");
    opts.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    Client::start(lab, &opts)
}

fn ping_ok(lab: &Lab, count: u32) {
    let (ok, out) = lab.ping_through_tunnel(count);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains(&format!("{count} received")), "{out}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn psk_dtls_carries_the_traffic() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[]));
    server
        .wait_for_log("(udp, DTLS)", WAIT)
        .expect("UDP socket bound");
    let mut client = client(&lab, &[]);
    client
        .wait_for_output("Got CONNECT response", WAIT)
        .expect("CONNECT answered");
    let connected = Instant::now();
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    // No flight may be lost on the way: the first retransmission would come after 1 s.
    assert!(
        connected.elapsed() < Duration::from_millis(900),
        "the DTLS handshake took {:?}",
        connected.elapsed()
    );
    client.wait_up(WAIT).expect("tunnel up");
    let out = client.output();
    assert!(out.contains("PSK"), "not the PSK mode:\n{out}");
    server
        .wait_for_log("DTLS established", WAIT)
        .expect("server saw the handshake");

    ping_ok(&lab, 3);
    let before = lab.srv.udp_in_datagrams();
    lab.bulk_both_ways(4 << 20);
    let after = lab.srv.udp_in_datagrams();
    // 4 MiB in ~1.4 kB packets are ~3000 datagrams one way; the ACKs come back over UDP too.
    // Over TLS, UDP would see next to nothing.
    assert!(
        after - before > 1000,
        "only {} UDP datagrams during the transfer: data did not go over DTLS",
        after - before
    );
    assert!(
        !server.log_text().contains("sending over TLS"),
        "{}",
        server.log_text()
    );
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
    server.assert_tun_offloads_used();
    server.assert_acks_filtered();
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn every_legacy_suite_comes_up() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[]));
    let variants: [&[&str]; 5] = [
        &["--dtls-ciphers=OC-DTLS1_2-AES128-GCM"],
        &["--dtls-ciphers=OC-DTLS1_2-AES256-GCM"],
        &["--dtls-ciphers=AES128-SHA"],
        &["--dtls-ciphers=AES256-SHA"],
        // AnyConnect-style DTLS 1.2 through X-DTLS12-CipherSuite (protocol.md §11 step 5).
        &[
            "--dtls12-ciphers=AES128-GCM-SHA256",
            "--dtls-ciphers=UNKNOWN",
        ],
    ];
    for flags in variants {
        let mut client = client(&lab, flags);
        client.wait_up(WAIT).expect("tunnel up");
        if let Err(e) = client.wait_for_output(ESTABLISHED, WAIT) {
            panic!("{flags:?}: {e}");
        }
        let out = client.output();
        assert!(!out.contains("PSK"), "{flags:?} negotiated PSK:\n{out}");
        let before = lab.srv.udp_in_datagrams();
        ping_ok(&lab, 3);
        let after = lab.srv.udp_in_datagrams();
        assert!(
            after - before >= 3,
            "{flags:?}: the pings did not come over UDP"
        );
        drop(client);
        server
            .wait_for_log("user disconnect", WAIT)
            .expect("session end logged");
    }
}

/// A garbage flood at the DTLS port (from the client's namespace, only to the server's address)
/// does not stop a login, the DTLS handshake or traffic over DTLS; and the kernel's socket
/// filter drops the garbage before main reads it (main logs every kind of datagram it drops).
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn dtls_comes_up_during_a_garbage_flood() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let lab = Lab::new();
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[]));
    server
        .wait_for_log("(udp, DTLS)", WAIT)
        .expect("UDP socket bound");
    let stop = Arc::new(AtomicBool::new(false));
    let to = std::net::SocketAddr::from((lab::SERVER_IP, 443));
    let before = lab.srv.udp_in_datagrams();
    let sent = Arc::new(AtomicU64::new(0));
    let flood = tcp::flood_udp(
        &lab.cli,
        to,
        Arc::clone(&stop),
        Arc::clone(&sent),
        Duration::from_secs(60),
    );
    // The flood is in full swing before the client starts.
    let deadline = Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < 50_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = client(&lab, &[]);
    let established = client.wait_for_output(ESTABLISHED, WAIT);
    let up = client.wait_up(WAIT);
    let pinged = lab.ping_through_tunnel(3);
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood thread");
    let sent = sent.load(Ordering::Relaxed);
    established.expect("DTLS established during the flood");
    up.expect("tunnel up during the flood");
    assert!(pinged.0, "ping during the flood failed:\n{}", pinged.1);
    assert!(sent > 50_000, "the flood sent only {sent} datagrams");
    let received = lab.srv.udp_in_datagrams() - before;
    assert!(
        received < sent / 2,
        "{received} of {sent} garbage datagrams were delivered to a socket"
    );
    let log = server.log_text();
    assert!(
        !log.contains("not a DTLS ClientHello"),
        "garbage reached main's demultiplexer:\n{log}"
    );
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn dpd_is_answered_over_dtls() {
    let lab = Lab::new();
    // A 3 s DTLS DPD: an idle client probes every 3 s and gives DTLS up after 6 s of silence.
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[("dpd", "3")]));
    let mut client = client(&lab, &[]);
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    let before = lab.srv.udp_in_datagrams();
    // Observe an idle tunnel for several DPD periods.
    std::thread::sleep(Duration::from_secs(10));
    let after = lab.srv.udp_in_datagrams();
    assert!(
        after - before >= 2,
        "no DTLS DPD requests arrived while idle ({before} -> {after})"
    );
    let out = client.output();
    assert!(
        !out.contains("Dead Peer Detection detected dead peer"),
        "the client found DTLS dead:\n{out}"
    );
    ping_ok(&lab, 2);
    assert!(!server.log_text().contains("sending over TLS"));
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn blocked_udp_falls_back_to_tls() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[]));
    block_udp_443(&lab.srv);
    let mut client = client(&lab, &[]);
    // openconnect waits for the DTLS handshake to time out before it configures the tunnel.
    client
        .wait_up(WAIT + Duration::from_secs(30))
        .expect("tunnel up over TLS");
    ping_ok(&lab, 3);
    let (sent, received, matched) =
        tcp::transfer(&lab.srv, &lab.cli, lab::VPN_SERVER_IP, 5001, 1 << 20);
    assert_eq!(sent, received);
    assert!(matched);
    let out = client.output();
    assert!(
        !out.contains(ESTABLISHED),
        "DTLS came up through the block:\n{out}"
    );
    assert!(!server.log_text().contains("DTLS established"));
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn udp_lost_mid_session_falls_back_to_tls() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &dtls_config(&lab, &[("dpd", "3")]));
    let mut client = client(&lab, &[]);
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    ping_ok(&lab, 2);
    block_udp_443(&lab.srv);
    // The client declares DTLS dead after 2 x DPD and sends over TLS; the server follows.
    let deadline = Instant::now() + WAIT;
    let mut answered = false;
    while Instant::now() < deadline {
        let (ok, _) = lab.cli.exec(&[
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            &lab::VPN_SERVER_IP.to_string(),
        ]);
        if ok && client.output().contains("dead peer") {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "no ping answered over TLS after UDP was blocked:\n{}",
        client.output()
    );
    server
        .wait_for_log("sending over TLS", WAIT)
        .expect("server fell back to TLS");
    ping_ok(&lab, 3);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn no_dtls_headers_without_udp_port() {
    let lab = Lab::new();
    let _server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = client(&lab, &["--dump-http-traffic"]);
    client.wait_up(WAIT).expect("tunnel up");
    let out = client.output();
    assert!(
        out.contains("X-CSTP-MTU"),
        "no CONNECT response dumped:\n{out}"
    );
    assert!(!out.contains("X-DTLS-Port"), "{out}");
    assert!(!out.contains(ESTABLISHED));
    ping_ok(&lab, 2);
}

/// Drop UDP to port 443 inside the server namespace only.
fn block_udp_443(ns: &Netns) {
    ns.exec_ok(&["nft", "add", "table", "inet", "e2e"]);
    ns.exec_ok(&[
        "nft",
        "add chain inet e2e input { type filter hook input priority 0 ; }",
    ]);
    ns.exec_ok(&["nft", "add rule inet e2e input udp dport 443 drop"]);
}
