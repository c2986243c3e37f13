//! One view of the cluster for occtl (doc/cluster.md "One view"; the rows and filters are
//! `rocserv_proto::cluster::view`). main sends this node's rows in pages every few seconds
//! and soon after a tunnel starts or ends; once a set is complete it is written to
//! `rocserv:view:v1:NODE` with a TTL, so a node that dies drops out of the others' listings
//! by itself. main's occtl answers ask here for the other nodes' rows, and its
//! `disconnect`/`terminate` go out on the bus to the node that holds the tunnel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rocserv_proto::cluster::bus::BusBody;
use rocserv_proto::cluster::view::{self as rows, NodeView};
use rocserv_proto::ipc::cluster::{ClusterAnswer, FromCluster};
use rocserv_proto::ipc::ctl::{SessionInfo, Target, UserFilter, UserInfo};
use rocserv_proto::ipc::main_secmod::FromSecMod;
use tokio::sync::mpsc;

use super::{keys, Cluster};

/// How long a stored view lives without renewal (main renews it every few seconds).
pub const VIEW_TTL: Duration = Duration::from_secs(10);
/// Most pages one set may have (main's pages are under 64 KiB: 16 MiB in all).
const MAX_PAGES: u32 = 256;
/// How long the other nodes' rows read for a listing's first page serve its next pages.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// `rocserv:view:v1:NODE`: the rows of node NODE (`v1`: the encoding of [`NodeView`]; a node
/// of another version skips keys it cannot decode, with a log line).
pub fn key(node: &str) -> String {
    format!("{}view:v1:{node}", keys::PREFIX)
}

const PATTERN: &str = "rocserv:view:v1:*";

fn node_of(key: &str) -> Option<&str> {
    key.strip_prefix(keys::PREFIX)?.strip_prefix("view:v1:")
}

/// A set of pages being received.
struct Assembly {
    generation: u64,
    count: u32,
    pages: BTreeMap<u32, (Vec<UserInfo>, Vec<SessionInfo>)>,
}

static ASSEMBLY: Mutex<Option<Assembly>> = Mutex::new(None);
/// The other nodes' views read last, and when.
static CACHE: Mutex<Option<(Instant, Arc<Vec<NodeView>>)>> = Mutex::new(None);

/// main sent page `index` of `count` of generation `generation`; when the set is complete it
/// is stored.
pub async fn on_page(
    cluster: Arc<Cluster>,
    generation: u64,
    index: u32,
    count: u32,
    users: Vec<UserInfo>,
    sessions: Vec<SessionInfo>,
) {
    if count == 0 || count > MAX_PAGES || index >= count {
        log::warn!("cluster view: page {index} of {count} refused");
        return;
    }
    let complete = {
        let mut slot = ASSEMBLY.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(a) if a.generation > generation => return,
            Some(a) if a.generation == generation && a.count == count => {}
            _ => {
                *slot = Some(Assembly {
                    generation,
                    count,
                    pages: BTreeMap::new(),
                })
            }
        }
        let Some(a) = slot.as_mut() else { return };
        a.pages.insert(index, (users, sessions));
        if a.pages.len() < usize::try_from(a.count).unwrap_or(usize::MAX) {
            return;
        }
        slot.take()
    };
    let Some(a) = complete else { return };
    let mut view = NodeView::default();
    for (_, (users, sessions)) in a.pages {
        view.users.extend(users);
        view.sessions.extend(sessions);
    }
    let bytes = match view.encode() {
        Ok(b) => b,
        Err(e) => {
            log::warn!("cluster view: this node's rows are not stored: {e}");
            return;
        }
    };
    let ttl = u64::try_from(VIEW_TTL.as_millis()).unwrap_or(u64::MAX);
    let set = redis::cmd("SET")
        .arg(key(&cluster.node))
        .arg(bytes)
        .arg("PX")
        .arg(ttl)
        .clone();
    if let Err(e) = cluster.store.cmd::<()>("SET view", &set).await {
        log::debug!("cluster view: {e}");
    }
}

