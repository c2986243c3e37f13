//! Helpers shared by the configuration tests (each test file uses a subset).
#![allow(dead_code)]

use rocserv_proto::config::{parse, Parsed};

/// The mandatory options, so that a test sees only its own diagnostics.
pub(crate) const BASE: &str =
    "auth = pam\nserver-cert = /c.pem\nserver-key = /k.pem\nipv4-network = 10.1.0.0/16\n";

/// Parse `BASE` followed by `extra`.
pub(crate) fn with_base(extra: &str) -> Parsed {
    parse(&format!("{BASE}{extra}"), "t.conf")
}

/// Every diagnostic as its displayed line.
pub(crate) fn messages(parsed: &Parsed) -> Vec<String> {
    parsed.diagnostics.iter().map(ToString::to_string).collect()
}
