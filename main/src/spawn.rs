//! The one place with `unsafe`: what a child does between fork and exec.
//!
//! A child gets its inherited descriptors on fixed numbers starting at 3 (sec-mod: 3 = its
//! socket to main; worker: 3 = client TCP, 4 = main, 5 = sec-mod), every other descriptor of
//! main stays behind (everything main opens is close-on-exec), and it receives SIGTERM when main
//! dies (PR_SET_PDEATHSIG). Note that the death signal follows the *thread* that forked, which
//! is why main runs a current-thread runtime: the spawning thread lives as long as main.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// First descriptor number a child inherits.
const FIRST_CHILD_FD: RawFd = 3;
/// Temporary copies go above this so that they never collide with 3..3+N.
const TEMP_FD_FLOOR: RawFd = 16;

/// Arrange for `cmd`'s child to find `fds[i]` on descriptor `3 + i` and to get SIGTERM when main
/// dies. The caller keeps `fds` open until `spawn` has returned.
pub fn inherit_fds<const N: usize>(cmd: &mut tokio::process::Command, fds: [RawFd; N]) {
    let parent = std::process::id();
    let closure = move || -> std::io::Result<()> {
        // Only async-signal-safe calls below (prctl, getppid, fcntl, dup2): this runs in the
        // forked child of a multi-threaded process, and nothing allocates.
        //
        // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number has no memory effects.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // If main died before prctl took effect, the signal will never come: give up.
        // SAFETY: getppid has no preconditions.
        if i64::from(unsafe { libc::getppid() }) != i64::from(parent) {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        // Two steps, because a source may already sit on a target number (e.g. the client
        // socket on 4): first copy every source above the targets (close-on-exec, so these
        // copies vanish at exec), then dup2 the copies into place; dup2 clears close-on-exec.
        let mut temps = [0 as RawFd; N];
        for (temp, fd) in temps.iter_mut().zip(fds) {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; returns a new descriptor or -1.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, TEMP_FD_FLOOR) };
            if copy < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *temp = copy;
        }
        for (target, temp) in (FIRST_CHILD_FD..).zip(temps) {
            // SAFETY: dup2 between two valid descriptor numbers of this (child) process.
            if unsafe { libc::dup2(temp, target) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls and touches no memory
    // shared with other threads (it captures plain integers by value).
    unsafe {
        cmd.pre_exec(closure);
    }
}
