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
    #[error("malformed bus message")]
    Malformed(#[from] crate::ipc::IpcError),
}

impl BusMessage {
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
        Ok(crate::ipc::decode(bytes)?)
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
        assert!(BusMessage::decode(b"\xff\xff\xff\xff\xff").is_err());
        assert!(BusMessage::decode(&[]).is_err());
        assert!(BusMessage::decode(&vec![0u8; MAX_BUS_MESSAGE + 1]).is_err());
    }
}
