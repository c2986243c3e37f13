//! What all worker tasks share: the configuration, sec-mod's client, and the live connections
//! with everything they hold (address pool, session owners, DTLS routes, occtl registry; see
//! [`crate::conn`]).

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rocserv_proto::config::Config;
use rocserv_proto::ipc::{KeyKind, WorkerId};
use tokio::sync::mpsc;

use crate::conn::Connections;
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
    /// Every live connection and what it holds (leases, session owners, DTLS routes, occtl's
    /// registry, `max-same-clients`, the pre-auth counts).
    pub conns: Arc<Connections>,
    /// occtl `stop now`: the accept loop shuts down like on SIGTERM.
    pub stop: tokio::sync::Notify,
    /// The configuration for new connections (`config` above is the one main started with;
    /// SIGHUP / occtl `reload` swap this one, see [`crate::reload`]).
    pub live: crate::reload::Live,
    /// Ban scores per client address (occtl `show ip bans`, `unban ip`).
    pub bans: crate::ban::BanTable,
    /// Server-wide counters (occtl `show status`).
    pub counters: crate::counters::Counters,
    /// `cluster-store` (ours): this node's part of the cluster; `None`: a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `server-drain-ms` began: `GET /health` answers 503 (crate::metrics).
    pub draining: std::sync::atomic::AtomicBool,
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
    /// The client's address of the flow (occtl's UDP peer once the worker's session uses it).
    pub peer: std::net::SocketAddr,
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
        let live = crate::reload::Live::new(config.clone());
        live.set_profile(prepared.profile.clone());
        // The node name sec-mod was given (settings::secmod_config chose it once).
        let cluster = prepared
            .secmod
            .cluster
            .as_ref()
            .map(|c| Arc::new(crate::cluster::Cluster::new(c.node.clone())));
        let conns = Arc::new(Connections::new(pool));
        conns.set_file_iroutes(crate::iroutes::from_user_files(&config));
        Self {
            prepared,
            key,
            log_level,
            secmod,
            conns,
            stop: tokio::sync::Notify::new(),
            live,
            bans: crate::ban::BanTable::new(crate::ban::BanPolicy::from_config(&config)),
            counters: crate::counters::Counters::default(),
            cluster,
            config,
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Shared {
    /// The route of a DTLS id, if it is live.
    pub fn dtls_route(&self, id: &[u8]) -> Option<DtlsRoute> {
        self.conns.dtls_route(id)
    }
}
