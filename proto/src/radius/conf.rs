//! radcli's `radiusclient.conf` and its `servers` file, as ocserv's `radius[config=FILE]` reads
//! them (facts from radcli's etc/radiusclient.conf.in and etc/servers: one `key value` per line,
//! `#` comments; `authserver`/`acctserver` are comma-separated `host[:port][:secret]` entries,
//! `[IPv6]:port:secret` for IPv6; a server without a secret takes it from the `servers` file,
//! one `host secret` per line).
//!
//! Sans-IO: the caller reads the files (bounded) and resolves host names. Keys that change
//! nothing for a UDP client are accepted and ignored; keys we cannot honour, unknown keys and
//! bad values are errors that name the file and line.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Most servers per list (radcli keeps at most 8).
pub const MAX_SERVERS: usize = 8;
/// Longest shared secret we accept (RFC 2865 §3 sets no limit; radcli's is 48 octets, we are
/// lenient but bounded).
pub const MAX_SECRET: usize = 128;
/// Longest `radius_timeout` (seconds) and most `radius_retries`: a dead server must delay a
/// login by a bounded time.
pub const MAX_TIMEOUT_SECS: u32 = 60;
pub const MAX_RETRIES: u32 = 10;
/// radcli's defaults when the keys are absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;
pub const DEFAULT_RETRIES: u32 = 3;
/// The registered ports (RFC 2865 §3, RFC 2866 §3).
pub const AUTH_PORT: u16 = 1812;
pub const ACCT_PORT: u16 = 1813;

/// Keys radcli knows that change nothing for us: login programs (`login_radius`,
/// `login_local`, `auth_order`, `login_tries`, `nologin`, `issue`, `mapfile`, `seqfile`), debug
/// output, the dictionary (our attributes are built in) and dead-server bookkeeping (we try the
/// servers in order at every request). `tls-*` keys matter only with `serv-type tls`, refused.
const IGNORED: &[&str] = &[
    "auth_order",
    "login_tries",
    "login_radius",
    "login_local",
    "nologin",
    "issue",
    "mapfile",
    "seqfile",
    "clientdebug",
    "dictionary",
    "radius_deadtime",
    "tls-ca-file",
    "tls-cert-file",
    "tls-key-file",
    "tls-verify-hostname",
];

/// A shared secret; never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// One `authserver`/`acctserver` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// A host name or an address (brackets removed).
    pub host: String,
    pub port: Option<u16>,
    /// `None`: look it up in the `servers` file.
    pub secret: Option<Secret>,
}

/// What `radiusclient.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConf {
    pub auth_servers: Vec<ServerSpec>,
    pub acct_servers: Vec<ServerSpec>,
    /// `servers`: the file of per-host secrets.
    pub servers_file: Option<PathBuf>,
    pub nas_identifier: Option<String>,
    /// `default_realm`: appended as `@realm` to user names without one (as ocserv).
    pub default_realm: Option<String>,
    /// Seconds to wait for each answer.
    pub timeout_secs: u32,
    /// Sends to one server before the next is tried (0 counts as 1).
    pub retries: u32,
    /// `bindaddr`; `None` for `*` or absent.
    pub bindaddr: Option<IpAddr>,
}

/// A line of a file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// `key value` lines without comments and blank lines, numbered from 1.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let (k, v) = l
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((l, ""));
        Some((i.saturating_add(1), k, v.trim()))
    })
}

