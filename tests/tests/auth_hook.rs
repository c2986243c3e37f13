//! `auth = "script[...]"` (ours): the deferred external auth hook, with the real openconnect.
//! The hooks are shell scripts the test writes; main runs them as `nobody`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rocserv_e2e::client::{authenticate, run_to_exit};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// A directory anyone may enter (the lab's is root's only), with the hook in it; removed on
/// drop.
struct HookDir {
    dir: PathBuf,
    hook: PathBuf,
}

impl HookDir {
    fn new(body: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rocserv-hook-{}", rocserv_e2e::unique_tag()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hook = dir.join("check");
        std::fs::write(&hook, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir, hook }
    }
}

impl Drop for HookDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One hook, its behaviour chosen by the user name. It reads the password from stdin and
/// refuses if the password is in its own argv or environment (checked in /proc); it logs the
/// facts it got on stderr (main logs that). Passwords must not be a substring of anything in
/// the hook's environment (a one-letter one is in `linux-64`).
const BASICS: &str = r#"read -r pw
for f in /proc/$$/cmdline /proc/$$/environ; do
  if ! test -r "$f" || grep -q "$pw" "$f"; then echo "LEAK in $f" >&2; exit 1; fi
done
echo "facts: user=$USERNAME ip=$IP_REAL port=$IP_REAL_PORT agent=$USER_AGENT uid=$(id -u) argc=$#" >&2
case "$USERNAME" in
  good) test "$pw" = good-pw && exit 0; exit 1 ;;
  deferred)
    test "$pw" = deferred-pw || exit 1
    ( sleep 0.5
      printf '1\ngroup = hooked\nexplicit-ipv4 = 192.168.231.77\n' > "$ROCSERV_AUTH_CONTROL" ) &
    exit 2 ;;
  slow) ( sleep 60 ) & exit 2 ;;
  dies) kill -9 $$ ;;
  *) exit 1 ;;
