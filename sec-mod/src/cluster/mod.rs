//! The cluster (`cluster-store`, ours; doc/cluster.md): sec-mod's link to the Valkey/Redis
//! store the nodes share, and to the other nodes through its pub/sub channel. sec-mod is the
//! only process that talks to the store (the worker never can: no network and seccomp; main
//! asks through [`rocserv_proto::ipc::cluster`]).
//!
//! Nothing here may stop a node from serving the tunnels it holds: every store command is
//! bounded ([`store::COMMAND_TIMEOUT`]), a down store is logged once and the node works alone,
//! and when the store comes back [`resync`] writes what this node holds again.

pub mod bans;
pub mod keys;
pub mod leases;
pub mod sessions;
pub mod store;
pub mod view;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use rocserv_proto::cluster::bus::{BusBody, BusMessage};
use rocserv_proto::ipc::cluster::{
    ClusterAnswer, ClusterQuery, ClusterSettings, ClusterStatus, FromCluster, ToCluster,
};
use rocserv_proto::ipc::main_secmod::FromSecMod;
use rocserv_proto::ipc::{SessionId, WorkerId};
use tokio::sync::mpsc;

pub use store::{Store, StoreError};

use crate::worker_link::Shared;

/// How often a node renews its heartbeat key.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node whose heartbeat is older than this is gone (its key expires).
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// Most `SCAN` rounds one listing makes (each returns up to [`SCAN_COUNT`] keys): a listing is
/// bounded even on a store full of other keys.
pub const MAX_SCAN_ROUNDS: usize = 1000;
pub const SCAN_COUNT: usize = 200;
/// Most nodes [`Cluster::nodes`] lists: any store writer can add node keys, and the list
/// goes to main in one message (256 names of at most 64 bytes: about 17 KiB).
pub const MAX_NODES: usize = 256;
/// Most bus messages waiting for sec-mod's loop; beyond, new ones are dropped with a log line.
pub const MAX_EVENTS: usize = 4096;
/// Pause between two attempts to (re)open the pub/sub connection.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// What the cluster tasks tell sec-mod's loop.
#[derive(Debug)]
pub enum Event {
    /// A message of another node.
    Bus(BusMessage),
}

/// This node's part of the cluster.
pub struct Cluster {
    /// `cluster-node`.
    pub node: String,
    pub store: Store,
    /// [`resync`]: one run at a time.
    resyncing: std::sync::Mutex<Resync>,
    /// Notices for main from the cluster's tasks, sent by sec-mod's loop.
    pub to_main: ToMain,
    /// The session claims this node holds (doc/cluster.md "Sessions and cookies").
    pub claims: std::sync::Mutex<sessions::Claims>,
}

/// Most notices waiting for sec-mod's loop. Beyond, ban news is dropped (ban points first;
/// what it carries is also in the store and re-read when the store comes back), with a log
/// line; orders to end a tunnel (`EndTunnel`, `End`) are never dropped, only coalesced with an
/// equal one already waiting (doc/cluster.md "Guarantees").
pub const MAX_TO_MAIN: usize = 1024;

/// The one queue of unsolicited notices for main from the cluster code ([`Cluster::to_main`]);
/// sec-mod's loop sends them. Answers to main's questions go their own way.
#[derive(Debug, Default)]
pub struct ToMain {
    pending: std::sync::Mutex<std::collections::VecDeque<FromCluster>>,
    /// Notices dropped so far (for a rate-limited log line).
    dropped: std::sync::atomic::AtomicU64,
    /// Wakes sec-mod's loop when a notice was queued.
    pub ready: tokio::sync::Notify,
}

/// Whether losing `notice` is harmless (the store holds it too).
fn droppable(notice: &FromCluster) -> bool {
    !matches!(
        notice,
        FromCluster::EndTunnel { .. } | FromCluster::End { .. } | FromCluster::StoreState { .. }
    )
}

