//! main <-> sec-mod messages of the cluster (doc/cluster.md). sec-mod holds the only link to
//! the shared store; main, which owns bans, address leases and tunnels, reaches the store and
//! the other nodes through these messages. Without `cluster-store` none of them is sent.
//!
//! Two shapes: one-way notices ([`ToCluster`], [`FromCluster`]), and queries main waits for
//! ([`ClusterQuery`] with an id, answered by [`ClusterAnswer`] with the same id).

use serde::{Deserialize, Serialize};

use crate::cluster::StoreUrl;
use crate::ipc::ctl::{SessionInfo, Target, UserFilter, UserInfo};

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
    /// One page of this node's rows for the other nodes' occtl (doc/cluster.md "One view"):
    /// pages `0..count` of generation `generation` (main numbers them; a newer generation
    /// replaces an unfinished older one). sec-mod writes the whole set once every page is in.
    ViewPage {
        generation: u64,
        index: u32,
        count: u32,
        users: Vec<UserInfo>,
        sessions: Vec<SessionInfo>,
    },
}

/// sec-mod -> main, one-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromCluster {
    /// The store became reachable (`up`) or unreachable; sent at each change (logged once by
    /// sec-mod). While it is down the node works alone (doc/cluster.md "Failure").
    StoreState { up: bool },
    /// Another node's occtl asked to end tunnels (`disconnect`, `terminate`): main acts as for
    /// a local occtl command, on this node only (the target was checked by sec-mod: a name,
    /// a session prefix, or this node's `NodeId`).
    End { target: Target, terminate: bool },
}

/// main -> sec-mod: a question main waits for (bounded by its sec-mod request timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterQuery {
    /// The store's state and the nodes it knows (occtl `show status`, health).
    Status,
    /// The other nodes' connected users matching `filter` (their stored rows), from row
    /// `from` on: one page per answer (occtl `show users|user|id` on a cluster).
    ViewUsers { filter: UserFilter, from: u32 },
    /// The other nodes' sessions, from row `from` on (occtl `show sessions`).
    ViewSessions { from: u32 },
    /// Tell the nodes to end what `target` names (occtl `disconnect`/`terminate`); the
    /// answer names the nodes whose listed tunnels matched.
    End { target: Target, terminate: bool },
}

/// sec-mod -> main: the answer to the [`ClusterQuery`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterAnswer {
    Status(ClusterStatus),
    /// The store could not answer (down, timed out): main falls back to its own view.
    Unavailable {
        why: String,
    },
    /// A page of [`ClusterQuery::ViewUsers`]; `next` = the `from` of the next page.
    ViewUsers {
        users: Vec<UserInfo>,
        next: Option<u32>,
    },
    ViewSessions {
        sessions: Vec<SessionInfo>,
        next: Option<u32>,
    },
    /// [`ClusterQuery::End`] was published; these nodes listed matching tunnels (sorted).
    Ended {
        nodes: Vec<String>,
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
        roundtrip(&ClusterQuery::Status);
        roundtrip(&ClusterAnswer::Status(ClusterStatus {
            node: "a".into(),
            store_up: true,
            nodes: vec!["a".into(), "b".into()],
        }));
        roundtrip(&ClusterAnswer::Unavailable {
            why: "timeout".into(),
        });
        roundtrip(&ClusterQuery::ViewUsers {
            filter: UserFilter::NodeId {
                node: "a".into(),
                id: 7,
            },
            from: 3,
        });
        roundtrip(&ClusterQuery::End {
            target: Target::User("alice".into()),
            terminate: true,
        });
        roundtrip(&FromCluster::End {
            target: Target::Session("ab".into()),
            terminate: false,
        });
        roundtrip(&ClusterAnswer::Ended {
            nodes: vec!["b".into()],
        });
    }
}
