//! The link to the store: one multiplexed connection (redis-rs `ConnectionManager`, which
//! reconnects by itself) for commands, every command bounded by [`COMMAND_TIMEOUT`], and the
//! store's state (up/down), logged once per change.
//!
//! The state is also a circuit breaker ([`Breaker`]): while the store is known down, a command
//! fails at once ([`StoreError::Down`]) instead of waiting up to [`COMMAND_TIMEOUT`], so a
//! login or CONNECT on a node whose store is gone costs what it costs without a store. Only
//! probes ([`Store::probe`]: the heartbeat) still try, and the first one that succeeds closes
//! the breaker again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, IntoConnectionInfo as _};
use rocserv_proto::cluster::StoreUrl;
use rocserv_proto::ipc::cluster::ClusterSettings;

/// Longest a store command may take before it counts as failed (and the store as down). A
/// login waits at most this long per store round trip: the store must never stall a login
/// beyond what a slow RADIUS server would.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// A store command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within [`COMMAND_TIMEOUT`], or no connection: the node works alone.
    #[error("the cluster store is unreachable: {0}")]
    Down(String),
    /// The store answered with an error (wrong type, script error, ACL...).
    #[error("the cluster store refused {what}: {why}")]
    Refused { what: &'static str, why: String },
    /// The request's [`Budget`] is spent: it goes on node-locally, as if the store were down
    /// for it (the store itself is not marked down: it answers, slowly).
    #[error("the cluster store is too slow for this request: {0}")]
    Spent(&'static str),
}

pub use rocserv_proto::cluster::REQUEST_BUDGET;

/// One request's time with the store ([`REQUEST_BUDGET`]): every command of the request is
/// bounded by what is left of it; once spent, the request's further commands fail at once
/// ([`StoreError::Spent`]) and the request finishes node-locally. Logged once per request.
/// Only the time spent waiting for the store's answers is charged: a request that waited for
/// other things (a hashing thread in a login storm, the session-db) still has its budget, so
/// the cluster's checks are never skipped for want of a store that was in fact quick.
#[derive(Debug)]
pub struct Budget {
    /// Time spent waiting for the store so far, in nanoseconds.
    used_ns: AtomicU64,
    /// What the request is, for the one log line ("CONNECT of worker 12").
    what: String,
    spent: AtomicBool,
}

impl Budget {
    /// A budget of [`REQUEST_BUDGET`] for the request `what`.
    pub fn new(what: String) -> Self {
        Self {
            used_ns: AtomicU64::new(0),
            what,
            spent: AtomicBool::new(false),
        }
    }

    /// Whether the request ran out of time with the store (it is node-local from then on; the
    /// one log line was written).
    pub fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    /// The time the request has spent waiting for the store.
    pub fn used(&self) -> Duration {
        Duration::from_nanos(self.used_ns.load(Ordering::Relaxed))
    }

    /// Charge `waited` (one command's wait for its answer).
    fn charge(&self, waited: Duration) {
        let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.used_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The bound of the next command: [`COMMAND_TIMEOUT`] or what is left, if less; `None`
    /// when nothing is left. Whether it is the budget's (`true`) that bounds it.
    fn bound(&self) -> Option<(Duration, bool)> {
        if self.spent.load(Ordering::Relaxed) {
            return None;
        }
        let left = REQUEST_BUDGET.checked_sub(self.used())?;
        if left.is_zero() {
            return None;
        }
        Some(if left < COMMAND_TIMEOUT {
            (left, true)
        } else {
            (COMMAND_TIMEOUT, false)
        })
    }

    /// Mark it spent; true the first time (the caller logs then, once per request).
    fn spend(&self) -> bool {
        !self.spent.swap(true, Ordering::Relaxed)
    }
}

/// What one attempt at the store came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The store answered (even with an error of its own: it is there).
    Reached,
    /// No connection, or no answer in time.
    Unreachable,
}

/// The circuit breaker's rules, sans-IO: the state is the store's last known reachability
/// (`None` before the first attempt, which is let through like any while the state is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    pub up: Option<bool>,
}

