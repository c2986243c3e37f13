//! The worker's real sandbox (`sandbox::enter` with seccomp on), entered by a child process:
//! each call a compromised worker could use to reach outside its own client kills the child with
//! SIGSYS, each call the worker makes still works.
//!
//! No libtest harness (`harness = false`): the test re-executes itself with `SECCOMP_CASE` set,
//! and the child must be a plain single-threaded program (libtest's own threads would share the
//! filter and confuse the thread cases).

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::UdpSocket;
use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use rocserv_proto::ipc::main_worker::SandboxPolicy;
use rocserv_worker::sandbox;
use rocserv_worker::tunnel::moderation::Class;
use rocserv_worker::tunnel::{sched_slice, udp_pmtu};

const CASE: &str = "SECCOMP_CASE";
/// The pid a forbidden signal is aimed at (the parent: signal 0 only, so nothing is delivered).
const TARGET: &str = "SECCOMP_TARGET_PID";
/// A UDP port on 127.0.0.1 the parent listens on.
const PORT: &str = "SECCOMP_PORT";

/// Not in the libc crate (linux/fcntl.h: F_SETSIG = 10).
const F_SETSIG: libc::c_int = 10;

/// Exit codes of a child that survived its call.
const CALL_OK: i32 = 0;
const CALL_FAILED: i32 = 3;
/// The case could not set up what it needs (raising a hard rlimit needs CAP_SYS_RESOURCE).
const SKIPPED: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The filter kills the process.
    Sigsys,
    /// The call is allowed and succeeds.
    Works,
    /// abort() still raises SIGABRT (tgkill to itself is allowed).
    Sigabrt,
}

const CASES: &[(&str, Expect)] = &[
    ("tgkill_other_process", Expect::Sigsys),
    ("tkill_other_process", Expect::Sigsys),
    ("kill_other_process", Expect::Sigsys),
    ("fcntl_setown", Expect::Sigsys),
    ("fcntl_setsig", Expect::Sigsys),
    ("fcntl_setfl_async", Expect::Sigsys),
    ("fcntl_dupfd", Expect::Sigsys),
    ("setsockopt_bindtodevice", Expect::Sigsys),
    ("setsockopt_rcvbuf", Expect::Sigsys),
    ("setsockopt_reuseport", Expect::Sigsys),
    // net-priority is main's to set (main/src/net_priority.rs): a worker cannot raise its own.
    ("setsockopt_priority", Expect::Sigsys),
    ("setsockopt_tos", Expect::Sigsys),
    ("setsockopt_tclass", Expect::Sigsys),
    ("getsockopt_peercred", Expect::Sigsys),
    ("sendto_with_destination", Expect::Sigsys),
    ("sched_setattr_other_process", Expect::Sigsys),
    ("sched_setattr_with_flags", Expect::Sigsys),
    ("thread_started_before_the_filter", Expect::Sigsys),
    ("thread_started_after_the_filter", Expect::Sigsys),
    ("tgkill_own_thread", Expect::Works),
    ("abort", Expect::Sigabrt),
    ("fcntl_nonblocking", Expect::Works),
    ("path_mtu_options", Expect::Works),
    ("send_on_connected_socket", Expect::Works),
    ("drop_a_socket", Expect::Works),
    ("own_scheduling_slice", Expect::Works),
    // Inherited limits that would let an unprivileged task go real-time or lower its nice
    // value: the sandbox clears them, so the allowed sched_setattr on itself is refused.
    ("realtime_refused_despite_rlimit_rtprio", Expect::Works),
    ("lower_nice_refused_despite_rlimit_nice", Expect::Works),
];

fn main() -> ExitCode {
    if let Ok(case) = std::env::var(CASE) {
        child(&case);
    }
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let mut failed = 0;
    for &(case, expect) in CASES {
        let status = run_child(case, port);
        if status.code() == Some(SKIPPED) {
            println!("test seccomp::{case} ... SKIPPED (cannot raise a hard rlimit here)");
            continue;
        }
        let ok = match expect {
            Expect::Sigsys => status.signal() == Some(libc::SIGSYS),
            Expect::Sigabrt => status.signal() == Some(libc::SIGABRT),
            Expect::Works => status.code() == Some(CALL_OK),
        };
        println!(
            "test seccomp::{case} ... {} (expected {expect:?}, got {status})",
            if ok { "ok" } else { "FAILED" }
        );
        failed += usize::from(!ok);
    }
    println!("\n{} cases, {failed} failed", CASES.len());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_child(case: &str, port: u16) -> ExitStatus {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CASE, case)
        .env(TARGET, std::process::id().to_string())
        .env(PORT, port.to_string())
        .spawn()
        .unwrap();
    // Bounded: a child that hangs is killed (by its pid) and fails its case.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn env_number(name: &str) -> u32 {
    std::env::var(name).unwrap().parse().unwrap()
}

