//! Typed values: each function takes the option's text (quotes already stripped) and returns
//! the value or a message saying what was expected. No I/O: names are not resolved and files
//! are not opened here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::diag::quote;
use super::{IpNet, Route};

/// A message for a bad value: "expected ..., found `...`".
pub(crate) type Bad = String;

fn expected(what: &str, found: &str) -> Bad {
    format!("expected {what}, found {}", quote(found))
}

/// ocserv strips white space and every `"` from both ends (`sanitize_config_value` in
/// ocserv `src/config.c`); quotes are not syntax.
pub(crate) fn unquote(raw: &str) -> &str {
    raw.trim_matches(|c: char| c == '"' || c.is_whitespace())
}

/// `true`/`yes` or `false`/`no`, any case. ocserv reads anything else as false; we refuse it.
pub(crate) fn boolean(v: &str) -> Result<bool, Bad> {
    if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(expected("`true` or `false`", v))
    }
}

/// A decimal number in `min..=max`.
pub(crate) fn number(v: &str, min: u32, max: u32) -> Result<u32, Bad> {
    let what = if max == u32::MAX {
        format!("a whole number of at least {min}")
    } else {
        format!("a whole number from {min} to {max}")
    };
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(expected(&what, v)),
    }
}

/// A duration in whole seconds (ocserv has no unit suffixes).
pub(crate) fn seconds(v: &str) -> Result<u32, Bad> {
    number(v, 0, u32::MAX).map_err(|_| expected("a number of seconds", v))
}

/// Seconds where 0 means "never" (`idle-timeout`, `session-timeout`).
pub(crate) fn optional_seconds(v: &str) -> Result<Option<u32>, Bad> {
    seconds(v).map(|s| (s != 0).then_some(s))
}

/// The largest `rx-data-per-sec` / `tx-data-per-sec` we take: 1 TB/s (8 Tbit/s), far above
/// any link, and small enough that the kernel's rate arithmetic cannot overflow.
pub(crate) const MAX_DATA_PER_SEC: u64 = 1_000_000_000_000;

/// `rx-data-per-sec` / `tx-data-per-sec`: bytes per second, 0 = no limit.
pub(crate) fn data_per_sec(v: &str) -> Result<u64, Bad> {
    match v.parse::<u64>() {
        Ok(n) if n <= MAX_DATA_PER_SEC && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(expected(
            "a number of bytes per second from 0 (no limit) to 1000000000000",
            v,
        )),
    }
}

/// `net-priority`: a socket priority `0`-`6` (SO_PRIORITY), or a TOS byte in hex, `0x00`-`0xff`
/// (ocserv's two forms).
pub(crate) fn net_priority(v: &str) -> Result<crate::policy::NetPriority, Bad> {
    use crate::policy::NetPriority;
    let hex = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"));
    let parsed = match hex {
        Some(h) if (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u8::from_str_radix(h, 16).ok().map(NetPriority::Tos)
        }
        Some(_) => None,
        None => number(v, 0, 6)
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .map(NetPriority::Priority),
    };
    parsed.ok_or_else(|| expected("a priority from 0 to 6, or a TOS byte such as `0x10`", v))
}

/// A TCP/UDP port, 1-65535.
pub(crate) fn port(v: &str) -> Result<u16, Bad> {
    number(v, 1, 65535)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| expected("a port number from 1 to 65535", v))
}

/// An IPv4 or IPv6 address; IPv6 may be written in brackets.
pub(crate) fn ip(v: &str) -> Result<IpAddr, Bad> {
    let bare = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    bare.parse()
        .map_err(|_| expected("an IPv4 or IPv6 address", v))
}

/// A dotted IPv4 netmask with contiguous ones, as a prefix length.
pub(crate) fn netmask(v: &str) -> Result<u8, Bad> {
    let bad = || expected("a netmask such as 255.255.255.0", v);
    let mask: Ipv4Addr = v.parse().map_err(|_| bad())?;
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(bad());
    }
    u8::try_from(ones).map_err(|_| bad())
}

