//! Per-user and per-group files (`config-per-user`, `config-per-group`) with the real
//! openconnect: edits apply to the next login without a reload, user over group, a group file
//! when there is no user file, `append-routes`, and a bad line refusing the login with the log
//! naming file and line. What the client applied is read from its script's environment and its
//! log; what was granted from `occtl -j`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::time::Duration;

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::lab::add_user;
use rocserv_e2e::occtl::json;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};
use serde_json::Value;

struct Setup {
    server: Server,
    socket: PathBuf,
    users: PathBuf,
    groups: PathBuf,
}

/// A server with per-user and per-group directories, occtl, and `extra` options; user `dave`
/// (group `staff`) is added to the password file.
fn setup(lab: &Lab, extra: &[(&str, &str)]) -> Setup {
    add_user(&lab.passwd, "dave", "dave-pw", Some("staff"));
    let users = lab.dir.join("users");
    let groups = lab.dir.join("groups");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::create_dir_all(&groups).unwrap();
    let socket = lab.dir.join("occtl.socket");
    let mut options = vec![
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("config-per-user", users.to_str().unwrap()),
        ("config-per-group", groups.to_str().unwrap()),
        // Many logins from one address.
        ("max-ban-score", "0"),
    ];
    options.extend_from_slice(extra);
    let conf = lab.config(&options);
    Setup {
        server: Server::start(&lab.srv, &conf),
        socket,
        users,
        groups,
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// The environment openconnect gave the client's script.
fn client_env(lab: &Lab, client: &Client) -> Vec<(String, String)> {
    std::fs::read_to_string(lab.dir.join(format!("env-{}", client.device)))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The split-include networks the client was told, as `addr/len`, sorted (openconnect hands
/// them to its script in reverse order).
fn split_includes(env: &[(String, String)]) -> Vec<String> {
    let count: usize = env_value(env, "CISCO_SPLIT_INC")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut list = (0..count)
        .map(|i| {
            let addr = env_value(env, &format!("CISCO_SPLIT_INC_{i}_ADDR")).unwrap_or_default();
            let len = env_value(env, &format!("CISCO_SPLIT_INC_{i}_MASKLEN")).unwrap_or_default();
            format!("{addr}/{len}")
        })
        .collect::<Vec<_>>();
    list.sort();
    list
}

/// Log in as `user`, wait for the tunnel, and return the client with its script environment
/// and occtl's record of the user.
fn login(lab: &Lab, s: &Setup, user: &str) -> (Client, Vec<(String, String)>, Value) {
    let mut client = Client::start(lab, &ClientOptions::password(user, &format!("{user}-pw")));
    client.wait_up(WAIT).expect("tunnel up");
    let env = client_env(lab, &client);
    let record = json(&s.socket, &["show", "user", user]);
    let record = record
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("occtl has no {user}: {record}"));
    (client, env, record)
}

fn logout(mut client: Client) {
    client.signal(nix::sys::signal::Signal::SIGINT);
    assert!(client.wait_exit(WAIT).is_some(), "openconnect did not exit");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn group_then_user_files_apply_at_the_next_login_without_reload() {
    let lab = Lab::new();
    let s = setup(&lab, &[]);

    // Only a group file: it applies (DNS, routes, DPD replace the global ones).
    write(
        &s.groups.join("staff"),
        "dns = 10.50.0.53\nroute = 10.50.0.0/16\ndpd = 41\n",
    );
    let (client, env, rec) = login(&lab, &s, "dave");
    assert_eq!(
        env_value(&env, "INTERNAL_IP4_DNS").as_deref(),
        Some("10.50.0.53")
    );
    assert_eq!(split_includes(&env), ["10.50.0.0/16"]);
    assert!(client.output().contains("DPD 41"), "{}", client.output());
    assert_eq!(rec["Groupname"], "staff");
    assert_eq!(rec["DPD"], "41");
    assert_eq!(rec["DNS"], serde_json::json!(["10.50.0.53"]));
    assert_eq!(rec["Routes"], serde_json::json!(["10.50.0.0/255.255.0.0"]));
    logout(client);

    // A user file appears (no reload): its DPD wins over the group's, routes add up, the
    // group's DNS stays.
    write(
        &s.users.join("dave"),
        "dpd = 43\nroute = 10.60.0.0/16\nkeepalive = 27\n",
    );
    let (client, env, rec) = login(&lab, &s, "dave");
    assert!(
        client.output().contains("DPD 43, Keepalive 27"),
        "{}",
        client.output()
    );
    assert_eq!(split_includes(&env), ["10.50.0.0/16", "10.60.0.0/16"]);
    assert_eq!(
        env_value(&env, "INTERNAL_IP4_DNS").as_deref(),
        Some("10.50.0.53")
    );
    assert_eq!(rec["DPD"], "43");
    assert_eq!(rec["KeepAlive"], "27");
    logout(client);

    // Another user without files keeps the global policy.
    let (client, env, rec) = login(&lab, &s, "alice");
    assert_eq!(
        env_value(&env, "INTERNAL_IP4_DNS").as_deref(),
        Some("192.168.231.1")
    );
    assert_eq!(split_includes(&env), ["192.168.231.0/24"]);
    assert_eq!(rec["DPD"], "90");
    logout(client);

    // A bad line: dave's login is refused, and the log names the file and the line.
    write(&s.users.join("dave"), "dpd = 43\nroute = 10.60.0.0/33\n");
    let before = s.server.log_len();
    let (status, out) = run_to_exit(&lab, "dave", "dave-pw", WAIT);
    assert!(
        status.is_some_and(|st| !st.success()),
        "a login with a bad user file must fail: {status:?}\n{out}"
    );
    let wanted = format!("{}:2: error: route:", s.users.join("dave").display());
    s.server
        .wait_for_log_after(before, &wanted, Duration::from_secs(5))
        .expect("the refusal names file and line");
    assert!(
        json(&s.socket, &["show", "users"])
            .as_array()
            .unwrap()
            .is_empty(),
        "no tunnel for a refused login"
    );

    // Fixed: the next login works again, still without a reload.
    write(&s.users.join("dave"), "dpd = 44\n");
    let (client, _, rec) = login(&lab, &s, "dave");
    assert_eq!(rec["DPD"], "44");
    logout(client);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn append_routes_keeps_the_global_routes_after_the_users() {
    let lab = Lab::new();
    let s = setup(&lab, &[("append-routes", "true")]);
    write(
        &s.users.join("alice"),
        "route = 10.70.0.0/16\nno-route = 10.70.5.0/24\ndns = 10.70.0.53\n",
    );
    let (client, env, rec) = login(&lab, &s, "alice");
    assert_eq!(split_includes(&env), ["10.70.0.0/16", "192.168.231.0/24"]);
    assert_eq!(
        env_value(&env, "CISCO_SPLIT_EXC_0_ADDR").as_deref(),
        Some("10.70.5.0")
    );
    // DNS is not appended: the user's replaces the global one.
    assert_eq!(
        env_value(&env, "INTERNAL_IP4_DNS").as_deref(),
        Some("10.70.0.53")
    );
    assert_eq!(
        rec["Routes"],
        serde_json::json!(["10.70.0.0/255.255.0.0", "192.168.231.0/255.255.255.0"])
    );
    assert_eq!(
        rec["No-routes"],
        serde_json::json!(["10.70.5.0/255.255.255.0"])
    );
    logout(client);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn per_user_limits_apply_to_that_user_only() {
    let lab = Lab::new();
    let s = setup(&lab, &[("udp-port", "443")]);
    write(
        &s.users.join("bob"),
        "max-same-clients = 1\nno-udp = true\nhostname = bobs-box\n",
    );
    // bob: TLS only, his hostname forced, one session at a time.
    let (bob, _, rec) = login(&lab, &s, "bob");
    assert_eq!(rec["Hostname"], "bobs-box");
    let (status, out) = run_to_exit(&lab, "bob", "bob-pw", WAIT);
    assert!(
        status.is_some_and(|st| !st.success()),
        "bob's second session must be refused:\n{out}"
    );
    s.server
        .wait_for_log("max-same-clients (1) reached", WAIT)
        .expect("refusal logged");
    // alice (no file): DTLS comes up and two sessions are fine.
    let (alice, _, _) = login(&lab, &s, "alice");
    alice
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("alice gets DTLS");
    let (alice2, _, _) = login(&lab, &s, "alice");
    assert!(
        !bob.output().contains("DTLS connection"),
        "bob must not get DTLS:\n{}",
        bob.output()
    );
    logout(alice2);
    logout(alice);
    logout(bob);
}