/// Parse `radiusclient.conf`; `origin` names it in errors.
pub fn parse_conf(text: &str, origin: &str) -> Result<ClientConf, ConfError> {
    let mut c = ClientConf {
        auth_servers: Vec::new(),
        acct_servers: Vec::new(),
        servers_file: None,
        nas_identifier: None,
        default_realm: None,
        timeout_secs: DEFAULT_TIMEOUT_SECS,
        retries: DEFAULT_RETRIES,
        bindaddr: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (line, key, value) in lines(text) {
        let err = |message: String| ConfError {
            file: origin.to_owned(),
            line,
            message,
        };
        if seen.contains(&key) {
            return Err(err(format!("`{key}` is given twice")));
        }
        seen.push(key);
        match key {
            "authserver" => c.auth_servers = server_list(value).map_err(err)?,
            "acctserver" => c.acct_servers = server_list(value).map_err(err)?,
            "servers" => c.servers_file = Some(absolute(value).map_err(err)?),
            "nas-identifier" => c.nas_identifier = text_value(value).map_err(err)?,
            "default_realm" => c.default_realm = text_value(value).map_err(err)?,
            "radius_timeout" => {
                c.timeout_secs = number(value, 1, MAX_TIMEOUT_SECS).map_err(err)?;
            }
            "radius_retries" => c.retries = number(value, 0, MAX_RETRIES).map_err(err)?,
            "bindaddr" => {
                c.bindaddr = match value {
                    "" | "*" => None,
                    v => Some(v.parse().map_err(|_| {
                        err(format!(
                            "bindaddr {v:?} is not an address (host names are not resolved)"
                        ))
                    })?),
                }
            }
            "serv-type" => {
                if !value.eq_ignore_ascii_case("udp") {
                    return Err(err(format!(
                        "serv-type {value:?} is not supported: rocserv speaks RADIUS over UDP only"
                    )));
                }
            }
            "namespace" => {
                return Err(err(
                    "`namespace` is not supported: rocserv sends from its own network namespace"
                        .to_owned(),
                ))
            }
            k if IGNORED.contains(&k) => {}
            k => return Err(err(format!("unknown radcli option `{k}`"))),
        }
    }
    if c.auth_servers.is_empty() && c.acct_servers.is_empty() {
        return Err(ConfError {
            file: origin.to_owned(),
            line: 0,
            message: "no `authserver` or `acctserver`".to_owned(),
        });
    }
    Ok(c)
}

/// Parse the `servers` file: `host secret` per line; returns (host, secret) pairs in order.
pub fn parse_servers(text: &str, origin: &str) -> Result<Vec<(String, Secret)>, ConfError> {
    let mut out = Vec::new();
    for (line, host, secret) in lines(text) {
        let err = |message: &str| ConfError {
            file: origin.to_owned(),
            line,
            message: message.to_owned(),
        };
        if secret.is_empty() {
            return Err(err("a server without a secret"));
        }
        check_secret(secret).map_err(|m| err(&m))?;
        if out.len() >= 64 {
            return Err(err("more than 64 servers"));
        }
        out.push((host.to_owned(), Secret(secret.to_owned())));
    }
    Ok(out)
}

/// The secret for `host` (and `port`) in a parsed `servers` file: an entry `host:port` first,
/// then `host` (radcli matches the server's name as written).
pub fn secret_for<'a>(
    servers: &'a [(String, Secret)],
    host: &str,
    port: Option<u16>,
) -> Option<&'a Secret> {
    let with_port = port.map(|p| format!("{host}:{p}"));
    servers
        .iter()
        .find(|(h, _)| Some(h) == with_port.as_ref())
        .or_else(|| servers.iter().find(|(h, _)| h == host))
        .map(|(_, s)| s)
}

fn check_secret(s: &str) -> Result<(), String> {
    if s.len() > MAX_SECRET {
        return Err(format!("a shared secret longer than {MAX_SECRET} octets"));
    }
    if s.chars().any(char::is_control) {
        return Err("a shared secret with a control character".to_owned());
    }
    Ok(())
}

fn server_list(v: &str) -> Result<Vec<ServerSpec>, String> {
    let list: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err("an empty server list".to_owned());
    }
    if list.len() > MAX_SERVERS {
        return Err(format!("more than {MAX_SERVERS} servers"));
    }
    list.into_iter().map(server).collect()
}

/// `host`, `host:port`, `host:port:secret`, `[v6]`, `[v6]:port:secret` (an empty port is the
/// default port).
fn server(s: &str) -> Result<ServerSpec, String> {
    let (host, rest) = if let Some(inner) = s.strip_prefix('[') {
        let (host, rest) = inner
            .split_once(']')
            .ok_or_else(|| format!("server {s:?}: `[` without `]`"))?;
        let rest = match rest {
            "" => None,
            r => Some(
                r.strip_prefix(':')
                    .ok_or_else(|| format!("server {s:?}: expected `:` after `]`"))?,
            ),
        };
        (host, rest)
    } else {
        match s.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("server {s:?}: bad host"));
    }
    let (port, secret) = match rest {
        None => ("", None),
        Some(r) => match r.split_once(':') {
            Some((p, secret)) => (p, Some(secret)),
            None => (r, None),
        },
    };
    let port = match port {
        "" => None,
        p => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("server {s:?}: bad port {p:?}"))?,
        ),
    };
    let secret = match secret {
        None | Some("") => None,
        Some(secret) => {
            check_secret(secret)?;
            Some(Secret(secret.to_owned()))
        }
    };
    Ok(ServerSpec {
        host: host.to_owned(),
        port,
        secret,
    })
}

