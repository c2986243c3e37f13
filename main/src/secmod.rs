//! main's side of sec-mod: spawning it, the start handshake, and one shared client whose reader
//! task routes `SessionOpened` answers back to the waiting worker task by [`WorkerId`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocserv_proto::ipc::main_secmod::{
    FromSecMod, SecModConfig, SessionGrant, SessionRefusal, SessionSummary, ToSecMod,
};
use rocserv_proto::ipc::{CloseReason, KeyKind, SessionId, WorkerId, MAX_MESSAGE};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_seqpacket::UnixSeqpacket;

use crate::ipc::{self, ChannelError};

/// How long sec-mod may take to load the key and answer `Start`, and to answer a request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Spawn `rocserv-sm` with its socket on fd 3 and send it `config`. With `config.check_only`
/// sec-mod exits after answering (the caller waits on `child`).
pub async fn start(config: SecModConfig, log_level: u8) -> Result<Started, SecModError> {
    let (sock, theirs) = ipc::pair()?;
    let child = spawn_secmod(&theirs, log_level)?;
    drop(theirs);
    let started = handshake(&sock, config).await;
    let key = match started {
        Ok(key) => key,
        Err(e) => {
            let mut child = child;
            // It exits by itself after StartFailed; make sure of it and reap it.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(e);
        }
    };
    Ok(Started {
        client: Arc::new(SecModClient {
            sock,
            pending: Mutex::new(HashMap::new()),
            listing: tokio::sync::Mutex::new(()),
            list_pages: Mutex::new(None),
            pid: child.id().unwrap_or(0),
        }),
        key,
        child,
    })
}

/// The path of a sibling binary of the running executable.
pub fn sibling_binary(name: &str) -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "executable has no directory")
    })?;
    Ok(dir.join(name))
}

fn spawn_secmod(fd: &OwnedFd, log_level: u8) -> Result<Child, SecModError> {
    let path = sibling_binary("rocserv-sm").map_err(|source| SecModError::Spawn {
        path: "rocserv-sm".to_owned(),
        source,
    })?;
    let mut cmd = Command::new(&path);
    cmd.arg("--log-level")
        .arg(log_level.to_string())
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(false);
    crate::spawn::inherit_fds(&mut cmd, [fd.as_raw_fd()]);
    cmd.spawn().map_err(|source| SecModError::Spawn {
        path: path.display().to_string(),
        source,
    })
}

async fn handshake(sock: &UnixSeqpacket, config: SecModConfig) -> Result<KeyKind, SecModError> {
    ipc::send(sock, &ToSecMod::Start(config), &[]).await?;
    let mut buf = Box::new([0u8; MAX_MESSAGE]);
    let answer = tokio::time::timeout(START_TIMEOUT, ipc::recv::<FromSecMod>(sock, &mut buf))
        .await
        .map_err(|_| SecModError::Timeout(START_TIMEOUT))??;
    match answer {
        Some(FromSecMod::Ready { key }) => Ok(key),
        Some(FromSecMod::StartFailed { reason }) => Err(SecModError::StartFailed(reason)),
        Some(
            FromSecMod::SessionOpened { .. }
            | FromSecMod::SessionList { .. }
            | FromSecMod::BanPoints { .. },
        ) => Err(SecModError::Unexpected),
        None => Err(SecModError::Exited),
    }
}

type SessionAnswer = Result<SessionGrant, SessionRefusal>;

/// The channel to a running sec-mod, shared by all worker tasks.
#[derive(Debug)]
pub struct SecModClient {
    sock: UnixSeqpacket,
    pending: Mutex<HashMap<WorkerId, oneshot::Sender<SessionAnswer>>>,
    /// One `ListSessions` at a time (occtl); its pages go to `list_pages`.
    listing: tokio::sync::Mutex<()>,
    list_pages: Mutex<Option<ListPages>>,
    /// sec-mod's process id (`show status`).
    pub pid: u32,
}

type ListPages = mpsc::UnboundedSender<(Vec<SessionSummary>, bool)>;

