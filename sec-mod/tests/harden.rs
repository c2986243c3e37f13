//! `harden::apply` in a child process (the test binary run again with a marker variable; it runs
//! the test on a thread, so capabilities, which are per thread, are read for that thread): after
//! it, the process is not dumpable, has no core limit, keeps only the listed capabilities,
//! `execve` fails with EPERM, it cannot signal its parent, and `ptrace` kills it with SIGSYS.
// Test code may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The child checks its own state with raw libc calls: integer arguments or pointers to locals
// that outlive the call.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use rocserv_sec_mod::harden;

const CHILD: &str = "ROCSERV_HARDEN_CHILD";

#[test]
fn hardened_process_is_locked_down() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hardened_process_is_locked_down",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "applied",
        "dumpable 0",
        "core 0 0",
        "execve EPERM",
        "capabilities ok",
        "signals only to itself",
        "calling ptrace",
    ] {
        assert!(
            stdout.contains(line),
            "missing {line:?}:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stdout.contains("ptrace returned"), "{stdout}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "ptrace must kill the process: {:?}\n{stdout}\n{stderr}",
        out.status
    );
}

/// The child side: apply, report each fact on stdout, end with a forbidden call.
fn child() -> ! {
    harden::apply().unwrap();
    println!("applied");
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    println!("dumpable {dumpable}");
    let mut core = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) }, 0);
    println!("core {} {}", core.rlim_cur, core.rlim_max);
    let err = Command::new("/bin/true").status().unwrap_err();
    if err.raw_os_error() == Some(libc::EPERM) {
        println!("execve EPERM");
    } else {
        println!("execve {err:?}");
    }
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let field = |key: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let root = unsafe { libc::geteuid() } == 0;
    let kept = harden::kept_mask();
    let ok = field("CapEff") & !kept == 0
        && field("CapPrm") & !kept == 0
        && field("CapInh") == 0
        && field("CapAmb") == 0
        && (!root || field("CapBnd") == kept && field("CapEff") == kept);
    println!(
        "capabilities {} (eff {:x} bnd {:x})",
        if ok { "ok" } else { "WRONG" },
        field("CapEff"),
        field("CapBnd")
    );
    let own = unsafe { libc::kill(libc::getpid(), 0) };
    let parent = unsafe { libc::kill(libc::getppid(), 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if own == 0 && parent == -1 && errno == Some(libc::EPERM) {
        println!("signals only to itself");
    } else {
        println!("signals: own {own}, parent {parent} {errno:?}");
    }
    println!("calling ptrace");
    let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    println!("ptrace returned {r}");
    std::process::exit(0);
}