/// `a.b.c.d`, `a.b.c.d/len` or `a.b.c.d/m.m.m.m` (the form of `ipv4-network`).
pub(crate) fn ipv4_network(v: &str) -> Result<(Ipv4Addr, Option<u8>), Bad> {
    let bad = || expected("an IPv4 network such as 192.168.1.0 or 192.168.1.0/24", v);
    let (addr, prefix) = match v.split_once('/') {
        Some((addr, prefix)) => (addr, Some(ipv4_prefix(prefix).map_err(|_| bad())?)),
        None => (v, None),
    };
    let addr: Ipv4Addr = addr.trim().parse().map_err(|_| bad())?;
    Ok((addr, prefix))
}

/// An `ipv6-network` value: an IPv6 address with an optional `/prefix` (ocserv also takes the
/// prefix from `ipv6-prefix`).
pub(crate) fn ipv6_network(v: &str) -> Result<(Ipv6Addr, Option<u8>), Bad> {
    let bad = || expected("an IPv6 network such as fd00:1::/64", v);
    let (addr, prefix) = match v.split_once('/') {
        Some((addr, prefix)) => (addr, Some(ipv6_prefix(prefix).map_err(|_| bad())?)),
        None => (v, None),
    };
    let addr: Ipv6Addr = addr.trim().parse().map_err(|_| bad())?;
    Ok((addr, prefix))
}

/// An IPv6 prefix length, 1-128 (ocserv `valid_ipv6_prefix`: 0 is no network).
pub(crate) fn ipv6_prefix(v: &str) -> Result<u8, Bad> {
    let n = number(v.trim(), 1, 128)?;
    u8::try_from(n).map_err(|_| expected("a prefix length", v))
}

/// The part after `/` of an IPv4 network: a length 0-32 or a dotted netmask.
fn ipv4_prefix(v: &str) -> Result<u8, Bad> {
    let v = v.trim();
    if v.contains('.') {
        return netmask(v);
    }
    let n = number(v, 0, 32)?;
    u8::try_from(n).map_err(|_| expected("a prefix length", v))
}

/// A `route` / `no-route` value. `0.0.0.0/0` is `default`, as in ocserv `src/config.c`.
pub(crate) fn route(v: &str) -> Result<Route, Bad> {
    if v.eq_ignore_ascii_case("default") {
        return Ok(Route::Default);
    }
    let bad = || {
        expected(
            "`default` or a network such as 10.0.0.0/8, 10.0.0.0/255.0.0.0 or fd00::/64",
            v,
        )
    };
    let (addr, prefix) = v.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let prefix = match addr {
        IpAddr::V4(_) => ipv4_prefix(prefix).map_err(|_| bad())?,
        IpAddr::V6(_) => number(prefix.trim(), 0, 128)
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(bad)?,
    };
    if prefix == 0 && addr == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        return Ok(Route::Default);
    }
    Ok(Route::Net(IpNet { addr, prefix }))
}

/// An absolute file name; ocserv needs them absolute because it changes directory.
pub(crate) fn absolute_path(v: &str) -> Result<PathBuf, Bad> {
    if v.starts_with('/') {
        Ok(PathBuf::from(v))
    } else if v.is_empty() {
        Err("expected a file name, found nothing".to_owned())
    } else {
        Err(format!("must be an absolute path, found {}", quote(v)))
    }
}

/// A file name, absolute or relative (ocserv accepts both for `socket-file` and `pid-file`).
pub(crate) fn file_name(v: &str) -> Result<PathBuf, Bad> {
    if v.is_empty() {
        Err("expected a file name, found nothing".to_owned())
    } else {
        Ok(PathBuf::from(v))
    }
}