impl ToMain {
    /// Queue `notice` for main (see [`MAX_TO_MAIN`] for what a full queue does).
    pub fn push(&self, notice: FromCluster) {
        let dropped = {
            let mut pending = rocserv_rt::lock(&self.pending);
            if !droppable(&notice) && pending.contains(&notice) {
                // The same order already waits: main acts on it once anyway.
                return;
            }
            push_bounded(&mut pending, notice)
        };
        if let Some(kind) = dropped {
            let n = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Rate-limited: the first, then one line per 1000.
            if n.is_multiple_of(1000) {
                log::warn!(
                    "cluster: {MAX_TO_MAIN} notices wait for main; {kind} dropped ({} so far; \
                     the store holds it, and it is read again when the store comes back)",
                    n + 1
                );
            }
        }
        self.ready.notify_one();
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Vec<FromCluster> {
        rocserv_rt::lock(&self.pending).drain(..).collect()
    }
}

/// Queue `notice` within [`MAX_TO_MAIN`] where it can; what was dropped, if anything.
fn push_bounded(
    pending: &mut std::collections::VecDeque<FromCluster>,
    notice: FromCluster,
) -> Option<&'static str> {
    if pending.len() < MAX_TO_MAIN {
        pending.push_back(notice);
        return None;
    }
    let points = |n: &FromCluster| matches!(n, FromCluster::BanPoints(_));
    if points(&notice) {
        return Some("ban points");
    }
    // Make room: the oldest ban points, else (for an order to end a tunnel) any ban news.
    let victim = pending.iter().position(points).or_else(|| {
        (!droppable(&notice))
            .then(|| pending.iter().position(droppable))
            .flatten()
    });
    match victim {
        Some(i) => {
            let what = if pending.get(i).is_some_and(points) {
                "ban points"
            } else {
                "ban news"
            };
            pending.remove(i);
            pending.push_back(notice);
            Some(what)
        }
        // Only orders to end tunnels wait: one more is kept all the same.
        None if !droppable(&notice) => {
            pending.push_back(notice);
            None
        }
        None => Some("ban news"),
    }
}

/// Wait for notices for main (never, on a single node).
pub async fn to_main_ready(cluster: Option<&Arc<Cluster>>) {
    match cluster {
        Some(c) => c.to_main.ready.notified().await,
        None => std::future::pending().await,
    }
}

impl Cluster {
    /// Build the link and start its tasks (heartbeat, subscriber). Needs the runtime. The
    /// store need not be reachable: the node starts alone and joins when it is.
    pub fn start(settings: &ClusterSettings) -> Result<(Arc<Self>, mpsc::Receiver<Event>), String> {
        let store = Store::new(settings)?;
        let cluster = Arc::new(Self {
            node: settings.node.clone(),
            store,
            resyncing: std::sync::Mutex::new(Resync::default()),
            to_main: ToMain::default(),
            claims: Default::default(),
        });
        let (events, rx) = mpsc::channel(MAX_EVENTS);
        tokio::spawn(heartbeat(Arc::clone(&cluster)));
        tokio::spawn(subscribe(Arc::clone(&cluster), events));
        log::info!(
            "cluster node {}: store {}",
            cluster.node,
            cluster.store.url()
        );
        Ok((cluster, rx))
    }

    /// Tell the other nodes something (fire and forget: see `rocserv_proto::cluster::bus`).
    pub async fn publish(&self, body: BusBody) -> Result<(), StoreError> {
        let msg = BusMessage {
            from: self.node.clone(),
            body,
        };
        let bytes = msg.encode().map_err(|e| StoreError::Refused {
            what: "PUBLISH",
            why: e.to_string(),
        })?;
        self.store
            .cmd::<()>("PUBLISH", redis::cmd("PUBLISH").arg(keys::BUS).arg(bytes))
            .await
    }

    /// The live nodes (their heartbeat keys), sorted; bounded by [`MAX_SCAN_ROUNDS`].
    pub async fn nodes(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.scan(keys::NODE_PATTERN).await?;
        let mut nodes: Vec<String> = keys
            .iter()
            .filter_map(|k| keys::node_name(k))
            .filter(|n| rocserv_proto::cluster::valid_node_name(n))
            .map(str::to_owned)
            .collect();
        nodes.sort();
        nodes.dedup();
        if nodes.len() > MAX_NODES {
            log::warn!(
                "cluster store: {} node keys; only the first {MAX_NODES} are listed",
                nodes.len()
            );
            nodes.truncate(MAX_NODES);
        }
        Ok(nodes)
    }

    /// Every key matching `pattern` (`SCAN`, never `KEYS`: the store stays responsive).
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        self.scan_at_most(pattern, usize::MAX).await
    }

    /// [`Cluster::scan`], stopping once `max` keys were found (a few more may come with the
    /// last round; the caller truncates).
    pub async fn scan_at_most(&self, pattern: &str, max: usize) -> Result<Vec<String>, StoreError> {
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        for _ in 0..MAX_SCAN_ROUNDS {
            let (next, batch): (u64, Vec<String>) = self
                .store
                .cmd(
                    "SCAN",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT),
                )
                .await?;
            found.extend(batch);
            if next == 0 || found.len() >= max {
                return Ok(found);
            }
            cursor = next;
        }
        log::warn!("cluster store: listing {pattern} stopped after {MAX_SCAN_ROUNDS} rounds");
        Ok(found)
    }
}

