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
    /// Ban points main charged, coalesced per address (at most
    /// [`crate::cluster::bans::MAX_PER_MESSAGE`]): published to the other nodes.
    BanPoints(Vec<crate::cluster::bans::BanPoints>),
    /// Bans main started, or all its running bans again after the store came back: written as
    /// `rocserv:ban:IP` keys with their time left as TTL, and published.
    Banned(Vec<crate::cluster::bans::BanRecord>),
    /// occtl `unban ip`: delete the key and tell the other nodes.
    Unban(std::net::IpAddr),
}

/// sec-mod -> main, one-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromCluster {
    /// The store became reachable (`up`) or unreachable; sent at each change (logged once by
    /// sec-mod). While it is down the node works alone (doc/cluster.md "Failure").
    StoreState { up: bool },
    /// Another node's ban points: add them, do not pass them on.
    BanPoints(Vec<crate::cluster::bans::BanPoints>),
    /// Another node's bans: apply them, do not pass them on.
    Banned(Vec<crate::cluster::bans::BanRecord>),
    /// Another node's occtl `unban ip`.
    Unban(std::net::IpAddr),
}

/// main -> sec-mod: a question main waits for (bounded by its sec-mod request timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterQuery {
    /// The store's state and the nodes it knows (occtl `show status`, health).
    Status,
    /// Every running ban in the store (on start and each time the store comes back).
    Bans,
}

/// sec-mod -> main: the answer to the [`ClusterQuery`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterAnswer {
    Status(ClusterStatus),
    /// The store could not answer (down, timed out): main falls back to its own view.
    Unavailable {
        why: String,
    },
    /// The answer to [`ClusterQuery::Bans`]: at most [`crate::cluster::bans::MAX_READ`].
    Bans(Vec<crate::cluster::bans::BanRecord>),
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
        roundtrip(&ClusterQuery::Status);
        roundtrip(&ClusterAnswer::Status(ClusterStatus {
            node: "a".into(),
            store_up: true,
            nodes: vec!["a".into(), "b".into()],
        }));
        roundtrip(&ClusterAnswer::Unavailable {
            why: "timeout".into(),
        });
        let ban = crate::cluster::bans::BanRecord {
            ip: "2001:db8::".parse().unwrap(),
            score: 80,
            remaining_ms: 1,
        };
        let points = crate::cluster::bans::BanPoints {
            ip: "192.0.2.1".parse().unwrap(),
            points: 10,
        };
        roundtrip(&ToCluster::BanPoints(vec![points]));
        roundtrip(&ToCluster::Banned(vec![ban]));
        roundtrip(&ToCluster::Unban(ban.ip));
        roundtrip(&FromCluster::BanPoints(vec![points]));
        roundtrip(&FromCluster::Banned(vec![ban]));
        roundtrip(&FromCluster::Unban(ban.ip));
        roundtrip(&ClusterQuery::Bans);
        roundtrip(&ClusterAnswer::Bans(vec![ban]));
    }
}
