//! Values of the options that only shape what the client is told: `split-dns` and the dynamic
//! split domains, `custom-header` / `included-http-headers`, `proxy-url`, `user-profile`.
//!
//! Each of them ends up in an HTTP header or an XML document the worker writes, so each is
//! checked here, once, at configuration time: a header line must be an HTTP token, a colon and
//! a value without CR, LF or other control characters (no response splitting), and domains and
//! URLs are plain visible characters.

use std::path::{Path, PathBuf};

use super::diag::quote;
use super::values::{self, Bad};
use crate::http;

/// A domain name is at most 253 characters (RFC 1035 §2.3.4 with the dots).
const MAX_DOMAIN: usize = 253;

/// An `user-profile` file name: what the client finds under `/profiles/`.
const MAX_PROFILE_NAME: usize = 64;

/// A DNS domain (`split-dns`): labels of letters, digits, `-` and `_` separated by dots (a
/// trailing dot is allowed). Nothing that could end a header line or an XML text.
pub(crate) fn domain(v: &str) -> Result<String, Bad> {
    if valid_domain(v) {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "expected a domain name (letters, digits, `-`, `_` and dots), found {}",
            quote(v)
        ))
    }
}

/// `dynamic-split-include-domains` / `-exclude-domains`: one domain or a comma separated list
/// (the ASA's `anyconnect-custom-data` style); a domain may start with `*.`.
pub(crate) fn domain_list(v: &str) -> Result<Vec<String>, Bad> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bare = item.strip_prefix("*.").unwrap_or(item);
        if !valid_domain(bare) {
            return Err(format!(
                "expected domain names separated by commas (letters, digits, `-`, `_`, dots, \
                 an optional leading `*.`), found {}",
                quote(item)
            ));
        }
        out.push(item.to_owned());
    }
    if out.is_empty() {
        return Err("expected at least one domain name".to_owned());
    }
    Ok(out)
}

fn valid_domain(v: &str) -> bool {
    let body = v.strip_suffix('.').unwrap_or(v);
    !body.is_empty()
        && v.len() <= MAX_DOMAIN
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `custom-header` / `included-http-headers`: `Name: value`, as the line appears on the wire.
/// The name must be an HTTP token other than the framing headers, the value free of control
/// characters (checked with the same rules the worker's encoder applies).
pub(crate) fn header_line(v: &str) -> Result<(String, String), Bad> {
    let Some((name, value)) = v.split_once(':') else {
        return Err(format!(
            "expected `Name: value` (an HTTP header line), found {}",
            quote(v)
        ));
    };
    let (name, value) = (name.trim(), value.trim());
    http::check_header(name, value).map_err(|e| format!("{e}; found {}", quote(v)))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// `proxy-url`: a URL of visible characters (no space, no control character); `%{U}` and
/// `%{G}` are expanded per session.
pub(crate) fn url(v: &str) -> Result<String, Bad> {
    if !v.is_empty() && v.len() <= 1024 && v.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "expected a URL of visible ASCII characters without spaces, found {}",
            quote(v)
        ))
    }
}

/// `user-profile`: an absolute path whose file name is served as `/profiles/NAME`, so the name
/// must be safe in a URL, an XML text and a cookie.
pub(crate) fn profile_path(v: &str) -> Result<PathBuf, Bad> {
    let path = values::absolute_path(v)?;
    profile_name(&path).ok_or_else(|| {
        format!(
            "the file name must be 1 to {MAX_PROFILE_NAME} letters, digits, `_`, `-` or `.` \
             (it is the name the client downloads), found {}",
            quote(v)
        )
    })?;
    Ok(path)
}

/// The name under which a `user-profile` file is served: its file name, when that is URL-safe.
pub fn profile_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let ok = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(domain("corp.example.com").unwrap(), "corp.example.com");
        assert!(domain("example.com.").is_ok());
        assert!(domain("_sip.example").is_ok());
        for bad in [
            "",
            ".",
            "a..b",
            "a b",
            "a\r\nX-Evil: 1",
            "<x>",
            "a,b",
            "*.example.com",
        ] {
            assert!(domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(domain(&"a".repeat(64)).is_err());
        assert!(domain(&format!("{}.com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn domain_lists() {
        assert_eq!(
            domain_list("zoom.us, *.webex.com,,example.org").unwrap(),
            ["zoom.us", "*.webex.com", "example.org"]
        );
        assert!(domain_list(" , ").is_err());
        assert!(domain_list("ok.com,bad]]>.com").is_err());
        assert!(domain_list("a.com,*.").is_err());
    }

    #[test]
    fn header_lines() {
        assert_eq!(
            header_line("X-My-Header: hi there %{U}").unwrap(),
            ("X-My-Header".to_owned(), "hi there %{U}".to_owned())
        );
        for bad in [
            "no colon",
            ": empty name",
            "Bad Name: x",
            "X-A: one\r\nX-B: two",
            "X-A: nul\0",
            "Content-Length: 5",
            "transfer-encoding: chunked",
        ] {
            assert!(header_line(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls_and_profiles() {
        assert!(url("http://proxy.example/%{U}.pac").is_ok());
        assert!(url("http://a b").is_err());
        assert!(url("http://a\nb").is_err());
        assert_eq!(
            profile_path("/etc/ocserv/profile.xml").unwrap(),
            PathBuf::from("/etc/ocserv/profile.xml")
        );
        assert!(profile_path("profile.xml").is_err());
        assert!(profile_path("/etc/ocserv/my profile.xml").is_err());
        assert!(profile_path("/etc/ocserv/a&b.xml").is_err());
        assert!(profile_path("/").is_err());
    }
}
