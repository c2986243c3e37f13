//! The header block of the `HTTP/1.1 200 CONNECTED` answer (protocol.md §2.2, §2.3): which
//! `X-CSTP-*` headers a tunnel gets, spelled byte-exactly (openconnect compares the names with
//! `strcmp`, protocol.md §0 item 4). Built by the worker from main's [`TunnelGrant`] and the
//! configuration slice [`TunnelSettings`]; nothing here is parsed from the network.
//!
//! `X-DTLS-*` headers are emitted only when the worker chose a DTLS mode and main handed out a
//! DTLS id ([`DtlsOffer`]); without them openconnect stays on CSTP at once (protocol.md §2.3
//! item 7), which is right when no UDP port is served.

use std::net::Ipv4Addr;

use crate::compress::Algorithm;
use crate::config::{RekeyMethod, Route};
use crate::ipc::main_worker::{TunnelGrant, TunnelSettings};

mod ipv6;
pub mod told;

pub use ipv6::{Agent, ClientIp};

/// `X-CSTP-Rekey-Time` for `ssl` rekeying on TLS 1.3: one year, as ocserv >= 1.5.1 does, since
/// TLS 1.3 has no renegotiation and rustls sends KeyUpdates itself (protocol.md §3.5).
pub const TLS13_SSL_REKEY_SECS: u32 = 31_536_000;

/// Facts about this connection that the builder needs besides the settings and the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectInfo<'a> {
    /// `X-CSTP-Server-Name`.
    pub server_name: &'a str,
    /// The client's `X-CSTP-Hostname`, already validated; echoed back.
    pub hostname: Option<&'a str>,
    /// The TLS connection negotiated TLS 1.3 (decides the rekey method, protocol.md §3.5).
    pub tls13: bool,
    /// The client announced a mobile platform: it gets `mobile-dpd` instead of `dpd`.
    pub mobile: bool,
    /// The DTLS channel offered to this client, if any.
    pub dtls: Option<DtlsOffer<'a>>,
    /// Compression negotiated per channel (`compress::choose`, protocol.md §5.1); the DTLS one
    /// is only announced together with a DTLS offer.
    pub cstp_compression: Option<Algorithm>,
    pub dtls_compression: Option<Algorithm>,
    /// The IP versions the client asked for, and its family (decides the IPv6 headers).
    pub client_ip: ClientIp,
}

/// What the `X-DTLS-*` block announces (protocol.md §2.2, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsOffer<'a> {
    /// `X-DTLS-Port`.
    pub port: u16,
    /// `X-DTLS-App-ID` (PSK) or `X-DTLS-Session-ID` (legacy), hex-encoded.
    pub id: &'a [u8; 32],
    pub cipher: DtlsCipher,
}

/// The negotiation announced in the `X-DTLS-*` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsCipher {
    /// `X-DTLS-CipherSuite: PSK-NEGOTIATE` with `X-DTLS-App-ID` (§4.2).
    Psk,
    /// A legacy suite (§4.3): `X-DTLS-Session-ID`, the suite's name in `X-DTLS-CipherSuite`, or in
    /// `X-DTLS12-CipherSuite` when `dtls12` (the client offered it there), and `X-DTLS-MTU`.
    Legacy { name: &'static str, dtls12: bool },
}

