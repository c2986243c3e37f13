//! Ban points per client address (protocol.md §1.8, after ocserv src/main-ban.c): every new
//! connection costs `ban-points-connection`, every wrong password `ban-points-wrong-password`
//! (reported by sec-mod); an address whose score reaches `max-ban-score` is banned for
//! `ban-time` and main drops its connections right after `accept`, before TLS. A score starts
//! over `ban-reset-time` after it started counting, but never while its address is banned;
//! when a ban ends the score starts over too (so the next `max-ban-score` points ban again).
//! Only occtl `unban ip` ends a ban early; a reload keeps running bans. IPv6 addresses count per
//! /64, as in ocserv; loopback clients are never banned (ocserv exempts every local address).
//!
//! [`Bans`] is sans-IO (`now` is passed in, so expiry is tested without sleeping);
//! [`BanTable`] is the shared, locked handle main's tasks and occtl use.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rocserv_proto::cluster::bans::{BanPoints, BanRecord};
use rocserv_proto::config::Config;

/// Entries kept at most. When the table is full, a new address evicts the entry with the lowest
/// score, least recently seen, an address under a ban last: a flood of new addresses (each
/// IPv6 /64 is one) must neither grow main's memory nor let a guesser escape by making main
/// ignore it, nor push a guesser's score out with cheap one-point entries.
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
    /// When the score started counting; it starts over `reset_time` later, but never while
    /// the address is banned.
    since: Instant,
    /// When the ban that the score earned ends. Set once when the score reaches `max_score`;
    /// once it is past, the score starts over.
    banned_until: Option<Instant>,
    /// When points were last added (eviction order).
    last: Instant,
}

impl Entry {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }
}

/// Eviction order of the full table: first addresses without a ban, then lowest score, then
/// least recently seen (the set's first element goes first).
type Rank = (bool, u32, Instant, IpAddr);

fn rank(key: IpAddr, e: &Entry) -> Rank {
    (e.banned_until.is_some(), e.score, e.last, key)
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
    /// The entries in eviction order (kept in step with `entries`).
    order: BTreeSet<Rank>,
    next_cleanup: Option<Instant>,
    /// With a cluster: what this node charged and banned since the last flush, for the other
    /// nodes (doc/cluster.md "Bans"); `None` on a single node.
    outgoing: Option<Outgoing>,
}

/// Most addresses waiting to be told to the other nodes; beyond, new addresses' points stay
/// local (their bans are still told: those have their own, equal bound).
const MAX_OUTGOING: usize = 4096;

/// Points and bans not yet told to the other nodes, coalesced per address.
#[derive(Debug, Default)]
struct Outgoing {
    points: HashMap<IpAddr, u32>,
    bans: HashMap<IpAddr, (u32, Instant)>,
}