/// Everything the child needs is made before the filter (socket() is not allowed after it).
fn child(case: &str) -> ! {
    let target = libc::pid_t::try_from(env_number(TARGET)).unwrap();
    let port = u16::try_from(env_number(PORT)).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(("127.0.0.1", port)).unwrap();
    let fd = udp.as_raw_fd();
    let v6 = UdpSocket::bind("[::]:0")
        .ok()
        .filter(|s| s.connect(("::ffff:127.0.0.1", port)).is_ok());
    // A thread that waits for the filter, then makes a forbidden call and reports back (it never
    // exits, so its exit path cannot be what kills the process).
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<i64>();
    if case == "thread_started_before_the_filter" {
        std::thread::spawn(move || {
            go_rx.recv().unwrap();
            // SAFETY: kill(2) with signal 0 only checks that the target exists.
            let rc = unsafe { libc::kill(target, 0) };
            done_tx.send(i64::from(rc)).unwrap();
            loop {
                std::thread::park();
            }
        });
    }

    // As if main had inherited generous limits (limits.conf rtprio, systemd LimitRTPRIO=).
    let raise = match case {
        "realtime_refused_despite_rlimit_rtprio" => Some((libc::RLIMIT_RTPRIO, 50)),
        "lower_nice_refused_despite_rlimit_nice" => Some((libc::RLIMIT_NICE, 40)),
        _ => None,
    };
    if let Some((resource, value)) = raise {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: a valid rlimit alive for the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            // Raising a hard limit needs CAP_SYS_RESOURCE: without root the case proves nothing.
            eprintln!("{case}: cannot raise the limit (not root?): skipped");
            std::process::exit(SKIPPED);
        }
    }
    // SAFETY: no pointers; 0 = the calling process.
    let nice_before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // As the worker does: policy and nice are read before the filter.
    sched_slice::init();
    // A `struct sched_attr` (SCHED_ATTR_SIZE_VER0) for the forbidden calls: the default slice.
    let mut attr = [0u32; 12];
    attr[0] = 48;
    let attr = std::ptr::from_mut(&mut attr) as i64;
    let (uid, gid) = if nix::unistd::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    };
    sandbox::enter(&SandboxPolicy {
        uid,
        gid,
        seccomp: true,
    })
    .unwrap();

    // A forbidden call that returns at all, whatever its result, is the failure: the child
    // then exits with CALL_OK instead of dying.
    let ok = match case {
        "tgkill_other_process" => syscall3(libc::SYS_tgkill, target.into(), target.into(), 0) >= -1,
        "tkill_other_process" => syscall3(libc::SYS_tkill, target.into(), 0, 0) >= -1,
        "kill_other_process" => syscall3(libc::SYS_kill, target.into(), 0, 0) >= -1,
        "fcntl_setown" => fcntl(fd, libc::F_SETOWN, target.into()) >= -1,
        "fcntl_setsig" => fcntl(fd, F_SETSIG, libc::SIGKILL.into()) >= -1,
        "fcntl_setfl_async" => {
            fcntl(fd, libc::F_SETFL, (libc::O_NONBLOCK | libc::O_ASYNC).into()) >= -1
        }
        "fcntl_dupfd" => fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) >= -1,
        "setsockopt_bindtodevice" => {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, b"lo\0") >= -1
        }
        "setsockopt_rcvbuf" => {
            setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &1024i32.to_ne_bytes(),
            ) >= -1
        }
        "setsockopt_reuseport" => {
            setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                &1i32.to_ne_bytes(),
            ) >= -1
        }
        "setsockopt_priority" => {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_PRIORITY, &6i32.to_ne_bytes()) >= -1
        }
        "setsockopt_tos" => {
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_TOS, &0xb8i32.to_ne_bytes()) >= -1
        }
        "setsockopt_tclass" => {
            setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS,
                &0xb8i32.to_ne_bytes(),
            ) >= -1
        }
        "getsockopt_peercred" => {
            let mut buf = [0u8; 12];
            let mut len = libc::socklen_t::try_from(buf.len()).unwrap();
            // SAFETY: the kernel writes at most `len` bytes into the local buffer.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_PEERCRED,
                    buf.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            rc >= -1
        }
        "sendto_with_destination" => {
            let addr = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap(),
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a live local buffer and address of the given lengths.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    b"x".as_ptr().cast(),
                    1,
                    0,
                    std::ptr::from_ref(&addr).cast(),
                    libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap(),
                )
            };
            rc >= -1
        }
        "thread_started_before_the_filter" => {
            go_tx.send(()).unwrap();
            done_rx.recv().is_ok()
        }
        "thread_started_after_the_filter" => std::thread::spawn(|| ()).join().is_ok(),
        "tgkill_own_thread" => {
            // SAFETY: plain syscalls without pointers.
            let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
            syscall3(libc::SYS_tgkill, pid.into(), tid.into(), 0) == 0
        }
        "abort" => std::process::abort(),
        "fcntl_nonblocking" => {
            let flags = fcntl(fd, libc::F_GETFL, 0);
            flags >= 0
                && fcntl(fd, libc::F_SETFL, flags | i64::from(libc::O_NONBLOCK)) == 0
                && fcntl(fd, libc::F_GETFL, 0) & i64::from(libc::O_NONBLOCK) != 0
        }
        "path_mtu_options" => path_mtu_options(&udp) && v6.as_ref().is_none_or(path_mtu_options),
        "send_on_connected_socket" => {
            udp.send(b"x").is_ok()
                && nix::sys::socket::send(fd, b"y", nix::sys::socket::MsgFlags::empty()).is_ok()
        }
        "sched_setattr_other_process" => {
            syscall3(libc::SYS_sched_setattr, target.into(), attr, 0) >= -1
        }
        "sched_setattr_with_flags" => syscall3(libc::SYS_sched_setattr, 0, attr, 1) >= -1,
        "own_scheduling_slice" => {
            sched_slice::apply(Class::Interactive).is_ok()
                && sched_slice::apply(Class::Bulk).is_ok()
        }
        "realtime_refused_despite_rlimit_rtprio" => {
            // SCHED_FIFO priority 1.
            let mut fifo = [0u32; 12];
            fifo[0] = 48;
            fifo[1] = 1;
            fifo[5] = 1;
            refused(std::ptr::from_mut(&mut fifo) as i64)
        }
        "lower_nice_refused_despite_rlimit_nice" => {
            // SCHED_OTHER, nice one below the one read before the filter (getpriority is not
            // allowed after it).
            let mut lower = [0u32; 12];
            lower[0] = 48;
            lower[4] = (nice_before - 1).cast_unsigned();
            refused(std::ptr::from_mut(&mut lower) as i64)
        }
        // Closing goes through std's OwnedFd::drop, which checks the descriptor first.
        "drop_a_socket" => {
            drop(udp);
            true
        }
        other => panic!("unknown case {other}"),
    };
    std::process::exit(if ok { CALL_OK } else { CALL_FAILED })
}

