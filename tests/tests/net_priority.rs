//! `net-priority` with the real openconnect: the server's TCP socket of the client and the
//! per-client UDP socket of its DTLS carry the TOS byte (`0x..`) or the priority (`0`-`6`),
//! as `ss --tos` reports them in the server's namespace; from the main file and from a group's
//! file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::lab::add_user;
use rocserv_e2e::netns::Netns;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// The server's established sockets on port 443 (`tcp` or `udp`), as `ss --tos` lines.
fn established(srv: &Netns, proto: &str) -> Vec<String> {
    let flag = if proto == "tcp" { "-tnH" } else { "-unH" };
    srv.exec_ok(&[
        "ss",
        flag,
        "--tos",
        "state",
        "established",
        "sport",
        "=",
        ":443",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

fn up_on_dtls(lab: &Lab, user: &str) -> Client {
    let mut client = Client::start(lab, &ClientOptions::password(user, &format!("{user}-pw")));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS up");
    client
}

fn assert_all(lines: &[String], needle: &str, what: &str) {
    assert!(!lines.is_empty(), "no {what} socket");
    for line in lines {
        assert!(
            line.contains(needle),
            "{what} socket without {needle}: {line}"
        );
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn net_priority_is_set_on_the_clients_tcp_and_udp_sockets() {
    let lab = Lab::new();
    add_user(&lab.passwd, "dave", "dave-pw", Some("staff"));
    let groups = lab.dir.join("groups");
    std::fs::create_dir_all(&groups).unwrap();
    let conf = lab.config(&[
        ("udp-port", "443"),
        ("net-priority", "0x28"),
        ("config-per-group", groups.to_str().unwrap()),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let alice = up_on_dtls(&lab, "alice");
    // The listener is dual-stack: an IPv4 client's socket is IPv6 with a mapped peer, so the
    // byte is both IP_TOS (what its packets carry) and the traffic class.
    assert_all(&established(&lab.srv, "tcp"), "tos:0x28", "TCP");
    assert_all(&established(&lab.srv, "udp"), "tos:0x28", "UDP");
    drop(alice);
    server
        .wait_for_log("session ended: user alice", WAIT)
        .expect("alice gone");

    // A priority instead, from the group file of the next user (it applies at the next login,
    // no reload).
    std::fs::write(groups.join("staff"), "net-priority = 5\n").unwrap();
    let _dave = up_on_dtls(&lab, "dave");
    // ss reports a socket's priority as its class id when no cgroup class is set.
    assert_all(&established(&lab.srv, "tcp"), "class_id:0x5", "TCP");
    assert_all(&established(&lab.srv, "udp"), "class_id:0x5", "UDP");
}

/// The send buffer (`tb` in `ss -m`) of the server's TCP sockets on port 443.
fn send_buffers(srv: &Netns) -> Vec<u64> {
    let out = srv.exec_ok(&["ss", "-tmnH", "state", "established", "sport", "=", ":443"]);
    out.split(|c: char| c == ',' || c == '(' || c == ')' || c.is_whitespace())
        .filter_map(|f| f.strip_prefix("tb"))
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn output_buffer_sets_the_clients_tcp_send_buffer() {
    let lab = Lab::new();
    let conf = lab.config(&[("output-buffer", "40")]);
    let _server = Server::start(&lab.srv, &conf);
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("tunnel up");
    // 40 packets of the link MTU (1280..=1500 here); the kernel doubles SO_SNDBUF.
    let buffers = send_buffers(&lab.srv);
    assert_eq!(buffers.len(), 1, "{buffers:?}");
    let tb = buffers[0];
    assert!(
        tb.is_multiple_of(80) && (2 * 40 * 1280..=2 * 40 * 1500).contains(&tb),
        "send buffer {tb} is not 2 x 40 x MTU"
    );
}
