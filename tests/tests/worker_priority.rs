//! A worker logs in at a lower CPU priority (nice +10 from main's) and gets main's back once its
//! tunnel is granted, and keeps it while its tunnel changes its scheduling slice
//! (main/src/worker_priority.rs, worker/src/tunnel/sched_slice.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

/// Field 19 of /proc/PID/stat (proc_pid_stat(5)): the nice value.
fn nice_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(16).unwrap().parse().unwrap()
}

/// Poll until `pid`'s nice value is `want` (a worker sets its own right after it starts).
fn wait_nice(pid: u32, want: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nice = nice_of(pid);
        if nice == want || Instant::now() > deadline {
            return nice;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_worker_logs_in_niced_and_tunnels_at_mains_priority() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("udp-port", "443")]));
    let main_nice = nice_of(server.pid());
    let login_nice = (main_nice + 10).min(19);

    // A connection that never logs in: its worker waits in the TLS handshake.
    let path = lab.cli.path();
    let idle = std::thread::spawn(move || {
        setns(std::fs::File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let addr = SocketAddr::from((lab::SERVER_IP, 443));
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap()
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let pre_auth = loop {
        if let [pid] = server.workers()[..] {
            break pid;
        }
        assert!(Instant::now() < deadline, "no worker for the connection");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        wait_nice(pre_auth, login_nice),
        login_nice,
        "logging-in worker"
    );

    // A user whose tunnel is up: main's priority, also after traffic (the tunnel's slice
    // changes write the nice value again) over TLS and DTLS.
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS up");
    let tunnel: Vec<u32> = server
        .workers()
        .into_iter()
        .filter(|p| *p != pre_auth)
        .collect();
    assert_eq!(tunnel.len(), 1, "{tunnel:?}");
    assert_eq!(nice_of(tunnel[0]), main_nice, "tunnel's worker");
    lab.bulk_both_ways(4 << 20);
    let (ok, out) = lab.ping_through_tunnel(5);
    assert!(ok, "{out}");
    assert_eq!(
        nice_of(tunnel[0]),
        main_nice,
        "tunnel's worker after traffic"
    );
    // The one still logging in is still below.
    assert_eq!(nice_of(pre_auth), login_nice, "logging-in worker");
    drop(idle);
}
