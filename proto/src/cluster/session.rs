//! The session record the nodes share through the store (doc/cluster.md "Sessions and
//! cookies"): postcard, decoded with bounds and checked field by field, since the store is
//! shared infrastructure that may hold anything. Never the cookie: the record's key is the
//! cookie's SHA-256 (sec-mod names it).

use serde::{Deserialize, Serialize};

use crate::ipc::worker_secmod::ClientFacts;
use crate::policy::file::PolicyFile;

/// Longest user, group or vhost name accepted from a record.
pub const MAX_NAME: usize = 256;
/// Longest certificate subject accepted from a record.
pub const MAX_SUBJECT: usize = 4096;
/// How far in the future a record's login time may be (clock differences between nodes).
pub const CLOCK_SLACK_MS: u64 = 60_000;
/// The record layout's version.
pub const RECORD_VERSION: u8 = 1;

/// A session as the store keeps it; its expiry is the key's TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u8,
    /// The session id, the same on every node.
    pub sid: u64,
    pub username: String,
    pub group: String,
    /// The `[vhost:NAME]` it was created in.
    pub vhost: Option<String>,
    /// What the client said at login (no certificate chain).
    pub facts: ClientFacts,
    pub cert_subject: Option<String>,
    /// What the auth backend granted.
    pub policy: Option<Box<PolicyFile>>,
    /// The login, Unix ms (session-timeout counts from it on every node).
    pub created_unix_ms: u64,
}

/// Why a record read from the store was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("undecodable session record: {0}")]
    Malformed(String),
    #[error("session record of an unknown version {0}")]
    Version(u8),
    #[error("session record with a bad {0}")]
    Field(&'static str),
}

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        crate::ipc::encode(self).map_err(|e| RecordError::Malformed(e.to_string()))
    }

    /// Decode and check a record (bounded by the IPC message size). `vhosts`: the sections
    /// this node knows; `now_unix_ms`: the caller's clock.
    pub fn decode(bytes: &[u8], now_unix_ms: u64, vhosts: &[&str]) -> Result<Self, RecordError> {
        let r: Self =
            crate::ipc::decode(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if r.version != RECORD_VERSION {
            return Err(RecordError::Version(r.version));
        }
        let name_ok = |s: &str| s.len() <= MAX_NAME && !s.chars().any(char::is_control);
        if r.username.is_empty() || !name_ok(&r.username) {
            return Err(RecordError::Field("user name"));
        }
        if !name_ok(&r.group) {
            return Err(RecordError::Field("group"));
        }
        if let Some(v) = &r.vhost {
            if !vhosts.contains(&v.as_str()) {
                return Err(RecordError::Field("vhost"));
            }
        }
        if r.facts.check().is_err() || !r.facts.cert_chain.is_empty() {
            return Err(RecordError::Field("client facts"));
        }
        let subject_ok = |s: &String| s.len() <= MAX_SUBJECT && !s.chars().any(char::is_control);
        if !r.cert_subject.as_ref().is_none_or(subject_ok) {
            return Err(RecordError::Field("certificate subject"));
        }
        if r.created_unix_ms > now_unix_ms.saturating_add(CLOCK_SLACK_MS) {
            return Err(RecordError::Field("login time"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            version: RECORD_VERSION,
            sid: 0x1234,
            username: "alice".into(),
            group: "staff".into(),
            vhost: Some("vpn.example.com".into()),
            facts: ClientFacts {
                device_id: Some("d".into()),
                ..Default::default()
            },
            cert_subject: Some("CN=alice".into()),
            policy: Some(Box::default()),
            created_unix_ms: 1_000_000,
        }
    }

    const NOW: u64 = 2_000_000;
    const VHOSTS: &[&str] = &["vpn.example.com"];

    #[test]
    fn record_roundtrip() {
        let r = record();
        let bytes = r.encode().unwrap();
        assert_eq!(Record::decode(&bytes, NOW, VHOSTS).unwrap(), r);
    }

    #[test]
    fn garbage_and_bad_fields_are_refused() {
        assert!(Record::decode(b"", NOW, VHOSTS).is_err());
        assert!(Record::decode(b"\xff\xff\xff\xff\xff\xff", NOW, VHOSTS).is_err());
        assert!(Record::decode(&vec![0u8; 70 * 1024], NOW, VHOSTS).is_err());
        let bytes = record().encode().unwrap();
        assert!(Record::decode(&bytes[..bytes.len() - 3], NOW, VHOSTS).is_err());
        let bad = |f: fn(&mut Record)| {
            let mut r = record();
            f(&mut r);
            Record::decode(&r.encode().unwrap(), NOW, VHOSTS)
        };
        assert_eq!(bad(|r| r.version = 2), Err(RecordError::Version(2)));
        assert!(bad(|r| r.username.clear()).is_err());
        assert!(bad(|r| r.username = "a\nb".into()).is_err());
        assert!(bad(|r| r.username = "a".repeat(MAX_NAME + 1)).is_err());
        assert!(bad(|r| r.group = "\u{7}".into()).is_err());
        assert!(bad(|r| r.vhost = Some("other.example".into())).is_err());
        assert!(bad(|r| r.facts.cert_chain = vec![vec![1]]).is_err());
        assert!(bad(|r| r.cert_subject = Some("x\0".into())).is_err());
        assert!(bad(|r| r.created_unix_ms = NOW + CLOCK_SLACK_MS + 1).is_err());
        assert!(bad(|r| r.vhost = None).is_ok());
    }
}
