//! Capabilities of a worker that stays uid 0 (`run-as-user = root`, as ocserv allows): drop
//! every one of them for good, and read what is left.
//!
//! Without capabilities uid 0 still owns root's files and may signal root's processes, but the
//! seccomp allow-list has no `open`, `kill` or `execve` (sandbox.rs), so neither is reachable.
//! The securebits are locked so that nothing (an `execve`, a uid change) gives them back
//! (capabilities(7), "The securebits flags").

#![allow(unsafe_code)]

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS (off) and SECBIT_NO_CAP_AMBIENT_RAISE,
/// each with its lock bit (linux/securebits.h).
const SECUREBITS: libc::c_ulong = 0b1110_1111;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What is left: (effective, permitted, inheritable, any capability in the bounding set).
pub fn held() -> std::io::Result<(u64, u64, u64, bool)> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid for the kernel's version-3 layout (two data words).
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    let bounding = (0..64u32).any(|cap| {
        // SAFETY: prctl with integer arguments only; < 0 (EINVAL) past the last capability.
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) > 0 }
    });
    Ok((
        join(|d| d.effective),
        join(|d| d.permitted),
        join(|d| d.inheritable),
        bounding,
    ))
}

/// Lock the securebits, empty the bounding and ambient sets, then every capability set.
pub fn drop_all() -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: prctl with integer arguments only (needs CAP_SETPCAP, still held here).
    check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) })?;
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments only.
        let in_set =
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if in_set < 0 {
            break; // EINVAL: past the kernel's last capability
        }
        if in_set > 0 {
            // SAFETY: prctl with integer arguments only.
            check(unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
            })?;
        }
    }
    // SAFETY: prctl with integer arguments only; EINVAL on kernels without ambient sets.
    let _ = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: as in `held`; all sets empty.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
