//! main <-> sec-mod messages of the cluster (doc/cluster.md). sec-mod holds the only link to
//! the shared store; main, which owns bans, address leases and tunnels, reaches the store and
//! the other nodes through these messages. Without `cluster-store` none of them is sent.
//!
//! Two shapes: one-way notices ([`ToCluster`], [`FromCluster`]), and queries main waits for
//! ([`ClusterQuery`] with an id, answered by [`ClusterAnswer`] with the same id).

use serde::{Deserialize, Serialize};

use crate::cluster::StoreUrl;

/// What sec-mod needs to reach the store ([`super::main_secmod::SecModConfig::cluster`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub store: StoreUrl,
    /// `cluster-node`, or the host name: checked with [`crate::cluster::valid_node_name`].
    pub node: String,
    /// `cluster-store-auth-file`: sec-mod reads it itself.
    pub auth_file: Option<std::path::PathBuf>,
    /// `cluster-store-ca-cert`: for `rediss://`.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// main -> sec-mod, one-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToCluster {
    /// main is draining (`server-drain-ms`, shutdown): sec-mod marks the node as leaving, so
    /// that the other nodes stop counting on it.
    Draining,
}

/// sec-mod -> main, one-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromCluster {
    /// The store became reachable (`up`) or unreachable; sent at each change (logged once by
    /// sec-mod). While it is down the node works alone (doc/cluster.md "Failure").
    StoreState { up: bool },
    /// End the tunnel of session `sid` here (cause `EndCause::Takeover`): another node took
    /// the session's claim (doc/cluster.md "Sessions and cookies"). main ignores it when no
    /// tunnel of `sid` is live.
    EndTunnel { sid: crate::ipc::SessionId },
}

/// main -> sec-mod: a question main waits for (bounded by its sec-mod request timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterQuery {
    /// The store's state and the nodes it knows (occtl `show status`, health).
    Status,
}

/// sec-mod -> main: the answer to the [`ClusterQuery`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterAnswer {
    Status(ClusterStatus),
    /// The store could not answer (down, timed out): main falls back to its own view.
    Unavailable {
        why: String,
    },
}

/// The cluster as sec-mod sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    pub store_up: bool,
    /// The live nodes' names (this one included), sorted.
    pub nodes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::roundtrip;

    #[test]
    fn messages_roundtrip() {
        roundtrip(&ClusterSettings {
            store: StoreUrl::parse("rediss://store:6380/1").unwrap(),
            node: "a".into(),
            auth_file: Some("/etc/ocserv/store.auth".into()),
            ca_cert: None,
        });
        roundtrip(&ToCluster::Draining);
        roundtrip(&FromCluster::StoreState { up: true });
        roundtrip(&FromCluster::EndTunnel {
            sid: crate::ipc::SessionId(7),
        });
        roundtrip(&ClusterQuery::Status);
        roundtrip(&ClusterAnswer::Status(ClusterStatus {
            node: "a".into(),
            store_up: true,
            nodes: vec!["a".into(), "b".into()],
        }));
        roundtrip(&ClusterAnswer::Unavailable {
            why: "timeout".into(),
        });
    }
}
