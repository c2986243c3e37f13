//! The cookie/session table (sans-IO: `now` and randomness are passed in, so expiry is tested
//! without sleeping).
//!
//! Lifetime rules (protocol.md §6.1, after ocserv src/sec-mod-db.c and src/sec-mod-auth.c):
//! a cookie is valid from login until `cookie-timeout` + 15 s; each CONNECT ([`Sessions::open`])
//! marks it active and it never expires while a tunnel uses it; when the last tunnel ends the
//! close reason decides whether it is deleted at once or kept for another `cookie-timeout`.
//!
//! The table is keyed by the SHA-256 of the cookie, so the cookie itself is not kept in memory
//! after it was handed out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rocserv_proto::ipc::main_secmod::{SessionGrant, SessionRefusal};
use rocserv_proto::ipc::{CloseReason, SessionId};
use rocserv_proto::policy::quota::Limits;

/// Extra time ocserv grants beyond `cookie-timeout` (protocol.md §6.1).
pub const COOKIE_SLACK: Duration = Duration::from_secs(15);
/// Random bytes in a cookie (ocserv uses 32 too).
pub const COOKIE_BYTES: usize = 32;
/// Sessions (cookies) one user name may hold. A login beyond it evicts the user's oldest session
/// that no tunnel uses; when all are in use the login is refused. Without a cap, one account's
/// password could fill sec-mod's memory with cookies, each kept for `cookie-timeout`.
pub const MAX_SESSIONS_PER_USER: usize = 16;

/// What the table needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub cookie_timeout: Duration,
    pub persistent_cookies: bool,
}

/// Fresh randomness for one session: the cookie bytes and the session id.
#[derive(Clone, Copy)]
pub struct SessionSeed {
    pub cookie: [u8; COOKIE_BYTES],
    pub sid: u64,
}

/// A session the table just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The `webvpn` cookie value: unpadded base64url (protocol.md §1.7).
    pub cookie: String,
    pub sid: SessionId,
    /// The user's oldest idle session, deleted to stay within [`MAX_SESSIONS_PER_USER`].
    pub evicted: Option<SessionId>,
    /// The SHA-256 of the evicted session's cookie (its record in the cluster store).
    pub evicted_sha256: Option<[u8; 32]>,
}

/// Why [`Sessions::issue`] created nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The seed's cookie or id is taken: draw new randomness and retry.
    #[error("session id or cookie collision")]
    Collision,
    /// The user holds [`MAX_SESSIONS_PER_USER`] sessions and tunnels use all of them.
    #[error("the user holds {MAX_SESSIONS_PER_USER} sessions, all in use")]
    TooMany,
}

/// What [`Sessions::close`] did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The session was deleted; its cookie is dead.
    Deleted,
    /// Other tunnels still use the session.
    StillActive,
    /// No tunnel uses it any more; the cookie stays valid until the given instant.
    KeptUntil(Instant),
    /// No session has this id (already purged or deleted).
    Unknown,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    policy: SessionPolicy,
    by_sid: HashMap<SessionId, Session>,
    by_cookie: HashMap<CookieKey, SessionId>,
    /// Gives a burst's freed memory back when the table empties after it.
    trim: rocserv_rt::memory::TrimTrigger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CookieKey([u8; 32]);

#[derive(Debug)]
struct Session {
    cookie: CookieKey,
    username: String,
    group: String,
    state: State,
    /// Login time, and whether a CONNECT ever used the cookie (for occtl).
    created: Instant,
    opened: bool,
    /// The `[vhost:NAME]` it was created in (`None`: the default section).
    vhost: Option<String>,
    /// What the login established beside user and group.
    login: LoginFacts,
    /// Usage limits of the user's and group's files, as read at the last CONNECT.
    limits: Limits,
}

/// What a session keeps of its login beside user and group, for every CONNECT's grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFacts {
    /// What the client said about itself (no certificate chain).
    pub facts: rocserv_proto::ipc::worker_secmod::ClientFacts,
    /// The certificate's subject the login used.
    pub cert_subject: Option<String>,
    /// What the auth backend granted (`Overrides::auth`).
    pub policy: Option<Box<rocserv_proto::policy::file::PolicyFile>>,
}

