//! Admission limits and timeouts, sans-IO (`now` passed in): `max-same-clients` (concurrent
//! sessions per user name, protocol.md §6.1), `rate-limit-ms` (pacing of accepted connections)
//! and main's idle-timeout backstop ([`IdleWatch`]). `max-clients` and the pre-auth caps are
//! counted by [`crate::conn::reserve`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rocserv_proto::ipc::SessionId;

/// Live tunnels per user name, counted per session: a reconnect with the same cookie (which
/// takes the old connection's place, protocol.md §6.2) is not a second client.
#[derive(Debug, Default)]
pub struct Users {
    /// user -> session -> tunnels of that session alive now.
    live: HashMap<String, HashMap<SessionId, u32>>,
}

impl Users {
    /// A CONNECT of `user` with session `sid`: admitted unless the user already has `max`
    /// other sessions with a tunnel (0 = unlimited). Admitted connections must be
    /// [`Self::close`]d.
    pub fn admit(&mut self, user: &str, sid: SessionId, max: u32) -> bool {
        let sessions = self.live.entry(user.to_owned()).or_default();
        let others = sessions.keys().filter(|s| **s != sid).count();
        if max > 0 && others >= max as usize {
            if sessions.is_empty() {
                self.live.remove(user);
            }
            return false;
        }
        let tunnels = sessions.entry(sid).or_insert(0);
        *tunnels = tunnels.saturating_add(1);
        true
    }

    /// An admitted connection ended.
    pub fn close(&mut self, user: &str, sid: SessionId) {
        let Some(sessions) = self.live.get_mut(user) else {
            return;
        };
        if let Some(tunnels) = sessions.get_mut(&sid) {
            *tunnels = tunnels.saturating_sub(1);
            if *tunnels == 0 {
                sessions.remove(&sid);
            }
        }
        if sessions.is_empty() {
            self.live.remove(user);
            rocserv_rt::memory::shrink_map(&mut self.live);
        }
    }

    /// Sessions of `user` with a tunnel now.
    pub fn sessions_of(&self, user: &str) -> usize {
        self.live.get(user).map_or(0, HashMap::len)
    }

    /// The sessions of `user` with a tunnel (or an admitted CONNECT).
    pub fn session_ids(&self, user: &str) -> Vec<SessionId> {
        self.live
            .get(user)
            .map(|s| s.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// `rate-limit-ms`: after each accepted connection, the next one waits `interval`.
#[derive(Debug, Default)]
pub struct Pacer {
    resume_at: Option<Instant>,
}

impl Pacer {
    /// A connection was accepted at `now`.
    pub fn accepted(&mut self, now: Instant, interval: Duration) {
        self.resume_at = (!interval.is_zero()).then(|| now + interval);
    }

    /// When accepting may go on, if it must wait at `now`.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.resume_at.filter(|t| *t > now)
    }
}

/// main's `idle-timeout` backstop: the tun device's kernel packet counters are sampled every
/// quarter of `limit` (at least every second); when they have not moved for `limit`, the
/// connection is idle. Never earlier than `limit` after the last sample that moved, at most a
/// quarter of `limit` later than that.
#[derive(Debug, Clone)]
pub struct IdleWatch {
    limit: Duration,
    last: Option<u64>,
    since: Instant,
    next: Instant,
}

impl IdleWatch {
    /// Start watching at `now` (the tunnel was just granted: that counts as activity).
    pub fn new(limit: Duration, now: Instant) -> Self {
        let mut w = Self {
            limit,
            last: None,
            since: now,
            next: now,
        };
        w.next = now + w.step();
        w
    }

    fn step(&self) -> Duration {
        (self.limit / 4).max(Duration::from_secs(1))
    }

    /// When to take the next sample.
    pub fn next_check(&self) -> Instant {
        self.next
    }

    /// A sample of the counters at `now` (`None`: the device is gone). `true` = idle for
    /// `limit`: end the connection.
    pub fn sample(&mut self, packets: Option<u64>, now: Instant) -> bool {
        if packets.is_some() && packets != self.last {
            self.last = packets;
            self.since = now;
        }
        self.next = now + self.step();
        now.saturating_duration_since(self.since) >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_session_of_a_user_is_refused_at_one() {
        let mut u = Users::default();
        assert!(u.admit("alice", SessionId(1), 1));
        assert!(!u.admit("alice", SessionId(2), 1));
        // Same cookie again (reconnect / takeover): allowed.
        assert!(u.admit("alice", SessionId(1), 1));
        assert!(u.admit("bob", SessionId(3), 1));
        u.close("alice", SessionId(1));
        assert!(!u.admit("alice", SessionId(2), 1));
        u.close("alice", SessionId(1));
        assert_eq!(u.sessions_of("alice"), 0);
        assert!(u.admit("alice", SessionId(2), 1));
    }

    #[test]
    fn zero_is_unlimited_and_refusals_leave_no_trace() {
        let mut u = Users::default();
        for sid in 0..50 {
            assert!(u.admit("carol", SessionId(sid), 0));
        }
        assert_eq!(u.sessions_of("carol"), 50);
        assert!(u.admit("dave", SessionId(1), 2));
        assert!(u.admit("dave", SessionId(2), 2));
        assert!(!u.admit("dave", SessionId(3), 2));
        assert_eq!(u.sessions_of("dave"), 2);
        u.close("nobody", SessionId(9));
        u.close("dave", SessionId(9));
        assert_eq!(u.sessions_of("dave"), 2);
    }

    #[test]
    fn idle_watch_ends_a_quiet_tunnel_and_spares_a_busy_one() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWatch::new(s(100), t0);
        assert_eq!(w.next_check(), t0 + s(25));
        // Traffic moves the counters: never idle.
        for i in 1..=8u64 {
            assert!(!w.sample(Some(i), t0 + s(25 * i)));
        }
        // Quiet from 200 s on: idle once 100 s passed since the last change, not before.
        assert!(!w.sample(Some(8), t0 + s(225)));
        assert!(!w.sample(Some(8), t0 + s(299)));
        assert!(w.sample(Some(8), t0 + s(300)));
        // A device that is gone never counts as traffic.
        let mut w = IdleWatch::new(s(8), t0);
        assert_eq!(w.next_check(), t0 + s(2));
        assert!(!w.sample(None, t0 + s(2)));
        assert!(w.sample(None, t0 + s(8)));
        // A tiny limit still samples at most once a second.
        assert_eq!(IdleWatch::new(s(2), t0).next_check(), t0 + s(1));
    }

    #[test]
    fn pacer_pauses_for_the_interval() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert_eq!(p.paused_until(t0), None);
        p.accepted(t0, Duration::from_millis(100));
        assert_eq!(
            p.paused_until(t0 + Duration::from_millis(50)),
            Some(t0 + Duration::from_millis(100))
        );
        assert_eq!(p.paused_until(t0 + Duration::from_millis(100)), None);
        p.accepted(t0, Duration::ZERO);
        assert_eq!(p.paused_until(t0), None);
    }
}
