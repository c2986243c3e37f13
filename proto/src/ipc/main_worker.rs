//! main <-> worker. main is trusted by the worker; everything main decodes from a worker is
//! untrusted (the worker faces the internet).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{CloseReason, KeyKind, SessionId, WorkerId};
use crate::config::RekeyMethod;

/// The first message on the worker's main socket (fd 4): everything the worker needs, so that it
/// never reads a file or an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStart {
    pub worker: WorkerId,
    /// The client's address and our local address of the accepted TCP connection (fd 3).
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub sandbox: SandboxPolicy,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub tunnel: TunnelSettings,
    /// What the HTTP phase tells the client besides the login (profile, `webvpnc`, extra
    /// headers).
    pub client: ClientSettings,
    /// Each `[vhost:NAME]`'s camouflage: a client whose SNI names one gets it instead of
    /// `client.camouflage` (the default section's), as ocserv (the option is vhost-scoped).
    pub vhost_camouflage: Vec<(String, Option<crate::config::Camouflage>)>,
    /// Each `[vhost:NAME]`'s certificate login: (`alone`, `no_form`) of
    /// [`ClientCertSettings`], for a client whose SNI names it (the default section's are in
    /// `auth.client_cert`).
    pub vhost_cert_login: Vec<(String, CertLogin)>,
}

/// How a section logs a client in with its certificate (see [`ClientCertSettings`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertLogin {
    /// A certificate alone logs in: a client that sent one is logged in without the form.
    pub alone: bool,
    /// No password method: there is no form to fall back to.
    pub no_form: bool,
}

impl CertLogin {
    /// The login of the section the client's SNI names (`vhosts`), else `default`'s.
    pub fn choose(default: Self, vhosts: &[(String, Self)], sni: Option<&str>) -> Self {
        sni.and_then(|sni| {
            vhosts
                .iter()
                .find(|(name, _)| crate::config::same_host(name, sni))
        })
        .map_or(default, |(_, login)| *login)
    }
}

/// The HTTP phase's extras: `user-profile`, the `webvpnc` cookie, `included-http-headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    /// `user-profile`, read by main (the worker opens no file).
    pub profile: Option<UserProfile>,
    /// SHA-1 of the server certificate (DER), upper-case hex: the `sh:` of the `webvpnc`
    /// cookie, as ocserv sends it.
    pub cert_sha1: String,
    /// `included-http-headers`, checked by the configuration parser.
    pub included_http_headers: Vec<(String, String)>,
    /// `camouflage` in force for this connection: without its secret in the URL, the HTTP
    /// phase answers as a plain web server.
    pub camouflage: Option<crate::config::Camouflage>,
}

/// An AnyConnect XML profile as served at `/profiles/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The file name (URL-safe, checked by the configuration parser).
    pub name: String,
    /// SHA-1 of `xml`, upper-case hex (the manifest's `<hash type="sha1">`).
    pub sha1: String,
    pub xml: Vec<u8>,
}

/// Which user the worker becomes and whether it locks itself in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPolicy {
    /// `run-as-user` / `run-as-group`, resolved by main.
    pub uid: u32,
    pub gid: u32,
    /// `isolate-workers`: apply the seccomp allow-list.
    pub seccomp: bool,
}

/// The public half of the TLS setup; the private key stays in sec-mod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSettings {
    /// `server-cert`, DER, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    pub key: KeyKind,
    /// Protocol versions allowed by `tls-priorities` (at least one is true).
    pub tls12: bool,
    pub tls13: bool,
    /// The `[vhost:NAME]` certificates: a client whose SNI names one gets its chain (and the
    /// signature of its key, which stays in sec-mod); any other client gets `cert_chain`.
    pub vhosts: Vec<VhostCert>,
}

/// One virtual host's public TLS identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostCert {
    /// The section name, lower case (what the client's SNI is compared with).
    pub name: String,
    /// Its `server-cert`, DER, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    pub key: KeyKind,
}

/// The login conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSettings {
    /// `auth-timeout`: the whole unauthenticated phase of a connection, in seconds.
    pub auth_timeout_secs: u64,
    /// `handshake-timeout`: the TLS handshake and the first request must be done this many
    /// seconds after the connection came in, and every later request this long after its
    /// first byte (slowloris).
    pub handshake_timeout_secs: u64,
    /// `pre-login-banner`, shown on the login form.
    pub pre_login_banner: Option<String>,
    /// The groups the login form offers: `select-group`, or with `auto-select-group` the
    /// list sec-mod made when it started.
    pub groups: Vec<crate::config::GroupChoice>,
    /// `default-select-group`: offered too, and asking for it means "no particular group".
    pub default_select_group: Option<String>,
    /// `select-group-by-url` (or `cisco-client-compat`): a POST to `/NAME` asks for `NAME`.
    pub select_group_by_url: bool,
    /// A method is `certificate`: the TLS handshake asks for a client certificate.
    pub client_cert: Option<ClientCertSettings>,
}

