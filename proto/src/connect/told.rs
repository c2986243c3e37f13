//! The CONNECT answer's headers that only inform the client: NetBIOS servers, split DNS, the
//! proxy PAC URL, the administrator's `custom-header` lines and Cisco's dynamic split
//! tunnelling document. Kept apart from the address/route/DTLS block of the parent module.
//!
//! Names and spelling, and what openconnect does with each (openconnect `cstp.c`, `script.c`):
//! `X-CSTP-NBNS` (up to three, `INTERNAL_IP4_NBNS`), `X-CSTP-Split-DNS` (`CISCO_SPLIT_DNS`, a
//! comma list), `X-CSTP-MSIE-Proxy-PAC-URL` (`CISCO_PROXY_PAC`; openconnect compares the name
//! case-sensitively, so ocserv's `X-CSTP-MSIE-Proxy-Pac-URL` never reaches it),
//! `X-CSTP-Post-Auth-XML` (logged as `<elided>`, otherwise ignored). Cisco Secure Client reads
//! the custom attributes `dynamic-split-include-domains` / `dynamic-split-exclude-domains` from
//! the `<config><opaque><custom-attr>` of that document (the ASA's `anyconnect-custom-data`).

use std::net::IpAddr;

use super::ipv6::Families;
use super::Headers;
use crate::ipc::main_worker::{TunnelGrant, TunnelSettings};
use crate::policy::Policy;

/// `X-CSTP-NBNS` and `X-CSTP-Split-DNS`, after the DNS servers (ocserv's order).
/// NetBIOS servers follow the DNS servers' rule: only of a family the client is told about
/// (ocserv leaves IPv6 ones out without IPv6).
pub(super) fn name_servers(h: &mut Headers, policy: &Policy, families: Families) {
    for nbns in &policy.nbns {
        let told = match nbns {
            IpAddr::V4(_) => families.ipv4(),
            IpAddr::V6(_) => families.ipv6_servers(),
        };
        if told {
            h.add("X-CSTP-NBNS", nbns);
        }
    }
    // The configuration parser accepts only domain names; a value from elsewhere that could
    // not be written as a header is left out rather than failing the whole answer.
    for domain in policy.split_dns.iter().filter(|d| is_plain(d)) {
        h.add("X-CSTP-Split-DNS", domain);
    }
}

/// `X-CSTP-MSIE-Proxy-PAC-URL` (`proxy-url`), after the rekey headers (ocserv's order).
pub(super) fn proxy_pac(h: &mut Headers, settings: &TunnelSettings, grant: &TunnelGrant) {
    if let Some(url) = &settings.proxy_url {
        h.add(
            "X-CSTP-MSIE-Proxy-PAC-URL",
            expand(url, &grant.username, &grant.groupname),
        );
    }
}

/// The `custom-header` lines (after `X-CSTP-License`, as ocserv), then Cisco's dynamic split
/// tunnelling document.
pub(super) fn extras(h: &mut Headers, settings: &TunnelSettings, grant: &TunnelGrant) {
    for (name, value) in &settings.custom_headers {
        h.add(name, expand(value, &grant.username, &grant.groupname));
    }
    if let Some(xml) = post_auth_xml(
        &settings.dynamic_split_include_domains,
        &settings.dynamic_split_exclude_domains,
    ) {
        h.add("X-CSTP-Post-Auth-XML", xml);
    }
}

/// `%{U}` and `%{G}` replaced by the user and group name (ocserv `replace_vals`). The names
/// lose any control character on the way in, so a name holding CR LF cannot start a header of
/// its own, and the value always passes the encoder's check.
pub fn expand(template: &str, user: &str, group: &str) -> String {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let (user, group) = (clean(user), clean(group));
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("%{") {
        let (before, tail) = rest.split_at(at);
        out.push_str(before);
        if let Some(after) = tail.strip_prefix("%{U}") {
            out.push_str(&user);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%{G}") {
            out.push_str(&group);
            rest = after;
        } else {
            out.push_str("%{");
            rest = tail.get(2..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    out
}

/// The one-line document of `X-CSTP-Post-Auth-XML` with the dynamic split domains, or `None`
/// when neither list is configured. The domains were checked by the configuration parser
/// (letters, digits, `-`, `_`, `.`, `*`), so they need no escaping; anything else is dropped.
pub fn post_auth_xml(include: &[String], exclude: &[String]) -> Option<String> {
    let list = |domains: &[String]| -> String {
        domains
            .iter()
            .filter(|d| {
                d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
            })
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    let (include, exclude) = (list(include), list(exclude));
    if include.is_empty() && exclude.is_empty() {
        return None;
    }
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" type=\"complete\" \
         aggregate-auth-version=\"2\"><config client=\"vpn\" type=\"private\"><opaque \
         is-for=\"vpn-client\"><custom-attr>",
    );
    for (name, domains) in [
        ("dynamic-split-exclude-domains", &exclude),
        ("dynamic-split-include-domains", &include),
    ] {
        if !domains.is_empty() {
            xml.push_str(&format!("<{name}>{domains}</{name}>"));
        }
    }
    xml.push_str("</custom-attr></opaque></config></config-auth>");
    Some(xml)
}

/// Visible characters only (no space, no control): what a domain in a header may hold.
fn is_plain(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::check_header;

    #[test]
    fn expansion() {
        assert_eq!(
            expand("X %{U} in %{G} %{U}", "alice", "staff"),
            "X alice in staff alice"
        );
        assert_eq!(expand("%{X} %{ %{U", "u", "g"), "%{X} %{ %{U");
        assert_eq!(expand("100%", "u", "g"), "100%");
        assert_eq!(expand("%{G}", "u", ""), "");
    }

    #[test]
    fn expansion_cannot_inject_a_header() {
        for user in ["a\r\nX-Evil: 1", "a\nb", "nul\0", "del\u{7f}", "c1\u{85}x"] {
            let value = expand("user=%{U} group=%{G}", user, "g\r\nSet-Cookie: x=1");
            assert!(!value.contains(['\r', '\n', '\0']), "{value:?}");
            check_header("X-User", &value).unwrap();
        }
        assert_eq!(
            expand("%{U}", "a\r\nX-Evil: 1", ""),
            "aX-Evil: 1",
            "the name stays one value"
        );
    }

    #[test]
    fn post_auth_document() {
        assert_eq!(post_auth_xml(&[], &[]), None);
        let xml = post_auth_xml(
            &["intranet.example".into()],
            &["zoom.us".into(), "*.webex.com".into()],
        )
        .unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" \
             type=\"complete\" aggregate-auth-version=\"2\"><config client=\"vpn\" \
             type=\"private\"><opaque is-for=\"vpn-client\"><custom-attr>\
             <dynamic-split-exclude-domains>zoom.us,*.webex.com</dynamic-split-exclude-domains>\
             <dynamic-split-include-domains>intranet.example</dynamic-split-include-domains>\
             </custom-attr></opaque></config></config-auth>"
        );
        check_header("X-CSTP-Post-Auth-XML", &xml).unwrap();
        let only = post_auth_xml(&["a.example".into()], &[]).unwrap();
        assert!(!only.contains("exclude"), "{only}");
        // Never markup from a value (the parser refuses it; this is the backstop).
        let odd = post_auth_xml(&["a]]><x>".into(), "ok.example".into()], &[]).unwrap();
        assert!(
            odd.contains(">ok.example<") && !odd.contains("<x>"),
            "{odd}"
        );
    }
}
