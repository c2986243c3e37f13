//! The process's capability sets (capget/capset) and its bounding and ambient sets: what the
//! worker (as uid 0, `run-as-user = root`) and sec-mod each lower at start.

#![allow(unsafe_code)]

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

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

/// The three capability sets of this thread, one bit per capability number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

fn header() -> CapHeader {
    CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    }
}

/// capget for this thread.
pub fn get() -> std::io::Result<Sets> {
    let mut header = header();
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid for the kernel's version-3 layout (two data words).
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(Sets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// capset for this thread (the kernel refuses to raise a set beyond what it allows).
pub fn set(sets: Sets) -> std::io::Result<()> {
    let mut header = header();
    let word = |bits: u64, i: u32| (bits >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(sets.effective, i),
        permitted: word(sets.permitted, i),
        inheritable: word(sets.inheritable, i),
    });
    // SAFETY: as in `get`.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `cap` is in the bounding set; `None` past the kernel's last capability.
pub fn in_bounding_set(cap: u32) -> Option<bool> {
    // SAFETY: prctl with integer arguments only; < 0 (EINVAL) past the last capability.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    (rc >= 0).then_some(rc > 0)
}

/// Drop from the bounding set every capability not in `keep` (needs CAP_SETPCAP). On failure,
/// the capability that could not be dropped.
pub fn drop_bounding_set(keep: u64) -> Result<(), (u32, std::io::Error)> {
    for cap in 0..64u32 {
        match in_bounding_set(cap) {
            None => break,
            Some(false) => continue,
            Some(true) if keep & (1 << cap) != 0 => continue,
            Some(true) => {}
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            return Err((cap, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Empty the ambient set, which would survive an exec. EINVAL on kernels without ambient sets
/// is fine: there is nothing to clear.
pub fn clear_ambient_set() {
    // SAFETY: prctl with integer arguments only.
    let _ = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}