/// The response headers in ocserv's order (the §2.2 trace), names exactly as openconnect
/// expects them. The status line and the blank line are the caller's.
pub fn response_headers(
    settings: &TunnelSettings,
    grant: &TunnelGrant,
    info: &ConnectInfo<'_>,
) -> Vec<(String, String)> {
    let mut h = Headers(Vec::with_capacity(32));
    h.add("X-CSTP-Version", "1");
    h.add("X-CSTP-Server-Name", info.server_name);
    if let Some(hostname) = info.hostname {
        h.add("X-CSTP-Hostname", hostname);
    }
    let policy = &grant.policy;
    let dpd = policy.dpd_secs(info.mobile);
    if dpd > 0 {
        h.add("X-CSTP-DPD", dpd);
    }
    if let Some(domain) = &settings.default_domain {
        h.add("X-CSTP-Default-Domain", one_line(domain));
    }
    let families = ipv6::Families::new(grant, &info.client_ip);
    ipv6::addresses(&mut h, grant, families);
    ipv6::dns(&mut h, policy, families);
    told::name_servers(&mut h, policy, families);
    // No route, or `default` among them, is a full tunnel: no Split-Include at all, and all DNS
    // goes through the tunnel (ocserv forces Tunnel-All-DNS there; protocol.md §2.2).
    let full_tunnel = policy.routes.is_empty() || policy.routes.contains(&Route::Default);
    ipv6::includes(&mut h, policy, families);
    h.add(
        "X-CSTP-Tunnel-All-DNS",
        full_tunnel || policy.tunnel_all_dns,
    );
    h.add(
        "X-CSTP-Client-Bypass-Protocol",
        policy.client_bypass_protocol,
    );
    ipv6::excludes(&mut h, policy, families);
    h.add("X-CSTP-Keepalive", policy.keepalive);
    h.add("X-CSTP-Idle-Timeout", secs_or_none(policy.idle_timeout));
    h.add("X-CSTP-Smartcard-Removal-Disconnect", "true");
    let (rekey_method, rekey_secs) = rekey(settings, info.tls13);
    if let Some(secs) = rekey_secs {
        h.add("X-CSTP-Rekey-Time", secs);
    }
    h.add("X-CSTP-Rekey-Method", rekey_method);
    told::proxy_pac(&mut h, settings, grant);
    h.add(
        "X-CSTP-Session-Timeout",
        secs_or_none(policy.session_timeout),
    );
    // Counted from the login, so a cookie reconnect is told what is really left (main computed
    // it from sec-mod's session age; ocserv bug #599 restarted it at every reconnect).
    if let Some(ms) = grant.session_remaining_ms {
        h.add("X-CSTP-Session-Timeout-Remaining", ms / 1000);
    }
    h.add("X-CSTP-Disconnected-Timeout", "none");
    h.add("X-CSTP-Keep", "true");
    h.add("X-CSTP-TCP-Keepalive", "true");
    h.add("X-CSTP-License", "accept");
    told::extras(&mut h, settings, grant);
    if let Some(dtls) = &info.dtls {
        dtls_block(
            &mut h,
            dtls,
            dpd,
            policy.keepalive,
            rekey_secs,
            rekey_method,
            grant.mtu,
        );
    }
    h.add("X-CSTP-Base-MTU", grant.base_mtu);
    h.add("X-CSTP-MTU", grant.mtu);
    if let Some(banner) = &settings.banner {
        h.add("X-CSTP-Banner", one_line(banner));
    }
    // Last, DTLS before CSTP, as in the §2.2 trace.
    if let (Some(_), Some(algorithm)) = (&info.dtls, info.dtls_compression) {
        h.add("X-DTLS-Content-Encoding", algorithm.name());
    }
    if let Some(algorithm) = info.cstp_compression {
        h.add("X-CSTP-Content-Encoding", algorithm.name());
    }
    h.0
}