/// How the worker asks for and uses a client certificate. The worker only checks that the
/// client holds the certificate's key (the handshake signature); sec-mod checks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCertSettings {
    /// `ca-cert`, DER: its subjects are the CAs the certificate request names.
    pub ca: Vec<Vec<u8>>,
    /// The certificate is the only method: a handshake without one fails (as ocserv's
    /// `GNUTLS_CERT_REQUIRE`); otherwise it is asked for and missing ones are refused later.
    pub mandatory: bool,
    /// A certificate alone logs in (`auth = certificate`, `enable-auth = certificate`): a
    /// client that sent one is logged in without the form.
    pub alone: bool,
    /// No password method: there is no form to fall back to.
    pub no_form: bool,
}

/// What the CONNECT response tells the client, from the configuration (per-session values come
/// in [`TunnelGrant`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSettings {
    pub rekey_secs: u32,
    pub rekey_method: RekeyMethod,
    pub default_domain: Option<String>,
    /// `banner`, shown after login and in `X-CSTP-Banner`.
    pub banner: Option<String>,
    /// DTLS as configured (`udp-port` set and `no-udp` off), or `None`: no DTLS is offered.
    pub dtls: Option<DtlsSettings>,
    /// `compression`, `compression-algo-priority`, `no-compress-limit` (protocol.md §5).
    pub compression: crate::compress::Policy,
    /// `custom-header` lines (`%{U}`, `%{G}` expanded per session) and `proxy-url`.
    pub custom_headers: Vec<(String, String)>,
    pub proxy_url: Option<String>,
    /// `dynamic-split-include-domains` / `-exclude-domains` (`X-CSTP-Post-Auth-XML`).
    pub dynamic_split_include_domains: Vec<String>,
    pub dynamic_split_exclude_domains: Vec<String>,
}

/// The configuration's DTLS choices (protocol.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsSettings {
    /// `udp-port`: what `X-DTLS-Port` says.
    pub port: u16,
    /// `dtls-psk` and `dtls-legacy` (the latter also on with `cisco-client-compat`).
    pub psk: bool,
    pub legacy: bool,
    /// `match-tls-dtls-ciphers`.
    pub match_tls_ciphers: bool,
    /// `switch-to-tcp-timeout` in seconds; 0 = never.
    pub switch_to_tcp_secs: u32,
    /// `try-mtu-discovery`: DF on the UDP socket; datagrams refused as too large lower the MTU
    /// ([`ToMain::TunMtu`]).
    pub try_mtu_discovery: bool,
}

/// worker -> main.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToMain {
    /// The client sent `CONNECT /CSCOSSLC/tunnel`. Answered with [`ToWorker::ConnectGranted`] or
    /// [`ToWorker::ConnectRefused`].
    Connect(ConnectRequest),
    /// Periodic counters of an established tunnel.
    Stats { rx_bytes: u64, tx_bytes: u64 },
    /// The DTLS path MTU changed (`try-mtu-discovery`, or a client's DPD probe): set the tun
    /// device's MTU to `mtu`, the data MTU. main accepts only 576 up to the MTU it granted.
    TunMtu { mtu: u16 },
    /// The tunnel ended; the worker exits right after sending this.
    SessionEnd {
        reason: CloseReason,
        rx_bytes: u64,
        tx_bytes: u64,
    },
    /// The tunnel's channels (what occtl shows): sent when the tunnel starts and then only
    /// when something in it changed, at most one per [`TUNNEL_STATE_INTERVAL_MS`]. Code points,
    /// not text: main checks each against the known ones and formats ocserv's text itself
    /// (`crate::session_desc`).
    TunnelState(TunnelState),
}

/// The least time between two [`ToMain::TunnelState`] reports of an honest worker (the first
/// one goes out at once).
pub const TUNNEL_STATE_INTERVAL_MS: u64 = 1000;

