//! What all worker tasks share: the configuration, sec-mod's client, the address pool, the
//! table of live worker processes (for shutdown) and of sessions with a live tunnel (so that a
//! second CONNECT with the same cookie takes the session over, protocol.md §6.2).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use rocserv_proto::config::Config;
use rocserv_proto::ipc::{KeyKind, SessionId, WorkerId};
use rocserv_rt::lock;
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
    /// Live tunnels, totals and events for occtl.
    pub tunnels: crate::tunnels::Registry,
    /// occtl `stop now`: the accept loop shuts down like on SIGTERM.
    pub stop: tokio::sync::Notify,
    /// DTLS ids handed out and not yet forgotten -> where their UDP flows go (protocol.md §4.6).
    dtls: Mutex<HashMap<[u8; 32], DtlsRoute>>,
    /// The configuration for new connections (`config` above is the one main started with;
    /// SIGHUP / occtl `reload` swap this one, see [`crate::reload`]).
    pub live: crate::reload::Live,
    /// Ban scores per client address (occtl `show ip bans`, `unban ip`).
    pub bans: crate::ban::BanTable,
    /// Server-wide counters (occtl `show status`).
    pub counters: crate::counters::Counters,
    /// Sessions with a tunnel per user (`max-same-clients`).
    users: Mutex<crate::limits::Users>,
}

/// Where the UDP flow of one DTLS id goes: the worker task that serves its tunnel.
#[derive(Debug, Clone)]
pub struct DtlsRoute {
    pub worker: WorkerId,
    /// Our address of the client's TCP connection: openconnect sends its DTLS to the same
    /// address (protocol.md §2.2 `X-DTLS-Port`), so the per-client UDP socket is bound to it.
    pub local_ip: IpAddr,
    /// The worker task forwards these to its worker as `ToWorker::Udp`.
    pub handover: mpsc::Sender<UdpHandover>,
}

/// A new UDP flow for a worker: the connected socket and the datagram that revealed it.
#[derive(Debug)]
pub struct UdpHandover {
    pub socket: OwnedFd,
    pub first: Vec<u8>,
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
            prepared,
            key,
            log_level,
            secmod,
            pool: Mutex::new(pool),
            workers: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            tunnels: crate::tunnels::Registry::default(),
            stop: tokio::sync::Notify::new(),
            dtls: Mutex::new(HashMap::new()),
            live: crate::reload::Live::new(config.clone()),
            bans: crate::ban::BanTable::new(crate::ban::BanPolicy::from_config(&config)),
            counters: crate::counters::Counters::default(),
            users: Mutex::new(crate::limits::Users::default()),
            config,
        }
    }

    /// Sessions with a tunnel per user (`max-same-clients`).
    pub fn users(&self) -> MutexGuard<'_, crate::limits::Users> {
        lock(&self.users)
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

impl Shared {
    /// Route the UDP flows of DTLS id `id` to `route`.
    pub fn register_dtls(&self, id: [u8; 32], route: DtlsRoute) {
        lock(&self.dtls).insert(id, route);
    }

    /// Forget a DTLS id (its worker ended).
    pub fn forget_dtls(&self, id: &[u8; 32]) {
        lock(&self.dtls).remove(id);
    }

    /// The route of a DTLS id, if it is live.
    pub fn dtls_route(&self, id: &[u8]) -> Option<DtlsRoute> {
        lock(&self.dtls).get(id).cloned()
    }
}
