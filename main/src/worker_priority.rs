//! A worker logs in at a lower CPU priority than the tunnels: it raises its own nice value by
//! `LOGIN_NICE_STEP` when it starts (rocserv-worker's `tunnel/sched_slice.rs`), and main, which
//! may lower a nice value (root; the worker may not: its RLIMIT_NICE is 0), sets it back to
//! main's own once the tunnel is granted, before the worker hears of the grant. So a storm of
//! logins (TLS handshakes in hundreds of workers) takes the CPU only when established users'
//! workers leave it, instead of holding their packets behind a run queue of handshakes
//! (doc/performance.md, "session 10: tail latency").
//!
//! `setpriority(PRIO_PROCESS, pid)` acts on the one thread `pid` (setpriority(2), NOTES): the
//! worker's main thread, which runs its tunnel.
// Two syscalls that nix does not wrap.
#![allow(unsafe_code)]

use std::io;

/// The calling process's nice value.
fn own_nice() -> io::Result<i32> {
    // getpriority(2) may return -1 as a value: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: no pointers; PRIO_PROCESS with who = 0 is the calling thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(nice)
}

/// Give worker `pid` (main's child, not reaped: its pid cannot have been reused) main's own
/// nice value again. The worker writes the nice value it started with whenever it changes its
/// scheduling slice, which is main's, so the two agree.
pub fn tunnel_granted(pid: u32) -> io::Result<()> {
    if pid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the worker's process is gone (reaped)",
        ));
    }
    let nice = own_nice()?;
    let who = libc::id_t::from(pid);
    // SAFETY: no pointers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child at nice +10 comes back to ours (run as root, as the e2e tests; an unprivileged
    /// run may not lower a nice value and only checks the error).
    #[test]
    fn a_niced_child_gets_mains_nice_back() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        let ours = own_nice().unwrap();
        // SAFETY: no pointers.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, (ours + 10).min(19)) };
        assert_eq!(rc, 0);
        let result = tunnel_granted(pid);
        let nice = nice_of(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        if nix::unistd::geteuid().is_root() {
            result.unwrap();
            assert_eq!(nice, ours);
        } else {
            assert!(result.is_err());
        }
    }

    /// Field 19 of /proc/PID/stat (proc_pid_stat(5)).
    fn nice_of(pid: u32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }
}
