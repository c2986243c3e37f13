//! The CONNECT request (protocol.md §2.1) turned into main's [`ConnectRequest`], and the answers
//! to it (§2.2, §2.3). Pure.

use rocserv_proto::client_strings;
use rocserv_proto::compress::{self, Algorithm, Policy};
use rocserv_proto::connect::{response_headers, ClientIp, ConnectInfo, DtlsOffer};
use rocserv_proto::http::{RequestHead, Response};
use rocserv_proto::ipc::main_worker::{ConnectRequest, TunnelGrant, TunnelSettings};

/// `X-CSTP-Server-Name`.
pub const SERVER_NAME: &str = concat!("rocserv ", env!("CARGO_PKG_VERSION"));

/// What the worker keeps from a CONNECT besides what main gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub request: ConnectRequest,
    /// A mobile AnyConnect (`X-AnyConnect-Identifier-Platform: android...` / `apple-ios...`):
    /// it gets `mobile-dpd`.
    pub mobile: bool,
    /// What the client offered for DTLS (protocol.md §2.1).
    pub dtls: DtlsRequest,
    /// `X-CSTP-Accept-Encoding` / `X-DTLS-Accept-Encoding`, verbatim (protocol.md §5.1).
    pub cstp_accept_encoding: Option<String>,
    pub dtls_accept_encoding: Option<String>,
    /// `X-CSTP-Address-Type`, `X-CSTP-Full-IPv6-Capability` and the client's family: which
    /// IPv6 headers it gets.
    pub client_ip: ClientIp,
    /// Came on a connection that has not shown the `camouflage` secret: if main refuses the
    /// cookie, the answer is the camouflage's, not a VPN's.
    pub camouflaged: bool,
}

impl Connect {
    /// The compression each channel uses under `policy`: (CSTP, DTLS). Deterministic, so the
    /// CONNECT answer and the tunnel agree.
    pub fn compression(&self, policy: &Policy) -> (Option<Algorithm>, Option<Algorithm>) {
        (
            compress::choose(self.cstp_accept_encoding.as_deref(), policy),
            compress::choose(self.dtls_accept_encoding.as_deref(), policy),
        )
    }
}

/// The client's DTLS offer: the two suite lists (verbatim) and the legacy master secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DtlsRequest {
    /// `X-DTLS-CipherSuite` and `X-DTLS12-CipherSuite`, colon-separated names.
    pub suites: String,
    pub dtls12_suites: String,
    /// `X-DTLS-Master-Secret` (96 hex digits), if present and well-formed.
    pub master_secret: Option<[u8; 48]>,
}

impl std::fmt::Debug for DtlsRequest {
    // The master secret keys legacy DTLS: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsRequest")
            .field("suites", &self.suites)
            .field("dtls12_suites", &self.dtls12_suites)
            .field("master_secret", &self.master_secret.map(|_| "<48 bytes>"))
            .finish()
    }
}

/// The request has no usable `webvpn` cookie (ocserv answers 503, protocol.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CONNECT without a webvpn cookie")]
pub struct NoCookie;

