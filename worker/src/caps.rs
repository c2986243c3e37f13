//! Capabilities of a worker that stays uid 0 (`run-as-user = root`, as ocserv allows): drop
//! every one of them for good, and read what is left.
//!
//! Without capabilities uid 0 still owns root's files and may signal root's processes, but the
//! seccomp allow-list has no `open`, `kill` or `execve` (sandbox.rs), so neither is reachable.
//! The securebits are locked so that nothing (an `execve`, a uid change) gives them back
//! (capabilities(7), "The securebits flags").

#![allow(unsafe_code)]

/// SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS (off) and SECBIT_NO_CAP_AMBIENT_RAISE,
/// each with its lock bit (linux/securebits.h).
const SECUREBITS: libc::c_ulong = 0b1110_1111;

/// What is left: (effective, permitted, inheritable, any capability in the bounding set).
pub fn held() -> std::io::Result<(u64, u64, u64, bool)> {
    let sets = rocserv_rt::caps::get()?;
    let bounding = (0..64u32).any(|cap| rocserv_rt::caps::in_bounding_set(cap) == Some(true));
    Ok((sets.effective, sets.permitted, sets.inheritable, bounding))
}

/// Lock the securebits, empty the bounding and ambient sets, then every capability set.
pub fn drop_all() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only (needs CAP_SETPCAP, still held here).
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    rocserv_rt::caps::drop_bounding_set(0).map_err(|(_, e)| e)?;
    rocserv_rt::caps::clear_ambient_set();
    rocserv_rt::caps::set(rocserv_rt::caps::Sets::default())
}
