//! One record per client connection: everything main holds for it, acquired through it and
//! released by it exactly once, keyed by (session, worker).
//!
//! A connection is reserved in the accept loop *before* its worker is spawned ([`reserve`]):
//! `max-clients` and the pre-auth caps (`max-pre-auth-clients`, `max-pre-auth-per-ip`, IPv6
//! counted per /64) are checked and counted under one lock, so no check-then-insert race lets
//! a burst past them. The [`Conn`] it returns is owned by the connection's task; as the
//! connection goes on it takes, through the same record, the tunnel ownership of its session
//! (takeover), a `max-same-clients` slot, the address lease, the DTLS route, the occtl entry,
//! the access rules of its tun device ([`crate::firewall`]) and the sec-mod session reference.
//! [`Conn::release`] (or `Drop`, if the task is torn down) gives all of it back once. Every shared table is keyed so that a release can only remove what this
//! connection put there: a late release of an older connection of the same session (a
//! takeover) leaves the newer one's entries alone.
//!
//! Other tasks reach a connection only through [`Connections::terminate`]: the connection's task
//! sends the worker `Terminate` and kills it if it has not exited within [`TERMINATE_GRACE`]
//! (the worker is assumed compromised: asking is not enough).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rocserv_proto::config::{Config, IpNet};
use rocserv_proto::ipc::cluster::AddressHold;
use rocserv_proto::ipc::{SessionId, WorkerId};
use tokio::sync::{mpsc, watch};

use crate::ip6_pool::{Ip6Leases, Lease6Error};
use crate::ip_pool::{Grant, IpPool, LeaseError, LeaseRequest, Plan};
use crate::iroutes::{Commands, Job};
use crate::limits::Users;
use crate::secmod::SecModClient;
use crate::state::DtlsRoute;
use crate::tunnels::Registry;

/// How long a worker gets to exit after main sent it `Terminate`, before main kills it.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// Why main ends a connection. The connection's task enforces it (`Terminate`, then SIGKILL
/// after [`TERMINATE_GRACE`]); for the session's fate main's reason wins over the worker's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// occtl `disconnect` / `terminate`.
    Admin,
    /// A newer connection of the same session took over.
    Takeover,
    /// No traffic through the tun device for longer than `idle-timeout` (+ grace).
    IdleTimeout,
    /// The session's time is up (`session-timeout`).
    SessionTimeout,
    /// A check of main's found the worker misbehaving (rate limits, validation).
    Violation,
    /// sec-mod asked (`EndSession`: a quota ran out, the RADIUS server said so).
    Policy,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Admin => "disconnected by the administrator",
            Self::Takeover => "taken over by a newer connection",
            Self::IdleTimeout => "idle timeout",
            Self::SessionTimeout => "session timeout",
            Self::Violation => "protocol violation",
            Self::Policy => "ended by policy",
        })
    }
}

/// Why a connection was not reserved (the accept loop closes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// As many connections as `max-clients` are live.
    #[error("max-clients ({0}) reached")]
    MaxClients(u32),
    /// As many connections as `max-pre-auth-clients` have not logged in yet.
    #[error("max-pre-auth-clients ({0}) reached")]
    PreAuthTotal(u32),
    /// As many connections from this address (IPv6: /64) as `max-pre-auth-per-ip` have not
    /// logged in yet.
    #[error("max-pre-auth-per-ip ({0}) reached for this address")]
    PreAuthPerIp(u32),
}

/// The admission limits that apply at accept time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `max-clients`: live connections (0 = no limit).
    pub clients: u32,
    /// `max-pre-auth-clients`: connections not logged in yet (0 = no limit).
    pub pre_auth: u32,
    /// `max-pre-auth-per-ip`: the same per address or IPv6 /64 (0 = no limit).
    pub pre_auth_per_ip: u32,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            clients: config.max_clients,
            pre_auth: config.max_pre_auth_clients,
            pre_auth_per_ip: config.max_pre_auth_per_ip,
        }
    }
}

/// Another connection's hold on a session, as a takeover sees it.
#[derive(Debug, Clone)]
pub struct Prior {
    pub worker: WorkerId,
    /// Becomes true once that connection released everything.
    pub done: watch::Receiver<bool>,
}

