//! main's side of sec-mod: spawning it, the start handshake, one shared client whose reader
//! task routes `SessionOpened` answers back to the waiting worker task by [`WorkerId`], and the
//! [`Supervisor`] that restarts sec-mod when it dies.
//!
//! A restart swaps the client's link to the new process; callers keep their `Arc<SecModClient>`.
//! Requests waiting on the dead process fail at once (`Exited`), and so do workers in the middle
//! of a login (their sec-mod channel ends). Tunnels do not need sec-mod and carry on. The new
//! sec-mod starts with an empty session table: an old cookie is unknown to it, so a cookie
//! reconnect after a restart is refused and the client logs in again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocserv_proto::ipc::cluster::{ClusterAnswer, ClusterQuery, FromCluster, ToCluster};
use rocserv_proto::ipc::main_secmod::{
    AuthHookOutcome, FromSecMod, SecModConfig, SessionGrant, SessionRecord, SessionRefusal,
    SessionSummary, ToSecMod, TunnelEnd, TunnelFacts,
};
use rocserv_proto::ipc::{CloseReason, KeyKind, SessionId, WorkerId, MAX_MESSAGE};
use rocserv_rt::lock;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_seqpacket::UnixSeqpacket;

use crate::ipc::{self, ChannelError};

/// How long sec-mod may take to load the key and answer `Start`, and to answer a request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Restarts allowed within [`RESTART_WINDOW`]; one more and main gives up (a sec-mod that dies
/// at once every time, e.g. a key that became unreadable, would otherwise loop for ever).
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Pause before a restart that follows another one within [`RESTART_WINDOW`]. The first restart
/// after a quiet period is immediate, so logins work again within a second or two.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// How long sec-mod gets to exit after SIGTERM at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// sec-mod could not be started or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum SecModError {
    /// The binary could not be found or executed.
    #[error("cannot execute {path}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The socket to sec-mod failed.
    #[error("channel to sec-mod failed")]
    Channel(#[from] ChannelError),
    /// sec-mod refused to start; its reason.
    #[error("{0}")]
    StartFailed(String),
    /// sec-mod exited (or closed its socket) without answering.
    #[error("sec-mod exited without answering")]
    Exited,
    /// sec-mod did not answer in time.
    #[error("sec-mod did not answer within {0:?}")]
    Timeout(Duration),
    /// sec-mod sent a message that makes no sense at this point.
    #[error("unexpected message from sec-mod")]
    Unexpected,
}

/// A running sec-mod after a successful start.
#[derive(Debug)]
pub struct Started {
    pub client: Arc<SecModClient>,
    pub key: KeyKind,
    pub child: Child,
    /// The kind of each `[vhost:NAME]` key, by name.
    pub vhost_keys: Vec<(String, KeyKind)>,
    /// `auto-select-group`'s list (empty without it).
    pub groups: Vec<String>,
}

/// Spawn `rocserv-sm` with its socket on fd 3 and send it `config`. With `config.check_only`
/// sec-mod exits after answering (the caller waits on `child`).
pub async fn start(config: SecModConfig, log_level: u8) -> Result<Started, SecModError> {
    let (sock, (key, vhost_keys, groups), child) = launch(config, log_level).await?;
    let pid = child.id().unwrap_or(0);
    Ok(Started {
        client: Arc::new(SecModClient::new(sock, pid, REQUEST_TIMEOUT)),
        key,
        child,
        vhost_keys,
        groups,
    })
}

/// Spawn sec-mod and complete the start handshake.
async fn launch(
    config: SecModConfig,
    log_level: u8,
) -> Result<(UnixSeqpacket, Keys, Child), SecModError> {
    let (sock, theirs) = ipc::pair()?;
    let child = spawn_secmod(&theirs, log_level, config.check_only)?;
    drop(theirs);
    match handshake(&sock, config).await {
        Ok(ready) => Ok((sock, ready, child)),
        Err(e) => {
            let mut child = child;
            // It exits by itself after StartFailed; make sure of it and reap it.
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(e)
        }
    }
}

/// Owns the running sec-mod process and restarts it when it dies (`kill -9`, a crash, a
/// seccomp kill), swapping the new process into the shared [`SecModClient`].
#[derive(Debug)]
pub struct Supervisor {
    child: Child,
    config: SecModConfig,
    log_level: u8,
    restarts: Vec<Instant>,
}

