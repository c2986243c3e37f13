//! Bans across the cluster (doc/cluster.md "Bans", "Drain and health"): a ban earned on one
//! node refuses the address on the other (over the bus, and from the store for a node that
//! starts later), `occtl unban ip` on any node ends it everywhere, and `GET /health` fails as
//! soon as a drain starts.
//!
//! The client has one address per node's link; to show a ban of its address on node A's link
//! (10.231.0.2) refusing it on node B, node B gets a route back to that address and curl
//! connects to B from it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use rocserv_e2e::client::authenticate_at;
use rocserv_e2e::cluster::{eventually, wait_joined, ClusterLab, Node, CLIENT_B_IP};
use rocserv_e2e::lab::CLIENT_IP;
use rocserv_e2e::occtl::{json, occtl};
use rocserv_e2e::server::Server;
use rocserv_e2e::WAIT;

/// Two wrong passwords (10 points each, plus a connection point each) pass it.
const BANS: &[(&str, &str)] = &[
    ("max-ban-score", "20"),
    ("ban-points-wrong-password", "10"),
    ("ban-points-connection", "1"),
    ("ban-time", "600"),
];

fn client_ip() -> String {
    CLIENT_IP.to_string()
}

/// Let node B answer the client's address on node A's link (through the client's B link).
fn route_a_address_to_b(cl: &ClusterLab) {
    cl.b.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("{CLIENT_IP}/32"),
        "via",
        &CLIENT_B_IP.to_string(),
    ]);
}

/// An HTTPS request to node `node` from the client's A-link address: true if the server
/// answered over TLS (any HTTP status), false if the connection was dropped.
fn answered(cl: &ClusterLab, node: Node) -> bool {
    let url = node.url();
    let (ok, out) = cl.lab.cli.exec(&[
        "curl",
        "-sk",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--interface",
        &client_ip(),
        &url,
    ]);
    ok && out.trim() != "000"
}

/// Whether `occtl show ip bans` on `node` lists the client's A-link address.
fn lists_ban(cl: &ClusterLab, node: Node) -> bool {
    let bans = json(&cl.occtl_socket(node), &["show", "ip", "bans"]);
    bans.to_string().contains(&format!("\"{}\"", client_ip()))
}

/// Wrong passwords on node A until A bans the client.
fn earn_a_ban_on_a(cl: &ClusterLab, a: &Server) {
    for i in 0..4 {
        if lists_ban(cl, Node::A) {
            return;
        }
        let got = authenticate_at(&cl.lab, &Node::A.url(), "alice", "wrong-pw");
        assert!(got.is_err(), "wrong password {i} was accepted");
    }
    a.wait_for_log(&format!("banning {}", client_ip()), WAIT)
        .expect("node A bans after wrong passwords");
}

#[test]
#[ignore = "needs root, network namespaces, redis-server, openconnect and curl: run by tests/run-all.sh"]
fn a_ban_on_one_node_refuses_the_address_on_the_other_until_unbanned() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, BANS));
    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, BANS));
    wait_joined(&a);
    wait_joined(&b);
    cl.wait_bus_subscribers(2);
    route_a_address_to_b(&cl);
    assert!(answered(&cl, Node::B), "node B answers before any ban");

    earn_a_ban_on_a(&cl, &a);
    // Over the bus: node B lists the ban and drops the address's connections.
    eventually("node B lists the ban", || lists_ban(&cl, Node::B));
    assert!(!answered(&cl, Node::B), "node B answered a banned address");
    b.wait_for_log("rejected connection from banned IP", WAIT)
        .expect("node B refused the banned address");
    // In the store, with a TTL no longer than ban-time.
    let key = format!("rocserv:ban:{}", client_ip());
    let (_, ttl) = cl.redis_cli(&["PTTL", &key]);
    let ttl: i64 = ttl.trim().trim_start_matches("(integer) ").parse().unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "ban key TTL {ttl}");

    // Unban on B: the key goes, A lifts the ban, a login on A works again.
    let ran = occtl(&cl.occtl_socket(Node::B), &["unban", "ip", &client_ip()]);
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    eventually("node A lifts the ban", || !lists_ban(&cl, Node::A));
    eventually("the ban key is deleted", || {
        cl.redis_cli(&["EXISTS", &key]).1.contains('0')
    });
    authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw")
        .expect("login on node A after the unban on node B");
    assert!(answered(&cl, Node::B), "node B answers after the unban");
}