impl Breaker {
    /// Whether an attempt may go to the store: a probe always; anything else unless the store
    /// is known down (then it fails at once).
    pub fn admits(self, probe: bool) -> bool {
        probe || self.up != Some(false)
    }

    /// The state after `outcome`; `Some(up)` when it changed (to log and tell main once).
    pub fn record(&mut self, outcome: Outcome) -> Option<bool> {
        let up = outcome == Outcome::Reached;
        (self.up.replace(up) != Some(up)).then_some(up)
    }
}

/// The command link.
pub struct Store {
    url: StoreUrl,
    /// What to name in the "unreachable" line when the store refuses our credentials or its
    /// certificate does not verify: the option to look at (with its file).
    auth_hint: Option<String>,
    ca_hint: Option<String>,
    client: redis::Client,
    conn: ConnectionManager,
    /// Up or down (`None` until the first command): sec-mod's loop tells main and
    /// resynchronises on a change.
    up: tokio::sync::watch::Sender<Option<bool>>,
}

impl Store {
    /// Build the client (no connection yet: it is made on the first command). Reads the
    /// credentials and CA files; their problems are start-up errors.
    pub fn new(settings: &ClusterSettings) -> Result<Self, String> {
        let url = &settings.store;
        let scheme = if url.tls { "rediss" } else { "redis" };
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        let text = format!("{scheme}://{host}:{}/{}", url.port, url.db);
        let mut info = text
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("cluster-store {url}: {e}"))?;
        if let Some(path) = &settings.auth_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cluster-store-auth-file {}: {e}", path.display()))?;
            let (user, password) = rocserv_proto::cluster::parse_auth_line(&text)
                .ok_or_else(|| format!("cluster-store-auth-file {}: empty", path.display()))?;
            let mut redis = info.redis_settings().clone().set_password(password);
            if let Some(user) = user {
                redis = redis.set_username(user);
            }
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.ca_cert {
            Some(path) if url.tls => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cluster-store-ca-cert {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => redis::Client::open(info),
        }
        .map_err(|e| format!("cluster-store {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("cluster-store {url}: {e}"))?;
        Ok(Self {
            url: url.clone(),
            auth_hint: settings
                .auth_file
                .as_ref()
                .map(|p| format!("cluster-store-auth-file {}", p.display())),
            ca_hint: settings
                .ca_cert
                .as_ref()
                .filter(|_| url.tls)
                .map(|p| format!("cluster-store-ca-cert {}", p.display())),
            client,
            conn,
            up: tokio::sync::watch::Sender::new(None),
        })
    }

    /// The store's address, for log lines (no credentials: the URL never holds any).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The client, for the pub/sub connection ([`super::subscribe`]).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last command reached the store.
    pub fn is_up(&self) -> bool {
        *self.up.borrow() == Some(true)
    }

    /// Follow the store's state (see [`Self::set_up`]).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<bool>> {
        self.up.subscribe()
    }

    /// Run one command, bounded by [`COMMAND_TIMEOUT`]. `what` names it in errors and logs.
    /// Fails at once while the store is known down (see [`Breaker`]).
    pub async fn cmd<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.admit(what, false)?;
        self.send(what, cmd).await
    }