/// The `X-DTLS-*` headers in ocserv's order (protocol.md §2.2 traces). The DTLS rekey time is the
/// CSTP one plus 10 s and its method is only announced for `ssl`, as ocserv does.
fn dtls_block(
    h: &mut Headers,
    dtls: &DtlsOffer<'_>,
    dpd: u32,
    keepalive: u32,
    rekey_secs: Option<u32>,
    rekey_method: &str,
    mtu: u16,
) {
    if dpd > 0 {
        h.add("X-DTLS-DPD", dpd);
    }
    h.add("X-DTLS-Port", dtls.port);
    if let Some(secs) = rekey_secs {
        h.add("X-DTLS-Rekey-Time", secs.saturating_add(10));
        if rekey_method == "ssl" {
            h.add("X-DTLS-Rekey-Method", "ssl");
        }
    }
    h.add("X-DTLS-Keepalive", keepalive);
    let id = hex(dtls.id);
    match dtls.cipher {
        DtlsCipher::Psk => {
            h.add("X-DTLS-App-ID", id);
            h.add("X-DTLS-CipherSuite", "PSK-NEGOTIATE");
        }
        DtlsCipher::Legacy { name, dtls12 } => {
            h.add("X-DTLS-Session-ID", id);
            let header = if dtls12 {
                "X-DTLS12-CipherSuite"
            } else {
                "X-DTLS-CipherSuite"
            };
            h.add(header, name);
            // openconnect trusts this in legacy mode (§2.4).
            h.add("X-DTLS-MTU", mtu);
        }
    }
}

/// Lower-case hex, as ocserv prints its ids.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `X-CSTP-Rekey-Method` and `X-CSTP-Rekey-Time` (protocol.md §3.5). rustls cannot renegotiate,
/// so `ssl` is only advertised on TLS 1.3, with the one-year time (rustls refreshes the keys with
/// KeyUpdate itself); on TLS 1.2 the client is asked to reconnect with its cookie instead
/// (`new-tunnel`), which it would fall back to anyway after a refused renegotiation. A rekey
/// time of 0 is the administrator turning rekeying off.
fn rekey(settings: &TunnelSettings, tls13: bool) -> (&'static str, Option<u32>) {
    if settings.rekey_secs == 0 {
        return ("none", None);
    }
    match settings.rekey_method {
        RekeyMethod::Ssl if tls13 => ("ssl", Some(TLS13_SSL_REKEY_SECS)),
        RekeyMethod::Ssl | RekeyMethod::NewTunnel => ("new-tunnel", Some(settings.rekey_secs)),
    }
}

/// The dotted mask of an IPv4 prefix length (lengths above 32 are treated as 32).
fn prefix_mask(prefix: u8) -> Ipv4Addr {
    let bits = u32::from(prefix.min(32));
    let mask = u32::MAX
        .checked_shl(32u32.saturating_sub(bits))
        .unwrap_or(0);
    Ipv4Addr::from(mask)
}

