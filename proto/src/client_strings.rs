//! The client-chosen strings of a CONNECT (`X-CSTP-Hostname`, `User-Agent`, the AnyConnect
//! device identifiers, the cookie) as they may travel from the worker to main, which puts them
//! into the environment of root-run scripts (`HOSTNAME`, `USER_AGENT`, `DEVICE_*`) and occtl's
//! output. A newline in `HOSTNAME` can inject a record through a host-update script, so:
//!
//! - the worker cleans each value with the `clean_*` functions before sending it;
//! - main checks the request it receives with [`check_request`] (the same rules; the worker may
//!   be compromised) and ends a worker whose request does not pass.
//!
//! Parsed by the worker from the internet (inside TLS) and by main from a possibly compromised
//! worker.

use crate::ipc::main_worker::ConnectRequest;

/// Longest `User-Agent` kept (bytes); longer ones are cut at a character boundary.
pub const MAX_USER_AGENT: usize = 256;
/// Longest `X-AnyConnect-Identifier-Platform` / `-DeviceType` kept (bytes).
pub const MAX_DEVICE_FIELD: usize = 64;
/// Longest cookie passed on (ours are 43 characters; base64url of 32 bytes).
pub const MAX_COOKIE: usize = 256;
/// A DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// A field of a [`ConnectRequest`] that breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CONNECT field {0} is not acceptable")]
pub struct BadField(pub &'static str);

/// The host label of a client-supplied host name: the part before the first dot, if it is a
/// valid DNS label (ocserv strips the domain and validates, protocol.md §2.1).
pub fn clean_hostname(raw: &str) -> Option<String> {
    let label = raw.split('.').next().unwrap_or("");
    is_host_label(label).then(|| label.to_owned())
}

/// Letters, digits and inner hyphens, 1 to 63 of them.
pub fn is_host_label(label: &str) -> bool {
    (1..=MAX_LABEL).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A header value made safe to pass on: every control character (C0, DEL, C1; tabs included)
/// becomes a space, and the result is cut to at most `max` bytes at a character boundary.
pub fn clean_text(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len().saturating_add(c.len_utf8()) > max {
            break;
        }
        out.push(c);
    }
    out
}

/// What [`clean_text`] produces: at most `max` bytes and no control character.
pub fn is_clean_text(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(char::is_control)
}

/// A cookie worth asking sec-mod about: 1 to [`MAX_COOKIE`] visible ASCII characters.
pub fn is_cookie(cookie: &str) -> bool {
    (1..=MAX_COOKIE).contains(&cookie.len()) && cookie.bytes().all(|b| b.is_ascii_graphic())
}

/// main's check of a worker's [`ConnectRequest`]: every string as the worker must have cleaned
/// it. The numbers are bounded where they are used (`mtu::compute`, the DTLS overhead cap).
pub fn check_request(req: &ConnectRequest) -> Result<(), BadField> {
    if !is_cookie(&req.cookie) {
        return Err(BadField("cookie"));
    }
    if req.hostname.as_deref().is_some_and(|h| !is_host_label(h)) {
        return Err(BadField("hostname"));
    }
    if !is_clean_text(&req.user_agent, MAX_USER_AGENT) {
        return Err(BadField("user agent"));
    }
    if !is_clean_text(&req.device_platform, MAX_DEVICE_FIELD) {
        return Err(BadField("device platform"));
    }
    if !is_clean_text(&req.device_type, MAX_DEVICE_FIELD) {
        return Err(BadField("device type"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ConnectRequest {
        ConnectRequest {
            cookie: "jVfOqTj3lQ0aRlJ2m1JwkN8nN-xk8S9c1e5p3m8eX_A".into(),
            hostname: Some("laptop".into()),
            base_mtu: Some(1500),
            cstp_mtu: None,
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            device_platform: "linux-64".into(),
            device_type: String::new(),
            dtls_overhead: Some(38),
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(clean_hostname("laptop").as_deref(), Some("laptop"));
        assert_eq!(clean_hostname("a-1.b.c").as_deref(), Some("a-1"));
        assert_eq!(clean_hostname(""), None);
        assert_eq!(clean_hostname("x y"), None);
        assert_eq!(clean_hostname("bad-"), None);
        assert_eq!(clean_hostname(&"a".repeat(64)), None);
        assert_eq!(clean_hostname("ünï"), None);
        assert_eq!(clean_hostname("evil\nA 10.0.0.1"), None);
    }

    #[test]
    fn text_loses_control_characters_and_length() {
        assert_eq!(clean_text("a\tb\r\nc\u{7f}d\u{85}", 64), "a b  c d ");
        assert_eq!(clean_text("abcdef", 4), "abcd");
        // Never cut inside a character.
        assert_eq!(clean_text("aéé", 4), "aé");
        assert!(is_clean_text(
            "Open AnyConnect VPN Agent v9.01-3",
            MAX_USER_AGENT
        ));
        assert!(!is_clean_text("x\ny", 64));
        assert!(!is_clean_text("abcde", 4));
    }

    #[test]
    fn cleaned_text_always_passes_the_check() {
        let samples = [
            "",
            "\u{0}\u{1f}\u{9f}",
            "ä\u{2028}b",
            "\r\n\r\n",
            "€€€€€€€€",
        ];
        for raw in samples {
            for max in [0, 1, 2, 3, 5, 64] {
                assert!(is_clean_text(&clean_text(raw, max), max), "{raw:?} {max}");
            }
        }
    }

    #[test]
    fn main_rejects_what_a_worker_must_have_cleaned() {
        assert_eq!(check_request(&request()), Ok(()));
        let bad = [
            ConnectRequest {
                hostname: Some("laptop\nevil 60 IN A 10.0.0.1".into()),
                ..request()
            },
            ConnectRequest {
                user_agent: "ua\r\nX: y".into(),
                ..request()
            },
            ConnectRequest {
                user_agent: "a".repeat(MAX_USER_AGENT + 1),
                ..request()
            },
            ConnectRequest {
                device_type: "phone\n".into(),
                ..request()
            },
            ConnectRequest {
                device_platform: "\u{1b}[2J".into(),
                ..request()
            },
            ConnectRequest {
                cookie: "a b".into(),
                ..request()
            },
            ConnectRequest {
                cookie: String::new(),
                ..request()
            },
        ];
        for req in bad {
            assert!(check_request(&req).is_err(), "{req:?}");
        }
    }
}
