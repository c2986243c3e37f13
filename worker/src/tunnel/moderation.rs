//! Receive moderation and the worker's CPU class, sans-IO (the caller passes the clock).
//!
//! Moderation, as network cards do it: a read of the DTLS socket that found at least
//! [`MODERATE_AT`] datagrams means a bulk flow; the pump then takes the socket out of epoll
//! (arrivals would wake it anyway: [`super::dtls_socket`]) and reads it every [`MODERATION`], so
//! one wake-up serves many datagrams and the joined tun writes grow. The first read that finds
//! fewer puts the socket back, so sparse traffic (pings, voice, interactive sessions) never waits.
//!
//! CPU class: on a busy machine a sparse flow's packet waits mostly for the CPU, not for us. A
//! woken worker whose scheduling slice is the default (0.7-3 ms on EEVDF) often waits for the
//! task that holds the CPU to use up its own slice, up to a scheduler tick (4 ms at HZ=250); a
//! short slice gives it an earlier deadline, so its wake-up preempts at once (Linux 6.12+,
//! `sched_setattr(2)` `sched_runtime` for SCHED_OTHER; EEVDF keeps the CPU shares fair). So a
//! worker runs [`Class::Interactive`] (short slice) while its traffic is sparse, and
//! [`Class::Bulk`] (the default slice: fewer preemptions for the throughput) once a direction
//! has been bulk for [`BULK_CLASS_AFTER`], back to interactive at the first sparse read of every
//! bulk direction (sparse by size and by rate). The hold-down keeps a short burst (a web page)
//! from switching at all.
//!
//! For the class only, a direction is bulk also by rate: [`RATE_BULK`] units or more within a
//! [`RATE_WINDOW`], whatever each read found. The client chooses how its datagrams are paced, so
//! a fast flow sent one datagram per wake-up would otherwise keep the worker on the short slice
//! (preempting at every packet). Voice and games (tens to a few hundred packets a second) stay
//! below it. The pause is decided by the read size alone: a sparse read never waits.

use std::time::{Duration, Instant};

/// Datagrams (or packets) in one read that mean a bulk flow.
pub const MODERATE_AT: usize = 8;
/// How long datagrams gather in a bulk flow (tokio's timer rounds up to its 1 ms tick; 1 Gbit/s
/// queues ~250 KiB in 2 ms, well inside the 1 MiB socket buffer main gives each client).
pub const MODERATION: Duration = Duration::from_micros(500);
/// A direction bulk for this long takes the worker out of the interactive class.
pub const BULK_CLASS_AFTER: Duration = Duration::from_millis(50);
/// Units (datagrams, packets, kilobytes of CSTP) within [`RATE_WINDOW`] that make a direction
/// bulk for the class, whatever the size of each read (2000 a second).
pub const RATE_BULK: usize = 20;
/// The window [`RATE_BULK`] is counted in.
pub const RATE_WINDOW: Duration = Duration::from_millis(10);
/// CSTP bytes in one read of the TLS connection that count as one packet for [`MODERATE_AT`].
const TLS_UNIT: usize = 1024;

/// How the worker asks to be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Short slice: a wake-up preempts at once.
    Interactive,
    /// The kernel's default slice.
    Bulk,
}

/// Where traffic is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Datagrams from the client (DTLS socket).
    DtlsIn,
    /// CSTP bytes from the client (TLS connection).
    TlsIn,
    /// Packets for the client (tun device).
    TunIn,
}

/// Bulk since when, per direction; `None` = sparse.
#[derive(Debug)]
pub struct Moderation {
    since: [Option<Instant>; 3],
    rate: [Rate; 3],
    class: Class,
}

/// Units counted in fixed windows of [`RATE_WINDOW`], per direction.
#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    /// Start of the current window and the units seen in it.
    window: Option<(Instant, usize)>,
    /// The window just before the current one (adjacent) reached [`RATE_BULK`].
    fast_before: bool,
}

impl Rate {
    /// Count `units` at `now`; whether the direction is fast.
    fn count(&mut self, units: usize, now: Instant) -> bool {
        let (start, seen) = match self.window {
            Some((start, seen)) if now.saturating_duration_since(start) < RATE_WINDOW => {
                (start, seen)
            }
            previous => {
                // Only an adjacent window carries over: after a gap the flow starts slow.
                self.fast_before = previous.is_some_and(|(start, seen)| {
                    seen >= RATE_BULK && now.saturating_duration_since(start) < RATE_WINDOW * 2
                });
                (now, 0)
            }
        };
        let seen = seen.saturating_add(units);
        self.window = Some((start, seen));
        self.fast_before || seen >= RATE_BULK
    }
}

