//! Address leases across the nodes of a cluster (doc/cluster.md "Addresses"): one lease space
//! per pool in the store, `explicit-ipv4` refused to another user on another node, the
//! `cluster-route-add-cmd`/`-del-cmd` hooks, node-local leasing without the store and how the
//! nodes settle a duplicate when it comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rocserv_e2e::client::{authenticate_at, Client, ClientOptions};
use rocserv_e2e::cluster::{eventually, wait_joined, ClusterLab, Node};
use rocserv_e2e::server::Server;
use rocserv_e2e::WAIT;

/// `dir/NAME/USER` files with the given contents (a `config-per-user` directory).
fn policy_dir(dir: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (user, text) in files {
        std::fs::write(d.join(user), text).unwrap();
    }
    d.display().to_string()
}

fn login(cl: &ClusterLab, node: Node, user: &str) -> Client {
    Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(node.url()),
            ..ClientOptions::password(user, &format!("{user}-pw"))
        },
    )
}

/// Without sharing, alice on A and bob on B would both get the pool's first address
/// (`predictable-ips = false`); with the store they get different ones. Each node runs its
/// route hooks with the address and its own device, and the removal when the tunnel ends.
#[test]
fn one_lease_space_across_nodes_and_route_hooks() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let dir = cl.lab.dir.clone();
    let hooks = |node: &str| {
        let file = dir.join(format!("routes-{node}"));
        (
            format!("echo add {node} %{{RI}} %{{D}} >> {}", file.display()),
            format!("echo del {node} %{{RI}} %{{D}} >> {}", file.display()),
            file,
        )
    };
    let (add_a, del_a, file_a) = hooks("node-a");
    let (add_b, del_b, file_b) = hooks("node-b");
    let common = [("predictable-ips", "false"), ("max-ban-score", "0")];
    let mut over_a = common.to_vec();
    over_a.extend([
        ("cluster-route-add-cmd", add_a.as_str()),
        ("cluster-route-del-cmd", del_a.as_str()),
    ]);
    let mut over_b = common.to_vec();
    over_b.extend([
        ("cluster-route-add-cmd", add_b.as_str()),
        ("cluster-route-del-cmd", del_b.as_str()),
    ]);
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &over_a));
    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &over_b));
    wait_joined(&a);
    wait_joined(&b);

    let mut alice = login(&cl, Node::A, "alice");
    let up_a = alice.wait_up(WAIT).expect("alice up on A");
    let mut bob = login(&cl, Node::B, "bob");
    let up_b = bob.wait_up(WAIT).expect("bob up on B");
    assert_eq!(
        up_a.address, "192.168.231.2",
        "alice gets the first address"
    );
    assert_ne!(
        up_a.address, up_b.address,
        "one address given to two sessions on two nodes"
    );
    // The store names the node that holds each.
    let (_, rec) = cl.redis_cli(&["GET", &format!("rocserv:lease4:{}", up_b.address)]);
    assert!(rec.contains("node-b/"), "bob's lease record: {rec}");

    // Hooks: the address as /32 and the node's own device, on the right node only.
    let read = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    eventually("route add hook on A", || {
        read(&file_a).contains(&format!("add node-a {}/32 vpna", up_a.address))
    });
    eventually("route add hook on B", || {
        read(&file_b).contains(&format!("add node-b {}/32 vpnb", up_b.address))
    });
    assert!(!read(&file_a).contains(&up_b.address), "{}", read(&file_a));
    assert!(!read(&file_b).contains(&up_a.address), "{}", read(&file_b));
    drop(alice);
    eventually("route del hook on A", || {
        read(&file_a).contains(&format!("del node-a {}/32 vpna", up_a.address))
    });
    assert!(!read(&file_b).contains("del"), "{}", read(&file_b));
    drop(bob);
    drop((a, b));
}

/// `explicit-ipv4` held by alice on A is refused to bob on B (as on one node), naming the
/// holder and its node.
#[test]
fn explicit_ipv4_held_on_a_is_refused_on_b() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let users = policy_dir(
        &cl.lab.dir,
        "users",
        &[
            ("alice", "explicit-ipv4 = 192.168.231.77\n"),
            ("bob", "explicit-ipv4 = 192.168.231.77\n"),
        ],
    );
    let (_a, b) = cl.start_nodes(&[("config-per-user", users.as_str()), ("max-ban-score", "0")]);
    let mut alice = login(&cl, Node::A, "alice");
    let up = alice.wait_up(WAIT).expect("alice up on A");
    assert_eq!(up.address, "192.168.231.77");
    let mut bob = login(&cl, Node::B, "bob");
    b.wait_for_log(
        "fixed address 192.168.231.77 (explicit-ipv4) is in use by a session of alice on node node-a",
        WAIT,
    )
    .expect("refusal on B logged with holder and node");
    assert!(
        bob.wait_up(Duration::from_secs(3)).is_err(),
        "bob got alice's fixed address on B"
    );
    drop(bob);
    drop(alice);
}

