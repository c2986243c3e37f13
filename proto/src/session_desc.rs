//! ocserv's text for a tunnel's channels, as occtl shows it (`TLS ciphersuite`, `DTLS cipher`):
//! GnuTLS's session description, `(VERSION)-(KX)-(SIGNATURE)-(CIPHER)` with a `-(MAC)` part
//! only for non-AEAD ciphers, e.g. `(TLS1.3)-(ECDHE-SECP256R1)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)`
//! and `(DTLS1.2)-(PSK)-(AES-256-GCM)` (facts observed in openconnect 9.01's and ocserv 1.1.6's
//! output, both GnuTLS).
//!
//! main builds the text from the code points a worker reports ([`TunnelState`]), never from a
//! worker's text: each code point must be one of the known ones below (IANA TLS registries, RFC
//! 8446 §B.4 for TLS 1.3 suites, RFC 8422/7905 for the ECDHE suites, RFC 5487 and 5288 for the
//! DTLS PSK and legacy ones), and the combination must make sense. Pure: no I/O.

use crate::ipc::main_worker::TunnelState;

/// IANA protocol versions (RFC 8446 §4.2.1).
pub const TLS1_2: u16 = 0x0303;
pub const TLS1_3: u16 = 0x0304;

/// Why a report was refused: the first field that is not a known value or does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadState {
    #[error("unknown TLS version {0:#06x}")]
    TlsVersion(u16),
    #[error("TLS suite {0:#06x} unknown or not of its TLS version")]
    TlsSuite(u16),
    #[error("unknown key exchange group {0:#06x}")]
    Group(u16),
    #[error("signature scheme {0:#06x} unknown or not of its TLS version")]
    Signature(u16),
    #[error("unknown DTLS suite {0:#06x}")]
    DtlsSuite(u16),
    #[error("DTLS in use without a DTLS session")]
    DtlsInUse,
}

/// The cipher of a TLS suite as GnuTLS names it, if the suite belongs to `version`.
fn tls_cipher(version: u16, suite: u16) -> Option<&'static str> {
    let (tls13, name) = match suite {
        // RFC 8446 §B.4.
        0x1301 => (true, "AES-128-GCM"),
        0x1302 => (true, "AES-256-GCM"),
        0x1303 => (true, "CHACHA20-POLY1305"),
        // ECDHE-ECDSA / ECDHE-RSA with AES-GCM (RFC 5289) and ChaCha20-Poly1305 (RFC 7905).
        0xC02B | 0xC02F => (false, "AES-128-GCM"),
        0xC02C | 0xC030 => (false, "AES-256-GCM"),
        0xCCA9 | 0xCCA8 => (false, "CHACHA20-POLY1305"),
        _ => return None,
    };
    (tls13 == (version == TLS1_3)).then_some(name)
}

/// A named group (RFC 8446 §4.2.7, RFC 7919) as GnuTLS names it.
fn group(code: u16) -> Option<&'static str> {
    Some(match code {
        0x0017 => "SECP256R1",
        0x0018 => "SECP384R1",
        0x0019 => "SECP521R1",
        0x001D => "X25519",
        0x001E => "X448",
        0x0100 => "FFDHE2048",
        0x0101 => "FFDHE3072",
        0x0102 => "FFDHE4096",
        0x0103 => "FFDHE6144",
        0x0104 => "FFDHE8192",
        _ => return None,
    })
}

/// A signature scheme (RFC 8446 §4.2.3) as GnuTLS names it: in TLS 1.2 an ECDSA scheme is not
/// bound to a curve, so its name has none.
fn signature(version: u16, code: u16) -> Option<&'static str> {
    let tls13 = version == TLS1_3;
    Some(match code {
        0x0401 => "RSA-SHA256",
        0x0501 => "RSA-SHA384",
        0x0601 => "RSA-SHA512",
        0x0201 if !tls13 => "RSA-SHA1",
        0x0403 if tls13 => "ECDSA-SECP256R1-SHA256",
        0x0503 if tls13 => "ECDSA-SECP384R1-SHA384",
        0x0603 if tls13 => "ECDSA-SECP521R1-SHA512",
        0x0403 => "ECDSA-SHA256",
        0x0503 => "ECDSA-SHA384",
        0x0603 => "ECDSA-SHA512",
        0x0804 => "RSA-PSS-RSAE-SHA256",
        0x0805 => "RSA-PSS-RSAE-SHA384",
        0x0806 => "RSA-PSS-RSAE-SHA512",
        0x0807 => "EdDSA-Ed25519",
        0x0808 => "EdDSA-Ed448",
        0x0809 => "RSA-PSS-SHA256",
        0x080A => "RSA-PSS-SHA384",
        0x080B => "RSA-PSS-SHA512",
        _ => return None,
    })
}

