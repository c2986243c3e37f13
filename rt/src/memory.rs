//! Giving freed heap memory back to the kernel after a burst (main and sec-mod).
//!
//! glibc returns freed memory to the kernel only from the top of a heap and from chunks of
//! `M_MMAP_THRESHOLD` and above: the rest of a burst's freed memory (fragmented by longer-lived
//! allocations made during the burst) stays resident. After 30 concurrent logins and their
//! logouts (`bench/idle_sessions.sh`), main held 5.4 MB PSS and sec-mod 8.4 MB; a
//! `malloc_trim(0)` brought them to 4.0 and 7.8 MB. main and sec-mod call [`trim`] every
//! [`TRIM_EVERY`].
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

/// How often main and sec-mod trim their heaps. A trim that finds nothing to give back costs a
/// walk of the allocator's free lists (microseconds); one that does, the page faults of the
/// next burst that reuses the pages.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Give every whole free page of every malloc arena back to the kernel.
pub fn trim() {
    // SAFETY: malloc_trim works on glibc's own free lists under each arena's lock and takes no
    // pointers of ours; it is safe to call from any thread at any time. Its result (whether
    // anything was released) is of no use to the caller.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Capacity a map keeps however empty it gets (no shrink below it).
const MAP_KEEP: usize = 64;

/// Call after removing from a per-session or per-connection map: a `HashMap` keeps its largest
/// capacity for good, so after a burst of N sessions the table (its values inline) stays the
/// size of N. Once fewer than a quarter of its slots are used, shrink it to twice its length:
/// a shrink copies the remaining entries, and comes only after three quarters were removed,
/// so its cost is amortised over those removals.
pub fn shrink_map<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > MAP_KEEP && map.len() < map.capacity() / 4 {
        map.shrink_to(MAP_KEEP.max(map.len().saturating_mul(2)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    #[test]
    fn a_map_shrinks_after_a_burst_and_keeps_a_floor() {
        let mut m: HashMap<u32, [u8; 256]> = HashMap::new();
        for i in 0..1000 {
            m.insert(i, [0; 256]);
        }
        let peak = m.capacity();
        for i in 0..1000 {
            m.remove(&i);
            shrink_map(&mut m);
            assert!(m.capacity() >= m.len());
        }
        assert!(m.capacity() < peak / 8, "{} of {peak}", m.capacity());
        assert!(m.capacity() >= MAP_KEEP);
        // Half full: left alone.
        for i in 0..40 {
            m.insert(i, [0; 256]);
        }
        let cap = m.capacity();
        shrink_map(&mut m);
        assert_eq!(m.capacity(), cap);
    }
}
