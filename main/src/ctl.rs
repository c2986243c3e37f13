//! The occtl control socket (`use-occtl`, `occtl-socket-file`): a `SOCK_SEQPACKET` listener,
//! mode 0600, that accepts only root peers (`SO_PEERCRED`, as ocserv's main-ctl-unix.c does)
//! and answers `rocserv_proto::ipc::ctl` requests from main's state. Lists go out in pages
//! (`ctl::pages`); `show events` is a subscription that lasts until occtl closes the socket.
//! The socket file is removed when the server stops.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rocserv_proto::config::{Config, Route};
use rocserv_proto::ipc::cluster::{ClusterAnswer, ClusterQuery, ClusterStatus};
use rocserv_proto::ipc::ctl::{
    self, BanInfo, CtlRequest, CtlResponse, Outcome, ServerStatus, SessionFilter, SessionInfo,
    Target, UserFilter, UserInfo,
};
use rocserv_proto::ipc::{CloseReason, SessionId, MAX_MESSAGE};
use rocserv_proto::policy::ports::PortRules;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};

use crate::ipc::{self, ChannelError};
use crate::state::Shared;
use crate::tunnels::Tunnel;

/// ocserv's default `occtl-socket-file` (ocserv src/occtl/ctl.h).
pub const DEFAULT_SOCKET: &str = "/var/run/occtl.socket";

/// The bound socket, before the server state exists.
#[derive(Debug)]
pub struct Bound {
    listener: UnixSeqpacketListener,
    path: PathBuf,
}

