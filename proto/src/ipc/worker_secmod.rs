//! worker <-> sec-mod: signatures for the TLS handshake and the login conversation. The worker
//! is untrusted; sec-mod knows which worker a socket belongs to from main
//! ([`super::main_secmod::ToSecMod::NewWorker`]), never from the worker.
//!
//! Strict request/response: the worker sends one [`ToSecMod`] and waits for one [`FromSecMod`].

use serde::{Deserialize, Serialize};

use super::SessionId;

/// worker -> sec-mod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSecMod {
    /// Sign `message` with the server key using TLS `SignatureScheme` code `scheme`: the key of
    /// `[vhost:NAME]` `vhost` (the certificate the worker chose by the client's SNI), or the
    /// default section's for `None`. The vhost is also the one the link's logins use.
    Sign {
        scheme: u16,
        message: Vec<u8>,
        vhost: Option<String>,
    },
    /// First credentials of a login conversation, from the login form.
    AuthStart {
        username: String,
        password: String,
        /// Group the client selected, if any.
        group: Option<String>,
        /// What the client said about itself (all the worker's word: sec-mod bounds and
        /// checks each field, `ClientFacts::check`).
        facts: ClientFacts,
    },
    /// The answer to an [`AuthStep::Continue`] prompt (PAM challenge, OTP).
    AuthContinue { answer: String },
}

/// What a client tells about itself while logging in, passed to every auth backend, hook and
/// script. Untrusted: a compromised worker may put anything here; sec-mod checks the shape
/// ([`ClientFacts::check`]) and the certificate chain itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFacts {
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The device's own identifier: the `unique-id` attribute of the aggregate-auth
    /// `<device-id>` element (AnyConnect; openconnect with `--os=android` / `apple-ios`), else
    /// the `X-AnyConnect-Identifier-Device-UniqueID` header. `None` when the client sent none
    /// (openconnect's desktop `--os` values send none).
    pub device_id: Option<String>,
    /// The platform the client reports: the text of `<device-id>` (openconnect's `--os`:
    /// `linux-64`, `win`, `mac-intel`, `android`, `apple-ios`), else the `X-AnyConnect-Platform`
    /// or `X-AnyConnect-Identifier-Platform` header.
    pub platform: Option<String>,
    /// The `computer-name` attribute of `<device-id>` (AnyConnect). openconnect sends its host
    /// name (`--local-hostname`) only at CONNECT, as `X-CSTP-Hostname`.
    pub hostname: Option<String>,
    /// `<mac-address-list>` of the aggregate auth, normalised by [`normalize_mac`]; malformed
    /// entries dropped, at most [`MAX_MACS`].
    pub macs: Vec<String>,
    /// The client's certificate chain as presented in the TLS handshake (DER, end entity
    /// first); empty when it sent none. The worker checked only that the client holds the
    /// end entity's key (the handshake signature); sec-mod checks the chain.
    pub cert_chain: Vec<Vec<u8>>,
}

/// Longest text field of [`ClientFacts`] sec-mod accepts.
pub const MAX_FACT: usize = 256;
/// Most MAC addresses sec-mod accepts.
pub const MAX_MACS: usize = 16;
/// Most certificates in a chain sec-mod accepts.
pub const MAX_CHAIN: usize = 8;

impl ClientFacts {
    /// Whether every field has a sane size and no control characters (so it can go into a log
    /// line, an environment variable or a RADIUS attribute as is).
    pub fn check(&self) -> Result<(), &'static str> {
        let text_ok = |s: &str| s.len() <= MAX_FACT && !s.chars().any(char::is_control);
        let opt_ok = |s: &Option<String>| s.as_deref().is_none_or(text_ok);
        if !text_ok(&self.user_agent) {
            return Err("user agent");
        }
        if !(opt_ok(&self.device_id) && opt_ok(&self.platform) && opt_ok(&self.hostname)) {
            return Err("device id, platform or host name");
        }
        if self.macs.len() > MAX_MACS || !self.macs.iter().all(|m| valid_mac(m)) {
            return Err("MAC address list");
        }
        if self.cert_chain.len() > MAX_CHAIN {
            return Err("certificate chain");
        }
        Ok(())
    }
}

/// `s` as a [`ClientFacts`] text field: control characters dropped, cut to [`MAX_FACT`] bytes
/// at a character boundary (the worker's side of [`ClientFacts::check`]).
pub fn fact_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_FACT));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len().saturating_add(c.len_utf8()) > MAX_FACT {
            break;
        }
        out.push(c);
    }
    out
}

