//! The store link (doc/cluster.md "Failure"): a node outlives its store, logs each change
//! once, finds the store back by itself, is not slowed down by a frozen one, and speaks TLS
//! and ACL/password authentication to it; bad credentials or CA leave it working alone with
//! one clear line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;
use std::time::{Duration, Instant};

use rocserv_e2e::client::{authenticate_at, Client, ClientOptions};
use rocserv_e2e::cluster::{ClusterLab, Node};
use rocserv_e2e::server::Server;
use rocserv_e2e::{bin, WAIT};

const REACHABLE: &str = "reachable: sessions, bans and leases are shared";
const UNREACHABLE: &str = "unreachable (";

fn tunnel(cl: &ClusterLab) -> Client {
    let mut client = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::A.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    client.wait_up(WAIT).expect("tunnel on node A");
    client
}

fn pings(cl: &ClusterLab, when: &str) {
    let (ok, out) = cl.lab.ping_through_tunnel(5);
    assert!(ok, "pings through the tunnel {when}:\n{out}");
}

const METRICS: &str = "127.0.0.1:9617";

/// Scrape node A's metrics until `line` is one of its lines (main learns the store's state
/// from sec-mod on a task of its own), bounded by [`WAIT`].
fn metrics_show(cl: &ClusterLab, a: &Server, line: &str) {
    let url = format!("http://{METRICS}/metrics");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, doc) = cl
            .ns(Node::A)
            .exec(&["curl", "-sS", "--max-time", "5", &url]);
        if doc.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {line:?} in:\n{doc}\nserver log:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `--authenticate` login on node A; its duration.
fn timed_login(cl: &ClusterLab) -> Duration {
    let started = Instant::now();
    authenticate_at(&cl.lab, &Node::A.url(), "bob", "bob-pw").expect("login on node A");
    started.elapsed()
}

/// The store dies and comes back: the tunnel carries pings throughout, logins work alone,
/// each change is logged once, and the heartbeat key comes back with the store.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn the_store_goes_and_comes_back() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[("max-ban-score", "0"), ("metrics-listen", METRICS)],
        ),
    );
    a.wait_for_log(REACHABLE, WAIT)
        .expect("node A reaches the store");
    cl.wait_heartbeat(Node::A, WAIT).unwrap();
    metrics_show(&cl, &a, r#"rocserv_cluster_info{node="node-a"} 1"#);
    metrics_show(&cl, &a, "rocserv_cluster_store_up 1");
    cl.wait_bus_subscribers(1);
    let _client = tunnel(&cl);
    pings(&cl, "before the store stops");

    let mark = a.log_len();
    cl.stop_store();
    a.wait_for_log_after(mark, UNREACHABLE, WAIT)
        .expect("the lost store is logged");
    pings(&cl, "while the store is down");
    metrics_show(&cl, &a, "rocserv_cluster_store_up 0");
    for _ in 0..2 {
        timed_login(&cl);
    }
    pings(&cl, "after logins without the store");

    let mark = a.log_len();
    cl.start_store();
    a.wait_for_log_after(mark, REACHABLE, WAIT)
        .expect("the store's return is logged");
    cl.wait_heartbeat(Node::A, WAIT)
        .expect("the heartbeat key reappears");
    metrics_show(&cl, &a, "rocserv_cluster_store_up 1");
    cl.wait_bus_subscribers(1);
    a.wait_for_log_after(mark, "state written again", WAIT)
        .expect("the node resynchronises");
    pings(&cl, "after the store is back");
    timed_login(&cl);

    let text = a.log_text();
    assert_eq!(
        text.matches(UNREACHABLE).count(),
        1,
        "the store's absence is logged once:\n{text}"
    );
    assert_eq!(
        text.matches(REACHABLE).count(),
        2,
        "reached, then back once:\n{text}"
    );
}

/// A frozen store (SIGSTOP: the connection stays open, nothing answers) costs a login no more
/// than a bound, the tunnel keeps going, and the node finds the store back after SIGCONT.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn a_frozen_store_does_not_stall_logins() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(Node::A, &[("max-ban-score", "0")]),
    );
    a.wait_for_log(REACHABLE, WAIT)
        .expect("node A reaches the store");
    let _client = tunnel(&cl);
    let baseline = timed_login(&cl);

    let mark = a.log_len();
    cl.pause_store();
    a.wait_for_log_after(mark, UNREACHABLE, WAIT)
        .expect("the frozen store is noticed (heartbeat bound)");
    pings(&cl, "while the store is frozen");
    for _ in 0..3 {
        let took = timed_login(&cl);
        // Below one store command bound (1 s) over the baseline: no login waits for the store.
        assert!(
            took < baseline + Duration::from_millis(900),
            "a login while the store is frozen took {took:?} (baseline {baseline:?})"
        );
    }

    let mark = a.log_len();
    cl.resume_store();
    a.wait_for_log_after(mark, REACHABLE, WAIT)
        .expect("the thawed store is found back");
    cl.wait_heartbeat(Node::A, WAIT).unwrap();
    cl.wait_bus_subscribers(1);
    pings(&cl, "after the store thaws");
}

