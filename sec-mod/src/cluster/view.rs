//! One view of the cluster for occtl (doc/cluster.md "One view"; the rows and filters are
//! `rocserv_proto::cluster::view`). main sends this node's rows in pages every few seconds
//! and soon after a tunnel starts or ends; once a set is complete it is written to
//! `rocserv:view:v1:NODE` with a TTL, so a node that dies drops out of the others' listings
//! by itself. main's occtl answers ask here for the other nodes' rows, and its
//! `disconnect`/`terminate` go out on the bus to the node that holds the tunnel.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rocserv_proto::cluster::bus::BusBody;
use rocserv_proto::cluster::view::{self as rows, NodeView};
use rocserv_proto::ipc::cluster::{ClusterAnswer, FromCluster};
use rocserv_proto::ipc::ctl::{SessionInfo, Target, UserFilter, UserInfo};

use super::{keys, Cluster};

/// How long a stored view lives without renewal (main renews it every few seconds).
pub const VIEW_TTL: Duration = Duration::from_secs(10);
/// Most pages one set may have (main's pages are under 64 KiB: 16 MiB in all).
const MAX_PAGES: u32 = 256;
/// How long the other nodes' rows read for a listing's first page serve its next pages.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// Most other nodes whose rows one listing reads (any store writer can add view keys).
const MAX_NODES: usize = 64;
/// Keys read per round trip.
const READ_CHUNK: usize = 8;
/// Most bytes of stored rows one listing reads, all nodes together.
const MAX_READ: usize = 32 * 1024 * 1024;

/// KEYS: view keys; the length of each value, -1 for a key of another type (read with
/// `pcall`: one such key does not fail the others).
static STRLENS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local r = {}
for i, k in ipairs(KEYS) do
  local n = redis.pcall('STRLEN', k)
  if type(n) ~= 'number' then n = -1 end
  r[i] = n
end
return r",
    )
});

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
        .scan_at_most(PATTERN, MAX_NODES + 1)
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
    if nodes.len() > MAX_NODES {
        log::warn!("cluster view: the rows of at most {MAX_NODES} other nodes are read");
        nodes.truncate(MAX_NODES);
    }
    let mut views = Vec::with_capacity(nodes.len());
    let mut total = 0usize;
    for chunk in nodes.chunks(READ_CHUNK) {
        // The sizes first: no reply larger than what is read below is ever buffered.
        let mut inv = STRLENS.prepare_invoke();
        for (_, k) in chunk {
            inv.key(k);
        }
        let lens: Vec<i64> = cluster.store.script("STRLEN view", inv).await?;
        let mut mget = redis::cmd("MGET");
        let mut asked = Vec::new();
        for ((node, k), len) in chunk.iter().zip(lens) {
            let Ok(len) = usize::try_from(len) else {
                log::warn!("cluster view: the key of node {node} is not a string; skipped");
                continue;
            };
            if len == 0 {
                // Expired since SCAN: the node is gone.
                continue;
            }
            if len > rows::MAX_VIEW || total + len > MAX_READ {
                log::warn!(
                    "cluster view: the rows of node {node} ({len} bytes) are not read \
                     (at most {} bytes per node, {MAX_READ} per listing)",
                    rows::MAX_VIEW
                );
                continue;
            }
            total += len;
            mget.arg(k);
            asked.push(node);
        }
        if asked.is_empty() {
            continue;
        }
        let values: Vec<Option<Vec<u8>>> = cluster.store.cmd("MGET view", &mget).await?;
        for (node, value) in asked.into_iter().zip(values) {
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
pub fn on_end(cluster: &Cluster, from: &str, target: Target, terminate: bool) {
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
    cluster.to_main.push(FromCluster::End {
        target: local,
        terminate,
    });
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
