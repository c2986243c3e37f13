//! `restrict-user-to-ports`: ocserv's syntax `tcp(443), udp(53), icmp()`, or `!(...)` for
//! everything but those. Comes from files panels write: parsed sans-IO and fuzzed.

use serde::{Deserialize, Serialize};

/// A parsed `restrict-user-to-ports` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRules {
    /// `!(...)`: the listed ports are the ones denied, everything else is allowed.
    pub negated: bool,
    pub rules: Vec<PortRule>,
}

/// One entry of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortRule {
    Tcp(u16),
    Udp(u16),
    Sctp(u16),
    Icmp,
    Icmpv6,
}

/// Parse a `restrict-user-to-ports` value (stub until the parser lands: refuses everything, so
/// a file using it fails closed).
pub fn parse(text: &str) -> Result<PortRules, String> {
    let _ = text;
    Err("restrict-user-to-ports is not supported yet".to_owned())
}
