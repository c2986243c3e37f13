//! Server-wide counters for occtl `show status` (protocol.md §7.3) and the metrics endpoint
//! (doc/metrics.md): lock-free, updated by the accept loop, the worker tasks and sec-mod's
//! reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Counts since the server started (or since the last `reset`, for the resettable ones).
#[derive(Debug)]
pub struct Counters {
    /// When main started serving (wall clock for display, monotonic for the uptime).
    pub started_at: SystemTime,
    started: Instant,
    /// TCP connections accepted (a worker was spawned).
    pub connections: AtomicU64,
    /// Connections dropped at accept: banned address, `max-clients`.
    pub rejected: AtomicU64,
    /// Tunnels granted (connect-script passed).
    pub sessions: AtomicU64,
    /// Failed logins reported by sec-mod.
    pub auth_failures: AtomicU64,
    /// Bytes of ended tunnels: received from clients, sent to them.
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Successful configuration reloads.
    pub reloads: AtomicU64,
    /// How long starting a worker took: its socket pairs, sec-mod told, fork+exec.
    pub worker_spawn: Histogram,
    /// Round trip of main's requests to sec-mod that wait for an answer (`SessionOpen`).
    pub secmod_request: Histogram,
}

/// Upper bounds (seconds) of the latency histograms: 1 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A fixed-bucket latency histogram (Prometheus `histogram`), lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (not cumulative); the last slot counts
    /// those above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram's values at one moment, as the text format wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at or below it), ascending.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(slot) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let cumulative = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(le, n)| {
                running = running.saturating_add(n.load(Ordering::Relaxed));
                (*le, running)
            })
            .collect();
        // Read after the buckets: a concurrent observation may make `count` the larger, never
        // a bucket larger than `+Inf`.
        let count = self.count.load(Ordering::Relaxed).max(running);
        // Microseconds are exact in an f64 below 2^53 (285 years).
        let sum_secs = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        HistogramSnapshot {
            cumulative,
            sum_secs,
            count,
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub started_at: SystemTime,
    pub uptime: Duration,
    pub connections: u64,
    pub rejected: u64,
    pub sessions: u64,
    pub auth_failures: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub reloads: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started_at: SystemTime::now(),
            started: Instant::now(),
            connections: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            worker_spawn: Histogram::default(),
            secmod_request: Histogram::default(),
        }
    }
}

impl Counters {
    /// Add `n` to one counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            started_at: self.started_at,
            uptime: self.started.elapsed(),
            connections: get(&self.connections),
            rejected: get(&self.rejected),
            sessions: get(&self.sessions),
            auth_failures: get(&self.auth_failures),
            rx_bytes: get(&self.rx_bytes),
            tx_bytes: get(&self.tx_bytes),
            reloads: get(&self.reloads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let c = Counters::default();
        Counters::add(&c.sessions, 2);
        Counters::add(&c.rx_bytes, 100);
        Counters::add(&c.rx_bytes, 23);
        let s = c.snapshot();
        assert_eq!((s.sessions, s.rx_bytes, s.tx_bytes), (2, 123, 0));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // <= 1 ms
        h.observe(Duration::from_millis(1)); // on the bound: still the 1 ms bucket
        h.observe(Duration::from_millis(30)); // 50 ms bucket
        h.observe(Duration::from_secs(60)); // above every bound: +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative.first(), Some(&(0.001, 2)));
        assert_eq!(s.cumulative.get(4), Some(&(0.025, 2)));
        assert_eq!(s.cumulative.get(5), Some(&(0.05, 3)));
        assert_eq!(s.cumulative.last(), Some(&(10.0, 3)));
        assert!((s.sum_secs - 60.0315).abs() < 1e-9, "{}", s.sum_secs);
    }
}