/// A session as another node (or this one, for the store) describes it
/// ([`Sessions::import`], [`Sessions::export`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub cookie_sha256: [u8; 32],
    pub sid: SessionId,
    pub username: String,
    pub group: String,
    pub vhost: Option<String>,
    pub login: LoginFacts,
    /// Time since the login (session-timeout counts from it).
    pub age: Duration,
}

/// A session's owner and login ([`Sessions::describe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub username: String,
    pub group: String,
    pub vhost: Option<String>,
    pub login: LoginFacts,
    /// Usage limits as the last CONNECT's files set them ([`Sessions::set_limits`]).
    pub limits: Limits,
}

/// One session as occtl shows it ([`Sessions::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub sid: SessionId,
    pub username: String,
    pub group: String,
    pub created: Instant,
    /// `None` while tunnels use it.
    pub expires: Option<Instant>,
    pub in_use: u32,
    pub opened: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No tunnel uses the cookie; it dies at `expires` (also the state right after login).
    Idle { expires: Instant },
    /// `tunnels` CONNECTs hold the cookie; it cannot expire.
    Active { tunnels: u32 },
}

impl Sessions {
    pub fn new(policy: SessionPolicy) -> Self {
        Self {
            policy,
            by_sid: HashMap::new(),
            by_cookie: HashMap::new(),
            trim: rocserv_rt::memory::TrimTrigger::new(),
        }
    }

    /// Create a session for a user who just logged in, evicting the user's oldest idle session
    /// if they hold [`MAX_SESSIONS_PER_USER`] already.
    pub fn issue(
        &mut self,
        username: &str,
        group: &str,
        seed: SessionSeed,
        now: Instant,
    ) -> Result<Issued, IssueError> {
        let cookie = URL_SAFE_NO_PAD.encode(seed.cookie);
        let key = CookieKey::of(&cookie);
        let sid = SessionId(seed.sid);
        if self.by_sid.contains_key(&sid) || self.by_cookie.contains_key(&key) {
            return Err(IssueError::Collision);
        }
        let mut held = 0usize;
        let mut oldest_idle: Option<(Instant, SessionId)> = None;
        for (id, s) in self.by_sid.iter().filter(|(_, s)| s.username == username) {
            held += 1;
            if matches!(s.state, State::Idle { .. })
                && oldest_idle.is_none_or(|(created, _)| s.created < created)
            {
                oldest_idle = Some((s.created, *id));
            }
        }
        let (evicted, evicted_sha256) = if held >= MAX_SESSIONS_PER_USER {
            let (_, old) = oldest_idle.ok_or(IssueError::TooMany)?;
            let hash = self.cookie_sha256_of(old);
            self.remove(old);
            (Some(old), hash)
        } else {
            (None, None)
        };
        self.by_cookie.insert(key, sid);
        self.by_sid.insert(
            sid,
            Session {
                cookie: key,
                username: username.to_owned(),
                group: group.to_owned(),
                state: State::Idle {
                    expires: self.expiry(now),
                },
                created: now,
                opened: false,
                vhost: None,
                login: LoginFacts::default(),
                limits: Limits::default(),
            },
        );
        Ok(Issued {
            cookie,
            sid,
            evicted,
            evicted_sha256,
        })
    }

    /// The session `cookie` names, without opening it.
    pub fn sid_of(&self, cookie: &str) -> Option<SessionId> {
        self.by_cookie.get(&CookieKey::of(cookie)).copied()
    }

    /// The user and group of the live session `cookie` names, without opening it (sec-mod
    /// reads their files before deciding).
    pub fn peek(&self, cookie: &str, now: Instant) -> Option<(String, String)> {
        let sid = self.by_cookie.get(&CookieKey::of(cookie))?;
        let session = self.by_sid.get(sid)?;
        if matches!(session.state, State::Idle { expires } if expires <= now) {
            return None;
        }
        Some((session.username.clone(), session.group.clone()))
    }