/// The live connections and what they hold (one per server, in `state::Shared`).
#[derive(Debug)]
pub struct Connections {
    table: Mutex<Table>,
    /// The address leases of every pool.
    pool: Mutex<IpPool>,
    /// The queue of iroute commands ([`crate::iroutes::run`] serves it).
    route_jobs: mpsc::UnboundedSender<Job>,
    /// The other end, until a runtime task takes it ([`Connections::new`], or a test).
    route_queue: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// `expose-iroutes`: the iroutes of the per-user files (read at start and reload).
    file_iroutes: Mutex<Vec<IpNet>>,
    /// Live tunnels, totals and events for occtl.
    pub tunnels: Registry,
    /// IPv6 leases of every pool (global, group and user `ipv6-network`s).
    ip6: Mutex<Ip6Leases>,
    /// The queue of `cluster-route-add-cmd`/`-del-cmd` (its own task, in order: the removal
    /// of an ending connection runs before the addition of the one that takes over).
    cluster_routes: mpsc::UnboundedSender<Job>,
    /// Told each time a connection stops counting as pre-auth (the accept loop waits on it
    /// while `max-pre-auth-clients` is reached; one stored permit, so no wake-up is lost).
    pre_auth_room: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Table {
    live: HashMap<WorkerId, Entry>,
    /// Session -> the connection serving its tunnel now.
    sessions: HashMap<SessionId, WorkerId>,
    /// DTLS id -> where its UDP flows go.
    dtls: HashMap<[u8; 32], DtlsRoute>,
    /// `max-same-clients`.
    users: Users,
    /// Connections not logged in: in total and per address (IPv6 /64).
    pre_auth_total: u32,
    pre_auth_by_net: HashMap<IpAddr, u32>,
    /// The iroutes applied for each connection (`expose-iroutes`).
    iroutes: HashMap<WorkerId, Vec<IpNet>>,
}

#[derive(Debug)]
struct Entry {
    pid: u32,
    /// Where [`Connections::terminate`] asks the connection's task to end it.
    stop: mpsc::Sender<Stop>,
    done: watch::Receiver<bool>,
    /// The address bucket counted as pre-auth, until the CONNECT was granted.
    pre_auth: Option<IpAddr>,
}

/// The pre-auth bucket of a client address: the address itself, or its /64 for IPv6 (one
/// subscriber usually has a whole /64).
pub fn net_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

impl Connections {
    /// Inside a tokio runtime the iroute queue is served at once; outside one (unit tests)
    /// the jobs wait in [`Self::take_route_queue`].
    pub fn new(pool: IpPool) -> Self {
        let (route_jobs, queue) = mpsc::unbounded_channel();
        let (cluster_routes, cluster_queue) = mpsc::unbounded_channel();
        let queue = match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(crate::iroutes::run(queue));
                rt.spawn(crate::iroutes::run(cluster_queue));
                None
            }
            Err(_) => Some(queue),
        };
        Self {
            table: Mutex::new(Table::default()),
            pool: Mutex::new(pool),
            route_jobs,
            route_queue: Mutex::new(queue),
            file_iroutes: Mutex::new(Vec::new()),
            tunnels: Registry::default(),
            ip6: Mutex::new(Ip6Leases::new(ip6_seed())),
            cluster_routes,
            pre_auth_room: tokio::sync::Notify::new(),
        }
    }

    /// The IPv6 leases.
    pub fn ip6(&self) -> MutexGuard<'_, Ip6Leases> {
        rocserv_rt::lock(&self.ip6)
    }

    /// The address leases.
    pub fn pool(&self) -> MutexGuard<'_, IpPool> {
        rocserv_rt::lock(&self.pool)
    }

    /// The iroute queue, if no task serves it yet (tests).
    pub fn take_route_queue(&self) -> Option<mpsc::UnboundedReceiver<Job>> {
        rocserv_rt::lock(&self.route_queue).take()
    }

    /// The iroutes of the per-user files ([`crate::iroutes::from_user_files`]).
    pub fn set_file_iroutes(&self, nets: Vec<IpNet>) {
        *rocserv_rt::lock(&self.file_iroutes) = nets;
    }

    /// For `expose-iroutes`: the iroutes of the per-user files (as ocserv) and of every
    /// connection that has them applied, but `except`'s own, each once, in a stable order.
    pub fn known_iroutes(&self, except: &[IpNet]) -> Vec<IpNet> {
        let files = rocserv_rt::lock(&self.file_iroutes).clone();
        let table = self.lock();
        let mut all: Vec<IpNet> = table
            .iroutes
            .values()
            .flatten()
            .chain(files.iter())
            .filter(|n| !except.contains(n))
            .copied()
            .collect();
        all.sort_by_key(|n| (n.addr, n.prefix));
        all.dedup();
        all
    }

    /// The iroutes applied for connection `worker` (occtl).
    pub fn iroutes_of(&self, worker: WorkerId) -> Vec<IpNet> {
        self.lock()
            .iroutes
            .get(&worker)
            .cloned()
            .unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table consistent (no await, no early return
        // between related updates), so a poisoned lock still guards consistent data.
        rocserv_rt::lock(&self.table)
    }

    /// Live connections (spawned or about to be).
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections not logged in yet.
    pub fn pre_auth(&self) -> u32 {
        self.lock().pre_auth_total
    }

    /// Whether `max-pre-auth-clients` (`limit`, 0 = none) is reached: the accept loop then leaves
    /// new connections in the listen backlog instead of refusing them.
    pub fn pre_auth_full(&self, limit: u32) -> bool {
        limit > 0 && self.pre_auth() >= limit
    }

    /// Completes once a connection stopped counting as pre-auth since the last call (or now,
    /// if one did already).
    pub async fn pre_auth_room(&self) {
        self.pre_auth_room.notified().await;
    }

    /// Process ids of every live worker (0 = not spawned yet).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().live.values().map(|e| e.pid).collect()
    }

    /// The worker's process id (occtl's ID), if the connection is live.
    pub fn pid(&self, worker: WorkerId) -> Option<u32> {
        self.lock().live.get(&worker).map(|e| e.pid)
    }

    /// End connection `worker` for `why`: its task sends `Terminate` and kills the worker if it
    /// has not exited within [`TERMINATE_GRACE`]. `false` when no such connection is live.
    pub fn terminate(&self, worker: WorkerId, why: Stop) -> bool {
        let Some(stop) = self.lock().live.get(&worker).map(|e| e.stop.clone()) else {
            return false;
        };
        // A full queue means a stop is already on its way; the first reason stands.
        let _ = stop.try_send(why);
        true
    }

    /// The worker holding the tunnel of `sid`, if one does.
    pub fn worker_of_session(&self, sid: SessionId) -> Option<WorkerId> {
        self.lock().sessions.get(&sid).copied()
    }

    /// The route of a DTLS id, if it is live.
    pub fn dtls_route(&self, id: &[u8]) -> Option<DtlsRoute> {
        self.lock().dtls.get(id).cloned()
    }

    /// Sessions of `user` with a tunnel now (`max-same-clients`).
    pub fn sessions_of(&self, user: &str) -> usize {
        self.lock().users.sessions_of(user)
    }
}