/// Milliseconds since the Unix epoch: the nodes share no clock origin but the wall clock
/// (doc/cluster.md: keep the nodes' clocks in sync, as for any cluster).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Renew this node's heartbeat key every [`HEARTBEAT`]; this is also what notices the store
/// coming back when nothing else is asked of it.
async fn heartbeat(cluster: Arc<Cluster>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = cluster
            .store
            .probe::<()>("heartbeat", &heartbeat_cmd(&cluster))
            .await
        {
            log::debug!("cluster heartbeat: {e}");
        }
    }
}

/// Keep a pub/sub connection subscribed to [`keys::BUS`], reopening it when it drops, and
/// pass the other nodes' messages on.
async fn subscribe(cluster: Arc<Cluster>, events: mpsc::Sender<Event>) {
    let mut dropped: u64 = 0;
    loop {
        let opened = tokio::time::timeout(
            store::COMMAND_TIMEOUT,
            cluster.store.client().get_async_pubsub(),
        )
        .await;
        let mut pubsub = match opened {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                log::debug!("cluster bus: cannot connect: {e}");
                tokio::time::sleep(RESUBSCRIBE).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(RESUBSCRIBE).await;
                continue;
            }
        };
        match tokio::time::timeout(store::COMMAND_TIMEOUT, pubsub.subscribe(keys::BUS)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::debug!("cluster bus: cannot subscribe: {e}");
                tokio::time::sleep(RESUBSCRIBE).await;
                continue;
            }
            Err(_) => {
                log::debug!("cluster bus: no answer to SUBSCRIBE");
                tokio::time::sleep(RESUBSCRIBE).await;
                continue;
            }
        }
        log::debug!("cluster bus: subscribed");
        // A store the command link finds down may have left this connection half-open (a
        // partition sends no RST): open a fresh one rather than wait on it for ever.
        let mut state = cluster.store.watch();
        state.mark_unchanged();
        let mut stream = pubsub.on_message();
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    match BusMessage::decode(msg.get_payload_bytes()) {
                        Ok(m) if m.from == cluster.node => {}
                        Ok(m) => match events.try_send(Event::Bus(m)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                // A publisher faster than sec-mod's loop: the bus is fire
                                // and forget anyway (doc/cluster.md "Guarantees").
                                if dropped.is_multiple_of(1000) {
                                    log::warn!(
                                        "cluster bus: {MAX_EVENTS} messages wait for sec-mod's \
                                         loop; one dropped ({} so far)",
                                        dropped + 1
                                    );
                                }
                                dropped += 1;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        },
                        Err(e) => log::debug!("cluster bus: skipped a message: {e}"),
                    }
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *state.borrow_and_update() == Some(false) {
                        break;
                    }
                }
            }
        }
        log::debug!("cluster bus: connection lost or store down; reopening");
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}

/// sec-mod's loop got [`Event`] `event`.
pub fn on_event(shared: &Arc<Shared>, cluster: &Arc<Cluster>, event: Event) {
    match event {
        Event::Bus(msg) => match msg.body {
            BusBody::Leaving => log::info!("cluster node {} is leaving", msg.from),
            BusBody::Takeover { node, sid, worker } if node == cluster.node => {
                sessions::taken_over(cluster, SessionId(sid), WorkerId(worker))
            }
            BusBody::Takeover { .. } => {}
            BusBody::SessionDeleted { cookie_sha256 } => {
                sessions::deleted_elsewhere(shared, cookie_sha256)
            }
            body @ (BusBody::BanPoints(_) | BusBody::Banned(_) | BusBody::Unban(_)) => {
                bans::on_bus(cluster, &msg.from, body)
            }
            BusBody::End { target, terminate } => {
                view::on_end(cluster, &msg.from, target, terminate)
            }
        },
    }
}

/// Longest one area's re-assertion may take in [`resync`]; its store commands are bounded
/// each, this bounds how many it makes.
pub const RESYNC_AREA_BOUND: Duration = Duration::from_secs(10);
/// Most runs one [`resync`] call makes back to back (the store came back again meanwhile).
const RESYNC_ROUNDS: usize = 3;

/// Whether a [`resync`] runs, and whether another was asked for meanwhile (sans-IO).
#[derive(Debug, Default)]
struct Resync {
    running: bool,
    again: bool,
}

