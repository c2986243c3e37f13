//! occtl against a running server: `-j` output (protocol.md §7), live counters, disconnect,
//! terminate (the cookie dies), stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use rocserv_e2e::client::authenticate;
use rocserv_e2e::occtl::{json, occtl};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};
use serde_json::Value;

fn lab_server(lab: &Lab) -> (Server, PathBuf) {
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
    ]);
    (Server::start(&lab.srv, &conf), socket)
}

fn counter(user: &Value, key: &str) -> u64 {
    user[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing: {user}"))
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn show_users_counts_traffic_and_disconnect_ends_the_session() {
    let lab = Lab::new();
    let (server, socket) = lab_server(&lab);
    let mode = std::fs::metadata(&socket).expect("socket exists");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    assert_eq!(json(&socket, &["show", "users"]), serde_json::json!([]));

    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    let users = json(&socket, &["show", "users"]);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    let alice = &users[0];
    assert_eq!(alice["Username"], "alice");
    assert_eq!(alice["State"], "connected");
    assert_eq!(alice["IPv4"].as_str(), Some(up.address.as_str()));
    assert_eq!(alice["P-t-P IPv4"], lab.vpn_server_ip.to_string());
    assert_eq!(alice["Remote IP"], "10.231.0.2");
    assert!(alice["User-Agent"].as_str().unwrap().contains("AnyConnect"));
    let id = alice["ID"].as_u64().expect("numeric ID");
    assert!(
        server.workers().contains(&(id as u32)),
        "ID is the worker pid"
    );
    let (rx1, tx1) = (counter(alice, "RX"), counter(alice, "TX"));

    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "{out}");
    let again = json(&socket, &["show", "user", "alice"]);
    let (rx2, tx2) = (counter(&again[0], "RX"), counter(&again[0], "TX"));
    assert!(rx2 > rx1, "RX did not grow: {rx1} -> {rx2}");
    assert!(tx2 > tx1, "TX did not grow: {tx1} -> {tx2}");

    // Every command's JSON parses; a few facts on the way.
    let status = json(&socket, &["show", "status"]);
    assert_eq!(status["Status"], "online");
    assert_eq!(status["Active sessions"], 1);
    assert_eq!(status["Server PID"], server.pid());
    assert_eq!(json(&socket, &["show", "id", &id.to_string()])[0]["ID"], id);
    let sessions = json(&socket, &["show", "sessions", "all"]);
    assert_eq!(sessions[0]["Username"], "alice");
    assert_eq!(sessions[0]["in_use"], 1);
    let sid = sessions[0]["Session"].as_str().unwrap().to_owned();
    assert_eq!(alice["Session"].as_str(), Some(sid.as_str()));
    assert_eq!(json(&socket, &["show", "sessions", "valid"]), sessions);
    assert_eq!(json(&socket, &["show", "session", &sid])[0]["Session"], sid);
    json(&socket, &["show", "iroutes"]);
    json(&socket, &["show", "ip", "bans"]);
    json(&socket, &["show", "ip", "ban", "points"]);
    // ocserv's matching: panels send `show ip bans points` (= `show ip bans`); trailing words
    // are ignored; `show session all` lists (our session IDs never start with `all`).
    assert_eq!(
        json(&socket, &["show", "ip", "bans", "points"]),
        json(&socket, &["show", "ip", "bans"])
    );
    assert_eq!(json(&socket, &["show", "session", "all"]), sessions);
    assert_eq!(
        json(&socket, &["show", "status", "now"])["Status"],
        "online"
    );
    let text = occtl(&socket, &["show", "users"]);
    assert!(text.stdout.contains("alice"), "{}", text.stdout);
    // ocserv's table header, and its `since` column of 7 characters.
    assert!(
        text.stdout.starts_with(
            "      id     user    vhost             ip         vpn-ip device   since    dtls-cipher    status\n"
        ),
        "{}",
        text.stdout
    );
    let status = occtl(&socket, &["show", "status"]);
    assert!(
        status
            .stdout
            .contains("\nGeneral info:\n\tStatus: online\n"),
        "{}",
        status.stdout
    );
    assert!(occtl(&socket, &["sh", "users"]).code == Some(1));

    let missing = occtl(&socket, &["-j", "show", "user", "nobody"]);
    assert_eq!(missing.code, Some(2));
    assert_eq!(
        serde_json::from_str::<Value>(&missing.stdout).unwrap(),
        serde_json::json!([])
    );
    assert_eq!(
        occtl(&socket, &["disconnect", "user", "nobody"]).code,
        Some(1)
    );
    assert_eq!(occtl(&socket, &["frobnicate"]).code, Some(1));

    let kicked = occtl(&socket, &["disconnect", "user", "alice"]);
    assert_eq!(kicked.code, Some(0), "{}{}", kicked.stdout, kicked.stderr);
    assert!(kicked.stdout.contains("user 'alice' was disconnected"));
    let status = client
        .wait_exit(WAIT)
        .expect("client exits after disconnect");
    assert!(!status.success());
    assert!(
        client.output().contains("terminated"),
        "{}",
        client.output()
    );
    server
        .wait_for_log("session ended", WAIT)
        .expect("server logged the end");
    assert_eq!(json(&socket, &["show", "users"]), serde_json::json!([]));
    let status = json(&socket, &["show", "status"]);
    assert_eq!(status["Active sessions"], 0);
    assert_eq!(status["Total sessions"], 1);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn terminate_kills_the_cookie_and_stop_stops_the_server() {
    let lab = Lab::new();
    let (mut server, socket) = lab_server(&lab);
    let cookie = authenticate(&lab, "alice", "alice-pw").expect("authenticate");
    // Not connected yet: the session is known, unused.
    let sessions = json(&socket, &["show", "sessions", "all"]);
    assert_eq!(sessions[0]["in_use"], 0);
    assert_eq!(sessions[0]["session_is_open"], 0);

    let mut client = Client::start(&lab, &ClientOptions::cookie(&cookie));
    client.wait_up(WAIT).expect("tunnel with the cookie");
    let done = occtl(&socket, &["terminate", "user", "alice"]);
    assert_eq!(done.code, Some(0), "{}{}", done.stdout, done.stderr);
    client
        .wait_exit(WAIT)
        .expect("client exits after terminate");
    assert!(
        client.output().contains("terminated"),
        "{}",
        client.output()
    );
    assert_eq!(
        json(&socket, &["show", "sessions", "all"]),
        serde_json::json!([])
    );

    let mut again = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let status = again.wait_exit(WAIT).expect("refused client exits");
    assert!(!status.success());
    assert!(
        again.output().contains("Cookie was rejected"),
        "{}",
        again.output()
    );

    let stop = occtl(&socket, &["stop", "now"]);
    assert_eq!(stop.code, Some(0), "{}{}", stop.stdout, stop.stderr);
    let exit = server.wait_exit(WAIT).expect("server stops on `stop now`");
    assert!(exit.success(), "{exit}");
    assert!(!socket.exists(), "the socket file was left behind");
    let offline = occtl(&socket, &["-j", "show", "status"]);
    assert_eq!(offline.code, Some(1));
    let v: Value = serde_json::from_str(&offline.stdout).expect("offline status is JSON");
    assert_eq!(v["Status"], "offline");
}

/// ocserv keeps the cookie of a session `occtl disconnect` ended when `persistent-cookies` is
/// on (only `terminate` invalidates it): the client may come back with it.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn disconnect_keeps_the_cookie_with_persistent_cookies() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("persistent-cookies", "true"),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let cookie = authenticate(&lab, "alice", "alice-pw").expect("authenticate");
    let mut first = Client::start(&lab, &ClientOptions::cookie(&cookie));
    first.wait_up(WAIT).expect("tunnel with the cookie");
    let kicked = occtl(&socket, &["disconnect", "user", "alice"]);
    assert_eq!(kicked.code, Some(0), "{}{}", kicked.stdout, kicked.stderr);
    first
        .wait_exit(WAIT)
        .expect("client exits after disconnect");
    server
        .wait_for_log("session ended", WAIT)
        .expect("server logged the end");
    let mut second = Client::start(&lab, &ClientOptions::cookie(&cookie));
    second
        .wait_up(WAIT)
        .expect("the cookie still opens a tunnel after occtl disconnect");
}
