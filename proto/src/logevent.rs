//! The log lines tools parse (fail2ban filters, log-based exporters, panels), in ocserv's
//! wording and shape, and their JSON-lines form (sans-IO: the caller passes the time).
//!
//! ocserv prefixes each line with the process part that wrote it (facts read from ocserv
//! 1.1.6's output, doc/logs.md): `main[USER]:IP:PORT message` (a client's connection; without
//! a user yet `main:IP:PORT message`), `main: message` (the server itself), `worker[USER]: IP
//! message` (`worker: IP message` before the login), `sec-mod: message`. rocserv writes the
//! same shapes after its own syslog tag (`rocserv[PID]: `, `rocserv-sm[PID]: `).
//!
//! User names come from clients: in a line they are escaped by [`escape_name`] so that no name
//! can close the `[USER]` or `'USER'` it sits in, add a field, or start a new line (a name
//! `x]: 6.6.6.6 failed ...` would otherwise make a filter ban 6.6.6.6). In JSON every string is
//! escaped by [`json_string`].

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Which rocserv process writes a line (the `process` key of a JSON line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Main,
    SecMod,
    Worker,
}

impl Process {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::SecMod => "sec-mod",
            Self::Worker => "worker",
        }
    }
}

/// Why a session ended, in ocserv's words (its `discon_reason_to_str`, as printed in
/// `user disconnected (reason: ...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    Unspecified,
    UserDisconnected,
    ClientDisconnected,
    ServerDisconnected,
    IdleTimeout,
    DpdTimeout,
    Error,
    SessionTimeout,
}

impl DisconnectReason {
    pub const fn text(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::UserDisconnected => "user disconnected",
            Self::ClientDisconnected => "anyconnect client disconnected",
            Self::ServerDisconnected => "server disconnected",
            Self::IdleTimeout => "idle timeout",
            Self::DpdTimeout => "DPD timeout",
            Self::Error => "unspecified error",
            Self::SessionTimeout => "session timeout",
        }
    }
}

