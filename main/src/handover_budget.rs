//! How many DTLS flows main hands to one session's worker: a token bucket per DTLS id.
//!
//! The ClientHello names its session in clear text, so whoever saw one can send it again from
//! any address (or spoof any source). The guard per client address in [`crate::udp`] does not
//! bound that; this does. Each hand-over costs main a socket and the worker a handshake (and
//! makes it send a handshake flight to that address, a small reflection), and a newer
//! handshake replaces the one in progress (worker/src/tunnel/dtls_slots.rs), so an unbounded
//! stream of replays could also keep a roaming client from completing its own. A client uses
//! one hand-over per DTLS (re)connection or move: [`BURST`] and one more per [`REFILL`] leave
//! real roaming alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Hand-overs a session may use at once.
pub const BURST: u32 = 4;
/// One more hand-over becomes available after this long.
pub const REFILL: Duration = Duration::from_secs(10);
/// Sessions with a bucket that is not full, at most (pruned of full ones when reached).
const MAX_BUCKETS: usize = 4096;

/// The outcome of [`Budgets::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    /// The session's budget is used up; `first`: the first refusal since the last grant (log it).
    Refused {
        first: bool,
    },
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    since: Instant,
    refused: bool,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        let earned = elapsed.as_nanos() / REFILL.as_nanos();
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        if earned == 0 {
            return;
        }
        self.tokens = self.tokens.saturating_add(earned).min(BURST);
        self.since = if self.tokens == BURST {
            now
        } else {
            // Keep the part of an interval already served.
            self.since
                .checked_add(REFILL.saturating_mul(earned))
                .unwrap_or(now)
        };
    }
}

/// The buckets of the sessions that used hand-overs recently.
#[derive(Debug, Default)]
pub struct Budgets {
    buckets: HashMap<[u8; 32], Bucket>,
}

impl Budgets {
    /// Take one hand-over from session `id`'s budget.
    pub fn take(&mut self, id: [u8; 32], now: Instant) -> Verdict {
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&id) {
            // A full bucket is the same as none.
            self.buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < BURST
            });
        }
        let bucket = self.buckets.entry(id).or_insert(Bucket {
            tokens: BURST,
            since: now,
            refused: false,
        });
        bucket.refill(now);
        match bucket.tokens.checked_sub(1) {
            Some(left) => {
                bucket.tokens = left;
                bucket.refused = false;
                Verdict::Granted
            }
            None => {
                let first = !bucket.refused;
                bucket.refused = true;
                Verdict::Refused { first }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_gets_a_burst_then_one_per_refill() {
        let mut budgets = Budgets::default();
        let id = [7; 32];
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(budgets.take(id, t0), Verdict::Granted);
        }
        // Replays from ever new addresses are refused; the first refusal is the one logged.
        assert_eq!(budgets.take(id, t0), Verdict::Refused { first: true });
        assert_eq!(
            budgets.take(id, t0 + REFILL / 2),
            Verdict::Refused { first: false }
        );
        // Another session is not affected.
        assert_eq!(budgets.take([8; 32], t0), Verdict::Granted);
        assert_eq!(budgets.take(id, t0 + REFILL), Verdict::Granted);
        assert_eq!(
            budgets.take(id, t0 + REFILL + REFILL / 2),
            Verdict::Refused { first: true }
        );
        // A long pause refills to the burst, not beyond.
        let later = t0 + REFILL * 100;
        for _ in 0..BURST {
            assert_eq!(budgets.take(id, later), Verdict::Granted);
        }
        assert_eq!(budgets.take(id, later), Verdict::Refused { first: true });
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut budgets = Budgets::default();
        let t0 = Instant::now();
        for i in 0..(MAX_BUCKETS as u32 * 2) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            budgets.take(id, t0 + REFILL * BURST * (i / MAX_BUCKETS as u32));
        }
        assert!(budgets.buckets.len() <= MAX_BUCKETS);
    }
}