/// Reserve a connection for a client at `peer` before its worker is spawned. The returned
/// record goes to the connection's task; the receiver is where [`Connections::terminate`]
/// requests arrive.
pub fn reserve(
    conns: &Arc<Connections>,
    worker: WorkerId,
    peer: IpAddr,
    limits: Limits,
) -> Result<(Conn, mpsc::Receiver<Stop>), Refused> {
    let net = net_of(peer);
    let mut table = conns.lock();
    if limits.clients > 0 && table.live.len() >= limits.clients as usize {
        return Err(Refused::MaxClients(limits.clients));
    }
    if limits.pre_auth > 0 && table.pre_auth_total >= limits.pre_auth {
        return Err(Refused::PreAuthTotal(limits.pre_auth));
    }
    let from_net = table.pre_auth_by_net.get(&net).copied().unwrap_or(0);
    if limits.pre_auth_per_ip > 0 && from_net >= limits.pre_auth_per_ip {
        return Err(Refused::PreAuthPerIp(limits.pre_auth_per_ip));
    }
    // Small: a stop request is a signal, and the first one decides.
    let (stop, stops) = mpsc::channel(1);
    let (done_tx, done) = watch::channel(false);
    table.pre_auth_total = table.pre_auth_total.saturating_add(1);
    table
        .pre_auth_by_net
        .insert(net, from_net.saturating_add(1));
    table.live.insert(
        worker,
        Entry {
            pid: 0,
            stop,
            done,
            pre_auth: Some(net),
        },
    );
    drop(table);
    let conn = Conn {
        conns: Arc::clone(conns),
        worker,
        done: done_tx,
        holds: Holds::default(),
        released: false,
        session_until: None,
    };
    Ok((conn, stops))
}

/// What a connection holds besides its entry (each set when taken, cleared when given back).
#[derive(Debug, Default)]
struct Holds {
    /// It is the session's tunnel owner in `sessions`.
    session: Option<SessionId>,
    /// A `max-same-clients` slot.
    user: Option<(String, SessionId)>,
    /// An address lease of this session (held by this worker in the pool).
    lease: Option<SessionId>,
    /// An IPv6 lease of this session.
    lease6: Option<SessionId>,
    /// `route-del-cmd` of each iroute queued for addition (run at release).
    iroutes_del: Vec<Vec<String>>,
    /// A DTLS id routed to it.
    dtls: Option<[u8; 32]>,
    /// An occtl registry entry.
    tunnel: bool,
    /// sec-mod opened the session for it (sec-mod must hear `SessionClose` once).
    secmod: Option<(SessionId, Arc<SecModClient>)>,
    /// Access rules on its tun device (`restrict-user-to-*`), taken out on release.
    firewall: Option<crate::firewall::Installed>,
    /// Its address lease in the cluster store (released there too).
    shared_lease: Option<(AddressHold, Arc<SecModClient>)>,
    /// `cluster-route-del-cmd` for its address on its device (run at release).
    cluster_route_del: Option<Vec<String>>,
}

/// One live connection: owns what main holds for it (see the module doc).
#[derive(Debug)]
pub struct Conn {
    conns: Arc<Connections>,
    worker: WorkerId,
    done: watch::Sender<bool>,
    holds: Holds,
    released: bool,
    /// When main ends the session whatever the worker says (`session-timeout` backstop).
    session_until: Option<Instant>,
}

impl Conn {
    /// main ends the connection at `at` ([`Stop::SessionTimeout`]) unless an earlier deadline
    /// is set already.
    pub fn set_session_deadline(&mut self, at: Instant) {
        self.session_until = Some(self.session_until.map_or(at, |t| t.min(at)));
    }

    /// When main ends the session, if it does.
    pub fn session_deadline(&self) -> Option<Instant> {
        self.session_until
    }

    /// The deadline fired (the stop is under way).
    pub fn clear_session_deadline(&mut self) {
        self.session_until = None;
    }

    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The worker's process id (0 before [`Self::spawned`]).
    pub fn pid(&self) -> u32 {
        self.conns.pid(self.worker).unwrap_or(0)
    }

    /// The worker process runs as `pid`.
    pub fn spawned(&self, pid: u32) {
        if let Some(e) = self.conns.lock().live.get_mut(&self.worker) {
            e.pid = pid;
        }
    }