/// One event tools parse. `peer` is the client's address as main saw it (never a worker's
/// word); `user` is the login name (escaped when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// main: a cookie opened a session for a connection (ocserv: `new user session`).
    NewSession { user: &'a str, peer: SocketAddr },
    /// main: the tunnel was granted (connect-script passed): `user logged in`.
    LoggedIn { user: &'a str, peer: SocketAddr },
    /// main: the connect-script refused the user: `failed authentication attempt for user 'U'`.
    ScriptRefused { user: &'a str, peer: SocketAddr },
    /// main: the tunnel ended: `user disconnected (reason: R, rx: N, tx: N)`; rx = bytes from
    /// the client, tx = bytes to it.
    Disconnected {
        user: &'a str,
        peer: SocketAddr,
        reason: DisconnectReason,
        rx: u64,
        tx: u64,
    },
    /// sec-mod, written in ocserv's worker shape: a login failed
    /// (`worker[U]: IP failed authentication for 'U'`).
    AuthFailed { user: &'a str, ip: IpAddr },
    /// sec-mod: a cookie was turned into a session at CONNECT: `initiating session for user
    /// 'U' (session: ID)`.
    SessionInitiated { user: &'a str, session: &'a str },
    /// sec-mod: a session's cookie is no longer valid (logout, occtl, expiry): `invalidating
    /// session of user 'U' (session: ID)`.
    SessionInvalidated { user: &'a str, session: &'a str },
    /// main, for the worker: `worker[U]: IP DTLS handshake completed (link MTU: N, data MTU: N)`.
    DtlsEstablished {
        user: &'a str,
        ip: IpAddr,
        link_mtu: u16,
        data_mtu: u16,
    },
    /// main: `termination request received; waiting for sessions to die` (SIGTERM, SIGINT,
    /// occtl stop).
    Shutdown,
    /// main: an address reached `max-ban-score`: `added IP 'IP' (with score N) to ban list,
    /// will be reset at: DATE` (DATE in ctime's layout, UTC).
    Banned {
        ip: IpAddr,
        score: u32,
        until: &'a str,
    },
    /// main: `rejected connection from banned IP: IP`.
    RejectedBanned { ip: IpAddr },
}

impl Event<'_> {
    /// The event's stable name (the `event` key of a JSON line).
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NewSession { .. } => "new-session",
            Self::LoggedIn { .. } => "logged-in",
            Self::ScriptRefused { .. } => "connect-script-refused",
            Self::Disconnected { .. } => "disconnected",
            Self::AuthFailed { .. } => "auth-failed",
            Self::SessionInitiated { .. } => "session-initiated",
            Self::SessionInvalidated { .. } => "session-invalidated",
            Self::DtlsEstablished { .. } => "dtls-established",
            Self::Shutdown => "shutdown",
            Self::Banned { .. } => "banned",
            Self::RejectedBanned { .. } => "rejected-banned",
        }
    }

    /// The process whose part of the line this is (`main`, `worker`, `sec-mod`).
    pub const fn process(&self) -> Process {
        match self {
            Self::AuthFailed { .. } | Self::DtlsEstablished { .. } => Process::Worker,
            Self::SessionInitiated { .. } | Self::SessionInvalidated { .. } => Process::SecMod,
            _ => Process::Main,
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Self::NewSession { user, .. }
            | Self::LoggedIn { user, .. }
            | Self::ScriptRefused { user, .. }
            | Self::Disconnected { user, .. }
            | Self::AuthFailed { user, .. }
            | Self::SessionInitiated { user, .. }
            | Self::SessionInvalidated { user, .. }
            | Self::DtlsEstablished { user, .. } => Some(*user),
            Self::Shutdown | Self::Banned { .. } | Self::RejectedBanned { .. } => None,
        }
    }

    fn peer(&self) -> (Option<IpAddr>, Option<u16>) {
        match self {
            Self::NewSession { peer, .. }
            | Self::LoggedIn { peer, .. }
            | Self::ScriptRefused { peer, .. }
            | Self::Disconnected { peer, .. } => (Some(canonical(peer.ip())), Some(peer.port())),
            Self::AuthFailed { ip, .. }
            | Self::DtlsEstablished { ip, .. }
            | Self::Banned { ip, .. }
            | Self::RejectedBanned { ip } => (Some(canonical(*ip)), None),
            Self::Shutdown | Self::SessionInitiated { .. } | Self::SessionInvalidated { .. } => {
                (None, None)
            }
        }
    }

    /// The message after the process part (`user logged in`).
    pub fn message(&self) -> String {
        match self {
            Self::NewSession { .. } => "new user session".to_owned(),
            Self::LoggedIn { .. } => "user logged in".to_owned(),
            Self::ScriptRefused { user, .. } => {
                format!(
                    "failed authentication attempt for user '{}'",
                    escape_name(user)
                )
            }
            Self::Disconnected { reason, rx, tx, .. } => format!(
                "user disconnected (reason: {}, rx: {rx}, tx: {tx})",
                reason.text()
            ),
            Self::AuthFailed { user, .. } => {
                format!("failed authentication for '{}'", escape_name(user))
            }
            Self::SessionInitiated { user, session } => format!(
                "initiating session for user '{}' (session: {})",
                escape_name(user),
                escape_name(session)
            ),
            Self::SessionInvalidated { user, session } => format!(
                "invalidating session of user '{}' (session: {})",
                escape_name(user),
                escape_name(session)
            ),
            Self::DtlsEstablished {
                link_mtu, data_mtu, ..
            } => format!("DTLS handshake completed (link MTU: {link_mtu}, data MTU: {data_mtu})"),
            Self::Shutdown => {
                "termination request received; waiting for sessions to die".to_owned()
            }
            Self::Banned { ip, score, until } => format!(
                "added IP '{}' (with score {score}) to ban list, will be reset at: {until}",
                canonical(*ip)
            ),
            Self::RejectedBanned { ip } => {
                format!("rejected connection from banned IP: {}", canonical(*ip))
            }
        }
    }

    /// The whole text after the syslog tag, in ocserv's shape
    /// (`main[bob]:192.0.2.7:40000 user logged in`).
    pub fn line(&self) -> String {
        let message = self.message();
        match self {
            Self::NewSession { user, peer }
            | Self::LoggedIn { user, peer }
            | Self::ScriptRefused { user, peer }
            | Self::Disconnected { user, peer, .. } => {
                format!("{} {message}", main_prefix(Some(*user), Some(*peer)))
            }
            Self::AuthFailed { user, ip } | Self::DtlsEstablished { user, ip, .. } => {
                format!("{} {message}", worker_prefix(Some(*user), *ip))
            }
            Self::SessionInitiated { .. } | Self::SessionInvalidated { .. } => {
                format!("sec-mod: {message}")
            }
            Self::Shutdown | Self::Banned { .. } | Self::RejectedBanned { .. } => {
                format!("main: {message}")
            }
        }
    }

    /// The event's own keys of a JSON line, beyond the common ones.
    fn extra(&self, out: &mut String) {
        match self {
            Self::Disconnected { reason, rx, tx, .. } => {
                let _ = write!(
                    out,
                    ",\"reason\":{},\"rx\":{rx},\"tx\":{tx}",
                    json_string(reason.text())
                );
            }
            Self::SessionInitiated { session, .. } | Self::SessionInvalidated { session, .. } => {
                let _ = write!(out, ",\"session\":{}", json_string(session));
            }
            Self::DtlsEstablished {
                link_mtu, data_mtu, ..
            } => {
                let _ = write!(out, ",\"link_mtu\":{link_mtu},\"data_mtu\":{data_mtu}");
            }
            Self::Banned { score, until, .. } => {
                let _ = write!(out, ",\"score\":{score},\"until\":{}", json_string(until));
            }
            _ => {}
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 client) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `main[USER]:IP:PORT`, `main:IP:PORT` (no user yet) or `main:` (no client).
pub fn main_prefix(user: Option<&str>, peer: Option<SocketAddr>) -> String {
    let name = user
        .filter(|u| !u.is_empty())
        .map(|u| format!("[{}]", escape_name(u)))
        .unwrap_or_default();
    let addr = peer
        .map(|p| SocketAddr::new(canonical(p.ip()), p.port()).to_string())
        .unwrap_or_default();
    format!("main{name}:{addr}")
}

/// `worker[USER]: IP` or `worker: IP` (no user yet).
pub fn worker_prefix(user: Option<&str>, ip: IpAddr) -> String {
    let name = user
        .filter(|u| !u.is_empty())
        .map(|u| format!("[{}]", escape_name(u)))
        .unwrap_or_default();
    format!("worker{name}: {}", canonical(ip))
}

/// A client-chosen name as it may appear inside `[...]` or `'...'` in a line: printable ASCII
/// stays, except that `\`, space, `'`, `"`, `[` and `]` become `\xNN` like every control byte,
/// DEL and non-ASCII byte. The result cannot close its brackets or quotes, add a field or
/// start a line, and maps back to the name without ambiguity.
pub fn escape_name(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        match b {
            b'\\' | b' ' | b'\'' | b'"' | b'[' | b']' => {}
            0x21..=0x7e => {
                out.push(char::from(b));
                continue;
            }
            _ => {}
        }
        let hex = |nibble: u8| char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'?'));
        out.push_str("\\x");
        out.push(hex(b >> 4));
        out.push(hex(b & 0x0f));
    }
    out
}