/// `rediss://` with `cluster-store-ca-cert` and an ACL user (`USER:PASSWORD`).
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn tls_store_with_an_acl_user() {
    let mut cl = ClusterLab::new();
    let (ca, mut server) = cl.store_tls();
    server.extend(
        [
            "--user",
            "default",
            "off",
            "--user",
            "rocserv",
            "on",
            ">s3cret-pw",
            "~rocserv:*",
            "&*",
            "+@all",
        ]
        .map(str::to_owned),
    );
    let cli = [
        "--user",
        "rocserv",
        "--pass",
        "s3cret-pw",
        "--no-auth-warning",
    ]
    .map(str::to_owned);
    cl.start_store_with(&server, &cli);
    let auth = cl.lab.dir.join("store-auth");
    std::fs::write(&auth, "rocserv:s3cret-pw\n").unwrap();
    let url = cl.store_tls_url(Node::A);
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[
                ("cluster-store", &url),
                ("cluster-store-ca-cert", &ca.display().to_string()),
                ("cluster-store-auth-file", &auth.display().to_string()),
            ],
        ),
    );
    a.wait_for_log(REACHABLE, WAIT)
        .expect("node A reaches the TLS store as its ACL user");
    cl.wait_heartbeat(Node::A, WAIT).unwrap();
    assert!(url.starts_with("rediss://"));
    assert!(!a.log_text().contains(UNREACHABLE), "{}", a.log_text());
}

/// A plain `requirepass` password; then a wrong password and a wrong CA: the node starts, logs
/// ONE line naming the option to check, and serves logins alone.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn passwords_right_and_wrong_and_a_wrong_ca() {
    let mut cl = ClusterLab::new();
    let (_ca, mut server) = cl.store_tls();
    server.extend(["--requirepass", "good-pw"].map(str::to_owned));
    let cli = ["-a", "good-pw", "--no-auth-warning"].map(str::to_owned);
    cl.start_store_with(&server, &cli);
    let good = cl.lab.dir.join("store-good");
    std::fs::write(&good, "good-pw\n").unwrap();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[("cluster-store-auth-file", &good.display().to_string())],
        ),
    );
    a.wait_for_log(REACHABLE, WAIT)
        .expect("node A reaches the store with its password");
    cl.wait_heartbeat(Node::A, WAIT).unwrap();
    drop(a);

    let bad = cl.lab.dir.join("store-bad");
    std::fs::write(&bad, "wrong-pw\n").unwrap();
    let bad_name = bad.display().to_string();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[
                ("cluster-store-auth-file", &bad_name),
                ("max-ban-score", "0"),
            ],
        ),
    );
    let line = a
        .wait_for_log(UNREACHABLE, WAIT)
        .expect("the refused password is logged");
    assert!(
        line.contains("cluster-store-auth-file") && line.contains(&bad_name),
        "the line names the option and its file: {line}"
    );
    timed_login(&cl);
    // A few heartbeats later, still one line.
    std::thread::sleep(Duration::from_secs(5));
    let text = a.log_text();
    assert_eq!(text.matches(UNREACHABLE).count(), 1, "{text}");
    drop(a);

    // A CA that did not sign the store's certificate.
    let other = rocserv_e2e::pki::ClientCa::new(&cl.lab.dir, "other");
    let url = cl.store_tls_url(Node::A);
    let ca_name = other.cert.display().to_string();
    let a = Server::start(
        cl.ns(Node::A),
        &cl.config(
            Node::A,
            &[
                ("cluster-store", &url),
                ("cluster-store-ca-cert", &ca_name),
                ("cluster-store-auth-file", &good.display().to_string()),
                ("max-ban-score", "0"),
            ],
        ),
    );
    let line = a
        .wait_for_log(UNREACHABLE, WAIT)
        .expect("the unverifiable store is logged");
    assert!(
        line.contains("cluster-store-ca-cert") && line.contains(&ca_name),
        "the line names the option and its file: {line}"
    );
    timed_login(&cl);
}

/// `rocserv -t` names an unreadable auth or CA file.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn the_check_names_unreadable_store_files() {
    let cl = ClusterLab::new();
    let missing = cl.lab.dir.join("no-such-auth");
    let conf = cl.config(
        Node::A,
        &[("cluster-store-auth-file", &missing.display().to_string())],
    );
    let out = Command::new(bin("rocserv"))
        .args(["-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cluster-store-auth-file") && text.contains("no-such-auth"),
        "{text}"
    );

    let missing = cl.lab.dir.join("no-such-ca");
    let url = cl.store_tls_url(Node::A);
    let conf = cl.config(
        Node::A,
        &[
            ("cluster-store", &url),
            ("cluster-store-ca-cert", &missing.display().to_string()),
        ],
    );
    let out = Command::new(bin("rocserv"))
        .args(["-t", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cluster-store-ca-cert") && text.contains("no-such-ca"),
        "{text}"
    );
}
