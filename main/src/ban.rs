//! Ban points per client address (protocol.md §1.8, after ocserv src/main-ban.c): every new
//! connection costs `ban-points-connection`, every wrong password `ban-points-wrong-password`
//! (reported by sec-mod); an address whose score reaches `max-ban-score` is banned for
//! `ban-time` and main drops its connections right after `accept`, before TLS. Scores are
//! forgotten `ban-reset-time` after they started counting. IPv6 addresses count per /64, as in
//! ocserv; loopback clients are never banned (ocserv exempts every local address).
//!
//! [`Bans`] is sans-IO (`now` is passed in, so expiry is tested without sleeping);
//! [`BanTable`] is the shared, locked handle main's tasks and occtl use.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rocserv_proto::config::Config;

/// Entries kept at most; past this, expired entries are purged at once and new addresses are
/// not tracked until there is room (a spoofing flood must not grow main's memory).
const MAX_ENTRIES: usize = 65_536;
/// How often expired entries are dropped, at most.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// The ban settings (reloadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    /// 0 = bans are off.
    pub max_score: u32,
    pub ban_time: Duration,
    pub reset_time: Duration,
    pub connection_points: u32,
}

impl BanPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_score: config.max_ban_score,
            ban_time: Duration::from_secs(u64::from(config.ban_time)),
            reset_time: Duration::from_secs(u64::from(config.ban_reset_time)),
            connection_points: config.ban_points_connection,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: u32,
    /// When the score started counting (reset after `reset_time`).
    since: Instant,
    /// While `score >= max_score` and `now < expires`, the address is banned.
    expires: Instant,
}

/// One banned address, for occtl `show ip bans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    pub ip: IpAddr,
    pub score: u32,
    /// When the ban ends.
    pub expires: Instant,
}

/// The score table.
#[derive(Debug)]
pub struct Bans {
    policy: BanPolicy,
    entries: HashMap<IpAddr, Entry>,
    next_cleanup: Option<Instant>,
}

impl Bans {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
            next_cleanup: None,
        }
    }

    /// New settings after a reload; scores are kept.
    pub fn set_policy(&mut self, policy: BanPolicy) {
        self.policy = policy;
    }

    pub fn enabled(&self) -> bool {
        self.policy.max_score > 0
    }

    /// Add `points` to `ip`'s score; returns true if `ip` is banned afterwards.
    pub fn add(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        if !self.enabled() || ip.is_loopback() {
            return false;
        }
        self.maybe_cleanup(now);
        let key = key(ip);
        let policy = self.policy;
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            return false;
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            score: 0,
            since: now,
            expires: now,
        });
        if now >= entry.since + policy.reset_time {
            entry.score = 0;
            entry.since = now;
        }
        // ocserv: an address already banned does not extend its ban by knocking again.
        if entry.score < policy.max_score {
            entry.expires = now + policy.ban_time;
        }
        let was_banned = entry.score >= policy.max_score;
        entry.score = entry.score.saturating_add(points);
        let banned = entry.score >= policy.max_score;
        if banned && !was_banned {
            log::info!(
                "banning {key} for {} s (score {} >= max-ban-score {})",
                policy.ban_time.as_secs(),
                entry.score,
                policy.max_score
            );
        }
        banned && now < entry.expires
    }

    /// A new TCP connection from `ip`: charge the connection points; true = refuse it.
    pub fn connection(&mut self, ip: IpAddr, now: Instant) -> bool {
        let points = self.policy.connection_points;
        self.add(ip, points, now);
        self.is_banned(ip, now)
    }

    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.enabled()
            && self
                .entries
                .get(&key(ip))
                .is_some_and(|e| e.score >= self.policy.max_score && now < e.expires)
    }

    /// Forget `ip`'s score (occtl `unban ip`); true if it had one.
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        self.entries.remove(&key(ip)).is_some()
    }

    /// Banned addresses now.
    pub fn banned(&self, now: Instant) -> Vec<BanInfo> {
        let mut list: Vec<BanInfo> = self
            .entries
            .iter()
            .filter(|(ip, _)| self.is_banned(**ip, now))
            .map(|(ip, e)| BanInfo {
                ip: *ip,
                score: e.score,
                expires: e.expires,
            })
            .collect();
        list.sort_by_key(|b| b.ip);
        list
    }

    /// Every address with a score that still counts (occtl `show ip ban points`).
    pub fn points(&self, now: Instant) -> Vec<(IpAddr, u32)> {
        let mut list: Vec<(IpAddr, u32)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.score > 0 && !self.stale(e, now))
            .map(|(ip, e)| (*ip, e.score))
            .collect();
        list.sort();
        list
    }

    fn stale(&self, e: &Entry, now: Instant) -> bool {
        now >= e.expires && now >= e.since + self.policy.reset_time
    }

    fn maybe_cleanup(&mut self, now: Instant) {
        let due = self.next_cleanup.is_none_or(|t| now >= t);
        if due || self.entries.len() >= MAX_ENTRIES {
            let policy = self.policy;
            self.entries
                .retain(|_, e| !(now >= e.expires && now >= e.since + policy.reset_time));
            self.next_cleanup = Some(now + CLEANUP_EVERY);
        }
    }
}

