//! Allocator tuning for a process that holds one mostly idle tunnel.
//!
//! The tunnel keeps a few 64 KiB buffers (socket reads, frame reassembly, the GSO batch). From
//! glibc's heap they come zero-filled, so every page of them is resident in every worker even
//! while its client is idle; hundreds of workers make that the largest part of the memory per
//! session. Served by mmap instead, a buffer costs only the pages a packet actually touched.
#![allow(unsafe_code)]

/// Allocations of this size and above get their own anonymous mapping.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;

/// Call once at start-up, before the tunnel buffers are allocated.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists and takes no pointers. A failure (return 0) leaves glibc's default, which is only
    // less frugal, so the result is not checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