/// The serving socket; dropping it stops serving and removes the socket file.
#[derive(Debug)]
pub struct Running {
    task: JoinHandle<()>,
    path: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Bind the socket if `use-occtl` is set (a stale socket file from a crashed run is replaced).
pub fn bind(config: &Config) -> std::io::Result<Option<Bound>> {
    if !config.use_occtl {
        return Ok(None);
    }
    let path = config
        .occtl_socket_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    remove_stale(&path)?;
    let listener = UnixSeqpacketListener::bind(&path)?;
    // Root only; the SO_PEERCRED check below closes the window between bind and chmod.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(Bound { listener, path }))
}

impl Bound {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve occtl connections until the returned handle is dropped.
    pub fn serve(self, shared: Arc<Shared>) -> Running {
        let Self { mut listener, path } = self;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(sock) => {
                        if is_root(&sock) {
                            tokio::spawn(connection(sock, Arc::clone(&shared)));
                        }
                    }
                    Err(e) => {
                        log::error!("occtl socket: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Running { task, path }
    }
}

fn remove_stale(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        Ok(()) | Err(_) => Ok(()),
    }
}

fn is_root(sock: &UnixSeqpacket) -> bool {
    match sock.peer_cred() {
        Ok(cred) if cred.uid() == 0 => true,
        Ok(cred) => {
            log::warn!("occtl socket: refused a connection from uid {}", cred.uid());
            false
        }
        Err(e) => {
            log::warn!("occtl socket: no peer credentials: {e}");
            false
        }
    }
}

/// Serve one occtl connection: requests one after another until it closes.
async fn connection(sock: UnixSeqpacket, shared: Arc<Shared>) {
    let mut buf = Box::new([0u8; MAX_MESSAGE]);
    loop {
        let request = match ipc::recv::<CtlRequest>(&sock, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                log::warn!("occtl socket: {}", crate::error_chain(&e));
                return;
            }
        };
        log::debug!("occtl: {request:?}");
        let served = match request {
            CtlRequest::Events => events(&sock, &shared, &mut buf).await,
            other => answer(&sock, &shared, other).await,
        };
        if let Err(e) = served {
            log::debug!("occtl connection ended: {}", crate::error_chain(&e));
            return;
        }
    }
}

async fn answer(
    sock: &UnixSeqpacket,
    shared: &Shared,
    request: CtlRequest,
) -> Result<(), ChannelError> {
    match request {
        CtlRequest::Status => {
            let mut status = status(shared);
            status.cluster = cluster_status(shared).await;
            ipc::send(sock, &CtlResponse::Status(Box::new(status)), &[]).await
        }
        CtlRequest::Users(filter) => {
            let mut users = local_users(shared, &filter);
            users.extend(remote_users(shared, &filter).await);
            send_pages(sock, users, |users, more| CtlResponse::Users {
                users,
                more,
            })
            .await
        }
        CtlRequest::Sessions(filter) => match sessions(shared, &filter).await {
            Ok(sessions) => {
                send_pages(sock, sessions, |sessions, more| CtlResponse::Sessions {
                    sessions,
                    more,
                })
                .await
            }
            Err(why) => ipc::send(sock, &CtlResponse::Done(Outcome::Failed(why)), &[]).await,
        },
        CtlRequest::History { user, limit } => match shared.secmod.history(user, limit).await {
            Ok(Ok(records)) => {
                send_pages(sock, records, |records, more| CtlResponse::History {
                    records,
                    more,
                })
                .await
            }
            Ok(Err(why)) => ipc::send(sock, &CtlResponse::Done(Outcome::Failed(why)), &[]).await,
            Err(e) => {
                let why = format!("sec-mod: {e}");
                ipc::send(sock, &CtlResponse::Done(Outcome::Failed(why)), &[]).await
            }
        },
        CtlRequest::Bans { points } => {
            let bans = bans(shared, points);
            send_pages(sock, bans, |bans, more| CtlResponse::Bans { bans, more }).await
        }
        CtlRequest::Disconnect(filter) => {
            let done = kick(shared, &matching(shared, &filter));
            let done = match disconnect_target(&filter) {
                Some(target) => forward(shared, target, false, done).await,
                None => done,
            };
            log::info!("occtl: disconnect {filter:?}: {done:?}");
            ipc::send(sock, &CtlResponse::Done(done), &[]).await
        }
        CtlRequest::Terminate(target) => {
            let local = match this_node(shared) {
                Some(node) => rocserv_proto::cluster::view::local_target(&target, node),
                None => Some(target.clone()),
            };
            let done = match &local {
                Some(t) => terminate(shared, t).await,
                None => Outcome::NotFound,
            };
            let done = forward(shared, target.clone(), true, done).await;
            log::info!("occtl: terminate {target:?}: {done:?}");
            ipc::send(sock, &CtlResponse::Done(done), &[]).await
        }
        CtlRequest::Unban(ip) => {
            crate::ban_cluster::unban(shared, ip).await;
            let done = if shared.bans.unban(ip) {
                Outcome::Ok(1)
            } else {
                Outcome::NotFound
            };
            ipc::send(sock, &CtlResponse::Done(done), &[]).await
        }
        CtlRequest::Reload => {
            log::info!("occtl: reload");
            let done = match crate::reload::reload(shared).await {
                Ok(()) => Outcome::Ok(1),
                Err(why) => Outcome::Failed(why),
            };
            ipc::send(sock, &CtlResponse::Done(done), &[]).await
        }
        CtlRequest::Stop => {
            log::info!("occtl: stop now");
            shared.stop.notify_one();
            ipc::send(sock, &CtlResponse::Done(Outcome::Ok(1)), &[]).await
        }
        CtlRequest::Events => Ok(()),
    }
}

/// `show events`: forward connects/disconnects until occtl hangs up.
async fn events(
    sock: &UnixSeqpacket,
    shared: &Shared,
    buf: &mut [u8; MAX_MESSAGE],
) -> Result<(), ChannelError> {
    let mut rx = shared.conns.tunnels.subscribe();
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(event) => {
                    let mut user = user_info(&event.tunnel);
                    user.node = this_node(shared).unwrap_or_default().to_owned();
                    let msg = CtlResponse::Event {
                        connected: event.connected,
                        user: Box::new(user),
                    };
                    ipc::send(sock, &msg, &[]).await?;
                }
                Err(RecvError::Lagged(n)) => log::warn!("occtl events: {n} events dropped"),
                Err(RecvError::Closed) => return Ok(()),
            },
            // Anything occtl sends now, or its hang-up, ends the subscription.
            _ = ipc::recv::<CtlRequest>(sock, buf) => return Ok(()),
        }
    }
}

async fn send_pages<T: Serialize>(
    sock: &UnixSeqpacket,
    items: Vec<T>,
    wrap: impl Fn(Vec<T>, bool) -> CtlResponse,
) -> Result<(), ChannelError> {
    let pages = ctl::pages(items, ctl::PAGE_BUDGET);
    let last = pages.len().saturating_sub(1);
    for (i, page) in pages.into_iter().enumerate() {
        ipc::send(sock, &wrap(page, i < last), &[]).await?;
    }
    Ok(())
}

