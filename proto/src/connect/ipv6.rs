//! The address, DNS and route headers of the CONNECT answer for both IP versions
//! (protocol.md §2.1, §2.2; ocserv src/worker-vpn.c `connect_handler` and `send_routes`, and
//! openconnect cstp.c, which reads them): which family the client gets, and how IPv6 is
//! spelled for it.
//!
//! What ocserv does, and we with it:
//! - `X-CSTP-Address-Type` without `IPv4` / `IPv6` turns that family off for this client
//!   (openconnect `--disable-ipv6` sends `IPv4`).
//! - The IPv6 address goes out as `X-CSTP-Address-IP6: addr/prefix` to a client that sent
//!   `X-CSTP-Full-IPv6-Capability: true`, otherwise in the legacy form (`X-CSTP-Address` with
//!   an IPv6 literal and `X-CSTP-Netmask: addr/prefix`). Never when the tunnel MTU is under
//!   1280, IPv6's minimum (main leaves the address out of the grant then).
//! - IPv6 routes and DNS servers only go to OpenConnect and AnyConnect clients with full IPv6
//!   capability; AnyConnect gets IPv6 DNS servers as `X-CSTP-DNS-IP6`, others as `X-CSTP-DNS`.
//! - An AnyConnect client on iOS needs `X-CSTP-Split-Include-IP6: 2000::/3` to use IPv6 unless
//!   the tunnel is a `route = default` one.
//!
//! One difference: IPv6 routes are only announced when the client gets an IPv6 address (a
//! route into a tunnel without an address would black-hole that traffic; ocserv sends them).

use std::net::{IpAddr, Ipv4Addr};

use super::Headers;
use crate::config::{IpNet, Route};
use crate::ipc::main_worker::TunnelGrant;
use crate::policy::Policy;

/// What the client's CONNECT said about its IP versions (protocol.md §2.1) and which family of
/// client it is (§1.3, from `User-Agent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    /// `X-CSTP-Address-Type` names IPv4 / IPv6 (an absent header names both).
    pub wants_ipv4: bool,
    pub wants_ipv6: bool,
    /// `X-CSTP-Full-IPv6-Capability: true`.
    pub full_ipv6: bool,
    pub agent: Agent,
}

/// The client families whose IPv6 handling differs (ocserv's `User-Agent` classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// openconnect 4 and later (and `AnyConnect-compatible OpenConnect`).
    OpenConnect,
    /// Cisco AnyConnect / Secure Client.
    AnyConnect,
    /// Cisco AnyConnect on iOS.
    AnyConnectIos,
    /// Anything else, openconnect 3 included: no IPv6 routes or DNS.
    Other,
}

impl ClientIp {
    /// Read the two request headers and the `User-Agent`.
    pub fn from_request(
        address_type: Option<&str>,
        full_ipv6: Option<&str>,
        user_agent: &str,
    ) -> Self {
        Self {
            wants_ipv4: address_type.is_none_or(|t| t.contains("IPv4")),
            wants_ipv6: address_type.is_none_or(|t| t.contains("IPv6")),
            full_ipv6: full_ipv6.is_some_and(|v| v.contains("true")),
            agent: Agent::of(user_agent),
        }
    }
}

impl Agent {
    /// ocserv's classification (protocol.md §1.3): case-insensitive prefixes, first hit wins.
    pub fn of(user_agent: &str) -> Self {
        let ua = user_agent.to_ascii_lowercase();
        if let Some(version) = ua.strip_prefix("open anyconnect vpn agent v") {
            let major: String = version.chars().take_while(char::is_ascii_digit).collect();
            return match major.parse::<u32>() {
                Ok(n) if n > 3 => Self::OpenConnect,
                _ => Self::Other,
            };
        }
        if ua.starts_with("cisco anyconnect vpn agent for apple") {
            Self::AnyConnectIos
        } else if ua.starts_with("openconnect vpn agent") {
            Self::OpenConnect
        } else if ua.starts_with("cisco anyconnect") {
            Self::AnyConnect
        } else if ua.starts_with("anyconnect-compatible openconnect") {
            Self::OpenConnect
        } else if ua.starts_with("anyconnect") {
            Self::AnyConnect
        } else {
            Self::Other
        }
    }
}

/// Which families this answer speaks of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Families {
    ipv4: bool,
    /// The client gets an IPv6 address.
    ipv6_address: bool,
    /// IPv6 DNS servers (and, with an address, routes) may be announced.
    ipv6_extras: bool,
    full_ipv6: bool,
    agent: Agent,
}

