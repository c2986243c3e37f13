//! Messages between the nodes, over the store's pub/sub channel (`rocserv:bus`; sec-mod's
//! `cluster::keys::BUS`). Pub/sub
//! is fire-and-forget: a node that is disconnected misses what was published meanwhile, so
//! every message here is either a hint whose state also lives in a key (re-read on resync), or
//! an order whose loss is harmless (doc/cluster.md "Guarantees").
//!
//! Encoded with postcard (as the IPC messages) with the sender's node name; decoding is bounded
//! and never trusts the length: a store shared with other software may carry anything.

use serde::{Deserialize, Serialize};

/// Largest message published or accepted.
pub const MAX_BUS_MESSAGE: usize = 16 * 1024;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusMessage {
    /// The sending node (a node ignores its own messages).
    pub from: String,
    pub body: BusBody,
}

/// What a node tells the others. New kinds go at the end (older nodes log and skip what they
/// cannot decode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BusBody {
    /// The node is draining or shutting down: its tunnels will end and their sessions stay
    /// resumable elsewhere.
    Leaving,
    /// `node` (the addressee) must end its tunnel of session `sid` served by its `worker`
    /// (the claim's previous value): the sender took the session's claim (a CONNECT with its
    /// cookie arrived there). A newer tunnel of the session on `node` (another worker) is
    /// left alone. Also re-checked by the owner's claim renewal while the sender holds the
    /// claim (doc/cluster.md "Sessions and cookies").
    Takeover { node: String, sid: u64, worker: u64 },
    /// The session whose cookie hashes to `cookie_sha256` was deleted (user disconnect,
    /// terminate): every node drops its copy, so the cookie is dead everywhere.
    SessionDeleted { cookie_sha256: [u8; 32] },
    /// Ban points the sender charged (coalesced per address; at most
    /// [`super::bans::MAX_PER_MESSAGE`]): the receivers add them without passing them on.
    BanPoints(Vec<super::bans::BanPoints>),
    /// Bans the sender started (or re-asserts on resync); also in `rocserv:ban:IP` keys.
    Banned(Vec<super::bans::BanRecord>),
    /// occtl `unban ip` on the sender: the ban and score of this address end everywhere.
    Unban(std::net::IpAddr),
    /// An occtl `disconnect`/`terminate` on the sending node: each node ends what `target`
    /// names among its own tunnels (a `NodeId` only on that node).
    End {
        target: crate::ipc::ctl::Target,
        terminate: bool,
    },
}

/// Why a bus payload was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus message of {0} bytes exceeds {MAX_BUS_MESSAGE}")]
    TooLarge(usize),
    #[error("bus message with more entries than a node sends")]
    OutOfBounds,
    #[error("malformed bus message")]
    Malformed(#[from] crate::ipc::IpcError),
}

impl BusMessage {
    /// Whether the body is within the bounds every receiver checks (a node sends nothing
    /// bigger; anything bigger came from elsewhere), checked by [`Self::decode`].
    pub fn within_bounds(&self) -> bool {
        match &self.body {
            BusBody::BanPoints(p) => p.len() <= super::bans::MAX_PER_MESSAGE,
            BusBody::Banned(b) => b.len() <= super::bans::MAX_PER_MESSAGE,
            BusBody::Takeover { node, .. } => super::valid_node_name(node),
            BusBody::Leaving
            | BusBody::Unban(_)
            | BusBody::SessionDeleted { .. }
            | BusBody::End { .. } => true,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, BusError> {
        let bytes = crate::ipc::encode(self)?;
        if bytes.len() > MAX_BUS_MESSAGE {
            return Err(BusError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BusError> {
        if bytes.len() > MAX_BUS_MESSAGE {
            return Err(BusError::TooLarge(bytes.len()));
        }
        let msg: Self = crate::ipc::decode(bytes)?;
        if !msg.within_bounds() {
            return Err(BusError::OutOfBounds);
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        let m = BusMessage {
            from: "a".into(),
            body: BusBody::Leaving,
        };
        assert_eq!(BusMessage::decode(&m.encode().unwrap()).unwrap(), m);
        for body in [
            BusBody::Takeover {
                node: "b".into(),
                sid: 7,
                worker: 9,
            },
            BusBody::SessionDeleted {
                cookie_sha256: [3; 32],
            },
        ] {
            let m = BusMessage {
                from: "a".into(),
                body,
            };
            assert_eq!(BusMessage::decode(&m.encode().unwrap()).unwrap(), m);
        }
        assert!(BusMessage::decode(b"\xff\xff\xff\xff\xff").is_err());
        assert!(BusMessage::decode(&[]).is_err());
        assert!(BusMessage::decode(&vec![0u8; MAX_BUS_MESSAGE + 1]).is_err());
    }
}