impl Supervisor {
    /// Supervise `child`, started with `config` (used again for each restart).
    pub fn new(child: Child, config: SecModConfig, log_level: u8) -> Self {
        Self {
            child,
            config,
            log_level,
            restarts: Vec::new(),
        }
    }

    /// Serve sec-mod's messages (see [`SecModClient::run_reader`]); when the process dies or its
    /// socket fails, reap it and start a new one. Returns only when sec-mod cannot be started
    /// again, or died more than [`MAX_RESTARTS`] times within [`RESTART_WINDOW`]: then main
    /// must stop.
    pub async fn run(
        &mut self,
        client: &SecModClient,
        on_failed_login: impl Fn(IpAddr, u32),
        on_end_session: impl Fn(SessionId, String),
    ) -> SecModError {
        loop {
            let why = tokio::select! {
                err = client.run_reader(&on_failed_login, &on_end_session) => crate::error_chain(&err),
                status = self.child.wait() => match status {
                    Ok(status) => format!("exited: {status}"),
                    Err(e) => format!("wait failed: {e}"),
                },
            };
            client.current().close();
            // Whichever noticed first, make sure the old process is gone and reaped.
            let _ = self.child.start_kill();
            let status = self
                .child
                .wait()
                .await
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            log::error!(
                "sec-mod (pid {}) is gone ({why}; {status}); restarting it: logins in progress \
                 fail, tunnels stay up, cookies issued so far are forgotten",
                client.pid()
            );
            if let Err(e) = self.restart(client).await {
                return e;
            }
        }
    }

    /// Start a new sec-mod and swap it into `client`; a failed start is retried within the
    /// restart budget.
    async fn restart(&mut self, client: &SecModClient) -> Result<(), SecModError> {
        let mut last = SecModError::Exited;
        loop {
            let now = Instant::now();
            self.restarts
                .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
            if self.restarts.len() >= MAX_RESTARTS {
                log::error!("sec-mod was restarted {MAX_RESTARTS} times within {RESTART_WINDOW:?}; giving up");
                return Err(last);
            }
            if !self.restarts.is_empty() {
                tokio::time::sleep(RESTART_PAUSE).await;
            }
            self.restarts.push(Instant::now());
            match launch(self.config.clone(), self.log_level).await {
                // The group list of the first start stays: workers already use it.
                Ok((sock, _ready, child)) => {
                    let pid = child.id().unwrap_or(0);
                    self.child = child;
                    client.replace(sock, pid);
                    log::info!("sec-mod restarted as pid {pid}");
                    return Ok(());
                }
                Err(e) => {
                    log::error!("cannot restart sec-mod: {}", crate::error_chain(&e));
                    last = e;
                }
            }
        }
    }

    /// SIGTERM, a grace period, then SIGKILL; always reaped.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// The path of a sibling binary of the running executable.
pub fn sibling_binary(name: &str) -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "executable has no directory")
    })?;
    Ok(dir.join(name))
}

