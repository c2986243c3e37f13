//! The worker's own scheduling slice (`sched_setattr(2)`, `sched_runtime` of a SCHED_OTHER task:
//! EEVDF's custom slice, Linux 6.12+; older kernels accept and ignore it). See
//! [`super::moderation`] for when it changes. Only the calling process is touched (pid 0, which
//! the sandbox's filter also enforces), its policy and nice value are kept, and nothing else
//! changes: a shorter slice moves a task's deadline earlier, not its share of the CPU.
//! The sandbox sets RLIMIT_NICE to 0, so only the start nice value (or a higher one) is
//! accepted: that is all [`apply`] writes. If an administrator reniced the worker higher since,
//! the write is a nice reduction and fails with EPERM; the pump logs it at debug level and stops
//! changing the slice, and the worker keeps running on the one it had. The login runs
//! `LOGIN_NICE_STEP` higher ([`lower_for_login`]); main sets the start value back before it
//! grants the tunnel (main's `worker_priority`), so the slice's writes keep the tunnel's.
// One syscall that neither libc nor nix wraps.
#![allow(unsafe_code)]

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use super::moderation::Class;

/// The interactive slice: the kernel's minimum (0.1 ms).
pub const INTERACTIVE_SLICE: Duration = Duration::from_micros(100);

/// `struct sched_attr` as of `SCHED_ATTR_SIZE_VER0` (include/uapi/linux/sched/types.h).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// `SCHED_ATTR_SIZE_VER0`.
const ATTR_SIZE: u32 = 48;
const _: () = assert!(size_of::<SchedAttr>() == ATTR_SIZE as usize);

/// `SCHED_FLAG_KEEP_POLICY` (include/uapi/linux/sched.h): keep SCHED_OTHER or SCHED_BATCH.
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
/// `SCHED_OTHER` and `SCHED_BATCH`: the fair policies, the only ones with a custom slice.
const FAIR: [u32; 2] = [0, 3];

/// The policy and nice value the worker started with, read by [`init`] before the sandbox (which
/// allows `sched_setattr` only); `None`: not a fair policy, or unknown, so the slice is left alone.
static START: OnceLock<Option<(u32, i32)>> = OnceLock::new();

/// Read the worker's policy and nice value; call once, before the sandbox is entered.
pub fn init() {
    START.get_or_init(|| match (current_policy(), current_nice()) {
        (Ok(Some(policy)), Ok(nice)) if FAIR.contains(&policy) => Some((policy, nice)),
        (policy, nice) => {
            log::debug!("scheduling slice left alone: policy {policy:?}, nice {nice:?}");
            None
        }
    });
}

/// How much the worker raises its nice value for the login (main's `worker_priority` sets it
/// back when it grants the tunnel). 10: a weight of 110 against a tunnel's 1024
/// (kernel/sched/core.c's sched_prio_to_weight), so a login storm yields the CPU to the
/// established users' packets but still gets it whenever they leave it.
pub const LOGIN_NICE_STEP: i32 = 10;

/// Run the login at `LOGIN_NICE_STEP` above the start nice value (capped at 19). Call after
/// [`init`] and before the sandbox (which refuses `setpriority`). The worker cannot come back
/// down itself (RLIMIT_NICE 0): main does, before it sends the grant, and [`apply`] then writes
/// the start nice value, which is main's.
pub fn lower_for_login() -> io::Result<()> {
    let Some(Some((_, nice))) = START.get().copied() else {
        return Ok(());
    };
    let login = nice.saturating_add(LOGIN_NICE_STEP).min(19);
    // SAFETY: no pointers; PRIO_PROCESS with who = 0 is the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, login) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ask for the slice of `class`. Without [`init`], or for a process that an administrator moved
/// to another policy (real-time, idle), nothing happens.
pub fn apply(class: Class) -> io::Result<()> {
    let Some(Some((policy, nice))) = START.get().copied() else {
        return Ok(());
    };
    let runtime = match class {
        // 0 = the kernel's default slice again.
        Class::Bulk => 0,
        Class::Interactive => u64::try_from(INTERACTIVE_SLICE.as_nanos()).unwrap_or(100_000),
    };
    let mut attr = SchedAttr {
        size: ATTR_SIZE,
        sched_policy: policy,
        sched_flags: SCHED_FLAG_KEEP_POLICY,
        sched_nice: nice,
        sched_runtime: runtime,
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid, initialised `sched_attr` of the size it declares, alive for the
    // call; the kernel only reads it. pid 0 = the calling thread; flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, std::ptr::from_mut(&mut attr), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's nice value (`sched_setattr` sets it too, so it is passed back as is).
fn current_nice() -> io::Result<i32> {
    // getpriority(2) may return -1 as a value: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: no pointers; PRIO_PROCESS with who = 0 is the calling process.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(nice)
}

/// The calling thread's policy, `None` if it is not one we know.
fn current_policy() -> io::Result<Option<u32>> {
    // SAFETY: no pointers; pid 0 is the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SCHED_RESET_ON_FORK may be or'ed in.
    Ok(u32::try_from(policy & !libc::SCHED_RESET_ON_FORK).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slice_goes_short_and_back_and_nice_is_kept() {
        init();
        // In a thread of its own: the attribute is per thread.
        std::thread::spawn(|| {
            let nice = current_nice().unwrap();
            let before = runtime_ns();
            apply(Class::Interactive).unwrap();
            // Kernels before 6.12 report no slice (0) and ignore the request.
            if before != 0 {
                assert_eq!(runtime_ns(), 100_000);
            }
            apply(Class::Bulk).unwrap();
            assert_eq!(runtime_ns(), before);
            assert_eq!(current_nice().unwrap(), nice);
        })
        .join()
        .unwrap();
    }

    fn runtime_ns() -> u64 {
        let mut attr = SchedAttr::default();
        // SAFETY: a buffer of the size passed; the kernel writes at most that.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                std::ptr::from_mut(&mut attr),
                ATTR_SIZE,
                0,
            )
        };
        assert_eq!(rc, 0);
        attr.sched_runtime
    }
}
