//! `rx-data-per-sec` / `tx-data-per-sec` with the real openconnect and iperf3: a limited user's
//! TCP throughput is within 10 % of the limit in each direction, over DTLS and over TLS (limits
//! from a per-user file, and global ones), while a second, unlimited user on the same server at
//! the same time runs far above it; the kernel shapers are in place while the tunnel is up and
//! gone after it (also after main was killed).
//! All traffic stays between the test's two namespaces and lasts a few seconds per run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::netns::Netns;
use rocserv_e2e::output::Output;
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

/// The limit under test, bytes per second (8 Mbit/s: far below what the tunnel carries here).
const LIMIT: u64 = 1_000_000;
/// Seconds measured per run, after one second left out (slow start and the bucket's burst).
const SECONDS: &str = "3";
const OMIT: &str = "1";

fn limited(lab: &Lab, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let limit = LIMIT.to_string();
    let mut options = vec![
        ("udp-port", "443"),
        ("rx-data-per-sec", limit.as_str()),
        ("tx-data-per-sec", limit.as_str()),
    ];
    options.extend_from_slice(extra);
    lab.config(&options)
}

/// A user's tunnel: the client, its address and the server's device for it.
struct Tunnel {
    client: Client,
    address: String,
    server_dev: String,
}

fn connect(lab: &Lab, server: &Server, user: &str, extra: &[&str]) -> Tunnel {
    let skip = server.log_len();
    let password = format!("{user}-pw");
    let mut opts = ClientOptions::password(user, &password);
    opts.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    let mut client = Client::start(lab, &opts);
    let up = client.wait_up(WAIT).expect("tunnel up");
    let line = server
        .wait_for_log_after(skip, &format!("user {user} connected: "), WAIT)
        .expect("connected logged");
    let server_dev = line
        .split(&format!("user {user} connected: "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("device in the log line")
        .to_owned();
    Tunnel {
        client,
        address: up.address,
        server_dev,
    }
}

/// An iperf3 server on the server's VPN address (one test, then it exits), ready to accept.
fn iperf_server(srv: &Netns, port: u16) -> (Child, Output) {
    let mut child = srv
        .command("iperf3")
        .args(["-s", "-1", "--forceflush", "-B"])
        .arg(lab::VPN_SERVER_IP.to_string())
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iperf3 -s");
    let out = Output::capture(&mut child, "iperf3-s");
    out.wait_for(0, "Server listening", WAIT)
        .expect("iperf3 server listening");
    (child, out)
}

/// Start an iperf3 client through `tunnel` (bound to its device and address: both users'
/// tunnels reach the same server address); `down` = the server sends (-R).
fn iperf_client(lab: &Lab, tunnel: &Tunnel, port: u16, down: bool) -> Child {
    let mut cmd = lab.cli.command("iperf3");
    cmd.args([
        "-c",
        &lab::VPN_SERVER_IP.to_string(),
        "-p",
        &port.to_string(),
    ])
    .args(["-t", SECONDS, "-O", OMIT, "-J", "--connect-timeout", "5000"])
    .args(["-B", &tunnel.address, "--bind-dev", &tunnel.client.device]);
    if down {
        cmd.arg("-R");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iperf3 -c")
}

/// The receiver's rate of a finished iperf3 client, bytes per second.
fn rate(child: Child) -> f64 {
    let out = child.wait_with_output().expect("iperf3 -c");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&text).expect("iperf3 JSON");
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("sum_received")
        / 8.0
}

/// Both users at once in one direction; returns (limited, unlimited) rates.
fn together(lab: &Lab, limited: &Tunnel, free: &Tunnel, down: bool) -> (f64, f64) {
    let (mut s1, _o1) = iperf_server(&lab.srv, 5301);
    let (mut s2, _o2) = iperf_server(&lab.srv, 5302);
    let a = iperf_client(lab, limited, 5301, down);
    let b = iperf_client(lab, free, 5302, down);
    let (ra, rb) = (rate(a), rate(b));
    let _ = s1.wait();
    let _ = s2.wait();
    (ra, rb)
}

fn assert_near_limit(rate: f64, what: &str) {
    let limit = LIMIT as f64;
    assert!(
        (rate - limit).abs() <= limit * 0.10,
        "{what}: {rate:.0} B/s is not within 10 % of the limit {LIMIT} B/s"
    );
}

/// The tun device's root qdisc is the shaper, and the rx shaper's ifb device exists.
fn assert_shapers(srv: &Netns, dev: &str) -> String {
    let qdisc = srv.exec_ok(&["tc", "qdisc", "show", "dev", dev]);
    assert!(qdisc.contains("qdisc tbf"), "no shaper on {dev}:\n{qdisc}");
    assert!(
        qdisc.contains("qdisc ingress"),
        "no ingress on {dev}:\n{qdisc}"
    );
    let ifbs = ifb_devices(srv);
    assert_eq!(ifbs.len(), 1, "one rx shaper device expected: {ifbs:?}");
    let ifb_qdisc = srv.exec_ok(&["tc", "qdisc", "show", "dev", &ifbs[0]]);
    assert!(ifb_qdisc.contains("qdisc tbf"), "{ifb_qdisc}");
    ifbs[0].clone()
}

fn ifb_devices(srv: &Netns) -> Vec<String> {
    srv.exec_ok(&["ip", "-o", "link", "show", "type", "ifb"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and iperf3: run by tests/run-all.sh"]
fn a_limited_user_gets_the_limit_over_dtls_and_another_user_is_not_slowed() {
    let lab = Lab::new();
    // Only alice has the limits, in her per-user file; bob (no file) has none.
    let users = lab.dir.join("users");
    std::fs::create_dir_all(&users).unwrap();
    let limit = LIMIT.to_string();
    std::fs::write(
        users.join("alice"),
        format!("rx-data-per-sec = {limit}\ntx-data-per-sec = {limit}\n"),
    )
    .unwrap();
    let conf = lab.config(&[
        ("udp-port", "443"),
        ("config-per-user", users.to_str().unwrap()),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let alice = connect(&lab, &server, "alice", &[]);
    alice
        .client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("alice on DTLS");
    let bob = connect(&lab, &server, "bob", &[]);

    let (up, bob_up) = together(&lab, &alice, &bob, false);
    let (down, bob_down) = together(&lab, &alice, &bob, true);
    eprintln!(
        "limited alice: {up:.0} B/s up, {down:.0} B/s down; unlimited bob at the same time: \
         {bob_up:.0} B/s up, {bob_down:.0} B/s down"
    );
    assert_near_limit(up, "from the limited client (rx, DTLS)");
    assert_near_limit(down, "to the limited client (tx, DTLS)");
    for (rate, way) in [(bob_up, "up"), (bob_down, "down")] {
        assert!(
            rate > 4.0 * LIMIT as f64,
            "the unlimited user was slowed {way}: {rate:.0} B/s"
        );
    }
    assert!(
        alice
            .client
            .output()
            .contains("Established DTLS connection"),
        "alice left DTLS"
    );
    server
        .wait_for_log(
            "bandwidth limited to 1000000 B/s from the client, 1000000 B/s",
            WAIT,
        )
        .expect("limit logged");
    let ifb = assert_shapers(&lab.srv, &alice.server_dev);
    let qdisc = lab
        .srv
        .exec_ok(&["tc", "qdisc", "show", "dev", &bob.server_dev]);
    assert!(!qdisc.contains("tbf"), "bob is shaped:\n{qdisc}");
    assert_eq!(
        ifb_devices(&lab.srv),
        vec![ifb.clone()],
        "no shaper for bob"
    );

    // The rx shaper's device goes with the tunnel.
    drop(alice);
    server
        .wait_for_log("session ended: user alice", WAIT)
        .expect("alice's session ended");
    assert_eq!(
        ifb_devices(&lab.srv),
        Vec::<String>::new(),
        "{ifb} left behind"
    );
    drop(bob);
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and iperf3: run by tests/run-all.sh"]
fn the_limit_holds_over_tls_and_a_killed_mains_shaper_goes_at_restart() {
    let lab = Lab::new();
    let conf = limited(&lab, &[]);
    let mut server = Server::start(&lab.srv, &conf);
    let alice = connect(&lab, &server, "alice", &["--no-dtls"]);
    for down in [false, true] {
        let (mut s, _o) = iperf_server(&lab.srv, 5303);
        let r = rate(iperf_client(&lab, &alice, 5303, down));
        let _ = s.wait();
        eprintln!(
            "limited alice over TLS: {r:.0} B/s {}",
            if down { "down" } else { "up" }
        );
        assert_near_limit(
            r,
            if down {
                "to the client (TLS)"
            } else {
                "from the client (TLS)"
            },
        );
    }
    assert!(
        !alice.client.output().contains("Established DTLS"),
        "not on TLS only"
    );
    let ifb = assert_shapers(&lab.srv, &alice.server_dev);

    // main killed: its workers die with it (and their tun devices), the ifb device stays
    // until the next main starts.
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL).expect("kill -9 main");
    server.wait_exit(WAIT).expect("main gone");
    drop(alice);
    assert_eq!(ifb_devices(&lab.srv), vec![ifb.clone()]);
    let server = Server::start(&lab.srv, &conf);
    server
        .wait_for_log(&format!("deleted {ifb}, left by an earlier run"), WAIT)
        .expect("stale shaper removed");
    assert_eq!(ifb_devices(&lab.srv), Vec::<String>::new());
}

/// The rx shaper sends the client's packets through an `ifb` device and back: nftables' access
/// rules (which match the tun device as `iif`) must still see them.
#[test]
#[ignore = "needs root, network namespaces, openconnect, nft and iperf3: run by tests/run-all.sh"]
fn access_rules_still_hold_for_a_limited_user() {
    let lab = Lab::new();
    let conf = limited(&lab, &[("restrict-user-to-ports", "tcp(5301)")]);
    let server = Server::start(&lab.srv, &conf);
    let alice = connect(&lab, &server, "alice", &[]);
    // Allowed port: the data flows, at the limit.
    let (mut s, _o) = iperf_server(&lab.srv, 5301);
    let r = rate(iperf_client(&lab, &alice, 5301, false));
    let _ = s.wait();
    assert_near_limit(r, "from the client to an allowed port");
    // Another port: refused by the access rules, although a server listens there.
    let (mut s, _o) = iperf_server(&lab.srv, 5302);
    let out = iperf_client(&lab, &alice, 5302, false)
        .wait_with_output()
        .expect("iperf3 -c");
    let _ = s.kill();
    let _ = s.wait();
    // iperf3 -J reports the failure in its JSON (its exit status is 0 then); the rules' reject
    // (ICMP administratively prohibited) reads as "No route to host".
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unable to connect"),
        "a port outside restrict-user-to-ports was reachable: {json}"
    );
    assert_shapers(&lab.srv, &alice.server_dev);
}
