//! `restrict-user-to-routes` and `restrict-user-to-ports` are enforced in the kernel (nftables,
//! table `inet rocserv` of the server namespace), not by the worker: a real openconnect reaches
//! the allowed destinations and ports (TCP, UDP, ICMP) of servers listening inside the server
//! namespace, and is refused the others; no rule is left after a disconnect, a `kill -9` of the
//! worker, or a `kill -9` of main followed by a restart; and a session whose rules cannot be
//! installed gets no tunnel.
//!
//! The destinations: the server's VPN address (192.168.231.1, also the DNS server of the
//! configuration) and three addresses on the loopback interface of the server namespace, which the
//! client routes through its tunnel: 10.232.1.1 and 10.232.1.129 (inside the route
//! 10.232.1.0/24, the second also inside the no-route 10.232.1.128/25) and 10.232.2.1 (outside).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::netns::Netns;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

const IN_ROUTE: Ipv4Addr = Ipv4Addr::new(10, 232, 1, 1);
const IN_NO_ROUTE: Ipv4Addr = Ipv4Addr::new(10, 232, 1, 129);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 232, 2, 1);
const VPN_SERVER: Ipv4Addr = rocserv_e2e::lab::VPN_SERVER_IP;

/// What became of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// It reached the server (TCP connected, UDP echoed, ping answered).
    Through,
    /// The server's firewall refused it (ICMP "administratively prohibited" came back).
    Rejected,
}
use Fate::{Rejected, Through};

