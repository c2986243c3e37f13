//! `tls-priorities`: a GnuTLS priority string, mapped onto what rustls can be told.
//!
//! A GnuTLS string is a level (`NORMAL`, `SECURE256`, ...) followed by `:`-separated changes:
//! `+X` adds, `-X` or `!X` removes, `%FLAG` sets a behaviour. rustls (ring provider) only
//! ever offers TLS 1.2 and 1.3, ECDHE key exchange and the AEAD suites AES-128-GCM,
//! AES-256-GCM and CHACHA20-POLY1305. So:
//! - removing something rustls never does (`-VERS-SSL3.0`, `-RSA`, `-ARCFOUR-128`, `-SHA1`)
//!   is already true and silent;
//! - protocol versions 1.2/1.3, the three AEAD ciphers and `%SERVER_PRECEDENCE` map onto
//!   [`TlsPolicy`];
//! - anything else (e.g. `%COMPAT`, `+AES-128-CBC`, `-GROUP-X25519`) cannot be expressed and
//!   is listed in a warning;
//! - a result that leaves no version or no cipher is an error.
//!
//! A string may start with a change instead of a level (`-VERS-ALL:+VERS-TLS1.2:...`, found in
//! published ocserv.conf files): the changes then apply to `NORMAL`, GnuTLS's default.

use super::TlsPolicy;

/// What a priority string maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub(crate) policy: TlsPolicy,
    /// Keywords rustls cannot express, as written.
    pub(crate) ignored: Vec<String>,
    /// Keywords we do not recognise, as written.
    pub(crate) unknown: Vec<String>,
}

/// ocserv's built-in string when `tls-priorities` is not set (ocserv `src/config.c`).
pub(crate) const OCSERV_DEFAULT: &str = "NORMAL:%SERVER_PRECEDENCE:%COMPAT";

/// Map a priority string. `Err` says why the string leaves rustls nothing to offer.
pub(crate) fn map(priorities: &str) -> Result<Mapped, String> {
    let mut tokens = priorities
        .split(':')
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let first = tokens
        .next()
        .ok_or("empty priority string; expected a level such as NORMAL")?;
    let mut out = Mapped {
        policy: nothing(),
        ignored: Vec::new(),
        unknown: Vec::new(),
    };
    let starts_with_change = first.starts_with(['+', '-', '!', '%']);
    if starts_with_change {
        level("NORMAL", &mut out);
    } else if !level(first, &mut out) {
        return Err(format!(
            "a priority string starts with a level such as NORMAL or SECURE256, found `{first}`"
        ));
    }
    let changes = starts_with_change
        .then_some(first)
        .into_iter()
        .chain(tokens);
    for token in changes {
        if let Some(flag) = token.strip_prefix('%') {
            percent(flag, token, &mut out);
        } else if let Some(keyword) = token.strip_prefix('+') {
            change(keyword, true, token, &mut out);
        } else if let Some(keyword) = token.strip_prefix(['-', '!']) {
            change(keyword, false, token, &mut out);
        } else if !level(token, &mut out) {
            out.unknown.push(token.to_owned());
        }
    }
    let p = &out.policy;
    if !p.tls12 && !p.tls13 {
        return Err(
            "leaves no protocol version rustls can offer (it offers TLS 1.2 and TLS 1.3)".into(),
        );
    }
    if !p.aes_128_gcm && !p.aes_256_gcm && !p.chacha20_poly1305 {
        return Err(
            "leaves no cipher rustls can offer (it offers AES-128-GCM, AES-256-GCM \
                    and CHACHA20-POLY1305)"
                .into(),
        );
    }
    Ok(out)
}

fn nothing() -> TlsPolicy {
    TlsPolicy {
        tls12: false,
        tls13: false,
        server_precedence: false,
        aes_128_gcm: false,
        aes_256_gcm: false,
        chacha20_poly1305: false,
    }
}