/// Read the parts of a CONNECT head that matter.
pub fn parse(head: &RequestHead) -> Result<Connect, NoCookie> {
    // main refuses (and ends the worker for) anything outside these rules, so values are
    // cleaned here with the same `client_strings` functions main checks with.
    let cookie = head
        .cookie("webvpn")
        .filter(|c| client_strings::is_cookie(c))
        .ok_or(NoCookie)?;
    let text = |name, max| client_strings::clean_text(head.header(name).unwrap_or(""), max);
    let number = |name| head.header(name).and_then(|v| v.trim().parse::<u16>().ok());
    let platform = head
        .header("X-AnyConnect-Identifier-Platform")
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(Connect {
        request: ConnectRequest {
            cookie: cookie.to_owned(),
            hostname: head
                .header("X-CSTP-Hostname")
                .and_then(client_strings::clean_hostname),
            base_mtu: number("X-CSTP-Base-MTU"),
            cstp_mtu: number("X-CSTP-MTU"),
            user_agent: text("User-Agent", client_strings::MAX_USER_AGENT),
            // Set once the DTLS mode is chosen (`tunnel::dtls_mode`).
            dtls_overhead: None,
            device_platform: text(
                "X-AnyConnect-Identifier-Platform",
                client_strings::MAX_DEVICE_FIELD,
            ),
            device_type: text(
                "X-AnyConnect-Identifier-DeviceType",
                client_strings::MAX_DEVICE_FIELD,
            ),
        },
        mobile: platform.starts_with("android") || platform.starts_with("apple-ios"),
        dtls: DtlsRequest {
            suites: head.header("X-DTLS-CipherSuite").unwrap_or("").to_owned(),
            dtls12_suites: head.header("X-DTLS12-CipherSuite").unwrap_or("").to_owned(),
            master_secret: head.header("X-DTLS-Master-Secret").and_then(master_secret),
        },
        cstp_accept_encoding: head.header("X-CSTP-Accept-Encoding").map(str::to_owned),
        dtls_accept_encoding: head.header("X-DTLS-Accept-Encoding").map(str::to_owned),
        client_ip: ClientIp::from_request(
            head.header("X-CSTP-Address-Type"),
            head.header("X-CSTP-Full-IPv6-Capability"),
            head.header("User-Agent").unwrap_or(""),
        ),
        camouflaged: false,
    })
}