impl Bans {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            next_cleanup: None,
            outgoing: None,
        }
    }

    /// Keep what this node charges and bans for the other nodes ([`Self::take_outgoing`]).
    pub fn share(&mut self) {
        self.outgoing.get_or_insert_with(Outgoing::default);
    }

    fn queue_ban(&mut self, ip: IpAddr, score: u32, until: Instant) {
        if let Some(out) = &mut self.outgoing {
            if out.bans.len() < MAX_OUTGOING || out.bans.contains_key(&ip) {
                out.bans.insert(ip, (score, until));
            }
        }
    }

    /// What to tell the other nodes now: points per address, and bans with their time left.
    pub fn take_outgoing(&mut self, now: Instant) -> (Vec<BanPoints>, Vec<BanRecord>) {
        let Some(out) = &mut self.outgoing else {
            return (Vec::new(), Vec::new());
        };
        let points = out
            .points
            .drain()
            .map(|(ip, points)| BanPoints { ip, points })
            .collect();
        let bans = out
            .bans
            .drain()
            .filter_map(|(ip, (score, until))| record(ip, score, until, now))
            .collect();
        (points, bans)
    }

    /// Another node banned `ip` (bus or store): ban it here for the time left, at most this
    /// node's `ban-time` (a store writer cannot ban for longer), without telling anyone. A ban
    /// running here is kept as it is. True if this started a ban.
    pub fn apply_remote_ban(&mut self, ban: &BanRecord, now: Instant) -> bool {
        if !self.enabled() || ban.ip.is_loopback() || ban.ip.to_canonical().is_loopback() {
            return false;
        }
        let key = key(ban.ip);
        if self.is_banned(key, now) {
            return false;
        }
        let remaining = Duration::from_millis(ban.remaining_ms).min(self.policy.ban_time);
        if remaining.is_zero() {
            return false;
        }
        self.ensure_entry(key, now);
        self.update(key, now, |e| {
            e.score = e.score.max(ban.score);
            e.since = now;
            e.banned_until = Some(now + remaining);
        });
        log::info!(
            "banning {key} for {} s (banned by another node of the cluster)",
            remaining.as_secs()
        );
        true
    }

    /// Create `key`'s entry if it has none, evicting one when the table is full.
    fn ensure_entry(&mut self, key: IpAddr, now: Instant) {
        if self.entries.contains_key(&key) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.evict_one();
        }
        let entry = Entry {
            score: 0,
            since: now,
            banned_until: None,
            last: now,
        };
        self.order.insert(rank(key, &entry));
        self.entries.insert(key, entry);
    }

    /// Running bans as records for the store (re-asserted when it comes back).
    pub fn records(&self, now: Instant) -> Vec<BanRecord> {
        self.banned(now)
            .into_iter()
            .filter_map(|b| record(b.ip, b.score, b.expires, now))
            .collect()
    }

    /// New settings after a reload. Scores are kept, and so are running bans (a higher
    /// `max-ban-score` or a shorter `ban-time` does not lift them early); a lower
    /// `max-ban-score` bans the addresses whose score reaches it now.
    pub fn set_policy(&mut self, policy: BanPolicy, now: Instant) {
        self.policy = policy;
        if !self.enabled() {
            return;
        }
        let newly: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.banned_until.is_none()
                    && e.score >= policy.max_score
                    && now < e.since + policy.reset_time
            })
            .map(|(ip, _)| *ip)
            .collect();
        for ip in newly {
            self.update(ip, now, |e| e.banned_until = Some(now + policy.ban_time));
            let score = self.entries.get(&ip).map_or(0, |e| e.score);
            self.queue_ban(ip, score, now + policy.ban_time);
            log_banned(ip, score, policy.ban_time);
            log::info!(
                "banning {ip} for {} s (max-ban-score lowered)",
                policy.ban_time.as_secs()
            );
        }
    }

    pub fn enabled(&self) -> bool {
        self.policy.max_score > 0
    }

    /// Change `ip`'s entry (which exists), keeping the eviction order in step.
    fn update(&mut self, ip: IpAddr, now: Instant, change: impl FnOnce(&mut Entry)) {
        let Some(entry) = self.entries.get_mut(&ip) else {
            return;
        };
        self.order.remove(&rank(ip, entry));
        change(entry);
        entry.last = entry.last.max(now);
        self.order.insert(rank(ip, entry));
    }

    /// Add `points` this node charged to `ip`'s score (told to the other nodes, with a ban it
    /// starts); returns true if `ip` is banned afterwards.
    pub fn add(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        if !self.enabled() || ip.is_loopback() {
            return false;
        }
        let key = key(ip);
        // A banned address knocking is not news: its score starts over when the ban ends.
        let banned = self.is_banned(key, now);
        if let Some(out) = &mut self.outgoing {
            if points > 0
                && !banned
                && (out.points.len() < MAX_OUTGOING || out.points.contains_key(&key))
            {
                let sum = out.points.entry(key).or_insert(0);
                *sum = sum.saturating_add(points);
            }
        }
        if let Some((score, until)) = self.charge(key, points, now) {
            self.queue_ban(key, score, until);
        }
        self.is_banned(key, now)
    }

    /// Add points another node charged to `ip` (the points are not told again); true if banned
    /// afterwards. A ban they start here is news like a local one: every node may reach
    /// `max-ban-score` through the others' points, and then only this write puts the ban in the
    /// store for a node that starts later (no loop: a running ban is not started again).
    pub fn add_remote(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        if !self.enabled() || ip.is_loopback() || ip.to_canonical().is_loopback() {
            return false;
        }
        let key = key(ip);
        if let Some((score, until)) = self.charge(key, points, now) {
            self.queue_ban(key, score, until);
        }
        self.is_banned(key, now)
    }

    /// Add `points` to `key`'s score; `Some((score, until))` if this started a ban.
    fn charge(&mut self, key: IpAddr, points: u32, now: Instant) -> Option<(u32, Instant)> {
        self.maybe_cleanup(now);
        let policy = self.policy;
        self.ensure_entry(key, now);
        let mut newly_banned = None;
        self.update(key, now, |entry| {
            let starts_over = match entry.banned_until {
                // The ban is over: the address starts again from zero.
                Some(until) => now >= until,
                // A banned address's score is never reset early: only without a ban.
                None => now >= entry.since + policy.reset_time,
            };
            if starts_over {
                entry.score = 0;
                entry.since = now;
                entry.banned_until = None;
            }
            entry.score = entry.score.saturating_add(points);
            // Knocking while banned does not extend the ban (as ocserv).
            if entry.banned_until.is_none() && entry.score >= policy.max_score {
                entry.banned_until = Some(now + policy.ban_time);
                newly_banned = Some(entry.score);
            }
        });
        let score = newly_banned?;
        log_banned(key, score, policy.ban_time);
        log::info!(
            "banning {key} for {} s (score {score} >= max-ban-score {})",
            policy.ban_time.as_secs(),
            policy.max_score
        );
        Some((score, now + policy.ban_time))
    }

    /// Make room for one entry: drop the first in eviction order.
    fn evict_one(&mut self) {
        if let Some((_, _, _, ip)) = self.order.pop_first() {
            self.entries.remove(&ip);
        }
    }

    /// A new TCP connection from `ip`: charge the connection points; true = refuse it.
    pub fn connection(&mut self, ip: IpAddr, now: Instant) -> bool {
        let points = self.policy.connection_points;
        self.add(ip, points, now);
        self.is_banned(ip, now)
    }

    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.enabled() && self.entries.get(&key(ip)).is_some_and(|e| e.banned(now))
    }

    /// Forget `ip`'s score (occtl `unban ip`, the one way to end a ban early); true if it had
    /// one.
    pub fn unban(&mut self, ip: IpAddr) -> bool {
        let key = key(ip);
        match self.entries.remove(&key) {
            Some(e) => {
                self.order.remove(&rank(key, &e));
                true
            }
            None => false,
        }
    }

    /// Banned addresses now.
    pub fn banned(&self, now: Instant) -> Vec<BanInfo> {
        if !self.enabled() {
            return Vec::new();
        }
        let mut list: Vec<BanInfo> = self
            .entries
            .iter()
            .filter_map(|(ip, e)| {
                let expires = e.banned_until.filter(|until| now < *until)?;
                Some(BanInfo {
                    ip: *ip,
                    score: e.score,
                    expires,
                })
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

    /// The entry no longer counts: its ban is over, or it has none and its score has expired.
    fn stale(&self, e: &Entry, now: Instant) -> bool {
        match e.banned_until {
            Some(until) => now >= until,
            None => now >= e.since + self.policy.reset_time,
        }
    }

    fn maybe_cleanup(&mut self, now: Instant) {
        if self.next_cleanup.is_some_and(|t| now < t) {
            return;
        }
        let stale: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|(_, e)| self.stale(e, now))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in stale {
            if let Some(e) = self.entries.remove(&ip) {
                self.order.remove(&rank(ip, &e));
            }
        }
        self.next_cleanup = Some(now + CLEANUP_EVERY);
    }
}

/// A ban ending at `until` as a record with its time left; `None` if it is over.
fn record(ip: IpAddr, score: u32, until: Instant, now: Instant) -> Option<BanRecord> {
    let left = until.checked_duration_since(now).filter(|d| !d.is_zero())?;
    Some(BanRecord {
        ip,
        score,
        remaining_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The address a score is kept under: IPv6 per /64.
pub fn key(ip: IpAddr) -> IpAddr {
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
    /// Wakes the task that tells the other nodes (crate::ban_cluster) when there is news.
    pub outgoing: tokio::sync::Notify,
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
            outgoing: tokio::sync::Notify::new(),
        }
    }

    /// With a cluster: keep what this node charges and bans for the other nodes.
    pub fn share(&self) {
        self.lock().share();
    }

    /// The news for the other nodes since the last call.
    pub fn take_outgoing(&self) -> (Vec<BanPoints>, Vec<BanRecord>) {
        self.lock().take_outgoing(Instant::now())
    }

    /// Another node charged `points` to `ip`.
    pub fn add_remote_points(&self, ip: IpAddr, points: u32) {
        if self.lock().add_remote(ip, points, Instant::now()) {
            self.outgoing.notify_one();
        }
    }

    /// Another node (or the store) says `ban` runs.
    pub fn apply_remote_ban(&self, ban: &BanRecord) {
        self.lock().apply_remote_ban(ban, Instant::now());
    }

    /// Running bans, for the store.
    pub fn records(&self) -> Vec<BanRecord> {
        self.lock().records(Instant::now())
    }

    /// Another node's occtl `unban ip`.
    pub fn unban_remote(&self, ip: IpAddr) {
        if self.lock().unban(ip) {
            log::info!("unbanned {ip} (occtl unban ip on another node)");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bans> {
        // Each update is self-contained, so a poisoned lock still guards a consistent table.
        rocserv_rt::lock(&self.inner)
    }

    pub fn set_policy(&self, policy: BanPolicy) {
        self.lock().set_policy(policy, Instant::now());
        self.outgoing.notify_one();
    }

    /// A new connection from `ip`; true = banned, drop it.
    pub fn check_connection(&self, ip: IpAddr) -> bool {
        let banned = self.lock().connection(ip, Instant::now());
        self.outgoing.notify_one();
        banned
    }

    /// Whether `ip` is banned, charging nothing (a load balancer's own health check).
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.lock().is_banned(ip, Instant::now())
    }

    /// sec-mod reported a wrong password from `ip`.
    pub fn add_points(&self, ip: IpAddr, points: u32) {
        self.lock().add(ip, points, Instant::now());
        self.outgoing.notify_one();
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

/// ocserv's ban line (`added IP 'IP' (with score N) to ban list, will be reset at: DATE`), with
/// the ban's end in ctime's layout, UTC.
fn log_banned(ip: IpAddr, score: u32, ban_time: Duration) {
    let until = SystemTime::now()
        .checked_add(ban_time)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let until = rocserv_proto::logevent::ctime(until);
    crate::logger::event(
        log::Level::Info,
        &rocserv_proto::logevent::Event::Banned {
            ip,
            score,
            until: &until,
        },
    );
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
        // The ban is over and the score starts over.
        assert!(!b.connection(a, t0 + secs(302)));
        assert!(b.points(t0 + secs(302)).contains(&(a, 1)));
    }

    #[test]
    fn after_a_ban_the_next_max_score_bans_again() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("10.0.0.2");
        assert!(b.add(a, 80, t0));
        // The ban ends before ban-reset-time; password guessing must not go on unthrottled
        // until the reset.
        let after = t0 + secs(301);
        for i in 0..7 {
            assert!(!b.add(a, 10, after + secs(i)), "guess {i}");
        }
        assert!(b.add(a, 10, after + secs(8)));
        assert!(b.connection(a, after + secs(9)));
    }

    #[test]
    fn a_ban_outlasts_a_shorter_reset_time() {
        let t0 = Instant::now();
        let mut b = Bans::new(BanPolicy {
            reset_time: secs(60),
            ..policy()
        });
        let a = ip("192.0.2.1");
        assert!(b.add(a, 80, t0));
        // ban-reset-time (60 s) passes while the 300 s ban runs: the score must not reset.
        assert!(b.connection(a, t0 + secs(61)));
        assert!(b.connection(a, t0 + secs(200)));
        assert!(b.is_banned(a, t0 + secs(299)));
        assert_eq!(b.banned(t0 + secs(299))[0].score, 82);
        // A cleanup run in between keeps it too.
        b.next_cleanup = None;
        assert!(!b.connection(ip("192.0.2.2"), t0 + secs(250)));
        assert!(b.is_banned(a, t0 + secs(250)));
        assert!(!b.is_banned(a, t0 + secs(300)));
    }

    #[test]
    fn a_reload_does_not_lift_running_bans() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        assert!(b.add(a, 80, t0));
        // A higher max-ban-score, a shorter ban-time and ban-reset-time: the ban stays as it was.
        b.set_policy(
            BanPolicy {
                max_score: 200,
                ban_time: secs(10),
                reset_time: secs(5),
                ..policy()
            },
            t0 + secs(1),
        );
        assert!(b.connection(a, t0 + secs(100)));
        assert!(b.is_banned(a, t0 + secs(299)));
        assert!(!b.is_banned(a, t0 + secs(300)));
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
        b.set_policy(
            BanPolicy {
                max_score: 40,
                ..policy()
            },
            t0,
        );
        assert!(b.is_banned(a, t0));
        assert!(!b.is_banned(a, t0 + secs(300)));
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            b.add(IpAddr::V4(i.into()), 1, t0);
        }
        assert_eq!(b.entries.len(), MAX_ENTRIES);
        assert_eq!(b.order.len(), MAX_ENTRIES);
    }

    #[test]
    fn a_full_table_evicts_the_lowest_score_oldest() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let guesser = ip("198.51.100.1");
        let banned = ip("198.51.100.2");
        b.add(guesser, 70, t0);
        assert!(b.add(banned, 80, t0));
        // Fill the table with one-point addresses (a spoofing or /64 flood).
        for i in 0..(MAX_ENTRIES as u32) {
            b.add(IpAddr::V4((0x0a00_0000 + i).into()), 1, t0 + secs(1));
        }
        assert_eq!(b.entries.len(), MAX_ENTRIES);
        // A new address is tracked, not ignored; the guesser and the ban survive the flood.
        let late = ip("203.0.113.9");
        assert!(!b.add(late, 40, t0 + secs(2)));
        assert!(b.add(late, 40, t0 + secs(3)));
        assert!(b.add(guesser, 10, t0 + secs(3)));
        assert!(b.is_banned(banned, t0 + secs(3)));
        // The evicted ones were the oldest one-point entries.
        assert!(!b.entries.contains_key(&ip("10.0.0.0")));
        assert!(b
            .entries
            .contains_key(&IpAddr::V4((0x0a00_0000 + MAX_ENTRIES as u32 - 1).into())));
        assert_eq!(b.entries.len(), b.order.len());
    }

    #[test]
    fn shared_points_and_bans_are_coalesced_and_remote_ones_not_passed_on() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        // A single node keeps nothing for anyone.
        b.add(a, 10, t0);
        assert_eq!(b.take_outgoing(t0), (vec![], vec![]));
        b.share();
        for _ in 0..5 {
            b.add(a, 10, t0);
        }
        b.add(ip("2001:db8:1:2::5"), 3, t0);
        b.add(ip("127.0.0.1"), 3, t0);
        let (mut points, bans) = b.take_outgoing(t0);
        points.sort_by_key(|p| p.ip);
        assert_eq!(
            points,
            [
                BanPoints { ip: a, points: 50 },
                BanPoints {
                    ip: ip("2001:db8:1:2::"),
                    points: 3
                }
            ]
        );
        assert!(bans.is_empty());
        // Reaching max-ban-score: the ban is news, with its time left.
        assert!(b.add(a, 20, t0));
        let (_, bans) = b.take_outgoing(t0 + secs(100));
        assert_eq!(
            bans,
            [BanRecord {
                ip: a,
                score: 80,
                remaining_ms: 200_000
            }]
        );
        // Knocking while banned is not news.
        b.add(a, 10, t0 + secs(101));
        assert_eq!(b.take_outgoing(t0 + secs(101)), (vec![], vec![]));
        // Another node's points count here but are not passed on; a ban they start here is
        // (so the store holds it even when every node got there through the others' points).
        let c = ip("198.51.100.4");
        assert!(!b.add_remote(c, 70, t0));
        assert_eq!(b.take_outgoing(t0), (vec![], vec![]));
        assert!(b.add_remote(c, 10, t0));
        let (points, bans) = b.take_outgoing(t0);
        assert!(points.is_empty());
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].ip, c);
        // Knocking on that ban with more remote points is not news again.
        assert!(b.add_remote(c, 10, t0));
        assert_eq!(b.take_outgoing(t0), (vec![], vec![]));
        // Another node's ban applies here and is not passed on.
        let d = ip("198.51.100.5");
        assert!(b.apply_remote_ban(
            &BanRecord {
                ip: d,
                score: 90,
                remaining_ms: 5_000
            },
            t0
        ));
        assert_eq!(b.take_outgoing(t0), (vec![], vec![]));
        assert!(b.is_banned(d, t0 + secs(4)));
        assert!(!b.is_banned(d, t0 + secs(5)));
        assert_eq!(b.records(t0).len(), 3);
    }

    #[test]
    fn a_remote_ban_is_bounded() {
        let t0 = Instant::now();
        let mut b = Bans::new(policy());
        let a = ip("192.0.2.1");
        // Longer than ban-time (a hostile store writer): ban-time.
        assert!(b.apply_remote_ban(
            &BanRecord {
                ip: a,
                score: 1,
                remaining_ms: u64::MAX
            },
            t0
        ));
        assert!(b.is_banned(a, t0 + secs(299)));
        assert!(!b.is_banned(a, t0 + secs(300)));
        // A running ban is kept as it is.
        assert!(!b.apply_remote_ban(
            &BanRecord {
                ip: a,
                score: 1,
                remaining_ms: 1
            },
            t0
        ));
        // Loopback never; bans off, never.
        for lo in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!b.apply_remote_ban(
                &BanRecord {
                    ip: ip(lo),
                    score: 1,
                    remaining_ms: 9000
                },
                t0
            ));
            assert!(!b.add_remote(ip(lo), 1000, t0));
        }
        let mut off = Bans::new(BanPolicy {
            max_score: 0,
            ..policy()
        });
        assert!(!off.apply_remote_ban(
            &BanRecord {
                ip: a,
                score: 1,
                remaining_ms: 9000
            },
            t0
        ));
        // Over: nothing.
        assert!(!b.apply_remote_ban(
            &BanRecord {
                ip: ip("192.0.2.2"),
                score: 1,
                remaining_ms: 0
            },
            t0
        ));
    }
}