/// The other nodes' stored views (sorted by node), read at most every [`CACHE_FOR`] for the
/// pages after the first.
async fn others(cluster: &Cluster, fresh: bool) -> Result<Arc<Vec<NodeView>>, super::StoreError> {
    if !fresh {
        let cached = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, views)) = cached.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Ok(Arc::clone(views));
            }
        }
    }
    let mut nodes: Vec<(String, String)> = cluster
        .scan(PATTERN)
        .await?
        .into_iter()
        .filter_map(|k| {
            let node = node_of(&k)?.to_owned();
            (node != cluster.node && rocserv_proto::cluster::valid_node_name(&node))
                .then_some((node, k))
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    let mut views = Vec::with_capacity(nodes.len());
    if !nodes.is_empty() {
        let mut mget = redis::cmd("MGET");
        for (_, k) in &nodes {
            mget.arg(k);
        }
        let values: Vec<Option<Vec<u8>>> = cluster.store.cmd("MGET view", &mget).await?;
        for ((node, _), value) in nodes.iter().zip(values) {
            // Expired between SCAN and MGET: the node is gone.
            let Some(bytes) = value else { continue };
            match NodeView::decode(&bytes, node) {
                Ok(v) => views.push(v),
                Err(e) => log::warn!("cluster view: skipped the rows of node {node}: {e}"),
            }
        }
    }
    let views = Arc::new(views);
    *CACHE.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((Instant::now(), Arc::clone(&views)));
    Ok(views)
}

/// [`rocserv_proto::ipc::cluster::ClusterQuery::ViewUsers`].
pub async fn users(cluster: &Cluster, filter: &UserFilter, from: u32) -> ClusterAnswer {
    match others(cluster, from == 0).await {
        Ok(views) => {
            let rows: Vec<UserInfo> = views
                .iter()
                .flat_map(|v| v.users.iter())
                .filter(|u| rows::user_matches(u, filter))
                .cloned()
                .collect();
            let (users, next) = rows::page(&rows, from);
            ClusterAnswer::ViewUsers { users, next }
        }
        Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
    }
}

/// [`rocserv_proto::ipc::cluster::ClusterQuery::ViewSessions`].
pub async fn sessions(cluster: &Cluster, from: u32) -> ClusterAnswer {
    match others(cluster, from == 0).await {
        Ok(views) => {
            let rows: Vec<SessionInfo> = views
                .iter()
                .flat_map(|v| v.sessions.iter())
                .cloned()
                .collect();
            let (sessions, next) = rows::page(&rows, from);
            ClusterAnswer::ViewSessions { sessions, next }
        }
        Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
    }
}

/// [`rocserv_proto::ipc::cluster::ClusterQuery::End`]: tell every node (one message: a
/// session may be held by a node whose rows are not stored yet), and name the nodes whose
/// rows match.
pub async fn end(cluster: &Cluster, target: Target, terminate: bool) -> ClusterAnswer {
    let mut nodes: Vec<String> = match others(cluster, true).await {
        Ok(views) => views
            .iter()
            .flat_map(|v| v.users.iter())
            .filter(|u| rows::target_matches(u, &target))
            .map(|u| u.node.clone())
            .collect(),
        Err(e) => return ClusterAnswer::Unavailable { why: e.to_string() },
    };
    nodes.sort();
    nodes.dedup();
    if let Err(e) = cluster.publish(BusBody::End { target, terminate }).await {
        return ClusterAnswer::Unavailable { why: e.to_string() };
    }
    ClusterAnswer::Ended { nodes }
}

/// Another node's `End`: hand main what concerns this node (a plain `Id` names a connection
/// of the sender's numbering and is ignored).
pub fn on_end(
    cluster: &Cluster,
    from: &str,
    target: Target,
    terminate: bool,
    out: &mpsc::UnboundedSender<Vec<FromSecMod>>,
) {
    if matches!(target, Target::Id(_)) {
        log::warn!("cluster: node {from} sent an end order by bare id; ignored");
        return;
    }
    let Some(local) = rows::local_target(&target, &cluster.node) else {
        return;
    };
    log::info!(
        "cluster: node {from} asks to {} {local:?}",
        if terminate { "terminate" } else { "disconnect" }
    );
    let _ = out.send(vec![FromSecMod::Cluster(FromCluster::End {
        target: local,
        terminate,
    })]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_keys() {
        assert_eq!(key("node-a"), "rocserv:view:v1:node-a");
        assert_eq!(node_of(&key("node-a")), Some("node-a"));
        assert_eq!(node_of("rocserv:node:a"), None);
    }
}
