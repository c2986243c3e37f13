//! The one place with `unsafe`: starting children. sec-mod (once) is forked and runs
//! `inherit_fds`'s closure before exec; workers (one per connection) are started with
//! `posix_spawn` (`spawn_vfork`), which does not copy main, and arm the death signal themselves.
//!
//! A child gets its inherited descriptors on fixed numbers starting at 3 (sec-mod: 3 = its
//! socket to main; worker: 3 = client TCP, 4 = main, 5 = sec-mod), every other descriptor of
//! main stays behind (everything main opens is close-on-exec), and it receives SIGTERM when main
//! dies (PR_SET_PDEATHSIG). Note that the death signal follows the *thread* that forked, which
//! is why main runs a current-thread runtime: the spawning thread lives as long as main.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd as _, RawFd};

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

/// A worker started by [`spawn_vfork`]: what main needs of `tokio::process::Child` (its pid,
/// SIGKILL, an awaitable exit), over a pidfd.
pub struct Spawned {
    pid: libc::pid_t,
    /// Taken only by `drop`, which hands it to the reaping task.
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    status: Option<std::process::ExitStatus>,
}

impl Spawned {
    /// The process id until it has been reaped (as tokio's `Child::id`).
    pub fn id(&self) -> Option<u32> {
        match self.status {
            Some(_) => None,
            None => u32::try_from(self.pid).ok(),
        }
    }

    /// Send SIGKILL (through the pidfd: never to a recycled pid). Nothing once reaped.
    pub fn start_kill(&mut self) -> std::io::Result<()> {
        let Some(pidfd) = self.pidfd.as_ref().filter(|_| self.status.is_none()) else {
            return Ok(());
        };
        // SAFETY: pidfd_send_signal with a pidfd we own, a signal number and no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.get_ref().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Wait for the exit and reap the process. Cancel-safe (a `select!` branch).
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt as _;
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(pidfd) = &self.pidfd else {
                return Err(std::io::ErrorKind::NotFound.into());
            };
            let mut guard = pidfd.readable().await?;
            let mut raw = 0;
            // SAFETY: waitpid on our own child with a valid out pointer. The pid cannot have
            // been reused: it is ours until this call reaps it.
            match unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) } {
                0 => guard.clear_ready(),
                -1 => return Err(std::io::Error::last_os_error()),
                _ => self.status = Some(std::process::ExitStatus::from_raw(raw)),
            }
        }
    }
}

impl Drop for Spawned {
    /// As `kill_on_drop(true)`: a worker whose task is dropped (shutdown) goes with it, and is
    /// reaped on the runtime if one is still there.
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.start_kill();
        // The pidfd moves into a task that reaps the child (no descriptor is duplicated: this
        // also works when main is out of descriptors).
        if let (Ok(rt), Some(pidfd)) = (tokio::runtime::Handle::try_current(), self.pidfd.take()) {
            let pid = self.pid;
            rt.spawn(async move {
                let mut orphan = Spawned {
                    pid,
                    pidfd: Some(pidfd),
                    status: None,
                };
                let _ = orphan.wait().await;
                // Reaped, or its wait failed: either way the orphan's own drop does nothing.
                orphan.pidfd = None;
            });
        }
    }
}

