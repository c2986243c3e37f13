//! Cluster (doc/cluster.md): two nodes sharing a Valkey/Redis store the test starts.

use std::time::Duration;

use rocserv_e2e::client::{Client, ClientOptions};
use rocserv_e2e::cluster::{ClusterLab, Node};
use rocserv_e2e::server::Server;
use rocserv_e2e::WAIT;

/// Both nodes join the store (their heartbeat keys appear), report it reachable, and a login
/// on each works as on a single node.
#[test]
fn two_nodes_join_the_store() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[]));
    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &[]));
    for (server, node) in [(&a, Node::A), (&b, Node::B)] {
        server
            .wait_for_log("cluster store redis://", WAIT)
            .unwrap_or_else(|e| panic!("{node:?} never reached the store: {e}"));
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:node:*"]);
        if keys.contains("rocserv:node:node-a") && keys.contains("rocserv:node:node-b") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeat keys missing: {keys}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in [Node::A, Node::B] {
        let mut client = Client::start(
            &cl.lab,
            &ClientOptions {
                url: Some(node.url()),
                ..ClientOptions::password("alice", "alice-pw")
            },
        );
        client
            .wait_up(WAIT)
            .unwrap_or_else(|e| panic!("login on {node:?}: {e}"));
        drop(client);
    }
}

/// Without a reachable store a node starts anyway, says so once, and serves logins alone.
#[test]
fn a_node_starts_without_its_store() {
    let cl = ClusterLab::new();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[]));
    a.wait_for_log("unreachable", WAIT)
        .expect("the missing store is logged");
    let mut client = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::A.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    client
        .wait_up(WAIT)
        .expect("a login works without the store");
    drop(client);
    let text = a.log_text();
    assert_eq!(
        text.matches("unreachable").count(),
        1,
        "the store's absence is logged once:\n{text}"
    );
}
