//! Compression on CSTP with the real openconnect (protocol.md §5): `compression = true` makes
//! rocserv answer the client's `X-CSTP-Accept-Encoding: oc-lz4,lzs` with LZ4 (ocserv's default
//! priority) or, with `compression-algo-priority = lzs:1000`, with LZS; openconnect reports the
//! choice in its "Configured as ..., with SSL + <ALGO> connected" line. Zero-filled pings then
//! travel compressed in both directions, which the worker's end-of-tunnel summary counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{lab, tcp, Client, ClientOptions, Lab, Server, WAIT};

/// Ping the server's VPN address with large, zero-filled (very compressible) packets.
fn compressible_pings(lab: &Lab, count: u32) {
    let (ok, out) = lab.ping_with(count, &["-s", "1200", "-p", "00"]);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains(&format!("{count} received")), "{out}");
}

/// The numbers of the worker's "CHANNEL compression NAME: sent A of B packets compressed (..),
/// received C compressed (..)" line (CHANNEL: CSTP or DTLS), as (A, C).
fn channel_summary(log: &str, channel: &str, name: &str) -> (u64, u64) {
    let prefix = format!("{channel} compression {name}: sent ");
    let line = log
        .lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("no {channel} compression summary for {name} in:\n{log}"));
    eprintln!("{line}");
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |word: &str| -> u64 {
        let at = words.iter().position(|w| *w == word).unwrap();
        words[at + 1].parse().unwrap()
    };
    (after("sent"), after("received"))
}

fn run(overrides: &[(&str, &str)], client_extra: &[&str], algo_tag: &str, name: &str) {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(overrides));
    let mut options = ClientOptions::password("alice", "alice-pw");
    options.extra = client_extra.iter().map(|s| (*s).to_owned()).collect();
    let mut client = Client::start(&lab, &options);
    client.wait_up(WAIT).expect("tunnel up");
    let expected = format!("with SSL + {algo_tag} connected");
    client
        .wait_for_output(&expected, WAIT)
        .unwrap_or_else(|e| panic!("{e}: no `{expected}` in:\n{}", client.output()));

    compressible_pings(&lab, 5);
    // Random bytes do not compress: DATA and COMPRESSED frames mix on the same channel.
    let (sent, received, matched) =
        tcp::transfer(&lab.srv, &lab.cli, lab::VPN_SERVER_IP, 5001, 1 << 20);
    assert_eq!(sent, received, "the server received a different byte count");
    assert!(matched, "the digest of the transferred bytes differs");
    drop(client);
    server
        .wait_for_log("CSTP compression", WAIT)
        .expect("compression summary logged");
    let (sent, received) = channel_summary(&server.log_text(), "CSTP", name);
    // Five echo replies went out compressed, five echo requests came in compressed.
    assert!(sent >= 5, "sent {sent} compressed:\n{}", server.log_text());
    assert!(
        received >= 5,
        "received {received} compressed:\n{}",
        server.log_text()
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn lz4_is_negotiated_and_used_by_default() {
    run(&[("compression", "true")], &[], "LZ4", "oc-lz4");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn lzs_when_it_has_the_higher_priority() {
    run(
        &[
            ("compression", "true"),
            ("compression-algo-priority", "lzs:1000"),
        ],
        &["--compression=stateless"],
        "LZS",
        "lzs",
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn off_unless_configured() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("with SSL connected", WAIT)
        .unwrap_or_else(|e| panic!("{e}:\n{}", client.output()));
    compressible_pings(&lab, 2);
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
    assert!(!server.log_text().contains("CSTP compression"));
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn lz4_over_dtls_in_both_directions() {
    let lab = Lab::new();
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("compression", "true"), ("udp-port", "443")]),
    );
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS established");
    // openconnect names the DTLS channel's algorithm when it got X-DTLS-Content-Encoding.
    client
        .wait_for_output("DTLS connection compression using LZ4", WAIT)
        .unwrap_or_else(|e| panic!("{e}:\n{}", client.output()));
    compressible_pings(&lab, 5);
    drop(client);
    server
        .wait_for_log("DTLS compression", WAIT)
        .expect("DTLS compression summary logged");
    let (sent, received) = channel_summary(&server.log_text(), "DTLS", "oc-lz4");
    assert!(sent >= 5, "sent {sent} compressed:\n{}", server.log_text());
    assert!(
        received >= 5,
        "received {received} compressed:\n{}",
        server.log_text()
    );
}