    /// Run one command even while the store is known down (the heartbeat): this is what finds
    /// the store back and closes the breaker.
    pub async fn probe<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.admit(what, true)?;
        self.send(what, cmd).await
    }

    async fn send<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    /// [`Self::cmd`] within a request's `budget`.
    pub async fn cmd_within<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Cmd,
        budget: &Budget,
    ) -> Result<T, StoreError> {
        self.admit(what, false)?;
        let (bound, cut) = self.bound(what, budget)?;
        let mut conn = self.conn.clone();
        let asked = Instant::now();
        let answer = tokio::time::timeout(bound, cmd.query_async::<T>(&mut conn)).await;
        budget.charge(asked.elapsed());
        self.judge_within(what, answer, budget, cut)
    }

    /// [`Self::script`] within a request's `budget`.
    pub async fn script_within<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: redis::ScriptInvocation<'_>,
        budget: &Budget,
    ) -> Result<T, StoreError> {
        self.admit(what, false)?;
        let (bound, cut) = self.bound(what, budget)?;
        let mut conn = self.conn.clone();
        let asked = Instant::now();
        let answer = tokio::time::timeout(bound, invocation.invoke_async::<T>(&mut conn)).await;
        budget.charge(asked.elapsed());
        self.judge_within(what, answer, budget, cut)
    }

    /// The next command's bound under `budget` (see [`Budget::bound`]).
    fn bound(&self, what: &'static str, budget: &Budget) -> Result<(Duration, bool), StoreError> {
        budget.bound().ok_or_else(|| {
            self.spent(budget);
            StoreError::Spent(what)
        })
    }

    /// A command that ran out of the budget of its request: the store is not judged down for
    /// it (it may well answer, slowly); the request goes on node-locally, logged once.
    fn judge_within<T>(
        &self,
        what: &'static str,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        budget: &Budget,
        cut: bool,
    ) -> Result<T, StoreError> {
        match answer {
            Err(_elapsed) if cut => {
                self.spent(budget);
                Err(StoreError::Spent(what))
            }
            answer => self.judge(what, answer),
        }
    }

    fn spent(&self, budget: &Budget) {
        if budget.spend() {
            log::warn!(
                "cluster store {} too slow: {} spent its {REQUEST_BUDGET:?} with the store; \
                 finished node-locally, as if the store were down",
                self.url,
                budget.what
            );
        }
    }

    /// Run a pipeline (`MULTI`/`EXEC` when it is atomic), bounded like [`Self::cmd`].
    pub async fn pipe<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.admit(what, false)?;
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    /// Run a Lua script (atomic on the store), bounded like [`Self::cmd`].
    pub async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.admit(what, false)?;
        let mut conn = self.conn.clone();
        let answer =
            tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await;
        self.judge(what, answer)
    }

    /// The breaker's verdict for one attempt.
    fn admit(&self, what: &'static str, probe: bool) -> Result<(), StoreError> {
        let breaker = Breaker {
            up: *self.up.borrow(),
        };
        if breaker.admits(probe) {
            Ok(())
        } else {
            Err(StoreError::Down(format!("{what}: the store is down")))
        }
    }

    fn judge<T>(
        &self,
        what: &'static str,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match answer {
            Ok(Ok(value)) => {
                self.set_up(true, None);
                Ok(value)
            }
            Ok(Err(e)) if is_connection_error(&e) => {
                let why = self.explain(&e);
                self.set_up(false, Some(&why));
                Err(StoreError::Down(why))
            }
            Ok(Err(e)) => Err(StoreError::Refused {
                what,
                why: e.to_string(),
            }),
            Err(_elapsed) => {
                let why = format!("{what}: no answer within {COMMAND_TIMEOUT:?}");
                self.set_up(false, Some(&why));
                Err(StoreError::Down(why))
            }
        }
    }

    /// `e`, with the option to check when it is about our credentials or the store's
    /// certificate (the one line an admin reads must say where to look).
    fn explain(&self, e: &redis::RedisError) -> String {
        let text = e.to_string();
        let hint = match problem(e) {
            Problem::Credentials => Some(self.auth_hint.as_deref().map_or_else(
                || "the store wants credentials: set cluster-store-auth-file".to_owned(),
                |h| format!("check {h}"),
            )),
            Problem::Certificate => Some(self.ca_hint.as_deref().map_or_else(
                || {
                    "its certificate does not verify against the system's roots: \
                    set cluster-store-ca-cert"
                        .to_owned()
                },
                |h| format!("check {h}"),
            )),
            Problem::Other => None,
        };
        match hint {
            Some(hint) => format!("{text}; {hint}"),
            None => text,
        }
    }

    /// Record the store's state; returns whether it changed. A change is logged here, once.
    pub fn set_up(&self, up: bool, why: Option<&str>) -> bool {
        let outcome = if up {
            Outcome::Reached
        } else {
            Outcome::Unreachable
        };
        if !self.up.send_if_modified(|state| {
            let mut breaker = Breaker { up: *state };
            let changed = breaker.record(outcome).is_some();
            *state = breaker.up;
            changed
        }) {
            return false;
        }
        if up {
            log::info!(
                "cluster store {} reachable: sessions, bans and leases are shared",
                self.url
            );
        } else {
            log::error!(
                "cluster store {} unreachable ({}): this node keeps its tunnels and works alone \
                 (new logins are local to it) until the store is back",
                self.url,
                why.unwrap_or("no answer")
            );
        }
        true
    }
}

