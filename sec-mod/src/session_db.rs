//! The session database (`session-db`, ours): every tunnel's start, traffic and end in a SQLite
//! file, and each user's usage per UTC day for `max-session-time-per-day` and `traffic-quota`.
//!
//! All SQLite work happens on one thread of its own fed by a bounded queue: sec-mod's loop only
//! ever `try_send`s, so a slow or full disk delays records, never a login or a CONNECT. When the
//! queue is full the event is dropped, logged and counted ([`SessionDb::dropped`]).
//!
//! Durability: WAL with `synchronous = NORMAL` survives a crash or `kill -9` of any process (the
//! WAL is in the kernel's page cache once written); a power loss may lose the last
//! transactions. A start is written at once, each traffic report updates the row's bytes and
//! the day's usage, the end closes the row; rows a crash left open are closed at the next start
//! with [`STOPPED`] and their last reported bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocserv_proto::ipc::main_secmod::SessionRecord;
use rocserv_proto::ipc::WorkerId;
use rocserv_proto::policy::quota::{self, Limits, Usage};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::accounting::{EndRequests, Event, Record, Sink};

/// Events and requests the queue holds; beyond it they are dropped (counted, logged).
pub const QUEUE: usize = 4096;
/// The end reason of a row a crash or kill left open.
pub const STOPPED: &str = "server stopped";
/// How long SQLite waits for a lock another process holds (`sqlite3` reading the file) before a
/// write fails; the writer thread alone waits, never sec-mod's loop.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Days of per-day usage kept: a month period looks back at most 31 days.
const USAGE_DAYS_KEPT: u64 = 62;
/// The writer closes its connection after this long without work and reopens it at the next
/// job: an open connection holds ~450 kB of sec-mod's heap (SQLite's lookaside, page cache and
/// parsed schema; sec-mod's anonymous memory at start was 1.17 MB with it, 0.72 MB with
/// `session-db = none`). A reopen and its close cost ~0.8 ms of CPU on this thread (and the
/// close's WAL checkpoint four fsyncs), at most once per idle gap.
const IDLE_CLOSE: Duration = Duration::from_secs(5);

/// The schema; `user_version` 1. Times are unix seconds, days are days since 1970-01-01 (UTC).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    sid TEXT NOT NULL,
    username TEXT NOT NULL,
    groupname TEXT NOT NULL,
    vhost TEXT,
    device_id TEXT,
    macs TEXT NOT NULL,
    hostname TEXT,
    user_agent TEXT NOT NULL,
    cert_subject TEXT,
    remote_ip TEXT,
    vpn_ipv4 TEXT,
    vpn_ipv6 TEXT,
    device TEXT NOT NULL,
    started INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    ended INTEGER,
    duration INTEGER NOT NULL,
    rx INTEGER NOT NULL,
    tx INTEGER NOT NULL,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username, id);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (ended) WHERE ended IS NULL;