impl Default for Moderation {
    fn default() -> Self {
        Self::new()
    }
}

impl Moderation {
    /// Every direction sparse, interactive.
    pub fn new() -> Self {
        Self {
            since: [None; 3],
            rate: [Rate::default(); 3],
            class: Class::Interactive,
        }
    }

    /// The class the worker is in.
    pub fn class(&self) -> Class {
        self.class
    }

    /// After a read of the DTLS socket: how long the next datagrams may gather (`None`: watch
    /// the socket again, the flow is sparse). `drained` is what `Dtls::on_readable` returns:
    /// `None` means more are waiting, to be read as soon as the other event sources had a turn.
    /// The second value is a class change to apply, if any.
    pub fn after_dtls_read(
        &mut self,
        drained: Option<usize>,
        now: Instant,
    ) -> (Option<Duration>, Option<Class>) {
        let pause = match drained {
            None => Some(Duration::ZERO),
            Some(n) if n >= MODERATE_AT => Some(MODERATION),
            Some(_) => None,
        };
        // More waiting: at least a full read's worth.
        let units = drained.unwrap_or(MODERATE_AT);
        let class = self.observe(Direction::DtlsIn, pause.is_some(), units, now);
        (pause, class)
    }

    /// After a read of the TLS connection that brought `bytes`.
    pub fn after_tls_read(&mut self, bytes: usize, now: Instant) -> Option<Class> {
        let units = bytes / TLS_UNIT;
        self.observe(Direction::TlsIn, units >= MODERATE_AT, units.max(1), now)
    }

    /// After a wake-up that moved `packets` from the tun device towards the client.
    pub fn after_tun_read(&mut self, packets: usize, now: Instant) -> Option<Class> {
        self.observe(Direction::TunIn, packets >= MODERATE_AT, packets, now)
    }

    /// `full`: the read was a bulk one by its size; `units` it brought (counted for the rate).
    fn observe(
        &mut self,
        direction: Direction,
        full: bool,
        units: usize,
        now: Instant,
    ) -> Option<Class> {
        let slot = match direction {
            Direction::DtlsIn => 0,
            Direction::TlsIn => 1,
            Direction::TunIn => 2,
        };
        let fast = self
            .rate
            .get_mut(slot)
            .is_some_and(|rate| rate.count(units, now));
        let bulk = full || fast;
        if let Some(since) = self.since.get_mut(slot) {
            *since = match (*since, bulk) {
                (_, false) => None,
                (None, true) => Some(now),
                (Some(t), true) => Some(t),
            };
        }
        let class = if self
            .since
            .iter()
            .flatten()
            .any(|since| now.saturating_duration_since(*since) >= BULK_CLASS_AFTER)
        {
            Class::Bulk
        } else if self.since.iter().all(Option::is_none) {
            Class::Interactive
        } else {
            // Bulk, but not for long yet, or going sparse in one direction while another is
            // still bulk: no change.
            self.class
        };
        (class != self.class).then(|| {
            self.class = class;
            class
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_sparse_read_is_never_held() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        for i in 0..100 {
            for n in [0, 1, 2, MODERATE_AT - 1] {
                // 10 datagrams a millisecond: bulk by rate for the class, never paused.
                assert_eq!(m.after_dtls_read(Some(n), t0 + ms(i)).0, None);
            }
        }
    }

    #[test]
    fn a_steady_stream_of_lone_datagrams_is_bulk_by_rate() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        let mut changes = Vec::new();
        // One datagram every 50 us for 100 ms (20 000 a second), each read finding one.
        for i in 0..2000u64 {
            let (pause, class) = m.after_dtls_read(Some(1), t0 + Duration::from_micros(50 * i));
            assert_eq!(pause, None);
            changes.extend(class);
        }
        assert_eq!(changes, [Class::Bulk]);
        assert_eq!(m.class(), Class::Bulk);
        // The stream stops; a ping after a pause brings the short slice back.
        assert_eq!(
            m.after_dtls_read(Some(1), t0 + ms(200)),
            (None, Some(Class::Interactive))
        );
    }

    #[test]
    fn pings_every_10_ms_stay_interactive() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        for i in 0..1000 {
            assert_eq!(m.after_dtls_read(Some(1), t0 + ms(10 * i)), (None, None));
            assert_eq!(m.after_tun_read(1, t0 + ms(10 * i + 1)), None);
            assert_eq!(m.after_tls_read(100, t0 + ms(10 * i + 2)), None);
        }
        assert_eq!(m.class(), Class::Interactive);
    }