impl Families {
    pub(super) fn new(grant: &TunnelGrant, client: &ClientIp) -> Self {
        let ipv6_extras = client.wants_ipv6
            && client.full_ipv6
            && matches!(
                client.agent,
                Agent::OpenConnect | Agent::AnyConnect | Agent::AnyConnectIos
            );
        Self {
            // No IPv4 address (an IPv6-only pool): IPv4 routes and servers would only send
            // the client's IPv4 traffic into a tunnel that cannot carry it.
            ipv4: client.wants_ipv4 && grant.ipv4_remote.is_some(),
            ipv6_address: client.wants_ipv6 && grant.ipv6.is_some(),
            ipv6_extras,
            full_ipv6: client.full_ipv6,
            agent: client.agent,
        }
    }

    /// IPv4 servers may be announced (NBNS, like DNS).
    pub(super) fn ipv4(self) -> bool {
        self.ipv4
    }

    /// IPv6 servers may be announced (NBNS, like DNS).
    pub(super) fn ipv6_servers(self) -> bool {
        self.ipv6_extras
    }
}

/// `X-CSTP-Address` / `-Netmask` for IPv4, then the IPv6 address in the client's form.
pub(super) fn addresses(h: &mut Headers, grant: &TunnelGrant, f: Families) {
    if f.ipv4 {
        if let Some(remote) = grant.ipv4_remote {
            h.add("X-CSTP-Address", remote);
            if let Some(mask) = grant.ipv4_netmask {
                h.add("X-CSTP-Netmask", mask);
            }
        }
    }
    let Some(link) = grant.ipv6.filter(|_| f.ipv6_address) else {
        return;
    };
    if f.full_ipv6 {
        h.add(
            "X-CSTP-Address-IP6",
            format!("{}/{}", link.remote, link.prefix),
        );
    } else {
        h.add("X-CSTP-Address", link.remote);
        h.add("X-CSTP-Netmask", format!("{}/{}", link.remote, link.prefix));
    }
}

/// One `X-CSTP-DNS` (or `X-CSTP-DNS-IP6` for AnyConnect) per server of a family the client
/// gets.
pub(super) fn dns(h: &mut Headers, policy: &Policy, f: Families) {
    for dns in &policy.dns {
        match dns {
            IpAddr::V4(_) if f.ipv4 => h.add("X-CSTP-DNS", dns),
            IpAddr::V6(_) if f.ipv6_extras => {
                let name = match f.agent {
                    Agent::AnyConnect | Agent::AnyConnectIos => "X-CSTP-DNS-IP6",
                    Agent::OpenConnect | Agent::Other => "X-CSTP-DNS",
                };
                h.add(name, dns);
            }
            IpAddr::V4(_) | IpAddr::V6(_) => {}
        }
    }
}

/// The split-include routes of both families (the caller leaves them out for a full tunnel),
/// after iOS AnyConnect's `2000::/3`.
pub(super) fn includes(h: &mut Headers, policy: &Policy, f: Families) {
    let default_route = policy.routes.contains(&Route::Default);
    if f.ipv6_extras && f.agent == Agent::AnyConnectIos && !default_route {
        h.add("X-CSTP-Split-Include-IP6", "2000::/3");
    }
    if !default_route && !policy.routes.is_empty() {
        routes(h, &policy.routes, "X-CSTP-Split-Include", f);
    }
}

/// The split-exclude routes of both families.
pub(super) fn excludes(h: &mut Headers, policy: &Policy, f: Families) {
    routes(h, &policy.no_routes, "X-CSTP-Split-Exclude", f);
}