impl Resync {
    /// A resync is asked for: whether the caller runs it (else the running one goes round
    /// once more).
    fn begin(&mut self) -> bool {
        if self.running {
            self.again = true;
            return false;
        }
        self.running = true;
        self.again = false;
        true
    }

    /// Round `round` (from 1) is done: whether to go round once more.
    fn round_done(&mut self, round: usize) -> bool {
        let again = self.again && round < RESYNC_ROUNDS;
        self.again = false;
        if !again {
            // A request after this is served by a run of its own.
            self.running = false;
        }
        again
    }
}

/// The store came back (or was reached for the first time): write again what this node holds,
/// since asynchronous replication or a restarted store may have lost it (doc/cluster.md
/// "Failure"). Runs on a task of its own; never two at once: a call while one runs (a
/// flapping store) makes the running one go round once more instead, at most
/// [`RESYNC_ROUNDS`] times, and each area is bounded by [`RESYNC_AREA_BOUND`].
pub async fn resync(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    if !lock_resync(&cluster).begin() {
        return;
    }
    for round in 1..=RESYNC_ROUNDS {
        let started = std::time::Instant::now();
        resync_areas(&shared, &cluster).await;
        log::info!(
            "cluster store {}: this node's state written again in {} ms",
            cluster.store.url(),
            started.elapsed().as_millis()
        );
        if !lock_resync(&cluster).round_done(round) {
            return;
        }
    }
}

fn lock_resync(cluster: &Cluster) -> std::sync::MutexGuard<'_, Resync> {
    // The guarded state is two flags, valid whatever a panicking holder did.
    cluster
        .resyncing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What each area writes again when the store is back: ONE line per area, each an `async fn
/// (&Arc<Shared>, &Arc<Cluster>) -> Result<(), StoreError>` in that area's submodule, run in
/// turn, each bounded by [`RESYNC_AREA_BOUND`] (a down store makes them fail at once).
async fn resync_areas(shared: &Arc<Shared>, cluster: &Arc<Cluster>) {
    area("heartbeat", heartbeat_now(shared, cluster)).await;
    area("sessions", async {
        sessions::resync(shared, cluster).await;
        Ok(())
    })
    .await;
}

/// Run one area's re-assertion within its bound; its failure is logged, never fatal.
async fn area(name: &str, work: impl std::future::Future<Output = Result<(), StoreError>>) {
    match tokio::time::timeout(RESYNC_AREA_BOUND, work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("cluster resync of {name}: {e}"),
        Err(_) => log::warn!(
            "cluster resync of {name}: not done within {RESYNC_AREA_BOUND:?}; \
             the next return of the store tries again"
        ),
    }
}

/// This node's heartbeat key at once, rather than at the next tick.
async fn heartbeat_now(_shared: &Arc<Shared>, cluster: &Arc<Cluster>) -> Result<(), StoreError> {
    cluster
        .store
        .cmd::<()>("heartbeat", &heartbeat_cmd(cluster))
        .await
}

fn heartbeat_cmd(cluster: &Cluster) -> redis::Cmd {
    let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
    redis::cmd("SET")
        .arg(keys::node(&cluster.node))
        .arg(unix_ms())
        .arg("PX")
        .arg(ttl)
        .clone()
}

/// A notice from main.
pub async fn on_notice(cluster: Arc<Cluster>, notice: ToCluster) {
    match notice {
        ToCluster::Draining => {
            if let Err(e) = cluster.publish(BusBody::Leaving).await {
                log::warn!("cluster: cannot tell the other nodes that this one leaves: {e}");
            }
        }
        ToCluster::ReleaseAddress(r) => leases::release(&cluster, r).await,
        ToCluster::BanPoints(points) => bans::points(&cluster, points).await,
        ToCluster::Banned(list) => bans::banned(&cluster, list).await,
        ToCluster::Unban(ip) => bans::unban(&cluster, ip).await,
        ToCluster::ViewPage {
            generation,
            index,
            count,
            users,
            sessions,
        } => view::on_page(cluster, generation, index, count, users, sessions).await,
    }
}

