//! Sessions and cookies across the cluster (doc/cluster.md "Sessions and cookies"): two nodes,
//! one store the test starts, the real openconnect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::client::{authenticate_at, Client, ClientOptions};
use rocserv_e2e::cluster::{eventually, ClusterLab, Node};
use rocserv_e2e::server::Server;
use rocserv_e2e::WAIT;

/// Many logins from the one client address: no bans in these tests.
const NO_BANS: (&str, &str) = ("max-ban-score", "0");

fn two_nodes(cl: &mut ClusterLab, overrides: &[(&str, &str)]) -> (Server, Server) {
    cl.start_store();
    cl.start_nodes(overrides)
}

fn with_cookie(cl: &ClusterLab, node: Node, cookie: &str) -> Client {
    Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(node.url()),
            ..ClientOptions::cookie(cookie)
        },
    )
}

/// Poll the store until `pred` holds on `KEYS pattern`'s answer.
fn wait_keys(cl: &ClusterLab, pattern: &str, pred: impl Fn(&str) -> bool, what: &str) -> String {
    let mut keys = String::new();
    eventually(&format!("{what} (KEYS {pattern})"), || {
        keys = cl.redis_cli(&["KEYS", pattern]).1;
        pred(&keys)
    });
    keys
}

/// The session id of the login line ("... logged in via ... (group 'G', session N)").
fn login_sid(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.contains("logged in via"))
        .find_map(|l| l.rsplit(", session ").next())
        .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
}

/// A cookie issued on A opens a tunnel on B with no password and the same session id; B's
/// tunnel takes the session over and A's tunnel ends. The store holds the cookie's hash only.
#[test]
fn a_cookie_of_node_a_works_on_node_b_and_takes_the_session_over() {
    let mut cl = ClusterLab::new();
    let (a, b) = two_nodes(&mut cl, &[NO_BANS]);
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let line = a
        .wait_for_log("logged in via", WAIT)
        .expect("A logs the login");
    let sid = login_sid(&line).expect("A logs the session id");
    assert!(!sid.is_empty(), "no session id in A's log");

    // No cookie in the store, only its hash; the record is there before the cookie is out.
    let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:*"]);
    assert!(!keys.contains(&cookie), "the cookie is a key name: {keys}");
    let record = keys
        .split(['"', ' ', '\n'])
        .find(|k| k.starts_with("rocserv:session:"))
        .unwrap_or_else(|| panic!("no session record: {keys}"))
        .to_owned();
    let (_, value) = cl.redis_cli(&["GET", &record]);
    assert!(
        !value.contains(&cookie),
        "the cookie is in the record: {value}"
    );

    let mut on_a = with_cookie(&cl, Node::A, &cookie);
    on_a.wait_up(WAIT).expect("tunnel on A with the cookie");
    wait_keys(
        &cl,
        "rocserv:claim:*",
        |k| k.contains("rocserv:"),
        "A claims the session",
    );
    let before_a = a.log_len();
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT)
        .expect("tunnel on B with A's cookie, no password");
    assert!(
        !on_b.output().contains("Password"),
        "B asked for a password:\n{}",
        on_b.output()
    );
    b.wait_for_log(
        &format!("session {sid} of 'alice' taken from the cluster store"),
        WAIT,
    )
    .expect("B imported the session with A's id");
    b.wait_for_log("taken over from node node-a", WAIT)
        .expect("B took the claim from A");
    a.wait_for_log_after(before_a, "taken over by another node", WAIT)
        .expect("A heard of the takeover");
    a.wait_for_log_after(before_a, "session ended", WAIT)
        .expect("A's tunnel ended");
    // The old client would reconnect and take the session back: it is done here.
    on_a.signal(Signal::SIGKILL);
    let _ = on_a.wait_exit(WAIT);
    // The record survives the old tunnel's end; B holds the claim.
    let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:session:*"]);
    assert!(keys.contains(&record), "the record went away: {keys}");
    let claim = format!("rocserv:claim:{sid}");
    let (_, owner) = cl.redis_cli(&["GET", &claim]);
    assert!(owner.contains("node-b/"), "claim {claim} = {owner}");
    on_b.signal(Signal::SIGKILL);
    let _ = on_b.wait_exit(WAIT);
}