/// Apply a level keyword (adds to what is enabled). False if `token` is not a level.
fn level(token: &str, out: &mut Mapped) -> bool {
    let p = &mut out.policy;
    let upper = token.to_ascii_uppercase();
    match upper.as_str() {
        "NORMAL" | "PERFORMANCE" | "LEGACY" | "PFS" | "SECURE128" | "SECURE" => {
            p.tls12 = true;
            p.tls13 = true;
            p.aes_128_gcm = true;
            p.aes_256_gcm = true;
            p.chacha20_poly1305 = true;
        }
        "SECURE192" | "SECURE256" => {
            p.tls12 = true;
            p.tls13 = true;
            p.aes_256_gcm = true;
            p.chacha20_poly1305 = true;
        }
        // Suite B is TLS 1.2 with AES-GCM only.
        "SUITEB128" => {
            p.tls12 = true;
            p.aes_128_gcm = true;
            p.aes_256_gcm = true;
        }
        "SUITEB192" => {
            p.tls12 = true;
            p.aes_256_gcm = true;
        }
        "NONE" => {}
        _ if upper.starts_with('@') => {
            // The system-wide policy lives in a file we do not read (sans-IO).
            out.ignored.push(token.to_owned());
            return level("NORMAL", out);
        }
        _ => return false,
    }
    true
}

fn percent(flag: &str, token: &str, out: &mut Mapped) {
    match flag.to_ascii_uppercase().as_str() {
        "SERVER_PRECEDENCE" => out.policy.server_precedence = true,
        // rustls never renegotiates, and issues no tickets unless given a ticketer. `%COMPAT`
        // (in ocserv's own default) relaxes GnuTLS's checks for broken peers: rustls already
        // interoperates with the clients it is for, so nothing changes.
        "SAFE_RENEGOTIATION" | "NO_TICKETS" | "NO_TICKETS_TLS12" | "COMPAT" => {}
        "DUMBFW"
        | "NO_EXTENSIONS"
        | "LATEST_RECORD_VERSION"
        | "SSL3_RECORD_VERSION"
        | "UNSAFE_RENEGOTIATION"
        | "PARTIAL_RENEGOTIATION"
        | "DISABLE_SAFE_RENEGOTIATION"
        | "NO_ETM"
        | "FORCE_ETM"
        | "NO_SESSION_HASH"
        | "FORCE_SESSION_HASH"
        | "ALLOW_SMALL_RECORDS"
        | "NO_STATUS_REQUEST"
        | "STATELESS_COMPRESSION"
        | "NO_SHUFFLE_EXTENSIONS"
        | "NO_POST_HANDSHAKE_AUTH"
        | "DISABLE_WILDCARDS"
        | "VERIFY_ALLOW_SIGN_RSA_MD5"
        | "VERIFY_ALLOW_X509_V1_CA_CRT"
        | "VERIFY_ALLOW_SIGN_WITH_SHA1"
        | "VERIFY_DISABLE_CRL_CHECKS" => {
            out.ignored.push(token.to_owned());
        }
        f if f.starts_with("PROFILE_") => out.ignored.push(token.to_owned()),
        _ => out.unknown.push(token.to_owned()),
    }
}

/// Ciphers GnuTLS knows that rustls never offers.
const OTHER_CIPHERS: &[&str] = &[
    "AES-128-CBC",
    "AES-192-CBC",
    "AES-256-CBC",
    "AES-128-CCM",
    "AES-256-CCM",
    "AES-128-CCM-8",
    "AES-256-CCM-8",
    "CAMELLIA-128-CBC",
    "CAMELLIA-192-CBC",
    "CAMELLIA-256-CBC",
    "CAMELLIA-128-GCM",
    "CAMELLIA-256-GCM",
    "3DES-CBC",
    "DES-CBC",
    "ARCFOUR-128",
    "ARCFOUR-40",
    "ARCFOUR",
    "RC2-40",
    "NULL",
    "GOST28147-TC26Z-CFB",
    "GOST28147-CPA-CFB",
    "GOST28147-CPB-CFB",
    "GOST28147-CPC-CFB",
    "GOST28147-CPD-CFB",
    "GOST28147-TC26Z-CNT",
    "MAGMA-CTR-ACPKM",
    "KUZNYECHIK-CTR-ACPKM",
    "CIPHER-GOST-ALL",
    "AES-128-SIV",
    "AES-256-SIV",
];

