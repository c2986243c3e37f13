//! Bans shared between the nodes (doc/cluster.md "Bans"): the records main, sec-mod, the bus
//! and the store exchange, and the bounds every receiver checks. Sans-IO.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Most addresses in one message (points or bans): 256 IPv6 records of at most ~35 bytes
/// stay well under the bus's 16 KiB and the IPC's 64 KiB.
pub const MAX_PER_MESSAGE: usize = 256;
/// Most bans one node reads from the store on start or resync (one IPC answer; 64 KiB).
pub const MAX_READ: usize = 1024;

/// One running ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    /// The banned address (an IPv6 address is its /64, as main keys scores).
    pub ip: IpAddr,
    /// The score that earned it (shown by occtl).
    pub score: u32,
    /// Time left, in milliseconds (a duration, not a date: no clock is shared).
    pub remaining_ms: u64,
}

/// Ban points one node charged to an address, coalesced over a short window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanPoints {
    pub ip: IpAddr,
    pub points: u32,
}

/// `rocserv:ban:IP` (the address in Rust's canonical text form).
pub fn ban_key(ip: IpAddr) -> String {
    format!("rocserv:ban:{ip}")
}

/// The pattern matching every ban key (`SCAN ... MATCH`).
pub const BAN_PATTERN: &str = "rocserv:ban:*";

/// The address of a ban key; `None` for anything else (a store shared with other software, a
/// hostile writer).
pub fn ban_key_ip(key: &str) -> Option<IpAddr> {
    key.strip_prefix("rocserv:ban:")?.parse().ok()
}

/// One ban read back from the store: the key, its value (the score, decimal) and its `PTTL`
/// (ms; -1 = no expiry, -2 = gone). A key without an expiry is refused: every ban ends.
pub fn parse_stored(key: &str, value: Option<&[u8]>, pttl: i64) -> Option<BanRecord> {
    let ip = ban_key_ip(key)?;
    let remaining_ms = u64::try_from(pttl).ok().filter(|ms| *ms > 0)?;
    let score = match value {
        Some(v) => std::str::from_utf8(v).ok()?.parse().ok()?,
        None => return None,
    };
    Some(BanRecord {
        ip,
        score,
        remaining_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_stored_values() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2::".parse().unwrap();
        assert_eq!(ban_key(v4), "rocserv:ban:192.0.2.7");
        assert_eq!(ban_key(v6), "rocserv:ban:2001:db8:1:2::");
        assert_eq!(ban_key_ip(&ban_key(v6)), Some(v6));
        assert_eq!(ban_key_ip("rocserv:ban:nonsense"), None);
        assert_eq!(ban_key_ip("rocserv:node:a"), None);
        assert_eq!(
            parse_stored(&ban_key(v4), Some(b"12"), 5000),
            Some(BanRecord {
                ip: v4,
                score: 12,
                remaining_ms: 5000
            })
        );
        // No expiry, gone, not a number, no value: refused.
        assert_eq!(parse_stored(&ban_key(v4), Some(b"12"), -1), None);
        assert_eq!(parse_stored(&ban_key(v4), Some(b"12"), -2), None);
        assert_eq!(parse_stored(&ban_key(v4), Some(b"x"), 5000), None);
        assert_eq!(parse_stored(&ban_key(v4), Some(b"-3"), 5000), None);
        assert_eq!(parse_stored(&ban_key(v4), None, 5000), None);
    }

    #[test]
    fn a_full_message_fits_the_bus() {
        let ip: IpAddr = "ffff:ffff:ffff:ffff::".parse().unwrap();
        let bans = vec![
            BanRecord {
                ip,
                score: u32::MAX,
                remaining_ms: u64::MAX
            };
            MAX_PER_MESSAGE
        ];
        let m = super::super::bus::BusMessage {
            from: "x".repeat(crate::cluster::MAX_NODE_NAME),
            body: super::super::bus::BusBody::Banned(bans),
        };
        assert!(m.encode().is_ok());
        let big = vec![
            BanRecord {
                ip,
                score: u32::MAX,
                remaining_ms: u64::MAX
            };
            MAX_READ
        ];
        assert!(
            crate::ipc::encode(&crate::ipc::cluster::ClusterAnswer::Bans(big))
                .unwrap()
                .len()
                < crate::ipc::MAX_MESSAGE
        );
    }

    #[test]
    fn more_entries_than_a_node_sends_are_refused() {
        use super::super::bus::{BusBody, BusError, BusMessage};
        let p = BanPoints {
            ip: "192.0.2.1".parse().unwrap(),
            points: 1,
        };
        let over = BusMessage {
            from: "a".into(),
            body: BusBody::BanPoints(vec![p; MAX_PER_MESSAGE + 1]),
        };
        // Small enough in bytes; refused by count.
        let bytes = crate::ipc::encode(&over).unwrap();
        assert!(matches!(
            BusMessage::decode(&bytes),
            Err(BusError::OutOfBounds)
        ));
        let fine = BusMessage {
            from: "a".into(),
            body: BusBody::BanPoints(vec![p; MAX_PER_MESSAGE]),
        };
        assert_eq!(BusMessage::decode(&fine.encode().unwrap()).unwrap(), fine);
    }
}