fn secs_or_none(secs: Option<u32>) -> String {
    secs.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

/// Header values are single lines: a banner with line breaks must not end the head early.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

struct Headers(Vec<(String, String)>);

impl Headers {
    fn add(&mut self, name: &str, value: impl ToString) {
        self.0.push((name.to_owned(), value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;
    use crate::ipc::SessionId;
    use crate::policy::Policy;

    fn settings() -> TunnelSettings {
        TunnelSettings {
            rekey_secs: 172_800,
            rekey_method: RekeyMethod::Ssl,
            default_domain: Some("example.com".into()),
            banner: Some("Welcome banner".into()),
            dtls: None,
            compression: crate::compress::Policy::default(),
            custom_headers: Vec::new(),
            proxy_url: None,
            dynamic_split_include_domains: Vec::new(),
            dynamic_split_exclude_domains: Vec::new(),
        }
    }

    fn grant() -> TunnelGrant {
        TunnelGrant {
            sid: SessionId(1),
            username: "test".into(),
            groupname: String::new(),
            tun_name: "vpns0".into(),
            ipv4_local: Some("192.168.99.1".parse().unwrap()),
            ipv4_remote: Some("192.168.99.190".parse().unwrap()),
            ipv4_netmask: Some("255.255.255.0".parse().unwrap()),
            base_mtu: 1500,
            mtu: 1472,
            dtls_id: None,
            session_remaining_ms: None,
            policy: Box::new(policy()),
            ipv6: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            dns: vec!["192.168.99.1".parse().unwrap()],
            routes: vec![Route::Net(IpNet {
                addr: "10.99.0.0".parse().unwrap(),
                prefix: 16,
            })],
            no_routes: vec![Route::Net(IpNet {
                addr: "10.99.5.7".parse().unwrap(),
                prefix: 24,
            })],
            ..Policy::default()
        }
    }

    fn info(tls13: bool) -> ConnectInfo<'static> {
        ConnectInfo {
            server_name: "rocserv",
            hostname: Some("vm"),
            tls13,
            mobile: false,
            dtls: None,
            cstp_compression: None,
            dtls_compression: None,
            client_ip: ClientIp::from_request(
                Some("IPv6,IPv4"),
                Some("true"),
                "Open AnyConnect VPN Agent v9.01-3",
            ),
        }
    }

    fn render(headers: &[(String, String)]) -> String {
        headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect()
    }

    #[test]
    fn matches_the_trace_shape() {
        // protocol.md §2.2 trace, minus the DTLS and compression headers we do not offer yet.
        let expected = "\
X-CSTP-Version: 1
X-CSTP-Server-Name: rocserv
X-CSTP-Hostname: vm
X-CSTP-DPD: 90
X-CSTP-Default-Domain: example.com
X-CSTP-Address: 192.168.99.190
X-CSTP-Netmask: 255.255.255.0
X-CSTP-DNS: 192.168.99.1
X-CSTP-Split-Include: 10.99.0.0/255.255.0.0
X-CSTP-Tunnel-All-DNS: false
X-CSTP-Client-Bypass-Protocol: false
X-CSTP-Split-Exclude: 10.99.5.0/255.255.255.0
X-CSTP-Keepalive: 32400
X-CSTP-Idle-Timeout: none
X-CSTP-Smartcard-Removal-Disconnect: true
X-CSTP-Rekey-Time: 31536000
X-CSTP-Rekey-Method: ssl
X-CSTP-Session-Timeout: none
X-CSTP-Disconnected-Timeout: none
X-CSTP-Keep: true
X-CSTP-TCP-Keepalive: true
X-CSTP-License: accept
X-CSTP-Base-MTU: 1500
X-CSTP-MTU: 1472
X-CSTP-Banner: Welcome banner
";
        assert_eq!(
            render(&response_headers(&settings(), &grant(), &info(true))),
            expected
        );
    }

    #[test]
    fn no_dtls_headers_are_offered() {
        let headers = response_headers(&settings(), &grant(), &info(true));
        assert!(headers.iter().all(|(n, _)| n.starts_with("X-CSTP-")));
    }

    #[test]
    fn dtls_psk_block_matches_the_trace() {
        let id = [0x04u8; 32];
        let info = ConnectInfo {
            dtls: Some(DtlsOffer {
                port: 4443,
                id: &id,
                cipher: DtlsCipher::Psk,
            }),
            ..info(true)
        };
        let text = render(&response_headers(&settings(), &grant(), &info));
        let expected = format!(
            "X-CSTP-License: accept\nX-DTLS-DPD: 90\nX-DTLS-Port: 4443\n\
             X-DTLS-Rekey-Time: 31536010\nX-DTLS-Rekey-Method: ssl\nX-DTLS-Keepalive: 32400\n\
             X-DTLS-App-ID: {}\nX-DTLS-CipherSuite: PSK-NEGOTIATE\nX-CSTP-Base-MTU: 1500\n",
            "04".repeat(32)
        );
        assert!(text.contains(&expected), "{text}");
        assert!(!text.contains("X-DTLS-MTU"));
    }

    #[test]
    fn dtls_legacy_blocks() {
        let id = [0xabu8; 32];
        let legacy = |dtls12| ConnectInfo {
            dtls: Some(DtlsOffer {
                port: 443,
                id: &id,
                cipher: DtlsCipher::Legacy {
                    name: if dtls12 {
                        "AES128-GCM-SHA256"
                    } else {
                        "AES128-SHA"
                    },
                    dtls12,
                },
            }),
            ..info(false)
        };
        let text = render(&response_headers(&settings(), &grant(), &legacy(true)));
        let block = format!(
            "X-DTLS-Session-ID: {}\nX-DTLS12-CipherSuite: AES128-GCM-SHA256\nX-DTLS-MTU: 1472\n",
            "ab".repeat(32)
        );
        assert!(text.contains(&block), "{text}");
        assert!(!text.contains("X-DTLS-CipherSuite"));
        // TLS 1.2 rekeys with a new tunnel: no DTLS rekey method, time = CSTP + 10.
        assert!(text.contains("X-DTLS-Rekey-Time: 172810\nX-DTLS-Keepalive"));
        let text = render(&response_headers(&settings(), &grant(), &legacy(false)));
        assert!(text.contains("X-DTLS-CipherSuite: AES128-SHA\nX-DTLS-MTU: 1472\n"));
    }

    #[test]
    fn default_route_or_no_route_is_a_full_tunnel() {
        for routes in [vec![], vec![Route::Default]] {
            let g = TunnelGrant {
                policy: Box::new(Policy { routes, ..policy() }),
                ..grant()
            };
            let headers = response_headers(&settings(), &g, &info(true));
            assert!(!headers.iter().any(|(n, _)| n == "X-CSTP-Split-Include"));
            assert!(headers
                .iter()
                .any(|(n, v)| n == "X-CSTP-Tunnel-All-DNS" && v == "true"));
        }
    }

    #[test]
    fn tls12_rekeys_with_a_new_tunnel() {
        let headers = response_headers(&settings(), &grant(), &info(false));
        let rekey: Vec<_> = headers
            .iter()
            .filter(|(n, _)| n.starts_with("X-CSTP-Rekey-"))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert_eq!(
            rekey,
            [
                "X-CSTP-Rekey-Time: 172800",
                "X-CSTP-Rekey-Method: new-tunnel"
            ]
        );
    }

    #[test]
    fn timeouts_mobile_dpd_and_line_breaks() {
        let s = TunnelSettings {
            banner: Some("two\r\nlines".into()),
            ..settings()
        };
        let grant = TunnelGrant {
            session_remaining_ms: Some(3_600_000),
            policy: Box::new(Policy {
                idle_timeout: Some(1200),
                session_timeout: Some(3600),
                dns: vec!["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
                ..policy()
            }),
            ..grant()
        };
        let headers = response_headers(
            &s,
            &grant,
            &ConnectInfo {
                mobile: true,
                hostname: None,
                ..info(true)
            },
        );
        let text = render(&headers);
        assert!(text.contains("X-CSTP-DPD: 1800\n"));
        assert!(!text.contains("X-CSTP-Hostname"));
        assert!(text.contains("X-CSTP-Idle-Timeout: 1200\n"));
        assert!(
            text.contains("X-CSTP-Session-Timeout: 3600\nX-CSTP-Session-Timeout-Remaining: 3600\n")
        );
        assert!(text.contains("X-CSTP-DNS: 10.0.0.1\nX-CSTP-DNS: 2001:db8::1\n"));
        assert!(text.contains("X-CSTP-Banner: two  lines\n"));
    }

    #[test]
    fn session_timeout_remaining_counts_from_the_login() {
        // A cookie reconnect 6.5 s into a 10 s session: 3 whole seconds are left, not 10.
        let grant = TunnelGrant {
            session_remaining_ms: Some(3_500),
            policy: Box::new(Policy {
                session_timeout: Some(10),
                ..policy()
            }),
            ..grant()
        };
        let text = render(&response_headers(&settings(), &grant, &info(true)));
        assert!(
            text.contains("X-CSTP-Session-Timeout: 10\nX-CSTP-Session-Timeout-Remaining: 3\n"),
            "{text}"
        );
    }

    #[test]
    fn prefix_masks() {
        assert_eq!(prefix_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_mask(8), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(prefix_mask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(prefix_mask(99), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn content_encodings_come_last() {
        let id = [1u8; 32];
        let both = ConnectInfo {
            cstp_compression: Some(Algorithm::Lz4),
            dtls_compression: Some(Algorithm::Lzs),
            ..info(true)
        };
        let text = render(&response_headers(&settings(), &grant(), &both));
        assert!(text.ends_with("X-CSTP-Banner: Welcome banner\nX-CSTP-Content-Encoding: oc-lz4\n"));
        let with_dtls = ConnectInfo {
            dtls: Some(DtlsOffer {
                port: 443,
                id: &id,
                cipher: DtlsCipher::Psk,
            }),
            ..both
        };
        let text = render(&response_headers(&settings(), &grant(), &with_dtls));
        assert!(text.ends_with("X-DTLS-Content-Encoding: lzs\nX-CSTP-Content-Encoding: oc-lz4\n"));
        let none = render(&response_headers(&settings(), &grant(), &info(true)));
        assert!(!none.contains("Content-Encoding"));
    }

    #[test]
    fn what_the_client_is_told() {
        let s = TunnelSettings {
            custom_headers: vec![("X-My-Header".into(), "hi %{U} of %{G}".into())],
            proxy_url: Some("http://pac.example/%{U}.pac".into()),
            dynamic_split_exclude_domains: vec!["zoom.us".into()],
            ..settings()
        };
        let g = TunnelGrant {
            username: "alice".into(),
            groupname: "staff".into(),
            policy: Box::new(Policy {
                nbns: vec!["10.0.0.5".parse().unwrap(), "2001:db8::5".parse().unwrap()],
                split_dns: vec!["corp.example".into(), "bad\r\nX-Evil: 1".into()],
                ..policy()
            }),
            ..grant()
        };
        let text = render(&response_headers(&s, &g, &info(true)));
        assert!(
            text.contains(
                "X-CSTP-DNS: 192.168.99.1\nX-CSTP-NBNS: 10.0.0.5\nX-CSTP-NBNS: 2001:db8::5\n\
                 X-CSTP-Split-DNS: corp.example\nX-CSTP-Split-Include"
            ),
            "{text}"
        );
        // A client that does not ask for full IPv6 gets the IPv4 server only (like DNS).
        let v4_only = ConnectInfo {
            client_ip: ClientIp::from_request(Some("IPv4"), None, "Open AnyConnect VPN Agent"),
            ..info(true)
        };
        let text4 = render(&response_headers(&s, &g, &v4_only));
        assert!(text4.contains("X-CSTP-NBNS: 10.0.0.5\n"), "{text4}");
        assert!(!text4.contains("2001:db8::5"), "{text4}");
        assert!(!text.contains("X-Evil"), "{text}");
        assert!(text.contains(
            "X-CSTP-Rekey-Method: ssl\n\
             X-CSTP-MSIE-Proxy-PAC-URL: http://pac.example/alice.pac\n"
        ));
        assert!(text.contains(
            "X-CSTP-License: accept\nX-My-Header: hi alice of staff\nX-CSTP-Post-Auth-XML: "
        ));
        assert!(text.contains("<dynamic-split-exclude-domains>zoom.us</"));
        // Every header passes the encoder's check (else the whole answer would become a 500).
        let headers = response_headers(&s, &g, &info(true));
        for (name, value) in &headers {
            crate::http::check_header(name, value).unwrap();
        }
        // Nothing configured: none of them.
        let plain = render(&response_headers(&settings(), &grant(), &info(true)));
        for name in ["NBNS", "Split-DNS", "PAC", "X-My-Header", "Post-Auth"] {
            assert!(!plain.contains(name), "{plain}");
        }
    }
}