    /// A tunnel presents `cookie` (CONNECT): grant it if the cookie names a live session.
    pub fn open(&mut self, cookie: &str, now: Instant) -> Result<SessionGrant, SessionRefusal> {
        let key = CookieKey::of(cookie);
        let sid = *self
            .by_cookie
            .get(&key)
            .ok_or(SessionRefusal::UnknownCookie)?;
        let session = self
            .by_sid
            .get_mut(&sid)
            .ok_or(SessionRefusal::UnknownCookie)?;
        if matches!(session.state, State::Idle { expires } if expires <= now) {
            self.remove(sid);
            return Err(SessionRefusal::UnknownCookie);
        }
        session.opened = true;
        session.state = match session.state {
            State::Idle { .. } => State::Active { tunnels: 1 },
            State::Active { tunnels } => State::Active {
                tunnels: tunnels.saturating_add(1),
            },
        };
        let age = now.saturating_duration_since(session.created);
        Ok(SessionGrant {
            sid,
            username: session.username.clone(),
            groupname: session.group.clone(),
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            overrides: rocserv_proto::policy::Overrides {
                auth: session.login.policy.clone(),
                ..Default::default()
            },
            vhost: session.vhost.clone(),
            facts: Box::new(session.login.facts.clone()),
            cert_subject: session.login.cert_subject.clone(),
            cluster_spent: false,
            cluster_store_used_ms: 0,
        })
    }

    /// The `[vhost:NAME]` the session of `cookie` was created in (`None`: the default section,
    /// or no such session).
    pub fn vhost_of(&self, cookie: &str) -> Option<&str> {
        let sid = self.sid_of(cookie)?;
        self.by_sid.get(&sid)?.vhost.as_deref()
    }

    /// Record the `[vhost:NAME]` session `sid` was created in (right after [`Self::issue`],
    /// before its cookie is handed out): every CONNECT with its cookie gets that vhost's policy.
    pub fn set_vhost(&mut self, sid: SessionId, vhost: Option<String>) {
        if let Some(session) = self.by_sid.get_mut(&sid) {
            session.vhost = vhost;
        }
    }

    /// Who session `sid` belongs to and what its login established, if it exists.
    pub fn describe(&self, sid: SessionId) -> Option<Described> {
        let s = self.by_sid.get(&sid)?;
        Some(Described {
            username: s.username.clone(),
            group: s.group.clone(),
            vhost: s.vhost.clone(),
            login: s.login.clone(),
            limits: s.limits,
        })
    }

    /// The usage limits the files read for a CONNECT of `sid` set (accounting enforces them).
    pub fn set_limits(&mut self, sid: SessionId, limits: Limits) {
        if let Some(session) = self.by_sid.get_mut(&sid) {
            session.limits = limits;
        }
    }

    /// Record what the login of `sid` established (right after [`Self::issue`]).
    pub fn set_login(&mut self, sid: SessionId, login: LoginFacts) {
        if let Some(session) = self.by_sid.get_mut(&sid) {
            session.login = login;
        }
    }

    /// A tunnel of `sid` ended for `reason` (protocol.md §6.1 table).
    pub fn close(&mut self, sid: SessionId, reason: CloseReason, now: Instant) -> Closed {
        let expires = self.expiry(now);
        let persistent = self.policy.persistent_cookies;
        let Some(session) = self.by_sid.get_mut(&sid) else {
            return Closed::Unknown;
        };
        let delete = match reason {
            CloseReason::ServerTerminated => true,
            CloseReason::UserDisconnect => !persistent,
            CloseReason::Temporary => false,
        };
        if delete {
            self.remove(sid);
            return Closed::Deleted;
        }
        match session.state {
            State::Active { tunnels } if tunnels > 1 => {
                session.state = State::Active {
                    tunnels: tunnels.saturating_sub(1),
                };
                Closed::StillActive
            }
            State::Active { .. } | State::Idle { .. } => {
                session.state = State::Idle { expires };
                Closed::KeptUntil(expires)
            }
        }
    }