/// What `tunnel/udp_pmtu.rs` does on the DTLS socket: IPv4, and IPv6 with an IPv4-mapped
/// peer (main's `[::]` socket), which sets both families' option.
fn path_mtu_options(socket: &UdpSocket) -> bool {
    udp_pmtu::set_discovery(socket.as_fd(), true).is_ok()
        && udp_pmtu::path_mtu(socket.as_fd()).is_some()
        && udp_pmtu::set_discovery(socket.as_fd(), false).is_ok()
}

/// `sched_setattr(0, attr, 0)` fails with EPERM.
fn refused(attr: i64) -> bool {
    let rc = syscall3(libc::SYS_sched_setattr, 0, attr, 0);
    let err = std::io::Error::last_os_error();
    if rc == 0 {
        eprintln!("sched_setattr succeeded");
    }
    rc == -1 && err.raw_os_error() == Some(libc::EPERM)
}

fn syscall3(nr: libc::c_long, a: i64, b: i64, c: i64) -> libc::c_long {
    // SAFETY: the calls used here take integers, or a pointer to a live buffer of the size the
    // kernel reads (`attr` in `child`).
    unsafe { libc::syscall(nr, a, b, c) }
}

fn fcntl(fd: RawFd, cmd: libc::c_int, arg: i64) -> i64 {
    // SAFETY: the commands used here take an integer argument.
    i64::from(unsafe { libc::fcntl(fd, cmd, arg) })
}

fn setsockopt(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> i64 {
    let len = libc::socklen_t::try_from(value.len()).unwrap();
    // SAFETY: the kernel reads `len` bytes from the live slice.
    i64::from(unsafe { libc::setsockopt(fd, level, name, value.as_ptr().cast(), len) })
}
