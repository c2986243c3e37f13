//! The session database (`session-db`) with the real openconnect: a record survives `kill -9`
//! of main and all its children (closed as "server stopped" at the next start, with the bytes
//! of the last traffic report); a traffic quota that runs out mid-session ends the tunnel with
//! the reason in the log and refuses the next login; `occtl show history` lists the sessions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::occtl::{json, occtl};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};
use serde_json::Value;

/// Options of every test here: occtl, a traffic report each second, per-user files.
fn options(lab: &Lab) -> (Vec<(String, String)>, PathBuf, PathBuf) {
    let socket = lab.dir.join("occtl.socket");
    let users = lab.dir.join("users");
    std::fs::create_dir_all(&users).unwrap();
    let opts = vec![
        ("use-occtl".into(), "true".into()),
        ("occtl-socket-file".into(), socket.display().to_string()),
        ("config-per-user".into(), users.display().to_string()),
        ("stats-report-time".into(), "1".into()),
        // Several logins from one address, some refused on purpose.
        ("max-ban-score".into(), "0".into()),
    ];
    (opts, socket, users)
}

fn config(lab: &Lab, opts: &[(String, String)]) -> PathBuf {
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    lab.config(&opts)
}

/// `occtl -j show history [user]`.
fn history(socket: &Path, user: Option<&str>) -> Vec<Value> {
    let mut args = vec!["show", "history"];
    args.extend(user);
    json(socket, &args).as_array().cloned().unwrap_or_default()
}

/// Poll `occtl show history USER` (bounded) until `done` holds for its newest record.
fn wait_history(socket: &Path, user: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let records = history(socket, Some(user));
        if let Some(newest) = records.first().filter(|r| done(r)) {
            return newest.clone();
        }
        assert!(
            Instant::now() < deadline,
            "history of {user} never got there: {records:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn raw(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_record_survives_kill_9_of_main_and_is_closed_at_the_next_start() {
    let lab = Lab::new();
    let (opts, socket, _) = options(&lab);
    let conf = config(&lab, &opts);
    let mut server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let (ok, out) = lab.ping_with(5, &["-s", "1000"]);
    assert!(ok, "{out}");
    // The start is written at once; a traffic report then writes the bytes.
    let open = wait_history(&socket, "alice", |r| raw(r, "raw_rx") > 5000);
    assert_eq!(open["End reason"], "connected", "{open}");
    assert_eq!(open["Remote IP"], "10.231.0.2");
    assert!(open["IPv4"].as_str().unwrap().starts_with("192.168.231."));

    // kill -9 of main and of every child of it (sec-mod, workers), by PID.
    let pids = server.processes();
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    assert!(server.wait_exit(WAIT).is_some(), "main did not die");
    let deadline = Instant::now() + WAIT;
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}/status")).exists() && is_alive(*p))
    {
        assert!(Instant::now() < deadline, "processes survived kill -9");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = client.wait_exit(WAIT);
    drop(client);
    drop(server);

    let server = Server::start(&lab.srv, &conf);
    server
        .wait_for_log("closed 1 session record(s) left open", WAIT)
        .expect("the open record is closed at start");
    let records = history(&socket, Some("alice"));
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["End reason"], "server stopped", "{r}");
    assert!(raw(r, "raw_rx") >= raw(&open, "raw_rx"), "{r}");
    assert!(raw(r, "raw_ended") >= raw(r, "raw_started"), "{r}");

    // The text table lists it too.
    let text = occtl(&socket, &["show", "history"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(text.stdout.contains("session"), "{}", text.stdout);
    assert!(text.stdout.contains("alice"), "{}", text.stdout);
    assert!(text.stdout.contains("server stopped"), "{}", text.stdout);
}

/// A process that is neither gone nor a zombie.
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_traffic_quota_ends_the_session_and_refuses_the_next_login() {
    let lab = Lab::new();
    let (opts, socket, users) = options(&lab);
    std::fs::write(
        users.join("alice"),
        "traffic-quota = 40K\ntraffic-quota-period = day\n",
    )
    .unwrap();
    let server = Server::start(&lab.srv, &config(&lab, &opts));

    // bob has no quota: his session is recorded and ends normally.
    let mut bob = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    bob.wait_up(WAIT).expect("bob's tunnel");
    bob.signal(Signal::SIGINT);
    assert!(bob.wait_exit(WAIT).is_some());

    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("alice's tunnel");
    // ~120 KiB each way at 1228 bytes a packet: three times the quota within ~5 s.
    let _ = lab.ping_with(100, &["-s", "1200", "-i", "0.05"]);
    server
        .wait_for_log("traffic quota of 40960 bytes per day used up", WAIT)
        .expect("the quota end is logged");
    assert!(
        alice.wait_exit(WAIT).is_some(),
        "openconnect was not disconnected:\n{}",
        alice.output()
    );
    let ended = wait_history(&socket, "alice", |r| r["End reason"] != "connected");
    assert_eq!(ended["End reason"], "ended by policy", "{ended}");
    assert!(raw(&ended, "raw_rx") + raw(&ended, "raw_tx") >= 40 * 1024);

    // A new login is refused, and the log says why.
    let before = server.log_len();
    let (status, out) = run_to_exit(&lab, "alice", "alice-pw", WAIT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "alice got in again: {status:?}\n{out}"
    );
    server
        .wait_for_log_after(
            before,
            "CONNECT of user 'alice' refused: traffic quota of 40960 bytes per day used up",
            WAIT,
        )
        .expect("the refusal is logged");

    // History: both users, newest first; one user's filter.
    let all = history(&socket, None);
    assert!(all.iter().any(|r| r["Username"] == "bob"), "{all:?}");
    let bob = history(&socket, Some("bob"));
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["End reason"], "user disconnected", "{:?}", bob[0]);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn max_session_time_per_day_ends_the_session_and_refuses_the_next_login() {
    let lab = Lab::new();
    let (opts, socket, users) = options(&lab);
    std::fs::write(users.join("carol"), "max-session-time-per-day = 3\n").unwrap();
    let server = Server::start(&lab.srv, &config(&lab, &opts));
    let mut carol = Client::start(&lab, &ClientOptions::password("carol", "carol-pw"));
    carol.wait_up(WAIT).expect("carol's tunnel");
    server
        .wait_for_log("max-session-time-per-day of 3 s used up", WAIT)
        .expect("the time limit end is logged");
    assert!(
        carol.wait_exit(WAIT).is_some(),
        "openconnect was not disconnected:\n{}",
        carol.output()
    );
    let ended = wait_history(&socket, "carol", |r| r["End reason"] != "connected");
    assert_eq!(ended["End reason"], "ended by policy", "{ended}");
    assert!(raw(&ended, "raw_duration") >= 3, "{ended}");

    let before = server.log_len();
    let (status, out) = run_to_exit(&lab, "carol", "carol-pw", WAIT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "carol got in again: {status:?}\n{out}"
    );
    server
        .wait_for_log_after(
            before,
            "CONNECT of user 'carol' refused: max-session-time-per-day of 3 s used up",
            WAIT,
        )
        .expect("the refusal is logged");
}