/// Answer main's question; the answer goes out through sec-mod's outbox.
pub async fn on_query(
    cluster: Arc<Cluster>,
    id: u64,
    query: ClusterQuery,
    out: mpsc::UnboundedSender<Vec<FromSecMod>>,
) {
    let answer = match query {
        ClusterQuery::Status => match cluster.nodes().await {
            Ok(nodes) => ClusterAnswer::Status(ClusterStatus {
                node: cluster.node.clone(),
                store_up: true,
                nodes,
            }),
            Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
        },
        ClusterQuery::ClaimAddress(c) => leases::claim(&cluster, c).await,
        ClusterQuery::ReserveTunnel {
            user,
            sid,
            room,
            here,
        } => match sessions::reserve(&cluster, &user, sid, room, &here).await {
            Ok((elsewhere, reserved)) => ClusterAnswer::Reserved {
                elsewhere,
                reserved,
            },
            Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
        },
        ClusterQuery::RenewAddresses { holds, ttl_ms } => {
            leases::renew(&cluster, &holds, ttl_ms).await
        }
        ClusterQuery::Bans => match bans::read_all(&cluster).await {
            Ok(list) => ClusterAnswer::Bans(list),
            Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
        },
        ClusterQuery::ViewUsers { filter, from } => view::users(&cluster, &filter, from).await,
        ClusterQuery::ViewSessions { from } => view::sessions(&cluster, from).await,
        ClusterQuery::End { target, terminate } => view::end(&cluster, target, terminate).await,
    };
    let _ = out.send(vec![FromSecMod::ClusterAnswer { id, answer }]);
}

/// What main hears when the store's state changes.
pub fn state_notice(up: bool) -> FromSecMod {
    FromSecMod::Cluster(FromCluster::StoreState { up })
}

#[cfg(test)]
mod tests {
    use super::{FromCluster, Resync, ToMain, MAX_TO_MAIN, RESYNC_ROUNDS};
    use rocserv_proto::cluster::bans::BanPoints;
    use rocserv_proto::ipc::ctl::Target;
    use rocserv_proto::ipc::SessionId;

    fn points(i: u8) -> FromCluster {
        FromCluster::BanPoints(vec![BanPoints {
            ip: std::net::IpAddr::from([10, 0, 0, i]),
            points: 1,
        }])
    }

    #[test]
    fn to_main_never_drops_an_order_to_end_a_tunnel() {
        let q = ToMain::default();
        for i in 0..MAX_TO_MAIN {
            q.push(points(u8::try_from(i % 250).unwrap()));
        }
        // Full of ban points: the orders take their room.
        for sid in 0..10 {
            q.push(FromCluster::EndTunnel {
                sid: SessionId(sid),
            });
        }
        q.push(FromCluster::End {
            target: Target::User("bob".into()),
            terminate: true,
        });
        // More ban news is dropped, not the orders.
        q.push(points(1));
        q.push(FromCluster::Unban(std::net::IpAddr::from([10, 0, 0, 1])));
        let got = q.take();
        assert_eq!(got.len(), MAX_TO_MAIN);
        let ends = got
            .iter()
            .filter(|n| matches!(n, FromCluster::EndTunnel { .. } | FromCluster::End { .. }))
            .count();
        assert_eq!(ends, 11);
        assert!(q.take().is_empty());

        // Full of orders only: one more is still kept; an equal one is coalesced.
        for sid in 0..u64::try_from(MAX_TO_MAIN).unwrap() {
            q.push(FromCluster::EndTunnel {
                sid: SessionId(sid),
            });
        }
        q.push(FromCluster::EndTunnel { sid: SessionId(5) });
        q.push(FromCluster::EndTunnel {
            sid: SessionId(u64::MAX),
        });
        q.push(points(2));
        let got = q.take();
        assert_eq!(got.len(), MAX_TO_MAIN + 1);
        assert_eq!(
            got.last(),
            Some(&FromCluster::EndTunnel {
                sid: SessionId(u64::MAX)
            })
        );
    }

    #[test]
    fn one_resync_at_a_time() {
        let mut r = Resync::default();
        assert!(r.begin(), "the first request runs");
        assert!(!r.begin(), "a second while it runs does not start another");
        assert!(!r.begin());
        assert!(
            r.round_done(1),
            "but makes the running one go round once more"
        );
        assert!(!r.begin());
        assert!(r.round_done(2));
        assert!(!r.round_done(3), "nothing asked meanwhile: done");
        assert!(r.begin(), "a later request runs again");
    }

    #[test]
    fn a_flapping_store_is_bounded() {
        let mut r = Resync::default();
        assert!(r.begin());
        for round in 1..RESYNC_ROUNDS {
            assert!(!r.begin());
            assert!(r.round_done(round));
        }
        assert!(!r.begin());
        assert!(!r.round_done(RESYNC_ROUNDS), "at most RESYNC_ROUNDS rounds");
        assert!(r.begin(), "free for the next return of the store");
    }
}