/// `s` as a JSON string literal (RFC 8259 §7): `"` and `\` escaped, every control character
/// (C0, DEL, C1) as `\u00XX`, and also U+2028/U+2029 (line separators to some readers), so a
/// line holds exactly one JSON object whatever `s` holds.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The common part of one JSON log line.
#[derive(Debug, Clone, Copy)]
pub struct JsonHead<'a> {
    /// RFC 3339 UTC ([`rfc3339`]).
    pub time: &'a str,
    pub process: Process,
    pub pid: u32,
    /// `error`, `warning`, `info`, `debug`, `trace`.
    pub level: &'a str,
}

/// One JSON line (without newline) for an event: `time`, `process`, `pid`, `level`,
/// `event`, `user`, `ip`, `port`, `message` always (null when not known), then the event's own
/// keys. `message` is the ocserv-shaped text ([`Event::line`]).
pub fn json_event(head: JsonHead<'_>, event: &Event<'_>) -> String {
    let (ip, port) = event.peer();
    let mut out = json_common(
        head,
        Some(event.name()),
        event.user(),
        ip,
        port,
        &event.line(),
    );
    event.extra(&mut out);
    out.push('}');
    out
}

/// One JSON line for free text: the same keys, `event` null. `peer` when the text is about a
/// client's connection (a worker's relayed line).
pub fn json_text(
    head: JsonHead<'_>,
    user: Option<&str>,
    peer: Option<(IpAddr, Option<u16>)>,
    message: &str,
) -> String {
    let (ip, port) = peer.map_or((None, None), |(ip, port)| (Some(canonical(ip)), port));
    let mut out = json_common(head, None, user, ip, port, message);
    out.push('}');
    out
}