/// Start `path` with `args`, an empty environment, stdin on /dev/null, stderr on a new pipe
/// (its read end, non-blocking, is returned), `fds[i]` on descriptor `3 + i` and nothing else
/// of main's (everything main opens is close-on-exec).
///
/// `posix_spawn`: glibc starts the child with `clone(CLONE_VM | CLONE_VFORK)`, so main's
/// memory is not copied (a fork of main and the copy's teardown at exec cost ~0.4 ms of CPU
/// per login, doc/performance.md "session 9: login CPU"). What `inherit_fds` does between fork
/// and exec moves: the descriptors into file actions, PR_SET_PDEATHSIG into the worker itself
/// (`--main-pid`: it sets the signal first thing and exits if main is already gone).
pub fn spawn_vfork<const N: usize>(
    path: &std::path::Path,
    args: &[&str],
    fds: [RawFd; N],
) -> std::io::Result<(Spawned, std::os::fd::OwnedFd)> {
    use std::ffi::CString;
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::os::unix::ffi::OsStrExt as _;

    let nul = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(nul)?;
    let c_args = std::iter::once(Ok(c_path.clone()))
        .chain(args.iter().map(|a| CString::new(*a).map_err(nul)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut argv: Vec<*mut libc::c_char> = c_args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let envp: [*mut libc::c_char; 1] = [std::ptr::null_mut()];
    let dev_null = c"/dev/null";

    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made and are owned here only.
    let (err_read, err_write) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    // Temporary numbers: the lowest from TEMP_FD_FLOOR up that are not a source (copied later)
    // nor a target. The child's descriptor table is its own copy, so landing on a number main
    // uses for something else only closes that (close-on-exec) copy; low numbers stay below
    // RLIMIT_NOFILE whatever main's highest descriptor is.
    let temps = temp_fds(&fds, err_write.as_raw_fd());
    let mut pid: libc::pid_t = 0;
    // SAFETY: the file actions and attributes are initialised before use and destroyed on
    // every path; every pointer handed to posix_spawn (path, argv, envp, "/dev/null") lives
    // until it returns. The child runs no code of ours before exec.
    let rc = unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        let rc = libc::posix_spawn_file_actions_init(actions.as_mut_ptr());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let rc = libc::posix_spawnattr_init(attr.as_mut_ptr());
        if rc != 0 {
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let a = actions.as_mut_ptr();
        // Sources first (one may sit on 0-2 if main was started with those closed), then
        // stdin and stderr, then the targets.
        let mut rc = 0;
        for (i, fd) in fds.into_iter().enumerate() {
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_adddup2(a, fd, temps[i]);
            }
        }
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_adddup2(a, err_write.as_raw_fd(), 2);
        }
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_addopen(a, 0, dev_null.as_ptr(), libc::O_RDONLY, 0);
        }
        // Not main's stdout: a worker writing there would put unprefixed lines in main's log
        // stream; everything it says goes through the stderr relay.
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_addopen(a, 1, dev_null.as_ptr(), libc::O_WRONLY, 0);
        }
        for (target, temp) in (FIRST_CHILD_FD..).zip(temps) {
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_adddup2(a, temp, target);
            }
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_addclose(a, temp);
            }
        }
        // As std's Command: an empty signal mask and SIGPIPE back to its default (main
        // ignores it; the worker's runtime sets what it wants).
        let at = attr.as_mut_ptr();
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        let mut pipe_only = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        libc::sigemptyset(pipe_only.as_mut_ptr());
        libc::sigaddset(pipe_only.as_mut_ptr(), libc::SIGPIPE);
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigmask(at, empty.as_ptr());
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigdefault(at, pipe_only.as_ptr());
        }
        if rc == 0 {
            #[allow(clippy::cast_possible_truncation, reason = "the flags fit in a short")]
            // SETPGROUP with the attribute's default pgroup 0: a process group of its own, so
            // a terminal's Ctrl-C (SIGINT to main's foreground group) reaches main alone, which
            // ends each session in order, not the workers mid-tunnel.
            let flags = (libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETPGROUP) as libc::c_short;
            rc = libc::posix_spawnattr_setflags(at, flags);
        }
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                c_path.as_ptr(),
                a,
                at,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawnattr_destroy(at);
        libc::posix_spawn_file_actions_destroy(a);
        rc
    };
    drop(err_write);
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    // SAFETY: pidfd_open on the child just started; returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    let pidfd = match RawFd::try_from(pidfd) {
        // SAFETY: a new descriptor owned here only.
        Ok(fd) if fd >= 0 => unsafe { OwnedFd::from_raw_fd(fd) },
        _ => {
            let err = std::io::Error::last_os_error();
            kill_and_reap(pid);
            return Err(err);
        }
    };
    // SAFETY: the `AsyncFd` owns the pidfd until `Spawned` is dropped (deregistered before
    // it is closed); nothing else refers to that number.
    let pidfd = match unsafe { tokio::io::unix::AsyncFd::register(pidfd) } {
        Ok(pidfd) => pidfd,
        Err(err) => {
            kill_and_reap(pid);
            return Err(err.into());
        }
    };
    let spawned = Spawned {
        pid,
        pidfd: Some(pidfd),
        status: None,
    };
    set_nonblocking(&err_read)?;
    Ok((spawned, err_read))
}

/// A child just started whose watch could not be set up: kill it and wait for it (unreaped, no
/// one else could).
fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: kill and reap our own child, not reaped yet (its pid cannot have been reused);
    // waitpid with a null status pointer.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// `N` descriptor numbers from `TEMP_FD_FLOOR` up, none of them in `fds` nor `also` (see
/// `spawn_vfork`).
fn temp_fds<const N: usize>(fds: &[RawFd; N], also: RawFd) -> [RawFd; N] {
    let mut temps = [0; N];
    let mut free = (TEMP_FD_FLOOR..).filter(|n| !fds.contains(n) && *n != also);
    for temp in &mut temps {
        *temp = free.next().unwrap_or(RawFd::MAX);
    }
    temps
}

/// O_NONBLOCK on the pipe's read end, for tokio.
fn set_nonblocking(fd: &std::os::fd::OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_numbers_skip_the_sources_and_stay_low() {
        assert_eq!(temp_fds(&[3, 4, 5], 6), [16, 17, 18]);
        assert_eq!(temp_fds(&[17, 16, 900_000], 19), [18, 20, 21]);
        assert_eq!(temp_fds(&[], 16), []);
    }
}