/// IPv4 routes as `a.b.c.d/m.m.m.m`, IPv6 ones as `addr/len` under the `-IP6` name for a
/// client with full IPv6 capability (ocserv `send_routes`); host bits cleared.
fn routes(h: &mut Headers, routes: &[Route], name: &str, f: Families) {
    for route in routes {
        let Route::Net(IpNet { addr, prefix }) = route else {
            continue;
        };
        match addr {
            IpAddr::V4(v4) if f.ipv4 => {
                let mask = super::prefix_mask(*prefix);
                let net = Ipv4Addr::from(u32::from(*v4) & u32::from(mask));
                h.add(name, format!("{net}/{mask}"));
            }
            IpAddr::V6(v6) if f.ipv6_extras && f.ipv6_address => {
                let mask = crate::ipc::main_worker::ipv6_mask(*prefix);
                let net = std::net::Ipv6Addr::from(u128::from(*v6) & mask);
                let value = format!("{net}/{prefix}");
                if f.full_ipv6 {
                    h.add(&format!("{name}-IP6"), value);
                } else {
                    h.add(name, value);
                }
            }
            IpAddr::V4(_) | IpAddr::V6(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{response_headers, ConnectInfo};
    use super::*;
    use crate::ipc::main_worker::{Ipv6Link, TunnelSettings};
    use crate::ipc::SessionId;

    const OPENCONNECT: &str = "Open AnyConnect VPN Agent v9.01-3";

    fn net(s: &str, prefix: u8) -> Route {
        Route::Net(IpNet {
            addr: s.parse().unwrap(),
            prefix,
        })
    }

    fn grant(v4: bool, v6: bool) -> TunnelGrant {
        TunnelGrant {
            sid: SessionId(1),
            username: "u".into(),
            groupname: String::new(),
            tun_name: "vpns0".into(),
            ipv4_local: v4.then(|| "192.168.99.1".parse().unwrap()),
            ipv4_remote: v4.then(|| "192.168.99.190".parse().unwrap()),
            ipv4_netmask: v4.then(|| "255.255.255.0".parse().unwrap()),
            base_mtu: 1500,
            mtu: 1400,
            dtls_id: None,
            session_remaining_ms: None,
            policy: Box::new(Policy {
                dns: vec![
                    "192.168.99.1".parse().unwrap(),
                    "fd00:1::1".parse().unwrap(),
                ],
                routes: vec![net("10.99.0.0", 16), net("fd00:99::5", 64)],
                no_routes: vec![net("10.99.5.0", 24), net("fd00:99:0:0:1::", 80)],
                ..Policy::default()
            }),
            ipv6: v6.then(|| Ipv6Link {
                local: "fd00:1::1".parse().unwrap(),
                remote: "fd00:1::2:3".parse().unwrap(),
                prefix: 128,
            }),
        }
    }

    fn text(grant: &TunnelGrant, client: ClientIp) -> String {
        let settings = TunnelSettings {
            rekey_secs: 0,
            rekey_method: crate::config::RekeyMethod::Ssl,
            default_domain: None,
            banner: None,
            dtls: None,
            compression: crate::compress::Policy::default(),
            custom_headers: Vec::new(),
            proxy_url: None,
            dynamic_split_include_domains: Vec::new(),
            dynamic_split_exclude_domains: Vec::new(),
        };
        let info = ConnectInfo {
            server_name: "s",
            hostname: None,
            tls13: true,
            mobile: false,
            dtls: None,
            cstp_compression: None,
            dtls_compression: None,
            client_ip: client,
        };
        response_headers(&settings, grant, &info)
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .filter(|l| {
                ["Address", "Netmask", "DNS", "Split", "Bypass"]
                    .iter()
                    .any(|k| l.contains(k))
            })
            .collect()
    }

    fn client(address_type: &str, full: bool, ua: &str) -> ClientIp {
        ClientIp::from_request(Some(address_type), full.then_some("true"), ua)
    }

    #[test]
    fn dual_stack_openconnect_gets_both_families_in_ocserv_order() {
        let got = text(&grant(true, true), client("IPv6,IPv4", true, OPENCONNECT));
        assert_eq!(
            got,
            "X-CSTP-Address: 192.168.99.190\n\
             X-CSTP-Netmask: 255.255.255.0\n\
             X-CSTP-Address-IP6: fd00:1::2:3/128\n\
             X-CSTP-DNS: 192.168.99.1\n\
             X-CSTP-DNS: fd00:1::1\n\
             X-CSTP-Split-Include: 10.99.0.0/255.255.0.0\n\
             X-CSTP-Split-Include-IP6: fd00:99::/64\n\
             X-CSTP-Tunnel-All-DNS: false\n\
             X-CSTP-Client-Bypass-Protocol: false\n\
             X-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0\n\
             X-CSTP-Split-Exclude-IP6: fd00:99:0:0:1::/80\n"
        );
    }

    #[test]
    fn ipv6_only_pool_has_no_ipv4_address_and_bypass_follows_the_option() {
        let mut g = grant(false, true);
        g.policy.client_bypass_protocol = true;
        let got = text(&g, client("IPv6,IPv4", true, OPENCONNECT));
        assert!(
            got.starts_with("X-CSTP-Address-IP6: fd00:1::2:3/128\n"),
            "{got}"
        );
        assert!(!got.contains("X-CSTP-Address: "), "{got}");
        assert!(
            got.contains("X-CSTP-Client-Bypass-Protocol: true\n"),
            "{got}"
        );
        // No IPv4 address: no IPv4 routes or servers either (they would send the client's IPv4
        // traffic into a tunnel that cannot carry it).
        assert!(!got.contains("192.168") && !got.contains("10.99"), "{got}");
        assert!(
            got.contains("X-CSTP-Split-Include-IP6: fd00:99::/64\n"),
            "{got}"
        );
    }

    #[test]
    fn no_ipv6_without_an_address_or_when_the_client_declines_it() {
        // No IPv6 pool: IPv6 DNS still goes to a full-IPv6 client (as ocserv), routes do not.
        let got = text(&grant(true, false), client("IPv6,IPv4", true, OPENCONNECT));
        assert!(!got.contains("IP6"), "{got}");
        assert!(got.contains("X-CSTP-DNS: fd00:1::1\n"), "{got}");
        // openconnect --disable-ipv6: `IPv4` only, no capability header.
        let got = text(&grant(true, true), client("IPv4", false, OPENCONNECT));
        assert!(!got.contains("fd00"), "{got}");
        assert!(got.contains("X-CSTP-Address: 192.168.99.190\n"), "{got}");
        // A client that wants no IPv4 gets none.
        let got = text(&grant(true, true), client("IPv6", true, OPENCONNECT));
        assert!(!got.contains("192.168") && !got.contains("10.99"), "{got}");
        assert!(
            got.contains("X-CSTP-Address-IP6: fd00:1::2:3/128\n"),
            "{got}"
        );
    }

    #[test]
    fn legacy_form_and_unknown_agents() {
        // Without full IPv6 capability: the address in X-CSTP-Address / -Netmask, and no IPv6
        // routes or DNS.
        let v6_only = |text: String| -> String {
            text.lines()
                .filter(|l| l.contains("fd00") || l.contains("IP6"))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let got = v6_only(text(
            &grant(false, true),
            client("IPv6,IPv4", false, OPENCONNECT),
        ));
        assert_eq!(
            got,
            "X-CSTP-Address: fd00:1::2:3\nX-CSTP-Netmask: fd00:1::2:3/128\n"
        );
        // openconnect 3 and unknown agents: the address, but no IPv6 routes or DNS.
        for ua in ["Open AnyConnect VPN Agent v3.02", "curl/8"] {
            let got = v6_only(text(&grant(false, true), client("IPv6,IPv4", true, ua)));
            assert_eq!(got, "X-CSTP-Address-IP6: fd00:1::2:3/128\n", "{ua}");
        }
    }

    #[test]
    fn anyconnect_gets_dns_ip6_and_ios_its_2000_route() {
        let got = text(
            &grant(true, true),
            client(
                "IPv6,IPv4",
                true,
                "Cisco AnyConnect VPN Agent for Windows 4.10",
            ),
        );
        assert!(got.contains("X-CSTP-DNS: 192.168.99.1\nX-CSTP-DNS-IP6: fd00:1::1\n"));
        assert!(!got.contains("2000::/3"));
        let ios = client(
            "IPv6,IPv4",
            true,
            "Cisco AnyConnect VPN Agent for Apple iPhone",
        );
        let got = text(&grant(true, true), ios);
        assert!(
            got.contains("X-CSTP-Split-Include-IP6: 2000::/3\nX-CSTP-Split-Include: 10.99"),
            "{got}"
        );
        let mut full = grant(true, true);
        full.policy.routes = vec![Route::Default];
        assert!(!text(&full, ios).contains("Split-Include"));
    }

    #[test]
    fn user_agent_classes() {
        let cases = [
            ("Open AnyConnect VPN Agent v9.01-3", Agent::OpenConnect),
            ("Open AnyConnect VPN Agent v3.02", Agent::Other),
            ("open anyconnect vpn agent v10", Agent::OpenConnect),
            ("OpenConnect VPN Agent (PulseSecure)", Agent::OpenConnect),
            (
                "Cisco AnyConnect VPN Agent for Apple iPhone 4.10",
                Agent::AnyConnectIos,
            ),
            (
                "Cisco AnyConnect VPN Agent for Windows 4.10",
                Agent::AnyConnect,
            ),
            (
                "AnyConnect-compatible OpenConnect VPN Agent v9",
                Agent::OpenConnect,
            ),
            ("AnyConnect Windows 5.1.2.42", Agent::AnyConnect),
            ("curl/8", Agent::Other),
            ("", Agent::Other),
        ];
        for (ua, class) in cases {
            assert_eq!(Agent::of(ua), class, "{ua}");
        }
    }

    #[test]
    fn address_type_and_capability() {
        let oc = ClientIp::from_request(
            Some("IPv6,IPv4"),
            Some("true"),
            "Open AnyConnect VPN Agent v9.01-3",
        );
        assert!(oc.wants_ipv4 && oc.wants_ipv6 && oc.full_ipv6);
        let v4 = ClientIp::from_request(Some("IPv4"), None, "");
        assert!(v4.wants_ipv4 && !v4.wants_ipv6 && !v4.full_ipv6);
        let none = ClientIp::from_request(None, Some("false"), "");
        assert!(none.wants_ipv4 && none.wants_ipv6 && !none.full_ipv6);
    }
}
