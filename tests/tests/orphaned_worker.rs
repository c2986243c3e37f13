//! A worker must not outlive a killed main even if it never reads its channel again (issue 9).
//!
//! The parent-death signal main armed between fork and exec is cleared by the kernel when the
//! worker drops its privileges (prctl(2): PR_SET_PDEATHSIG; `commit_creds`); the worker arms it
//! again itself after the drop. A running worker also ends on its channel's EOF, so the test
//! freezes it: a stopped process keeps the kernel's SIGTERM pending (`ShdPnd`) instead of dying.
//!
//! Its own test binary because it makes the test process a child subreaper, which is
//! process-wide: the killed main's worker is re-parented to this process, in the worker's
//! session, so its process group (a group of its own since session 10) is not orphaned. An
//! orphaned group with a stopped member gets SIGHUP and SIGCONT from the kernel (POSIX, `_exit`),
//! which kills the frozen worker whether or not it armed the death signal: under an init that
//! reaps at once (CI's), the worker was gone before the test looked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use rocserv_e2e::{procfs, Client, ClientOptions, Lab, Server, WAIT};

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_killed_mains_workers_get_sigterm() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let lab = Lab::new();
    let mut server = match std::env::var_os("TEST_ROCSERV") {
        // To check the test against another build.
        Some(bin) => Server::start_binary(&lab.srv, &lab.config(&[]), std::path::Path::new(&bin)),
        None => Server::start(&lab.srv, &lab.config(&[])),
    };
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("alice up");
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let worker = Pid::from_raw(workers[0] as i32);
    kill(worker, Signal::SIGSTOP).expect("SIGSTOP the worker");
    // kill(2) returns before the stop takes effect: a death signal that came first would end
    // the still running worker (SIGTERM's default action) and the test would see nothing.
    let stopped = || {
        procfs::status_field(workers[0], "State").is_some_and(|s| s.trim_start().starts_with('T'))
    };
    let until = Instant::now() + WAIT;
    while !stopped() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(stopped(), "the worker did not stop");
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL).expect("kill -9 main");
    server.wait_exit(WAIT).expect("main killed");
    // Reaped: its Drop must not signal a PID that may be reused by now.
    std::mem::forget(server);
    let sigterm_pending = || {
        procfs::status_field(workers[0], "ShdPnd")
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
    };
    let until = Instant::now() + Duration::from_secs(5);
    while !sigterm_pending() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pending = sigterm_pending();
    // Still stopped (not ended by anything else), so the pending signal is what the test saw.
    let state = procfs::status_field(workers[0], "State");
    kill(worker, Signal::SIGKILL).expect("kill -9 the frozen worker");
    // It is this process's child now: reap it.
    let status = waitpid(worker, None).expect("reap the worker");
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{status:?}"
    );
    assert!(pending, "no SIGTERM for the worker of a killed main");
    assert!(
        state
            .as_deref()
            .is_some_and(|s| s.trim_start().starts_with('T')),
        "the worker was not stopped: {state:?}"
    );
}
