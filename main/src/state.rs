//! What all worker tasks share: the configuration, sec-mod's client, the address pool, the
//! table of live worker processes (for shutdown) and of sessions with a live tunnel (so that a
//! second CONNECT with the same cookie takes the session over, protocol.md §6.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocserv_proto::config::Config;
use rocserv_proto::ipc::{KeyKind, SessionId, WorkerId};
use tokio::sync::{mpsc, watch};

use crate::ip_pool::IpPool;
use crate::secmod::SecModClient;
use crate::settings::Prepared;

/// Shared by the accept loop and every worker task.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub prepared: Prepared,
    pub key: KeyKind,
    pub log_level: u8,
    pub secmod: Arc<SecModClient>,
    pool: Mutex<Option<IpPool>>,
    workers: Mutex<HashMap<WorkerId, u32>>,
    sessions: Mutex<HashMap<SessionId, Owner>>,
}

/// The worker task currently serving a session's tunnel.
#[derive(Debug, Clone)]
pub struct Owner {
    pub worker: WorkerId,
    /// Asks that task to terminate its worker because a newer connection took over.
    pub takeover: mpsc::Sender<()>,
    /// Becomes true once that task has released everything.
    pub done: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(
        config: Config,
        prepared: Prepared,
        key: KeyKind,
        log_level: u8,
        secmod: Arc<SecModClient>,
    ) -> Self {
        let pool = crate::settings::ip_pool(&config);
        Self {
            config,
            prepared,
            key,
            log_level,
            secmod,
            pool: Mutex::new(pool),
            workers: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The address pool (`None` inside when no ipv4-network is configured).
    pub fn pool(&self) -> MutexGuard<'_, Option<IpPool>> {
        lock(&self.pool)
    }

    /// Live worker processes: id -> pid.
    pub fn workers(&self) -> MutexGuard<'_, HashMap<WorkerId, u32>> {
        lock(&self.workers)
    }

    /// Make `owner` the session's tunnel owner; returns the previous owner, if another worker.
    pub fn claim_session(&self, sid: SessionId, owner: Owner) -> Option<Owner> {
        let me = owner.worker;
        lock(&self.sessions)
            .insert(sid, owner)
            .filter(|old| old.worker != me)
    }

    /// Forget the session's owner if it is still `worker` (a newer owner stays).
    pub fn release_session(&self, sid: SessionId, worker: WorkerId) {
        let mut sessions = lock(&self.sessions);
        if sessions.get(&sid).is_some_and(|o| o.worker == worker) {
            sessions.remove(&sid);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a task panicked while holding the lock; the data stays consistent
    // because no critical section here spans more than one map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