/// A cookie the store never saw, and one deleted by a user disconnect on A (no
/// persistent-cookies), are refused on B.
#[test]
fn unknown_and_deleted_cookies_are_refused_on_the_other_node() {
    let mut cl = ClusterLab::new();
    let (a, b) = two_nodes(&mut cl, &[NO_BANS]);
    let mut never = with_cookie(&cl, Node::B, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert!(never.wait_up(WAIT).is_err(), "a cookie never issued opened");
    let _ = never.wait_exit(WAIT);

    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let mut on_a = with_cookie(&cl, Node::A, &cookie);
    on_a.wait_up(WAIT).expect("tunnel on A");
    on_a.signal(Signal::SIGINT);
    on_a.wait_exit(WAIT).expect("client exits on SIGINT");
    a.wait_for_log("user disconnect", WAIT)
        .expect("A saw the user disconnect");
    wait_keys(
        &cl,
        "rocserv:session:*",
        |k| !k.contains("rocserv:"),
        "the record is deleted",
    );
    let before = b.log_len();
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    assert!(on_b.wait_up(WAIT).is_err(), "a deleted cookie opened on B");
    let _ = on_b.wait_exit(WAIT);
    b.wait_for_log_after(before, "cookie refused", WAIT)
        .expect("B refused the cookie");
}

/// session-timeout counts from the login on A, not from the CONNECT on B.
#[test]
fn session_timeout_counts_from_the_login_on_another_node() {
    let mut cl = ClusterLab::new();
    let (_a, b) = two_nodes(&mut cl, &[NO_BANS, ("session-timeout", "10")]);
    let t0 = Instant::now();
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    std::thread::sleep((t0 + Duration::from_secs(5)).saturating_duration_since(Instant::now()));
    let before = b.log_len();
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT).expect("tunnel on B");
    b.wait_for_log_after(before, "session ended", Duration::from_secs(20))
        .expect("B ends the tunnel at the session timeout");
    let ended = t0.elapsed();
    on_b.signal(Signal::SIGKILL);
    let _ = on_b.wait_exit(WAIT);
    assert!(
        ended >= Duration::from_secs(9) && ended < Duration::from_secs(14),
        "ended {ended:?} after the login on A, not ~10 s"
    );
}

/// max-same-clients = 1 counts the user's tunnel on A when a second session connects on B.
#[test]
fn max_same_clients_counts_across_nodes() {
    let mut cl = ClusterLab::new();
    let (_a, b) = two_nodes(&mut cl, &[NO_BANS, ("max-same-clients", "1")]);
    let mut on_a = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::A.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    on_a.wait_up(WAIT).expect("alice on A");
    wait_keys(
        &cl,
        "rocserv:live:*",
        |k| k.contains("rocserv:"),
        "A counts alice's tunnel",
    );
    let mut on_b = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::B.url()),
            ..ClientOptions::password("alice", "alice-pw")
        },
    );
    assert!(on_b.wait_up(WAIT).is_err(), "a second session opened on B");
    let _ = on_b.wait_exit(WAIT);
    b.wait_for_log("max-same-clients (1) reached on the cluster", WAIT)
        .expect("B refused by the cluster's count");
    // Another user is not affected.
    let mut bob = Client::start(
        &cl.lab,
        &ClientOptions {
            url: Some(Node::B.url()),
            ..ClientOptions::password("bob", "bob-pw")
        },
    );
    bob.wait_up(WAIT).expect("bob on B");
    drop(bob);
    on_a.signal(Signal::SIGKILL);
    let _ = on_a.wait_exit(WAIT);
}

/// kill -9 of node A with a live tunnel: the cookie opens on B at once (the dead node's claim
/// does not hold it back until its TTL).
#[test]
fn after_kill_9_of_a_node_the_cookie_opens_on_the_other_at_once() {
    let mut cl = ClusterLab::new();
    let (a, b) = two_nodes(&mut cl, &[NO_BANS]);
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let mut on_a = with_cookie(&cl, Node::A, &cookie);
    on_a.wait_up(WAIT).expect("tunnel on A");
    wait_keys(
        &cl,
        "rocserv:claim:*",
        |k| k.contains("rocserv:"),
        "A claims the session",
    );
    kill(Pid::from_raw(a.pid() as i32), Signal::SIGKILL).expect("kill -9 node A");
    on_a.signal(Signal::SIGKILL);
    let _ = on_a.wait_exit(WAIT);
    let t = Instant::now();
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT).expect("the cookie opens on B");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "B took {:?}: waited for the dead node's claim?",
        t.elapsed()
    );
    b.wait_for_log("taken over from node node-a", WAIT)
        .expect("B took the dead node's claim");
    on_b.signal(Signal::SIGKILL);
    let _ = on_b.wait_exit(WAIT);
}

