//! Cluster (ours; doc/cluster.md): where the shared store is, what this node is called, and
//! the messages the nodes exchange ([`bus`]). Sans-IO: parsing and checking only; sec-mod
//! opens the connection.

pub mod bans;
pub mod bus;
pub mod session;
pub mod view;

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most one client request (a CONNECT, a login) spends on the store, all its round trips
/// together (sec-mod's and main's). Each command is bounded by 1 s, but a store that answers
/// every command in just under that bound would make a CONNECT (up to ~6 round trips) wait
/// ~6 s; with this budget the client waits at most 1.5 s for the store, then the request
/// finishes node-locally as if the store were down. A little more than one command's bound, so
/// that a store that does not answer at all is still found down (and the breaker opened) by a
/// request's first command.
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// Longest `cluster-node` name: it is part of store keys, log lines and occtl rows.
pub const MAX_NODE_NAME: usize = 64;

/// `cluster-store = redis://HOST:PORT/DB` or `rediss://...` (TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUrl {
    /// `rediss://`: TLS, the server's certificate checked against `cluster-store-ca-cert`
    /// (or the system's roots) and the host name.
    pub tls: bool,
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The logical database number (Redis `SELECT`).
    pub db: u16,
}

/// Default Redis/Valkey port.
pub const DEFAULT_PORT: u16 = 6379;

/// Why a `cluster-store` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    #[error("expected redis://HOST[:PORT][/DB] or rediss://HOST[:PORT][/DB]")]
    Scheme,
    #[error(
        "credentials do not belong in the URL (it shows in logs and `rocserv -t`): put \
         `[USER:]PASSWORD` in the file cluster-store-auth-file names"
    )]
    Credentials,
    #[error("no host")]
    Host,
    #[error("bad port {0:?}")]
    Port(String),
    #[error("bad database number {0:?} (0-65535)")]
    Db(String),
    #[error("query parameters are not supported")]
    Query,
}

impl StoreUrl {
    /// Parse a `cluster-store` value.
    pub fn parse(v: &str) -> Result<Self, StoreUrlError> {
        let (tls, rest) = if let Some(rest) = v.strip_prefix("rediss://") {
            (true, rest)
        } else if let Some(rest) = v.strip_prefix("redis://") {
            (false, rest)
        } else {
            return Err(StoreUrlError::Scheme);
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(StoreUrlError::Query);
        }
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(StoreUrlError::Credentials);
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(StoreUrlError::Host)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(StoreUrlError::Host)?),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(StoreUrlError::Host);
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| StoreUrlError::Port(p.to_owned()))?,
        };
        let db = match path {
            "" => 0,
            d => d.parse().map_err(|_| StoreUrlError::Db(d.to_owned()))?,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            db,
        })
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// Whether `name` can be a `cluster-node` name: 1-64 of `A-Z a-z 0-9 . _ -`, so that it is
/// safe in store keys, log lines and occtl's output without escaping.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `cluster-store-auth-file`'s first line: `PASSWORD` (the default user) or `USER:PASSWORD`
/// (an ACL user, Redis 6 and later). Trailing `\r`/`\n` are not part of it.
pub fn parse_auth_line(text: &str) -> Option<(Option<&str>, &str)> {
    let line = text.lines().next()?.trim_end_matches('\r');
    if line.is_empty() {
        return None;
    }
    Some(match line.split_once(':') {
        Some((user, password)) if !user.is_empty() => (Some(user), password),
        _ => (None, line),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("redis://10.0.0.5:6380/2"),
            Ok(StoreUrl {
                tls: false,
                host: "10.0.0.5".into(),
                port: 6380,
                db: 2
            })
        );
        let u = StoreUrl::parse("rediss://store.example.com").unwrap();
        assert!(u.tls);
        assert_eq!((u.port, u.db), (DEFAULT_PORT, 0));
        assert_eq!(u.to_string(), "rediss://store.example.com:6379/0");
        let v6 = StoreUrl::parse("redis://[fd00::5]:7000/").unwrap();
        assert_eq!(v6.host, "fd00::5");
        assert_eq!(v6.to_string(), "redis://[fd00::5]:7000/0");
    }

    #[test]
    fn bad_urls() {
        assert_eq!(StoreUrl::parse("http://x"), Err(StoreUrlError::Scheme));
        assert_eq!(
            StoreUrl::parse("redis://user:pw@host"),
            Err(StoreUrlError::Credentials)
        );
        assert_eq!(StoreUrl::parse("redis://:6379"), Err(StoreUrlError::Host));
        assert!(matches!(
            StoreUrl::parse("redis://h:0"),
            Err(StoreUrlError::Port(_))
        ));
        assert!(matches!(
            StoreUrl::parse("redis://h:99999"),
            Err(StoreUrlError::Port(_))
        ));
        assert!(matches!(
            StoreUrl::parse("redis://h/x"),
            Err(StoreUrlError::Db(_))
        ));
        assert_eq!(
            StoreUrl::parse("redis://h/0?x=1"),
            Err(StoreUrlError::Query)
        );
        assert_eq!(
            StoreUrl::parse("redis://[fd00::1"),
            Err(StoreUrlError::Host)
        );
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("vpn-a.example_1"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("a b"));
        assert!(!valid_node_name("a:b"));
        assert!(!valid_node_name(&"x".repeat(65)));
    }

    #[test]
    fn auth_lines() {
        assert_eq!(parse_auth_line("secret\n"), Some((None, "secret")));
        assert_eq!(
            parse_auth_line("rocserv:pa:ss\r\nignored"),
            Some((Some("rocserv"), "pa:ss"))
        );
        assert_eq!(parse_auth_line(":pw"), Some((None, ":pw")));
        assert_eq!(parse_auth_line("\n"), None);
        assert_eq!(parse_auth_line(""), None);
    }
}
