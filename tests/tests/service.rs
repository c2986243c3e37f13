//! Running as a service (issue 14 item 4): sockets passed by the real `systemd-socket-activate`
//! (TCP and UDP, then an openconnect login with DTLS over the passed UDP socket), the
//! `NOTIFY_SOCKET` readiness protocol and `server-drain-ms`, `listen-netns`, `use-utmp`, and
//! the unit files in dist/systemd checked by `systemd-analyze verify`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rocserv_e2e::netns::Netns;
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";

fn alice(lab: &Lab) -> Client {
    Client::start(lab, &ClientOptions::password("alice", "alice-pw"))
}

fn ping_ok(lab: &Lab, count: u32) {
    let (ok, out) = lab.ping_through_tunnel(count);
    assert!(ok, "ping through the tunnel failed:\n{out}");
}

/// Open and close a TCP connection to the server from the client namespace; `true` if the
/// connection was accepted by someone.
fn tcp_connects(lab: &Lab, port: u16) -> bool {
    let target = format!("exec 3<>/dev/tcp/{}/{port}", lab::SERVER_IP);
    lab.cli.exec(&["timeout", "5", "bash", "-c", &target]).0
}

/// A datagram socket the test listens on, as systemd does on NOTIFY_SOCKET.
struct Notify {
    path: PathBuf,
    sock: UnixDatagram,
}

impl Notify {
    fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        Self { path, sock }
    }

    /// Messages until one contains `needle` (all of them, joined), within `timeout`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.push_str(&msg);
                seen.push('\n');
                if msg.lines().any(|l| l == needle) {
                    return seen;
                }
            }
        }
        panic!("no {needle:?} on NOTIFY_SOCKET within {timeout:?}; got:\n{seen}");
    }
}