/// A node shut down gracefully releases its claims and leaves its sessions in the store: the
/// cookie opens on the other node.
#[test]
fn a_graceful_shutdown_leaves_sessions_resumable() {
    let mut cl = ClusterLab::new();
    let (mut a, _b) = two_nodes(&mut cl, &[NO_BANS]);
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let mut on_a = with_cookie(&cl, Node::A, &cookie);
    on_a.wait_up(WAIT).expect("tunnel on A");
    wait_keys(
        &cl,
        "rocserv:claim:*",
        |k| k.contains("rocserv:"),
        "A claims the session",
    );
    kill(Pid::from_raw(a.pid() as i32), Signal::SIGTERM).expect("SIGTERM node A");
    a.wait_exit(WAIT).expect("A exits");
    on_a.signal(Signal::SIGKILL);
    let _ = on_a.wait_exit(WAIT);
    wait_keys(
        &cl,
        "rocserv:claim:*",
        |k| !k.contains("rocserv:"),
        "A released its claim",
    );
    let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:session:*"]);
    assert!(
        keys.contains("rocserv:session:"),
        "the session left the store: {keys}"
    );
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT).expect("the cookie opens on B");
    on_b.signal(Signal::SIGKILL);
    let _ = on_b.wait_exit(WAIT);
}

/// A session opened on A, then on B, and ended there by a user disconnect is dead on A too
/// (A still had its own idle copy: B's delete reaches it over the bus).
#[test]
fn a_session_deleted_on_b_is_dead_on_a_too() {
    let mut cl = ClusterLab::new();
    let (a, b) = two_nodes(&mut cl, &[NO_BANS]);
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let mut on_a = with_cookie(&cl, Node::A, &cookie);
    on_a.wait_up(WAIT).expect("tunnel on A");
    // Leave A without a BYE: the cookie stays valid there.
    let before = a.log_len();
    on_a.signal(Signal::SIGKILL);
    let _ = on_a.wait_exit(WAIT);
    a.wait_for_log_after(before, "cookie kept for reconnects", WAIT)
        .expect("A keeps the session");
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT).expect("tunnel on B");
    let before_a = a.log_len();
    on_b.signal(Signal::SIGINT);
    on_b.wait_exit(WAIT).expect("client exits on SIGINT");
    b.wait_for_log("user disconnect", WAIT)
        .expect("B saw the user disconnect");
    a.wait_for_log_after(before_a, "deleted on another node", WAIT)
        .expect("A dropped its copy");
    let mut again = with_cookie(&cl, Node::A, &cookie);
    assert!(
        again.wait_up(WAIT).is_err(),
        "the deleted cookie opened on A"
    );
    let _ = again.wait_exit(WAIT);
}

/// A session issued while the store was down is local to its node, and written to the store
/// when it is back (resync): then its cookie opens on the other node.
#[test]
fn a_session_issued_while_the_store_is_down_is_written_on_resync() {
    let mut cl = ClusterLab::new();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[NO_BANS]));
    a.wait_for_log("unreachable", WAIT)
        .expect("A starts without its store");
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw")
        .expect("a login works without the store");
    cl.start_store();
    wait_keys(
        &cl,
        "rocserv:session:*",
        |k| k.contains("rocserv:session:"),
        "A writes its session when the store is back",
    );
    let b = Server::start(cl.ns(Node::B), &cl.config(Node::B, &[NO_BANS]));
    b.wait_for_log("cluster store redis://", WAIT)
        .expect("B reaches the store");
    let mut on_b = with_cookie(&cl, Node::B, &cookie);
    on_b.wait_up(WAIT).expect("the cookie opens on B");
    on_b.signal(Signal::SIGKILL);
    let _ = on_b.wait_exit(WAIT);
}