/// A MAC address as clients write it, in the one form [`valid_mac`] accepts: six pairs of hex
/// digits separated by `:` or `-` (AnyConnect on Windows writes `00-0C-29-...`), Cisco's dotted
/// `0011.2233.4455`, or 12 bare hex digits; any case, blanks around it ignored. `None` for
/// anything else, and for the all-zero address (no identity: scanners send it).
pub fn normalize_mac(text: &str) -> Option<String> {
    let text = text.trim();
    let digits: String = match text.len() {
        17 => {
            let sep = text.as_bytes().get(2).copied()?;
            if sep != b':' && sep != b'-' {
                return None;
            }
            let parts: Vec<&str> = text.split(char::from(sep)).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return None;
            }
            parts.concat()
        }
        14 => {
            let parts: Vec<&str> = text.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return None;
            }
            parts.concat()
        }
        12 => text.to_owned(),
        _ => return None,
    };
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if digits.bytes().all(|b| b == b'0') {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let mut out = String::with_capacity(17);
    for (i, pair) in lower.as_bytes().chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(std::str::from_utf8(pair).ok()?);
    }
    Some(out)
}

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn valid_mac(m: &str) -> bool {
    m.len() == 17
        && m.split(':').count() == 6
        && m.split(':').all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// sec-mod -> worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromSecMod {
    Signature(Vec<u8>),
    /// The scheme is not one this key can do, or signing failed.
    SignFailed,
    Auth(AuthStep),
}

/// Where a login conversation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthStep {
    /// Logged in: `cookie` is the value of the `webvpn` cookie (unpadded base64url, so it has no
    /// `=`: protocol.md §1.7).
    Complete {
        cookie: String,
        sid: SessionId,
        username: String,
    },
    /// The backend asks one more question; `message` is its prompt, `secret` whether the answer
    /// should be hidden.
    Continue { message: String, secret: bool },
    /// Wrong credentials. With `retry` the worker may show the form again in this conversation;
    /// without it the worker answers 401 and closes.
    Failed { retry: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::roundtrip;

    #[test]
    fn messages_roundtrip() {
        roundtrip(&ToSecMod::Sign {
            scheme: 0x0403,
            message: vec![1, 2, 3],
            vhost: Some("vpn.example.com".into()),
        });
        roundtrip(&ToSecMod::AuthStart {
            username: "u".into(),
            password: "p".into(),
            group: None,
            facts: ClientFacts {
                user_agent: "ua".into(),
                macs: vec!["00:11:22:33:44:55".into()],
                ..Default::default()
            },
        });
        roundtrip(&FromSecMod::Auth(AuthStep::Complete {
            cookie: "c".into(),
            sid: SessionId(5),
            username: "u".into(),
        }));
        roundtrip(&FromSecMod::Auth(AuthStep::Failed { retry: true }));
    }

    #[test]
    fn facts_are_checked() {
        let mut f = ClientFacts {
            user_agent: "Open AnyConnect VPN Agent v9.01".into(),
            device_id: Some("linux-64".into()),
            macs: vec!["00:11:22:33:44:55".into()],
            ..Default::default()
        };
        assert_eq!(f.check(), Ok(()));
        f.macs.push("00:11:22:33:44:GG".into());
        assert!(f.check().is_err());
        f.macs.pop();
        f.hostname = Some("a\nb".into());
        assert!(f.check().is_err());
        f.hostname = Some("x".repeat(MAX_FACT + 1));
        assert!(f.check().is_err());
        f.hostname = Some(fact_text(&format!("a\tb{}", "é".repeat(MAX_FACT))));
        assert_eq!(f.check(), Ok(()));
        assert!(f.hostname.as_deref().unwrap().starts_with("abé"));
    }

    #[test]
    fn macs_are_normalised() {
        for (text, mac) in [
            ("00:11:22:33:44:55", Some("00:11:22:33:44:55")),
            ("00-0C-29-AB-cd-EF", Some("00:0c:29:ab:cd:ef")),
            (" 0011.2233.44FF\n", Some("00:11:22:33:44:ff")),
            ("A1B2C3D4E5F6", Some("a1:b2:c3:d4:e5:f6")),
            ("00:00:00:00:00:00", None),
            ("00-00-00-00-00-00", None),
            ("00:11-22:33:44:55", None),
            ("00:11:22:33:44:5", None),
            ("00:11:22:33:44:5g", None),
            ("0:11:22:33:44:555", None),
            ("0011.2233.445", None),
            ("00112233445g", None),
            ("+0112233445f", None),
            ("é0:11:22:33:44:5", None),
            ("", None),
        ] {
            let got = normalize_mac(text);
            assert_eq!(got.as_deref(), mac, "{text:?}");
            assert!(got.is_none_or(|m| valid_mac(&m)));
        }
    }
}
