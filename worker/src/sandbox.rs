//! Locking the worker in before it reads a byte from the client (ocserv doc/design.md; style.md
//! habit 7): drop to the unprivileged user, forbid regaining privileges, check that they are gone,
//! then install the seccomp allow-list.
//!
//! Mismatch action: kill the process (SIGSYS). A worker that reaches for a syscall outside the
//! list is either broken or compromised; dying is loud (main sees the signal in the exit status)
//! and leaves no half-working state behind, where `EPERM` would let a probing attacker continue
//! and would turn a missing entry into a subtle malfunction. The list is the steady state of a
//! current-thread tokio + rustls worker observed with `strace -f` (dependency-findings.md §7) plus
//! the memory, signal and fd-passing calls it needs.
//!
//! Calls that could reach outside this one client are allowed only with the arguments the worker
//! itself uses ([`arg_rules`]): `tgkill` only to its own thread group (every worker runs as the
//! same uid, so an unfiltered one could signal its neighbours), `fcntl` only F_GETFD, F_GETFL and
//! F_SETFL without O_ASYNC (F_SETOWN + O_ASYNC would aim SIGIO at another process), `setsockopt` /
//! `getsockopt` only the path MTU options of `tunnel/udp_pmtu.rs` (no SO_BINDTODEVICE,
//! SO_REUSEPORT, buffer sizes, ...), `sendto` only without a destination address (on the DTLS
//! socket a destination would send from the server's UDP address to anywhere). `sendmsg` cannot
//! be held the same way: its destination (`msg_name`) is behind a pointer, which seccomp does not
//! read (doc/security/worker-sandbox.md, residual risks). `sched_setattr` only on itself (pid 0)
//! with flags 0, for the short scheduling slice of `tunnel/sched_slice.rs`; the `struct
//! sched_attr` is behind a pointer too, so a compromised worker can set any slice up to the
//! kernel's 100 ms clamp (later preemption of others on its CPU, the same CPU share), a
//! `UTIL_CLAMP_MIN` (frequency boost), SCHED_BATCH/IDLE or a higher nice; RLIMIT_RTPRIO and
//! RLIMIT_NICE are cleared first ([`clear_sched_limits`]) so real-time and lower nice are refused,
//! and SCHED_DEADLINE needs CAP_SYS_NICE (doc/security/latency.md). The filter is installed on
//! every thread of the process at once (SECCOMP_FILTER_FLAG_TSYNC), and `clone` is not allowed
//! afterwards.

use std::collections::BTreeMap;

use nix::unistd::{getegid, geteuid, getgid, getuid, setgid, setgroups, setuid, Gid, Uid};
use rocserv_proto::ipc::main_worker::SandboxPolicy;
use seccompiler::{BpfProgram, SeccompAction, SeccompCondition, SeccompRule, TargetArch};

