//! Site-to-site and addresses with the real openconnect: a network behind one client
//! (`iroute` in its per-user file) is reachable from the server and, with `expose-iroutes`,
//! from another client; `route-add-cmd` / `route-del-cmd` run when the tunnel starts and ends,
//! also after a `kill -9` of the worker; `explicit-ipv4` gives a fixed address and refuses a
//! second login that would share it; a group's own `ipv4-network` is a pool of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::netns::{self, Netns};
use rocserv_e2e::occtl::json;
use rocserv_e2e::{lab, unique_tag, Client, ClientOptions, Lab, Server, WAIT};

/// The network behind alice: her side of it, and a host on it (a namespace of its own).
const SITE_NET: &str = "10.77.5.0/24";
const SITE_GW: Ipv4Addr = Ipv4Addr::new(10, 77, 5, 1);
const SITE_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 5, 2);
/// A second client namespace for bob, joined to the server by a link of its own.
const SRV_IP2: Ipv4Addr = Ipv4Addr::new(10, 232, 0, 1);
const CLI2_IP: Ipv4Addr = Ipv4Addr::new(10, 232, 0, 2);

/// `route-add-cmd` / `route-del-cmd` stand-in: logs its arguments, then does what the default
/// would (`ip route add|delete NET dev DEV`).
const ROUTE_SCRIPT: &str = r#"#!/bin/sh
echo "$@" >> "${0%/*}/routes.log"
exec ip route "$1" "$2" dev "$3"
"#;

fn sysctl(ns: &Netns, key: &str, value: &str) {
    ns.exec_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
}

/// Forwarding on, reverse-path filtering off (a new namespace may inherit strict mode).
fn router(ns: &Netns) {
    sysctl(ns, "net.ipv4.ip_forward", "1");
    sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
    sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
}

/// Write per-user (or per-group) files into a new directory under the lab's; its path ends in
/// `/` as ocserv's sample writes it.
fn policy_dir(lab: &Lab, name: &str, files: &[(&str, &str)]) -> String {
    let dir = lab.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    format!("{}/", dir.display())
}

fn route_script(lab: &Lab) -> PathBuf {
    let path = lab.dir.join("route.sh");
    std::fs::write(&path, ROUTE_SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn routes_log(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("routes.log")).unwrap_or_default()
}

/// Poll (bounded) until `check` holds; the route runner logs nothing the test could wait on
/// at the default level, and the kernel's routing table has no readiness signal either.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn server_route(lab: &Lab) -> String {
    lab.srv.exec_ok(&["ip", "-o", "route", "show", SITE_NET])
}

