//! One view of the cluster (doc/cluster.md "One view"): occtl on node B lists the user
//! connected on node A with `Node`, finds it by `ID@NODE`, and `disconnect` on B ends the
//! tunnel on A; a single node prints what it printed before.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use rocserv_e2e::client::{Client, ClientOptions};
use rocserv_e2e::cluster::{ClusterLab, Node};
use rocserv_e2e::occtl::{json, occtl};
use rocserv_e2e::server::Server;
use rocserv_e2e::{Lab, WAIT};
use serde_json::Value;

/// `occtl -j show users` on `socket` until `pred` holds for its rows (bounded by [`WAIT`]).
fn users_until(socket: &std::path::Path, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let users = json(socket, &["show", "users"]);
        let rows = users.as_array().cloned().unwrap_or_default();
        if pred(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "occtl show users: {rows:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and redis-server: run by tests/run-all.sh"]
fn occtl_on_b_lists_and_disconnects_the_user_on_a() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[]));
    let _b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &[]));
    let (sock_a, sock_b) = (cl.occtl_socket(Node::A), cl.occtl_socket(Node::B));

    let mut client = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::A.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    let up = client.wait_up(WAIT).expect("tunnel up on A");

    // A lists its own row with its node name.
    let on_a = users_until(&sock_a, |rows| rows.len() == 1);
    assert_eq!(on_a[0]["Node"], "node-a");
    let id = on_a[0]["ID"].as_u64().expect("numeric ID");

    // B lists A's row: ocserv's keys and values, plus Node.
    let on_b = users_until(&sock_b, |rows| {
        rows.iter().any(|r| r["Username"] == "alice")
    });
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    let row = &on_b[0];
    assert_eq!(row["Node"], "node-a");
    assert_eq!(row["ID"].as_u64(), Some(id));
    assert_eq!(row["State"], "connected");
    assert_eq!(row["IPv4"].as_str(), Some(up.address.as_str()));
    for key in [
        "Groupname",
        "Device",
        "Remote IP",
        "User-Agent",
        "Session",
        "RX",
        "TX",
    ] {
        assert!(row.get(key).is_some(), "{key} missing: {row}");
    }

    // The text table gets a node column on a cluster.
    let table = occtl(&sock_b, &["show", "users"]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let header = table.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(header.trim_end().ends_with("node"), "{}", table.stdout);
    assert!(table.stdout.contains("node-a"), "{}", table.stdout);

    // A remote connection is addressed as ID@NODE; the bare ID is B's own numbering.
    let by_id = json(&sock_b, &["show", "id", &format!("{id}@node-a")]);
    assert_eq!(by_id.as_array().map(Vec::len), Some(1), "{by_id}");
    assert_eq!(by_id[0]["Username"], "alice");
    let by_name = json(&sock_b, &["show", "user", "alice"]);
    assert_eq!(by_name[0]["Node"], "node-a");

    // Sessions and status on B see the cluster.
    let deadline = Instant::now() + WAIT;
    loop {
        let sessions = json(&sock_b, &["show", "sessions", "all"]);
        let found = sessions.as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["Username"] == "alice" && s["Node"] == "node-a")
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "show sessions all on B: {sessions}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = json(&sock_b, &["show", "status"]);
    assert_eq!(status["Node"], "node-b", "{status}");
    assert_eq!(status["Cluster store"], "up", "{status}");
    let nodes = status["Cluster nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        nodes.contains(&"node-a".into()) && nodes.contains(&"node-b".into()),
        "{status}"
    );

    // disconnect on B ends the tunnel on A.
    let kicked = occtl(&sock_b, &["disconnect", "user", "alice"]);
    assert_eq!(kicked.code, Some(0), "{}{}", kicked.stdout, kicked.stderr);
    assert!(
        kicked.stdout.contains("user 'alice' was disconnected")
            && kicked.stdout.contains("sent to cluster node(s): node-a"),
        "{}",
        kicked.stdout
    );
    let status = client
        .wait_exit(WAIT)
        .expect("the client on A is disconnected");
    assert!(!status.success());
    a.wait_for_log("session ended", WAIT)
        .expect("A logged the end");
    users_until(&sock_b, <[Value]>::is_empty);
    users_until(&sock_a, <[Value]>::is_empty);
    // Nothing left anywhere: B says so as ocserv would.
    assert_eq!(
        occtl(&sock_b, &["disconnect", "user", "alice"]).code,
        Some(1)
    );
}