fn matching(shared: &Shared, filter: &UserFilter) -> Vec<Tunnel> {
    let mut all = shared.conns.tunnels.snapshot();
    all.retain(|t| match filter {
        UserFilter::All => true,
        UserFilter::Name(name) => t.granted.username == *name,
        UserFilter::Id(id) => u64::from(t.pid) == *id,
        UserFilter::NodeId { node, id } => {
            this_node(shared) == Some(node.as_str()) && u64::from(t.pid) == *id
        }
    });
    all
}

/// This node's name when `cluster-store` is set.
fn this_node(shared: &Shared) -> Option<&str> {
    shared.cluster.as_ref().map(|c| c.node.as_str())
}

/// Most pages of other nodes' rows one listing reads (bounds the loop; each page is one
/// sec-mod round trip under its request timeout).
const MAX_REMOTE_PAGES: usize = 1000;

/// This node's connected users matching `filter`, each with this node's name (cluster).
pub(crate) fn local_users(shared: &Shared, filter: &UserFilter) -> Vec<UserInfo> {
    let node = this_node(shared).unwrap_or_default();
    matching(shared, filter)
        .iter()
        .map(|t| {
            let mut u = user_info(t);
            u.node = node.to_owned();
            u
        })
        .collect()
}

/// The other nodes' users matching `filter`, as they last stored them (none without a
/// cluster, or while the store is unreachable: the listing is then this node's).
async fn remote_users(shared: &Shared, filter: &UserFilter) -> Vec<UserInfo> {
    let Some(node) = this_node(shared) else {
        return Vec::new();
    };
    if matches!(filter, UserFilter::NodeId { node: n, .. } if n == node) {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let mut from = 0;
    for _ in 0..MAX_REMOTE_PAGES {
        let query = ClusterQuery::ViewUsers {
            filter: filter.clone(),
            from,
        };
        match shared.secmod.cluster_query(query).await {
            Ok(ClusterAnswer::ViewUsers { users, next }) => {
                rows.extend(users);
                match next {
                    Some(n) if n > from => from = n,
                    _ => break,
                }
            }
            Ok(other) => {
                log::debug!("occtl: the other nodes' users are not listed: {other:?}");
                break;
            }
            Err(e) => {
                log::debug!("occtl: the other nodes' users are not listed: {e}");
                break;
            }
        }
    }
    rows
}

/// The other nodes' sessions, as they last stored them.
async fn remote_sessions(shared: &Shared) -> Vec<SessionInfo> {
    if this_node(shared).is_none() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let mut from = 0;
    for _ in 0..MAX_REMOTE_PAGES {
        match shared
            .secmod
            .cluster_query(ClusterQuery::ViewSessions { from })
            .await
        {
            Ok(ClusterAnswer::ViewSessions { sessions, next }) => {
                rows.extend(sessions);
                match next {
                    Some(n) if n > from => from = n,
                    _ => break,
                }
            }
            Ok(other) => {
                log::debug!("occtl: the other nodes' sessions are not listed: {other:?}");
                break;
            }
            Err(e) => {
                log::debug!("occtl: the other nodes' sessions are not listed: {e}");
                break;
            }
        }
    }
    rows
}

/// `show status`'s cluster part: `None` without `cluster-store`.
async fn cluster_status(shared: &Shared) -> Option<ClusterStatus> {
    let cluster = shared.cluster.as_ref()?;
    Some(
        match shared.secmod.cluster_query(ClusterQuery::Status).await {
            Ok(ClusterAnswer::Status(s)) => s,
            _ => ClusterStatus {
                node: cluster.node.clone(),
                store_up: false,
                nodes: Vec::new(),
            },
        },
    )
}

/// What `disconnect` names on other nodes (a bare id is this node's).
fn disconnect_target(filter: &UserFilter) -> Option<Target> {
    match filter {
        UserFilter::Name(n) => Some(Target::User(n.clone())),
        UserFilter::NodeId { node, id } => Some(Target::NodeId {
            node: node.clone(),
            id: *id,
        }),
        UserFilter::All | UserFilter::Id(_) => None,
    }
}

/// With a cluster, tell the other nodes to end `target` too (doc/cluster.md "One view");
/// `local` is what this node did. The answer names the nodes that listed matching tunnels;
/// without a cluster, or when none did, it is `local` unchanged.
async fn forward(shared: &Shared, target: Target, terminate: bool, local: Outcome) -> Outcome {
    let Some(node) = this_node(shared) else {
        return local;
    };
    if !rocserv_proto::cluster::view::reaches_others(&target, node) {
        return local;
    }
    let nodes = match shared
        .secmod
        .cluster_query(ClusterQuery::End { target, terminate })
        .await
    {
        Ok(ClusterAnswer::Ended { nodes }) => nodes,
        Ok(other) => {
            log::warn!("occtl: the other nodes were not told: {other:?}");
            return local;
        }
        Err(e) => {
            log::warn!("occtl: the other nodes were not told: {e}");
            return local;
        }
    };
    if nodes.is_empty() {
        return local;
    }
    let here = match local {
        Outcome::Ok(n) => n,
        Outcome::Cluster { local, .. } => local,
        Outcome::NotFound | Outcome::Failed(_) => 0,
    };
    Outcome::Cluster { local: here, nodes }
}

/// Another node's order (`crate::cluster_view::on_end`): end `target` here only, as a local
/// occtl command would.
pub(crate) async fn end_here(shared: &Shared, target: &Target, invalidate: bool) -> Outcome {
    if invalidate {
        return terminate(shared, target).await;
    }
    let tunnels = match target {
        Target::User(n) => matching(shared, &UserFilter::Name(n.clone())),
        Target::Id(id) => matching(shared, &UserFilter::Id(*id)),
        Target::Session(p) if !p.is_empty() => shared
            .conns
            .tunnels
            .snapshot()
            .into_iter()
            .filter(|t| t.granted.sid.to_string().starts_with(p.as_str()))
            .collect(),
        Target::Session(_) | Target::NodeId { .. } => Vec::new(),
    };
    kick(shared, &tunnels)
}

/// End each tunnel's connection: `Terminate`, then SIGKILL if the worker does not obey within
/// the bounded wait (`conn::TERMINATE_GRACE`); the session ends as server-terminated.
fn kick(shared: &Shared, tunnels: &[Tunnel]) -> Outcome {
    if tunnels.is_empty() {
        return Outcome::NotFound;
    }
    for t in tunnels {
        shared.conns.terminate(t.worker, crate::conn::Stop::Admin);
    }
    Outcome::Ok(u32::try_from(tunnels.len()).unwrap_or(u32::MAX))
}

/// End the matching tunnels and delete their sessions in sec-mod, so that the cookies cannot
/// reconnect (protocol.md §6.1: terminate always invalidates).
async fn terminate(shared: &Shared, target: &Target) -> Outcome {
    let listed = match shared.secmod.list_sessions().await {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(format!("sec-mod: {e}")),
    };
    let (tunnels, sids): (Vec<Tunnel>, Vec<SessionId>) = match target {
        Target::User(name) => (
            matching(shared, &UserFilter::Name(name.clone())),
            listed
                .iter()
                .filter(|s| s.username == *name)
                .map(|s| s.sid)
                .collect(),
        ),
        Target::Id(id) => {
            let tunnels = matching(shared, &UserFilter::Id(*id));
            let sids = tunnels.iter().map(|t| t.granted.sid).collect();
            (tunnels, sids)
        }
        // Narrowed to this node by the caller (`view::local_target`).
        Target::NodeId { .. } => return Outcome::NotFound,
        Target::Session(prefix) => {
            let sids: Vec<SessionId> = listed
                .iter()
                .map(|s| s.sid)
                .filter(|sid| !prefix.is_empty() && sid.to_string().starts_with(prefix.as_str()))
                .collect();
            if sids.len() > 1 {
                return Outcome::Failed(format!("session prefix '{prefix}' is ambiguous"));
            }
            let tunnels = shared
                .conns
                .tunnels
                .snapshot()
                .into_iter()
                .filter(|t| sids.contains(&t.granted.sid))
                .collect();
            (tunnels, sids)
        }
    };
    if tunnels.is_empty() && sids.is_empty() {
        return Outcome::NotFound;
    }
    for sid in &sids {
        if let Err(e) = shared
            .secmod
            .session_close(*sid, CloseReason::ServerTerminated, None)
            .await
        {
            return Outcome::Failed(format!("sec-mod: {e}"));
        }
    }
    let _ = kick(shared, &tunnels);
    Outcome::Ok(u32::try_from(sids.len().max(tunnels.len())).unwrap_or(u32::MAX))
}

/// `show sessions`: this node's, then (cluster) the other nodes' that this node does not list.
async fn sessions(shared: &Shared, filter: &SessionFilter) -> Result<Vec<SessionInfo>, String> {
    let mut rows = local_sessions(shared, filter).await?;
    for s in remote_sessions(shared).await {
        let wanted = match filter {
            SessionFilter::All | SessionFilter::Valid => true,
            SessionFilter::Prefix(p) => s.session.starts_with(p.as_str()),
        };
        if wanted && !rows.iter().any(|r| r.session == s.session) {
            rows.push(s);
        }
    }
    Ok(rows)
}

/// This node's sessions (sec-mod's), each with this node's name (cluster).
pub(crate) async fn local_sessions(
    shared: &Shared,
    filter: &SessionFilter,
) -> Result<Vec<SessionInfo>, String> {
    let node = this_node(shared).unwrap_or_default().to_owned();
    let mut listed = shared
        .secmod
        .list_sessions()
        .await
        .map_err(|e| format!("sec-mod: {e}"))?;
    listed.sort_by_key(|s| s.created);
    let live = shared.conns.tunnels.snapshot();
    Ok(listed
        .into_iter()
        .map(|s| {
            let tunnel = live.iter().find(|t| t.granted.sid == s.sid);
            SessionInfo {
                session: s.sid.to_string(),
                created: s.created,
                expires: s.expires,
                username: s.username,
                groupname: s.groupname,
                user_agent: tunnel.map_or_else(String::new, |t| t.granted.user_agent.clone()),
                remote_ip: tunnel.map(|t| t.peer.ip()),
                session_is_open: s.opened,
                tls_auth_ok: false,
                in_use: s.in_use,
                node: node.clone(),
            }
        })
        // Every session sec-mod holds completed authentication, so `valid` = `all`.
        .filter(|s| match filter {
            SessionFilter::All | SessionFilter::Valid => true,
            SessionFilter::Prefix(p) => s.session.starts_with(p.as_str()),
        })
        .collect())
}

/// `show ip bans` (banned addresses, with their expiry) or `show ip ban points` (every score).
fn bans(shared: &Shared, points: bool) -> Vec<BanInfo> {
    let banned = shared.bans.bans();
    if !points {
        return banned
            .into_iter()
            .map(|b| BanInfo {
                ip: b.ip,
                score: b.score,
                expires: Some(unix(b.expires)),
            })
            .collect();
    }
    shared
        .bans
        .points()
        .into_iter()
        .map(|(ip, score)| BanInfo {
            ip,
            score,
            expires: banned.iter().find(|b| b.ip == ip).map(|b| unix(b.expires)),
        })
        .collect()
}

pub(crate) fn status(shared: &Shared) -> ServerStatus {
    let totals = shared.conns.tunnels.totals();
    let counters = shared.counters.snapshot();
    // ocserv's "current stats period": what restarts every server-stats-reset-time.
    let period = shared.conns.tunnels.period();
    let closed = period.ended.sessions_closed;
    ServerStatus {
        server_pid: std::process::id(),
        secmod_pid: shared.secmod.pid(),
        up_since: unix(counters.started_at),
        active_sessions: u32::try_from(shared.conns.tunnels.snapshot().len()).unwrap_or(u32::MAX),
        total_sessions: totals.sessions_closed,
        total_auth_failures: counters.auth_failures,
        banned_ips: u32::try_from(shared.bans.bans().len()).unwrap_or(u32::MAX),
        avg_auth_time: 0,
        max_auth_time: 0,
        avg_session_time: period
            .ended
            .session_secs_sum
            .checked_div(closed)
            .unwrap_or(0),
        max_session_time: period.ended.session_secs_max,
        min_mtu: totals.min_mtu,
        max_mtu: totals.max_mtu,
        rx_bytes: period.ended.rx,
        tx_bytes: period.ended.tx,
        last_stats_reset: unix(period.since),
        sessions_handled: closed,
        auth_failures: period.auth_failures,
        cluster: None,
    }
}

pub(crate) fn user_info(t: &Tunnel) -> UserInfo {
    let g = &t.granted;
    let policy = &g.policy;
    // The tun device's counters are exact and current (ocserv reads them over netlink too);
    // the worker's last report is the fallback once the device is gone.
    let (rx, tx) = device_counters(&g.device).unwrap_or((t.rx, t.tx));
    // The worker's last report that passed main's checks (crate::tunnel_state).
    let channels = t.channels.as_ref();
    UserInfo {
        id: u64::from(t.pid),
        username: g.username.clone(),
        groupname: g.groupname.clone(),
        device: g.device.clone(),
        mtu: Some(g.mtu),
        remote_ip: t.peer.ip(),
        local_device_ip: t.local.ip(),
        ipv4: g.ipv4_remote,
        ptp_ipv4: g.ipv4_local,
        user_agent: g.user_agent.clone(),
        rx_bytes: rx.max(t.rx),
        tx_bytes: tx.max(t.tx),
        // Granted at CONNECT (the session's policy then, mobile-dpd for mobile clients), not
        // the configuration after a reload.
        dpd_secs: g.dpd_secs,
        keepalive_secs: policy.keepalive,
        hostname: g.hostname.clone(),
        connected_at: unix(t.connected_at),
        session_started_at: unix(g.session_started),
        session: g.sid.to_string(),
        tls_ciphersuite: channels
            .map(|c| c.tls_ciphersuite.clone())
            .unwrap_or_default(),
        dtls_cipher: channels.map(|c| c.dtls_cipher.clone()).unwrap_or_default(),
        cstp_compression: channels
            .map(|c| c.cstp_compression.clone())
            .unwrap_or_default(),
        dtls_compression: channels
            .map(|c| c.dtls_compression.clone())
            .unwrap_or_default(),
        dns: policy.dns.iter().map(IpAddr::to_string).collect(),
        nbns: policy.nbns.iter().map(IpAddr::to_string).collect(),
        split_dns_domains: policy.split_dns.clone(),
        routes: routes(&policy.routes),
        no_routes: routes(&policy.no_routes),
        iroutes: policy
            .iroutes
            .iter()
            .map(|n| routes(&[Route::Net(*n)]).concat())
            .collect(),
        // restrict-user-to-ports implies it (main/src/firewall.rs).
        restricted_to_routes: crate::firewall::restricts(policy),
        restricted_to_ports: policy
            .restrict_user_to_ports
            .as_ref()
            .map(port_rules)
            .unwrap_or_default(),
        rx_limit_per_sec: policy.rx_data_per_sec,
        tx_limit_per_sec: policy.tx_data_per_sec,
        ipv6: g.ipv6.map(|l| l.remote),
        ptp_ipv6: g.ipv6.map(|l| l.local),
        device_id: g.device_id.clone(),
        device_platform: g.device_platform.clone(),
        macs: g.macs.clone(),
        dtls_in_use: channels.is_some_and(|c| c.dtls_in_use),
        udp_peer: t.udp_peer,
        node: String::new(),
    }
}

/// `restrict-user-to-ports` as ocserv's occtl prints it: `tcp(443)`, `icmp()`, each with `!`
/// in front when the list is negated.
fn port_rules(rules: &PortRules) -> Vec<String> {
    let not = if rules.negated { "!" } else { "" };
    rules
        .rules
        .iter()
        .map(|rule| format!("{not}{rule}"))
        .collect()
}

/// Routes as ocserv prints them: IPv4 `net/netmask`, IPv6 `net/prefix`; `default` (or no
/// route) = an empty list, which occtl shows as `defaultroute`.
fn routes(list: &[Route]) -> Vec<String> {
    if list.contains(&Route::Default) {
        return Vec::new();
    }
    list.iter()
        .filter_map(|r| match r {
            Route::Default => None,
            Route::Net(net) => Some(match net.ipv4_netmask() {
                Some(mask) => format!("{}/{mask}", net.addr),
                None => format!("{}/{}", net.addr, net.prefix),
            }),
        })
        .collect()
}

/// `rx_bytes`/`tx_bytes` of a network device (tun rx = written by the worker = from the client).
fn device_counters(device: &str) -> Option<(u64, u64)> {
    if device.is_empty() || device.contains(['/', '.']) {
        return None;
    }
    let read = |what: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/class/net/{device}/statistics/{what}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((read("rx_bytes")?, read("tx_bytes")?))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::config::IpNet;

    #[test]
    fn routes_print_like_ocserv() {
        let net = |a: &str, p| {
            Route::Net(IpNet {
                addr: a.parse().unwrap(),
                prefix: p,
            })
        };
        assert_eq!(
            routes(&[net("10.99.0.0", 16), net("fd00::", 64)]),
            ["10.99.0.0/255.255.0.0", "fd00::/64"]
        );
        assert!(routes(&[net("10.0.0.0", 8), Route::Default]).is_empty());
    }

    #[test]
    fn device_names_cannot_walk_the_filesystem() {
        assert_eq!(device_counters("../../etc"), None);
        assert_eq!(device_counters(""), None);
    }
}
