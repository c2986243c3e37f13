//! Locking sec-mod down at start, before the async runtime starts a thread and before the key is
//! read: not dumpable, no core files, only the capabilities PAM needs, and a seccomp deny-list.
//!
//! sec-mod stays uid 0 (see the crate documentation) but gives up every capability except
//! [`KEPT_CAPS`], in the effective, permitted, inheritable, ambient and bounding sets, so neither
//! sec-mod nor anything it could still start regains them:
//! - `CAP_DAC_READ_SEARCH`: read `/etc/shadow` (mode 0000 on some distributions, so owning it
//!   is not enough), the server key and the password file whatever their owner;
//! - `CAP_AUDIT_WRITE`: libpam writes an audit record per authentication and treats a refused
//!   write from uid 0 as an error on some builds.
//!
//! Dropped, for example: `CAP_SETUID`/`CAP_SETGID` (pam_unix runs its `unix_chkpwd` helper only
//! when it is not root), `CAP_DAC_OVERRIDE` (no write outside root-owned files is needed),
//! `CAP_SYS_PTRACE`, `CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_NET_*`, `CAP_KILL`.
//!
//! Seccomp is a deny-list, not the worker's allow-list: a PAM stack is arbitrary library code
//! (pam_unix, pam_sss, pam_ldap, pam_krb5, OTP modules...) whose syscalls we cannot enumerate, so
//! an allow-list would break some site's stack at login time. What no PAM module needs and what an
//! attacker with code execution in sec-mod would reach for is denied: [`KILLED`] ends the process
//! (SIGSYS; main restarts sec-mod and logs it), [`REFUSED`] fails with `EPERM` because a benign
//! library may try it (execve: pam_exec; keyctl: pam_krb5's keyring cache) and a failed login is
//! better than a dead sec-mod. `execve` is refused because the default stack does not need it:
//! as root, pam_unix reads the shadow file itself. A `pam_exec` line therefore fails its login.
//! Signals may only go to sec-mod itself ([`SIGNALS`]): uid 0 could otherwise kill main.
//! Sockets are not denied: the RADIUS backend and accounting sink send UDP (`radius_client`); the
//! dropped `CAP_NET_*` keep sec-mod from raw sockets and privileged ports.

#![allow(unsafe_code)]

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `CAP_DAC_READ_SEARCH` (linux/capability.h).
pub const CAP_DAC_READ_SEARCH: u32 = 2;
/// `CAP_AUDIT_WRITE` (linux/capability.h).
pub const CAP_AUDIT_WRITE: u32 = 29;
/// The capabilities sec-mod keeps (see the module documentation for why).
pub const KEPT_CAPS: &[u32] = &[CAP_DAC_READ_SEARCH, CAP_AUDIT_WRITE];

/// A step of [`apply`] failed; sec-mod must not run.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error("cannot make the process non-dumpable")]
    Dumpable(#[source] std::io::Error),
    #[error("cannot set RLIMIT_CORE to 0")]
    CoreLimit(#[source] std::io::Error),
    #[error("cannot drop capability {cap} from the bounding set")]
    Bounding {
        cap: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reduce the capability sets")]
    Capset(#[source] std::io::Error),
    #[error("no seccomp support for this architecture")]
    Arch(#[source] seccompiler::BackendError),
    #[error("cannot build the seccomp filter")]
    Build(#[source] seccompiler::BackendError),
    #[error("cannot install the seccomp filter")]
    Seccomp(#[source] seccompiler::Error),
}

/// Apply everything, in this order: dumpable, core limit, capabilities, seccomp. Call once,
/// before any other thread exists (the filter is also synchronised to all threads).
pub fn apply() -> Result<(), HardenError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(HardenError::Dumpable(std::io::Error::last_os_error()));
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(HardenError::CoreLimit(std::io::Error::last_os_error()));
    }
    drop_capabilities()?;
    for (list, action) in [
        (KILLED, SeccompAction::KillProcess),
        (REFUSED, SeccompAction::Errno(libc::EPERM as u32)),
    ] {
        let program = filter(list, action)?;
        seccompiler::apply_filter_all_threads(&program).map_err(HardenError::Seccomp)?;
    }
    let program = signals_filter()?;
    seccompiler::apply_filter_all_threads(&program).map_err(HardenError::Seccomp)?;
    Ok(())
}

/// The capability mask of [`KEPT_CAPS`] (as in `/proc/PID/status` `CapEff`).
pub fn kept_mask() -> u64 {
    KEPT_CAPS.iter().fold(0, |m, cap| m | (1u64 << cap))
}

/// Calls that only an attacker makes: kill sec-mod.
const KILLED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_quotactl,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// Calls a library might try harmlessly, or that are exploit primitives: `EPERM`.
const REFUSED: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_chroot,
    libc::SYS_userfaultfd,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_syslog,
    libc::SYS_personality,
    libc::SYS_mknodat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
];

/// Calls that send a signal to a process named by its first argument. Without `CAP_KILL`,
/// uid 0 may still signal every other uid-0 process (main, init); sec-mod only ever signals
/// itself (abort), so any other target fails with `EPERM`.
const SIGNALS: &[libc::c_long] = &[
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
];

/// [`SIGNALS`] aimed anywhere but at this process, plus `tkill` (a bare thread id, obsolete)
/// and `pidfd_send_signal` (a pidfd of any process): `EPERM`.
fn signals_filter() -> Result<BpfProgram, HardenError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(HardenError::Arch)?;
    let own = u64::from(std::process::id());
    let elsewhere = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, own)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(HardenError::Build)?;
    #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = SIGNALS
        .iter()
        .map(|&nr| (i64::from(nr), vec![elsewhere.clone()]))
        .collect();
    #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
    for nr in [libc::SYS_tkill, libc::SYS_pidfd_send_signal] {
        rules.insert(i64::from(nr), Vec::new());
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(HardenError::Build)?;
    BpfProgram::try_from(filter).map_err(HardenError::Build)
}

fn filter(list: &[libc::c_long], action: SeccompAction) -> Result<BpfProgram, HardenError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(HardenError::Arch)?;
    #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        list.iter().map(|&nr| (i64::from(nr), Vec::new())).collect();
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch)
        .map_err(HardenError::Build)?;
    BpfProgram::try_from(filter).map_err(HardenError::Build)
}

fn drop_capabilities() -> Result<(), HardenError> {
    let keep = kept_mask();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // The bounding set limits what an exec (or a setuid transition) could give back. Changing
    // it needs CAP_SETPCAP, which only root has; a non-root sec-mod (tests) holds nothing to drop.
    if root {
        rocserv_rt::caps::drop_bounding_set(keep)
            .map_err(|(cap, source)| HardenError::Bounding { cap, source })?;
    }
    rocserv_rt::caps::clear_ambient_set();
    let mut sets = rocserv_rt::caps::get().map_err(HardenError::Capset)?;
    sets.permitted &= keep;
    sets.effective = sets.permitted;
    sets.inheritable = 0;
    // capset only lowers sets here.
    rocserv_rt::caps::set(sets).map_err(HardenError::Capset)
}
