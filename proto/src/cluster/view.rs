//! One view of the cluster for occtl (doc/cluster.md "One view"): each node stores the rows its
//! own occtl would print (`show users`, `show sessions`) under its key
//! (`rocserv:view:v1:NODE`), and a node's occtl merges the other nodes' rows with its own.
//!
//! Sans-IO: the stored value's encoding (postcard, as the IPC), bounded decoding (the store
//! is shared infrastructure and may hold anything), and the row filters.

use serde::{Deserialize, Serialize};

use crate::ipc::ctl::{self, SessionInfo, Target, UserFilter, UserInfo};

/// Largest stored view accepted or written (about 20000 users with their sessions).
pub const MAX_VIEW: usize = 16 * 1024 * 1024;

/// One node's rows, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub users: Vec<UserInfo>,
    pub sessions: Vec<SessionInfo>,
}

/// Why a stored view was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("view of {0} bytes exceeds {MAX_VIEW}")]
    TooLarge(usize),
    #[error("malformed view: {0}")]
    Malformed(String),
}

impl NodeView {
    pub fn encode(&self) -> Result<Vec<u8>, ViewError> {
        let bytes = postcard::to_stdvec(self).map_err(|e| ViewError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_VIEW {
            return Err(ViewError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decode a stored view; every row is stamped with `node` (the key's node name), whatever
    /// the value says, so a row cannot claim another node.
    pub fn decode(bytes: &[u8], node: &str) -> Result<Self, ViewError> {
        if bytes.len() > MAX_VIEW {
            return Err(ViewError::TooLarge(bytes.len()));
        }
        let mut view: Self =
            postcard::from_bytes(bytes).map_err(|e| ViewError::Malformed(e.to_string()))?;
        for u in &mut view.users {
            u.node = node.to_owned();
        }
        for s in &mut view.sessions {
            s.node = node.to_owned();
        }
        Ok(view)
    }
}

/// Whether `row` is one `filter` asks for (`Id` matches that id on every node).
pub fn user_matches(row: &UserInfo, filter: &UserFilter) -> bool {
    match filter {
        UserFilter::All => true,
        UserFilter::Name(name) => row.username == *name,
        UserFilter::Id(id) => row.id == *id,
        UserFilter::NodeId { node, id } => row.node == *node && row.id == *id,
    }
}

/// Whether the tunnel `row` is one that `target` ends. A plain `Id` is a local id and never
/// reaches another node; an empty session prefix names nothing.
pub fn target_matches(row: &UserInfo, target: &Target) -> bool {
    match target {
        Target::User(name) => row.username == *name,
        Target::Id(_) => false,
        Target::Session(prefix) => !prefix.is_empty() && row.session.starts_with(prefix.as_str()),
        Target::NodeId { node, id } => row.node == *node && row.id == *id,
    }
}

/// Whether `target` can name anything on another node than `this` (what main forwards).
pub fn reaches_others(target: &Target, this: &str) -> bool {
    match target {
        Target::User(_) | Target::Session(_) => true,
        Target::Id(_) => false,
        Target::NodeId { node, .. } => node != this,
    }
}

/// `target` as this node `this` applies it locally: a `NodeId` of this node is its `Id`,
/// of another node nothing (`None`).
pub fn local_target(target: &Target, this: &str) -> Option<Target> {
    match target {
        Target::NodeId { node, id } if node == this => Some(Target::Id(*id)),
        Target::NodeId { .. } => None,
        other => Some(other.clone()),
    }
}

/// The page of `rows` starting at row `from` (under [`ctl::PAGE_BUDGET`] encoded), and the
/// `from` of the next page (`None`: that was the last).
pub fn page<T: Serialize + Clone>(rows: &[T], from: u32) -> (Vec<T>, Option<u32>) {
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(rows.len());
    let rest = rows.get(start..).unwrap_or_default().to_vec();
    let first = ctl::pages(rest, ctl::PAGE_BUDGET)
        .into_iter()
        .next()
        .unwrap_or_default();
    let end = start.saturating_add(first.len());
    let next = (end < rows.len() && !first.is_empty())
        .then(|| u32::try_from(end).ok())
        .flatten();
    (first, next)
}

/// `ID@NODE` (occtl, ours): the connection `ID` of node `NODE`. `None` when there is no `@`.
pub fn parse_node_id(text: &str) -> Option<(u64, &str)> {
    let (id, node) = text.trim().split_once('@')?;
    let id: u64 = id.trim().parse().ok().filter(|n| *n > 0)?;
    let node = node.trim();
    super::valid_node_name(node).then_some((id, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, id: u64, user: &str, session: &str) -> UserInfo {
        let mut v = NodeView::default();
        v.users.push(UserInfo {
            id,
            username: user.into(),
            groupname: String::new(),
            device: "vpns0".into(),
            mtu: None,
            remote_ip: "10.0.0.2".parse().unwrap(),
            local_device_ip: "10.0.0.1".parse().unwrap(),
            ipv4: None,
            ptp_ipv4: None,
            user_agent: String::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            dpd_secs: 0,
            keepalive_secs: 0,
            hostname: String::new(),
            connected_at: 0,
            session_started_at: 0,
            session: session.into(),
            tls_ciphersuite: String::new(),
            dtls_cipher: String::new(),
            cstp_compression: String::new(),
            dtls_compression: String::new(),
            dns: vec![],
            nbns: vec![],
            split_dns_domains: vec![],
            routes: vec![],
            no_routes: vec![],
            iroutes: vec![],
            restricted_to_routes: false,
            restricted_to_ports: vec![],
            rx_limit_per_sec: 0,
            tx_limit_per_sec: 0,
            ipv6: None,
            ptp_ipv6: None,
            device_id: String::new(),
            device_platform: String::new(),
            macs: vec![],
            dtls_in_use: false,
            udp_peer: None,
            node: "liar".into(),
        });
        NodeView::decode(&v.encode().unwrap(), node)
            .unwrap()
            .users
            .remove(0)
    }

    #[test]
    fn decode_stamps_the_key_node_and_refuses_garbage() {
        assert_eq!(row("node-a", 1, "alice", "ab").node, "node-a");
        assert!(NodeView::decode(b"\xff\xff\xff\xff\xff\xff", "a").is_err());
        assert!(NodeView::decode(&vec![0u8; MAX_VIEW + 1], "a").is_err());
        assert_eq!(NodeView::decode(&[0, 0], "a").unwrap(), NodeView::default());
    }

    #[test]
    fn filters_and_targets() {
        let r = row("node-a", 7, "alice", "abcd");
        assert!(user_matches(&r, &UserFilter::All));
        assert!(user_matches(&r, &UserFilter::Id(7)));
        assert!(user_matches(
            &r,
            &UserFilter::NodeId {
                node: "node-a".into(),
                id: 7
            }
        ));
        assert!(!user_matches(
            &r,
            &UserFilter::NodeId {
                node: "node-b".into(),
                id: 7
            }
        ));
        assert!(target_matches(&r, &Target::User("alice".into())));
        assert!(!target_matches(&r, &Target::Id(7)));
        assert!(target_matches(&r, &Target::Session("ab".into())));
        assert!(!target_matches(&r, &Target::Session(String::new())));
        assert!(!reaches_others(&Target::Id(7), "node-b"));
        let on_a = Target::NodeId {
            node: "node-a".into(),
            id: 7,
        };
        assert!(reaches_others(&on_a, "node-b"));
        assert!(!reaches_others(&on_a, "node-a"));
        assert_eq!(local_target(&on_a, "node-a"), Some(Target::Id(7)));
        assert_eq!(local_target(&on_a, "node-b"), None);
    }

    #[test]
    fn pages_cover_every_row_once() {
        let rows: Vec<String> = (0..5000).map(|i| format!("{i:040}")).collect();
        let mut from = 0;
        let mut seen = Vec::new();
        for _ in 0..100 {
            let (p, next) = page(&rows, from);
            assert!(crate::ipc::encode(&p).is_ok());
            seen.extend(p);
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(seen, rows);
        assert_eq!(page(&rows, 99_999), (vec![], None));
        assert_eq!(page::<String>(&[], 0), (vec![], None));
    }

    #[test]
    fn node_ids() {
        assert_eq!(parse_node_id("12@node-a"), Some((12, "node-a")));
        assert_eq!(parse_node_id("12"), None);
        assert_eq!(parse_node_id("0@a"), None);
        assert_eq!(parse_node_id("x@a"), None);
        assert_eq!(parse_node_id("1@"), None);
        assert_eq!(parse_node_id("1@a b"), None);
    }
}