    /// Drop every idle session whose cookie expired; returns their ids.
    pub fn purge(&mut self, now: Instant) -> Vec<SessionId> {
        let expired: Vec<SessionId> = self
            .by_sid
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Idle { expires } if expires <= now))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in &expired {
            self.remove(*sid);
        }
        expired
    }

    /// Every session that has not expired at `now`, for occtl.
    pub fn list(&self, now: Instant) -> Vec<Listed> {
        self.by_sid
            .iter()
            .filter(|(_, s)| !matches!(s.state, State::Idle { expires } if expires <= now))
            .map(|(sid, s)| {
                let (expires, in_use) = match s.state {
                    State::Idle { expires } => (Some(expires), 0),
                    State::Active { tunnels } => (None, tunnels),
                };
                Listed {
                    sid: *sid,
                    username: s.username.clone(),
                    group: s.group.clone(),
                    created: s.created,
                    expires,
                    in_use,
                    opened: s.opened,
                }
            })
            .collect()
    }

    /// The SHA-256 of the cookie of session `sid` (its key in the cluster store).
    pub fn cookie_sha256_of(&self, sid: SessionId) -> Option<[u8; 32]> {
        self.by_sid.get(&sid).map(|s| s.cookie.0)
    }

    /// Take in a session another node issued (`cluster-store`): its cookie's hash, its id (the
    /// same on every node) and its login, created `age` before `now`. It starts idle, as after
    /// a login here; the CONNECT that asked opens it next. `Collision` when this table holds
    /// another session with the same id or cookie.
    pub fn import(&mut self, imported: Imported, now: Instant) -> Result<(), IssueError> {
        let key = CookieKey(imported.cookie_sha256);
        match (
            self.by_cookie.get(&key),
            self.by_sid.contains_key(&imported.sid),
        ) {
            (Some(sid), _) if *sid == imported.sid => return Ok(()),
            (None, false) => {}
            _ => return Err(IssueError::Collision),
        }
        self.by_cookie.insert(key, imported.sid);
        self.by_sid.insert(
            imported.sid,
            Session {
                cookie: key,
                username: imported.username,
                group: imported.group,
                state: State::Idle {
                    expires: self.expiry(now),
                },
                created: now.checked_sub(imported.age).unwrap_or(now),
                opened: false,
                vhost: imported.vhost,
                login: imported.login,
                limits: Limits::default(),
            },
        );
        Ok(())
    }

    /// Drop the session whose cookie hashes to `cookie_sha256` unless a tunnel here uses it
    /// (another node deleted it); its id, if dropped.
    pub fn forget(&mut self, cookie_sha256: [u8; 32]) -> Option<SessionId> {
        let sid = *self.by_cookie.get(&CookieKey(cookie_sha256))?;
        let idle = matches!(self.by_sid.get(&sid)?.state, State::Idle { .. });
        idle.then(|| {
            self.remove(sid);
            sid
        })
    }

    /// Every live session with its login and how long its cookie stays valid if no tunnel
    /// uses it again (`cluster-store` resync writes them again).
    pub fn export(&self, now: Instant) -> Vec<(Imported, Duration)> {
        self.by_sid
            .keys()
            .filter_map(|sid| self.export_one(*sid, now))
            .collect()
    }

    /// [`Self::export`] of one session, if it is live.
    pub fn export_one(&self, sid: SessionId, now: Instant) -> Option<(Imported, Duration)> {
        let s = self.by_sid.get(&sid)?;
        let left = match s.state {
            State::Idle { expires } if expires <= now => return None,
            State::Idle { expires } => expires.saturating_duration_since(now),
            State::Active { .. } => self.idle_lifetime(),
        };
        let imported = Imported {
            cookie_sha256: s.cookie.0,
            sid,
            username: s.username.clone(),
            group: s.group.clone(),
            vhost: s.vhost.clone(),
            login: s.login.clone(),
            age: now.saturating_duration_since(s.created),
        };
        Some((imported, left))
    }

    /// How long a cookie stays valid after its last tunnel ended (`cookie-timeout` + slack).
    pub fn idle_lifetime(&self) -> Duration {
        self.policy.cookie_timeout + COOKIE_SLACK
    }

    /// Number of sessions in the table.
    pub fn len(&self) -> usize {
        self.by_sid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sid.is_empty()
    }

    fn expiry(&self, now: Instant) -> Instant {
        now + self.policy.cookie_timeout + COOKIE_SLACK
    }

    fn remove(&mut self, sid: SessionId) {
        if let Some(session) = self.by_sid.remove(&sid) {
            self.by_cookie.remove(&session.cookie);
            // A `Session` is ~0.5 kB inline: after a burst of 1000 logins the tables would
            // keep ~1 MB for good.
            rocserv_rt::memory::shrink_map(&mut self.by_sid);
            rocserv_rt::memory::shrink_map(&mut self.by_cookie);
            // Not only the periodic trim: the shared bench reads the server's memory ~1 s after
            // its logouts, and what the burst's logins freed is otherwise still resident then.
            if self.trim.update(self.by_sid.len()) {
                rocserv_rt::memory::trim();
            }
        }
    }
}

