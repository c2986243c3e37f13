//! Allocator tuning for a process that holds one mostly idle tunnel.
//!
//! The tunnel keeps a few 64 KiB buffers (socket reads, frame reassembly, the GSO batch). From
//! glibc's heap they come zero-filled, so every page of them is resident in every worker even
//! while its client is idle; hundreds of workers make that the largest part of the memory per
//! session. Served by mmap instead, a buffer costs only the pages a packet actually touched.
//!
//! The login leaves more behind that an idle tunnel never uses again: the TLS handshake's and the
//! HTTP conversation's freed heap pages, and the deep stack of the handshake's crypto. Both stay
//! resident until given back ([`release`], called when the tunnel starts and once DTLS is up).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations of this size and above get their own anonymous mapping.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;

/// How far below the caller [`release`] gives the stack back. The deepest the worker's main
/// thread goes is the TLS handshake (well under this); below the stack's own mapping the range
/// is unmapped, which madvise skips (it reports ENOMEM after doing the mapped part).
const STACK_SPAN: usize = 1024 * 1024;
/// Kept below the caller's frame: the madvise call's own frames live there.
const STACK_MARGIN: usize = 16 * 1024;

/// An address near the top of the main thread's stack, recorded by [`tune`] (0: not recorded).
static STACK_TOP: AtomicUsize = AtomicUsize::new(0);

/// Call once at start-up from `main`, before the tunnel buffers are allocated.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists and takes no pointers. A failure (return 0) leaves glibc's default, which is only
    // less frugal, so the result is not checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let here = 0u8;
    STACK_TOP.store(std::ptr::addr_of!(here) as usize, Ordering::Relaxed);
}

/// Give back to the kernel what the login left resident: free heap pages (`malloc_trim`) and
/// the main thread's stack below the caller. Both only drop pages that hold nothing live: a
/// later use faults in a zeroed page, so this costs a little time, never correctness. What it
/// gave back (bytes of heap trimmed is not reported by glibc) is not measured here: the bench
/// measures PSS (`bench/idle_sessions.sh`).
#[inline(never)]
pub fn release() {
    // SAFETY: malloc_trim walks glibc's own free lists under its lock and returns whole free
    // pages with madvise/brk (both in the sandbox's allow-list); it takes no pointers of ours.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    release_stack();
}

/// madvise(MADV_DONTNEED) on the stack pages below the caller's frame. Everything below the
/// stack pointer is dead by the ABI (the 128-byte red zone belongs to the current frame, far
/// above `STACK_MARGIN`), so dropping those pages loses nothing. Only on the main thread (whose
/// top [`tune`] recorded): another thread's stack is a mapping of its own, not checked here.
#[inline(never)]
fn release_stack() {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let top = STACK_TOP.load(Ordering::Relaxed);
    // Not the main thread (or tune() not called): its stack is not the one recorded.
    if top == 0 || sp > top || top - sp > STACK_SPAN {
        return;
    }
    let page = page_size();
    let end = sp.saturating_sub(STACK_MARGIN) & !(page - 1);
    let start = end.saturating_sub(STACK_SPAN);
    if start == 0 || end <= start {
        return;
    }
    // SAFETY: [start, end) lies entirely below the current stack pointer on the main thread's
    // stack (checked above), where no live data exists; the part below the stack's mapping is
    // unmapped (the kernel keeps mmap_base far below the stack), which madvise skips. The
    // result is not checked: ENOMEM is expected for that unmapped part, and a failure only
    // leaves the pages resident.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers; glibc answers _SC_PAGESIZE from the auxiliary vector,
    // without a syscall (the sandbox is already in place when this runs).
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}
