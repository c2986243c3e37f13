//! Server-wide counters for occtl `show status` (protocol.md §7.3): lock-free, updated by the
//! accept loop, the worker tasks and sec-mod's reader.

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
}