/// sec-mod's stderr is a pipe main relays (crate::secmod_log); for `rocserv -t`
/// (`check_only`) it goes nowhere: the check's problems come back in `StartFailed`, and its
/// output is only the findings.
fn spawn_secmod(fd: &OwnedFd, log_level: u8, check_only: bool) -> Result<Child, SecModError> {
    let path = sibling_binary("rocserv-sm").map_err(|source| SecModError::Spawn {
        path: "rocserv-sm".to_owned(),
        source,
    })?;
    let mut cmd = Command::new(&path);
    cmd.arg("--log-level")
        .arg(log_level.to_string())
        .env_clear()
        .stdin(Stdio::null())
        // A group of its own: a terminal's Ctrl-C (SIGINT to the foreground process group) is
        // for main, which stops sec-mod as part of its shutdown. In main's group sec-mod died
        // of it first, and main restarted it while shutting down. The parent-death signal still
        // ends it if main is killed.
        .process_group(0)
        .stderr(if check_only {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .kill_on_drop(false);
    if crate::logger::json() {
        cmd.arg("--log-json");
    }
    crate::spawn::inherit_fds(&mut cmd, [fd.as_raw_fd()]);
    let mut child = cmd.spawn().map_err(|source| SecModError::Spawn {
        path: path.display().to_string(),
        source,
    })?;
    if let Some(pipe) = child.stderr.take() {
        let pid = child.id().unwrap_or(0);
        tokio::spawn(crate::secmod_log::relay(pipe, pid));
    }
    Ok(child)
}

/// The default section's key kind, each vhost's, and `auto-select-group`'s list.
type Keys = (KeyKind, Vec<(String, KeyKind)>, Vec<String>);

async fn handshake(sock: &UnixSeqpacket, config: SecModConfig) -> Result<Keys, SecModError> {
    ipc::send(sock, &ToSecMod::Start(config), &[]).await?;
    let mut buf = Box::new([0u8; MAX_MESSAGE]);
    let answer = tokio::time::timeout(START_TIMEOUT, ipc::recv::<FromSecMod>(sock, &mut buf))
        .await
        .map_err(|_| SecModError::Timeout(START_TIMEOUT))??;
    match answer {
        Some(FromSecMod::Ready {
            key,
            vhost_keys,
            groups,
        }) => Ok((key, vhost_keys, groups)),
        Some(FromSecMod::StartFailed { reason }) => Err(SecModError::StartFailed(reason)),
        Some(
            FromSecMod::SessionOpened { .. }
            | FromSecMod::SessionList { .. }
            | FromSecMod::History { .. }
            | FromSecMod::BanPoints { .. }
            | FromSecMod::EndSession { .. }
            | FromSecMod::RunAuthHook(_)
            | FromSecMod::Cluster(_)
            | FromSecMod::ClusterAnswer { .. },
        ) => Err(SecModError::Unexpected),
        None => Err(SecModError::Exited),
    }
}

type SessionAnswer = Result<SessionGrant, SessionRefusal>;

/// Cluster notices kept until main's cluster task takes them ([`SecModClient::set_cluster_sink`]).
const MAX_EARLY_NOTICES: usize = 1024;

/// Where sec-mod's cluster notices go.
#[derive(Debug)]
enum ClusterSink {
    /// Not yet set: kept, at most [`MAX_EARLY_NOTICES`].
    Early(Vec<FromCluster>),
    Set(mpsc::UnboundedSender<FromCluster>),
}

/// The channel to the running sec-mod, shared by all worker tasks; [`Supervisor`] swaps in a
/// new link when sec-mod is restarted.
#[derive(Debug)]
pub struct SecModClient {
    link: Mutex<Arc<Link>>,
    /// One `ListSessions` at a time (occtl); its pages go to the link's `list_pages`.
    listing: tokio::sync::Mutex<()>,
    /// sec-mod's process id (`show status`).
    pid: AtomicU32,
    request_timeout: Duration,
    /// Runs the `script` method's hooks for sec-mod ([`Self::set_hooks`]).
    hooks: std::sync::OnceLock<Arc<crate::auth_hook::Runner>>,
    /// Where sec-mod's cluster notices go ([`Self::set_cluster_sink`]; `crate::cluster`), or
    /// the notices that came before it was set (sec-mod reaches the store as soon as it is
    /// ready, before main's state exists: its first `StoreState{up}` must not be lost).
    cluster_sink: Mutex<ClusterSink>,
    /// Numbers the cluster queries.
    next_query: std::sync::atomic::AtomicU64,
}

/// The socket to one sec-mod process and the requests waiting on it.
#[derive(Debug)]
struct Link {
    sock: UnixSeqpacket,
    /// `None` once the process is gone: nothing waits on a dead link.
    pending: Mutex<Option<HashMap<WorkerId, oneshot::Sender<SessionAnswer>>>>,
    list_pages: Mutex<Option<ListPages>>,
    /// The pages of the `History` being answered (occtl `show history`).
    history_pages: Mutex<Option<HistoryPages>>,
    /// Cluster queries waiting for their answer, by id.
    queries: Mutex<Option<HashMap<u64, oneshot::Sender<ClusterAnswer>>>>,
}

type ListPages = mpsc::UnboundedSender<(Vec<SessionSummary>, bool)>;
type HistoryPages = mpsc::UnboundedSender<(Vec<SessionRecord>, bool, Option<String>)>;

impl Link {
    /// The process is gone: fail everything that waits on it, and what would wait later.
    fn close(&self) {
        *lock(&self.pending) = None;
        *lock(&self.list_pages) = None;
        *lock(&self.history_pages) = None;
        *lock(&self.queries) = None;
    }
}

impl SecModClient {
    fn new(sock: UnixSeqpacket, pid: u32, request_timeout: Duration) -> Self {
        Self {
            link: Mutex::new(Arc::new(Link {
                sock,
                pending: Mutex::new(Some(HashMap::new())),
                list_pages: Mutex::new(None),
                history_pages: Mutex::new(None),
                queries: Mutex::new(Some(HashMap::new())),
            })),
            listing: tokio::sync::Mutex::new(()),
            pid: AtomicU32::new(pid),
            request_timeout,
            hooks: std::sync::OnceLock::new(),
            cluster_sink: Mutex::new(ClusterSink::Early(Vec::new())),
            next_query: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The hooks main may run when sec-mod asks (set once, at start).
    pub fn set_hooks(&self, runner: Arc<crate::auth_hook::Runner>) {
        let _ = self.hooks.set(runner);
    }

    /// Where sec-mod's cluster notices go (set once, at start, when `cluster-store` is set).
    /// The notices that arrived before go to it first, in order.
    pub fn set_cluster_sink(&self, sink: mpsc::UnboundedSender<FromCluster>) {
        let mut slot = lock(&self.cluster_sink);
        if let ClusterSink::Early(early) = &mut *slot {
            for notice in early.drain(..) {
                let _ = sink.send(notice);
            }
        }
        *slot = ClusterSink::Set(sink);
    }

    /// Route one cluster notice from sec-mod.
    fn cluster_notice_in(&self, notice: FromCluster) {
        match &mut *lock(&self.cluster_sink) {
            ClusterSink::Set(sink) => {
                let _ = sink.send(notice);
            }
            ClusterSink::Early(early) if early.len() < MAX_EARLY_NOTICES => early.push(notice),
            ClusterSink::Early(_) => log::warn!("cluster notice dropped before main was ready"),
        }
    }

    /// Send sec-mod a cluster notice.
    pub async fn cluster_notice(&self, notice: ToCluster) -> Result<(), SecModError> {
        ipc::send(&self.current().sock, &ToSecMod::Cluster(notice), &[]).await?;
        Ok(())
    }

    /// Ask sec-mod a cluster question and wait for the answer (bounded by the request
    /// timeout).
    pub async fn cluster_query(&self, query: ClusterQuery) -> Result<ClusterAnswer, SecModError> {
        let link = self.current();
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&link.queries).as_mut() {
            Some(waiting) => waiting.insert(id, tx),
            None => return Err(SecModError::Exited),
        };
        let forget = || {
            if let Some(waiting) = lock(&link.queries).as_mut() {
                waiting.remove(&id);
            }
        };
        if let Err(e) = ipc::send(&link.sock, &ToSecMod::ClusterQuery { id, query }, &[]).await {
            forget();
            return Err(e.into());
        }
        let answer = tokio::time::timeout(self.request_timeout, rx).await;
        forget();
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_closed)) => Err(SecModError::Exited),
            Err(_elapsed) => Err(SecModError::Timeout(self.request_timeout)),
        }
    }

    /// sec-mod's process id (`show status`).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Requests to sec-mod waiting for their answer (`SessionOpen`): the metrics' queue depth.
    pub fn pending(&self) -> usize {
        lock(&self.current().pending)
            .as_ref()
            .map_or(0, HashMap::len)
    }

    fn current(&self) -> Arc<Link> {
        Arc::clone(&lock(&self.link))
    }

    /// A restarted sec-mod: new requests go to `sock`; the old link is closed.
    fn replace(&self, sock: UnixSeqpacket, pid: u32) {
        let new = Arc::new(Link {
            sock,
            pending: Mutex::new(Some(HashMap::new())),
            list_pages: Mutex::new(None),
            history_pages: Mutex::new(None),
            queries: Mutex::new(Some(HashMap::new())),
        });
        let old = std::mem::replace(&mut *lock(&self.link), new);
        old.close();
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Hand sec-mod the sec-mod end of a new worker's socket pair.
    pub async fn new_worker(
        &self,
        worker: WorkerId,
        peer: SocketAddr,
        fd: &OwnedFd,
    ) -> Result<(), SecModError> {
        let msg = ToSecMod::NewWorker { worker, peer };
        ipc::send(&self.current().sock, &msg, &[fd.as_fd()]).await?;
        Ok(())
    }

    /// Ask whether `cookie` names a session; waits for the routed answer. A grant that arrives
    /// after the timeout is closed again by the reader ([`Self::run_reader`]).
    pub async fn session_open(
        &self,
        worker: WorkerId,
        peer: IpAddr,
        cookie: String,
    ) -> Result<SessionAnswer, SecModError> {
        let link = self.current();
        let (tx, rx) = oneshot::channel();
        match lock(&link.pending).as_mut() {
            Some(pending) => pending.insert(worker, tx),
            None => return Err(SecModError::Exited),
        };
        let forget = || {
            if let Some(pending) = lock(&link.pending).as_mut() {
                pending.remove(&worker);
            }
        };
        let sent = ipc::send(
            &link.sock,
            &ToSecMod::SessionOpen {
                worker,
                peer,
                cookie,
            },
            &[],
        )
        .await;
        let answer = match sent {
            Ok(()) => tokio::time::timeout(self.request_timeout, rx).await,
            Err(e) => {
                forget();
                return Err(e.into());
            }
        };
        forget();
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_closed)) => Err(SecModError::Exited),
            Err(_elapsed) => Err(SecModError::Timeout(self.request_timeout)),
        }
    }

    /// The connection of `sid` ended; `end` = how its tunnel ended, if
    /// [`Self::session_started`] was sent for it.
    pub async fn session_close(
        &self,
        sid: SessionId,
        reason: CloseReason,
        end: Option<(WorkerId, TunnelEnd)>,
    ) -> Result<(), SecModError> {
        let msg = ToSecMod::SessionClose { sid, reason, end };
        ipc::send(&self.current().sock, &msg, &[]).await?;
        Ok(())
    }

    /// The tunnel of `sid` served by `worker` is up (accounting starts).
    pub async fn session_started(
        &self,
        sid: SessionId,
        worker: WorkerId,
        tunnel: TunnelFacts,
    ) -> Result<(), SecModError> {
        let msg = ToSecMod::SessionStarted {
            sid,
            worker,
            tunnel,
        };
        ipc::send(&self.current().sock, &msg, &[]).await?;
        Ok(())
    }

    /// The traffic of `worker`'s tunnel of `sid` so far (accounting's interim update).
    pub async fn session_stats(
        &self,
        sid: SessionId,
        worker: WorkerId,
        rx: u64,
        tx: u64,
    ) -> Result<(), SecModError> {
        let msg = ToSecMod::SessionStats {
            sid,
            worker,
            rx,
            tx,
        };
        ipc::send(&self.current().sock, &msg, &[]).await?;
        Ok(())
    }

    /// sec-mod's session table (occtl `show sessions`), all pages.
    pub async fn list_sessions(&self) -> Result<Vec<SessionSummary>, SecModError> {
        let _one_at_a_time = self.listing.lock().await;
        let link = self.current();
        let (tx, mut rx) = mpsc::unbounded_channel();
        *lock(&link.list_pages) = Some(tx);
        let result = async {
            ipc::send(&link.sock, &ToSecMod::ListSessions, &[]).await?;
            let mut all = Vec::new();
            loop {
                match tokio::time::timeout(self.request_timeout, rx.recv()).await {
                    Ok(Some((page, more))) => {
                        all.extend(page);
                        if !more {
                            return Ok(all);
                        }
                    }
                    Ok(None) => return Err(SecModError::Exited),
                    Err(_elapsed) => return Err(SecModError::Timeout(self.request_timeout)),
                }
            }
        }
        .await;
        *lock(&link.list_pages) = None;
        result
    }

    /// The last `limit` session records (of `user`) from sec-mod's session database (occtl
    /// `show history`), all pages; `Ok(Err(why))` when sec-mod has none to give.
    pub async fn history(
        &self,
        user: Option<String>,
        limit: u32,
    ) -> Result<Result<Vec<SessionRecord>, String>, SecModError> {
        let _one_at_a_time = self.listing.lock().await;
        let link = self.current();
        let (tx, mut rx) = mpsc::unbounded_channel();
        *lock(&link.history_pages) = Some(tx);
        let result = async {
            ipc::send(&link.sock, &ToSecMod::History { user, limit }, &[]).await?;
            let mut all = Vec::new();
            loop {
                match tokio::time::timeout(self.request_timeout, rx.recv()).await {
                    Ok(Some((page, more, error))) => {
                        all.extend(page);
                        if let Some(why) = error {
                            return Ok(Err(why));
                        }
                        if !more {
                            return Ok(Ok(all));
                        }
                    }
                    Ok(None) => return Err(SecModError::Exited),
                    Err(_elapsed) => return Err(SecModError::Timeout(self.request_timeout)),
                }
            }
        }
        .await;
        *lock(&link.history_pages) = None;
        result
    }

    /// Read the current sec-mod's messages until it goes away; returns why it stopped. Waiting
    /// requests fail when this returns (their senders are dropped).
    /// `on_failed_login(peer, points)` is called for each failed login sec-mod reports.
    /// `on_end_session(sid, why)` for each session sec-mod wants ended.
    pub async fn run_reader(
        &self,
        on_failed_login: impl Fn(IpAddr, u32),
        on_end_session: impl Fn(SessionId, String),
    ) -> SecModError {
        let link = self.current();
        let mut buf = Box::new([0u8; MAX_MESSAGE]);
        let err = loop {
            match ipc::recv::<FromSecMod>(&link.sock, &mut buf).await {
                Ok(Some(FromSecMod::SessionOpened { worker, result })) => {
                    let waiter = lock(&link.pending).as_mut().and_then(|p| p.remove(&worker));
                    match (waiter, result) {
                        (Some(tx), result) => {
                            let _ = tx.send(result);
                        }
                        (None, Ok(grant)) => {
                            // The CONNECT gave up waiting (and was refused): sec-mod counts a
                            // tunnel that does not exist. Close it, or the session would stay
                            // active, and its cookie valid, for ever.
                            log::warn!(
                                "sec-mod granted session {} to worker {} after main stopped \
                                 waiting; closing it",
                                grant.sid,
                                worker.0
                            );
                            let close = ToSecMod::SessionClose {
                                sid: grant.sid,
                                reason: CloseReason::Temporary,
                                end: None,
                            };
                            if let Err(e) = ipc::send(&link.sock, &close, &[]).await {
                                break SecModError::Channel(e);
                            }
                        }
                        (None, Err(_refusal)) => {
                            log::debug!(
                                "sec-mod refused worker {} after main stopped waiting",
                                worker.0
                            )
                        }
                    }
                }
                Ok(Some(FromSecMod::SessionList { sessions, more })) => {
                    match lock(&link.list_pages).as_ref() {
                        Some(tx) => {
                            let _ = tx.send((sessions, more));
                        }
                        None => log::warn!("sec-mod sent a session list nobody asked for"),
                    }
                }
                Ok(Some(FromSecMod::History {
                    records,
                    more,
                    error,
                })) => match lock(&link.history_pages).as_ref() {
                    Some(tx) => {
                        let _ = tx.send((records, more, error));
                    }
                    None => log::warn!("sec-mod sent a history nobody asked for"),
                },
                Ok(Some(FromSecMod::BanPoints { peer, points })) => on_failed_login(peer, points),
                Ok(Some(FromSecMod::EndSession { sid, why })) => on_end_session(sid, why),
                Ok(Some(FromSecMod::RunAuthHook(run))) => {
                    // Its own task: a hook that takes seconds holds only its own login. The
                    // report goes to the sec-mod that asked (a restarted one has other ids).
                    let runner = self.hooks.get().cloned();
                    let link = Arc::clone(&link);
                    tokio::spawn(async move {
                        let id = run.id;
                        let outcome = match runner {
                            Some(runner) => runner.run(*run).await,
                            None => AuthHookOutcome::Failed {
                                why: "main runs no auth hooks".to_owned(),
                            },
                        };
                        let done = ToSecMod::AuthHookDone { id, outcome };
                        if let Err(e) = ipc::send(&link.sock, &done, &[]).await {
                            log::warn!("cannot report auth hook run {id} to sec-mod: {e}");
                        }
                    });
                }
                Ok(Some(FromSecMod::Cluster(notice))) => self.cluster_notice_in(notice),
                Ok(Some(FromSecMod::ClusterAnswer { id, answer })) => {
                    match lock(&link.queries).as_mut().and_then(|q| q.remove(&id)) {
                        Some(tx) => {
                            let _ = tx.send(answer);
                        }
                        None => log::debug!("late cluster answer {id}"),
                    }
                }
                Ok(Some(FromSecMod::Ready { .. } | FromSecMod::StartFailed { .. })) => {
                    break SecModError::Unexpected
                }
                Ok(None) => break SecModError::Exited,
                Err(e) => break SecModError::Channel(e),
            }
        };
        link.close();
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client on one end of a pair, its reader running; the other end plays sec-mod.
    fn client(timeout: Duration) -> (Arc<SecModClient>, UnixSeqpacket) {
        let (ours, theirs) = UnixSeqpacket::pair().unwrap();
        let client = Arc::new(SecModClient::new(ours, 0, timeout));
        let reader = Arc::clone(&client);
        tokio::spawn(async move { reader.run_reader(|_, _| {}, |_, _| {}).await });
        (client, theirs)
    }

    async fn next(sock: &UnixSeqpacket) -> ToSecMod {
        let mut buf = Box::new([0u8; MAX_MESSAGE]);
        tokio::time::timeout(Duration::from_secs(10), ipc::recv(sock, &mut buf))
            .await
            .expect("sec-mod side got nothing")
            .unwrap()
            .unwrap()
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// sec-mod reaches the store before main's cluster task exists: its first notice
    /// (`StoreState{up}`, which starts the bans' and leases' resync) waits for the sink.
    #[tokio::test]
    async fn cluster_notices_before_the_sink_are_kept() {
        let (client, _secmod) = client(Duration::from_secs(1));
        let up = FromCluster::StoreState { up: true };
        client.cluster_notice_in(up.clone());
        let (tx, mut rx) = mpsc::unbounded_channel();
        client.set_cluster_sink(tx);
        client.cluster_notice_in(FromCluster::StoreState { up: false });
        assert_eq!(rx.try_recv().ok(), Some(up));
        assert_eq!(
            rx.try_recv().ok(),
            Some(FromCluster::StoreState { up: false })
        );
    }

    #[tokio::test]
    async fn a_grant_after_main_gave_up_is_closed_again() {
        let (client, secmod) = client(Duration::from_millis(100));
        let answer = client
            .session_open(WorkerId(7), LOOPBACK, "cookie".into())
            .await;
        assert!(matches!(answer, Err(SecModError::Timeout(_))), "{answer:?}");
        assert!(matches!(
            next(&secmod).await,
            ToSecMod::SessionOpen {
                worker: WorkerId(7),
                ..
            }
        ));
        // sec-mod answers late: it has counted a tunnel that main never made.
        let grant = SessionGrant {
            sid: SessionId(42),
            username: "alice".into(),
            groupname: String::new(),
            age_ms: 0,
            overrides: Default::default(),
            vhost: None,
            facts: Default::default(),
            cert_subject: None,
            cluster_spent: false,
            cluster_store_used_ms: 0,
        };
        let late = FromSecMod::SessionOpened {
            worker: WorkerId(7),
            result: Ok(grant),
        };
        ipc::send(&secmod, &late, &[]).await.unwrap();
        assert_eq!(
            next(&secmod).await,
            ToSecMod::SessionClose {
                sid: SessionId(42),
                reason: CloseReason::Temporary,
                end: None,
            }
        );
    }

    #[tokio::test]
    async fn a_restart_fails_waiting_requests_and_serves_new_ones() {
        let (client, old) = client(Duration::from_secs(10));
        let waiting = {
            let client = Arc::clone(&client);
            tokio::spawn(
                async move { client.session_open(WorkerId(1), LOOPBACK, "c".into()).await },
            )
        };
        assert!(matches!(next(&old).await, ToSecMod::SessionOpen { .. }));
        // The old sec-mod dies; a new one takes its place.
        let (ours, new) = UnixSeqpacket::pair().unwrap();
        drop(old);
        client.replace(ours, 99);
        let reader = Arc::clone(&client);
        tokio::spawn(async move { reader.run_reader(|_, _| {}, |_, _| {}).await });
        let failed = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(failed, Err(SecModError::Exited)), "{failed:?}");
        assert_eq!(client.pid(), 99);
        client
            .session_close(SessionId(5), CloseReason::UserDisconnect, None)
            .await
            .unwrap();
        assert!(matches!(
            next(&new).await,
            ToSecMod::SessionClose {
                sid: SessionId(5),
                ..
            }
        ));
    }
}
