//! Operations: connect/disconnect scripts (and that a slow one stalls nobody else), ban points,
//! reload on SIGHUP, max-same-clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::client::{authenticate, run_to_exit};
use rocserv_e2e::lab::{CLIENT_IP, VPN_SERVER_IP};
use rocserv_e2e::{bin, Client, ClientOptions, Lab, Server, WAIT};

/// Write an executable shell script into the lab directory.
fn script(lab: &Lab, name: &str, body: &str) -> PathBuf {
    let path = lab.dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The environment openconnect gave the client's script (written by the lab's script).
fn client_env(lab: &Lab, client: &Client, name: &str) -> Option<String> {
    read(&lab.dir.join(format!("env-{}", client.device)))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn connect_script_can_refuse_and_disconnect_script_gets_stats() {
    let lab = Lab::new();
    let markers = lab.dir.join("markers");
    let up = script(
        &lab,
        "up.sh",
        &format!(
            "echo \"connect $USERNAME $IP_REAL $IP_REMOTE $DEVICE $REASON\" >> {m}\n\
             echo \"hello from the connect-script\"\n\
             [ \"$USERNAME\" = bob ] && exit 1\nexit 0\n",
            m = markers.display()
        ),
    );
    let down = script(
        &lab,
        "down.sh",
        &format!(
            "echo \"disconnect $USERNAME in=$STATS_BYTES_IN out=$STATS_BYTES_OUT \
             dur=$STATS_DURATION\" >> {m}\necho stats-written\n",
            m = markers.display()
        ),
    );
    let host = script(&lab, "host.sh", "echo \"host $REMOTE_HOSTNAME $REASON\"\n");
    let conf = lab.config(&[
        ("connect-script", up.to_str().unwrap()),
        ("disconnect-script", down.to_str().unwrap()),
        ("host-update-script", host.to_str().unwrap()),
    ]);
    let server = Server::start(&lab.srv, &conf);

    // bob: the connect-script exits 1, so the CONNECT is refused with 401.
    let (status, out) = run_to_exit(&lab, "bob", "bob-pw", WAIT);
    let status = status.expect("refused client exits");
    assert!(!status.success(), "{out}");
    assert!(out.contains("Cookie was rejected"), "{out}");
    server
        .wait_for_log("refused: connect-script", WAIT)
        .expect("refusal logged");
    server
        .wait_for_log(
            "connect-script (user bob): hello from the connect-script",
            WAIT,
        )
        .expect("script output logged");

    // alice: accepted; traffic; logout; the disconnect-script sees the byte counts.
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let tunnel = alice.wait_up(WAIT).expect("alice's tunnel");
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "{out}");
    // openconnect sends its host name (X-CSTP-Hostname); the server keeps the first label.
    let hostname = read(Path::new("/proc/sys/kernel/hostname"));
    let label = hostname.trim().split('.').next().unwrap().to_owned();
    if !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        server
            .wait_for_log(
                &format!("host-update-script (user alice): host {label} host-update"),
                WAIT,
            )
            .expect("host-update-script ran");
    }
    alice.signal(Signal::SIGINT);
    alice.wait_exit(WAIT).expect("alice exits");
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("logout logged");
    server
        .wait_for_log("disconnect-script (user alice): stats-written", WAIT)
        .expect("disconnect-script ran");
    let text = read(&markers);
    assert!(
        text.contains(&format!(
            "connect alice {CLIENT_IP} {} vpns",
            tunnel.address
        )),
        "{text}"
    );
    assert!(text.contains("connect bob"), "{text}");
    assert!(!text.contains("disconnect bob"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("disconnect alice"))
        .unwrap_or_else(|| panic!("no disconnect line: {text}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    // Three pings of 84 bytes each way at least.
    assert!(field("in=") >= 3 * 84, "{line}");
    assert!(field("out=") >= 3 * 84, "{line}");
    assert!(field("dur=") < 60, "{line}");
    server
        .wait_for_log("session started: user alice", WAIT)
        .expect("start line");
}

/// Gaps between consecutive replies of `ping -D` output (timestamps in seconds).
fn reply_gaps(out: &str) -> (usize, f64) {
    let stamps: Vec<f64> = out
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|t| t.parse().ok())
        })
        .collect();
    let worst = stamps
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0_f64, f64::max);
    (stamps.len(), worst)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_slow_connect_script_stalls_nobody_else() {
    let lab = Lab::new();
    let up = script(
        &lab,
        "up.sh",
        "if [ \"$USERNAME\" = bob ]; then echo sleeping; sleep 3; fi\nexit 0\n",
    );
    let conf = lab.config(&[("connect-script", up.to_str().unwrap())]);
    let server = Server::start(&lab.srv, &conf);
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("alice's tunnel");

    let before = server.log_len();
    let mut bob = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    server
        .wait_for_log_after(before, "connect-script (user bob): sleeping", WAIT)
        .expect("bob's connect-script started");
    let started = Instant::now();
    // While bob's script sleeps: alice pings every 10 ms for 1.5 s, and carol logs in.
    let (out, (login_ok, login_time)) = std::thread::scope(|scope| {
        let carol = scope.spawn(|| {
            let t = Instant::now();
            (authenticate(&lab, "carol", "carol-pw").is_ok(), t.elapsed())
        });
        let (_, out) = lab.cli.exec(&[
            "ping",
            "-D",
            "-n",
            "-i",
            "0.01",
            "-c",
            "150",
            "-W",
            "1",
            &VPN_SERVER_IP.to_string(),
        ]);
        (out, carol.join().unwrap())
    });
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "the measurement must end while bob's script still sleeps"
    );
    let (replies, worst) = reply_gaps(&out);
    assert!(replies >= 140, "only {replies} replies:\n{out}");
    assert!(
        worst < 0.050,
        "largest gap between alice's replies {worst:.3} s:\n{out}"
    );
    assert!(login_ok, "carol could not log in while bob's script ran");
    assert!(
        login_time < Duration::from_secs(2),
        "carol's login took {login_time:?}"
    );
    // bob gets his tunnel once the script is done.
    bob.wait_up(WAIT)
        .expect("bob's tunnel after the slow script");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn wrong_passwords_ban_the_address_until_unbanned() {
    let lab = Lab::new();
    let socket = lab.dir.join("occtl.socket");
    // The default ban settings (max-ban-score 80, 10 points per wrong password, ban-time 300).
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
    ]);
    let server = Server::start(&lab.srv, &conf);
    // Three wrong passwords per connection (the server allows 3 tries); 10 points each.
    let mut runs = 0;
    while server.log_text().matches("banning 10.231.0.2").count() == 0 {
        runs += 1;
        assert!(
            runs <= 4,
            "not banned after {runs} runs:\n{}",
            server.log_text()
        );
        let (status, out) = run_to_exit(&lab, "alice", "wrong1\nwrong2\nwrong3", WAIT);
        assert!(!status.expect("client exits").success(), "{out}");
    }
    // Banned: the next connection is closed before TLS, even with the right password.
    let before = server.log_len();
    let refused = authenticate(&lab, "alice", "alice-pw");
    assert!(refused.is_err(), "a banned address logged in");
    server
        .wait_for_log_after(before, "rejected connection from banned IP", WAIT)
        .expect("refusal logged");
    assert!(
        !server
            .log_text()
            .lines()
            .skip(before)
            .any(|l| l.contains("started as pid")),
        "no worker may be spawned for a banned address"
    );

    let occtl = |args: &[&str]| {
        let out = lab
            .srv
            .command(bin("occtl").to_str().unwrap())
            .arg("-s")
            .arg(&socket)
            .args(args)
            .output()
            .expect("occtl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, bans) = occtl(&["show", "ip", "bans"]);
    assert!(ok && bans.contains("10.231.0.2"), "{bans}");
    // Tools read the count from `show status` (ocserv's `IPs in ban list`).
    let (ok, status) = occtl(&["-j", "show", "status"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert!(ok && status["IPs in ban list"] == 1, "{status}");
    let (ok, out) = occtl(&["unban", "ip", "10.231.0.2"]);
    assert!(ok, "{out}");
    let (_, status) = occtl(&["-j", "show", "status"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(status["IPs in ban list"], 0, "{status}");
    authenticate(&lab, "alice", "alice-pw").expect("login after unban");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn sighup_reload_changes_dns_for_new_sessions_only() {
    let lab = Lab::new();
    let conf = lab.config(&[]);
    let server = Server::start(&lab.srv, &conf);
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("alice's tunnel");
    assert_eq!(
        client_env(&lab, &alice, "INTERNAL_IP4_DNS").as_deref(),
        Some("192.168.231.1")
    );

    // New dns and a tcp-port change (needs a restart: kept, and said so).
    let new_text = read(&lab.config(&[("dns", "10.9.9.9"), ("tcp-port", "444")]));
    std::fs::write(&conf, new_text).unwrap();
    let before = server.log_len();
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGHUP).unwrap();
    server
        .wait_for_log_after(before, "configuration reloaded", WAIT)
        .expect("reload logged");
    server
        .wait_for_log_after(before, "tcp-port changed; it needs a restart", WAIT)
        .expect("restart-only option reported");
    // alice's tunnel is untouched.
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "{out}");

    let mut bob = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    bob.wait_up(WAIT).expect("bob's tunnel");
    assert_eq!(
        client_env(&lab, &bob, "INTERNAL_IP4_DNS").as_deref(),
        Some("10.9.9.9")
    );

    // A broken file: every error is logged and the running configuration stays.
    std::fs::write(&conf, "dns = 10.1.1.1\nno-such-option = 1\n").unwrap();
    let before = server.log_len();
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGHUP).unwrap();
    server
        .wait_for_log_after(before, "keeping the running configuration", WAIT)
        .expect("failed reload logged");
    assert!(server.log_text().contains("no-such-option"));
    let mut carol = Client::start(&lab, &ClientOptions::password("carol", "carol-pw"));
    carol.wait_up(WAIT).expect("carol's tunnel");
    assert_eq!(
        client_env(&lab, &carol, "INTERNAL_IP4_DNS").as_deref(),
        Some("10.9.9.9")
    );
    assert!(
        !server.log_text().contains("session ended: user alice"),
        "alice's session must survive the reloads"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn max_same_clients_refuses_a_second_session() {
    let lab = Lab::new();
    let conf = lab.config(&[("max-same-clients", "1")]);
    let server = Server::start(&lab.srv, &conf);
    let mut first = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    first.wait_up(WAIT).expect("first session");
    let (status, out) = run_to_exit(&lab, "alice", "alice-pw", WAIT);
    assert!(!status.expect("second client exits").success(), "{out}");
    assert!(out.contains("Cookie was rejected"), "{out}");
    server
        .wait_for_log("max-same-clients (1) reached", WAIT)
        .expect("refusal logged");
    // Another user is not affected, and the first session still works.
    let mut bob = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    bob.wait_up(WAIT).expect("bob's session");
    first.signal(Signal::SIGINT);
    first.wait_exit(WAIT).expect("first exits");
    server
        .wait_for_log("session ended: user alice", WAIT)
        .expect("first session ended");
    // Once the first session is gone, alice may connect again.
    let mut again = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    again.wait_up(WAIT).expect("alice again");
}

/// A connect-script that starts a long `sleep` in the background, records its pid and waits.
fn sleeping_connect_script(lab: &Lab) -> (PathBuf, PathBuf) {
    let pid_file = lab.dir.join("sleep.pid");
    let up = script(
        lab,
        "up.sh",
        &format!(
            "sleep 60 &\necho $! > {}\necho sleeping\nwait\nexit 0\n",
            pid_file.display()
        ),
    );
    (up, pid_file)
}

/// Whether process `pid` (from `file`) is gone within `limit`.
fn gone_within(file: &Path, limit: Duration) -> bool {
    let pid: i32 = read(file)
        .trim()
        .parse()
        .expect("the script wrote its sleep's pid");
    let until = Instant::now() + limit;
    while Instant::now() < until {
        // Signal 0: does it exist (a zombie counts as gone: its parent is not ours to reap).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn sigterm_stops_the_server_while_a_connect_script_runs() {
    let lab = Lab::new();
    let (up, pid_file) = sleeping_connect_script(&lab);
    let conf = lab.config(&[("connect-script", up.to_str().unwrap())]);
    let mut server = Server::start(&lab.srv, &conf);
    let before = server.log_len();
    let _alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    server
        .wait_for_log_after(before, "connect-script (user alice): sleeping", WAIT)
        .expect("alice's connect-script started");
    let asked = Instant::now();
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGTERM).unwrap();
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some(),
        "rocserv still runs {:?} after SIGTERM with a connect-script running:\n{}",
        asked.elapsed(),
        server.log_text()
    );
    let log = server.log_text();
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    assert!(log.contains("rocserv stopped"), "{log}");
    assert!(
        gone_within(&pid_file, Duration::from_secs(5)),
        "the script's background sleep outlived the server"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn ctrl_c_stops_the_server_without_restarting_sec_mod() {
    // `rocserv -f` at a terminal: Ctrl-C sends SIGINT to the whole foreground process group;
    // only main should act on it (sec-mod and the workers have groups of their own).
    let lab = Lab::new();
    let conf = lab.config(&[]);
    let mut cmd = lab.srv.command(bin("rocserv").to_str().unwrap());
    cmd.args(["-f", "-d", "2", "-c"]).arg(&conf);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut server = Server::spawn_command(cmd);
    server
        .wait_for_log("ready: listening on", WAIT)
        .expect("server ready");
    let mut alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    alice.wait_up(WAIT).expect("alice's tunnel");
    kill(Pid::from_raw(-(server.pid() as i32)), Signal::SIGINT).unwrap();
    let status = server.wait_exit(Duration::from_secs(15));
    let log = server.log_text();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("rocserv stopped"), "{log}");
    assert!(
        !log.contains("restarting it"),
        "sec-mod restarted during shutdown:\n{log}"
    );
    assert!(!log.contains("sec-mod restarted"), "{log}");
    // The session ended in order: sec-mod was there to record it, the worker was not killed
    // by the terminal's signal.
    assert!(!log.contains("cannot tell sec-mod"), "{log}");
    assert!(!log.contains("worker signal: 2"), "{log}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_connect_script_whose_worker_died_is_ended_at_once() {
    let lab = Lab::new();
    let (up, pid_file) = sleeping_connect_script(&lab);
    let conf = lab.config(&[("connect-script", up.to_str().unwrap())]);
    let server = Server::start(&lab.srv, &conf);
    let before = server.log_len();
    let _alice = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    server
        .wait_for_log_after(before, "connect-script (user alice): sleeping", WAIT)
        .expect("alice's connect-script started");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one worker: {workers:?}");
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).unwrap();
    server
        .wait_for_log_after(before, "exited while its message was handled", WAIT)
        .expect("main noticed the worker's death during the connect-script");
    assert!(
        gone_within(&pid_file, Duration::from_secs(5)),
        "the connect-script (and its sleep) kept running after its worker died"
    );
}
