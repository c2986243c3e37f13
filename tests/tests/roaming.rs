//! DTLS roaming with the real openconnect (protocol.md §4.6): the client's UDP path moves to
//! another source address mid-session (a NAT rebinding or a network change), the old path goes
//! dead, openconnect's DTLS DPD notices and it re-handshakes from the new address with the same
//! session id; main matches the id and hands the worker a socket connected to the new address.
//! The session survives: same worker, same tunnel address, no second login, data over UDP again.
//! `deny-roaming` ties only the cookie to the login address (sec-mod), not the DTLS path, as in
//! ocserv, whose UDP matching ignores it. A NAT that rebinds only the client's port is followed
//! at once, without a new handshake: main offers the record from the new port to the session of
//! that address, and the worker takes the new path once the record authenticates. A ClientHello
//! replayed from elsewhere starts a handshake on its own socket; the session keeps its path
//! unless that handshake completes, which takes the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{Ipv4Addr, SocketAddr};

use rocserv_e2e::netns::Netns;
use rocserv_e2e::{lab, tcp, udp, Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";
const DEAD: &str = "DTLS Dead Peer Detection detected dead peer";
/// The client's second address on its veth: where its UDP moves to.
const MOVED_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 3);

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn dtls_follows_a_client_whose_address_changes() {
    roam(&[]);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn deny_roaming_does_not_pin_the_dtls_path() {
    roam(&[("deny-roaming", "true")]);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn dtls_follows_a_nat_port_rebinding_at_once() {
    let lab = Lab::new();
    // A long DPD: recovery through openconnect's dead-peer detection would take a minute, so
    // pings that work within seconds prove the rebinding was followed directly.
    let (server, client, _) = dtls_session(&lab, &[("udp-port", "443"), ("dpd", "30")]);
    ping_over_udp(&lab);
    let port = client_udp_port(&lab.cli);
    rebind_client_port(&lab.cli, port, REBOUND_PORT);

    ping_over_udp(&lab);
    server
        .wait_for_log("DTLS flow moved to a new client port", WAIT)
        .expect("the worker took the new port");
    let flows = flows_to(&lab.srv, &format!("{}:{REBOUND_PORT}", lab::CLIENT_IP));
    assert!(
        !flows.is_empty(),
        "no server socket connected to the new port"
    );
    let out = client.output();
    assert!(
        !out.contains(DEAD),
        "the client had to detect a dead peer:\n{out}"
    );
    assert_eq!(
        out.matches(ESTABLISHED).count(),
        1,
        "the client re-handshook:\n{out}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_forged_record_from_a_new_port_moves_nothing() {
    let lab = Lab::new();
    let (server, _client, _) = dtls_session(&lab, &[("udp-port", "443")]);
    // What an attacker who can use the client's address may send: a DTLS 1.2 application-data
    // header (epoch 1) and bytes that do not authenticate.
    let mut record = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 60];
    record.extend_from_slice(&[0x5a; 60]);
    tcp::send_udp(
        &lab.cli,
        SocketAddr::from((lab::CLIENT_IP, REBOUND_PORT)),
        SocketAddr::from((lab::SERVER_IP, 443)),
        &record,
    );
    server
        .wait_for_log("did not authenticate; ignored", WAIT)
        .expect("the worker looked at the record and refused it");
    // The session still uses the client's real port.
    ping_over_udp(&lab);
    let flows = flows_to(&lab.srv, &format!("{}:{REBOUND_PORT}", lab::CLIENT_IP));
    assert!(
        flows.is_empty(),
        "a socket to the forged port stayed: {flows}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_replayed_psk_client_hello_moves_nothing() {
    replay_hello(&[]);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_replayed_legacy_client_hello_moves_nothing() {
    replay_hello(&["--dtls-ciphers=OC-DTLS1_2-AES128-GCM"]);
}

/// Someone who saw the client's ClientHello (the session id is in clear text) sends it again
/// from another address of the client's network. The worker may answer it with a handshake
/// flight (a HelloVerifyRequest, or the legacy ServerHello flight) but the session's packets
/// keep their path: pings still go over DTLS and no application data reaches the replayer.
fn replay_hello(flags: &[&str]) {
    let lab = Lab::new();
    let capture = udp::Capture::start(&lab.cli, 443);
    let (server, client, _) = dtls_session_with(&lab, &[("udp-port", "443")], flags);
    let hello = capture
        .stop()
        .into_iter()
        .rfind(|d| d.first() == Some(&22) && d.get(13) == Some(&1))
        .expect("captured the client's ClientHello");
    add_client_address(&lab.cli, MOVED_IP);
    ping_over_udp(&lab);

    let mark = server.log_len();
    let replayer = udp::Listener::send(
        &lab.cli,
        SocketAddr::from((MOVED_IP, REPLAY_PORT)),
        SocketAddr::from((lab::SERVER_IP, 443)),
        &hello,
    );
    server
        .wait_for_log_after(
            mark,
            &format!("{MOVED_IP}]:{REPLAY_PORT}: DTLS flow handed to worker"),
            WAIT,
        )
        .expect("main handed the replayed hello to the worker");
    ping_over_udp(&lab);
    ping_over_udp(&lab);
    let got = replayer.stop();
    let data: Vec<_> = got.iter().filter(|d| d.first() != Some(&22)).collect();
    assert!(
        data.is_empty(),
        "{} of {} datagrams to the replayer are not handshake records: {:02x?}",
        data.len(),
        got.len(),
        data.first().map(|d| &d[..d.len().min(16)])
    );
    // One answer to the hello, plus at most the legacy flight's 5 retransmissions.
    assert!(got.len() <= 6, "{} datagrams to the replayer", got.len());
    let out = client.output();
    assert_eq!(
        out.matches(ESTABLISHED).count(),
        1,
        "the client had to re-handshake:\n{out}"
    );
    assert!(!out.contains(DEAD), "the client lost DTLS:\n{out}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn replayed_hellos_from_many_addresses_are_limited_per_session() {
    let lab = Lab::new();
    let capture = udp::Capture::start(&lab.cli, 443);
    let (server, _client, _) = dtls_session(&lab, &[("udp-port", "443")]);
    let hello = capture
        .stop()
        .into_iter()
        .rfind(|d| d.first() == Some(&22) && d.get(13) == Some(&1))
        .expect("captured the client's ClientHello");
    add_client_address(&lab.cli, MOVED_IP);
    let mark = server.log_len();
    // Each from another source address (port), so the guard per address does not apply.
    for port in 0..10 {
        tcp::send_udp(
            &lab.cli,
            SocketAddr::from((MOVED_IP, REPLAY_PORT + port)),
            SocketAddr::from((lab::SERVER_IP, 443)),
            &hello,
        );
    }
    server
        .wait_for_log_after(mark, "hand-overs, one more every", WAIT)
        .expect("main refused hand-overs beyond the session's budget");
    let log = server.log_text();
    let handed = log
        .lines()
        .skip(mark)
        .filter(|l| l.contains(&format!("{MOVED_IP}]:")) && l.contains("DTLS flow handed"))
        .count();
    // The first hello of the session took one of the burst of 4.
    assert!((1..=3).contains(&handed), "{handed} hand-overs:\n{log}");
    ping_over_udp(&lab);
}

/// The attacker's port for [`replay_hello`].
const REPLAY_PORT: u16 = 41999;

/// The port the NAT moves the client's DTLS flow to.
const REBOUND_PORT: u16 = 40999;

/// The local port of openconnect's UDP socket to the server's DTLS port.
fn client_udp_port(cli: &Netns) -> u16 {
    let line = cli.exec_ok(&["ss", "-Huan", "dst", &format!("{}:443", lab::SERVER_IP)]);
    let local = line
        .split_whitespace()
        .find(|w| w.starts_with(&lab::CLIENT_IP.to_string()))
        .unwrap_or_else(|| panic!("no client UDP socket in: {line}"));
    local.rsplit(':').next().unwrap().parse().unwrap()
}

/// From now on the client's DTLS datagrams leave from port `to` instead of `from`, and answers
/// to `from` are lost: a NAT that rebinds the port. Stateless rewriting in the client namespace.
fn rebind_client_port(cli: &Netns, from: u16, to: u16) {
    let server = lab::SERVER_IP.to_string();
    cli.exec_ok(&["nft", "add", "table", "ip", "rebind"]);
    cli.exec_ok(&[
        "nft",
        "add chain ip rebind out { type filter hook output priority -300 ; }",
    ]);
    cli.exec_ok(&[
        "nft",
        &format!("add rule ip rebind out ip daddr {server} udp dport 443 udp sport {from} udp sport set {to}"),
    ]);
    cli.exec_ok(&[
        "nft",
        "add chain ip rebind in { type filter hook prerouting priority -300 ; }",
    ]);
    cli.exec_ok(&[
        "nft",
        &format!("add rule ip rebind in ip saddr {server} udp sport 443 udp dport {from} drop"),
    ]);
    cli.exec_ok(&[
        "nft",
        &format!("add rule ip rebind in ip saddr {server} udp sport 443 udp dport {to} udp dport set {from}"),
    ]);
}

fn roam(extra: &[(&str, &str)]) {
    let lab = Lab::new();
    // A 3 s DPD: openconnect gives a silent DTLS path up after 2 x 3 s.
    let mut options = vec![("udp-port", "443"), ("dpd", "3")];
    options.extend_from_slice(extra);
    let (server, client, up) = dtls_session(&lab, &options);
    ping_over_udp(&lab);
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one worker for one client: {workers:?}");
    assert_eq!(
        flows_to(&lab.srv, &MOVED_IP.to_string()),
        "",
        "no flow from the new address yet"
    );

    let client_mark = client.output_len();
    let server_mark = server.log_len();
    move_client_udp(&lab.cli);

    // Nothing comes back on the old path: the client declares DTLS dead and re-handshakes
    // from the new address (a new socket, so a new port too).
    client
        .wait_for_output_after(client_mark, DEAD, WAIT)
        .expect("the client noticed the dead UDP path");
    client
        .wait_for_output_after(client_mark, ESTABLISHED, WAIT)
        .expect("DTLS established again after the move");
    server
        .wait_for_log_after(server_mark, "DTLS established", WAIT)
        .expect("the worker completed the second handshake");
    let flows = flows_to(&lab.srv, &MOVED_IP.to_string());
    assert!(
        !flows.is_empty(),
        "the server has no UDP socket connected to {MOVED_IP}:\n{}",
        lab.srv.exec_ok(&["ss", "-uan"])
    );

    ping_over_udp(&lab);
    // The same session: the same worker process, no second CONNECT or login, no
    // script run for a reconnect, the tunnel address unchanged on the client's device.
    assert_eq!(server.workers(), workers, "the worker changed");
    let out = client.output();
    assert_eq!(
        out.matches("Got CONNECT response").count(),
        1,
        "openconnect connected again:\n{out}"
    );
    let addr = lab
        .cli
        .exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", &client.device]);
    assert!(
        addr.contains(&format!("{up}/32")),
        "the tunnel address {up} is gone: {addr}"
    );
    let log = server.log_text();
    assert!(!log.contains("session ended"), "{log}");
    assert_eq!(
        log.matches("session started").count(),
        1,
        "a second session:\n{log}"
    );
}

/// Ping through the tunnel and insist the echo requests arrived over UDP (DTLS), not TLS.
fn ping_over_udp(lab: &Lab) {
    let before = lab.srv.udp_in_datagrams();
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains("3 received"), "{out}");
    let after = lab.srv.udp_in_datagrams();
    assert!(
        after - before >= 3,
        "the pings did not come over UDP ({before} -> {after})"
    );
}

/// The client's UDP to the server's DTLS port leaves from [`MOVED_IP`] from now on, and
/// answers to its old address are lost, as after a NAT rebinding. Stateless rewriting in the
/// client namespace only (no conntrack), so it applies to the flow already running.
fn move_client_udp(cli: &Netns) {
    let client = lab::CLIENT_IP.to_string();
    let server = lab::SERVER_IP.to_string();
    let moved = MOVED_IP.to_string();
    add_client_address(cli, MOVED_IP);
    cli.exec_ok(&["nft", "add", "table", "ip", "roam"]);
    cli.exec_ok(&[
        "nft",
        "add chain ip roam out { type filter hook output priority -300 ; }",
    ]);
    cli.exec_ok(&[
        "nft",
        &format!("add rule ip roam out ip daddr {server} udp dport 443 ip saddr set {moved}"),
    ]);
    cli.exec_ok(&[
        "nft",
        "add chain ip roam in { type filter hook prerouting priority -300 ; }",
    ]);
    cli.exec_ok(&[
        "nft",
        &format!("add rule ip roam in ip saddr {server} udp sport 443 ip daddr {client} drop"),
    ]);
    cli.exec_ok(&[
        "nft",
        &format!(
            "add rule ip roam in ip saddr {server} udp sport 443 ip daddr {moved} ip daddr set {client}"
        ),
    ]);
}

/// A second address on the client's veth.
fn add_client_address(cli: &Netns, ip: Ipv4Addr) {
    let client = lab::CLIENT_IP.to_string();
    let addrs = cli.exec_ok(&["ip", "-4", "-o", "addr", "show"]);
    let dev = addrs
        .lines()
        .find(|l| l.contains(&format!("inet {client}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the client's veth")
        .to_owned();
    cli.exec_ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", &dev]);
}

/// `ss` lines of UDP sockets in `ns` connected to `peer` (an address, or address:port; empty
/// if none).
fn flows_to(ns: &Netns, peer: &str) -> String {
    ns.exec_ok(&["ss", "-Huan", "dst", peer]).trim().to_owned()
}

/// Alice logged in with DTLS up on both ends, on a server with `options`: the server, the client
/// and the client's tunnel address.
fn dtls_session(lab: &Lab, options: &[(&str, &str)]) -> (Server, Client, String) {
    dtls_session_with(lab, options, &[])
}

/// Same, with extra openconnect `flags`.
fn dtls_session_with(
    lab: &Lab,
    options: &[(&str, &str)],
    flags: &[&str],
) -> (Server, Client, String) {
    let server = Server::start(&lab.srv, &lab.config(options));
    let mut opts = ClientOptions::password("alice", "alice-pw");
    opts.extra = flags.iter().map(|f| (*f).to_owned()).collect();
    let mut client = Client::start(lab, &opts);
    let up = client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    server
        .wait_for_log("DTLS established", WAIT)
        .expect("server saw the handshake");
    (server, client, up.address)
}