    #[test]
    fn a_fast_tun_flow_one_packet_per_wake_up_is_bulk_by_rate() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        let changes: Vec<_> = (0..1000u64)
            .filter_map(|i| m.after_tun_read(1, t0 + Duration::from_micros(100 * i)))
            .collect();
        assert_eq!(changes, [Class::Bulk]);
    }

    #[test]
    fn bulk_is_batched_and_more_waiting_is_read_on_the_next_turn() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        assert_eq!(
            m.after_dtls_read(Some(MODERATE_AT), t0),
            (Some(MODERATION), None)
        );
        assert_eq!(m.after_dtls_read(None, t0), (Some(Duration::ZERO), None));
        // The first read that finds a lone datagram watches the socket again.
        assert_eq!(m.after_dtls_read(Some(1), t0 + ms(1)), (None, None));
    }

    #[test]
    fn a_long_bulk_flow_leaves_the_interactive_class_and_the_first_lone_datagram_brings_it_back() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        // A short burst (a web page) does not switch.
        for i in 0..BULK_CLASS_AFTER.as_millis() as u64 {
            assert_eq!(m.after_dtls_read(Some(32), t0 + ms(i)).1, None);
        }
        assert_eq!(
            m.after_dtls_read(Some(32), t0 + BULK_CLASS_AFTER).1,
            Some(Class::Bulk)
        );
        assert_eq!(
            m.after_dtls_read(Some(32), t0 + BULK_CLASS_AFTER + ms(1)).1,
            None
        );
        // Right after the flood the rate still says bulk; the lone datagram after it has fallen
        // (no full window in the last two) brings the short slice back.
        assert_eq!(
            m.after_dtls_read(Some(1), t0 + BULK_CLASS_AFTER + ms(2)),
            (None, None)
        );
        let (pause, class) = m.after_dtls_read(Some(1), t0 + BULK_CLASS_AFTER + ms(25));
        assert_eq!((pause, class), (None, Some(Class::Interactive)));
        // A new burst starts the hold-down again.
        let t1 = t0 + ms(500);
        assert_eq!(m.after_dtls_read(Some(32), t1).1, None);
        assert_eq!(m.after_dtls_read(Some(32), t1 + ms(10)).1, None);
        assert_eq!(m.class(), Class::Interactive);
    }

    #[test]
    fn an_interrupted_burst_restarts_the_hold_down() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        assert_eq!(m.after_dtls_read(Some(32), t0).1, None);
        assert_eq!(m.after_dtls_read(Some(1), t0 + ms(40)).1, None);
        assert_eq!(m.after_dtls_read(Some(32), t0 + ms(45)).1, None);
        assert_eq!(m.after_dtls_read(Some(32), t0 + ms(60)).1, None);
        assert_eq!(
            m.after_dtls_read(Some(32), t0 + ms(95)).1,
            Some(Class::Bulk)
        );
    }

    #[test]
    fn the_class_stays_bulk_while_any_direction_is_bulk() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        // A download: full tun reads, ACKs upstream in few datagrams per read.
        assert_eq!(m.after_tun_read(64, t0), None);
        assert_eq!(m.after_dtls_read(Some(2), t0 + ms(10)), (None, None));
        assert_eq!(m.after_tun_read(64, t0 + ms(60)), Some(Class::Bulk));
        assert_eq!(m.after_dtls_read(Some(1), t0 + ms(61)), (None, None));
        assert_eq!(m.class(), Class::Bulk);
        // The download ends: the first sparse tun read once the rate has fallen too.
        assert_eq!(m.after_tun_read(1, t0 + ms(70)), None);
        assert_eq!(m.after_tun_read(1, t0 + ms(85)), Some(Class::Interactive));
    }

    #[test]
    fn tls_reads_count_in_packets_of_a_kilobyte() {
        let mut m = Moderation::new();
        let t0 = Instant::now();
        assert_eq!(m.after_tls_read(MODERATE_AT * TLS_UNIT - 1, t0), None);
        assert_eq!(m.after_tls_read(64 * 1024, t0 + ms(1)), None);
        assert_eq!(
            m.after_tls_read(64 * 1024, t0 + ms(1) + BULK_CLASS_AFTER),
            Some(Class::Bulk)
        );
        assert_eq!(
            m.after_tls_read(100, t0 + ms(100)),
            Some(Class::Interactive)
        );
    }
}
