//! The cluster (`cluster-store`, ours; doc/cluster.md): sec-mod's link to the Valkey/Redis
//! store the nodes share, and to the other nodes through its pub/sub channel. sec-mod is the
//! only process that talks to the store (the worker never can: no network and seccomp; main
//! asks through [`rocserv_proto::ipc::cluster`]).
//!
//! Nothing here may stop a node from serving the tunnels it holds: every store command is
//! bounded ([`store::COMMAND_TIMEOUT`]), a down store is logged once and the node works alone,
//! and when the store comes back [`resync`] writes what this node holds again.

pub mod keys;
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
}

impl Cluster {
    /// Build the link and start its tasks (heartbeat, subscriber). Needs the runtime. The
    /// store need not be reachable: the node starts alone and joins when it is.
    pub fn start(
        settings: &ClusterSettings,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Event>), String> {
        let store = Store::new(settings)?;
        let cluster = Arc::new(Self {
            node: settings.node.clone(),
            store,
        });
        let (events, rx) = mpsc::unbounded_channel();
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
        Ok(nodes)
    }

    /// Every key matching `pattern` (`SCAN`, never `KEYS`: the store stays responsive).
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
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
            if next == 0 {
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
    let key = keys::node(&cluster.node);
    let ttl = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let set = redis::cmd("SET")
            .arg(&key)
            .arg(unix_ms())
            .arg("PX")
            .arg(ttl)
            .clone();
        if let Err(e) = cluster.store.cmd::<()>("heartbeat", &set).await {
            log::debug!("cluster heartbeat: {e}");
        }
    }
}

/// Keep a pub/sub connection subscribed to [`keys::BUS`], reopening it when it drops, and
/// pass the other nodes' messages on.
async fn subscribe(cluster: Arc<Cluster>, events: mpsc::UnboundedSender<Event>) {
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
        if let Err(e) = pubsub.subscribe(keys::BUS).await {
            log::debug!("cluster bus: cannot subscribe: {e}");
            tokio::time::sleep(RESUBSCRIBE).await;
            continue;
        }
        log::debug!("cluster bus: subscribed");
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            match BusMessage::decode(msg.get_payload_bytes()) {
                Ok(m) if m.from == cluster.node => {}
                Ok(m) => {
                    if events.send(Event::Bus(m)).is_err() {
                        return;
                    }
                }
                Err(e) => log::debug!("cluster bus: skipped a message: {e}"),
            }
        }
        log::debug!("cluster bus: connection lost");
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}

/// sec-mod's loop got [`Event`] `event`.
pub fn on_event(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    event: Event,
    out: &mpsc::UnboundedSender<Vec<FromSecMod>>,
) {
    let _ = (shared, cluster);
    match event {
        Event::Bus(msg) => match msg.body {
            BusBody::Leaving => log::info!("cluster node {} is leaving", msg.from),
            BusBody::End { target, terminate } => {
                view::on_end(cluster, &msg.from, target, terminate, out)
            }
        },
    }
}

/// The store came back (or was reached for the first time): write again what this node holds,
/// since asynchronous replication or a restarted store may have lost it (doc/cluster.md
/// "Failure"). Runs on a task of its own.
pub async fn resync(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let _ = (shared, cluster);
}

/// A notice from main.
pub async fn on_notice(shared: Arc<Shared>, cluster: Arc<Cluster>, notice: ToCluster) {
    let _ = shared;
    match notice {
        ToCluster::Draining => {
            if let Err(e) = cluster.publish(BusBody::Leaving).await {
                log::warn!("cluster: cannot tell the other nodes that this one leaves: {e}");
            }
        }
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
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    id: u64,
    query: ClusterQuery,
    out: mpsc::UnboundedSender<Vec<FromSecMod>>,
) {
    let _ = shared;
    let answer = match query {
        ClusterQuery::Status => match cluster.nodes().await {
            Ok(nodes) => ClusterAnswer::Status(ClusterStatus {
                node: cluster.node.clone(),
                store_up: true,
                nodes,
            }),
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