/// A connect-script that records its environment and open descriptors.
fn recording_script(lab: &Lab) -> (PathBuf, PathBuf) {
    let out = lab.dir.join("connect-seen");
    let script = lab.dir.join("connect.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ env; ls -l /proc/$$/fd/; }} > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and systemd-socket-activate: run by tests/run-all.sh"]
fn socket_activated_tcp_and_udp_carry_a_dtls_login() {
    let lab = Lab::new();
    let (script, seen) = recording_script(&lab);
    let conf = lab.config(&[
        ("udp-port", "443"),
        ("connect-script", script.to_str().unwrap()),
    ]);
    let notify = Notify::new(&lab.dir);
    let addr = format!("{}:443", lab::SERVER_IP);
    // One systemd-socket-activate per socket type (its -d applies to all its own sockets); the
    // inner one adds its UDP socket to the TCP one it received, then execs rocserv: LISTEN_FDS=2.
    let mut cmd = lab.srv.command("systemd-socket-activate");
    cmd.args(["-l", &addr, "systemd-socket-activate", "-d", "-l", &addr])
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
        .arg(rocserv_e2e::bin("rocserv"))
        .args(["-f", "-d", "2", "-c"])
        .arg(&conf);
    let server = Server::spawn_command(cmd);
    server
        .wait_for_log(&format!("Listening on {addr} as 3"), WAIT)
        .expect("systemd-socket-activate listening");
    // Like systemd, the tool starts the service at the first connection.
    assert!(tcp_connects(&lab, 443), "the first connection was refused");
    server
        .wait_for_log("listening on 2 sockets passed by systemd", WAIT)
        .expect("rocserv took both sockets");
    let ready = server
        .wait_for_log("ready: listening on", WAIT)
        .expect("ready");
    assert!(ready.contains(&addr), "{ready}");
    let told = notify.wait_for("READY=1", WAIT);
    assert!(told.contains("STATUS=ready: listening on"), "{told}");

    let mut client = alice(&lab);
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS over the passed UDP socket");
    client.wait_up(WAIT).expect("tunnel up");
    let before = lab.srv.udp_in_datagrams();
    ping_ok(&lab, 3);
    assert!(
        lab.srv.udp_in_datagrams() > before,
        "the pings did not go over UDP"
    );
    // The connect-script (a child of main) inherited neither the variables nor the sockets.
    let seen = std::fs::read_to_string(&seen).expect("connect-script ran");
    for var in ["LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"] {
        assert!(!seen.contains(var), "{var} reached the script:\n{seen}");
    }
    // main keeps the passed sockets on descriptors 3 (TCP) and 4 (UDP).
    for fd in [3, 4] {
        let socket = std::fs::read_link(format!("/proc/{}/fd/{fd}", server.pid())).unwrap();
        let socket = socket.to_string_lossy().into_owned();
        assert!(socket.starts_with("socket:"), "{socket}");
        assert!(
            !seen.contains(&socket),
            "the script inherited {socket}:\n{seen}"
        );
    }
    drop(client);
}

#[test]
#[ignore = "needs root, network namespaces and systemd-socket-activate: run by tests/run-all.sh"]
fn passed_sockets_that_differ_from_the_configuration_stop_the_start() {
    let lab = Lab::new();
    // tcp-port 443, but the socket unit says 8443.
    let conf = lab.config(&[]);
    let addr = format!("{}:8443", lab::SERVER_IP);
    let mut cmd = lab.srv.command("systemd-socket-activate");
    cmd.args(["-l", &addr])
        .arg(rocserv_e2e::bin("rocserv"))
        .args(["-f", "-d", "2", "-c"])
        .arg(&conf);
    let mut server = Server::spawn_command(cmd);
    server
        .wait_for_log(&format!("Listening on {addr} as 3"), WAIT)
        .expect("systemd-socket-activate listening");
    tcp_connects(&lab, 8443);
    let status = server.wait_exit(WAIT).expect("rocserv exited");
    assert_eq!(status.code(), Some(1), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains(&format!(
            "socket activation: descriptor 3 listens on {addr} but the configuration says tcp-port = 443"
        )),
        "{log}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn readiness_stopping_and_drain() {
    let lab = Lab::new();
    // Long enough for the checks below on a loaded CI machine (they must end before it does).
    let drain = Duration::from_millis(6000);
    let conf = lab.config(&[("server-drain-ms", &drain.as_millis().to_string())]);
    let notify = Notify::new(&lab.dir);
    let mut cmd = lab.srv.command("env");
    cmd.arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
        .arg(rocserv_e2e::bin("rocserv"))
        .args(["-f", "-d", "2", "-c"])
        .arg(&conf);
    let mut server = Server::spawn_command(cmd);
    let told = notify.wait_for("READY=1", WAIT);
    // READY comes with (or after) the ready line: sec-mod and the listeners are up.
    server
        .wait_for_log("ready: listening on", Duration::from_secs(1))
        .expect("ready line before READY=1");
    assert!(told.contains("STATUS="), "{told}");

    let mut client = alice(&lab);
    client.wait_up(WAIT).expect("tunnel up");
    ping_ok(&lab, 2);

    // SIGTERM via the pid rocserv runs as (`env` exec'd it).
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    let asked = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let stopping = notify.wait_for("STOPPING=1", WAIT);
    assert!(stopping.contains("STATUS=draining"), "{stopping}");
    server
        .wait_for_log(
            &format!(
                "termination request received; waiting {} ms",
                drain.as_millis()
            ),
            WAIT,
        )
        .expect("drain logged");
    // Draining: the port refuses new connections, the tunnel still carries traffic.
    assert!(
        !tcp_connects(&lab, 443),
        "a connection was accepted while draining"
    );
    ping_ok(&lab, 2);
    assert!(
        asked.elapsed() < drain,
        "the checks took longer than the drain; raise it"
    );
    let status = server.wait_exit(WAIT).expect("rocserv exited");
    assert!(status.success(), "{}", server.log_text());
    assert!(
        asked.elapsed() >= drain,
        "exited after {:?}, before the drain time",
        asked.elapsed()
    );
    let log = server.log_text();
    assert!(log.contains("drain time over"), "{log}");
    // The client saw its tunnel end.
    client.wait_exit(WAIT);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn listen_netns_opens_the_sockets_there() {
    let lab = Lab::new();
    // rocserv runs in a namespace of its own (tun devices, scripts), and listens in the lab's
    // server namespace, where the client's link is.
    let home = Netns::new(format!("rocm{}", rocserv_e2e::unique_tag()));
    let conf = lab.config(&[("udp-port", "443"), ("listen-netns", &lab.srv.name)]);
    let server = Server::start(&home, &conf);
    server
        .wait_for_log(
            &format!("listening in network namespace {}", lab.srv.name),
            WAIT,
        )
        .expect("netns named");
    let mut client = alice(&lab);
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS through a socket of the listening namespace");
    client.wait_up(WAIT).expect("tunnel up");
    ping_ok(&lab, 2);
    // The listening sockets are in the lab's namespace, none in rocserv's own; the tun device
    // is in rocserv's own.
    let listening = lab.srv.exec_ok(&["ss", "-Hltun", "sport", "= :443"]);
    assert_eq!(
        listening.lines().count(),
        2,
        "tcp and udp expected:\n{listening}"
    );
    let own = home.exec_ok(&["ss", "-Hltun", "sport", "= :443"]);
    assert!(
        own.trim().is_empty(),
        "listening in rocserv's own namespace:\n{own}"
    );
    let links = home.exec_ok(&["ip", "-o", "link"]);
    assert!(links.contains("vpns"), "{links}");
    drop(client);
    drop(server);
}

#[test]
#[ignore = "needs root, network namespaces, openconnect, unshare and utmpdump: run by tests/run-all.sh"]
fn use_utmp_records_the_tunnel() {
    let lab = Lab::new();
    // utmp and wtmp of the test's own: in a mount namespace of the server's, /run is a
    // directory of the lab and /var/log/wtmp a file of the lab (glibc writes /var/run/utmp,
    // /var/log/wtmp); the host's files are never touched.
    let run = lab.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let utmp = run.join("utmp");
    let wtmp = lab.dir.join("wtmp");
    std::fs::write(&utmp, b"").unwrap();
    std::fs::write(&wtmp, b"").unwrap();
    let conf = lab.config(&[("use-utmp", "true")]);
    let mut cmd = lab.srv.command("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {run} /run && mount --bind {wtmp} /var/log/wtmp && exec \"$0\" -f -d 2 -c {conf}",
            run = run.display(),
            wtmp = wtmp.display(),
            conf = conf.display()
        ))
        .arg(rocserv_e2e::bin("rocserv"));
    let server = Server::spawn_command(cmd);
    server
        .wait_for_log("ready: listening on", WAIT)
        .expect("ready");
    let mut client = alice(&lab);
    client.wait_up(WAIT).expect("tunnel up");
    let dump = |file: &Path| {
        let out = Command::new("utmpdump").arg(file).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let worker = server.workers().first().copied().expect("a worker");
    // Written by main's own thread, shortly after the tunnel is granted.
    let deadline = Instant::now() + WAIT;
    let record = loop {
        let text = dump(&utmp);
        if let Some(line) = text.lines().find(|l| l.starts_with("[7]")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no USER_PROCESS record:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // [7] [pid] [id] [user] [line] [host] [addr] [time]
    assert!(
        record.contains(&format!("[{worker:05}]")) || record.contains(&format!("[{worker}]")),
        "{record}"
    );
    assert!(record.contains("[alice"), "{record}");
    // The server's tun device (`device = vpns` in the lab).
    assert!(record.contains("[vpns"), "{record}");
    assert!(record.contains(&format!("[{}", lab::CLIENT_IP)), "{record}");
    assert!(dump(&wtmp).contains("[alice"), "no wtmp record");
    drop(client);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = dump(&utmp);
        if text.lines().any(|l| l.starts_with("[8]")) && !text.lines().any(|l| l.starts_with("[7]"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no DEAD_PROCESS record:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        dump(&wtmp).lines().filter(|l| l.starts_with("[8]")).count(),
        1
    );
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd");
    let dir = std::env::temp_dir().join(format!("rocserv-units-{}", rocserv_e2e::unique_tag()));
    std::fs::create_dir_all(&dir).unwrap();
    // verify insists that ExecStart= exists: point it at a program that does.
    let service = std::fs::read_to_string(dist.join("rocserv.service")).unwrap();
    assert!(service.contains("Type=notify"), "{service}");
    assert!(service.contains("KillMode=mixed"), "{service}");
    std::fs::write(
        dir.join("rocserv.service"),
        service.replace("/usr/sbin/rocserv", "/bin/true"),
    )
    .unwrap();
    std::fs::copy(dist.join("rocserv.socket"), dir.join("rocserv.socket")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("rocserv.service"))
        .arg(dir.join("rocserv.socket"))
        .output()
        .expect("systemd-analyze (package systemd) installed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys are only warnings: none may be about our files.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("rocserv.")).collect();
    assert!(ours.is_empty(), "{}", ours.join("\n"));
}
