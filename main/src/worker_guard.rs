//! main's check of every message a worker sends, before main acts on it: the worker faces the
//! internet and may be compromised, so its word is bounded in rate and in content.
//!
//! - Rate: one token bucket per message kind. `Stats` comes every `stats-report-time` (>= 1 s),
//!   `TunMtu` a handful of times while path MTU discovery searches; each `TunMtu` costs an
//!   RTNL-locked netlink call in main, so a flood is a denial of service for every user. A
//!   worker over its budget is killed. `TunnelState` has a soft gate in `crate::tunnel_state`
//!   (excess reports ignored, one log line) and here a hard bucket well above an honest
//!   worker's one a second: past it, the flood itself is the violation.
//! - Content: a `Connect`'s strings go into root-run scripts and occtl, so they must pass the
//!   same `client_strings` rules the worker cleans them with.
//!
//! Sans-IO: `now` is passed in.

use std::time::{Duration, Instant};

use rocserv_proto::client_strings;
use rocserv_proto::ipc::main_worker::ToMain;

/// A token bucket: up to `capacity` events at once, then one per `refill`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: u32,
    refill: Duration,
    tokens: u32,
    /// When the last token was added (or the bucket was last full).
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(capacity: u32, refill: Duration, now: Instant) -> Self {
        Self {
            capacity,
            refill,
            tokens: capacity,
            last: now,
        }
    }

    /// Take one token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        self.add_tokens(now);
        match self.tokens.checked_sub(1) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    fn add_tokens(&mut self, now: Instant) {
        if self.tokens >= self.capacity {
            self.last = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.last);
        let refill = self.refill.as_nanos().max(1);
        let new = u32::try_from(elapsed.as_nanos() / refill).unwrap_or(u32::MAX);
        if new == 0 {
            return;
        }
        let room = self.capacity.saturating_sub(self.tokens);
        if new >= room {
            self.tokens = self.capacity;
            self.last = now;
        } else {
            self.tokens = self.tokens.saturating_add(new);
            // Keep the fraction of a token already earned.
            self.last += self.refill.saturating_mul(new);
        }
    }
}