CREATE TABLE IF NOT EXISTS usage (
    username TEXT NOT NULL,
    day INTEGER NOT NULL,
    seconds INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (username, day)
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// A problem opening the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create directory {0}")]
    Dir(String, #[source] std::io::Error),
    #[error("cannot create {0}")]
    File(String, #[source] std::io::Error),
    #[error("{0}")]
    Sqlite(String, #[source] rusqlite::Error),
    #[error("cannot start the session-db thread")]
    Thread(#[source] std::io::Error),
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |e| DbError::Sqlite(path.display().to_string(), e)
}

/// Work for the database thread.
enum Job {
    Event(Event),
    Usage {
        username: String,
        limits: Limits,
        reply: oneshot::Sender<Result<Usage, String>>,
    },
    History {
        user: Option<String>,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<SessionRecord>, String>>,
    },
}

/// The handle sec-mod keeps: a sink for accounting and the queries of logins and occtl.
#[derive(Debug, Clone)]
pub struct SessionDb {
    queue: SyncSender<Job>,
    dropped: Arc<AtomicU64>,
}

/// `rocserv -t`: can `path` be used, without creating or changing anything? An existing file
/// must open as a session database; otherwise its nearest existing ancestor must be a directory.
pub fn check(path: &Path) -> Result<(), String> {
    if path.exists() {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("session-db {}: {e}", path.display()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| format!("session-db {}: {e}", path.display()))?;
        if version > 1 {
            return Err(format!(
                "session-db {}: made by a newer rocserv (schema {version})",
                path.display()
            ));
        }
        return Ok(());
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.exists() {
            return if d.is_dir() {
                Ok(())
            } else {
                Err(format!(
                    "session-db {}: {} is not a directory",
                    path.display(),
                    d.display()
                ))
            };
        }
        dir = d.parent();
    }
    Err(format!("session-db {}: no such directory", path.display()))
}

impl SessionDb {
    /// Open (or create: directory mode 0700, file 0600) the database at `path`, close the rows
    /// a crash left open, and start the writer thread. `ends` is where quota ends are asked.
    pub fn open(path: &Path, ends: Arc<EndRequests>) -> Result<Self, DbError> {
        let conn = open_file(path)?;
        let recovered = recover(&conn, now_unix()).map_err(sql(path))?;
        if recovered > 0 {
            log::warn!(
                "session-db: closed {recovered} session record(s) left open by a crash or \
                 restart ({STOPPED})"
            );
        }
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        // Closed until the first job: nothing may come for a long while after a start.
        drop(conn);
        let owned = path.to_owned();
        std::thread::Builder::new()
            .name("session-db".into())
            .spawn(move || Writer::new(None, ends, owned).run(jobs, IDLE_CLOSE))
            .map_err(DbError::Thread)?;
        log::info!("session-db: recording sessions in {}", path.display());
        Ok(Self { queue, dropped })
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn queue(&self, job: Job) -> Result<(), String> {
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let n = self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                // Every drop would flood the log when the disk hangs: powers of two.
                if n.is_power_of_two() {
                    log::error!("session-db: queue full (disk slow?); {n} item(s) dropped so far");
                }
                Err("the session database is busy".into())
            }
            Err(TrySendError::Disconnected(_)) => Err("the session database thread ended".into()),
        }
    }

    /// The user's usage now, for `limits`' periods.
    pub async fn usage(&self, username: &str, limits: Limits) -> Result<Usage, String> {
        let (reply, answer) = oneshot::channel();
        self.queue(Job::Usage {
            username: username.to_owned(),
            limits,
            reply,
        })?;
        answer
            .await
            .map_err(|_| "the session database thread ended".to_owned())?
    }

    /// The last `limit` records (of `user`), newest first.
    pub async fn history(
        &self,
        user: Option<String>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, String> {
        let (reply, answer) = oneshot::channel();
        self.queue(Job::History { user, limit, reply })?;
        answer
            .await
            .map_err(|_| "the session database thread ended".to_owned())?
    }
}

impl Sink for SessionDb {
    fn name(&self) -> &'static str {
        "session-db"
    }

    fn event(&self, event: &Event) {
        let _ = self.queue(Job::Event(event.clone()));
    }
}

fn open_file(path: &Path) -> Result<Connection, DbError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DbError::Dir(dir.display().to_string(), e))?;
    }
    // Created here with mode 0600 (it names users and their addresses); SQLite gives its -wal
    // and -shm files the database file's mode.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DbError::File(path.display().to_string(), e))?;
    let conn = Connection::open(path).map_err(sql(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql(path))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql(path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!(
            "session-db {}: journal mode {mode}, not WAL",
            path.display()
        );
    }
    // 256 KiB of page cache instead of SQLite's 2 MiB: the writes touch a few pages each and
    // sec-mod's resident memory is otherwise ~3 MB.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -256;")
        .map_err(sql(path))?;
    conn.execute_batch(SCHEMA).map_err(sql(path))?;
    Ok(conn)
}

/// Close every row left open (a crash, `kill -9`, a sec-mod restart) at its last update, with
/// its last reported bytes; drop usage older than [`USAGE_DAYS_KEPT`]. Returns the rows closed.
fn recover(conn: &Connection, now: u64) -> rusqlite::Result<usize> {
    let closed = conn.execute(
        "UPDATE sessions SET ended = updated, duration = max(updated - started, 0), \
         end_reason = ?1 WHERE ended IS NULL",
        params![STOPPED],
    )?;
    let oldest = quota::day_of(now).saturating_sub(USAGE_DAYS_KEPT);
    conn.execute("DELETE FROM usage WHERE day < ?1", params![db_int(oldest)])?;
    Ok(closed)
}

fn now_unix() -> u64 {
    unix(SystemTime::now())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// SQLite integers are i64; our counters never reach 2^63, but clamp rather than wrap.
fn db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A live tunnel as the writer knows it.
struct Live {
    row: i64,
    /// Bytes (both ways) and time already added to the usage table.
    bytes: u64,
    at: u64,
    /// A quota end was asked (asked again at each report in case it was lost, logged once).
    ending: bool,
}

struct Writer {
    /// `None` while idle ([`IDLE_CLOSE`]) or when reopening failed.
    conn: Option<Connection>,
    ends: Arc<EndRequests>,
    path: PathBuf,
    live: HashMap<WorkerId, Live>,
    /// Closes the connection when a burst's last tunnel ends (not [`IDLE_CLOSE`] later).
    burst: rocserv_rt::memory::TrimTrigger,
}

/// The writer's connection, or the error a job gets when it could not be reopened (logged).
fn opened(conn: &Option<Connection>) -> rusqlite::Result<&Connection> {
    conn.as_ref().ok_or_else(|| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some("cannot reopen the database".into()),
        )
    })
}

