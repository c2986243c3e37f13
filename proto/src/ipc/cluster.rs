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
    /// Connection `tag` of session `sid` stopped serving `addr` (leases, doc/cluster.md
    /// "Addresses"): keep it for the session `keep_ms` more (its reconnect, anywhere), or free
    /// it now (0). Nothing happens unless the store's record is still this connection's.
    ReleaseAddress(AddressRelease),
    /// Ban points main charged, coalesced per address (at most
    /// [`crate::cluster::bans::MAX_PER_MESSAGE`]): published to the other nodes.
    BanPoints(Vec<crate::cluster::bans::BanPoints>),
    /// Bans main started, or all its running bans again after the store came back: written as
    /// `rocserv:ban:IP` keys with their time left as TTL, and published.
    Banned(Vec<crate::cluster::bans::BanRecord>),
    /// occtl `unban ip`: delete the key and tell the other nodes.
    Unban(std::net::IpAddr),
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

/// An IPv4 lease as the store knows it: who holds it, from which connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressHold {
    pub addr: std::net::Ipv4Addr,
    pub sid: crate::ipc::SessionId,
    /// The connection (main's worker id) on this node: a late release of an older connection
    /// of the same session cannot touch a newer one's record.
    pub worker: u64,
    pub user: String,
}

/// See [`ToCluster::ReleaseAddress`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRelease {
    pub hold: AddressHold,
    pub keep_ms: u64,
}

/// Claim one of `candidates` (in order) for connection `worker` of session `sid` of `user`,
/// unless the session already holds an address in the store (a reconnect from another node:
/// that one is answered). The record lives `ttl_ms` unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressClaim {
    pub sid: crate::ipc::SessionId,
    pub worker: u64,
    pub user: String,
    pub candidates: Vec<std::net::Ipv4Addr>,
    pub ttl_ms: u64,
}

/// The answer to [`ClusterQuery::ClaimAddress`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressClaimed {
    /// The session's own address in the store (it held one, on this or another node).
    Previous(std::net::Ipv4Addr),
    /// The first free candidate.
    Claimed(std::net::Ipv4Addr),
    /// Every candidate is held by another session: on which node, by which user.
    Taken(Vec<AddressTaken>),
}

/// A candidate another session holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressTaken {
    pub addr: std::net::Ipv4Addr,
    pub node: String,
    pub user: String,
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
    /// Another node's ban points: add them, do not pass them on.
    BanPoints(Vec<crate::cluster::bans::BanPoints>),
    /// Another node's bans: apply them, do not pass them on.
    Banned(Vec<crate::cluster::bans::BanRecord>),
    /// Another node's occtl `unban ip`.
    Unban(std::net::IpAddr),
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
    /// Claim an IPv4 address in the shared lease space (CONNECT).
    ClaimAddress(AddressClaim),
    /// `max-same-clients` across the nodes (CONNECT): count the sessions of `user` other than
    /// `sid` with a live (or reserved) tunnel on other nodes and, if there are at most `room`
    /// (what main's own count leaves), reserve one for `sid`, in one atomic step. `here`: this
    /// node's other sessions of the user (main counted them).
    ReserveTunnel {
        user: String,
        sid: crate::ipc::SessionId,
        room: u32,
        here: Vec<crate::ipc::SessionId>,
    },
    /// Renew (or write again, after the store lost them) this node's live leases, each for
    /// `ttl_ms`; the answer lists those another session holds now.
    RenewAddresses {
        holds: Vec<AddressHold>,
        ttl_ms: u64,
    },
    /// Every running ban in the store (on start and each time the store comes back).
    Bans,
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
    AddressClaim(AddressClaimed),
    /// The answer to [`ClusterQuery::ReserveTunnel`]: the user's sessions with a tunnel on
    /// other nodes, and whether this one was reserved (else the CONNECT is one too many).
    Reserved {
        elsewhere: u32,
        reserved: bool,
    },
    /// The leases of [`ClusterQuery::RenewAddresses`] that another connection holds in the
    /// store (given out elsewhere while this node could not reach the store, or taken over by
    /// a reconnect of the session on another node).
    AddressesLost(Vec<AddressTaken>),
    /// The answer to [`ClusterQuery::Bans`]: at most [`crate::cluster::bans::MAX_READ`].
    Bans(Vec<crate::cluster::bans::BanRecord>),
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
        roundtrip(&FromCluster::EndTunnel {
            sid: crate::ipc::SessionId(7),
        });
        roundtrip(&ClusterQuery::Status);
        roundtrip(&ClusterAnswer::Status(ClusterStatus {
            node: "a".into(),
            store_up: true,
            nodes: vec!["a".into(), "b".into()],
        }));
        let hold = AddressHold {
            addr: "10.0.0.2".parse().unwrap(),
            sid: crate::ipc::SessionId(7),
            worker: 3,
            user: "alice".into(),
        };
        roundtrip(&ToCluster::ReleaseAddress(AddressRelease {
            hold: hold.clone(),
            keep_ms: 315_000,
        }));
        roundtrip(&ClusterQuery::ClaimAddress(AddressClaim {
            sid: crate::ipc::SessionId(7),
            worker: 3,
            user: "alice".into(),
            candidates: vec!["10.0.0.2".parse().unwrap()],
            ttl_ms: 1000,
        }));
        roundtrip(&ClusterQuery::RenewAddresses {
            holds: vec![hold],
            ttl_ms: 1000,
        });
        let taken = AddressTaken {
            addr: "10.0.0.2".parse().unwrap(),
            node: "b".into(),
            user: "bob".into(),
        };
        roundtrip(&ClusterAnswer::AddressClaim(AddressClaimed::Taken(vec![
            taken.clone(),
        ])));
        roundtrip(&ClusterAnswer::AddressClaim(AddressClaimed::Previous(
            "10.0.0.3".parse().unwrap(),
        )));
        roundtrip(&ClusterAnswer::AddressesLost(vec![taken]));
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