/// `TLS ciphersuite` of a report, e.g. `(TLS1.3)-(ECDHE-X25519)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)`.
pub fn tls(state: &TunnelState) -> Result<String, BadState> {
    let version = match state.tls_version {
        TLS1_2 => "TLS1.2",
        TLS1_3 => "TLS1.3",
        other => return Err(BadState::TlsVersion(other)),
    };
    let cipher = tls_cipher(state.tls_version, state.tls_suite)
        .ok_or(BadState::TlsSuite(state.tls_suite))?;
    let mut out = format!("({version})");
    if let Some(g) = state.tls_group {
        let name = group(g).ok_or(BadState::Group(g))?;
        let kx = if name.starts_with("FFDHE") {
            "DHE"
        } else {
            "ECDHE"
        };
        out.push_str(&format!("-({kx}-{name})"));
    }
    if let Some(s) = state.tls_signature {
        let name = signature(state.tls_version, s).ok_or(BadState::Signature(s))?;
        out.push_str(&format!("-({name})"));
    }
    out.push_str(&format!("-({cipher})"));
    Ok(out)
}

/// `DTLS cipher` of an established DTLS suite: PSK-NEGOTIATE (RFC 5487), the legacy DTLS 1.2
/// AES-GCM suites (RFC 5288) with RSA key exchange as GnuTLS labels a resumed legacy session,
/// and the DTLS 0.9 CBC ones (RFC 5246 appendix A.5) with their MAC.
pub fn dtls(suite: u16) -> Result<&'static str, BadState> {
    Ok(match suite {
        0x00A8 => "(DTLS1.2)-(PSK)-(AES-128-GCM)",
        0x00A9 => "(DTLS1.2)-(PSK)-(AES-256-GCM)",
        0x009C => "(DTLS1.2)-(RSA)-(AES-128-GCM)",
        0x009D => "(DTLS1.2)-(RSA)-(AES-256-GCM)",
        0x002F => "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)",
        0x0035 => "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)",
        other => return Err(BadState::DtlsSuite(other)),
    })
}

/// A report's texts, once every field checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub tls: String,
    /// Empty while no DTLS session is established.
    pub dtls: &'static str,
}

/// Check every field of a report and make its texts.
pub fn describe(state: &TunnelState) -> Result<Described, BadState> {
    let tls = tls(state)?;
    let dtls = state.dtls_suite.map(dtls).transpose()?.unwrap_or_default();
    if state.dtls_in_use && state.dtls_suite.is_none() {
        return Err(BadState::DtlsInUse);
    }
    Ok(Described { tls, dtls })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TunnelState {
        TunnelState {
            tls_version: TLS1_3,
            tls_suite: 0x1302,
            tls_group: Some(0x0017),
            tls_signature: Some(0x0403),
            dtls_suite: Some(0x00A9),
            dtls_flow: 1,
            dtls_in_use: true,
            cstp_compression: None,
            dtls_compression: None,
        }
    }

    #[test]
    fn texts_are_gnutls_descriptions() {
        // As openconnect 9.01 printed it against ocserv 1.1.6 (bench/results).
        let d = describe(&state()).unwrap();
        assert_eq!(
            d.tls,
            "(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"
        );
        assert_eq!(d.dtls, "(DTLS1.2)-(PSK)-(AES-256-GCM)");
        let tls12 = TunnelState {
            tls_version: TLS1_2,
            tls_suite: 0xC030,
            tls_group: Some(0x001D),
            tls_signature: Some(0x0401),
            dtls_suite: Some(0x0035),
            ..state()
        };
        let d = describe(&tls12).unwrap();
        assert_eq!(d.tls, "(TLS1.2)-(ECDHE-X25519)-(RSA-SHA256)-(AES-256-GCM)");
        assert_eq!(d.dtls, "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)");
        let no_dtls = TunnelState {
            dtls_suite: None,
            dtls_in_use: false,
            tls_signature: None,
            ..state()
        };
        let d = describe(&no_dtls).unwrap();
        assert_eq!(d.dtls, "");
        assert_eq!(d.tls, "(TLS1.3)-(ECDHE-SECP256R1)-(AES-256-GCM)");
    }

    #[test]
    fn unknown_or_mismatched_values_are_refused() {
        let bad = |s: TunnelState| describe(&s).unwrap_err();
        assert_eq!(
            bad(TunnelState {
                tls_version: 0x0302,
                ..state()
            }),
            BadState::TlsVersion(0x0302)
        );
        // A TLS 1.2 suite on a TLS 1.3 session.
        assert_eq!(
            bad(TunnelState {
                tls_suite: 0xC030,
                ..state()
            }),
            BadState::TlsSuite(0xC030)
        );
        assert_eq!(
            bad(TunnelState {
                tls_group: Some(0xFFFF),
                ..state()
            }),
            BadState::Group(0xFFFF)
        );
        assert_eq!(
            bad(TunnelState {
                tls_signature: Some(0x0201),
                ..state()
            }),
            BadState::Signature(0x0201)
        );
        assert_eq!(
            bad(TunnelState {
                dtls_suite: Some(0x1302),
                ..state()
            }),
            BadState::DtlsSuite(0x1302)
        );
        assert_eq!(
            bad(TunnelState {
                dtls_suite: None,
                ..state()
            }),
            BadState::DtlsInUse
        );
    }
}