/// A tunnel's channel state as the worker sees it. Every field is the worker's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelState {
    /// The TLS (CSTP) session: IANA protocol version (0x0303 = TLS 1.2, 0x0304 = TLS 1.3),
    /// cipher suite, key exchange group, and the signature scheme of the server's handshake
    /// signature (`None` when none was made).
    pub tls_version: u16,
    pub tls_suite: u16,
    pub tls_group: Option<u16>,
    pub tls_signature: Option<u16>,
    /// The IANA suite of the established DTLS session (it also tells PSK-NEGOTIATE from the
    /// legacy modes and DTLS 1.2 from 0.9), `None` while no DTLS session is established.
    pub dtls_suite: Option<u16>,
    /// Which of main's UDP hand-overs (`ToWorker::Udp`, counted from 1; 0 = none) the
    /// established DTLS session's socket came with: it changes when the client roams (a
    /// completed handshake, an authenticated NAT rebinding). main knows each hand-over's client
    /// address, so the worker only picks among addresses main itself saw.
    pub dtls_flow: u32,
    /// Packets for the client go over DTLS now (false: not yet, or fallen back to TLS).
    pub dtls_in_use: bool,
    /// Compression negotiated per channel at CONNECT.
    pub cstp_compression: Option<crate::compress::Algorithm>,
    pub dtls_compression: Option<crate::compress::Algorithm>,
}

/// The parts of a CONNECT request that main needs. All client-controlled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// Value of the `webvpn` cookie.
    pub cookie: String,
    /// `X-CSTP-Hostname`, if it was a valid host name.
    pub hostname: Option<String>,
    /// `X-CSTP-Base-MTU` and `X-CSTP-MTU`, if present and numeric.
    pub base_mtu: Option<u16>,
    pub cstp_mtu: Option<u16>,
    pub user_agent: String,
    /// `X-AnyConnect-Identifier-Platform` and `-DeviceType` (empty when absent), for the
    /// scripts' `DEVICE_PLATFORM` / `DEVICE_TYPE` (protocol.md §8.2).
    pub device_platform: String,
    pub device_type: String,
    /// Bytes one DTLS packet adds (record overhead plus the payload type byte) in the DTLS mode
    /// the worker chose for this client, or `None` when it offers no DTLS: main lowers the
    /// tunnel MTU by it and only then hands out a DTLS id.
    pub dtls_overhead: Option<u16>,
}

/// main -> worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// The first message (see [`WorkerStart`]).
    Start(Box<WorkerStart>),
    /// The cookie is good and the tunnel exists. The tun device's fd travels beside this message.
    ConnectGranted(TunnelGrant),
    /// CONNECT refused.
    ConnectRefused(ConnectRefusal),
    /// Close the tunnel (admin disconnect or a newer connection took over the session).
    Terminate,
    /// A UDP flow whose DTLS ClientHello named this session's `dtls_id` (protocol.md §4.6). The
    /// socket, bound to our UDP port and connected to the client, travels beside this message;
    /// `first` is the datagram main read from the shared socket, to be handled before reading
    /// the new one. A later `Udp` replaces the previous socket (the client moved or restarted
    /// its DTLS handshake).
    Udp { first: Vec<u8> },
}

/// Per-session tunnel parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelGrant {
    pub sid: SessionId,
    pub username: String,
    pub groupname: String,
    /// Name of the tun device main created (e.g. `vpns0`).
    pub tun_name: String,
    /// Our end and the client's end of the point-to-point link, and the pool's netmask (what
    /// `X-CSTP-Netmask` carries, as ocserv does); all `None` with an IPv6-only pool.
    pub ipv4_local: Option<Ipv4Addr>,
    pub ipv4_remote: Option<Ipv4Addr>,
    pub ipv4_netmask: Option<Ipv4Addr>,
    /// Results of [`crate::mtu::compute`]: `X-CSTP-Base-MTU` and `X-CSTP-MTU` (also the tun MTU).
    pub base_mtu: u16,
    pub mtu: u16,
    /// The id DTLS ClientHellos must carry (`X-DTLS-App-ID` / `X-DTLS-Session-ID`, protocol.md
    /// §4.1): 32 fresh random bytes per CONNECT, or `None` when DTLS is not served.
    pub dtls_id: Option<[u8; 32]>,
    /// What is left of `session-timeout`, counted from the login (not from this CONNECT), in
    /// milliseconds; `None` = no session timeout. The worker ends the tunnel when it runs out
    /// and announces it in `X-CSTP-Session-Timeout-Remaining`; main enforces it as well.
    pub session_remaining_ms: Option<u64>,
    /// The session's effective policy (global or vhost section, group file, user file), as
    /// main resolved it: what the client is told and the worker's own timers and pacing.
    pub policy: Box<crate::policy::Policy>,
    /// The session's IPv6 link (`ipv6-network`), or `None` without an IPv6 pool or when the
    /// tunnel MTU is below IPv6's minimum of 1280.
    pub ipv6: Option<Ipv6Link>,
}