/// Run `f` on a thread that entered network namespace `ns`: sockets it makes live there.
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = ns.path();
    std::thread::spawn(move || {
        setns(std::fs::File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Listeners in the server namespace: TCP on 80 and 22 (the kernel completes the handshake, no
/// accept needed), UDP echo on 53 and 54. Stopped on drop.
struct Services {
    _tcp: Vec<TcpListener>,
    stop: Arc<AtomicBool>,
    echoes: Vec<std::thread::JoinHandle<()>>,
}

impl Services {
    fn start(lab: &Lab) -> Self {
        for addr in [IN_ROUTE, IN_NO_ROUTE, OUTSIDE] {
            let addr = format!("{addr}/32");
            lab.srv.exec_ok(&["ip", "addr", "add", &addr, "dev", "lo"]);
        }
        let tcp = in_ns(&lab.srv, || {
            [80, 22]
                .map(|p| TcpListener::bind(("0.0.0.0", p)).unwrap())
                .into()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut echoes = Vec::new();
        // One socket per address, so that each echo leaves from the address the probe went
        // to (a connected client socket takes nothing else); the VPN address exists only once
        // the tunnel is up, hence the non-local bind.
        lab.srv
            .exec_ok(&["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]);
        // Every rejected probe must draw its ICMP error: the kernel's per-destination limit
        // (a burst of 6, then one per second) would otherwise turn later rejects into silence.
        lab.srv
            .exec_ok(&["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
        let addrs = [VPN_SERVER, IN_ROUTE, IN_NO_ROUTE, OUTSIDE];
        for (addr, port) in addrs.iter().flat_map(|a| [(*a, 53u16), (*a, 54)]) {
            let sock = in_ns(&lab.srv, move || UdpSocket::bind((addr, port)).unwrap());
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = Arc::clone(&stop);
            echoes.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        Self {
            _tcp: tcp,
            stop,
            echoes,
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for e in self.echoes.drain(..) {
            let _ = e.join();
        }
    }
}

/// A client whose tunnel also carries 10.232.0.0/16 (as a client that ignores its routes would).
fn connect(lab: &Lab, user: &str) -> Client {
    let password = rocserv_e2e::lab::USERS
        .iter()
        .find(|(u, _)| *u == user)
        .unwrap()
        .1;
    let mut client = Client::start(lab, &ClientOptions::password(user, password));
    let up = client.wait_up(WAIT).expect("tunnel up");
    lab.cli.exec_ok(&[
        "ip",
        "route",
        "replace",
        "10.232.0.0/16",
        "dev",
        &up.device,
        "src",
        &up.address,
    ]);
    client
}

fn tcp(lab: &Lab, to: Ipv4Addr, port: u16) -> Fate {
    let r = in_ns(&lab.cli, move || {
        TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(10))
    });
    match r {
        Ok(_) => Through,
        Err(e) if e.raw_os_error() == Some(libc::EHOSTUNREACH) => Rejected,
        Err(e) => panic!("TCP to {to}:{port}: neither through nor rejected: {e}"),
    }
}

fn udp(lab: &Lab, to: Ipv4Addr, port: u16) -> Fate {
    let r = in_ns(&lab.cli, move || {
        let sock = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        sock.connect((to, port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.send(b"probe").unwrap();
        let mut buf = [0u8; 16];
        sock.recv(&mut buf).map(|n| buf[..n].to_vec())
    });
    match r {
        Ok(echo) if echo == b"probe" => Through,
        // A connected UDP socket hears of the ICMP error the reject sent.
        Err(e) if e.raw_os_error() == Some(libc::EHOSTUNREACH) => Rejected,
        other => panic!("UDP to {to}:{port}: neither through nor rejected: {other:?}"),
    }
}

fn ping(lab: &Lab, to: Ipv4Addr) -> Fate {
    let (ok, out) = lab
        .cli
        .exec(&["ping", "-n", "-c", "1", "-W", "10", &to.to_string()]);
    if ok && out.contains("1 received") {
        Through
    } else if out.contains("filtered") || out.contains("rohibited") {
        Rejected
    } else {
        panic!("ping {to}: neither through nor rejected:\n{out}")
    }
}

/// The server namespace's table of ours, as `nft list` prints it (empty when there is none).
fn table(lab: &Lab) -> String {
    let (ok, out) = lab.srv.exec(&["nft", "list", "table", "inet", "rocserv"]);
    if ok {
        out
    } else {
        assert!(out.contains("No such file"), "nft list failed: {out}");
        String::new()
    }
}

/// Per-session chains (`c<worker>`, `r<worker>`) and map entries in the table now.
fn session_rules(lab: &Lab) -> Vec<String> {
    table(lab)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("chain c") || l.starts_with("chain r") || l.contains(": jump c"))
        .map(str::to_owned)
        .collect()
}

/// Wait (bounded) until the table holds no session's rules: removal runs right after main
/// reaped the worker, in a task of its own.
fn wait_no_session_rules(lab: &Lab) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = session_rules(lab);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rules left behind:\n{}",
            table(lab)
        );
        // Bounded poll: rule removal has no signal the test can wait on.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn restricted_config(lab: &Lab, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let mut options = vec![
        ("max-ban-score", "0"),
        // Two routes: the config helper keeps one line per option, so the second rides along.
        ("route", "10.232.1.0/24\nroute = 192.168.231.0/25"),
        ("no-route", "10.232.1.128/25"),
        ("restrict-user-to-routes", "true"),
    ];
    options.extend_from_slice(extra);
    lab.config(&options)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn allow_list_and_routes_are_enforced_by_the_kernel() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    let conf = restricted_config(
        &lab,
        &[("restrict-user-to-ports", "\"tcp(80), udp(53), icmp()\"")],
    );
    let server = Server::start(&lab.srv, &conf);
    let client = connect(&lab, "alice");

    // Allowed: listed ports, inside the routes.
    assert_eq!(tcp(&lab, IN_ROUTE, 80), Through);
    assert_eq!(udp(&lab, IN_ROUTE, 53), Through);
    assert_eq!(ping(&lab, IN_ROUTE), Through);
    assert_eq!(tcp(&lab, VPN_SERVER, 80), Through);
    // Ports not listed.
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Rejected);
    assert_eq!(udp(&lab, IN_ROUTE, 54), Rejected);
    // Outside the routes, and inside a no-route.
    assert_eq!(tcp(&lab, OUTSIDE, 80), Rejected);
    assert_eq!(udp(&lab, OUTSIDE, 53), Rejected);
    assert_eq!(ping(&lab, OUTSIDE), Rejected);
    assert_eq!(tcp(&lab, IN_NO_ROUTE, 80), Rejected);
    assert_eq!(ping(&lab, IN_NO_ROUTE), Rejected);

    let before = server.log_len();
    drop(client);
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("session end logged");
    wait_no_session_rules(&lab);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn routes_alone_and_dns_is_always_allowed() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    // Routes that leave out the server's VPN address, which is the DNS server.
    let conf = lab.config(&[
        ("max-ban-score", "0"),
        ("route", "10.232.1.0/24"),
        ("restrict-user-to-routes", "true"),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let _client = connect(&lab, "bob");
    // Any port inside the routes.
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Through);
    assert_eq!(udp(&lab, IN_ROUTE, 54), Through);
    assert_eq!(ping(&lab, IN_ROUTE), Through);
    assert_eq!(tcp(&lab, OUTSIDE, 22), Rejected);
    // DNS to the session's DNS server, TCP and UDP, outside the routes.
    assert_eq!(udp(&lab, VPN_SERVER, 53), Through);
    assert_eq!(udp(&lab, VPN_SERVER, 54), Rejected);
    assert_eq!(ping(&lab, VPN_SERVER), Rejected);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn negated_list_denies_only_the_listed() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    let conf = lab.config(&[
        ("max-ban-score", "0"),
        ("route", "default"),
        ("restrict-user-to-ports", "\"!(tcp(22), udp(54), icmp())\""),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let _client = connect(&lab, "carol");
    assert_eq!(tcp(&lab, IN_ROUTE, 80), Through);
    assert_eq!(tcp(&lab, OUTSIDE, 80), Through);
    assert_eq!(udp(&lab, OUTSIDE, 53), Through);
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Rejected);
    assert_eq!(udp(&lab, IN_ROUTE, 54), Rejected);
    assert_eq!(ping(&lab, IN_ROUTE), Rejected);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn no_rule_survives_a_killed_worker_or_a_killed_main() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    let conf = restricted_config(&lab, &[("restrict-user-to-ports", "\"tcp(80)\"")]);
    let server = Server::start(&lab.srv, &conf);

    // kill -9 of the worker: main's release of the connection removes them.
    let client = connect(&lab, "alice");
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Rejected);
    assert_eq!(session_rules(&lab).len(), 3, "{}", table(&lab));
    client.signal(Signal::SIGSTOP);
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let before = server.log_len();
    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).expect("kill -9 worker");
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("main noticed the dead worker");
    wait_no_session_rules(&lab);
    client.signal(Signal::SIGKILL);
    drop(client);

    // kill -9 of main: the rules stay (nobody is left to remove them) until the next start.
    let _client = connect(&lab, "bob");
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Rejected);
    assert_eq!(session_rules(&lab).len(), 3, "{}", table(&lab));
    let mut server = server;
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL).expect("kill -9 main");
    server.wait_exit(WAIT).expect("main killed");
    // Reaped: its Drop must not signal a PID that may be reused by now.
    std::mem::forget(server);
    assert!(
        !session_rules(&lab).is_empty(),
        "the rules vanished with main; this test would prove nothing"
    );
    let _again = Server::start(&lab.srv, &conf);
    assert_eq!(session_rules(&lab), Vec::<String>::new(), "{}", table(&lab));
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_session_whose_rules_cannot_be_installed_gets_no_tunnel() {
    let lab = Lab::new();
    let conf = restricted_config(&lab, &[]);
    let server = Server::start(&lab.srv, &conf);
    // A table of that name main cannot use (its map has another type): installing fails.
    lab.srv.exec_ok(&[
        "nft",
        "add table inet rocserv; add map inet rocserv clients { type ipv4_addr : verdict; }",
    ]);
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(Duration::from_secs(15));
    assert!(up.is_err(), "tunnel came up without its rules: {up:?}");
    server
        .wait_for_log("cannot install its access rules", WAIT)
        .expect("the refusal is logged");
    let (_, links) = lab.srv.exec(&["ip", "-o", "link", "show"]);
    assert!(!links.contains("vpns"), "tun device left behind:\n{links}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn per_user_file_restricts_that_user_only_and_an_edit_applies_at_the_next_login() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    let dir = lab.dir.join("per-user");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("alice"),
        "restrict-user-to-ports = \"tcp(80)\"\nroute = 10.232.1.0/24\n",
    )
    .unwrap();
    let conf = lab.config(&[
        ("max-ban-score", "0"),
        ("route", "default"),
        ("config-per-user", &format!("{}/", dir.display())),
    ]);
    let server = Server::start(&lab.srv, &conf);

    let alice = connect(&lab, "alice");
    assert_eq!(tcp(&lab, IN_ROUTE, 80), Through);
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Rejected);
    assert_eq!(tcp(&lab, OUTSIDE, 80), Rejected);
    let before = server.log_len();
    drop(alice);
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("alice's session end logged");
    wait_no_session_rules(&lab);

    // bob has no file: the main file restricts nobody, so he gets no rules at all.
    let bob = connect(&lab, "bob");
    assert_eq!(tcp(&lab, IN_ROUTE, 22), Through);
    assert_eq!(tcp(&lab, OUTSIDE, 22), Through);
    assert_eq!(session_rules(&lab), Vec::<String>::new());
    let before = server.log_len();
    drop(bob);
    server
        .wait_for_log_after(before, "session ended", WAIT)
        .expect("bob's session end logged");

    // An edit of alice's file applies at her next login, without a reload.
    std::fs::write(
        dir.join("alice"),
        "restrict-user-to-ports = \"!(tcp(80))\"\n",
    )
    .unwrap();
    let _alice = connect(&lab, "alice");
    assert_eq!(tcp(&lab, OUTSIDE, 22), Through);
    assert_eq!(tcp(&lab, IN_ROUTE, 80), Rejected);
}

/// TCP over IPv6 from the client namespace: a reject is ICMPv6 "administratively prohibited",
/// which the kernel reports as EACCES.
fn tcp6(lab: &Lab, to: std::net::Ipv6Addr, port: u16) -> Fate {
    let r = in_ns(&lab.cli, move || {
        TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(10))
    });
    match r {
        Ok(_) => Through,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Rejected,
        Err(e) => panic!("TCP to [{to}]:{port}: neither through nor rejected: {e}"),
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn ipv6_routes_are_enforced_too() {
    let lab = Lab::new();
    let _services = Services::start(&lab);
    let in_route: std::net::Ipv6Addr = "fd00:232:1::1".parse().unwrap();
    let outside: std::net::Ipv6Addr = "fd00:232:2::1".parse().unwrap();
    for addr in [in_route, outside] {
        let addr = format!("{addr}/128");
        lab.srv
            .exec_ok(&["ip", "-6", "addr", "add", &addr, "dev", "lo"]);
    }
    // Dual-stack on a port of its own (port 80 is taken by the IPv4 listener).
    let _tcp6 = in_ns(&lab.srv, || TcpListener::bind(("::", 8080)).unwrap());
    let conf = lab.config(&[
        ("max-ban-score", "0"),
        ("ipv6-network", rocserv_e2e::lab::POOL6),
        ("route", "10.232.1.0/24\nroute = fd00:232:1::/64"),
        ("restrict-user-to-routes", "true"),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let client = connect(&lab, "alice");
    lab.cli.exec_ok(&[
        "ip",
        "-6",
        "route",
        "replace",
        "fd00:232::/32",
        "dev",
        &client.device,
    ]);
    assert_eq!(tcp6(&lab, in_route, 8080), Through);
    assert_eq!(tcp6(&lab, outside, 8080), Rejected);
    // The server's own IPv6 tunnel address is outside the routes too.
    assert_eq!(tcp6(&lab, rocserv_e2e::lab::VPN_SERVER_IP6, 8080), Rejected);
    assert_eq!(tcp(&lab, IN_ROUTE, 80), Through);
    assert_eq!(tcp(&lab, OUTSIDE, 80), Rejected);
}