/// Why a worker's message was refused (the worker is then killed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("too many {0} messages")]
    Rate(&'static str),
    #[error(transparent)]
    Field(#[from] client_strings::BadField),
}

/// The limits of one worker's messages.
#[derive(Debug, Clone)]
pub struct WorkerGuard {
    stats: TokenBucket,
    tun_mtu: TokenBucket,
    /// `Connect` and `SessionEnd` come once each; a few spare for a confused but honest worker.
    once: TokenBucket,
    /// The hard limit of `TunnelState` (the soft one is `crate::tunnel_state::StateGate`).
    tunnel_state: TokenBucket,
}

impl WorkerGuard {
    pub fn new(now: Instant) -> Self {
        Self {
            // The worker's timer fires at most once a second; a little slack for jitter.
            stats: TokenBucket::new(4, Duration::from_secs(1), now),
            // A path MTU search from 1500 to 576 takes about ten steps; later changes are rare.
            tun_mtu: TokenBucket::new(20, Duration::from_secs(2), now),
            once: TokenBucket::new(4, Duration::from_secs(60), now),
            // An honest worker sends at most one a second (`TUNNEL_STATE_INTERVAL_MS`); five
            // times that, with a burst, is never reached without a flood.
            tunnel_state: TokenBucket::new(20, Duration::from_millis(200), now),
        }
    }

    /// Check `msg` (received at `now`) before main acts on it.
    pub fn check(&mut self, msg: &ToMain, now: Instant) -> Result<(), Violation> {
        let (bucket, kind) = match msg {
            ToMain::Connect(req) => {
                client_strings::check_request(req)?;
                (&mut self.once, "Connect/SessionEnd")
            }
            ToMain::SessionEnd { .. } => (&mut self.once, "Connect/SessionEnd"),
            ToMain::Stats { .. } => (&mut self.stats, "Stats"),
            ToMain::TunMtu { .. } => (&mut self.tun_mtu, "TunMtu"),
            // Also paced and checked by `crate::tunnel_state` (a few excess ones are ignored).
            ToMain::TunnelState(_) => (&mut self.tunnel_state, "TunnelState"),
        };
        if bucket.take(now) {
            Ok(())
        } else {
            Err(Violation::Rate(kind))
        }
    }
}

#[cfg(test)]
mod tests {
    use rocserv_proto::ipc::main_worker::ConnectRequest;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn bucket_allows_a_burst_then_the_refill_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, SEC, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + SEC / 2));
        assert!(b.take(t0 + SEC));
        assert!(!b.take(t0 + SEC));
        // 2.5 s later: two tokens, and the half token is kept.
        assert!(b.take(t0 + SEC * 7 / 2) && b.take(t0 + SEC * 7 / 2));
        assert!(!b.take(t0 + SEC * 7 / 2));
        assert!(b.take(t0 + SEC * 4));
        // Idle for long: full again, never more than the capacity.
        let later = t0 + SEC * 1000;
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn a_tun_mtu_flood_is_a_violation() {
        let t0 = Instant::now();
        let mut g = WorkerGuard::new(t0);
        let msg = ToMain::TunMtu { mtu: 1200 };
        let refused = (0..1000).position(|_| g.check(&msg, t0).is_err());
        assert_eq!(refused, Some(20));
        assert_eq!(g.check(&msg, t0), Err(Violation::Rate("TunMtu")));
    }

    #[test]
    fn honest_reports_pass() {
        let t0 = Instant::now();
        let mut g = WorkerGuard::new(t0);
        let stats = ToMain::Stats {
            rx_bytes: 1,
            tx_bytes: 2,
        };
        // One Stats a second (the shortest `stats-report-time`) for an hour.
        for s in 1..3600 {
            assert_eq!(g.check(&stats, t0 + SEC * s), Ok(()));
        }
        // A ten-step MTU search within a second, then a change a minute.
        let mtu = ToMain::TunMtu { mtu: 1000 };
        for _ in 0..10 {
            assert_eq!(g.check(&mtu, t0), Ok(()));
        }
        for m in 1..120 {
            assert_eq!(g.check(&mtu, t0 + SEC * 60 * m), Ok(()));
        }
        assert_eq!(g.check(&stats, t0 + SEC * 3600), Ok(()));
    }

    #[test]
    fn a_stats_flood_is_a_violation() {
        let t0 = Instant::now();
        let mut g = WorkerGuard::new(t0);
        let stats = ToMain::Stats {
            rx_bytes: 0,
            tx_bytes: 0,
        };
        assert!((0..100).any(|_| g.check(&stats, t0).is_err()));
    }

    fn state() -> ToMain {
        ToMain::TunnelState(rocserv_proto::ipc::main_worker::TunnelState {
            tls_version: 0x0304,
            tls_suite: 0x1302,
            tls_group: Some(0x001D),
            tls_signature: Some(0x0804),
            dtls_suite: None,
            dtls_flow: 0,
            dtls_in_use: false,
            cstp_compression: None,
            dtls_compression: None,
        })
    }

    #[test]
    fn a_tunnel_state_flood_is_a_violation() {
        let t0 = Instant::now();
        let mut g = WorkerGuard::new(t0);
        let refused = (0..1000).position(|_| g.check(&state(), t0).is_err());
        assert_eq!(refused, Some(20));
        assert_eq!(g.check(&state(), t0), Err(Violation::Rate("TunnelState")));
    }

    #[test]
    fn honest_tunnel_state_reports_pass() {
        let t0 = Instant::now();
        let mut g = WorkerGuard::new(t0);
        // A burst at start (TLS, DTLS up, a fallback), then one a second for an hour.
        for _ in 0..5 {
            assert_eq!(g.check(&state(), t0), Ok(()));
        }
        for s in 1..3600 {
            assert_eq!(g.check(&state(), t0 + SEC * s), Ok(()));
        }
    }

    #[test]
    fn a_hostname_with_a_newline_is_refused() {
        let mut g = WorkerGuard::new(Instant::now());
        let req = ConnectRequest {
            cookie: "abc".into(),
            hostname: Some("laptop\nevil 60 IN A 10.0.0.1".into()),
            base_mtu: None,
            cstp_mtu: None,
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            device_platform: String::new(),
            device_type: String::new(),
            dtls_overhead: None,
        };
        assert_eq!(
            g.check(&ToMain::Connect(req.clone()), Instant::now()),
            Err(Violation::Field(client_strings::BadField("hostname")))
        );
        let good = ConnectRequest {
            hostname: Some("laptop".into()),
            ..req
        };
        assert_eq!(g.check(&ToMain::Connect(good), Instant::now()), Ok(()));
    }
}