/// The SHA-256 of a cookie: the table's key, and the cluster store's.
pub fn cookie_sha256(cookie: &str) -> [u8; 32] {
    CookieKey::of(cookie).0
}

impl CookieKey {
    fn of(cookie: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        Self(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(300);

    fn table(persistent_cookies: bool) -> Sessions {
        Sessions::new(SessionPolicy {
            cookie_timeout: TIMEOUT,
            persistent_cookies,
        })
    }

    fn seed(n: u8) -> SessionSeed {
        SessionSeed {
            cookie: [n; COOKIE_BYTES],
            sid: u64::from(n),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_tables_shrink_after_a_burst_of_logouts() {
        let now = Instant::now();
        let mut t = table(false);
        let issued: Vec<_> = (0..1000u32)
            .map(|i| {
                let mut cookie = [0u8; COOKIE_BYTES];
                cookie[..4].copy_from_slice(&i.to_le_bytes());
                let s = SessionSeed {
                    cookie,
                    sid: u64::from(i),
                };
                t.issue(&format!("u{i}"), "g", s, now).unwrap()
            })
            .collect();
        let peak = t.by_sid.capacity();
        for c in issued {
            t.close(c.sid, CloseReason::UserDisconnect, now);
        }
        assert!(t.is_empty());
        assert!(
            t.by_sid.capacity() < peak / 8,
            "{} of {peak}",
            t.by_sid.capacity()
        );
        assert!(t.by_cookie.capacity() < peak / 8);
    }

    #[test]
    fn cookie_is_unpadded_base64url_of_32_bytes() {
        let mut t = table(false);
        let issued = t.issue("u", "g", seed(0xfb), Instant::now()).unwrap();
        assert_eq!(issued.cookie.len(), 43);
        assert!(!issued.cookie.contains(['=', '+', '/', ';', ',']));
        assert_eq!(URL_SAFE_NO_PAD.decode(&issued.cookie).unwrap(), [0xfb; 32]);
    }

    #[test]
    fn collisions_are_refused() {
        let now = Instant::now();
        let mut t = table(false);
        assert!(t.issue("u", "", seed(1), now).is_ok());
        assert_eq!(t.issue("v", "", seed(1), now), Err(IssueError::Collision));
        let mut other_cookie = seed(2);
        other_cookie.sid = 1;
        assert_eq!(
            t.issue("v", "", other_cookie, now),
            Err(IssueError::Collision)
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn unused_cookie_expires_after_timeout_plus_slack() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("u", "grp", seed(1), t0).unwrap();
        let deadline = t0 + TIMEOUT + COOKIE_SLACK;
        assert!(t.purge(deadline - secs(1)).is_empty());
        assert_eq!(t.purge(deadline), [c.sid]);
        assert_eq!(
            t.open(&c.cookie, deadline),
            Err(SessionRefusal::UnknownCookie)
        );
    }

    #[test]
    fn expired_cookie_is_refused_even_before_purge() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        let late = t0 + TIMEOUT + COOKIE_SLACK + secs(1);
        assert_eq!(t.open(&c.cookie, late), Err(SessionRefusal::UnknownCookie));
        assert!(t.is_empty());
    }

    #[test]
    fn a_reconnect_is_told_the_age_of_the_login() {
        // session-timeout counts from the login: the second CONNECT is 6 s into the session.
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("alice", "", seed(1), t0).unwrap();
        assert_eq!(t.open(&c.cookie, t0).unwrap().age_ms, 0);
        t.close(c.sid, CloseReason::Temporary, t0 + secs(5));
        assert_eq!(t.open(&c.cookie, t0 + secs(6)).unwrap().age_ms, 6_000);
    }

    #[test]
    fn open_grants_and_active_session_never_expires() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("alice", "staff", seed(1), t0).unwrap();
        let grant = t.open(&c.cookie, t0 + secs(10)).unwrap();
        assert_eq!(grant.sid, c.sid);
        assert_eq!(grant.username, "alice");
        assert_eq!(grant.groupname, "staff");
        assert!(t.purge(t0 + secs(100_000)).is_empty());
        assert_eq!(
            t.open("not-a-cookie", t0),
            Err(SessionRefusal::UnknownCookie)
        );
    }

    #[test]
    fn temporary_close_keeps_cookie_for_timeout() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        let t1 = t0 + secs(1000);
        let until = t1 + TIMEOUT + COOKIE_SLACK;
        assert_eq!(
            t.close(c.sid, CloseReason::Temporary, t1),
            Closed::KeptUntil(until)
        );
        // Reconnect within the window works and makes it active again.
        assert!(t.open(&c.cookie, until - secs(1)).is_ok());
        assert_eq!(
            t.close(c.sid, CloseReason::Temporary, until),
            Closed::KeptUntil(until + TIMEOUT + COOKIE_SLACK)
        );
        assert_eq!(t.purge(until + TIMEOUT + COOKIE_SLACK), [c.sid]);
    }

    #[test]
    fn user_disconnect_deletes_unless_persistent() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        assert_eq!(
            t.close(c.sid, CloseReason::UserDisconnect, t0),
            Closed::Deleted
        );
        assert_eq!(t.open(&c.cookie, t0), Err(SessionRefusal::UnknownCookie));

        let mut t = table(true);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        assert_eq!(
            t.close(c.sid, CloseReason::UserDisconnect, t0),
            Closed::KeptUntil(t0 + TIMEOUT + COOKIE_SLACK)
        );
        assert!(t.open(&c.cookie, t0 + secs(5)).is_ok());
    }

    #[test]
    fn server_terminated_always_deletes() {
        let t0 = Instant::now();
        let mut t = table(true);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        assert_eq!(
            t.close(c.sid, CloseReason::ServerTerminated, t0),
            Closed::Deleted
        );
        assert!(t.is_empty());
        assert_eq!(t.close(c.sid, CloseReason::Temporary, t0), Closed::Unknown);
    }

    #[test]
    fn list_shows_live_sessions_with_their_state() {
        let t0 = Instant::now();
        let mut t = table(false);
        let a = t.issue("alice", "g", seed(1), t0).unwrap();
        let b = t.issue("bob", "", seed(2), t0).unwrap();
        t.open(&a.cookie, t0 + secs(1)).unwrap();
        let mut rows = t.list(t0 + secs(2));
        rows.sort_by_key(|r| r.username.clone());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].sid, rows[0].in_use, rows[0].opened),
            (a.sid, 1, true)
        );
        assert_eq!(rows[0].expires, None);
        assert_eq!(rows[0].created, t0);
        assert_eq!(
            (rows[1].sid, rows[1].in_use, rows[1].opened),
            (b.sid, 0, false)
        );
        assert_eq!(rows[1].expires, Some(t0 + TIMEOUT + COOKIE_SLACK));
        // An expired but not yet purged session is not listed.
        assert_eq!(t.list(t0 + TIMEOUT + COOKIE_SLACK).len(), 1);
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_sessions() {
        let t0 = Instant::now();
        let mut t = table(false);
        let n = MAX_SESSIONS_PER_USER as u8;
        let mut issued = Vec::new();
        for i in 0..n {
            let c = t
                .issue("u", "", seed(i + 1), t0 + secs(u64::from(i)))
                .unwrap();
            assert_eq!(c.evicted, None);
            issued.push(c);
        }
        // The oldest two are in use; the next login evicts the oldest idle one (the third).
        t.open(&issued[0].cookie, t0).unwrap();
        t.open(&issued[1].cookie, t0).unwrap();
        let next = t.issue("u", "", seed(n + 1), t0 + secs(100)).unwrap();
        assert_eq!(next.evicted, Some(issued[2].sid));
        assert_eq!(next.evicted_sha256, Some(cookie_sha256(&issued[2].cookie)));
        assert_eq!(
            t.open(&issued[2].cookie, t0),
            Err(SessionRefusal::UnknownCookie)
        );
        assert_eq!(t.len(), MAX_SESSIONS_PER_USER);
        // Another user is not affected.
        assert_eq!(t.issue("v", "", seed(200), t0).unwrap().evicted, None);
        // All of the user's sessions in use: the login is refused, nothing is evicted.
        for c in issued.iter().skip(3).chain([&next]) {
            t.open(&c.cookie, t0).unwrap();
        }
        assert_eq!(
            t.issue("u", "", seed(201), t0 + secs(200)),
            Err(IssueError::TooMany)
        );
        assert_eq!(t.len(), MAX_SESSIONS_PER_USER + 1);
    }

    #[test]
    fn an_imported_session_keeps_its_id_and_age() {
        let t0 = Instant::now() + secs(100);
        let mut a = table(false);
        let c = a.issue("alice", "g", seed(1), t0).unwrap();
        let (exported, left) = a.export(t0 + secs(40)).pop().unwrap();
        assert_eq!(exported.age, secs(40));
        assert_eq!(left, TIMEOUT + COOKIE_SLACK - secs(40));
        let mut b = table(false);
        b.import(exported.clone(), t0 + secs(40)).unwrap();
        // Again: nothing changes; another session with the same id: refused.
        b.import(exported.clone(), t0 + secs(41)).unwrap();
        let mut clash = exported.clone();
        clash.cookie_sha256 = [9; 32];
        assert_eq!(b.import(clash, t0 + secs(41)), Err(IssueError::Collision));
        let grant = b.open(&c.cookie, t0 + secs(50)).unwrap();
        assert_eq!((grant.sid, grant.age_ms), (c.sid, 50_000));
        assert_eq!(grant.username, "alice");
        // Active here: another node's delete does not drop it; idle: it does.
        assert_eq!(b.forget(exported.cookie_sha256), None);
        b.close(c.sid, CloseReason::Temporary, t0 + secs(51));
        assert_eq!(b.forget(exported.cookie_sha256), Some(c.sid));
        assert_eq!(b.open(&c.cookie, t0), Err(SessionRefusal::UnknownCookie));
    }

    #[test]
    fn two_tunnels_on_one_cookie() {
        let t0 = Instant::now();
        let mut t = table(false);
        let c = t.issue("u", "", seed(1), t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        t.open(&c.cookie, t0).unwrap();
        assert_eq!(
            t.close(c.sid, CloseReason::Temporary, t0),
            Closed::StillActive
        );
        assert!(t.purge(t0 + secs(100_000)).is_empty());
        assert!(matches!(
            t.close(c.sid, CloseReason::Temporary, t0),
            Closed::KeptUntil(_)
        ));
    }
}
