//! The worker is unprivileged, seccomp-filtered and never holds the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rocserv_e2e::{procfs, Client, ClientOptions, Lab, Server, WAIT};

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn worker_is_sandboxed_and_has_no_key() {
    let lab = Lab::new();
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