/// A user or group name, or a tun device prefix: one word of safe characters.
pub(crate) fn name(v: &str, max_len: usize) -> Result<String, Bad> {
    let ok = !v.is_empty()
        && v.len() <= max_len
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(expected(
            &format!("a name of 1 to {max_len} letters, digits, `_`, `-` or `.`"),
            v,
        ))
    }
}

/// `listen-netns`: a name `ip netns add` makes under /run/netns, used as one path component
/// there: no `/`, no NUL, not `.` or `..`, at most 255 bytes (NAME_MAX).
pub(crate) fn netns_name(v: &str) -> Result<String, Bad> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && v != "."
        && v != ".."
        && !v.bytes().any(|b| b == b'/' || b.is_ascii_control());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(expected(
            "a network namespace name (a file name under /run/netns)",
            v,
        ))
    }
}

/// A group name as the password file or the system's group database spells it: no control
/// character, no `[`/`]` (they delimit labels) and no `/` (it names a per-group file).
pub(crate) fn group_name(v: &str) -> Result<String, Bad> {
    if crate::config::valid_group_name(v) {
        Ok(v.to_owned())
    } else {
        Err(expected(
            &format!(
                "a group name of 1 to {} bytes without control characters, `[`, `]`, `/`, `:` or `,`",
                super::MAX_GROUP_NAME
            ),
            v,
        ))
    }
}

/// `name[Label]` (the label optional), as ocserv's `select-group`.
pub(crate) fn group_choice(v: &str) -> Result<super::GroupChoice, Bad> {
    let (name, label) = match v.split_once('[') {
        None => (v, None),
        Some((name, rest)) => {
            let label = rest
                .strip_suffix(']')
                .filter(|l| !l.contains(['[', ']']))
                .ok_or_else(|| expected("`name` or `name[Label]`", v))?;
            if label.is_empty() || label.len() > 255 || label.chars().any(char::is_control) {
                return Err(expected("a label of printable characters", v));
            }
            (name.trim_end(), Some(label.to_owned()))
        }
    };
    Ok(super::GroupChoice {
        name: group_name(name)?,
        label,
    })
}

/// Free text; empty means "none".
pub(crate) fn text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

/// `camouflage_secret`: what follows `?` in the URL clients are given, compared byte for byte
/// with the query of each request (as ocserv does), so it may hold only characters a URL's
/// query carries as they are (RFC 3986 §3.4: unreserved, sub-delims, `:`, `@`, `/`, `?`, and
/// `%` for percent-encoded bytes). The error does not repeat the value: it is a secret.
pub(crate) fn camouflage_secret(v: &str) -> Result<String, Bad> {
    let query_byte = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
                    | b'%'
            )
    };
    if v.is_empty() || v.len() > super::MAX_CAMOUFLAGE_TEXT {
        return Err(format!(
            "expected 1 to {} characters",
            super::MAX_CAMOUFLAGE_TEXT
        ));
    }
    if !v.bytes().all(query_byte) {
        return Err(
            "may hold only characters a URL query carries as they are (letters, digits and \
             -._~!$&'()*+,;=:@/?%); no space or #"
                .to_owned(),
        );
    }
    Ok(v.to_owned())
}

/// `camouflage_realm`: goes into `WWW-Authenticate: Basic realm="..."` (RFC 7617 §2), so no
/// `"`, `\` or control character (ocserv writes it unchecked). Empty means none (`404`).
pub(crate) fn camouflage_realm(v: &str) -> Result<Option<String>, Bad> {
    if v.len() > super::MAX_CAMOUFLAGE_TEXT {
        return Err(format!(
            "is {} bytes long; at most {} are accepted",
            v.len(),
            super::MAX_CAMOUFLAGE_TEXT
        ));
    }
    if v.chars().any(|c| c.is_control() || matches!(c, '"' | '\\')) {
        return Err(expected(
            "a realm without `\"`, `\\` or control characters",
            v,
        ));
    }
    Ok(text(v))
}