/// Without the store each node leases alone (both give the first address); when the store
/// comes back the nodes write their leases again, the first writer keeps the address and the
/// other node ends its tunnel on it.
#[test]
fn store_down_leases_node_local_then_a_duplicate_is_settled() {
    let mut cl = ClusterLab::new();
    let (a, b) = cl.start_nodes_alone(&[("predictable-ips", "false"), ("max-ban-score", "0")]);
    let mut alice = login(&cl, Node::A, "alice");
    let up_a = alice
        .wait_up(WAIT)
        .expect("alice up on A without the store");
    let mut bob = login(&cl, Node::B, "bob");
    let up_b = bob.wait_up(WAIT).expect("bob up on B without the store");
    assert_eq!(
        up_a.address, up_b.address,
        "node-local: both get the first address"
    );
    cl.start_store();
    let key = format!("rocserv:lease4:{}", up_a.address);
    let mut ended = String::new();
    eventually("one node ends its duplicate", || {
        for (s, name) in [(&a, "A"), (&b, "B")] {
            if s.log_text().contains("in the cluster store (given out") {
                ended = name.to_owned();
                return true;
            }
        }
        false
    });
    let (_, rec) = cl.redis_cli(&["GET", &key]);
    let keeper = if ended == "A" { "node-b/" } else { "node-a/" };
    assert!(
        rec.contains(keeper),
        "the store keeps the other node's: {rec}"
    );
    drop((alice, bob));
}

/// A session that reconnects on another node keeps its address: log in on A, take the
/// cookie, connect on A, then on B with the same cookie.
#[test]
fn reconnect_on_b_keeps_the_address() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let (_a, _b) = cl.start_nodes(&[("max-ban-score", "0")]);
    // Another user first, so that the address is not simply the first one on B too.
    let mut bob = login(&cl, Node::B, "bob");
    bob.wait_up(WAIT).expect("bob up on B");
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("cookie");
    let with_cookie = |node: Node| ClientOptions {
        url: Some(node.url()),
        ..ClientOptions::cookie(&cookie)
    };
    let mut on_a = Client::start(&cl.lab, &with_cookie(Node::A));
    let up_a = on_a.wait_up(WAIT).expect("alice up on A");
    // SIGHUP: openconnect leaves without logging out, so the session (and its cookie) stays.
    on_a.signal(Signal::SIGHUP);
    on_a.wait_exit(WAIT).expect("client exits on SIGHUP");
    let mut on_b = Client::start(&cl.lab, &with_cookie(Node::B));
    let up_b = on_b.wait_up(WAIT).expect("alice up on B with A's cookie");
    assert_eq!(
        up_a.address, up_b.address,
        "the address follows the session"
    );
    drop((on_b, bob));
}

/// On one node with the store: the tunnel's end turns the record into a reservation for the
/// session (`r`), and a reconnect with the cookie gets the address back and makes it live again.
#[test]
fn a_reconnect_on_the_same_node_keeps_the_address_and_the_record() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(Node::A, &[("max-ban-score", "0")]),
    );
    wait_joined(&a);
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("cookie");
    let opts = ClientOptions {
        url: Some(Node::A.url()),
        ..ClientOptions::cookie(&cookie)
    };
    let mut first = Client::start(&cl.lab, &opts);
    let up = first.wait_up(WAIT).expect("alice up");
    let key = format!("rocserv:lease4:{}", up.address);
    let record = || cl.redis_cli(&["GET", &key]).1;
    assert!(record().contains(" a alice"), "live record: {}", record());
    // SIGHUP: openconnect disconnects without logging out (the session stays).
    first.signal(Signal::SIGHUP);
    first.wait_exit(WAIT).expect("client exits on SIGHUP");
    eventually("the record becomes a reservation", || {
        record().contains(" r alice")
    });
    let (_, ttl) = cl.redis_cli(&["PTTL", &key]);
    let ttl: i64 = ttl.trim().trim_start_matches("(integer) ").parse().unwrap();
    assert!(
        ttl > 200_000,
        "kept for cookie-timeout (300 s) + 15 s: {ttl} ms"
    );
    let mut second = Client::start(&cl.lab, &opts);
    let again = second.wait_up(WAIT).expect("alice up again");
    assert_eq!(again.address, up.address);
    eventually("the record is live again", || record().contains(" a alice"));
    // A logout ends the session: the record goes.
    second.signal(Signal::SIGINT);
    second.wait_exit(WAIT).expect("client exits on SIGINT");
    eventually("the record is deleted at logout", || {
        !record().contains("alice")
    });
}