fn absolute(v: &str) -> Result<PathBuf, String> {
    if v.starts_with('/') {
        Ok(PathBuf::from(v))
    } else {
        Err(format!("{v:?} is not an absolute path"))
    }
}

fn text_value(v: &str) -> Result<Option<String>, String> {
    if v.len() > 253 {
        return Err("longer than 253 octets".to_owned());
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

fn number(v: &str, min: u32, max: u32) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("expected a number from {min} to {max}, found {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# RADIUS settings
nas-identifier my-server
authserver \t127.0.0.1:1812:s3cret, radius.example:1645, [::1]:18120:six:colon
acctserver localhost
servers /etc/radcli/servers
dictionary /etc/radcli/dictionary
default_realm
radius_timeout 3
radius_retries 2
bindaddr *
login_tries 4
seqfile /var/run/radius.seq
";

    #[test]
    fn sample_file() {
        let c = parse_conf(SAMPLE, "rc.conf").unwrap();
        assert_eq!(
            c.auth_servers,
            [
                ServerSpec {
                    host: "127.0.0.1".into(),
                    port: Some(1812),
                    secret: Some(Secret("s3cret".into())),
                },
                ServerSpec {
                    host: "radius.example".into(),
                    port: Some(1645),
                    secret: None,
                },
                ServerSpec {
                    host: "::1".into(),
                    port: Some(18120),
                    secret: Some(Secret("six:colon".into())),
                },
            ]
        );
        assert_eq!(c.acct_servers[0].host, "localhost");
        assert_eq!(c.acct_servers[0].port, None);
        assert_eq!(c.servers_file, Some("/etc/radcli/servers".into()));
        assert_eq!(c.nas_identifier.as_deref(), Some("my-server"));
        assert_eq!(c.default_realm, None);
        assert_eq!((c.timeout_secs, c.retries, c.bindaddr), (3, 2, None));
        // Secrets never reach a log line through Debug.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_conf("authserver a\nfrobnicate 1\n", "/etc/rc.conf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/rc.conf:2: unknown radcli option `frobnicate`"
        );
        for (text, line) in [
            ("authserver a\nserv-type tls\n", 2),
            ("namespace vpn\nauthserver a\n", 1),
            ("authserver a\nradius_timeout 0\n", 2),
            ("authserver a\nradius_retries 99\n", 2),
            ("authserver a\nbindaddr host.example\n", 2),
            ("authserver a:0\n", 1),
            ("authserver a:99999\n", 1),
            ("authserver [::1\n", 1),
            ("authserver a\nauthserver b\n", 2),
            ("authserver a\nservers etc/servers\n", 2),
            ("authserver ,\n", 1),
            ("authserver a,b,c,d,e,f,g,h,i\n", 1),
        ] {
            assert_eq!(parse_conf(text, "f").unwrap_err().line, line, "{text}");
        }
        assert_eq!(parse_conf("# nothing\n", "f").unwrap_err().line, 0);
        assert!(parse_conf("authserver a\nserv-type udp\ntls-ca-file /x\n", "f").is_ok());
        let long = format!("authserver a::{}\n", "x".repeat(MAX_SECRET + 1));
        assert!(parse_conf(&long, "f").is_err());
    }

    #[test]
    fn servers_file() {
        let s = parse_servers(
            "## host  secret\n127.0.0.1:1812\tone\nlocalhost two\nradius.example three\n",
            "servers",
        )
        .unwrap();
        assert_eq!(
            secret_for(&s, "127.0.0.1", Some(1812)),
            Some(&Secret("one".into()))
        );
        assert_eq!(
            secret_for(&s, "localhost", Some(1812)),
            Some(&Secret("two".into()))
        );
        assert_eq!(
            secret_for(&s, "radius.example", None),
            Some(&Secret("three".into()))
        );
        assert_eq!(secret_for(&s, "127.0.0.1", None), None);
        assert_eq!(
            parse_servers("a\n", "servers").unwrap_err().to_string(),
            "servers:1: a server without a secret"
        );
    }
}