/// The 48 bytes of `X-DTLS-Master-Secret` (ocserv requires at least 96 hex digits and uses the
/// first 48 bytes, protocol.md §2.1).
fn master_secret(hex_text: &str) -> Option<[u8; 48]> {
    let digits = hex_text.trim().get(..96)?;
    let mut out = [0u8; 48];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// `HTTP/1.1 200 CONNECTED` with the `X-CSTP-*` block; no length, CSTP follows.
pub fn connected(
    settings: &TunnelSettings,
    grant: &TunnelGrant,
    connect: &Connect,
    tls13: bool,
    dtls: Option<DtlsOffer<'_>>,
) -> Response {
    let (cstp_compression, dtls_compression) = connect.compression(&settings.compression);
    let info = ConnectInfo {
        server_name: SERVER_NAME,
        hostname: connect.request.hostname.as_deref(),
        tls13,
        mobile: connect.mobile,
        dtls,
        cstp_compression,
        dtls_compression,
        client_ip: connect.client_ip,
    };
    let mut response = Response::new(200, "CONNECTED");
    response.headers = response_headers(settings, grant, &info);
    response
}

/// A refused cookie: `401 Cookie is not acceptable`, then close (protocol.md §2.3).
pub fn bad_cookie() -> Response {
    Response::new(401, "Cookie is not acceptable")
}

/// No cookie, or main could not set the tunnel up (protocol.md §2.3).
pub fn unavailable(reason: &str) -> Response {
    Response::new(503, "Service Unavailable").header("X-Reason", reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::http::{parse_request_head, ParsedHead};

    fn head(text: &str) -> RequestHead {
        match parse_request_head(text.as_bytes()).unwrap() {
            ParsedHead::Complete { head, .. } => head,
            ParsedHead::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn openconnect_connect_request() {
        // protocol.md §2.1 trace (abridged).
        let h = head(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: 127.0.0.1:4443\r\n\
             User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n\
             Cookie: webvpn=AOzuCpDN6hEictBLEDdBCNozb2u2b9lBKvEVo0qqgws\r\n\
             X-CSTP-Version: 1\r\nX-CSTP-Hostname: vm.example.com\r\n\
             X-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1399\r\n\
             X-CSTP-Address-Type: IPv6,IPv4\r\nX-CSTP-Full-IPv6-Capability: true\r\n\r\n",
        );
        let c = parse(&h).unwrap();
        assert_eq!(
            c.client_ip,
            ClientIp {
                wants_ipv4: true,
                wants_ipv6: true,
                full_ipv6: true,
                agent: rocserv_proto::connect::Agent::OpenConnect,
            }
        );
        assert_eq!(
            c.request.cookie,
            "AOzuCpDN6hEictBLEDdBCNozb2u2b9lBKvEVo0qqgws"
        );
        assert_eq!(c.request.hostname.as_deref(), Some("vm"));
        assert_eq!(c.request.base_mtu, Some(1500));
        assert_eq!(c.request.cstp_mtu, Some(1399));
        assert_eq!(c.request.user_agent, "Open AnyConnect VPN Agent v9.01-3");
        assert!(!c.mobile);
        assert_eq!(c.dtls, DtlsRequest::default());
    }

    #[test]
    fn missing_cookie_and_odd_values() {
        let h = head("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Base-MTU: lots\r\n\r\n");
        assert_eq!(parse(&h), Err(NoCookie));
        let h = head(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=x\r\n\
             X-CSTP-Base-MTU: 99999\r\nX-CSTP-Hostname: -bad\r\n\
             X-AnyConnect-Identifier-Platform: Android\r\n\r\n",
        );
        let c = parse(&h).unwrap();
        assert_eq!(c.request.base_mtu, None);
        assert_eq!(c.request.hostname, None);
        assert!(c.mobile);
    }

    #[test]
    fn what_the_worker_sends_passes_mains_check() {
        // A tab and obsolete bytes survive HTTP parsing; they must not reach main's scripts,
        // nor make main end an honest client's worker.
        let mut raw = b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=x\r\n\
             User-Agent: a\tb \x85\xff"
            .to_vec();
        raw.extend("é".repeat(300).as_bytes());
        raw.extend(b"\r\nX-CSTP-Hostname: a\tb\r\n\r\n");
        let h = match parse_request_head(&raw).unwrap() {
            ParsedHead::Complete { head, .. } => head,
            ParsedHead::NeedMore => panic!("incomplete"),
        };
        let c = parse(&h).unwrap();
        assert_eq!(client_strings::check_request(&c.request), Ok(()));
        assert!(c.request.user_agent.starts_with("a b "));
        assert_eq!(c.request.hostname, None);
        let h = head("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=\u{e9}t\u{e9}\r\n\r\n");
        assert_eq!(parse(&h), Err(NoCookie));
    }

    #[test]
    fn dtls_offer_headers() {
        let secret = "4B5E6355".repeat(12);
        let h = head(&format!(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=x\r\n\
             X-DTLS-Master-Secret: {secret}\r\n\
             X-DTLS-CipherSuite: PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:AES128-SHA\r\n\
             X-DTLS12-CipherSuite: AES128-GCM-SHA256\r\n\r\n"
        ));
        let c = parse(&h).unwrap();
        assert_eq!(
            c.dtls.suites,
            "PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:AES128-SHA"
        );
        assert_eq!(c.dtls.dtls12_suites, "AES128-GCM-SHA256");
        let ms = c.dtls.master_secret.unwrap();
        assert_eq!(ms[..4], [0x4b, 0x5e, 0x63, 0x55]);
        assert!(!format!("{:?}", c.dtls).contains("4b5e"));
        assert_eq!(master_secret("ABCD"), None);
        assert_eq!(master_secret(&"zz".repeat(48)), None);
    }

    #[test]
    fn accept_encodings_per_channel() {
        let h = head(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=x\r\n\
             X-CSTP-Accept-Encoding: oc-lz4,lzs,deflate\r\n\
             X-DTLS-Accept-Encoding: lzs\r\n\r\n",
        );
        let c = parse(&h).unwrap();
        let on = Policy {
            enabled: true,
            ..Policy::default()
        };
        assert_eq!(
            c.compression(&on),
            (Some(Algorithm::Lz4), Some(Algorithm::Lzs))
        );
        assert_eq!(c.compression(&Policy::default()), (None, None));
        let bare = parse(&head(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=x\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(bare.compression(&on), (None, None));
    }

    #[test]
    fn refusals_encode_with_zero_length() {
        let mut out = Vec::new();
        bad_cookie().encode(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 401 Cookie is not acceptable\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
