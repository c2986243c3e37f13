//! Allocator tuning for sec-mod: give memory back after a burst of logins.
//!
//! Password hashing and PAM run on blocking threads, and glibc gives each new thread its own
//! arena (up to 8 per core), whose freed memory stays resident; large buffers stay in the heap
//! too. After 50 concurrent logins sec-mod held 5.7 MB PSS instead of 2.3 MB at start
//! (`../shared/bench` connect_rate); with two arenas and large blocks mapped on their own,
//! 3.9-4.6 MB. Two arenas, not one: concurrent logins still allocate in parallel.
#![allow(unsafe_code)]

/// Allocations of this size and above get their own anonymous mapping.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;
/// malloc arenas for all threads together.
const ARENAS: libc::c_int = 2;

/// Call once at start-up, before any other thread exists.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters and takes no pointers; no other thread
    // exists yet. A failure (0) leaves glibc's default, which only costs memory, so the results
    // are not checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
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