#[test]
#[ignore = "needs root, network namespaces, redis-server, openconnect and curl: run by tests/run-all.sh"]
fn a_node_started_after_the_ban_reads_it_from_the_store() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, BANS));
    wait_joined(&a);
    earn_a_ban_on_a(&cl, &a);
    let key = format!("rocserv:ban:{}", client_ip());
    eventually("the ban key is written", || {
        cl.redis_cli(&["EXISTS", &key]).1.contains('1')
    });

    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, BANS));
    wait_joined(&b);
    route_a_address_to_b(&cl);
    eventually("node B reads the ban", || lists_ban(&cl, Node::B));
    assert!(!answered(&cl, Node::B), "node B answered a banned address");
}

/// `GET /health` on the metrics listener: 200 while serving (with the store's state), 503 from
/// the start of the drain while the tunnels stay; the other node hears that this one leaves;
/// the TLS port closes (the TCP check).
#[test]
#[ignore = "needs root, network namespaces, redis-server and curl: run by tests/run-all.sh"]
fn health_fails_as_soon_as_the_drain_starts() {
    const LISTEN: &str = "127.0.0.1:9617";
    let mut cl = ClusterLab::new();
    cl.start_store();
    let mut a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[("metrics-listen", LISTEN), ("server-drain-ms", "60000")],
        ),
    );
    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &[]));
    wait_joined(&a);
    wait_joined(&b);
    cl.wait_bus_subscribers(2);
    let health = || {
        let url = format!("http://{LISTEN}/health");
        let argv = [
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            &url,
        ];
        let (ok, out) = cl.ns(Node::A).exec(&argv);
        assert!(ok, "curl /health: {out}");
        let (body, status) = out.trim_end().rsplit_once('\n').unwrap();
        (status.to_owned(), body.trim_end().to_owned())
    };
    // main hears the store's state from sec-mod just after sec-mod logs it.
    eventually("health says the store is up", || {
        health() == ("200".into(), "ok\nstore up".into())
    });
    let tcp_open = || {
        cl.lab
            .cli
            .exec(&[
                "timeout",
                "3",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{}/443", Node::A.ip()),
            ])
            .0
    };
    assert!(tcp_open(), "the TLS port answers before the drain");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(a.pid()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    a.wait_for_log("stopping new connections", WAIT).unwrap();
    assert_eq!(health(), ("503".into(), "draining\nstore up".into()));
    assert!(!tcp_open(), "the TLS port still accepts during the drain");
    b.wait_for_log("cluster node node-a is leaving", WAIT)
        .expect("node B heard that node A leaves");
    assert!(
        a.wait_exit(Duration::from_millis(100)).is_none(),
        "node A exited before its drain ended"
    );
}

/// A store that restarts empty gets the ban back: the node that holds it writes it again when
/// the store is reachable again ("a lost ban is never unbanned forever").
#[test]
#[ignore = "needs root, network namespaces, redis-server and openconnect: run by tests/run-all.sh"]
fn a_ban_the_store_lost_is_written_again() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, BANS));
    wait_joined(&a);
    earn_a_ban_on_a(&cl, &a);
    let key = format!("rocserv:ban:{}", client_ip());
    eventually("the ban key is written", || {
        cl.redis_cli(&["EXISTS", &key]).1.contains('1')
    });
    cl.stop_store();
    a.wait_for_log("unreachable", WAIT)
        .expect("node A notices the store is gone");
    cl.start_store();
    assert!(cl.redis_cli(&["EXISTS", &key]).1.contains('0'));
    eventually("node A writes its ban again", || {
        cl.redis_cli(&["EXISTS", &key]).1.contains('1')
    });
    assert!(lists_ban(&cl, Node::A));
}