/// One session's IPv6 addresses, as ocserv assigns them (src/ip-lease.c): the server's end is
/// the pool's network address + 1 (the same on every tun device, as a /128), the client gets
/// `remote/prefix` (`ipv6-subnet-prefix`, 128 = one address), routed to its tun device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Link {
    pub local: Ipv6Addr,
    pub remote: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Link {
    /// The client's network: `remote` with the bits past `prefix` cleared.
    pub fn remote_net(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.remote) & ipv6_mask(self.prefix))
    }
}

/// The mask of an IPv6 prefix length (lengths above 128 are treated as 128).
pub fn ipv6_mask(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

/// Why main refused a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectRefusal {
    /// sec-mod does not know the cookie: answered `401 Cookie is not acceptable`.
    BadCookie,
    /// No free address in the pool, tun creation failed, or no network configured: answered
    /// `503 Service Unavailable` with `X-Reason`.
    ServerError,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A password-only vhost under a certificate-only default section gets the form, and the
    /// reverse: the section the SNI names decides, not the default one.
    #[test]
    fn the_certificate_login_is_the_sni_sections() {
        let cert_only = CertLogin {
            alone: true,
            no_form: true,
        };
        let vhosts = [("vpn.example.com".to_owned(), CertLogin::default())];
        assert_eq!(
            CertLogin::choose(cert_only, &vhosts, Some("VPN.example.com")),
            CertLogin::default()
        );
        assert_eq!(
            CertLogin::choose(cert_only, &vhosts, Some("other.example.com")),
            cert_only
        );
        assert_eq!(CertLogin::choose(cert_only, &vhosts, None), cert_only);
    }
    use crate::ipc::roundtrip;

    #[test]
    fn messages_roundtrip() {
        roundtrip(&ToMain::Connect(ConnectRequest {
            cookie: "abc".into(),
            hostname: Some("laptop".into()),
            base_mtu: Some(1500),
            cstp_mtu: None,
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            device_platform: String::new(),
            device_type: String::new(),
            dtls_overhead: Some(38),
        }));
        roundtrip(&ToWorker::ConnectGranted(TunnelGrant {
            sid: SessionId(1),
            username: "test".into(),
            groupname: String::new(),
            tun_name: "vpns0".into(),
            ipv4_local: Some(Ipv4Addr::new(192, 168, 99, 1)),
            ipv4_remote: Some(Ipv4Addr::new(192, 168, 99, 7)),
            ipv4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            base_mtu: 1500,
            mtu: 1434,
            dtls_id: Some([7; 32]),
            session_remaining_ms: Some(4_000),
            policy: Box::default(),
            ipv6: Some(Ipv6Link {
                local: "fd00:1::1".parse().unwrap(),
                remote: "fd00:1::7".parse().unwrap(),
                prefix: 128,
            }),
        }));
        roundtrip(&ToWorker::Udp {
            first: vec![22, 0xfe, 0xff],
        });
        let link = Ipv6Link {
            local: "fd00:1::1".parse().unwrap(),
            remote: "fd00:1:0:7:1234::9".parse().unwrap(),
            prefix: 64,
        };
        assert_eq!(
            link.remote_net(),
            "fd00:1:0:7::".parse::<Ipv6Addr>().unwrap()
        );
        let link = Ipv6Link { prefix: 0, ..link };
        assert_eq!(link.remote_net(), Ipv6Addr::UNSPECIFIED);
        roundtrip(&ToMain::TunMtu { mtu: 1134 });
        roundtrip(&ToMain::TunnelState(TunnelState {
            tls_version: 0x0304,
            tls_suite: 0x1302,
            tls_group: Some(0x001d),
            tls_signature: Some(0x0804),
            dtls_suite: Some(0x00a9),
            dtls_flow: 1,
            dtls_in_use: true,
            cstp_compression: Some(crate::compress::Algorithm::Lz4),
            dtls_compression: None,
        }));
        roundtrip(&ToMain::SessionEnd {
            reason: CloseReason::Temporary,
            rx_bytes: 1,
            tx_bytes: 2,
        });
    }
}