    /// `secmod` opened session `sid` for this connection.
    pub fn opened(&mut self, sid: SessionId, secmod: Arc<SecModClient>) {
        self.holds.secmod = Some((sid, secmod));
    }

    /// Logged in (its CONNECT is granted): it no longer counts against the pre-auth caps.
    pub fn logged_in(&self) {
        let mut table = self.conns.lock();
        if leave_pre_auth(&mut table, self.worker) {
            self.conns.pre_auth_room.notify_one();
        }
    }

    /// Whether the connection still counts as not logged in.
    pub fn is_pre_auth(&self) -> bool {
        self.conns
            .lock()
            .live
            .get(&self.worker)
            .is_some_and(|e| e.pre_auth.is_some())
    }

    /// `max-same-clients`: take a slot for `user`'s session `sid`, unless the user already has
    /// `max` other sessions with a tunnel (0 = unlimited).
    pub fn admit_user(&mut self, user: &str, sid: SessionId, max: u32) -> bool {
        if self.holds.user.is_some() {
            return true;
        }
        let admitted = self.conns.lock().users.admit(user, sid, max);
        if admitted {
            self.holds.user = Some((user.to_owned(), sid));
        }
        admitted
    }

    /// This node's sessions of `user` admitted by `max-same-clients` (a tunnel, or a CONNECT
    /// on its way to one).
    pub fn user_sessions(&self, user: &str) -> Vec<SessionId> {
        self.conns.lock().users.session_ids(user)
    }

    /// Become the tunnel owner of session `sid`; returns the connection that owned it, if
    /// another one (the caller takes it over and waits for its [`Prior::done`]).
    pub fn claim_session(&mut self, sid: SessionId) -> Option<Prior> {
        let mut table = self.conns.lock();
        let old = table.sessions.insert(sid, self.worker);
        self.holds.session = Some(sid);
        let old = old.filter(|w| *w != self.worker)?;
        let done = table.live.get(&old).map(|e| e.done.clone())?;
        Some(Prior { worker: old, done })
    }

    /// Lease an address for session `sid` of `user` as `req` (the session's pool or fixed
    /// address) asks.
    pub fn lease(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        user: &str,
    ) -> Result<Grant, LeaseError> {
        let grant = self
            .conns
            .pool()
            .lease(req, sid, self.worker, user, Instant::now())?;
        self.holds.lease = Some(sid);
        Ok(grant)
    }

    /// The addresses an address lease for session `sid` may get ([`IpPool::plan`]), skipping
    /// those held on other nodes.
    pub fn plan_lease(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        user: &str,
        skip: &std::collections::HashSet<std::net::Ipv4Addr>,
        max: usize,
    ) -> Result<Plan, LeaseError> {
        self.conns
            .pool()
            .plan(req, sid, self.worker, user, Instant::now(), skip, max)
    }

    /// Take `addr` (the cluster granted it) as the lease of session `sid` ([`IpPool::take`]).
    pub fn take_lease(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        user: &str,
        addr: std::net::Ipv4Addr,
    ) -> Result<Grant, LeaseError> {
        let grant = self
            .conns
            .pool()
            .take(req, sid, self.worker, user, addr, Instant::now())?;
        self.holds.lease = Some(sid);
        Ok(grant)
    }

    /// The lease is recorded in the cluster store too: released there at release.
    pub fn shared_lease(&mut self, hold: AddressHold, secmod: Arc<SecModClient>) {
        self.holds.shared_lease = Some((hold, secmod));
    }

    /// This node serves the connection's address now: run `add` (in the background, after any
    /// removal queued before it) and `del` at release.
    pub fn cluster_route(&mut self, add: Option<Vec<String>>, del: Option<Vec<String>>) {
        if let Some(argv) = add {
            let _ = self.conns.cluster_routes.send(Job { argv, done: None });
        }
        self.holds.cluster_route_del = del;
    }

    /// Add the iroutes `nets` (`cmds`, built for this connection's device): `false` (logged by
    /// the runner) when one failed, after the ones added before it are queued for removal
    /// again, as ocserv does (not the failed one: its route may be another session's, and a
    /// custom `route-del-cmd` without `%{D}` would remove that). Otherwise each removal runs
    /// when the record releases.
    pub async fn add_iroutes(&mut self, nets: &[IpNet], cmds: Commands) -> bool {
        let mut ok = true;
        for (add, del) in cmds.add.into_iter().zip(cmds.del) {
            // Recorded first: if this task is torn down while the command runs, the release
            // still removes the route.
            self.holds.iroutes_del.push(del);
            let (done, result) = tokio::sync::oneshot::channel();
            let queued = self.conns.route_jobs.send(Job {
                argv: add,
                done: Some(done),
            });
            if queued.is_err() || !result.await.unwrap_or(false) {
                self.holds.iroutes_del.pop();
                ok = false;
                break;
            }
        }
        if ok {
            self.conns.lock().iroutes.insert(self.worker, nets.to_vec());
        } else {
            self.remove_iroutes();
        }
        ok
    }

    /// Queue the removal of every iroute this connection added (or tried to).
    fn remove_iroutes(&mut self) {
        for argv in std::mem::take(&mut self.holds.iroutes_del) {
            // The queue lives as long as `Connections`; a send error means no task will ever
            // run it (shutdown).
            let _ = self.conns.route_jobs.send(Job { argv, done: None });
        }
        self.conns.lock().iroutes.remove(&self.worker);
    }