esac"#;

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn hook_accepts_refuses_defers_times_out_and_dies() {
    let lab = Lab::new();
    let hooks = HookDir::new(BASICS);
    let auth = format!("\"script[path={},timeout=3]\"", hooks.hook.display());
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("auth", &auth), ("max-ban-score", "0")]),
    );

    // Accepted by exit status 0; the password came on stdin only (else the hook refuses).
    authenticate(&lab, "good", "good-pw").expect("hook accepts good/good-pw");
    server
        .wait_for_log("user 'good' logged in via script", WAIT)
        .unwrap();
    let facts = server
        .wait_for_log("(user 'good'): facts: user=good", WAIT)
        .unwrap();
    assert!(
        facts.contains(&format!("ip={}", rocserv_e2e::lab::CLIENT_IP))
            && facts.contains("agent=Open AnyConnect")
            && facts.contains("argc=0")
            && !facts.contains("uid=0 "),
        "{facts}"
    );
    assert!(!server.log_text().contains("LEAK"), "{}", server.log_text());

    // Refused by exit status.
    let (status, output) = run_to_exit(&lab, "good", "bad-pw", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    server
        .wait_for_log("login failed for user 'good' via script: hook", WAIT)
        .unwrap();

    // Deferred: exit 2, answer 0.5 s later with a group and an address, both honoured.
    let mut client = Client::start(&lab, &ClientOptions::password("deferred", "deferred-pw"));
    let up = client.wait_up(WAIT).expect("deferred login");
    assert_eq!(up.address, "192.168.231.77");
    server
        .wait_for_log("user 'deferred' logged in via script (group 'hooked'", WAIT)
        .unwrap();
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    drop(client);

    // No answer within timeout=3: refused with a line naming the user and the hook, and the
    // hook's background process is killed.
    let started = Instant::now();
    let (status, output) = run_to_exit(&lab, "slow", "slow-pw-9q", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    let line = server
        .wait_for_log("login failed for user 'slow' via script", WAIT)
        .unwrap();
    assert!(
        line.contains(&hooks.hook.display().to_string()) && line.contains("within 3 s"),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A hook killed by a signal refuses.
    let (status, output) = run_to_exit(&lab, "dies", "dies-pw-9q", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    let line = server
        .wait_for_log("login failed for user 'dies' via script", WAIT)
        .unwrap();
    assert!(line.contains("died (signal 9)"), "{line}");
}

/// Hook delay of the load test.
const DELAY: Duration = Duration::from_secs(3);
const LOGINS: usize = 20;

/// The pinging user's hook answers at once; the others' 3 s later, deferred.
const LOAD: &str = r#"read -r pw
case "$USERNAME" in
  steady) exit 0 ;;
  *) began=$(date +%s.%N)
     ( sleep 3; echo "hook took $began $(date +%s.%N)" >&2; echo 1 > "$ROCSERV_AUTH_CONTROL" ) &
     exit 2 ;;
esac"#;

/// `ping -D` reply times (seconds) from its output, and the number of replies.
fn reply_times(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

fn max_gap_ms(times: &[f64]) -> f64 {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .fold(0.0, f64::max)
}

/// The median gap between replies, ms.
fn median_gap_ms(times: &[f64]) -> f64 {
    median(times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect())
}

/// Ping the server through the tunnel every 10 ms for `count` pings; the reply times.
fn ping_run(lab: &Lab, count: u32) -> Vec<f64> {
    let count = count.to_string();
    let target = lab.vpn_server_ip.to_string();
    let (_ok, out) = lab.cli.exec(&[
        "ping", "-D", "-n", "-c", &count, "-i", "0.01", "-W", "1", &target,
    ]);
    reply_times(&out)
}

/// `openconnect --authenticate` at the lowest CPU priority: the 20 clients stand for other
/// machines, whose start-up (process, TLS library) must not compete with the server and the
/// pinging user for this test machine's two cores. The server's side (workers, handshakes,
/// hooks) runs at normal priority.
fn nice_authenticate(lab: &Lab, user: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = lab
        .cli
        .command("nice")
        .args([
            "-n",
            "19",
            "openconnect",
            "--protocol=anyconnect",
            "--non-inter",
        ])
        .args([
            "--servercert",
            &lab.pki.pin,
            "--passwd-on-stdin",
            "--authenticate",
        ])
        .arg(format!("--user={user}"))
        .arg(lab.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "pw").map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.contains("COOKIE=") {
        Ok(())
    } else {
        Err(format!(
            "{}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Wall-clock seconds, as `ping -D` prints them.
fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// issue 11 item 4: 20 concurrent logins on 3 s deferred hooks while a connected user pings
/// every 10 ms. Its largest ping gap stays within the control run's + 10 ms, and each hooked
/// login's hook run (main's log, request to answer) takes the hook delay + < 100 ms.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn twenty_deferred_logins_stall_nobody() {
    let lab = Lab::new();
    let hooks = HookDir::new(LOAD);
    let auth = format!("\"script[path={},timeout=20]\"", hooks.hook.display());
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("auth", &auth), ("max-ban-score", "0")]),
    );
    let mut steady = Client::start(&lab, &ClientOptions::password("steady", "x"));
    steady.wait_up(WAIT).expect("steady user up");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");

    // Control: the same ping run without logins; and one login's wall time without a delay.
    // The machine's own noise (other jobs on its two cores) is in the control: one run before
    // and one after the logins, the larger counts.
    let control_before = ping_run(&lab, 300);
    let t = Instant::now();
    authenticate(&lab, "steady", "x").expect("undelayed login");
    let undelayed = t.elapsed();

    let skip = server.log_len();
    let pinger = {
        let lab_cli = lab.cli.name.clone();
        let target = lab.vpn_server_ip.to_string();
        std::thread::spawn(move || {
            let out = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &lab_cli, "ping", "-D", "-n", "-c", "600", "-i", "0.01",
                ])
                .args(["-W", "1", &target])
                .output()
                .unwrap();
            reply_times(&String::from_utf8_lossy(&out.stdout))
        })
    };
    // Let the pinger run alone a moment, then the 20 logins at once.
    std::thread::sleep(Duration::from_millis(500));
    let burst = now_secs();
    let lab = std::sync::Arc::new(lab);
    let logins: Vec<_> = (0..LOGINS)
        .map(|i| {
            let lab = std::sync::Arc::clone(&lab);
            std::thread::spawn(move || {
                let t = Instant::now();
                let result = nice_authenticate(&lab, &format!("user{i}"));
                (result, t.elapsed())
            })
        })
        .collect();
    // Every hook started (main's log): from then until the first could answer, all 20 logins
    // only wait. That window is what a synchronous hook stalls (OpenVPN: every tunnel).
    let mut seen = skip;
    let mut starts = Vec::new();
    for _ in 0..LOGINS {
        let line = server
            .wait_for_log_after(seen, "): started", WAIT)
            .expect("hook runs start");
        starts.push(now_secs());
        let text = server.log_text();
        seen += 1 + text.lines().skip(seen).position(|l| l == line).unwrap_or(0);
    }
    let (window_from, window_to) = (starts[LOGINS - 1], starts[0] + DELAY.as_secs_f64() - 0.05);
    let walls: Vec<Duration> = logins
        .into_iter()
        .map(|h| {
            let (result, took) = h.join().unwrap();
            result.expect("hooked login");
            took
        })
        .collect();
    let times = pinger.join().unwrap();
    let control_after = ping_run(&lab, 300);
    let control_gap = max_gap_ms(&control_before).max(max_gap_ms(&control_after));
    let control_median = median_gap_ms(&control_before).max(median_gap_ms(&control_after));
    let control_replies = control_before.len() + control_after.len();
    let (loaded_gap, loaded_replies) = (max_gap_ms(&times), times.len());
    let big: Vec<String> = times
        .windows(2)
        .filter(|w| (w[1] - w[0]) * 1000.0 > control_gap + 10.0)
        .map(|w| format!("{:.0} ms at +{:.3} s", (w[1] - w[0]) * 1000.0, w[0] - burst))
        .collect();
    eprintln!("gaps above control + 10 ms (time from the logins' start): {big:?}");
    let waiting: Vec<f64> = times
        .iter()
        .copied()
        .filter(|t| (window_from..=window_to).contains(t))
        .collect();
    let waiting_gap = max_gap_ms(&waiting);
    let waiting_median = median_gap_ms(&waiting);

    // main's own measure: request received to outcome, per run ("after 3.012s"); and the
    // hook's own (its first command to its answer), by user.
    let mut hook_runs = Vec::new();
    let mut overheads = Vec::new();
    let text = server.log_text();
    let lines: Vec<&str> = text.lines().skip(skip).collect();
    for line in &lines {
        if !line.contains("exit status 2") {
            continue;
        }
        let secs = line
            .rsplit("after ")
            .next()
            .and_then(|t| t.trim().strip_suffix('s'))
            .and_then(|t| t.parse::<f64>().ok())
            .expect("duration in main's line");
        hook_runs.push(secs);
        let user = line
            .split("(user '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap();
        let own: Vec<f64> = lines
            .iter()
            .find(|l| l.contains(&format!("(user '{user}'): hook took ")))
            .and_then(|l| l.rsplit("hook took ").next())
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let [began, answered] = own[..] {
            overheads.push(secs - (answered - began));
        }
    }
    let max_wall = walls.iter().max().unwrap().as_secs_f64();
    let median_wall = median(walls.iter().map(Duration::as_secs_f64).collect());
    let max_run = hook_runs.iter().copied().fold(0.0, f64::max);
    let max_overhead = overheads.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "control: max ping gap {control_gap:.1} ms, median {control_median:.1} ms \
         ({control_replies} replies), undelayed login \
         {:.3} s; loaded: max ping gap {loaded_gap:.1} ms ({loaded_replies} replies); hooked \
         logins: openconnect wall median {median_wall:.3} s max {max_wall:.3} s; main's hook \
         runs: {} of {LOGINS}, max {max_run:.3} s, rocserv's share (main's time minus the \
         hook's own) max {:.1} ms; all hooks waiting from +{:.3} s to +{:.3} s: \
         max ping gap {waiting_gap:.1} ms, median {waiting_median:.1} ms ({} replies)",
        undelayed.as_secs_f64(),
        hook_runs.len(),
        max_overhead * 1000.0,
        window_from - burst,
        window_to - burst,
        waiting.len()
    );
    assert_eq!(hook_runs.len(), LOGINS, "hook runs in main's log");
    assert!(loaded_replies >= 590, "lost pings: {loaded_replies} of 600");
    assert!(
        window_to - window_from >= 1.0,
        "the hooks did not all start within {:.3} s",
        window_to - window_from
    );
    assert!(
        waiting_median <= control_median + 10.0,
        "median ping gap {waiting_median:.1} ms while the logins waited, {control_median:.1} ms \
         without"
    );
    assert!(
        waiting_gap <= control_gap + 10.0,
        "largest ping gap {waiting_gap:.1} ms while 20 logins waited on their hooks, \
         {control_gap:.1} ms without logins"
    );
    // Each login waits only for its own hook: with runs one after the other (a hook run
    // blocking main's or sec-mod's loop) the last would take 20 x 3 s. The margin covers the
    // 20 TLS handshakes and forms on a busy machine.
    assert!(
        max_wall < DELAY.as_secs_f64() + 2.0,
        "a hooked login took {max_wall:.3} s (openconnect --authenticate) for a 3 s hook"
    );
    // The absolute figure includes the hook's own start-up (a shell, a subshell, `sleep`,
    // `date`) on a loaded machine; rocserv's part is what main adds to the hook's own time.
    assert_eq!(overheads.len(), LOGINS, "hook timings in main's log");
    assert!(
        max_overhead < 0.1,
        "rocserv added {:.1} ms to a hook's own time (hook runs: max {max_run:.3} s for a {} s \
         hook)",
        max_overhead * 1000.0,
        DELAY.as_secs_f64()
    );
    drop(steady);
}