fn json_common(
    head: JsonHead<'_>,
    event: Option<&str>,
    user: Option<&str>,
    ip: Option<IpAddr>,
    port: Option<u16>,
    message: &str,
) -> String {
    let opt = |s: Option<String>| s.unwrap_or_else(|| "null".to_owned());
    format!(
        "{{\"time\":{},\"process\":{},\"pid\":{},\"level\":{},\"event\":{},\"user\":{},\"ip\":{},\"port\":{},\"message\":{}",
        json_string(head.time),
        json_string(head.process.name()),
        head.pid,
        json_string(head.level),
        opt(event.map(json_string)),
        opt(user.map(json_string)),
        opt(ip.map(|ip| json_string(&ip.to_string()))),
        opt(port.map(|p| p.to_string())),
        json_string(message),
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, public domain algorithm).
// Callers pass days of a u64 second count (< 2^64 / 86400 < 2^48): no step comes near i64's
// range, and every divisor is a non-zero constant.
#[allow(clippy::arithmetic_side_effects)]
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-12-05T11:34:24.123Z` for milliseconds since the Unix epoch.
pub fn rfc3339(unix_millis: u64) -> String {
    let secs = unix_millis / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_millis % 1000
    )
}

/// ctime's layout (`Sat Dec  5 11:34:24 2026`, as ocserv's ban line), UTC.
pub fn ctime(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil(i64::try_from(days).unwrap_or(0));
    let weekday = DAYS
        .get(usize::try_from(days % 7).unwrap_or(0))
        .copied()
        .unwrap_or("?");
    let month = MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("?");
    format!(
        "{weekday} {month} {d:>2} {:02}:{:02}:{:02} {y}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.99.0.2:38010".parse().unwrap()
    }

    // Every expected line below is ocserv 1.1.6's output for the same event (captured from
    // `ocserv -f -d 3`, see doc/logs.md), after its `ocserv[PID]: ` tag.
    #[test]
    fn lines_have_ocserv_wording_and_shape() {
        let ip: IpAddr = "10.99.0.2".parse().unwrap();
        let cases = [
            (
                Event::NewSession {
                    user: "test1",
                    peer: peer(),
                },
                "main[test1]:10.99.0.2:38010 new user session",
            ),
            (
                Event::LoggedIn {
                    user: "test1",
                    peer: peer(),
                },
                "main[test1]:10.99.0.2:38010 user logged in",
            ),
            (
                Event::Disconnected {
                    user: "test1",
                    peer: peer(),
                    reason: DisconnectReason::UserDisconnected,
                    rx: 48,
                    tx: 352,
                },
                "main[test1]:10.99.0.2:38010 user disconnected (reason: user disconnected, rx: 48, tx: 352)",
            ),
            (
                Event::Disconnected {
                    user: "test1",
                    peer: peer(),
                    reason: DisconnectReason::ServerDisconnected,
                    rx: 48,
                    tx: 0,
                },
                "main[test1]:10.99.0.2:38010 user disconnected (reason: server disconnected, rx: 48, tx: 0)",
            ),
            (
                Event::AuthFailed {
                    user: "test2",
                    ip,
                },
                "worker[test2]: 10.99.0.2 failed authentication for 'test2'",
            ),
            (
                Event::SessionInitiated {
                    user: "test1",
                    session: "tvaCK7",
                },
                "sec-mod: initiating session for user 'test1' (session: tvaCK7)",
            ),
            (
                Event::SessionInvalidated {
                    user: "test1",
                    session: "tvaCK7",
                },
                "sec-mod: invalidating session of user 'test1' (session: tvaCK7)",
            ),
            (
                Event::DtlsEstablished {
                    user: "test1",
                    ip,
                    link_mtu: 1500,
                    data_mtu: 1162,
                },
                "worker[test1]: 10.99.0.2 DTLS handshake completed (link MTU: 1500, data MTU: 1162)",
            ),
            (
                Event::Shutdown,
                "main: termination request received; waiting for sessions to die",
            ),
            (
                Event::Banned {
                    ip,
                    score: 80,
                    until: "Sat Dec  5 11:34:24 2026",
                },
                "main: added IP '10.99.0.2' (with score 80) to ban list, will be reset at: Sat Dec  5 11:34:24 2026",
            ),
            (
                Event::RejectedBanned { ip },
                "main: rejected connection from banned IP: 10.99.0.2",
            ),
            (
                Event::ScriptRefused {
                    user: "test1",
                    peer: peer(),
                },
                "main[test1]:10.99.0.2:38010 failed authentication attempt for user 'test1'",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(event.line(), want);
        }
    }

    #[test]
    fn prefixes_without_a_user_and_for_ipv6() {
        assert_eq!(main_prefix(None, Some(peer())), "main:10.99.0.2:38010");
        assert_eq!(main_prefix(Some(""), None), "main:");
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(
            main_prefix(Some("a"), Some(v6)),
            "main[a]:[2001:db8::1]:443"
        );
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5".parse().unwrap();
        assert_eq!(main_prefix(None, Some(mapped)), "main:10.0.0.1:5");
        assert_eq!(
            worker_prefix(None, "10.0.0.1".parse().unwrap()),
            "worker: 10.0.0.1"
        );
    }

    #[test]
    fn names_cannot_break_out_of_their_brackets_or_quotes() {
        let ip: IpAddr = "10.99.0.2".parse().unwrap();
        let evil = "x]: 6.6.6.6 failed authentication for 'x\nrocserv[1]: main: y";
        let line = Event::AuthFailed { user: evil, ip }.line();
        assert_eq!(
            line,
            "worker[x\\x5d:\\x206.6.6.6\\x20failed\\x20authentication\\x20for\\x20\\x27x\\x0arocserv\\x5b1\\x5d:\\x20main:\\x20y]: 10.99.0.2 failed authentication for 'x\\x5d:\\x206.6.6.6\\x20failed\\x20authentication\\x20for\\x20\\x27x\\x0arocserv\\x5b1\\x5d:\\x20main:\\x20y'"
        );
        // Whatever the name, the line is printable ASCII, has one `]: ` (the prefix's own)
        // and names no other address.
        let all: String = (1u8..=255).map(char::from).collect();
        for name in [evil, all.as_str(), "é ü", "a\\x5d"] {
            let line = Event::AuthFailed { user: name, ip }.line();
            assert!(line.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{line}");
            assert_eq!(line.matches("]: ").count(), 1, "{line}");
            assert!(!line.contains("6.6.6.6 "), "{line}");
        }
        // The escape is reversible: `\` itself is escaped.
        assert_eq!(escape_name("a\\x5d"), "a\\x5cx5d");
        assert_eq!(escape_name("bob@example.com"), "bob@example.com");
    }

    #[test]
    fn json_lines_have_stable_keys_and_escape_everything() {
        let head = JsonHead {
            time: "2026-12-05T11:34:24.123Z",
            process: Process::Main,
            pid: 7,
            level: "info",
        };
        let event = Event::Disconnected {
            user: "a\"b\\c\n{}",
            peer: peer(),
            reason: DisconnectReason::IdleTimeout,
            rx: 1,
            tx: 2,
        };
        assert_eq!(
            json_event(head, &event),
            r#"{"time":"2026-12-05T11:34:24.123Z","process":"main","pid":7,"level":"info","event":"disconnected","user":"a\"b\\c\n{}","ip":"10.99.0.2","port":38010,"message":"main[a\\x22b\\x5cc\\x0a{}]:10.99.0.2:38010 user disconnected (reason: idle timeout, rx: 1, tx: 2)","reason":"idle timeout","rx":1,"tx":2}"#
        );
        assert_eq!(
            json_text(head, None, None, "ready\u{2028}\u{1b}[31m"),
            r#"{"time":"2026-12-05T11:34:24.123Z","process":"main","pid":7,"level":"info","event":null,"user":null,"ip":null,"port":null,"message":"ready\u2028\u001b[31m"}"#
        );
        // No control character survives into a JSON line.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let line = json_text(head, Some(&all), None, &all);
        assert!(!line
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'));
    }

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_470_464_123), "2026-12-05T11:34:24.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(ctime(1_796_470_464), "Sat Dec  5 11:34:24 2026");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
    }
}
