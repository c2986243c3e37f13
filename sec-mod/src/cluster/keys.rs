//! The store's key layout (doc/cluster.md "Data model"): every key rocserv writes starts with
//! [`PREFIX`], so a store (or database) shared with other software can be read and cleaned by
//! prefix. Pure functions: one place that names keys, so the documentation and the code agree.

/// Common prefix of every key and channel.
pub const PREFIX: &str = "rocserv:";

/// The pub/sub channel every node listens on ([`super::bus`]).
pub const BUS: &str = "rocserv:bus";

/// `rocserv:node:NAME`: a live node's heartbeat; expires [`super::NODE_TTL`] after its last
/// renewal, so a node that died drops out of the list by itself.
pub fn node(name: &str) -> String {
    format!("{PREFIX}node:{name}")
}

/// The pattern matching every node key (`SCAN ... MATCH`).
pub const NODE_PATTERN: &str = "rocserv:node:*";

/// The node name of a key made by [`node`].
pub fn node_name(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?.strip_prefix("node:")
}

/// Lower-case hex of `bytes` (a cookie's SHA-256, in key names).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys() {
        assert_eq!(node("vpn-a"), "rocserv:node:vpn-a");
        assert_eq!(node_name(&node("vpn-a")), Some("vpn-a"));
        assert_eq!(node_name("rocserv:ban:1.2.3.4"), None);
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