/// The occtl ID (worker pid) of `user`'s session.
fn worker_of(socket: &Path, user: &str) -> u32 {
    let users = json(socket, &["show", "users"]);
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["Username"] == user)
        .and_then(|u| u["ID"].as_u64())
        .unwrap_or_else(|| panic!("no session of {user} in {users}")) as u32
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn an_iroute_is_reachable_from_the_server_and_exposed_clients_and_removed_after_kill_9() {
    let lab = Lab::new();
    router(&lab.srv);
    router(&lab.cli);
    // The site behind alice: a namespace linked to alice's, default route back through her.
    let site = Netns::new(format!("rost{}", unique_tag()));
    netns::link(&lab.cli, SITE_GW, &site, SITE_HOST, &unique_tag());
    site.exec_ok(&["ip", "route", "add", "default", "via", &SITE_GW.to_string()]);
    // Bob's namespace, with its own link to the server.
    let cli2 = Netns::new(format!("roc2{}", unique_tag()));
    netns::link(&lab.srv, SRV_IP2, &cli2, CLI2_IP, &unique_tag());
    cli2.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("{}/32", lab::SERVER_IP),
        "via",
        &SRV_IP2.to_string(),
    ]);

    let script = route_script(&lab);
    let users = policy_dir(
        &lab,
        "users",
        &[("alice", &format!("iroute = {SITE_NET}\n"))],
    );
    let add = format!("\"{} add %{{RI}} %{{D}} %{{R}}\"", script.display());
    let del = format!("\"{} delete %{{RI}} %{{D}} %{{R}}\"", script.display());
    let socket = lab.dir.join("occtl.socket");
    let conf = lab.config(&[
        ("config-per-user", &users),
        ("route-add-cmd", &add),
        ("route-del-cmd", &del),
        ("expose-iroutes", "true"),
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("max-ban-score", "0"),
    ]);
    let server = Server::start(&lab.srv, &conf);

    // Carol connects before alice: expose-iroutes reads every per-user file (as ocserv), so
    // she is told the site's network all the same.
    let mut carol = Client::start(&lab, &ClientOptions::password("carol", "carol-pw"));
    let carol_up = carol.wait_up(WAIT).expect("carol's tunnel up");
    let env = std::fs::read_to_string(lab.dir.join(format!("env-{}", carol_up.device))).unwrap();
    assert!(
        env.lines()
            .any(|l| l.starts_with("CISCO_SPLIT_INC_") && l.ends_with("_ADDR=10.77.5.0")),
        "carol was not told the site's network:\n{env}"
    );
    drop(carol);

    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = alice.wait_up(WAIT).expect("alice's tunnel up");
    // The server routes the site to alice's device; the command got ocserv's expansions.
    let route = server_route(&lab);
    assert!(route.contains("dev vpns0"), "server route: {route:?}");
    assert!(
        routes_log(&lab).contains("add 10.77.5.0/24 vpns0 10.77.5.0/255.255.255.0"),
        "{}",
        routes_log(&lab)
    );
    // Alice forwards for her site: replies to the VPN network go back through her tunnel.
    lab.cli
        .exec_ok(&["ip", "route", "replace", lab::POOL, "dev", &up.device]);
    let (ok, out) = lab.srv.exec(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        &SITE_HOST.to_string(),
    ]);
    assert!(ok, "server -> site through alice's tunnel failed:\n{out}");

    // occtl show iroutes (ocserv's JSON keys and net/mask form).
    let shown = json(&socket, &["show", "iroutes"]);
    let entry = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["Username"] == "alice")
        .unwrap_or_else(|| panic!("alice not in show iroutes: {shown}"));
    assert_eq!(entry["Device"], "vpns0");
    assert_eq!(entry["iRoutes"][0], "10.77.5.0/255.255.255.0", "{shown}");

    // Bob (another namespace) is told the site as a route too, and reaches it.
    let mut bob = Client::start_in(&lab, &cli2, &ClientOptions::password("bob", "bob-pw"));
    let bob_up = bob.wait_up(WAIT).expect("bob's tunnel up");
    let env = std::fs::read_to_string(lab.dir.join(format!("env-{}", bob_up.device))).unwrap();
    assert!(
        env.lines()
            .any(|l| l.starts_with("CISCO_SPLIT_INC_") && l.ends_with("_ADDR=10.77.5.0")),
        "bob was not told the site's network:\n{env}"
    );
    // What vpnc-script would do with that route; then bob reaches the site through the server.
    cli2.exec_ok(&[
        "ip",
        "route",
        "add",
        SITE_NET,
        "dev",
        &bob_up.device,
        "src",
        &bob_up.address,
    ]);
    let (ok, out) = cli2.exec(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        &SITE_HOST.to_string(),
    ]);
    assert!(
        ok,
        "bob -> site through the server and alice failed:\n{out}"
    );

    // kill -9 of alice's worker: main removes the route (route-del-cmd ran, nothing left).
    // Her openconnect goes first (killed too), or it would reconnect and add the route again.
    let pid = worker_of(&socket, "alice");
    alice.signal(Signal::SIGKILL);
    alice.wait_exit(WAIT).expect("alice's openconnect killed");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    eventually("route-del-cmd ran for alice's iroute", WAIT, || {
        routes_log(&lab).contains("delete 10.77.5.0/24 vpns0 10.77.5.0/255.255.255.0")
    });
    eventually("no server route to the site", WAIT, || {
        server_route(&lab).trim().is_empty()
    });
    let shown = json(&socket, &["show", "iroutes"]);
    assert!(
        !shown.to_string().contains("10.77.5.0"),
        "iroute still shown: {shown}"
    );
    drop(alice);

    // A clean logout removes the route too (and a new login adds it again first).
    let mut again = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    again.wait_up(WAIT).expect("alice's tunnel up again");
    assert!(
        server_route(&lab).contains(" dev vpns"),
        "route not re-added"
    );
    let deletes = |log: &str| log.matches("delete 10.77.5.0/24").count();
    assert_eq!(deletes(&routes_log(&lab)), 1);
    drop(again);
    eventually("route-del-cmd ran after a clean logout", WAIT, || {
        deletes(&routes_log(&lab)) == 2
    });
    eventually("no server route after the logout", WAIT, || {
        server_route(&lab).trim().is_empty()
    });
    drop(bob);
    drop(server);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn explicit_ipv4_is_granted_and_a_second_login_with_it_is_refused() {
    let lab = Lab::new();
    let users = policy_dir(
        &lab,
        "users",
        &[("alice", "explicit-ipv4 = 192.168.231.77\n")],
    );
    let conf = lab.config(&[("config-per-user", &users), ("max-ban-score", "0")]);
    let server = Server::start(&lab.srv, &conf);
    let mut first = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = first.wait_up(WAIT).expect("first tunnel up");
    assert_eq!(up.address, "192.168.231.77");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "ping over the fixed address failed:\n{out}");

    // A second login of alice while the first holds the address: refused, and the log says
    // who holds which address.
    let mut second = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    server
        .wait_for_log(
            "fixed address 192.168.231.77 (explicit-ipv4) is in use by a session of alice",
            WAIT,
        )
        .expect("refusal logged with user and address");
    assert!(
        second.wait_up(Duration::from_secs(3)).is_err(),
        "the second login got a tunnel"
    );
    drop(second);
    // The first one is untouched.
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "first tunnel broken by the refused login:\n{out}");
    drop(first);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_groups_ipv4_network_is_a_pool_of_its_own() {
    let mut lab = Lab::new();
    lab::add_user(&lab.passwd, "dave", "dave-pw", Some("eng"));
    let groups = policy_dir(
        &lab,
        "groups",
        &[(
            "eng",
            "ipv4-network = 10.99.0.0\nipv4-netmask = 255.255.255.0\n",
        )],
    );
    let conf = lab.config(&[
        ("config-per-group", &groups),
        ("route", "10.99.0.0/24"),
        ("max-ban-score", "0"),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    // The group's pool has its own server address: the client's script routes to it.
    lab.vpn_server_ip = Ipv4Addr::new(10, 99, 0, 1);
    let mut dave = Client::start(&lab, &ClientOptions::password("dave", "dave-pw"));
    let up = dave.wait_up(WAIT).expect("dave's tunnel up");
    assert!(up.address.starts_with("10.99.0."), "{}", up.address);
    let (ok, out) = lab
        .cli
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.99.0.1"]);
    assert!(ok, "ping to the group pool's server address failed:\n{out}");
    // Someone outside the group still gets the global pool.
    lab.vpn_server_ip = lab::VPN_SERVER_IP;
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = alice.wait_up(WAIT).expect("alice's tunnel up");
    assert!(up.address.starts_with("192.168.231."), "{}", up.address);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn the_default_command_routes_and_a_clashing_iroute_refuses_only_the_newcomer() {
    let lab = Lab::new();
    let line = format!("iroute = {SITE_NET}\n");
    let users = policy_dir(&lab, "users", &[("alice", &line), ("bob", &line)]);
    let conf = lab.config(&[("config-per-user", &users), ("max-ban-score", "0")]);
    let server = Server::start(&lab.srv, &conf);
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("alice's tunnel up");
    // No route-add-cmd: rocserv's default `ip route add NET dev DEV`.
    let route = server_route(&lab);
    assert!(route.contains("dev vpns0"), "server route: {route:?}");
    // Bob's iroute is already routed to alice: his login is refused (as in ocserv), and
    // alice's route stays.
    let mut bob = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    server
        .wait_for_log("CONNECT of bob refused: cannot add its iroutes", WAIT)
        .expect("bob refused");
    assert!(
        bob.wait_up(Duration::from_secs(2)).is_err(),
        "bob got a tunnel"
    );
    drop(bob);
    let route = server_route(&lab);
    assert!(
        route.contains("dev vpns0"),
        "alice's route is gone: {route:?}"
    );
    // Alice leaves: the route goes.
    drop(alice);
    eventually("no server route after alice left", WAIT, || {
        server_route(&lab).trim().is_empty()
    });
}