/// The address a score is kept under: IPv6 per /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The shared ban table: [`Bans`] behind a lock, with the clock read here.
#[derive(Debug)]
pub struct BanTable {
    inner: Mutex<Bans>,
}

/// One banned address for occtl, with wall-clock expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banned {
    pub ip: IpAddr,
    pub score: u32,
    /// When the ban ends (wall clock, for display).
    pub expires: SystemTime,
    /// Time left.
    pub remaining: Duration,
}

impl BanTable {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            inner: Mutex::new(Bans::new(policy)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bans> {
        // A poisoned lock only means a panic elsewhere; each update is self-contained.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_policy(&self, policy: BanPolicy) {
        self.lock().set_policy(policy);
    }

    /// A new connection from `ip`; true = banned, drop it.
    pub fn check_connection(&self, ip: IpAddr) -> bool {
        self.lock().connection(ip, Instant::now())
    }

    /// sec-mod reported a wrong password from `ip`.
    pub fn add_points(&self, ip: IpAddr, points: u32) {
        self.lock().add(ip, points, Instant::now());
    }

    /// Banned addresses now (occtl `show ip bans`).
    pub fn bans(&self) -> Vec<Banned> {
        let now = Instant::now();
        let wall = SystemTime::now();
        self.lock()
            .banned(now)
            .into_iter()
            .map(|b| {
                let remaining = b.expires.saturating_duration_since(now);
                Banned {
                    ip: b.ip,
                    score: b.score,
                    expires: wall + remaining,
                    remaining,
                }
            })
            .collect()
    }

    /// Every address with points (occtl `show ip ban points`).
    pub fn points(&self) -> Vec<(IpAddr, u32)> {
        self.lock().points(Instant::now())
    }

    /// occtl `unban ip`: true if the address had a score.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let found = self.lock().unban(ip);
        if found {
            log::info!("unbanned {ip}");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BanPolicy {
        BanPolicy {
            max_score: 80,
            ban_time: Duration::from_secs(300),
            reset_time: Duration::from_secs(1200),
            connection_points: 1,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn wrong_passwords_ban_until_ban_time() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("10.0.0.2");
        for i in 0..7 {
            assert!(!b.connection(a, t0), "connection {i}");
            assert!(!b.add(a, 10, t0));
        }
        // 7 connections + 70 password points = 77; the 8th wrong password passes 80.
        assert!(b.add(a, 10, t0 + secs(1)));
        assert!(b.connection(a, t0 + secs(2)));
        assert!(!b.connection(ip("10.0.0.3"), t0 + secs(2)));
        assert_eq!(b.banned(t0 + secs(2)).len(), 1);
        assert_eq!(b.banned(t0 + secs(2))[0].score, 88);
        // Knocking while banned does not extend the ban.
        assert!(b.connection(a, t0 + secs(300)));
        assert!(!b.is_banned(a, t0 + secs(301)));
        // ocserv: the score stays until ban-reset-time, but the ban itself is over.
        assert!(!b.connection(a, t0 + secs(302)));
    }

    #[test]
    fn scores_reset_after_ban_reset_time() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        b.add(a, 70, t0);
        assert_eq!(b.points(t0), [(a, 70)]);
        // After ban-reset-time the old points are gone.
        assert!(!b.add(a, 10, t0 + secs(1200)));
        assert_eq!(b.points(t0 + secs(1200)), [(a, 10)]);
    }

    #[test]
    fn unban_lifts_at_once() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        assert!(b.add(a, 100, t0));
        assert!(b.unban(a));
        assert!(!b.unban(a));
        assert!(!b.connection(a, t0));
        assert!(b.banned(t0).is_empty());
    }

    #[test]
    fn off_loopback_and_ipv6_prefix() {
        let t0 = Instant::now();
        let mut off = Bans::new(BanPolicy {
            max_score: 0,
            ..policy()
        });
        assert!(!off.add(ip("192.0.2.1"), 1000, t0));
        assert!(off.points(t0).is_empty());
        let mut b = Bans::new(policy());
        assert!(!b.add(ip("127.0.0.1"), 1000, t0));
        assert!(!b.add(ip("::1"), 1000, t0));
        // One /64 is one client.
        assert!(b.add(ip("2001:db8:1:2::5"), 80, t0));
        assert!(b.is_banned(ip("2001:db8:1:2:ffff::1"), t0));
        assert!(!b.is_banned(ip("2001:db8:1:3::5"), t0));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(b.add(ip("::ffff:192.0.2.9"), 80, t0));
        assert!(b.is_banned(ip("192.0.2.9"), t0));
    }

    #[test]
    fn policy_change_applies_to_existing_scores() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        b.add(a, 50, t0);
        assert!(!b.is_banned(a, t0));
        b.set_policy(BanPolicy {
            max_score: 40,
            ..policy()
        });
        assert!(b.is_banned(a, t0));
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            b.add(IpAddr::V4(i.into()), 1, t0);
        }
        assert!(b.entries.len() <= MAX_ENTRIES);
    }
}