    /// Lease an IPv6 address (and subnet) for the session `req.sid` (the request's worker is
    /// this connection's).
    pub fn lease6(
        &mut self,
        req: &crate::ip6_pool::Request<'_>,
    ) -> Result<rocserv_proto::ipc::main_worker::Ipv6Link, Lease6Error> {
        let req = crate::ip6_pool::Request {
            worker: self.worker,
            ..*req
        };
        let link = self.conns.ip6().lease(&req, Instant::now())?;
        self.holds.lease6 = Some(req.sid);
        Ok(link)
    }

    /// Give the IPv6 lease back at once (the tunnel will not use it after all).
    pub fn drop_lease6(&mut self) {
        if let Some(sid) = self.holds.lease6.take() {
            self.conns.ip6().release(sid, self.worker, None);
        }
    }

    /// Route the UDP flows of DTLS id `id` to this connection.
    pub fn register_dtls(&mut self, id: [u8; 32], route: DtlsRoute) {
        self.conns.lock().dtls.insert(id, route);
        self.holds.dtls = Some(id);
    }

    /// The DTLS id is not used after all (the grant could not be sent).
    pub fn forget_dtls(&mut self) {
        if let Some(id) = self.holds.dtls.take() {
            forget_dtls(&mut self.conns.lock(), &id, self.worker);
        }
    }

    /// The access rules of its tun device are in place.
    pub fn firewalled(&mut self, installed: crate::firewall::Installed) {
        self.holds.firewall = Some(installed);
    }

    /// Show the tunnel to occtl.
    pub fn register_tunnel(&mut self, tunnel: crate::tunnels::Tunnel) {
        self.conns.tunnels.insert(tunnel);
        self.holds.tunnel = true;
    }

    /// Give back everything (once; later calls do nothing). `keep_until` is how long the
    /// session keeps its address for a reconnect (`None` = freed now); `rx`/`tx` go into
    /// occtl's totals. Returns the session sec-mod must now be told about (`SessionClose`).
    pub fn release(
        &mut self,
        keep_until: Option<Instant>,
        rx: u64,
        tx: u64,
    ) -> Option<(SessionId, Arc<SecModClient>)> {
        if self.released {
            return None;
        }
        self.released = true;
        // Queued before `done` below: a takeover's own additions come after these removals.
        self.remove_iroutes();
        let worker = self.worker;
        let holds = std::mem::take(&mut self.holds);
        if holds.tunnel {
            self.conns.tunnels.remove(worker, rx, tx);
        }
        // The device is gone or going (its worker exited): its rules go too.
        if let Some(installed) = holds.firewall {
            crate::firewall::remove(installed);
        }
        if let Some(sid) = holds.lease {
            self.conns.pool().release(sid, worker, keep_until);
        }
        if let Some(argv) = holds.cluster_route_del {
            let _ = self.conns.cluster_routes.send(Job { argv, done: None });
        }
        if let Some((hold, secmod)) = holds.shared_lease {
            crate::cluster_leases::release(hold, secmod, keep_until);
        }
        if let Some(sid) = holds.lease6 {
            self.conns.ip6().release(sid, worker, keep_until);
        }
        {
            let mut table = self.conns.lock();
            if leave_pre_auth(&mut table, worker) {
                self.conns.pre_auth_room.notify_one();
            }
            table.live.remove(&worker);
            if let Some(sid) = holds.session {
                if table.sessions.get(&sid) == Some(&worker) {
                    table.sessions.remove(&sid);
                }
            }
            if let Some(id) = holds.dtls {
                forget_dtls(&mut table, &id, worker);
            }
            if let Some((user, sid)) = holds.user {
                table.users.close(&user, sid);
            }
            table.shrink();
        }
        // A takeover waiting for this connection may lease now.
        let _ = self.done.send(true);
        holds.secmod
    }
}

impl Drop for Conn {
    /// The task was torn down before it released (shutdown, a panic): give everything back;
    /// sec-mod hears of it in a task of its own, if a runtime is still there.
    fn drop(&mut self) {
        if let Some((sid, secmod)) = self.release(None, 0, 0) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = secmod
                        .session_close(sid, rocserv_proto::ipc::CloseReason::Temporary, None)
                        .await;
                });
            }
        }
    }
}

/// The secret seed of the IPv6 candidates (not security-critical: it only makes the addresses
/// of clients without `predictable-ips` hard to guess, as ocserv's random ones are).
fn ip6_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).is_err() {
        log::warn!("no randomness for the IPv6 lease seed; addresses are predictable");
    }
    seed
}

impl Table {
    /// After a burst: the maps keep their largest size otherwise ([`rocserv_rt::memory::shrink_map`]).
    fn shrink(&mut self) {
        use rocserv_rt::memory::shrink_map;
        shrink_map(&mut self.live);
        shrink_map(&mut self.sessions);
        shrink_map(&mut self.dtls);
        shrink_map(&mut self.pre_auth_by_net);
        shrink_map(&mut self.iroutes);
    }
}

