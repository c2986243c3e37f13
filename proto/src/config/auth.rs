//! `auth = "method[option=value,...]"` (ocserv `src/subconfig.c` for the sub-options).
//!
//! Only methods sec-mod can run are accepted. A method or sub-option we cannot honour is an
//! error, never a warning: running without it would let people in that ocserv keeps out, or
//! keep out everyone.

use super::diag::quote;
use super::values::{absolute_path, boolean, number, Bad};
use super::{AcctMethod, AuthMethod, CertField};

/// Methods ocserv has and rocserv does not run yet.
const OTHER_METHODS: &[&str] = &["gssapi", "oidc"];

/// `name[options]` into the name and what is between the brackets (`None`: no brackets).
fn name_and_options(v: &str) -> Result<(&str, Option<&str>), Bad> {
    match v.split_once('[') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("the options of {} do not end with `]`", quote(v)))?;
            Ok((name.trim(), Some(inner)))
        }
        None => Ok((v.trim(), None)),
    }
}

/// Parse one `auth` value (quotes already stripped).
pub(crate) fn method(v: &str) -> Result<AuthMethod, Bad> {
    let (name, options) = name_and_options(v)?;
    if name.eq_ignore_ascii_case("plain") {
        plain(options)
    } else if name.eq_ignore_ascii_case("pam") {
        pam(options)
    } else if name.eq_ignore_ascii_case("script") {
        script(options)
    } else if name.eq_ignore_ascii_case("radius") {
        radius(options, true).map(|r| AuthMethod::Radius {
            config: r.config,
            groupconfig: r.groupconfig,
            nas_identifier: r.nas_identifier,
        })
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
             in); use `plain[passwd=FILE,otp=FILE]` or `pam`"
        ))
    } else {
        Err(format!(
            "expected `plain[passwd=FILE,otp=FILE]`, `pam[gid-min=N]`, `certificate`, `radius[config=FILE]` or `script[path=FILE]`, found {}",
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

/// ocserv's PAM service name (its package name), the default of `service=`.
pub const DEFAULT_PAM_SERVICE: &str = "ocserv";

/// Longest PAM service name we accept (Linux-PAM itself has no limit; `/etc/pam.d` names are
/// short).
pub const MAX_PAM_SERVICE: usize = 64;

/// Whether `name` may be a PAM service: Linux-PAM reads `/etc/pam.d/<name>`, so the name must
/// stay a plain file name in that directory: ASCII letters, digits, `.`, `_`, `-`, not
/// starting with `.` (no `..`, no hidden file), at most [`MAX_PAM_SERVICE`] bytes. ocserv
/// passes any string to `pam_start`.
pub fn valid_pam_service(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PAM_SERVICE
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn pam(options: Option<&str>) -> Result<AuthMethod, Bad> {
    let mut gid_min = 0;
    let mut service = DEFAULT_PAM_SERVICE.to_owned();
    for (key, value) in pairs(options.unwrap_or_default()) {
        if key.eq_ignore_ascii_case("gid-min") {
            gid_min = number(value, 0, u32::MAX).map_err(|e| format!("gid-min: {e}"))?;
        } else if key.eq_ignore_ascii_case("service") {
            if !valid_pam_service(value) {
                return Err(format!(
                    "PAM service {} is not a file name in /etc/pam.d (letters, digits, `.`, \
                     `_`, `-`, not starting with `.`, at most {MAX_PAM_SERVICE} bytes)",
                    quote(value)
                ));
            }
            service = value.to_owned();
        } else {
            return Err(format!(
                "unknown option {} for `pam` (it takes `gid-min=N` and `service=NAME`)",
                quote(key)
            ));
        }
    }
    Ok(AuthMethod::Pam { gid_min, service })
}

/// `script` without `timeout=`: long enough for a remote check or a push approval, short
/// enough that a stuck hook frees its login well before the usual `auth-timeout` (240 s).
pub(crate) const DEFAULT_SCRIPT_TIMEOUT: u32 = 30;
/// Longest `timeout=` (an hour): the effective limit is also at most `auth-timeout`.
pub(crate) const MAX_SCRIPT_TIMEOUT: u32 = 3600;

/// `script[path=FILE,timeout=SECS,user=NAME]` (ours, doc/config.md "The script authentication
/// hook").
fn script(options: Option<&str>) -> Result<AuthMethod, Bad> {
    let mut path = None;
    let mut timeout_secs = DEFAULT_SCRIPT_TIMEOUT;
    let mut user = None;
    for (key, value) in pairs(options.unwrap_or_default()) {
        if key.eq_ignore_ascii_case("path") {
            path = Some(absolute_path(value).map_err(|e| format!("script path {e}"))?);
        } else if key.eq_ignore_ascii_case("timeout") {
            timeout_secs =
                number(value, 1, MAX_SCRIPT_TIMEOUT).map_err(|e| format!("script timeout: {e}"))?;
        } else if key.eq_ignore_ascii_case("user") {
            let ok = !value.is_empty()
                && value.len() <= 64
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(format!("script user {} is not a user name", quote(value)));
            }
            user = Some(value.to_owned());
        } else {
            return Err(format!(
                "unknown option {} for `script` (it takes `path=FILE`, `timeout=SECS` and \
                 `user=NAME`)",
                quote(key)
            ));
        }
    }
    let path = path.ok_or_else(|| {
        "`script` needs an executable: `script[path=/usr/local/bin/check]`".to_owned()
    })?;
    Ok(AuthMethod::Script {
        path,
        timeout_secs,
        user,
    })
}

/// The options of `radius[...]` (ocserv `src/subconfig.c`: `config`, `groupconfig`,
/// `nas-identifier`, `override-interim-updates`).
struct RadiusOptions {
    config: std::path::PathBuf,
    groupconfig: bool,
    nas_identifier: Option<String>,
}

fn radius(options: Option<&str>, auth: bool) -> Result<RadiusOptions, Bad> {
    let mut config = None;
    let mut groupconfig = false;
    let mut nas_identifier = None;
    for (key, value) in pairs(options.unwrap_or_default()) {
        if key.eq_ignore_ascii_case("config") {
            config = Some(absolute_path(value).map_err(|e| format!("radius config {e}"))?);
        } else if key.eq_ignore_ascii_case("groupconfig") && auth {
            groupconfig = boolean(value)?;
        } else if key.eq_ignore_ascii_case("nas-identifier") {
            // RFC 2865 §5.32: a string of at least 3 octets; 64 is ocserv's buffer.
            if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
                return Err(format!(
                    "nas-identifier {} must be 1 to 64 printable characters",
                    quote(value)
                ));
            }
            nas_identifier = Some(value.to_owned());
        } else if key.eq_ignore_ascii_case("override-interim-updates") {
            if boolean(value)? {
                return Err(
                    "`override-interim-updates=true` is not supported yet (rocserv honours the \
                     server's Acct-Interim-Interval)"
                        .to_owned(),
                );
            }
        } else {
            let takes = if auth {
                "`config=FILE`, `groupconfig=BOOL`, `nas-identifier=NAME`"
            } else {
                "`config=FILE`, `nas-identifier=NAME`"
            };
            return Err(format!(
                "unknown option {} for `radius` (it takes {takes})",
                quote(key)
            ));
        }
    }
    let config = config.ok_or_else(|| {
        "`radius` needs radcli's configuration file: \
         `radius[config=/etc/radcli/radiusclient.conf]`"
            .to_owned()
    })?;
    Ok(RadiusOptions {
        config,
        groupconfig,
        nas_identifier,
    })
}

/// Parse one `acct` value: `radius[config=FILE,nas-identifier=NAME]`.
pub(crate) fn acct(v: &str) -> Result<AcctMethod, Bad> {
    let (name, options) = name_and_options(v)?;
    if name.eq_ignore_ascii_case("radius") {
        let r = radius(options, false)?;
        Ok(AcctMethod::Radius {
            config: r.config,
            nas_identifier: r.nas_identifier,
        })
    } else {
        Err(format!(
            "expected `radius[config=FILE]`, found {} (a PAM account check is not supported; \
             skipping it could let in users it would reject)",
            quote(v)
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_options() {
        assert_eq!(
            method("script[path=/usr/local/bin/check,timeout=5,user=nobody]"),
            Ok(AuthMethod::Script {
                path: "/usr/local/bin/check".into(),
                timeout_secs: 5,
                user: Some("nobody".into()),
            })
        );
        assert_eq!(
            method("script[path=/bin/check]"),
            Ok(AuthMethod::Script {
                path: "/bin/check".into(),
                timeout_secs: DEFAULT_SCRIPT_TIMEOUT,
                user: None,
            })
        );
        for bad in [
            "script",
            "script[timeout=3]",
            "script[path=check]",
            "script[path=/bin/check,timeout=0]",
            "script[path=/bin/check,timeout=99999]",
            "script[path=/bin/check,user=]",
            "script[path=/bin/check,user=a b]",
            "script[path=/bin/check,shell=yes]",
        ] {
            assert!(method(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod radius_tests {
    use super::*;

    #[test]
    fn radius_auth_and_acct() {
        assert_eq!(
            method(
                "radius[config=/etc/radcli/radiusclient.conf,groupconfig=true,nas-identifier=vpn1]"
            ),
            Ok(AuthMethod::Radius {
                config: "/etc/radcli/radiusclient.conf".into(),
                groupconfig: true,
                nas_identifier: Some("vpn1".into()),
            })
        );
        assert_eq!(
            method("radius[config=/r.conf]"),
            Ok(AuthMethod::Radius {
                config: "/r.conf".into(),
                groupconfig: false,
                nas_identifier: None,
            })
        );
        assert!(method("radius").is_err());
        assert!(method("radius[config=r.conf]").is_err());
        assert!(method("radius[config=/r.conf,override-interim-updates=true]").is_err());
        assert!(method("radius[config=/r.conf,override-interim-updates=false]").is_ok());
        assert!(method("radius[config=/r.conf,frob=1]").is_err());
        assert_eq!(
            acct("radius[config=/r.conf,nas-identifier=n]"),
            Ok(AcctMethod::Radius {
                config: "/r.conf".into(),
                nas_identifier: Some("n".into()),
            })
        );
        assert!(acct("radius[config=/r.conf,groupconfig=true]").is_err());
        assert!(acct("pam").is_err());
    }
}