impl SecModClient {
    /// Hand sec-mod the sec-mod end of a new worker's socket pair.
    pub async fn new_worker(
        &self,
        worker: WorkerId,
        peer: SocketAddr,
        fd: &OwnedFd,
    ) -> Result<(), SecModError> {
        let msg = ToSecMod::NewWorker { worker, peer };
        ipc::send(&self.sock, &msg, &[fd.as_fd()]).await?;
        Ok(())
    }

    /// Ask whether `cookie` names a session; waits for the routed answer.
    pub async fn session_open(
        &self,
        worker: WorkerId,
        cookie: String,
    ) -> Result<SessionAnswer, SecModError> {
        let (tx, rx) = oneshot::channel();
        self.pending_map().insert(worker, tx);
        let sent = ipc::send(&self.sock, &ToSecMod::SessionOpen { worker, cookie }, &[]).await;
        let answer = match sent {
            Ok(()) => tokio::time::timeout(REQUEST_TIMEOUT, rx).await,
            Err(e) => {
                self.pending_map().remove(&worker);
                return Err(e.into());
            }
        };
        self.pending_map().remove(&worker);
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_closed)) => Err(SecModError::Exited),
            Err(_elapsed) => Err(SecModError::Timeout(REQUEST_TIMEOUT)),
        }
    }

    /// The connection of `sid` ended.
    pub async fn session_close(
        &self,
        sid: SessionId,
        reason: CloseReason,
    ) -> Result<(), SecModError> {
        ipc::send(&self.sock, &ToSecMod::SessionClose { sid, reason }, &[]).await?;
        Ok(())
    }

    /// sec-mod's session table (occtl `show sessions`), all pages.
    pub async fn list_sessions(&self) -> Result<Vec<SessionSummary>, SecModError> {
        let _one_at_a_time = self.listing.lock().await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        *lock(&self.list_pages) = Some(tx);
        let result = async {
            ipc::send(&self.sock, &ToSecMod::ListSessions, &[]).await?;
            let mut all = Vec::new();
            loop {
                match tokio::time::timeout(REQUEST_TIMEOUT, rx.recv()).await {
                    Ok(Some((page, more))) => {
                        all.extend(page);
                        if !more {
                            return Ok(all);
                        }
                    }
                    Ok(None) => return Err(SecModError::Exited),
                    Err(_elapsed) => return Err(SecModError::Timeout(REQUEST_TIMEOUT)),
                }
            }
        }
        .await;
        *lock(&self.list_pages) = None;
        result
    }

    /// Read sec-mod's messages until it goes away; returns why it stopped. Waiting requests
    /// fail when this returns (their senders are dropped).
    /// `on_failed_login(peer, points)` is called for each failed login sec-mod reports.
    pub async fn run_reader(&self, on_failed_login: impl Fn(std::net::IpAddr, u32)) -> SecModError {
        let mut buf = Box::new([0u8; MAX_MESSAGE]);
        let err = loop {
            match ipc::recv::<FromSecMod>(&self.sock, &mut buf).await {
                Ok(Some(FromSecMod::SessionOpened { worker, result })) => {
                    match self.pending_map().remove(&worker) {
                        Some(tx) => {
                            let _ = tx.send(result);
                        }
                        None => {
                            log::warn!("sec-mod answered for worker {} nobody waits for", worker.0)
                        }
                    }
                }
                Ok(Some(FromSecMod::SessionList { sessions, more })) => {
                    match lock(&self.list_pages).as_ref() {
                        Some(tx) => {
                            let _ = tx.send((sessions, more));
                        }
                        None => log::warn!("sec-mod sent a session list nobody asked for"),
                    }
                }
                Ok(Some(FromSecMod::BanPoints { peer, points })) => on_failed_login(peer, points),
                Ok(Some(FromSecMod::Ready { .. } | FromSecMod::StartFailed { .. })) => {
                    break SecModError::Unexpected
                }
                Ok(None) => break SecModError::Exited,
                Err(e) => break SecModError::Channel(e),
            }
        };
        self.pending_map().clear();
        *lock(&self.list_pages) = None;
        err
    }

    fn pending_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<WorkerId, oneshot::Sender<SessionAnswer>>> {
        // A poisoned lock only means another task panicked mid-insert; the map is still valid.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked mid-update of a single value.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