/// The sandbox could not be set up; the worker must exit.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// setgroups, setgid or setuid failed.
    #[error("cannot drop privileges to uid {uid} gid {gid}")]
    Drop {
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
    /// After dropping, root could be regained or is still held.
    #[error("privileges were not dropped (uid {uid}, euid {euid}): refusing to serve")]
    StillPrivileged { uid: u32, euid: u32 },
    /// A root worker could not drop its capabilities.
    #[error("cannot drop the capabilities of a root worker")]
    Capabilities(#[source] std::io::Error),
    /// A root worker still holds capabilities after dropping them.
    #[error("capabilities left after dropping (effective {effective:#x}, permitted {permitted:#x}): refusing to serve")]
    StillCapable { effective: u64, permitted: u64 },
    /// RLIMIT_RTPRIO or RLIMIT_NICE could not be set to 0.
    #[error("cannot clear the scheduling limits")]
    SchedLimits(#[source] std::io::Error),
    /// PR_SET_PDEATHSIG failed, or main is gone already.
    #[error("cannot tie the worker to main's life")]
    DeathSignal(#[source] nix::Error),
    /// PR_SET_NO_NEW_PRIVS failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] nix::Error),
    /// The filter could not be built for this architecture.
    #[error("cannot build the seccomp filter")]
    Build(#[source] seccompiler::BackendError),
    /// The architecture is not one seccompiler knows.
    #[error("no seccomp support for this architecture")]
    Arch(#[source] seccompiler::BackendError),
    /// The allow-list could not be laid out as a search.
    #[error("cannot build the seccomp filter")]
    Tree(#[source] crate::bpf_tree::TreeError),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter")]
    Apply(#[source] seccompiler::Error),
}

/// Apply `policy`. Started as root: become `policy.uid/gid`. Started as another user (tests):
/// keep it. Either way, end up unable to become root again, with no_new_privs set and, when
/// `policy.seccomp`, the allow-list installed.
pub fn enter(policy: &SandboxPolicy) -> Result<(), SandboxError> {
    let parent = nix::unistd::getppid();
    if policy.uid == 0 && geteuid().is_root() {
        stay_root_without_capabilities(policy)?;
    } else if geteuid().is_root() {
        let gid = Gid::from_raw(policy.gid);
        let uid = Uid::from_raw(policy.uid);
        let drop_err = |source| SandboxError::Drop {
            uid: policy.uid,
            gid: policy.gid,
            source,
        };
        setgroups(&[gid]).map_err(drop_err)?;
        setgid(gid).map_err(drop_err)?;
        setuid(uid).map_err(drop_err)?;
    }
    // setuid() sets real, effective and saved ids, so this must fail now (boringtun
    // drop_privileges.rs does the same check). Done before seccomp: setuid is not on the list.
    // A root worker (policy uid 0) stays uid 0 and was checked for capabilities instead.
    let root_again = policy.uid != 0
        && (setuid(Uid::from_raw(0)).is_ok() || getuid().is_root() || geteuid().is_root());
    if root_again
        || getgid().as_raw() == 0 && policy.gid != 0
        || getegid().as_raw() == 0 && policy.gid != 0
    {
        return Err(SandboxError::StillPrivileged {
            uid: getuid().as_raw(),
            euid: geteuid().as_raw(),
        });
    }
    // The kernel clears the parent-death signal when the credentials change (prctl(2),
    // PR_SET_PDEATHSIG; `commit_creds`), so the one armed at start is gone after the drop: arm
    // it again, or a worker of a killed main that never reads its channel again lives on. If
    // main died meanwhile we were reparented and the signal will never come: end.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(SandboxError::DeathSignal)?;
    if nix::unistd::getppid() != parent {
        return Err(SandboxError::DeathSignal(nix::Error::ESRCH));
    }
    clear_sched_limits().map_err(SandboxError::SchedLimits)?;
    nix::sys::prctl::set_no_new_privs().map_err(SandboxError::NoNewPrivs)?;
    if policy.seccomp {
        let program = filter(std::process::id())?;
        // TSYNC: every thread of the process, not only the calling one (a thread started
        // earlier would otherwise keep running unfiltered).
        seccompiler::apply_filter_all_threads(&program).map_err(SandboxError::Apply)?;
    }
    Ok(())
}

/// Soft and hard RLIMIT_RTPRIO and RLIMIT_NICE to 0, before the filter (`prlimit64` is not on
/// the list). The filter lets the worker `sched_setattr` itself, and the kernel grants an
/// unprivileged task a real-time policy up to RLIMIT_RTPRIO and a lower nice value up to
/// RLIMIT_NICE (sched_setattr(2), getrlimit(2)): main may inherit non-zero ones (limits.conf
/// `rtprio`, systemd `LimitRTPRIO=`), with which a compromised worker could go SCHED_FIFO and
/// starve its CPU. With both at 0 it can keep its own nice value or raise it, nothing more.
#[allow(unsafe_code)]
fn clear_sched_limits() -> std::io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    for resource in [libc::RLIMIT_RTPRIO, libc::RLIMIT_NICE] {
        // SAFETY: a valid `rlimit` alive for the call; the kernel only reads it. Lowering a
        // hard limit needs no privilege.
        if unsafe { libc::setrlimit(resource, &zero) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `run-as-user = root` (ocserv allows it; main warns): keep uid 0, take the group, and drop
/// every capability for good, then check that none is left. The seccomp allow-list (required
/// with root: main refuses `isolate-workers = false` then) keeps uid 0 from root's files and
/// processes.
fn stay_root_without_capabilities(policy: &SandboxPolicy) -> Result<(), SandboxError> {
    if !policy.seccomp {
        return Err(SandboxError::StillPrivileged { uid: 0, euid: 0 });
    }
    let gid = Gid::from_raw(policy.gid);
    let drop_err = |source| SandboxError::Drop {
        uid: 0,
        gid: policy.gid,
        source,
    };
    setgroups(&[gid]).map_err(drop_err)?;
    setgid(gid).map_err(drop_err)?;
    crate::caps::drop_all().map_err(SandboxError::Capabilities)?;
    match crate::caps::held() {
        Ok((0, 0, 0, false)) => Ok(()),
        Ok((effective, permitted, _, _)) => Err(SandboxError::StillCapable {
            effective,
            permitted,
        }),
        Err(e) => Err(SandboxError::Capabilities(e)),
    }
}

/// Compile the allow-list for the running architecture, for the process `pid` (the only thread
/// group `tgkill` may reach): a binary search over the syscall number ([`crate::bpf_tree`]:
/// attaching it costs the kernel a fraction of seccompiler's linear chain).
pub fn filter(pid: u32) -> Result<BpfProgram, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(SandboxError::Arch)?;
    crate::bpf_tree::compile(
        rules(pid)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(SandboxError::Tree)
}

/// The allow-list: syscall number -> the rules under which it is allowed (empty: always).
fn rules(pid: u32) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ARCH_ALLOWED)
        .map(|&nr| (i64::from(nr), Vec::new()))
        .collect();
    for (nr, chain) in arg_rules(pid).map_err(SandboxError::Build)? {
        #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
        rules.insert(i64::from(nr), chain);
    }
    Ok(rules)
}

/// seccompiler's own (linear) program for the same list: what [`filter`] must decide alike.
#[cfg(test)]
fn linear_filter(pid: u32) -> Result<BpfProgram, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(SandboxError::Arch)?;
    let filter = seccompiler::SeccompFilter::new(
        rules(pid)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(SandboxError::Build)?;
    BpfProgram::try_from(filter).map_err(SandboxError::Build)
}

/// The calls allowed only with some arguments; each `SeccompRule` is one allowed combination
/// (its conditions all hold), anything else is a mismatch and kills the process.
fn arg_rules(pid: u32) -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, seccompiler::BackendError> {
    use seccompiler::{SeccompCmpArgLen::Dword, SeccompCmpArgLen::Qword, SeccompCmpOp};
    let eq = |arg: u8, value: libc::c_int| {
        // Dword: the kernel's int arguments; the upper half of the register is not looked at.
        SeccompCondition::new(
            arg,
            Dword,
            SeccompCmpOp::Eq,
            u64::from(value.cast_unsigned()),
        )
    };
    let sockopt = |level, name| SeccompRule::new(vec![eq(1, level)?, eq(2, name)?]);
    let o_async = u64::from(libc::O_ASYNC.cast_unsigned());
    Ok(vec![
        // abort() signals its own thread: tgkill(getpid(), gettid(), SIGABRT).
        (
            libc::SYS_tgkill,
            vec![SeccompRule::new(vec![SeccompCondition::new(
                0,
                Dword,
                SeccompCmpOp::Eq,
                u64::from(pid),
            )?])?],
        ),
        // Making sockets non-blocking (dtls_socket.rs); O_ASYNC never. F_GETFD: std checks
        // that a descriptor is still open before it closes it (OwnedFd::drop, debug builds).
        (
            libc::SYS_fcntl,
            vec![
                SeccompRule::new(vec![eq(1, libc::F_GETFD)?])?,
                SeccompRule::new(vec![eq(1, libc::F_GETFL)?])?,
                SeccompRule::new(vec![
                    eq(1, libc::F_SETFL)?,
                    SeccompCondition::new(2, Qword, SeccompCmpOp::MaskedEq(o_async), 0)?,
                ])?,
            ],
        ),
        // DF on the DTLS socket (udp_pmtu.rs).
        (
            libc::SYS_setsockopt,
            vec![
                sockopt(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)?,
                sockopt(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)?,
            ],
        ),
        // The socket's family and the kernel's path MTU (udp_pmtu.rs).
        (
            libc::SYS_getsockopt,
            vec![
                sockopt(libc::SOL_SOCKET, libc::SO_DOMAIN)?,
                sockopt(libc::IPPROTO_IP, libc::IP_MTU)?,
                sockopt(libc::IPPROTO_IPV6, libc::IPV6_MTU)?,
            ],
        ),
        // The worker's own scheduling slice (tunnel/sched_slice.rs): pid 0 (itself), flags 0.
        // Another process (another user's worker) cannot be named.
        (
            libc::SYS_sched_setattr,
            vec![SeccompRule::new(vec![eq(0, 0)?, eq(2, 0)?])?],
        ),
        // send() on connected sockets: sendto(fd, buf, len, flags, NULL, 0).
        (
            libc::SYS_sendto,
            vec![SeccompRule::new(vec![SeccompCondition::new(
                4,
                Qword,
                SeccompCmpOp::Eq,
                0,
            )?])?],
        ),
    ])
}

/// Calls that exist only on some architectures (aarch64 has only `epoll_pwait`).
#[cfg(target_arch = "x86_64")]
const ARCH_ALLOWED: &[libc::c_long] = &[libc::SYS_epoll_wait, libc::SYS_poll];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_ALLOWED: &[libc::c_long] = &[];

/// Every syscall the worker makes after [`enter`] with any arguments; `sendto`, `fcntl`,
/// `setsockopt`, `getsockopt`, `sched_setattr` and `tgkill` are allowed with some arguments only
/// ([`arg_rules`]).
const ALLOWED: &[libc::c_long] = &[
    // The event loop (tokio current-thread runtime: epoll + eventfd wake-ups).
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    // Sockets: TLS over TCP (recvfrom/sendto/writev), the seqpacket channels (recvmsg with the
    // tun fd arrives after the filter, sendmsg), tun packets (read/write), stderr (write).
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_recvfrom,
    // DTLS datagrams in bursts (tunnel/udp_mmsg.rs).
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_close,
    // rustls/ring draw randomness on every handshake (dependency-findings.md §7).
    libc::SYS_getrandom,
    // Memory.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    // Time and waiting (vDSO fallbacks included).
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    // Signals, identity checks and exiting (a panic aborts through getpid/gettid/tgkill).
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_for_this_machine() {
        let program = filter(std::process::id()).unwrap();
        assert!(program.len() > ALLOWED.len());
        // No call is both unconditional and argument-filtered (the filtered rule would be moot).
        for (nr, _) in arg_rules(1).unwrap() {
            assert!(!ALLOWED.contains(&nr), "{nr} is in ALLOWED too");
        }
    }

    /// A classic BPF interpreter for what seccompiler and bpf_tree emit, over a `struct
    /// seccomp_data` as 32-bit words (little endian: an argument's low half first): the
    /// program's return value and how many instructions ran. With `stop_at_arguments` it stops
    /// (no value) at the first load of an argument, where the kernel's cache emulation stops
    /// (the result is not constant).
    fn interpret(
        prog: &[seccompiler::sock_filter],
        data: &[u32; 16],
        stop_at_arguments: bool,
    ) -> (Option<u32>, usize) {
        let (mut pc, mut a, mut steps) = (0usize, 0u32, 0usize);
        loop {
            steps += 1;
            assert!(steps <= prog.len(), "a BPF program only jumps forward");
            let i = &prog[pc];
            let next = |taken: bool| pc + 1 + usize::from(if taken { i.jt } else { i.jf });
            pc = match i.code {
                0x20 if stop_at_arguments && i.k >= 16 => return (None, steps),
                0x20 => {
                    a = data[i.k as usize / 4];
                    pc + 1
                }
                0x54 => {
                    a &= i.k;
                    pc + 1
                }
                0x05 => pc + 1 + i.k as usize,
                0x15 => next(a == i.k),
                0x25 => next(a > i.k),
                0x35 => next(a >= i.k),
                0x45 => next(a & i.k != 0),
                0x06 => return (Some(i.k), steps),
                code => panic!("unexpected BPF opcode {code:#x}"),
            };
        }
    }

    /// The program's decision for `data`.
    fn run(prog: &[seccompiler::sock_filter], data: &[u32; 16]) -> u32 {
        interpret(prog, data, false).0.unwrap()
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn the_search_decides_as_seccompilers_chain() {
        // The filter's own architecture (AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64) first: it gets
        // the many argument cases below.
        #[cfg(target_arch = "x86_64")]
        const NATIVE: u32 = 0xc000_003e;
        #[cfg(target_arch = "aarch64")]
        const NATIVE: u32 = 0xc000_00b7;
        let pid = 4242;
        let tree = filter(pid).unwrap();
        let linear = linear_filter(pid).unwrap();
        // Native, then x86_64, i386, x32's numbers, aarch64 and a nonsense architecture.
        let arches = [NATIVE, 0xc000_003e_u32, 0x4000_0003, 0xc000_00b7, 0];
        let mut numbers: Vec<u32> = (0..600).collect();
        numbers.extend([0x4000_0000, 0x4000_0001, 0x4000_002c, u32::MAX, 0x8000_0000]);
        let mut checked = 0;
        let mut allowed = 0;
        // Argument values: every constant the rules name, around them, and their halves.
        let mut values: Vec<u64> = vec![0, 1, 2, 3, 4, 10, 41, 23, 14, 7, u64::from(pid)];
        values.extend(
            [libc::F_GETFD, libc::F_GETFL, libc::F_SETFL, libc::F_SETOWN].map(|v| v as u64),
        );
        values.extend(
            [
                libc::IPPROTO_IP,
                libc::IPPROTO_IPV6,
                libc::SOL_SOCKET,
                libc::IP_MTU,
                libc::IP_MTU_DISCOVER,
                libc::IPV6_MTU,
                libc::IPV6_MTU_DISCOVER,
                libc::SO_DOMAIN,
            ]
            .map(|v| v as u64),
        );
        let o_async = libc::O_ASYNC as u64;
        values.extend([
            o_async,
            o_async | 0x800,
            0x800,
            1 << 32,
            (1 << 32) | 1,
            u64::MAX,
        ]);
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut pick = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values[(x % values.len() as u64) as usize]
        };
        for &arch in &arches {
            for &nr in &numbers {
                let cases = if arch == arches[0] && nr < 600 {
                    3000
                } else {
                    3
                };
                for case in 0..cases {
                    let mut data = [0u32; 16];
                    data[0] = nr;
                    data[1] = arch;
                    data[2] = 0x5555_1234;
                    for arg in 0..6 {
                        let v = if case == 0 { 0 } else { pick() };
                        data[4 + 2 * arg] = v as u32;
                        data[5 + 2 * arg] = (v >> 32) as u32;
                    }
                    let want = run(&linear, &data);
                    assert_eq!(
                        run(&tree, &data),
                        want,
                        "nr {nr} arch {arch:#x} data {data:x?}"
                    );
                    checked += 1;
                    if want == libc::SECCOMP_RET_ALLOW {
                        allowed += 1;
                    }
                }
            }
        }
        // Both outcomes were seen (the test is not comparing two filters that deny all).
        assert!(
            allowed > 1000 && allowed < checked,
            "{allowed} of {checked}"
        );
    }

    /// `ROCSERV_BENCH=1 cargo test -p rocserv-worker --release --lib attach_cost -- --ignored
    /// --nocapture` (without the variable it returns at once: run-all.sh includes ignored
    /// tests, and 400 forks of the test harness are no check):
    /// the kernel's time for the `seccomp` call that attaches each filter (in a fresh child per
    /// sample: the attach is once per process), and the emulated instructions per syscall
    /// number that the cache preparation walks (a not-listed number runs to the kill).
    #[test]
    #[ignore = "a measurement, not a check"]
    #[allow(unsafe_code)]
    fn attach_cost() {
        if std::env::var_os("ROCSERV_BENCH").is_none() {
            eprintln!("attach_cost: a measurement; set ROCSERV_BENCH=1 to run it");
            return;
        }
        let progs = [
            ("linear", linear_filter(1).unwrap()),
            ("search", filter(1).unwrap()),
        ];
        for (name, prog) in &progs {
            println!("{name}: {} instructions", prog.len());
        }
        let mut samples = [Vec::new(), Vec::new()];
        for round in 0..400 {
            let which = round % 2;
            let prog = &progs[which].1;
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr().cast_mut().cast(),
            };
            let mut fds = [0; 2];
            // SAFETY: a valid two-int array.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: the child makes only async-signal-safe calls (prctl, clock_gettime,
            // syscall, write, _exit) on memory it already has.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // SAFETY: as above; `fprog` points into `prog`, alive in the child's copy.
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    let mut t0 = std::mem::zeroed::<libc::timespec>();
                    let mut t1 = std::mem::zeroed::<libc::timespec>();
                    libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0);
                    let rc = libc::syscall(
                        libc::SYS_seccomp,
                        1, // SECCOMP_SET_MODE_FILTER
                        libc::SECCOMP_FILTER_FLAG_TSYNC,
                        &fprog,
                    );
                    libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t1);
                    let ns: i64 = if rc == 0 {
                        (t1.tv_sec - t0.tv_sec) * 1_000_000_000 + (t1.tv_nsec - t0.tv_nsec)
                    } else {
                        -1
                    };
                    libc::write(fds[1], (&ns as *const i64).cast(), 8);
                    libc::_exit(0);
                }
            }
            let mut ns = 0i64;
            // SAFETY: reading 8 bytes into an i64; waiting for our own child.
            unsafe {
                libc::close(fds[1]);
                assert_eq!(libc::read(fds[0], (&mut ns as *mut i64).cast(), 8), 8);
                libc::close(fds[0]);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            assert!(ns > 0, "seccomp failed in the child");
            samples[which].push(ns);
        }
        for (i, (name, _)) in progs.iter().enumerate() {
            let s = &mut samples[i];
            s.sort_unstable();
            println!(
                "ATTACH {name}: median {} us, p10 {} us, p90 {} us ({} samples)",
                s[s.len() / 2] / 1000,
                s[s.len() / 10] / 1000,
                s[s.len() * 9 / 10] / 1000,
                s.len()
            );
        }
        // Emulated instructions per syscall number, as the cache preparation walks them.
        for (name, prog) in &progs {
            let mut total = 0usize;
            for nr in 0..462 {
                let mut data = [0u32; 16];
                data[0] = nr;
                data[1] = 0xc000_003e;
                total += steps(prog, &data);
            }
            println!("WALK {name}: {total} instructions over 462 syscall numbers");
        }
    }

    /// Instructions the kernel's cache emulation runs for `data`: until a return, or until an
    /// argument is loaded.
    fn steps(prog: &[seccompiler::sock_filter], data: &[u32; 16]) -> usize {
        interpret(prog, data, true).1
    }
}