/// `disconnect id ID@NODE` reaches that node only.
#[test]
#[ignore = "needs root, network namespaces, openconnect and redis-server: run by tests/run-all.sh"]
fn disconnect_id_at_node_reaches_that_node() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let _a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[]));
    let _b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &[]));
    let (sock_a, sock_b) = (cl.occtl_socket(Node::A), cl.occtl_socket(Node::B));
    let mut client = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::A.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    client.wait_up(WAIT).expect("tunnel up on A");
    let id = users_until(&sock_a, |rows| rows.len() == 1)[0]["ID"]
        .as_u64()
        .unwrap();
    users_until(&sock_b, |rows| rows.len() == 1);
    // The bare ID is B's: nothing there.
    assert_eq!(
        occtl(&sock_b, &["disconnect", "id", &id.to_string()]).code,
        Some(1)
    );
    let kicked = occtl(&sock_b, &["disconnect", "id", &format!("{id}@node-a")]);
    assert_eq!(kicked.code, Some(0), "{}{}", kicked.stdout, kicked.stderr);
    assert!(kicked.stdout.contains("node-a"), "{}", kicked.stdout);
    client
        .wait_exit(WAIT)
        .expect("the client on A is disconnected");
}

/// Without `cluster-store` the rows carry no `Node` and the table is ocserv's.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_single_node_prints_no_node() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let rows = users_until(&socket, |rows| rows.len() == 1);
    assert!(rows[0].get("Node").is_none(), "{}", rows[0]);
    let sessions = json(&socket, &["show", "sessions", "all"]);
    assert!(sessions[0].get("Node").is_none(), "{sessions}");
    let status = json(&socket, &["show", "status"]);
    assert!(status.get("Cluster store").is_none(), "{status}");
    let table = occtl(&socket, &["show", "users"]);
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(header.trim_end().ends_with("status"), "{}", table.stdout);
    let kicked = occtl(&socket, &["disconnect", "user", "alice"]);
    assert_eq!(kicked.stdout, "user 'alice' was disconnected\n");
}

/// The sec-mod process of `server` (named rocserv-sm).
fn secmod_pid(server: &Server) -> u32 {
    server
        .processes()
        .into_iter()
        .find(|p| rocserv_e2e::procfs::comm(*p).as_deref() == Some("rocserv-sm"))
        .expect("sec-mod runs")
}

/// Any store writer can fill the store with node and view keys: answers built from them are
/// capped, and sec-mod never exits over one (its session table would go with it).
#[test]
#[ignore = "needs root, network namespaces, openconnect and redis-server: run by tests/run-all.sh"]
fn store_junk_does_not_end_sec_mod() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[]));
    let sock = cl.occtl_socket(Node::A);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = json(&sock, &["show", "status"]);
        let listed = status["Cluster nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if listed.contains(&"node-a".into()) {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let secmod = secmod_pid(&a);

    // 2000 node keys with 64-byte names (about 130 KiB of names: twice an IPC message), 100
    // view keys of garbage and one of 20 MiB.
    let (ok, out) = cl.redis_cli(&[
        "EVAL",
        "for i = 1, 2000 do \
           redis.call('SET', 'rocserv:node:' .. string.rep('x', 58) .. string.format('%06d', i), \
             '1', 'PX', 120000) \
         end \
         for i = 1, 100 do redis.call('SET', 'rocserv:view:v1:junk' .. i, 'garbage', 'PX', 120000) end \
         redis.call('SET', 'rocserv:view:v1:big', string.rep('x', 20 * 1024 * 1024), 'PX', 120000) \
         return 1",
        "0",
    ]);
    assert!(ok, "{out}");

    let status = json(&sock, &["show", "status"]);
    assert_eq!(status["Cluster store"], "up", "{status}");
    let listed = status["Cluster nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !listed.is_empty() && listed.len() <= 256,
        "capped: {} nodes",
        listed.len()
    );
    let users = occtl(&sock, &["show", "users"]);
    assert_eq!(users.code, Some(0), "{}", users.stderr);
    assert_eq!(secmod_pid(&a), secmod, "sec-mod was restarted");
    assert!(rocserv_e2e::procfs::alive(secmod));
}