/// The record key of the one session in the store, and its tombstone key.
fn record_and_tombstone(cl: &ClusterLab) -> (String, String) {
    let keys = wait_keys(
        cl,
        "rocserv:session:*",
        |k| k.contains("rocserv:session:"),
        "the session is in the store",
    );
    let record = keys
        .split(['"', ' ', '\n'])
        .find(|k| k.starts_with("rocserv:session:"))
        .unwrap()
        .to_owned();
    let gone = record.replace("rocserv:session:", "rocserv:gone:");
    (record, gone)
}

/// A session deleted on another node while this one missed it (no bus message; cut off from
/// the store) stays deleted: A's CONNECT checks the tombstone the delete left, and A's resync
/// when the store comes back neither writes the record back nor keeps A's copy. The delete is
/// what node B's release script writes (record deleted, `rocserv:gone:HEX` set), done here
/// with redis-cli so that A surely missed it.
#[test]
fn a_session_deleted_elsewhere_does_not_come_back() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[NO_BANS]));
    a.wait_for_log("cluster store redis://", WAIT)
        .expect("A reaches the store");

    // 1. A knows the cookie (its own idle session); another node deleted it.
    let first = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let (record, gone) = record_and_tombstone(&cl);
    cl.redis_cli(&["DEL", &record]);
    cl.redis_cli(&["SET", &gone, "1", "PX", "600000"]);
    let before = a.log_len();
    let mut on_a = with_cookie(&cl, Node::A, &first);
    assert!(
        on_a.wait_up(WAIT).is_err(),
        "a cookie deleted elsewhere opened on A"
    );
    let _ = on_a.wait_exit(WAIT);
    a.wait_for_log_after(before, "cookie refused", WAIT)
        .expect("A refused the deleted cookie");

    // 2. The same while A is cut off from the store, then its resync.
    let second = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    let (record, gone) = record_and_tombstone(&cl);
    cl.redis_cli(&["DEL", &record]);
    cl.redis_cli(&["SET", &gone, "1", "PX", "600000"]);
    let before = a.log_len();
    cl.pause_store();
    a.wait_for_log_after(before, "unreachable", WAIT)
        .expect("A finds the store gone");
    let before = a.log_len();
    cl.resume_store();
    a.wait_for_log_after(before, "state written again", WAIT)
        .expect("A resyncs");
    let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:session:*"]);
    assert!(
        !keys.contains("rocserv:session:"),
        "resync brought a deleted session back: {keys}"
    );
    let before = a.log_len();
    let mut on_a = with_cookie(&cl, Node::A, &second);
    assert!(
        on_a.wait_up(WAIT).is_err(),
        "a cookie deleted elsewhere opened on A after resync"
    );
    let _ = on_a.wait_exit(WAIT);
    a.wait_for_log_after(before, "cookie refused", WAIT)
        .expect("A refused the deleted cookie");
}

/// Very short tunnels leave no claim behind: each claim is gone at once, not renewed for ever.
#[test]
fn short_tunnels_leave_no_claim() {
    let mut cl = ClusterLab::new();
    cl.start_store();
    let a = Server::start(cl.ns(Node::A), &cl.config(Node::A, &[NO_BANS]));
    a.wait_for_log("cluster store redis://", WAIT)
        .expect("A reaches the store");
    let cookie = authenticate_at(&cl.lab, &Node::A.url(), "alice", "alice-pw").expect("login");
    for _ in 0..3 {
        let mut c = with_cookie(&cl, Node::A, &cookie);
        c.wait_up(WAIT).expect("tunnel on A");
        c.signal(Signal::SIGKILL);
        let _ = c.wait_exit(WAIT);
    }
    // Well within one renewal period of the claim's TTL: released, not left to expire.
    let t = Instant::now();
    wait_keys(
        &cl,
        "rocserv:claim:*",
        |k| !k.contains("rocserv:"),
        "no claim is left",
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(6));
    let (_, keys) = cl.redis_cli(&["KEYS", "rocserv:claim:*"]);
    assert!(
        !keys.contains("rocserv:"),
        "a renewal took a claim again: {keys}"
    );
}
