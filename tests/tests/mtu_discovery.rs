//! `try-mtu-discovery` with the real openconnect: the server's route to the client carries
//! only 1200-byte packets (a route MTU in the server namespace, so only the server -> client
//! direction shrinks), the client announces a 1500 base MTU. With the option on, DTLS
//! datagrams carry DF, the kernel refuses the full-size ones, and the worker lowers the MTU:
//! main sets the tun device to the new data MTU, and bulk data keeps flowing over DTLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::netns::Netns;
use rocserv_e2e::occtl;
use rocserv_e2e::{lab, tcp, Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";
/// The server -> client path MTU the route allows.
const PATH_MTU: u16 = 1200;
/// PSK-NEGOTIATE with AES-GCM over IPv4: 20 + 8 outer, 37 record, 1 type byte.
const OVERHEAD: u16 = 66;

/// Only `mtu` bytes per packet from the server namespace to the client's address.
fn narrow_route_to_client(ns: &Netns, mtu: u16) {
    let route = ns.exec_ok(&["ip", "-o", "route", "get", &lab::CLIENT_IP.to_string()]);
    let mut words = route.split_whitespace();
    words.find(|w| *w == "dev").expect("route has a device");
    let dev = words.next().expect("device name");
    ns.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("{}/32", lab::CLIENT_IP),
        "dev",
        dev,
        "mtu",
        &mtu.to_string(),
    ]);
}

/// The MTUs of the point-to-point (tun) devices in the namespace.
fn tun_mtus(ns: &Netns) -> Vec<u16> {
    ns.exec_ok(&["ip", "-o", "link", "show"])
        .lines()
        .filter(|l| l.contains("POINTOPOINT"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "mtu")?;
            words.next()?.parse().ok()
        })
        .collect()
}

fn run(discovery: bool) -> (Server, Client, Lab, u64) {
    let lab = Lab::new();
    narrow_route_to_client(&lab.srv, PATH_MTU);
    let flag = if discovery { "true" } else { "false" };
    let socket = lab.dir.join("occtl.socket");
    let server = Server::start(
        &lab.srv,
        &lab.config(&[
            ("udp-port", "443"),
            ("try-mtu-discovery", flag),
            ("use-occtl", "true"),
            ("occtl-socket-file", socket.to_str().unwrap()),
        ]),
    );
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    assert!(client.output().contains("PSK"), "{}", client.output());
    let before = lab.cli.udp_in_datagrams();
    let (sent, received, matched) =
        tcp::transfer_down(&lab.srv, &lab.cli, lab::VPN_SERVER_IP, 5003, 4 << 20);
    assert_eq!(sent, received, "the client received a different byte count");
    assert!(matched, "the bytes the client received differ");
    let datagrams = lab.cli.udp_in_datagrams() - before;
    (server, client, lab, datagrams)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_narrow_path_lowers_the_tun_mtu_and_dtls_keeps_the_traffic() {
    let (server, client, lab, datagrams) = run(true);
    let data_mtu = PATH_MTU - OVERHEAD;
    server
        .wait_for_log(&format!("data MTU now {data_mtu}"), WAIT)
        .expect("the worker lowered the MTU");
    assert_eq!(tun_mtus(&lab.srv), [data_mtu], "the tun device's MTU");
    // occtl shows the MTU the device has now, not the one granted at CONNECT.
    let users = occtl::json(&lab.dir.join("occtl.socket"), &["show", "users"]);
    assert_eq!(users[0]["MTU"], data_mtu.to_string(), "{users}");
    // 4 MiB in ~1.1 kB packets are ~3800 datagrams towards the client: over DTLS, not TLS.
    assert!(
        datagrams > 1000,
        "only {datagrams} UDP datagrams reached the client: data did not go over DTLS"
    );
    let log = server.log_text();
    assert!(!log.contains("sending over TLS"), "{log}");
    assert!(!log.contains("killing worker"), "{log}");
    drop(client);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn without_the_option_the_kernel_fragments_and_the_mtu_stays() {
    let (server, client, lab, datagrams) = run(false);
    // The granted data MTU for a 1500 base MTU (protocol.md §2.4).
    assert_eq!(
        tun_mtus(&lab.srv),
        [1500 - OVERHEAD],
        "the tun device's MTU"
    );
    assert!(
        datagrams > 1000,
        "only {datagrams} UDP datagrams reached the client"
    );
    assert!(!server.log_text().contains("data MTU now"));
    drop(client);
}