/// `rocserv -t` (and the start) refuse a hook that cannot run: a missing executable, a file
/// that is not executable, an unknown user, root.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn unusable_hooks_are_configuration_errors() {
    let hooks = HookDir::new("exit 0");
    let pki = rocserv_e2e::pki::make(&hooks.dir, "127.0.0.1");
    let plain = hooks.dir.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let check = |auth: &str| {
        let conf = hooks.dir.join("ocserv.conf");
        std::fs::write(
            &conf,
            format!(
                "auth = \"{auth}\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\n\
                 run-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\n",
                pki.cert.display(),
                pki.key.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(rocserv_e2e::bin("rocserv"))
            .args(["-t", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let good = format!("script[path={}]", hooks.hook.display());
    let (ok, out) = check(&good);
    assert!(ok, "{out}");
    for (auth, words) in [
        (
            "script[path=/nonexistent/check]".to_owned(),
            "/nonexistent/check: No such file",
        ),
        (
            format!("script[path={}]", plain.display()),
            "is not an executable file",
        ),
        (
            format!(
                "script[path={},user=no-such-user-rocserv]",
                hooks.hook.display()
            ),
            "no user named `no-such-user-rocserv`",
        ),
        (
            format!("script[path={},user=root]", hooks.hook.display()),
            "a hook must not run as root",
        ),
        // Without seccomp a worker could answer a pending login's FIFO as the hook's user.
        (
            format!(
                "script[path={}]\"\nisolate-workers = \"false",
                hooks.hook.display()
            ),
            "would run as the workers' user while isolate-workers = false",
        ),
    ] {
        let (ok, out) = check(&auth);
        assert!(!ok && out.contains(words), "{auth}: {out}");
    }
}
