//! `auth = "method[option=value,...]"` (ocserv `src/subconfig.c` for the sub-options).
//!
//! Only methods sec-mod can run are accepted. A method or sub-option we cannot honour is an
//! error, never a warning: running without it would let people in that ocserv keeps out, or
//! keep out everyone.

use super::diag::quote;
use super::values::{absolute_path, number, Bad};
use super::AuthMethod;

/// Methods ocserv has and rocserv does not run yet.
const OTHER_METHODS: &[&str] = &["certificate", "radius", "gssapi", "oidc"];

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
    } else if let Some(other) = OTHER_METHODS.iter().find(|m| m.eq_ignore_ascii_case(name)) {
        Err(format!(
            "rocserv cannot authenticate with `{other}` yet (the server could not log anyone \
             in); use `plain[passwd=FILE,otp=FILE]` or `pam`"
        ))
    } else {
        Err(format!(
            "expected `plain[passwd=FILE,otp=FILE]`, `pam` or `pam[gid-min=N]`, found {}",
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
        return Ok(AuthMethod::Plain {
            passwd: Some(passwd),
            otp: None,
        });
    }
    let (mut passwd, mut otp) = (None, None);
    for (key, value) in pairs(options) {
        if key.eq_ignore_ascii_case("passwd") {
            passwd = Some(absolute_path(value).map_err(|e| format!("passwd file {e}"))?);
        } else if key.eq_ignore_ascii_case("otp") {
            otp = Some(absolute_path(value).map_err(|e| format!("otp file {e}"))?);
        } else {
            return Err(format!(
                "unknown option {} for `plain` (it takes `passwd=FILE` and `otp=FILE`)",
                quote(key)
            ));
        }
    }
    // ocserv src/subconfig.c: either file alone is enough; `otp` alone asks every user only
    // for a one-time password (src/auth/plain.c).
    if passwd.is_none() && otp.is_none() {
        return Err(
            "`plain` needs a password file, a one-time password file or both: \
             `plain[passwd=/etc/ocserv/ocpasswd,otp=/etc/ocserv/users.oath]`"
                .to_owned(),
        );
    }
    Ok(AuthMethod::Plain { passwd, otp })
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
