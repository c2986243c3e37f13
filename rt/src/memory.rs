//! Giving freed heap memory back to the kernel after a burst (main and sec-mod).
//!
//! glibc returns freed memory to the kernel only from the top of a heap and from chunks of
//! `M_MMAP_THRESHOLD` and above: the rest of a burst's freed memory (fragmented by longer-lived
//! allocations made during the burst) stays resident. After 30 concurrent logins and their
//! logouts (`bench/idle_sessions.sh`), main held 5.4 MB PSS and sec-mod 8.4 MB; a
//! `malloc_trim(0)` brought them to 4.0 and 7.8 MB. main and sec-mod call [`trim`] every
//! [`TRIM_EVERY`], and at once when a burst ends ([`TrimTrigger`]): the shared bench reads the
//! server's memory about a second after its logouts.
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

/// Sessions (or connections) a burst must reach before its end triggers a trim: below it the
/// periodic trim is soon enough, and a lone user's logins and logouts never trim.
pub const BURST_MIN: usize = 8;

/// Decides when a burst has ended: fed the live count (connections in main, sessions in
/// sec-mod) after every change, it fires when the count fell to a quarter of its peak since
/// the last trim (a peak of [`BURST_MIN`] or more), and when it reaches zero after such a
/// burst. A trim costs a walk of the free lists and the page faults of the next burst: each
/// one comes after three quarters of what was live ended, never per logout.
#[derive(Debug, Default)]
pub struct TrimTrigger {
    /// Highest live count since the last trim.
    peak: usize,
    /// A burst of at least [`BURST_MIN`] happened since the count was last zero.
    burst: bool,
}

impl TrimTrigger {
    pub const fn new() -> Self {
        Self {
            peak: 0,
            burst: false,
        }
    }

    /// The live count is now `live`: whether to [`trim`] now.
    pub fn update(&mut self, live: usize) -> bool {
        self.peak = self.peak.max(live);
        if self.peak >= BURST_MIN {
            self.burst = true;
        }
        let fire = self.burst && (live == 0 || (self.peak >= BURST_MIN && live <= self.peak / 4));
        if fire {
            self.peak = live;
            self.burst = live > 0;
        }
        fire
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

    /// The live counts at which a trigger fed `counts` fires.
    fn fires(counts: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut t = TrimTrigger::new();
        counts.into_iter().filter(|&n| t.update(n)).collect()
    }

    #[test]
    fn a_burst_end_trims_at_a_quarter_and_at_zero() {
        // 50 logins, then 50 logouts: at 12 (a quarter of 50), 3 (of 12) and 0.
        assert_eq!(fires((1..=50).chain((0..50).rev())), vec![12, 3, 0]);
        // A second burst trims again.
        let mut t = TrimTrigger::new();
        let twice: Vec<usize> = (1..=20)
            .chain((0..20).rev())
            .chain(1..=20)
            .chain((0..20).rev())
            .filter(|&n| t.update(n))
            .collect();
        assert_eq!(twice, vec![5, 0, 5, 0]);
    }

    #[test]
    fn small_or_steady_load_never_trims() {
        // One user logging in and out, again and again.
        assert!(fires([1, 0].repeat(100)).is_empty());
        // Below BURST_MIN at its peak.
        assert!(fires((1..BURST_MIN).chain((0..BURST_MIN).rev())).is_empty());
        // A steady 40 with churn (one ends, one starts) does not trim.
        assert!(fires((1..=40).chain([39, 40].repeat(200))).is_empty());
    }

    #[test]
    fn a_partial_drop_trims_once_then_needs_a_new_peak() {
        // 100 up, down to 20: one trim at 25; staying around 20 does not trim again.
        let counts = (1..=100).chain((20..100).rev()).chain([21, 20].repeat(50));
        assert_eq!(fires(counts), vec![25]);
    }

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
