//! Allocator tuning for main: give memory back after a burst of logins.
//!
//! main keeps a 64 KiB receive buffer per worker connection (IPC messages). From glibc's heap
//! such buffers stay resident after their sessions end (the heap is fragmented by smaller,
//! longer-lived allocations): after 50 concurrent logins main held 6.1 MB PSS instead of 2.8 MB
//! at start (`../shared/bench` connect_rate). Served from their own mappings they go back to the
//! kernel when freed: 3.3-3.7 MB after the same burst.
#![allow(unsafe_code)]

/// Allocations of this size and above get their own anonymous mapping.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;

/// Call once at start-up, before any other thread exists.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters and takes no pointers; no other thread
    // exists yet. A failure (0) leaves glibc's default, which only costs memory, so it is not
    // checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Give freed memory back to the kernel every [`rocserv_rt::memory::TRIM_EVERY`], for as long
/// as the runtime runs (spawn it once): what a burst of logins freed stays resident otherwise.
pub async fn trimmer() {
    let mut every = tokio::time::interval(rocserv_rt::memory::TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        rocserv_rt::memory::trim();
    }
}
