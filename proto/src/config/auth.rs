//! `auth = "method[option=value,...]"` (ocserv `src/subconfig.c` for the sub-options).
//!
//! Only methods sec-mod can run are accepted. A method or sub-option we cannot honour is an
//! error, never a warning: running without it would let people in that ocserv keeps out, or
//! keep out everyone.

use super::diag::quote;
use super::values::{absolute_path, number, Bad};
use super::{AuthMethod, CertField};

/// Methods ocserv has and rocserv does not run yet.
const OTHER_METHODS: &[&str] = &["radius", "gssapi", "oidc"];

/// Parse one `auth` value (quotes already stripped).
pub(crate) fn method(v: &str) -> Result<AuthMethod, Bad> {
    let (name, options) = match v.split_once('[') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("the options of {} do not end with `]`", quote(v)))?;
            (name.trim(), Some(inner))
        }
        None => (v.trim(), None),
    };
    if name.eq_ignore_ascii_case("plain") {
        plain(options)
    } else if name.eq_ignore_ascii_case("pam") {
        pam(options)
    } else if name.eq_ignore_ascii_case("certificate") {
        // ocserv's `certificate` takes no options; its settings are `ca-cert`, `crl`,
        // `cert-user-oid` and `cert-group-oid`.
        match options.map(str::trim) {
            None | Some("") => Ok(AuthMethod::Certificate),
            Some(_) => Err(
                "`certificate` takes no options (use `ca-cert`, `crl`, `cert-user-oid`)".to_owned(),
            ),
        }
    } else if let Some(other) = OTHER_METHODS.iter().find(|m| m.eq_ignore_ascii_case(name)) {
        Err(format!(
            "rocserv cannot authenticate with `{other}` yet (the server could not log anyone \
             in); use `plain[passwd=FILE]` or `pam`"
        ))
    } else {
        Err(format!(
            "expected `plain[passwd=FILE]`, `pam`, `pam[gid-min=N]` or `certificate`, found {}",
            quote(v)
        ))
    }
}

/// `key=value` pairs separated by commas.
fn pairs(options: &str) -> impl Iterator<Item = (&str, &str)> {
    options
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (o, ""),
        })
}

fn plain(options: Option<&str>) -> Result<AuthMethod, Bad> {
    let options = options.unwrap_or_default();
    // Legacy form `plain[/etc/ocserv/passwd]`.
    if options.starts_with('/') || options.starts_with('.') {
        let passwd = absolute_path(options).map_err(|e| format!("passwd file {e}"))?;
        return Ok(AuthMethod::Plain { passwd, otp: None });
    }
    let mut passwd = None;
    for (key, value) in pairs(options) {
        if key.eq_ignore_ascii_case("passwd") {
            passwd = Some(absolute_path(value).map_err(|e| format!("passwd file {e}"))?);
        } else if key.eq_ignore_ascii_case("otp") {
            return Err(
                "one-time passwords (`otp=`) are not supported yet; refusing to start \
                 without the second factor"
                    .to_owned(),
            );
        } else {
            return Err(format!(
                "unknown option {} for `plain` (it takes `passwd=FILE`)",
                quote(key)
            ));
        }
    }
    passwd
        .map(|passwd| AuthMethod::Plain { passwd, otp: None })
        .ok_or_else(|| {
            "`plain` needs a password file: `plain[passwd=/etc/ocserv/ocpasswd]`".to_owned()
        })
}

fn pam(options: Option<&str>) -> Result<AuthMethod, Bad> {
    let mut gid_min = 0;
    for (key, value) in pairs(options.unwrap_or_default()) {
        if key.eq_ignore_ascii_case("gid-min") {
            gid_min = number(value, 0, u32::MAX).map_err(|e| format!("gid-min: {e}"))?;
        } else if key.eq_ignore_ascii_case("service") {
            // ocserv's default service name is its package name.
            if value != "ocserv" {
                return Err(format!(
                    "PAM service {} is not supported yet (rocserv uses the `ocserv` service)",
                    quote(value)
                ));
            }
        } else {
            return Err(format!(
                "unknown option {} for `pam` (it takes `gid-min=N` and `service=NAME`)",
                quote(key)
            ));
        }
    }
    Ok(AuthMethod::Pam {
        gid_min,
        service: "ocserv".to_owned(),
    })
}

/// `cert-user-oid` / `cert-group-oid`: a dotted OID of a subject DN attribute (ocserv accepts
/// any value starting with a digit; we check the shape: at least two numeric arcs) or
/// `SAN(rfc822name)` (the first e-mail address of the subjectAltName).
pub(crate) fn cert_field(v: &str) -> Result<CertField, Bad> {
    if v.eq_ignore_ascii_case("SAN(rfc822name)") {
        return Ok(CertField::SanRfc822Name);
    }
    let arcs: Vec<&str> = v.split('.').collect();
    let numeric =
        |a: &&str| !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit());
    if arcs.len() >= 2 && arcs.len() <= 32 && arcs.iter().all(numeric) {
        Ok(CertField::Oid(v.to_owned()))
    } else {
        Err(format!(
            "expected a dotted OID such as 0.9.2342.19200300.100.1.1 (UID) or 2.5.4.3 (CN), or \
             `SAN(rfc822name)`, found {}",
            quote(v)
        ))
    }
}
