//! IPv6 with the real openconnect: an IPv6 address from `ipv6-network` (as
//! `X-CSTP-Address-IP6`), ping6 and TCP over IPv6 through the tunnel over DTLS and over TLS, an
//! IPv6-only pool, and a client that reaches the server over IPv6. All addresses are ULAs
//! inside the namespaces the lab creates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use rocserv_e2e::occtl::json;
use rocserv_e2e::{lab, tcp, Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";

/// The lab configuration with the IPv6 pool, occtl on, plus `extra`; and occtl's socket.
fn config(lab: &Lab, extra: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let socket = lab.dir.join("occtl.socket");
    let socket_text = socket.to_str().unwrap().to_owned();
    let mut options = vec![
        ("ipv6-network", lab::POOL6),
        ("use-occtl", "true"),
        ("occtl-socket-file", socket_text.as_str()),
    ];
    options.extend_from_slice(extra);
    (lab.config(&options), socket)
}

fn client(lab: &Lab) -> Client {
    let mut opts = ClientOptions::password("alice", "alice-pw");
    opts.extra = vec!["--dump-http-traffic".to_owned()];
    Client::start(lab, &opts)
}

fn ping6_ok(lab: &Lab) {
    let (ok, out) = lab.ping6_through_tunnel(3);
    assert!(ok, "ping6 through the tunnel failed:\n{out}");
    assert!(out.contains("3 received"), "{out}");
}

/// 1 MiB each way over TCP to the server's IPv6 tunnel address, byte for byte.
fn tcp6_both_ways(lab: &Lab) {
    let (sent, received, matched) =
        tcp::transfer(&lab.srv, &lab.cli, lab::VPN_SERVER_IP6, 5061, 1 << 20);
    assert_eq!(sent, received, "the server received a different byte count");
    assert!(matched, "the bytes the server received differ");
    let (sent, received, matched) =
        tcp::transfer_down(&lab.srv, &lab.cli, lab::VPN_SERVER_IP6, 5062, 1 << 20);
    assert_eq!(sent, received, "the client received a different byte count");
    assert!(matched, "the bytes the client received differ");
}

/// The client's IPv6 address as the server announced it, and the address occtl shows.
fn announced_and_shown(client: &Client, socket: &std::path::Path) -> (String, serde_json::Value) {
    let out = client.output();
    let line = out
        .lines()
        .find(|l| l.contains("X-CSTP-Address-IP6: "))
        .unwrap_or_else(|| panic!("no X-CSTP-Address-IP6 in the CONNECT answer:\n{out}"));
    let value = line.split("X-CSTP-Address-IP6: ").nth(1).unwrap().trim();
    let users = json(socket, &["show", "users"]);
    (value.to_owned(), users[0].clone())
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn dual_stack_ping6_and_tcp_over_dtls() {
    let lab = Lab::new();
    let (conf, socket) = config(&lab, &[("udp-port", "443")]);
    let server = Server::start(&lab.srv, &conf);
    server
        .wait_for_log("(udp, DTLS)", WAIT)
        .expect("UDP socket bound");
    let mut client = client(&lab);
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    let up = client.wait_up(WAIT).expect("tunnel up");
    assert!(up.address.starts_with("192.168.231."), "{}", up.address);
    let (address6, user) = announced_and_shown(&client, &socket);
    assert!(
        address6.starts_with("fd00:231:1:") && address6.ends_with("/128"),
        "{address6}"
    );
    assert_eq!(
        user["IPv6"].as_str().map(|a| format!("{a}/128")),
        Some(address6.clone())
    );
    assert_eq!(user["P-t-P IPv6"], lab::VPN_SERVER_IP6.to_string());
    assert!(user["IPv4"].as_str().unwrap().starts_with("192.168.231."));
    // The server's tun carries our /128 and a route to the client's address.
    let (_, routes) = lab.srv.exec(&["ip", "-6", "route", "show", "dev", "vpns0"]);
    let remote = address6.trim_end_matches("/128");
    assert!(routes.contains(remote), "no route to {remote}:\n{routes}");

    ping6_ok(&lab);
    let before = lab.srv.udp_in_datagrams();
    tcp6_both_ways(&lab);
    let after = lab.srv.udp_in_datagrams();
    assert!(
        after - before > 300,
        "only {} UDP datagrams during the IPv6 transfer: it did not go over DTLS",
        after - before
    );
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn ipv6_over_tls_only() {
    let lab = Lab::new();
    // No udp-port: no DTLS is offered, everything goes over the TLS channel.
    let (conf, socket) = config(&lab, &[("dns", "fd00:231:1::53")]);
    let _server = Server::start(&lab.srv, &conf);
    let mut client = client(&lab);
    client.wait_up(WAIT).expect("tunnel up");
    let out = client.output();
    assert!(!out.contains(ESTABLISHED), "{out}");
    assert!(!out.contains("X-DTLS-Port"), "{out}");
    // openconnect takes IPv6 DNS from X-CSTP-DNS.
    assert!(out.contains("X-CSTP-DNS: fd00:231:1::53"), "{out}");
    let (address6, user) = announced_and_shown(&client, &socket);
    assert!(address6.starts_with("fd00:231:1:"), "{address6}");
    assert!(user["IPv6"].as_str().is_some(), "{user}");
    let before = lab.srv.udp_in_datagrams();
    ping6_ok(&lab);
    tcp6_both_ways(&lab);
    assert!(
        lab.srv.udp_in_datagrams() - before < 20,
        "UDP traffic without DTLS?"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn ipv6_only_pool() {
    let lab = Lab::new();
    let (conf, socket) = config(
        &lab,
        &[
            ("ipv4-network", ""),
            ("route", "fd00:231:99::/48"),
            ("dns", "fd00:231:1::1"),
            ("udp-port", "443"),
        ],
    );
    let server = Server::start(&lab.srv, &conf);
    let mut client = client(&lab);
    let up = client.wait_up(WAIT).expect("tunnel up");
    assert!(up.address.starts_with("fd00:231:1:"), "{}", up.address);
    let out = client.output();
    assert!(!out.contains("X-CSTP-Address: "), "an IPv4 address?\n{out}");
    assert!(
        out.contains("X-CSTP-Split-Include-IP6: fd00:231:99::/48"),
        "{out}"
    );
    let (_, user) = announced_and_shown(&client, &socket);
    assert!(user.get("IPv4").is_none(), "{user}");
    assert_eq!(user["IPv6"], up.address);
    ping6_ok(&lab);
    tcp6_both_ways(&lab);
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

/// `Udp6InDatagrams` of the server namespace (/proc/net/snmp6; /proc/net/snmp counts IPv4).
fn udp6_in_datagrams(lab: &Lab) -> u64 {
    let snmp6 = lab.srv.exec_ok(&["cat", "/proc/net/snmp6"]);
    snmp6
        .lines()
        .find_map(|l| l.strip_prefix("Udp6InDatagrams"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Udp6InDatagrams")
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn client_reaches_the_server_over_ipv6() {
    let mut lab = Lab::new();
    lab.add_outer_ipv6();
    let (conf, socket) = config(&lab, &[("udp-port", "443")]);
    let server = Server::start(&lab.srv, &conf);
    server
        .wait_for_log("(udp, DTLS)", WAIT)
        .expect("UDP socket bound");
    let mut client = client(&lab);
    // DTLS over the IPv6 outer path too.
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established over IPv6");
    client.wait_up(WAIT).expect("tunnel up");
    let (_, user) = announced_and_shown(&client, &socket);
    assert_eq!(user["Remote IP"], lab::CLIENT_IP6.to_string(), "{user}");
    // Both families inside the tunnel.
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok && out.contains("3 received"), "{out}");
    ping6_ok(&lab);
    let before = udp6_in_datagrams(&lab);
    tcp6_both_ways(&lab);
    assert!(
        udp6_in_datagrams(&lab) - before > 300,
        "the IPv6 transfer did not go over DTLS on the IPv6 outer path"
    );
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn per_user_explicit_ipv6_and_ipv6_network() {
    let lab = Lab::new();
    let users = lab.dir.join("users");
    std::fs::create_dir(&users).unwrap();
    std::fs::write(users.join("alice"), "explicit-ipv6 = fd00:231:1::77\n").unwrap();
    std::fs::write(users.join("bob"), "ipv6-network = fd00:231:2::/64\n").unwrap();
    let users_text = users.to_str().unwrap().to_owned();
    let (conf, _socket) = config(&lab, &[("config-per-user", users_text.as_str())]);
    let server = Server::start(&lab.srv, &conf);

    // alice gets her fixed address.
    let mut alice = client(&lab);
    alice.wait_up(WAIT).expect("tunnel up");
    assert!(
        alice
            .output()
            .contains("X-CSTP-Address-IP6: fd00:231:1::77/128"),
        "{}",
        alice.output()
    );
    ping6_ok(&lab);

    // A second login of alice while the address is in use: refused, and the log says why.
    let (status, out) = rocserv_e2e::client::run_to_exit(&lab, "alice", "alice-pw", WAIT);
    assert!(status.is_some_and(|s| !s.success()), "second login:\n{out}");
    server
        .wait_for_log("explicit-ipv6 fd00:231:1::77 is in use by alice", WAIT)
        .expect("the refusal names the address and its holder");
    // The first tunnel is unharmed.
    ping6_ok(&lab);

    // bob's own file gives him another IPv6 network; the server's end is its first address + 1.
    let mut opts = ClientOptions::password("bob", "bob-pw");
    opts.extra = vec!["--dump-http-traffic".to_owned()];
    let mut bob = Client::start(&lab, &opts);
    bob.wait_up(WAIT).expect("bob's tunnel up");
    let out = bob.output();
    let line = out
        .lines()
        .find(|l| l.contains("X-CSTP-Address-IP6: "))
        .unwrap_or_else(|| panic!("no IPv6 address for bob:\n{out}"));
    assert!(line.contains("X-CSTP-Address-IP6: fd00:231:2:"), "{line}");
    let (_, addrs) = lab.srv.exec(&["ip", "-6", "addr", "show"]);
    assert!(addrs.contains("fd00:231:2::1/128"), "{addrs}");
    drop(bob);
    drop(alice);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn cookie_reconnect_keeps_the_ipv6_address() {
    use nix::sys::signal::Signal;
    let lab = Lab::new();
    // IPv6 only, and not predictable: only the session's lease can give the address back.
    let (conf, _socket) = config(
        &lab,
        &[
            ("ipv4-network", ""),
            ("route", ""),
            ("predictable-ips", "false"),
        ],
    );
    let server = Server::start(&lab.srv, &conf);
    let cookie = rocserv_e2e::client::authenticate(&lab, "alice", "alice-pw").expect("login");
    let mut first = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let up1 = first.wait_up(WAIT).expect("tunnel with the cookie");
    assert!(up1.address.starts_with("fd00:231:1:"), "{}", up1.address);
    // Gone without a BYE: the address stays reserved for the session.
    let before = server.log_len();
    first.signal(Signal::SIGHUP);
    first.wait_exit(WAIT).expect("client exits on SIGHUP");
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("server saw the end");
    let mut second = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let up2 = second.wait_up(WAIT).expect("tunnel again");
    assert_eq!(
        up1.address, up2.address,
        "a cookie reconnect keeps the address"
    );
    // openconnect's in-place reconnect aborts if the IPv6 address differs.
    second.signal(Signal::SIGUSR2);
    let up3 = second.wait_up(WAIT).expect("in-place reconnect");
    assert_eq!(up3.reason, "reconnect");
    assert_eq!(up3.address, up1.address);
    ping6_ok(&lab);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_tunnel_mtu_below_1280_gets_no_ipv6() {
    let lab = Lab::new();
    let (conf, _socket) = config(&lab, &[("mtu", "1200")]);
    let server = Server::start(&lab.srv, &conf);
    let mut client = client(&lab);
    let up = client
        .wait_up(WAIT)
        .expect("the IPv4 tunnel still comes up");
    assert!(up.address.starts_with("192.168.231."), "{}", up.address);
    assert!(!client.output().contains("X-CSTP-Address-IP6"));
    server
        .wait_for_log("below IPv6's 1280: no IPv6 address", WAIT)
        .expect("the reason is logged");
    drop(client);
    // IPv6 only: nothing left to give, the CONNECT is refused.
    let (conf, _socket) = config(
        &lab,
        &[("mtu", "1200"), ("ipv4-network", ""), ("route", "")],
    );
    drop(server);
    let server = Server::start(&lab.srv, &conf);
    let (status, out) = rocserv_e2e::client::run_to_exit(&lab, "bob", "bob-pw", WAIT);
    assert!(status.is_some_and(|s| !s.success()), "{out}");
    server
        .wait_for_log("no IPv4 or IPv6 address for this session", WAIT)
        .expect("the refusal is logged");
}