/// `true` when `worker` counted as pre-auth until now.
fn leave_pre_auth(table: &mut Table, worker: WorkerId) -> bool {
    let Some(net) = table.live.get_mut(&worker).and_then(|e| e.pre_auth.take()) else {
        return false;
    };
    table.pre_auth_total = table.pre_auth_total.saturating_sub(1);
    if let Some(n) = table.pre_auth_by_net.get_mut(&net) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            table.pre_auth_by_net.remove(&net);
        }
    }
    true
}

fn forget_dtls(table: &mut Table, id: &[u8; 32], worker: WorkerId) {
    if table.dtls.get(id).is_some_and(|r| r.worker == worker) {
        table.dtls.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns() -> Arc<Connections> {
        Arc::new(Connections::new(IpPool::new(false)))
    }

    fn req() -> LeaseRequest {
        let policy = rocserv_proto::policy::Policy {
            ipv4_network: Some(IpNet {
                addr: "10.77.0.0".parse().unwrap(),
                prefix: 24,
            }),
            ..Default::default()
        };
        LeaseRequest::from_policy(&policy).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const OPEN: Limits = Limits {
        clients: 0,
        pre_auth: 0,
        pre_auth_per_ip: 0,
    };

    fn route(worker: WorkerId) -> DtlsRoute {
        DtlsRoute {
            worker,
            local_ip: ip("10.0.0.1"),
            handover: mpsc::channel(1).0,
        }
    }

    #[test]
    fn pre_auth_caps_count_per_address_and_v6_slash_64_and_free_at_login() {
        let c = conns();
        let limits = Limits {
            clients: 0,
            pre_auth: 3,
            pre_auth_per_ip: 2,
        };
        let (a1, _s1) = reserve(&c, WorkerId(1), ip("192.0.2.1"), limits).unwrap();
        let (_a2, _s2) = reserve(&c, WorkerId(2), ip("192.0.2.1"), limits).unwrap();
        assert_eq!(
            reserve(&c, WorkerId(3), ip("192.0.2.1"), limits).unwrap_err(),
            Refused::PreAuthPerIp(2)
        );
        // A v4-mapped address is the same client.
        assert_eq!(
            reserve(&c, WorkerId(3), ip("::ffff:192.0.2.1"), limits).unwrap_err(),
            Refused::PreAuthPerIp(2)
        );
        let (_b1, _s3) = reserve(&c, WorkerId(4), ip("2001:db8::1"), limits).unwrap();
        assert_eq!(
            reserve(&c, WorkerId(5), ip("192.0.2.9"), limits).unwrap_err(),
            Refused::PreAuthTotal(3)
        );
        assert_eq!(c.pre_auth(), 3);
        // Logging in frees the pre-auth slot (not the connection).
        a1.logged_in();
        assert!(!a1.is_pre_auth());
        assert_eq!(c.pre_auth(), 2);
        let (_a3, _s4) = reserve(&c, WorkerId(6), ip("192.0.2.1"), limits).unwrap();
        // The same /64 is one bucket; another /64 is not.
        let limits = Limits {
            pre_auth: 0,
            ..limits
        };
        let (_b2, _s5) = reserve(&c, WorkerId(7), ip("2001:db8::ffff:1"), limits).unwrap();
        assert_eq!(
            reserve(&c, WorkerId(8), ip("2001:db8:0:0:1::2"), limits).unwrap_err(),
            Refused::PreAuthPerIp(2)
        );
        let (_b3, _s6) = reserve(&c, WorkerId(9), ip("2001:db8:0:1::1"), limits).unwrap();
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn max_clients_counts_every_live_connection() {
        let c = conns();
        let limits = Limits { clients: 2, ..OPEN };
        let (mut a, _sa) = reserve(&c, WorkerId(1), ip("192.0.2.1"), limits).unwrap();
        a.logged_in();
        let (_b, _sb) = reserve(&c, WorkerId(2), ip("192.0.2.2"), limits).unwrap();
        assert_eq!(
            reserve(&c, WorkerId(3), ip("192.0.2.3"), limits).unwrap_err(),
            Refused::MaxClients(2)
        );
        a.release(None, 0, 0);
        assert!(reserve(&c, WorkerId(3), ip("192.0.2.3"), limits).is_ok());
    }

    /// A session's network (a vhost's, a group's) is a pool of its own in the one table;
    /// release finds the lease whatever pool it came from.
    #[test]
    fn each_sessions_network_is_its_pool() {
        let c = conns();
        let net = |a: &str| rocserv_proto::policy::Policy {
            ipv4_network: Some(IpNet {
                addr: a.parse().unwrap(),
                prefix: 24,
            }),
            ..Default::default()
        };
        let b = LeaseRequest::from_policy(&net("10.88.0.0")).unwrap();
        let (mut a, _sa) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
        let g = a.lease(&b, SessionId(1), "bob").unwrap();
        assert_eq!(g.local, "10.88.0.1".parse::<std::net::Ipv4Addr>().unwrap());
        assert_eq!(g.remote.octets()[..3], [10, 88, 0]);
        let (mut d, _sd) = reserve(&c, WorkerId(2), ip("192.0.2.2"), OPEN).unwrap();
        let g = d.lease(&req(), SessionId(2), "alice").unwrap();
        assert_eq!(g.remote.octets()[..3], [10, 77, 0]);
        assert_eq!(c.pool().held(), 2);
        a.release(None, 0, 0);
        d.release(None, 0, 0);
        assert_eq!(c.pool().held(), 0);
    }

    #[test]
    fn release_gives_everything_back_once() {
        let c = conns();
        let (mut a, _s) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
        let sid = SessionId(7);
        assert!(a.claim_session(sid).is_none());
        assert!(a.admit_user("alice", sid, 1));
        let addr = a.lease(&req(), sid, "alice").unwrap().remote;
        a.register_dtls([1; 32], route(WorkerId(1)));
        assert_eq!(c.sessions_of("alice"), 1);
        assert!(c.dtls_route(&[1; 32]).is_some());
        let mut done = c.lock().live.get(&WorkerId(1)).unwrap().done.clone();

        a.release(None, 0, 0);
        assert!(*done.borrow_and_update());
        assert!(c.is_empty());
        assert_eq!(c.pre_auth(), 0);
        assert_eq!(c.sessions_of("alice"), 0);
        assert!(c.dtls_route(&[1; 32]).is_none());
        assert_eq!(c.pool().held(), 0);
        // Once: a second release (and the drop) change nothing, even for a newcomer.
        let (mut b, _s) = reserve(&c, WorkerId(2), ip("192.0.2.1"), OPEN).unwrap();
        assert!(b.admit_user("alice", SessionId(8), 1));
        assert_eq!(b.lease(&req(), SessionId(8), "alice").unwrap().remote, addr);
        a.release(None, 0, 0);
        drop(a);
        assert_eq!(c.sessions_of("alice"), 1);
        assert_eq!(c.pool().holder(addr), Some("alice"));
        assert_eq!(c.len(), 1);
    }

    /// After a burst every per-connection record is gone and the tables shrank back.
    #[test]
    fn a_burst_leaves_no_record_and_small_tables() {
        let c = conns();
        let mut held = Vec::new();
        for i in 0..1000u16 {
            let worker = WorkerId(u64::from(i));
            let [hi, lo] = i.to_be_bytes();
            let peer = IpAddr::from([192, 0, hi, lo]);
            let (mut a, s) = reserve(&c, worker, peer, OPEN).unwrap();
            let sid = SessionId(u64::from(i));
            assert!(a.claim_session(sid).is_none());
            assert!(a.admit_user(&format!("u{}", i % 300), sid, 0));
            let mut id = [0u8; 32];
            id[..2].copy_from_slice(&[hi, lo]);
            a.register_dtls(id, route(worker));
            held.push((a, s));
        }
        let peak = c.lock().live.capacity();
        assert!(peak >= 1000);
        for (mut a, _s) in held {
            a.release(None, 0, 0);
        }
        assert_eq!(c.sessions_of("u1"), 0);
        let t = c.lock();
        assert!(t.live.is_empty() && t.sessions.is_empty() && t.dtls.is_empty());
        assert!(t.pre_auth_by_net.is_empty() && t.iroutes.is_empty());
        assert_eq!(t.pre_auth_total, 0);
        for cap in [
            t.live.capacity(),
            t.sessions.capacity(),
            t.dtls.capacity(),
            t.pre_auth_by_net.capacity(),
        ] {
            assert!(cap < peak / 8, "{cap} of {peak}");
        }
    }

    #[test]
    fn dropping_an_unreleased_record_releases_it() {
        let c = conns();
        let (mut a, _s) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
        a.lease(&req(), SessionId(1), "bob").unwrap();
        assert!(a.admit_user("bob", SessionId(1), 0));
        drop(a);
        assert!(c.is_empty());
        assert_eq!(c.pre_auth(), 0);
        assert_eq!(c.sessions_of("bob"), 0);
        assert_eq!(c.pool().held(), 0);
    }

    #[test]
    fn a_late_release_of_the_old_connection_leaves_the_newer_one_alone() {
        let c = conns();
        let sid = SessionId(5);
        let (mut old, _so) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
        assert!(old.claim_session(sid).is_none());
        assert!(old.admit_user("carol", sid, 1));
        let addr = old.lease(&req(), sid, "carol").unwrap().remote;
        old.register_dtls([1; 32], route(WorkerId(1)));

        // A takeover: the newer connection claims the session and must wait for the old one.
        let (mut new, _sn) = reserve(&c, WorkerId(2), ip("192.0.2.1"), OPEN).unwrap();
        let prior = new
            .claim_session(sid)
            .expect("the old connection owns the session");
        assert_eq!(prior.worker, WorkerId(1));
        assert!(!*prior.done.borrow());
        assert!(new.admit_user("carol", sid, 1));
        // While the old worker lives, its address is not handed to the newer connection.
        assert_eq!(new.lease(&req(), sid, "carol"), Err(LeaseError::InUse));
        assert!(c.terminate(WorkerId(1), Stop::Takeover));

        let keep = Some(Instant::now() + Duration::from_secs(300));
        old.release(keep, 0, 0);
        assert!(*prior.done.borrow());
        assert_eq!(new.lease(&req(), sid, "carol").unwrap().remote, addr);
        new.register_dtls([2; 32], route(WorkerId(2)));
        // The old connection's DTLS id is gone; the newer one's session and slot stay.
        assert!(c.dtls_route(&[1; 32]).is_none());
        assert!(c.dtls_route(&[2; 32]).is_some());
        assert_eq!(c.lock().sessions.get(&sid), Some(&WorkerId(2)));
        assert_eq!(c.sessions_of("carol"), 1);

        // A late or repeated release of the old (session, worker) changes nothing.
        old.release(None, 0, 0);
        drop(old);
        assert_eq!(c.pool().holder(addr), Some("carol"));
        let (mut other, _s) = reserve(&c, WorkerId(3), ip("192.0.2.3"), OPEN).unwrap();
        assert_ne!(
            other.lease(&req(), SessionId(6), "dave").unwrap().remote,
            addr
        );
        assert_eq!(c.lock().sessions.get(&sid), Some(&WorkerId(2)));
        assert!(c.dtls_route(&[2; 32]).is_some());
        assert!(!c.terminate(WorkerId(1), Stop::Admin));
        assert!(c.terminate(WorkerId(2), Stop::Admin));
    }

    /// A stand-in for the route runner: records each command, fails those starting `fail`.
    fn fake_runner(mut q: mpsc::UnboundedReceiver<Job>) -> Arc<Mutex<Vec<Vec<String>>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(job) = q.recv().await {
                let ok = job.argv[0] != "fail";
                log.lock().unwrap().push(job.argv);
                if let Some(done) = job.done {
                    let _ = done.send(ok);
                }
            }
        });
        seen
    }

    fn cmds(add: &str, nets: &[&str]) -> Commands {
        Commands {
            add: nets
                .iter()
                .map(|n| vec![add.to_owned(), (*n).to_owned()])
                .collect(),
            del: nets
                .iter()
                .map(|n| vec!["del".to_owned(), (*n).to_owned()])
                .collect(),
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| IpNet {
                addr: n.parse().unwrap(),
                prefix: 24,
            })
            .collect()
    }

    #[test]
    fn iroutes_are_removed_once_at_release_before_a_takeover_may_go_on() {
        let c = conns();
        let q = c.take_route_queue().expect("no runtime: the queue waits");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen = fake_runner(q);
            let (mut a, _s) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
            let (mut b, _s) = reserve(&c, WorkerId(2), ip("192.0.2.2"), OPEN).unwrap();
            let mine = ["10.9.1.0", "10.9.2.0"];
            assert!(a.add_iroutes(&nets(&mine), cmds("add", &mine)).await);
            assert!(
                b.add_iroutes(&nets(&["10.9.3.0"]), cmds("add", &["10.9.3.0"]))
                    .await
            );
            // expose-iroutes: everyone's but one's own.
            assert_eq!(c.known_iroutes(&nets(&["10.9.3.0"])), nets(&mine));
            assert_eq!(c.iroutes_of(WorkerId(1)), nets(&mine));
            let mut done = c.lock().live.get(&WorkerId(1)).unwrap().done.clone();
            a.release(None, 0, 0);
            assert!(*done.borrow_and_update());
            // Queued by the release itself (the takeover sees `done` after them), once.
            a.release(None, 0, 0);
            drop(a);
            // No yield: removals that a task of their own would queue later would come after
            // the marker (a takeover's additions) and fail the order check below.
            let (tx, rx) = tokio::sync::oneshot::channel();
            c.route_jobs
                .send(Job {
                    argv: vec!["marker".to_owned()],
                    done: Some(tx),
                })
                .unwrap();
            rx.await.unwrap();
            let log = seen.lock().unwrap().clone();
            let dels: Vec<_> = log.iter().filter(|a| a[0] == "del").collect();
            assert_eq!(dels, [&["del", "10.9.1.0"], &["del", "10.9.2.0"]]);
            assert_eq!(log.last().unwrap(), &["marker"]);
            assert!(c.iroutes_of(WorkerId(1)).is_empty());
            assert_eq!(c.known_iroutes(&[]), nets(&["10.9.3.0"]));
        });
    }

    #[test]
    fn a_failed_iroute_refuses_and_removes_what_was_added() {
        let c = conns();
        let q = c.take_route_queue().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen = fake_runner(q);
            let (mut a, _s) = reserve(&c, WorkerId(1), ip("192.0.2.1"), OPEN).unwrap();
            let mut cmds = cmds("add", &["10.9.1.0", "10.9.2.0", "10.9.4.0"]);
            cmds.add[1][0] = "fail".to_owned();
            assert!(
                !a.add_iroutes(&nets(&["10.9.1.0", "10.9.2.0", "10.9.4.0"]), cmds)
                    .await
            );
            assert!(c.known_iroutes(&[]).is_empty());
            let (tx, rx) = tokio::sync::oneshot::channel();
            c.route_jobs
                .send(Job {
                    argv: vec!["marker".to_owned()],
                    done: Some(tx),
                })
                .unwrap();
            rx.await.unwrap();
            let log = seen.lock().unwrap().clone();
            assert_eq!(
                log,
                [
                    vec!["add", "10.9.1.0"],
                    vec!["fail", "10.9.2.0"],
                    vec!["del", "10.9.1.0"],
                    vec!["marker"],
                ]
            );
            // Nothing left for the release.
            a.release(None, 0, 0);
            tokio::task::yield_now().await;
            assert_eq!(seen.lock().unwrap().len(), 4);
        });
    }
}