/// What an error says about our configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Credentials,
    Certificate,
    Other,
}

fn problem(e: &redis::RedisError) -> Problem {
    let text = e.to_string();
    if e.kind() == redis::ErrorKind::AuthenticationFailed || refused_credentials(e) {
        Problem::Credentials
    } else if text.contains("certificate") || text.contains("Certificate") {
        Problem::Certificate
    } else {
        Problem::Other
    }
}

/// The store says we are not (or wrongly) authenticated: `NOAUTH` (a password is required)
/// or `WRONGPASS`, the error codes of Redis and Valkey.
fn refused_credentials(e: &redis::RedisError) -> bool {
    matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Whether `e` means "no usable connection" (as opposed to the store refusing a command). A
/// store that refuses our credentials is as unusable as an absent one.
fn is_connection_error(e: &redis::RedisError) -> bool {
    refused_credentials(e)
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

#[cfg(test)]
mod tests {
    use super::{Breaker, Outcome};

    #[test]
    fn unknown_admits_everything() {
        let b = Breaker::default();
        assert!(b.admits(false));
        assert!(b.admits(true));
    }

    #[test]
    fn down_refuses_commands_but_not_probes() {
        let mut b = Breaker::default();
        assert_eq!(b.record(Outcome::Unreachable), Some(false));
        assert!(!b.admits(false), "a command while down fails at once");
        assert!(b.admits(true), "the heartbeat still probes");
    }

    #[test]
    fn a_probe_that_reaches_the_store_closes_the_breaker() {
        let mut b = Breaker::default();
        b.record(Outcome::Unreachable);
        assert_eq!(b.record(Outcome::Reached), Some(true));
        assert!(b.admits(false));
    }

    #[test]
    fn each_change_is_reported_once() {
        let mut b = Breaker::default();
        assert_eq!(b.record(Outcome::Reached), Some(true));
        assert_eq!(b.record(Outcome::Reached), None);
        assert_eq!(b.record(Outcome::Unreachable), Some(false));
        assert_eq!(b.record(Outcome::Unreachable), None);
        assert_eq!(b.record(Outcome::Unreachable), None);
        assert_eq!(b.record(Outcome::Reached), Some(true));
    }

    #[test]
    fn one_failure_opens_it() {
        // Each failed attempt costs up to COMMAND_TIMEOUT to someone's login: the first one
        // is enough to know.
        let mut b = Breaker { up: Some(true) };
        b.record(Outcome::Unreachable);
        assert!(!b.admits(false));
    }

    /// A store client for plain `redis://127.0.0.1:port` (the tests' fake stores).
    fn local_store(port: u16) -> super::Store {
        use rocserv_proto::cluster::StoreUrl;
        use rocserv_proto::ipc::cluster::ClusterSettings;

        super::Store::new(&ClusterSettings {
            store: StoreUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port,
                db: 0,
            },
            node: "n".into(),
            auth_file: None,
            ca_cert: None,
        })
        .unwrap()
    }

    /// A store that accepts connections and never answers (a frozen redis-server): the first
    /// command waits its bound, the next ones fail at once; a probe still tries.
    #[tokio::test]
    async fn a_hung_store_costs_one_timeout_then_nothing() {
        use std::time::{Duration, Instant};

        use super::{StoreError, COMMAND_TIMEOUT};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and hold the connections without a word.
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                conns.push(conn);
            }
        });
        let store = local_store(port);
        let ping = redis::cmd("PING");
        let started = Instant::now();
        let first = store.cmd::<String>("PING", &ping).await;
        assert!(matches!(first, Err(StoreError::Down(_))), "{first:?}");
        assert!(started.elapsed() >= COMMAND_TIMEOUT / 2);
        assert!(!store.is_up());
        for _ in 0..5 {
            let started = Instant::now();
            let next = store.cmd::<String>("PING", &ping).await;
            assert!(matches!(next, Err(StoreError::Down(_))), "{next:?}");
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "a command while the store is known down must fail at once, took {:?}",
                started.elapsed()
            );
        }
        let started = Instant::now();
        let probe = store.probe::<String>("PING", &ping).await;
        assert!(probe.is_err());
        assert!(
            started.elapsed() >= COMMAND_TIMEOUT / 2,
            "a probe goes to the store"
        );
        held.abort();
    }

    /// A store that answers every `PING`, each after `delay` (one at a time, as a busy
    /// redis-server would), anything else (the connection's set-up) at once: a fake speaking
    /// just enough RESP (`+PONG` to each command).
    async fn slow_store(delay: std::time::Duration) -> (u16, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        // Each command is an array: a line that starts with '*'.
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let commands = text.split("\r\n").filter(|l| l.starts_with('*')).count();
                        let slow = text.contains("PING");
                        for _ in 0..commands {
                            if slow {
                                tokio::time::sleep(delay).await;
                            }
                            if conn.write_all(b"+PONG\r\n").await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, task)
    }

    /// Time a request spends away from the store (queued behind hashes, waiting for the
    /// session-db) is not charged: only the waits for the store's answers are.
    #[test]
    fn only_the_waits_for_the_store_are_charged() {
        use std::time::Duration;

        use super::{Budget, COMMAND_TIMEOUT, REQUEST_BUDGET};

        let budget = Budget::new("test request".into());
        std::thread::sleep(REQUEST_BUDGET + Duration::from_millis(50));
        assert!(!budget.is_spent(), "time off the store spent the budget");
        assert_eq!(budget.bound(), Some((COMMAND_TIMEOUT, false)));
        budget.charge(REQUEST_BUDGET - Duration::from_millis(100));
        assert_eq!(budget.bound(), Some((Duration::from_millis(100), true)));
        assert_eq!(budget.used(), REQUEST_BUDGET - Duration::from_millis(100));
        budget.charge(Duration::from_millis(100));
        assert_eq!(budget.bound(), None);
    }

    /// A store that answers each command in 0.9 s (under the command bound): a request's
    /// commands share one budget, so its second command is cut short and its third not sent;
    /// the store is not marked down for it, and the next request has a budget of its own.
    #[tokio::test]
    async fn a_slow_store_costs_a_request_its_budget_at_most() {
        use std::time::{Duration, Instant};

        use super::{Budget, StoreError, REQUEST_BUDGET};

        let (port, task) = slow_store(Duration::from_millis(900)).await;
        let store = local_store(port);
        let ping = redis::cmd("PING");
        // Connected (the connection's own set-up answered too), not timed.
        let echo = redis::cmd("ECHO").arg("x").clone();
        assert_eq!(store.cmd::<String>("ECHO", &echo).await.unwrap(), "PONG");
        let budget = Budget::new("test request".into());
        let started = Instant::now();
        let first = store.cmd_within::<String>("PING", &ping, &budget).await;
        assert_eq!(first.unwrap(), "PONG");
        let second = store.cmd_within::<String>("PING", &ping, &budget).await;
        assert!(matches!(second, Err(StoreError::Spent(_))), "{second:?}");
        let third = store.cmd_within::<String>("PING", &ping, &budget).await;
        assert!(matches!(third, Err(StoreError::Spent(_))), "{third:?}");
        let took = started.elapsed();
        assert!(
            took < REQUEST_BUDGET + Duration::from_millis(200),
            "three commands of 0.9 s within the budget: {took:?}"
        );
        assert!(budget.is_spent());
        assert!(store.is_up(), "a slow store is not a down one");
        // The next request: its own budget (the late answer of the cut command first).
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let next = Budget::new("next request".into());
        let again = store.cmd_within::<String>("PING", &ping, &next).await;
        assert_eq!(again.unwrap(), "PONG");
        task.abort();
    }
}
