//! The worker is unprivileged, seccomp-filtered and never holds the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{procfs, Client, ClientOptions, Lab, Server, WAIT};

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn worker_is_sandboxed_and_has_no_key() {
    let lab = Lab::new();
    // The lab's configuration has no `isolate-workers` line: this is the default.
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let pid = workers[0];

    let uid = procfs::status_field(pid, "Uid").expect("Uid");
    assert!(
        uid.split_whitespace().all(|id| id != "0"),
        "worker runs with uid 0: {uid}"
    );
    let gid = procfs::status_field(pid, "Gid").expect("Gid");
    assert!(
        gid.split_whitespace().all(|id| id != "0"),
        "worker runs with gid 0: {gid}"
    );
    assert_eq!(
        procfs::status_field(pid, "Seccomp").as_deref(),
        Some("2"),
        "no seccomp filter"
    );
    assert_eq!(
        procfs::status_field(pid, "NoNewPrivs").as_deref(),
        Some("1")
    );
    assert_eq!(
        procfs::status_field(pid, "CapEff").as_deref(),
        Some("0000000000000000")
    );

    let key = lab.pki.key.display().to_string();
    let fds = procfs::fd_targets(pid);
    assert!(
        !fds.iter().any(|t| t == &key),
        "worker has an fd to the key: {fds:?}"
    );
    // Only the client socket, the two IPC sockets, the tun device and runtime internals.
    assert!(
        fds.iter()
            .all(|t| !t.starts_with('/') || t == "/dev/net/tun" || t == "/dev/null"),
        "worker holds files: {fds:?}"
    );

    // sec-mod, not the worker, holds the key (it is loaded in memory; the fd is closed).
    let secmods: Vec<u32> = procfs::children(server.pid())
        .into_iter()
        .filter(|p| procfs::comm(*p).as_deref() == Some("rocserv-sm"))
        .collect();
    assert_eq!(secmods.len(), 1, "one sec-mod: {secmods:?}");
}

/// In its tunnel phase the worker holds no channel to sec-mod (it closed it before CONNECT): of
/// its SOCK_SEQPACKET sockets (both IPC channels are) only the one to main is left.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn tunnel_worker_has_no_channel_to_sec_mod() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let pid = workers[0];
    // Inodes of the SOCK_SEQPACKET (type 0005) unix sockets in the worker's network namespace
    // (its IPC pairs live there); columns: Num RefCount Protocol Flags Type St Inode Path.
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    let unix: Vec<String> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.get(4) == Some(&"0005"))
        .filter_map(|cols| cols.get(6).map(|inode| (*inode).to_owned()))
        .collect();
    let fds = procfs::fd_targets(pid);
    let held: Vec<&String> = fds
        .iter()
        .filter(|t| {
            t.strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|inode| unix.iter().any(|u| u == inode))
        })
        .collect();
    assert_eq!(
        held.len(),
        1,
        "unix sockets besides main's channel: {fds:?}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn turning_the_sandbox_off_is_explicit_and_warned_about() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("isolate-workers", "false")]));
    server
        .wait_for_log(
            "warning: isolate-workers: false: workers run without the seccomp filter",
            WAIT,
        )
        .expect("warning at start");
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(
        procfs::status_field(workers[0], "Seccomp").as_deref(),
        Some("0"),
        "isolate-workers = false must be what turns the filter off"
    );
}

/// `run-as-user = root` runs, as in ocserv, with a warning naming the file's line; the worker
/// keeps uid 0 but no capability at all (bounding set included) and the seccomp filter.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn root_worker_keeps_the_sandbox_and_no_capability() {
    let lab = Lab::new();
    let conf = lab.config(&[("run-as-user", "root"), ("run-as-group", "root")]);
    let server = Server::start(&lab.srv, &conf);
    let line = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("run-as-user"))
        .unwrap()
        + 1;
    server
        .wait_for_log(
            &format!("{}:{line}: warning: run-as-user: root", conf.display()),
            WAIT,
        )
        .expect("warning naming the file and line");
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let pid = workers[0];
    let field = |key| procfs::status_field(pid, key).unwrap_or_else(|| panic!("{key}"));
    assert!(field("Uid").split_whitespace().all(|id| id == "0"));
    assert_eq!(field("Seccomp"), "2", "no seccomp filter");
    assert_eq!(field("NoNewPrivs"), "1");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), "0000000000000000", "{set}");
    }
    // The tunnel works through the root worker.
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
}