impl Writer {
    fn new(conn: Option<Connection>, ends: Arc<EndRequests>, path: PathBuf) -> Self {
        Self {
            conn,
            ends,
            path,
            live: HashMap::new(),
            burst: rocserv_rt::memory::TrimTrigger::new(),
        }
    }

    /// Serve `jobs` until sec-mod drops every handle (exit), closing the connection after
    /// `idle` without work.
    fn run(mut self, jobs: Receiver<Job>, idle: Duration) {
        loop {
            let job = if self.conn.is_some() {
                match jobs.recv_timeout(idle) {
                    Ok(job) => job,
                    // Only with no tunnel live: a live one's later events need its row, and a
                    // failed reopen must not lose them.
                    Err(RecvTimeoutError::Timeout) => {
                        if self.live.is_empty() {
                            self.close();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
            self.job(job, now_unix());
            // The end of a burst of tunnels: close now and give the memory back, so that the
            // server is back to its idle size right away (the shared bench reads it ~1 s after
            // its logouts). A lone user's tunnels never reach the burst size: no reopen per login.
            if self.burst.update(self.live.len()) && self.live.is_empty() && self.conn.is_some() {
                self.close();
                rocserv_rt::memory::trim();
            }
        }
    }

    /// Close the connection (WAL: the last one to close checkpoints and removes the -wal file)
    /// and give what it held back to the allocator. Called only with no tunnel live.
    fn close(&mut self) {
        self.conn = None;
        self.live = HashMap::new();
    }

    fn job(&mut self, job: Job, now: u64) {
        if self.conn.is_none() {
            match open_file(&self.path) {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    log::error!("session-db: cannot reopen: {e}{cause}");
                }
            }
        }
        let path = self.path.display();
        match job {
            Job::Event(event) => {
                if let Err(e) = self.event(&event, now) {
                    log::error!("session-db {}: {e}", self.path.display());
                }
            }
            Job::Usage {
                username,
                limits,
                reply,
            } => {
                let usage = opened(&self.conn)
                    .and_then(|c| usage_of(c, &username, limits, now))
                    .map_err(|e| format!("session-db {path}: {e}"));
                let _ = reply.send(usage);
            }
            Job::History { user, limit, reply } => {
                let rows = opened(&self.conn)
                    .and_then(|c| history(c, user.as_deref(), limit))
                    .map_err(|e| format!("session-db {path}: {e}"));
                let _ = reply.send(rows);
            }
        }
    }

    fn event(&mut self, event: &Event, now: u64) -> rusqlite::Result<()> {
        match event {
            Event::Started(record) => {
                let row = insert(opened(&self.conn)?, record)?;
                let at = unix(record.started);
                let live = Live {
                    row,
                    bytes: 0,
                    at,
                    ending: false,
                };
                self.live.insert(record.worker, live);
            }
            Event::Interim { record, rx, tx } => {
                let Some(live) = self.live.get_mut(&record.worker) else {
                    return Ok(());
                };
                let conn = opened(&self.conn)?;
                let tx_ = conn.unchecked_transaction()?;
                conn.execute(
                    "UPDATE sessions SET rx = ?1, tx = ?2, updated = ?3, \
                     duration = max(?3 - started, 0) WHERE id = ?4",
                    params![db_int(*rx), db_int(*tx), db_int(now), live.row],
                )?;
                account(conn, &record.username, live, rx.saturating_add(*tx), now)?;
                tx_.commit()?;
                self.enforce(record, now)?;
            }
            Event::Stopped { record, end } => {
                let Some(mut live) = self.live.remove(&record.worker) else {
                    return Ok(());
                };
                let conn = opened(&self.conn)?;
                let tx_ = conn.unchecked_transaction()?;
                conn.execute(
                    "UPDATE sessions SET rx = ?1, tx = ?2, updated = ?3, ended = ?3, \
                     duration = ?4, end_reason = ?5 WHERE id = ?6",
                    params![
                        db_int(end.rx),
                        db_int(end.tx),
                        db_int(now),
                        db_int(end.duration_secs),
                        end.cause.to_string(),
                        live.row
                    ],
                )?;
                let total = end.rx.saturating_add(end.tx);
                account(conn, &record.username, &mut live, total, now)?;
                tx_.commit()?;
            }
        }
        Ok(())
    }

    /// At a traffic report: when the user's usage (every tunnel of theirs, this period) reached
    /// a limit, ask main to end this tunnel.
    fn enforce(&mut self, record: &Record, now: u64) -> rusqlite::Result<()> {
        if record.limits.is_none() {
            return Ok(());
        }
        let usage = usage_of(opened(&self.conn)?, &record.username, record.limits, now)?;
        let Some(exceeded) = record.limits.exceeded(usage) else {
            return Ok(());
        };
        if let Some(live) = self.live.get_mut(&record.worker) {
            if !live.ending {
                live.ending = true;
                log::warn!(
                    "user '{}': session {} ended: {exceeded}",
                    record.username.escape_debug(),
                    record.sid
                );
            }
        }
        self.ends.end(record.sid, exceeded.to_string());
        Ok(())
    }
}

fn insert(conn: &Connection, r: &Record) -> rusqlite::Result<i64> {
    let started = db_int(unix(r.started));
    conn.execute(
        "INSERT INTO sessions (sid, username, groupname, vhost, device_id, macs, hostname, \
         user_agent, cert_subject, remote_ip, vpn_ipv4, vpn_ipv6, device, started, updated, \
         duration, rx, tx) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, 0, 0, 0)",
        params![
            r.sid.to_string(),
            r.username,
            r.group,
            r.vhost,
            r.facts.device_id,
            r.facts.macs.join(" "),
            r.facts.hostname,
            r.facts.user_agent,
            r.cert_subject,
            r.peer().map(|p| p.ip().to_string()),
            r.tunnel.vpn_ipv4.map(|a| a.to_string()),
            r.tunnel.vpn_ipv6.map(|a| a.to_string()),
            r.tunnel.device,
            started,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Add what `live` used since its last report (bytes up to `total`, time up to `now`) to the
/// user's usage of `now`'s day. An interval that spans midnight counts for the new day.
fn account(
    conn: &Connection,
    username: &str,
    live: &mut Live,
    total: u64,
    now: u64,
) -> rusqlite::Result<()> {
    let bytes = total.saturating_sub(live.bytes);
    let seconds = now.saturating_sub(live.at);
    live.bytes = live.bytes.max(total);
    live.at = live.at.max(now);
    if bytes == 0 && seconds == 0 {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO usage (username, day, seconds, bytes) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (username, day) DO UPDATE SET seconds = seconds + ?3, bytes = bytes + ?4",
        params![
            username,
            db_int(quota::day_of(now)),
            db_int(seconds),
            db_int(bytes)
        ],
    )?;
    Ok(())
}

/// The user's connected seconds today and bytes in the traffic period holding `now`.
fn usage_of(
    conn: &Connection,
    username: &str,
    limits: Limits,
    now: u64,
) -> rusqlite::Result<Usage> {
    let today = quota::day_of(now);
    let seconds: Option<i64> = conn
        .query_row(
            "SELECT seconds FROM usage WHERE username = ?1 AND day = ?2",
            params![username, db_int(today)],
            |r| r.get(0),
        )
        .optional()?;
    let bytes_in_period = match limits.traffic {
        Some((_, period)) => conn.query_row(
            "SELECT COALESCE(SUM(bytes), 0) FROM usage WHERE username = ?1 AND day >= ?2",
            params![username, db_int(period.first_day(today))],
            |r| r.get::<_, i64>(0),
        )?,
        None => 0,
    };
    Ok(Usage {
        seconds_today: from_db(seconds.unwrap_or(0)),
        bytes_in_period: from_db(bytes_in_period),
    })
}

fn history(
    conn: &Connection,
    user: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<SessionRecord>> {
    let limit = limit.min(rocserv_proto::ipc::main_secmod::MAX_HISTORY);
    const COLUMNS: &str = "SELECT sid, username, groupname, vhost, device_id, macs, hostname, \
         user_agent, remote_ip, vpn_ipv4, vpn_ipv6, started, ended, duration, rx, tx, end_reason \
         FROM sessions";
    // Two statements rather than `?1 IS NULL OR username = ?1`, which would keep SQLite from
    // using the (username, id) index.
    let mut stmt = match user {
        Some(_) => conn.prepare(&format!(
            "{COLUMNS} WHERE username = ?1 ORDER BY id DESC LIMIT ?2"
        ))?,
        None => conn.prepare(&format!(
            "{COLUMNS} WHERE ?1 IS NULL ORDER BY id DESC LIMIT ?2"
        ))?,
    };
    let rows = stmt.query_map(params![user, limit], |r| {
        let macs: String = r.get(5)?;
        let ip = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
        Ok(SessionRecord {
            session: r.get(0)?,
            username: r.get(1)?,
            groupname: r.get(2)?,
            vhost: r.get(3)?,
            device_id: r.get(4)?,
            macs: macs.split_whitespace().map(str::to_owned).collect(),
            hostname: r.get(6)?,
            user_agent: r.get(7)?,
            remote_ip: ip(8)?.and_then(|a| a.parse().ok()),
            vpn_ipv4: ip(9)?.and_then(|a| a.parse().ok()),
            vpn_ipv6: ip(10)?.and_then(|a| a.parse().ok()),
            started: from_db(r.get(11)?),
            ended: r.get::<_, Option<i64>>(12)?.map(from_db),
            duration_secs: from_db(r.get(13)?),
            rx: from_db(r.get(14)?),
            tx: from_db(r.get(15)?),
            end_reason: r.get(16)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::main_secmod::{EndCause, TunnelEnd, TunnelFacts};
    use rocserv_proto::ipc::worker_secmod::ClientFacts;
    use rocserv_proto::ipc::SessionId;
    use rocserv_proto::policy::quota::Period;
    use std::path::PathBuf;

    /// 2026-12-05 12:00 UTC.
    const NOON: u64 = 1_796_472_000;

    fn record(worker: u64, user: &str, limits: Limits) -> Arc<Record> {
        Arc::new(Record {
            sid: SessionId(0xab),
            worker: WorkerId(worker),
            username: user.into(),
            group: "staff".into(),
            vhost: None,
            facts: ClientFacts {
                device_id: Some("linux-64".into()),
                macs: vec!["00:11:22:33:44:55".into(), "00:11:22:33:44:66".into()],
                user_agent: "OpenConnect".into(),
                ..Default::default()
            },
            cert_subject: None,
            tunnel: TunnelFacts {
                peer: Some("10.0.0.2:4000".parse().unwrap()),
                vpn_ipv4: Some("192.168.1.2".parse().unwrap()),
                vpn_ipv6: None,
                device: "vpns0".into(),
            },
            started: UNIX_EPOCH + Duration::from_secs(NOON),
            limits,
        })
    }

    fn writer(dir: &Path) -> (Writer, Arc<EndRequests>) {
        let ends = Arc::new(EndRequests::default());
        let conn = open_file(&dir.join("db/sessions.db")).unwrap();
        let path = dir.join("db/sessions.db");
        (Writer::new(Some(conn), Arc::clone(&ends), path), ends)
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rocserv-sdb-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_session_is_written_at_start_updated_and_closed() {
        let dir = tempdir();
        let (mut w, _) = writer(&dir);
        let r = record(1, "alice", Limits::default());
        w.event(&Event::Started(Arc::clone(&r)), NOON).unwrap();
        let open = history(w.conn.as_ref().unwrap(), None, 10).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].ended, None);
        assert_eq!(open[0].macs.len(), 2);
        assert_eq!(open[0].remote_ip, Some("10.0.0.2".parse().unwrap()));
        w.event(
            &Event::Interim {
                record: Arc::clone(&r),
                rx: 100,
                tx: 50,
            },
            NOON + 60,
        )
        .unwrap();
        let h = history(w.conn.as_ref().unwrap(), Some("alice"), 10).unwrap();
        assert_eq!((h[0].rx, h[0].tx, h[0].duration_secs), (100, 50, 60));
        let end = TunnelEnd {
            rx: 300,
            tx: 70,
            duration_secs: 90,
            cause: EndCause::UserRequest,
        };
        w.event(
            &Event::Stopped {
                record: Arc::clone(&r),
                end,
            },
            NOON + 90,
        )
        .unwrap();
        let h = history(w.conn.as_ref().unwrap(), Some("alice"), 10).unwrap();
        assert_eq!(h[0].ended, Some(NOON + 90));
        assert_eq!(h[0].end_reason.as_deref(), Some("user disconnected"));
        assert_eq!((h[0].rx, h[0].tx), (300, 70));
        assert!(history(w.conn.as_ref().unwrap(), Some("bob"), 10)
            .unwrap()
            .is_empty());
        let usage = usage_of(
            w.conn.as_ref().unwrap(),
            "alice",
            Limits {
                time_per_day: None,
                traffic: Some((1, Period::Day)),
            },
            NOON + 100,
        )
        .unwrap();
        assert_eq!(usage.bytes_in_period, 370);
        assert_eq!(usage.seconds_today, 90);
        let mode = std::fs::metadata(dir.join("db/sessions.db")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rows_left_open_are_closed_at_the_next_start_with_their_last_bytes() {
        let dir = tempdir();
        let (mut w, _) = writer(&dir);
        let r = record(1, "alice", Limits::default());
        w.event(&Event::Started(Arc::clone(&r)), NOON).unwrap();
        w.event(
            &Event::Interim {
                record: r,
                rx: 10,
                tx: 20,
            },
            NOON + 30,
        )
        .unwrap();
        drop(w); // the crash: no Stopped
        let conn = open_file(&dir.join("db/sessions.db")).unwrap();
        assert_eq!(recover(&conn, NOON + 100).unwrap(), 1);
        let h = history(&conn, None, 10).unwrap();
        assert_eq!(h[0].ended, Some(NOON + 30));
        assert_eq!(h[0].end_reason.as_deref(), Some(STOPPED));
        assert_eq!((h[0].rx, h[0].tx, h[0].duration_secs), (10, 20, 30));
        assert_eq!(recover(&conn, NOON + 100).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_quota_counts_every_tunnel_of_the_user_and_ends_the_one_reporting() {
        let dir = tempdir();
        let (mut w, ends) = writer(&dir);
        let limits = Limits {
            time_per_day: None,
            traffic: Some((1000, Period::Day)),
        };
        let a = record(1, "alice", limits);
        let b = record(2, "alice", limits);
        for r in [&a, &b] {
            w.event(&Event::Started(Arc::clone(r)), NOON).unwrap();
        }
        let report = |r: &Arc<Record>, rx| Event::Interim {
            record: Arc::clone(r),
            rx,
            tx: 0,
        };
        w.event(&report(&a, 400), NOON + 1).unwrap();
        w.event(&report(&b, 500), NOON + 1).unwrap();
        assert!(ends.take().is_empty(), "900 of 1000 bytes");
        // Cumulative counters: 450 more bytes on `a` makes 1050.
        w.event(&report(&a, 550), NOON + 2).unwrap();
        let asked = ends.take();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].0, SessionId(0xab));
        assert!(asked[0]
            .1
            .starts_with("traffic quota of 1000 bytes per day used up"));
        // Yesterday's usage does not count today.
        let tomorrow = NOON + quota::DAY;
        let u = usage_of(w.conn.as_ref().unwrap(), "alice", limits, tomorrow).unwrap();
        assert_eq!(u.bytes_in_period, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_per_day_ends_the_session() {
        let dir = tempdir();
        let (mut w, ends) = writer(&dir);
        let limits = Limits {
            time_per_day: Some(60),
            traffic: None,
        };
        let a = record(1, "alice", limits);
        w.event(&Event::Started(Arc::clone(&a)), NOON).unwrap();
        let report = |rx| Event::Interim {
            record: Arc::clone(&a),
            rx,
            tx: 0,
        };
        w.event(&report(1), NOON + 59).unwrap();
        assert!(ends.take().is_empty());
        w.event(&report(2), NOON + 60).unwrap();
        assert!(ends.take()[0]
            .1
            .starts_with("max-session-time-per-day of 60 s"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (queue, _jobs) = std::sync::mpsc::sync_channel(1);
        let db = SessionDb {
            queue,
            dropped: Arc::default(),
        };
        let r = record(1, "alice", Limits::default());
        for _ in 0..5 {
            db.event(&Event::Started(Arc::clone(&r)));
        }
        assert_eq!(db.dropped(), 4);
    }

    #[test]
    fn the_connection_closes_when_idle_with_no_tunnel_and_reopens_for_the_next_job() {
        let dir = tempdir();
        let (w, _) = writer(&dir);
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let db = SessionDb {
            queue,
            dropped: Arc::default(),
        };
        let thread = std::thread::spawn(move || w.run(jobs, Duration::from_millis(100)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = record(1, "alice", Limits::default());
        db.event(&Event::Started(Arc::clone(&r)));
        assert_eq!(rt.block_on(db.history(None, 10)).unwrap().len(), 1);
        // Open in WAL mode: the -wal file exists until the last connection closes. A live
        // tunnel keeps it open past the idle time (its later events need the row).
        let wal = dir.join("db/sessions.db-wal");
        assert!(wal.exists());
        std::thread::sleep(Duration::from_millis(400));
        assert!(wal.exists(), "closed while a tunnel was live");
        let end = TunnelEnd {
            rx: 1,
            tx: 2,
            duration_secs: 3,
            cause: EndCause::UserRequest,
        };
        db.event(&Event::Stopped { record: r, end });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal.exists() {
            assert!(std::time::Instant::now() < deadline, "never closed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The next job reopens it.
        let h = rt.block_on(db.history(None, 10)).unwrap();
        assert_eq!((h.len(), h[0].rx, h[0].tx), (1, 1, 2));
        assert!(h[0].ended.is_some());
        drop(db);
        thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_connection_closes_when_a_burst_of_tunnels_ended_and_not_per_login() {
        let dir = tempdir();
        let (w, _) = writer(&dir);
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let db = SessionDb {
            queue,
            dropped: Arc::default(),
        };
        // Idle close far away: only the burst's end may close it.
        let thread = std::thread::spawn(move || w.run(jobs, Duration::from_secs(3600)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let wal = dir.join("db/sessions.db-wal");
        let end = TunnelEnd {
            rx: 1,
            tx: 2,
            duration_secs: 3,
            cause: EndCause::UserRequest,
        };
        // One user in and out: stays open (no reopen per login).
        let r = record(1, "alice", Limits::default());
        db.event(&Event::Started(Arc::clone(&r)));
        db.event(&Event::Stopped { record: r, end });
        assert_eq!(rt.block_on(db.history(None, 10)).unwrap().len(), 1);
        assert!(wal.exists(), "closed after a lone tunnel");
        // A burst of BURST_MIN tunnels, all ended: closed without the idle wait.
        let n = rocserv_rt::memory::BURST_MIN as u64;
        let records: Vec<_> = (10..10 + n)
            .map(|i| record(i, "bob", Limits::default()))
            .collect();
        for r in &records {
            db.event(&Event::Started(Arc::clone(r)));
        }
        for r in records {
            db.event(&Event::Stopped { record: r, end });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "not closed after the burst"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The next job reopens it, the rows are all there.
        let h = rt.block_on(db.history(None, 100)).unwrap();
        assert_eq!(h.len() as u64, 1 + n);
        drop(db);
        thread.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn check_creates_nothing() {
        let dir = tempdir();
        let path = dir.join("new/sub/sessions.db");
        assert_eq!(check(&path), Ok(()));
        assert!(!dir.join("new").exists());
        std::fs::write(dir.join("file"), "x").unwrap();
        assert!(check(&dir.join("file/sessions.db")).is_err());
        let (w, _) = writer(&dir);
        drop(w);
        assert_eq!(check(&dir.join("db/sessions.db")), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
