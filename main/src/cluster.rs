//! main's side of the cluster (`cluster-store`, ours; doc/cluster.md). main never talks to the
//! store: sec-mod does, and main reaches it and the other nodes through the cluster messages
//! of `rocserv_proto::ipc::cluster` ([`crate::secmod::SecModClient::cluster_query`] and
//! `cluster_notice`). sec-mod's notices arrive here, on a task of their own.

pub mod sessions;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocserv_proto::ipc::cluster::FromCluster;
use tokio::sync::mpsc;

use crate::state::Shared;

/// What main knows of the cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This node's name (`cluster-node` or the host name).
    pub node: String,
    /// Whether sec-mod last said the store was reachable.
    store_up: AtomicBool,
    /// Address leases across the nodes ([`crate::cluster_leases`]).
    pub leases: crate::cluster_leases::Remote,
}

impl Cluster {
    pub fn new(node: String) -> Self {
        Self {
            node,
            store_up: AtomicBool::new(false),
            leases: crate::cluster_leases::Remote::default(),
        }
    }

    /// Whether the store is reachable (as sec-mod last reported).
    pub fn store_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }
}

/// Route sec-mod's cluster notices to [`on_notice`] (when `cluster-store` is set).
pub fn spawn(shared: &Arc<Shared>) {
    if shared.cluster.is_none() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.secmod.set_cluster_sink(tx);
    crate::ban_cluster::spawn(shared);
    crate::cluster_view::spawn(shared);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            on_notice(&shared, notice);
        }
    });
}

/// One notice from sec-mod.
fn on_notice(shared: &Arc<Shared>, notice: FromCluster) {
    let Some(cluster) = &shared.cluster else {
        return;
    };
    match notice {
        // sec-mod logged the change; main only keeps it (health, occtl, metrics).
        FromCluster::StoreState { up } => {
            cluster.store_up.store(up, Ordering::Relaxed);
            if up {
                cluster.leases.store_back();
                crate::ban_cluster::resync(shared);
            }
        }
        FromCluster::EndTunnel { sid } => sessions::end_tunnel(shared, sid),
        FromCluster::BanPoints(points) => crate::ban_cluster::on_points(shared, &points),
        FromCluster::Banned(bans) => crate::ban_cluster::on_banned(shared, &bans),
        FromCluster::Unban(ip) => crate::ban_cluster::on_unban(shared, ip),
        FromCluster::End { target, terminate } => {
            crate::cluster_view::on_end(shared, target, terminate)
        }
    }
}

/// Why a cluster query got no usable answer, for the log line of its node-local fallback: the
/// store's own reason, an answer of the wrong kind, or the channel's error.
pub fn why_no_answer<E: std::fmt::Display>(
    answer: Result<rocserv_proto::ipc::cluster::ClusterAnswer, E>,
) -> String {
    use rocserv_proto::ipc::cluster::ClusterAnswer;
    match answer {
        Ok(ClusterAnswer::Unavailable { why }) => why,
        Ok(a) => format!("unexpected answer {a:?}"),
        Err(e) => e.to_string(),
    }
}