/// Key exchanges GnuTLS knows that rustls never does (it only does ECDHE).
const OTHER_KX: &[&str] = &[
    "RSA",
    "RSA-EXPORT",
    "DHE-RSA",
    "DHE-DSS",
    "PSK",
    "RSA-PSK",
    "DHE-PSK",
    "ECDHE-PSK",
    "SRP",
    "SRP-RSA",
    "SRP-DSS",
    "ANON-DH",
    "ANON-ECDH",
    "VKO-GOST-12",
    "KX-GOST-ALL",
];

/// HMACs of non-AEAD suites; rustls suites use none of them.
const OTHER_MACS: &[&str] = &[
    "SHA1",
    "MD5",
    "SHA256",
    "SHA384",
    "SHA512",
    "UMAC-96",
    "UMAC-128",
    "GOST28147-TC26Z-IMIT",
    "MAC-GOST-ALL",
    "STREEBOG-256",
    "STREEBOG-512",
];

/// `+keyword` (`add`) or `-keyword`.
fn change(keyword: &str, add: bool, token: &str, out: &mut Mapped) {
    let k = keyword.to_ascii_uppercase();
    let p = &mut out.policy;
    match k.as_str() {
        "VERS-TLS1.2" => p.tls12 = add,
        "VERS-TLS1.3" => p.tls13 = add,
        "VERS-ALL" | "VERS-TLS-ALL" => {
            p.tls12 = add;
            p.tls13 = add;
        }
        "VERS-SSL3.0" | "VERS-TLS1.0" | "VERS-TLS1.1" => not_offered(add, token, out),
        "AES-128-GCM" => p.aes_128_gcm = add,
        "AES-256-GCM" => p.aes_256_gcm = add,
        "CHACHA20-POLY1305" => p.chacha20_poly1305 = add,
        "CIPHER-ALL" => {
            p.aes_128_gcm = add;
            p.aes_256_gcm = add;
            p.chacha20_poly1305 = add;
        }
        // ECDHE is all rustls does; adding it changes nothing, removing it cannot be said.
        "ECDHE-RSA" | "ECDHE-ECDSA" | "AEAD" | "COMP-NULL" | "CTYPE-X509" | "CTYPE-SRV-X509"
        | "CTYPE-CLI-X509" | "GROUP-X25519" | "GROUP-SECP256R1" | "GROUP-SECP384R1"
        | "CURVE-X25519" | "CURVE-SECP256R1" | "CURVE-SECP384R1" => {
            if !add {
                out.ignored.push(token.to_owned());
            }
        }
        _ if OTHER_CIPHERS.contains(&k.as_str())
            || OTHER_KX.contains(&k.as_str())
            || OTHER_MACS.contains(&k.as_str()) =>
        {
            not_offered(add, token, out);
        }
        // Finite-field groups only matter for DHE, which rustls does not do.
        _ if k.starts_with("GROUP-FFDHE") => not_offered(add, token, out),
        _ if k.starts_with("VERS-DTLS") => out.ignored.push(token.to_owned()),
        _ if k.starts_with("COMP-") || k.starts_with("CTYPE-") => not_offered(add, token, out),
        _ if k.starts_with("GROUP-")
            || k.starts_with("CURVE-")
            || k.starts_with("SIGN-")
            || k.ends_with("-ALL") =>
        {
            out.ignored.push(token.to_owned());
        }
        _ => out.unknown.push(token.to_owned()),
    }
}

/// Something rustls never offers: removing it is already true, adding it cannot be done.
fn not_offered(add: bool, token: &str, out: &mut Mapped) {
    if add {
        out.ignored.push(token.to_owned());
    }
}
