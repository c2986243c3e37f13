//! ocserv.conf, parsed into a typed [`Config`] plus diagnostics that name file, line and option.
//!
//! Sans-IO: the caller reads the file and passes its text and a name for messages; nothing
//! here opens a file or resolves a name, and no input makes it panic (it is fuzzed).
//!
//! The syntax is ocserv's (described in `lexer.rs`); every option ocserv 1.5
//! knows is in [`options`], each either parsed into [`Config`], accepted with a
//! "not supported yet" warning, or refused with an error when ignoring it would be unsafe.
//! Unknown options and bad values are errors that name the line and what was expected.
//! `[vhost:NAME]` sections start as a copy of the global section (ocserv 1.5 behaviour).
//!
//! Layout: `lexer` (lines), `options` (the table), `values` (typed values), `auth`
//! (`auth = ...`), `tls_priorities` (GnuTLS strings to rustls), `apply` (one option into a
//! section), `finish` (defaults that depend on each other, mandatory options), `diag`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub(crate) mod apply;
mod auth;
pub(crate) mod diag;
mod finish;
pub(crate) mod lexer;
pub mod options;
pub mod route_cmd;
mod tls_priorities;
pub mod told;
pub(crate) mod values;

pub use auth::{valid_pam_service, DEFAULT_PAM_SERVICE, MAX_PAM_SERVICE};
pub use diag::{Diagnostic, Severity};

/// Result of parsing one configuration file.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Best-effort configuration (defaults where options were missing or wrong).
    pub config: Config,
    /// Everything worth telling the administrator, errors first-class.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when at least one diagnostic is an error: the server must not start.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Longest group name accepted anywhere (ocserv `MAX_GROUPNAME_SIZE`, 128 with its NUL).
pub const MAX_GROUP_NAME: usize = 127;

/// Most `select-group` lines (and labels of at most 255 bytes): the list goes into every
/// worker's start message.
pub const MAX_SELECT_GROUPS: usize = 128;

/// Whether `name` may be a group name: in the configuration, in a login request (a hostile
/// worker's word, checked again in sec-mod) or as a session's group. Not empty, at most
/// [`MAX_GROUP_NAME`] bytes, no control character, and none of `[` `]` (label delimiters),
/// `/` (the name picks a per-group file), `:` `,` (the password file's separators).
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '[' | ']' | '/' | ':' | ','))
}

/// Parse the text of an ocserv.conf. `origin` names the file in diagnostics.
pub fn parse(source: &str, origin: &str) -> Parsed {
    let mut sink = diag::Sink::new(origin);
    let items = lexer::lex(source, &mut sink);
    let mut global = apply::Section::global();
    let mut vhosts: Vec<apply::Section> = Vec::new();
    let mut current = Current::Global;
    for item in items {
        match item {
            lexer::Item::Section { name, line } => {
                current = enter_section(name, line, &global, &mut vhosts, &mut sink);
            }
            lexer::Item::Assign { name, value, line } => {
                let section = match current {
                    Current::Global => &mut global,
                    Current::Vhost(i) => match vhosts.get_mut(i) {
                        Some(section) => section,
                        None => continue,
                    },
                    Current::Skipped => continue,
                };
                apply::assign(section, name, value, line, &mut sink);
            }
        }
    }
    finish::finish(global, vhosts, sink)
}

/// The section the following lines go to.
#[derive(Debug, Clone, Copy)]
enum Current {
    Global,
    Vhost(usize),
    /// An unknown section: ocserv skips its lines.
    Skipped,
}

/// `[vhost:NAME]` (a second header with the same name continues that vhost), `[]` (back to
/// the global section, as inih reports an empty section name) or anything else (skipped).
fn enter_section(
    name: &str,
    line: usize,
    global: &apply::Section,
    vhosts: &mut Vec<apply::Section>,
    sink: &mut diag::Sink,
) -> Current {
    if name.is_empty() {
        return Current::Global;
    }
    let Some(vname) = name.strip_prefix("vhost:") else {
        sink.warning(
            line,
            None,
            format!("unknown section [{name}]; its options are skipped, as ocserv does"),
        );
        return Current::Skipped;
    };
    // Host names compare without case (ocserv maps them through IDNA).
    let vname = vname.trim().to_ascii_lowercase();
    if vname.is_empty() {
        sink.error(line, None, "[vhost:] needs a host name");
        return Current::Skipped;
    }
    if let Some(i) = vhosts
        .iter()
        .position(|v| v.vhost.as_deref() == Some(&*vname))
    {
        return Current::Vhost(i);
    }
    vhosts.push(apply::Section::vhost_of(global, vname, line));
    Current::Vhost(vhosts.len().saturating_sub(1))
}

/// An authentication method from `auth = "..."` or `enable-auth = "..."` (ocserv syntax
/// `name[opt=value,...]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// `plain[passwd=FILE,otp=FILE]`: the password file, and with `otp` a users file of
    /// HOTP/TOTP secrets (`crate::otp_file`) asked as a second form. At least one of the two;
    /// without `passwd` the only question is the one-time password (as ocserv).
    Plain {
        passwd: Option<PathBuf>,
        otp: Option<PathBuf>,
    },
    /// `pam[gid-min=N,service=NAME]` (service default `ocserv`).
    Pam { gid_min: u32, service: String },
    /// `certificate`: the client certificate, checked against `ca-cert` (and `crl`), names the
    /// user (`cert-user-oid`) and possibly the group (`cert-group-oid`).
    Certificate,
    /// `radius[config=FILE,groupconfig=BOOL,nas-identifier=NAME,override-interim-updates=BOOL]`:
    /// radcli's configuration file names the servers and the shared secret.
    Radius {
        config: PathBuf,
        groupconfig: bool,
        nas_identifier: Option<String>,
    },
    /// `script[path=FILE,timeout=SECS,user=NAME]` (ours): an executable decides, now or later
    /// (doc/config.md).
    Script {
        path: PathBuf,
        timeout_secs: u32,
        /// Runs as this user; `None` = `run-as-user`.
        user: Option<String>,
    },
}

impl AuthMethod {
    /// The name in the configuration (`plain`, `pam`, ...), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Plain { .. } => "plain",
            Self::Pam { .. } => "pam",
            Self::Certificate => "certificate",
            Self::Radius { .. } => "radius",
            Self::Script { .. } => "script",
        }
    }
}

/// An accounting method from `acct = "..."`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcctMethod {
    /// `radius[config=FILE,nas-identifier=NAME]`.
    Radius {
        config: PathBuf,
        nas_identifier: Option<String>,
    },
}

/// How users log in: every `required` method in turn (several `auth` lines), or any one of
/// `alternatives` (`enable-auth` lines) alone; and where sessions are accounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthPlan {
    /// The `auth` lines, in order; empty = none configured (an error).
    pub required: Vec<AuthMethod>,
    /// The `enable-auth` lines.
    pub alternatives: Vec<AuthMethod>,
    /// `acct`.
    pub acct: Option<AcctMethod>,
    /// The `certificate` method's settings, when a method is `certificate` (set after the
    /// last line, from `ca-cert`, `crl`, `cert-user-oid`, `cert-group-oid`).
    pub cert: Option<Box<CertAuth>>,
}

impl AuthPlan {
    /// The first `auth` method, if any.
    pub fn primary(&self) -> Option<&AuthMethod> {
        self.required.first()
    }

    /// Every method named, required ones first.
    pub fn methods(&self) -> impl Iterator<Item = &AuthMethod> {
        self.required.iter().chain(&self.alternatives)
    }

    /// Some method needs the client's certificate.
    pub fn wants_certificate(&self) -> bool {
        self.methods().any(|m| matches!(m, AuthMethod::Certificate))
    }

    /// A valid certificate alone logs the client in (no password form): `auth = certificate`
    /// as the only `auth` line, or `enable-auth = certificate`.
    pub fn certificate_alone(&self) -> bool {
        self.required == [AuthMethod::Certificate]
            || self.alternatives.contains(&AuthMethod::Certificate)
    }

    /// The certificate is the only way in (ocserv then makes the TLS client certificate
    /// mandatory, `GNUTLS_CERT_REQUIRE`): nothing else is configured.
    pub fn certificate_only(&self) -> bool {
        self.methods().all(|m| matches!(m, AuthMethod::Certificate)) && self.wants_certificate()
    }
}

/// Where a certificate keeps the user or group name (`cert-user-oid`, `cert-group-oid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertField {
    /// A subject DN attribute, by dotted OID (`2.5.4.3` CN, `0.9.2342.19200300.100.1.1` UID,
    /// `2.5.4.11` OU).
    Oid(String),
    /// `SAN(rfc822name)`: the first e-mail address of the subjectAltName extension.
    SanRfc822Name,
}

/// What the `certificate` method checks against and reads (sec-mod), set when a method is
/// `certificate` (`AuthPlan::cert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertAuth {
    /// `ca-cert`: the trust anchors (PEM).
    pub ca_cert: PathBuf,
    /// `crl`: revoked certificates (PEM or DER), re-read when the file changes.
    pub crl: Option<PathBuf>,
    /// `cert-user-oid`.
    pub user: CertField,
    /// `cert-group-oid`.
    pub group: Option<CertField>,
}

/// An IPv4 or IPv6 network in prefix form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A `route` / `no-route` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Route {
    /// `default`: tunnel everything.
    Default,
    Net(IpNet),
}

/// `rekey-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RekeyMethod {
    Ssl,
    NewTunnel,
}

/// What `tls-priorities` maps to in rustls (see `doc/config.md`). The default is ocserv's
/// built-in `NORMAL:%SERVER_PRECEDENCE:%COMPAT`: everything rustls offers, server order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    pub tls12: bool,
    pub tls13: bool,
    /// `%SERVER_PRECEDENCE`: pick the cipher in our order (rustls `ignore_client_order`).
    pub server_precedence: bool,
    /// `TLS13_AES_128_GCM_SHA256` and the TLS 1.2 ECDHE AES-128-GCM suites.
    pub aes_128_gcm: bool,
    /// `TLS13_AES_256_GCM_SHA384` and the TLS 1.2 ECDHE AES-256-GCM suites.
    pub aes_256_gcm: bool,
    /// `TLS13_CHACHA20_POLY1305_SHA256` and the TLS 1.2 ECDHE CHACHA20-POLY1305 suites.
    pub chacha20_poly1305: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            tls12: true,
            tls13: true,
            server_precedence: true,
            aes_128_gcm: true,
            aes_256_gcm: true,
            chacha20_poly1305: true,
        }
    }
}

/// The typed configuration (the default vhost; `[vhost:NAME]` sections in [`Config::vhosts`]).
/// Defaults are ocserv's built-in defaults, not its sample file's.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where each option was first set in this section (option name, 1-based line), so that
    /// later checks (main's, sec-mod's) can name the line too.
    pub option_lines: Vec<(&'static str, usize)>,
    pub auth: AuthPlan,
    pub listen_host: Option<IpAddr>,
    pub tcp_port: u16,
    pub udp_port: Option<u16>,
    /// `udp-listen-host`: address of the DTLS socket; `None` = `listen-host`'s.
    pub udp_listen_host: Option<IpAddr>,
    /// `dtls-psk`, `dtls-legacy` (protocol.md §4.1): which DTLS negotiations are offered.
    pub dtls_psk: bool,
    pub dtls_legacy: bool,
    /// `match-tls-dtls-ciphers`: the legacy DTLS suite must use the TLS channel's cipher.
    pub match_tls_dtls_ciphers: bool,
    /// `switch-to-tcp-timeout`: seconds without a DTLS datagram after which data goes back to
    /// TLS (protocol.md §4.5); 0 = never.
    pub switch_to_tcp_timeout: u32,
    /// `try-mtu-discovery`: DF on DTLS datagrams, lower the MTU when the path refuses them.
    pub try_mtu_discovery: bool,
    pub run_as_user: Option<String>,
    pub run_as_group: Option<String>,
    pub socket_file: Option<PathBuf>,
    pub occtl_socket_file: Option<PathBuf>,
    pub use_occtl: bool,
    pub pid_file: Option<PathBuf>,
    pub server_cert: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// `isolate-workers`: the worker's seccomp filter; on unless the file says `false`.
    pub isolate_workers: bool,
    pub max_clients: u32,
    /// `max-pre-auth-clients` (ours): workers that have not logged in yet, server-wide; 0 = no
    /// limit.
    pub max_pre_auth_clients: u32,
    /// `max-pre-auth-per-ip` (ours): the same per client address (IPv6: per /64); 0 = no limit.
    pub max_pre_auth_per_ip: u32,
    pub tls: TlsPolicy,
    pub auth_timeout: u32,
    /// `handshake-timeout` (ours): seconds for the TLS handshake plus the first HTTP request,
    /// and for each later request once its first byte arrived.
    pub handshake_timeout: u32,
    pub cookie_timeout: u32,
    pub persistent_cookies: bool,
    pub rekey_time: u32,
    pub rekey_method: RekeyMethod,
    pub log_level: u8,
    /// `device`: tun devices are named this plus a number (`vpns0`, `vpns1`, ...).
    pub device: String,
    pub predictable_ips: bool,
    pub default_domain: Option<String>,
    pub banner: Option<String>,
    pub pre_login_banner: Option<String>,
    pub cisco_client_compat: bool,
    /// `compression`, `compression-algo-priority`, `no-compress-limit` (protocol.md §5).
    pub compression: crate::compress::Policy,
    /// `connect-script`, `disconnect-script`, `host-update-script` (protocol.md §8).
    pub connect_script: Option<PathBuf>,
    pub disconnect_script: Option<PathBuf>,
    pub host_update_script: Option<PathBuf>,
    /// `max-ban-score` (0 = no bans), `ban-time` (seconds), `ban-reset-time` (seconds) and the
    /// points per event (protocol.md §1.8). Defaults: those of ocserv's sample configuration
    /// (80, 300, 1200; 10 per wrong password, 1 per connection).
    pub max_ban_score: u32,
    pub ban_time: u32,
    pub ban_reset_time: u32,
    pub ban_points_wrong_password: u32,
    pub ban_points_connection: u32,
    pub ban_points_kkdcp: u32,
    /// `rate-limit-ms`: minimum milliseconds between accepted connections; 0 = none.
    pub rate_limit_ms: u32,
    /// Per-session values that per-user and per-group files may change.
    pub policy: crate::policy::Policy,
    pub vhosts: Vec<VHost>,
    /// `config-per-user`, `config-per-group`, `default-user-config`, `default-group-config`:
    /// read by sec-mod at each CONNECT.
    pub policy_files: crate::policy::file::Locations,
    /// `select-group` lines, in order: the groups the login form offers.
    pub select_groups: Vec<GroupChoice>,
    /// `auto-select-group`: offer every group the auth backend knows instead (sec-mod lists
    /// them when it starts).
    pub auto_select_group: bool,
    /// `default-select-group`: an extra choice meaning "the user's default group".
    pub default_select_group: Option<String>,
    /// `select-group-by-url`: a POST to `/NAME` asks for group `NAME`.
    pub select_group_by_url: bool,
    /// `custom-header`: `(name, value)` sent with the CONNECT answer, `%{U}` / `%{G}` expanded.
    pub custom_headers: Vec<(String, String)>,
    /// `proxy-url`: the PAC URL given to clients, `%{U}` / `%{G}` expanded.
    pub proxy_url: Option<String>,
    /// `user-profile`: the AnyConnect XML profile served at `/profiles/NAME` (main reads it).
    pub user_profile: Option<PathBuf>,
    /// `included-http-headers`: `(name, value)` added to every answer of the HTTP phase.
    pub included_http_headers: Vec<(String, String)>,
    /// `dynamic-split-include-domains` / `dynamic-split-exclude-domains` (ours): Cisco's
    /// dynamic split tunnelling by domain, sent in `X-CSTP-Post-Auth-XML`.
    pub dynamic_split_include_domains: Vec<String>,
    pub dynamic_split_exclude_domains: Vec<String>,
    /// `route-add-cmd` / `route-del-cmd` for `iroute`s; `None` = `ip route add|delete %{RI}
    /// dev %{D}` (ocserv runs nothing then).
    pub route_add_cmd: Option<route_cmd::RouteCmd>,
    pub route_del_cmd: Option<route_cmd::RouteCmd>,
    /// `expose-iroutes`: other clients are told the iroutes as routes.
    pub expose_iroutes: bool,
    /// `session-db` (ours): the SQLite file sec-mod records every session in; `None` with
    /// `session-db = none`. Default [`DEFAULT_SESSION_DB`].
    pub session_db: Option<PathBuf>,
    /// `camouflage`, `camouflage_secret`, `camouflage_realm` as written; [`Config::camouflage`]
    /// is what they mean together.
    pub camouflage_on: bool,
    pub camouflage_secret: Option<Secret>,
    pub camouflage_realm: Option<String>,
    /// `crl`, `cert-user-oid`, `cert-group-oid` as given (the `certificate` method's settings
    /// are put together in [`AuthPlan::cert`]).
    pub crl: Option<PathBuf>,
    pub cert_user_oid: Option<CertField>,
    pub cert_group_oid: Option<CertField>,
    /// `metrics-listen` (ours): where main serves Prometheus metrics; `None` = off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `listen-netns`: the network namespace (a name under /run/netns) the TCP and UDP
    /// listening sockets are opened in; everything else stays in main's own namespace.
    pub listen_netns: Option<String>,
    /// `server-drain-ms`: at shutdown, how long main keeps the tunnels up after it stopped
    /// accepting (load balancers see the port close first). 0 = no drain.
    pub server_drain_ms: u32,
    /// `use-utmp`: record each tunnel in utmp and wtmp (ocserv's default: on).
    pub use_utmp: bool,
    /// `key-pin`: opens an encrypted `server-key` (sec-mod decrypts it).
    pub key_pin: Option<Secret>,
    /// `pin-file`: a file whose first line is that PIN (read by sec-mod; `key-pin` wins).
    pub pin_file: Option<PathBuf>,
    /// `syslog-facility`: the facility code (RFC 3164 §4.1.1) of main's syslog lines; default
    /// daemon (3), ocserv's.
    pub syslog_facility: u8,
    /// `log-format` (ours): `text` (ocserv's lines) or `json` (one JSON object per line).
    pub log_format: LogFormat,
    /// `listen-proxy-proto`: every TCP connection starts with a PROXY protocol header from a
    /// load balancer, which main reads before anything else (`proxy_proto`).
    pub listen_proxy_proto: bool,
    /// `output-buffer`: the client's TCP send buffer, in packets of the tunnel's MTU; 0 = the
    /// system's (autotuned) buffer.
    pub output_buffer: u32,
    /// `server-stats-reset-time`: seconds after which occtl's `show status` period counters
    /// restart; 0 = never. Default a week, as ocserv.
    pub server_stats_reset_time: u32,
    /// `cluster-store` (ours, doc/cluster.md): the Valkey/Redis store the nodes share
    /// sessions, bans and address leases through; `None` = a single node, nothing shared.
    pub cluster_store: Option<crate::cluster::StoreUrl>,
    /// `cluster-node` (ours): this node's name in the store and in occtl; `None` = the host
    /// name (main fills it in at start).
    pub cluster_node: Option<String>,
    /// `cluster-store-auth-file` (ours): a file whose first line is `PASSWORD` or
    /// `USER:PASSWORD` for the store (read by sec-mod; never on a command line).
    pub cluster_store_auth_file: Option<PathBuf>,
    /// `cluster-store-ca-cert` (ours): the CA file a `rediss://` store's certificate is checked
    /// against; `None` = the system's roots.
    pub cluster_store_ca_cert: Option<PathBuf>,
    /// `cluster-route-add-cmd` / `cluster-route-del-cmd` (ours): run by main when this node
    /// starts / stops serving a VPN address, so a routing daemon can move the /32.
    pub cluster_route_add_cmd: Option<route_cmd::RouteCmd>,
    pub cluster_route_del_cmd: Option<route_cmd::RouteCmd>,
}

/// `log-format` (ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogFormat {
    /// ocserv's lines (doc/logs.md).
    #[default]
    Text,
    /// One JSON object per line, stable keys (doc/logs.md).
    Json,
}

/// The `syslog-facility` names rocserv accepts and their codes (RFC 3164 §4.1.1).
pub const SYSLOG_FACILITIES: &[(&str, u8)] = &[
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Where the session database is unless `session-db` says otherwise.
pub const DEFAULT_SESSION_DB: &str = "/var/lib/rocserv/sessions.db";

/// A configured secret that must not show up in `Debug` output (logs, panics).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// `camouflage = true` in force: only a client whose URL query is `secret`
/// (`https://host/?secret`) or that holds a session cookie sees the VPN; everyone else gets
/// `401` with `realm` (when set) or `404`, as from a plain web server (ocserv 1.2
/// `doc/sample.config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Camouflage {
    pub secret: Secret,
    pub realm: Option<String>,
}

/// Longest `camouflage_secret` / `camouflage_realm` accepted (both travel to every worker).
pub const MAX_CAMOUFLAGE_TEXT: usize = 256;

/// One group the login form offers (`select-group = name[Label]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChoice {
    /// The group's name: what the client sends back and what the session gets.
    pub name: String,
    /// What the form shows instead of the name.
    pub label: Option<String>,
}

/// A `[vhost:NAME]` section: its name and its own configuration.
#[derive(Debug, Clone)]
pub struct VHost {
    pub name: String,
    pub line: usize,
    pub config: Box<Config>,
}

impl Config {
    /// The line where `option` was first set in this section, if it was.
    pub fn line_of(&self, option: &str) -> Option<usize> {
        self.option_lines
            .iter()
            .find(|(n, _)| *n == option)
            .map(|(_, l)| *l)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            option_lines: Vec::new(),
            auth: AuthPlan::default(),
            listen_host: None,
            tcp_port: 443,
            udp_port: None,
            udp_listen_host: None,
            dtls_psk: true,
            dtls_legacy: true,
            match_tls_dtls_ciphers: false,
            switch_to_tcp_timeout: 25,
            try_mtu_discovery: false,
            run_as_user: None,
            run_as_group: None,
            socket_file: None,
            occtl_socket_file: None,
            use_occtl: false,
            pid_file: None,
            server_cert: None,
            server_key: None,
            ca_cert: None,
            isolate_workers: true,
            max_clients: 0,
            max_pre_auth_clients: 256,
            max_pre_auth_per_ip: 32,
            tls: TlsPolicy::default(),
            auth_timeout: 240,
            handshake_timeout: 15,
            cookie_timeout: 300,
            persistent_cookies: false,
            rekey_time: 172800,
            rekey_method: RekeyMethod::Ssl,
            log_level: 1,
            device: "vpns".to_owned(),
            predictable_ips: true,
            default_domain: None,
            banner: None,
            pre_login_banner: None,
            cisco_client_compat: false,
            compression: crate::compress::Policy::default(),
            connect_script: None,
            disconnect_script: None,
            host_update_script: None,
            max_ban_score: 80,
            ban_time: 300,
            ban_reset_time: 1200,
            ban_points_wrong_password: 10,
            ban_points_connection: 1,
            ban_points_kkdcp: 1,
            rate_limit_ms: 0,
            policy: crate::policy::Policy::default(),
            vhosts: Vec::new(),
            policy_files: crate::policy::file::Locations::default(),
            select_groups: Vec::new(),
            auto_select_group: false,
            default_select_group: None,
            select_group_by_url: false,
            custom_headers: Vec::new(),
            proxy_url: None,
            user_profile: None,
            included_http_headers: Vec::new(),
            dynamic_split_include_domains: Vec::new(),
            dynamic_split_exclude_domains: Vec::new(),
            route_add_cmd: None,
            route_del_cmd: None,
            expose_iroutes: false,
            session_db: Some(PathBuf::from(DEFAULT_SESSION_DB)),
            camouflage_on: false,
            camouflage_secret: None,
            camouflage_realm: None,
            crl: None,
            cert_user_oid: None,
            cert_group_oid: None,
            metrics_listen: None,
            listen_netns: None,
            server_drain_ms: 0,
            use_utmp: true,
            key_pin: None,
            pin_file: None,
            syslog_facility: 3,
            log_format: LogFormat::Text,
            listen_proxy_proto: false,
            output_buffer: 0,
            server_stats_reset_time: 7 * 24 * 3600,
            cluster_store: None,
            cluster_node: None,
            cluster_store_auth_file: None,
            cluster_store_ca_cert: None,
            cluster_route_add_cmd: None,
            cluster_route_del_cmd: None,
        }
    }
}

impl Config {
    /// The camouflage in force (`camouflage = true` with its secret; the parser refuses
    /// `camouflage = true` without one).
    pub fn camouflage(&self) -> Option<Camouflage> {
        let secret = self
            .camouflage_secret
            .clone()
            .filter(|_| self.camouflage_on)?;
        Some(Camouflage {
            secret,
            realm: self.camouflage_realm.clone(),
        })
    }

    /// The section a session of `[vhost:NAME]` `vhost` is served with: that vhost's, or this
    /// (the default section) for `None` or a name no section has.
    pub fn section(&self, vhost: Option<&str>) -> &Config {
        vhost
            .and_then(|name| self.vhosts.iter().find(|v| same_host(&v.name, name)))
            .map_or(self, |v| &v.config)
    }
}

/// Whether host name `a` (a vhost name, a TLS SNI) names host `b`: ASCII case is ignored, and so
/// is one trailing dot (an absolute name). ocserv compares SNI with vhost names the same way.
pub fn same_host(a: &str, b: &str) -> bool {
    fn trim(s: &str) -> &str {
        s.strip_suffix('.').unwrap_or(s)
    }
    trim(a).eq_ignore_ascii_case(trim(b))
}

impl IpNet {
    /// The IPv4 netmask of a v4 network (`None` for IPv6).
    pub fn ipv4_netmask(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(_) => {
                let bits = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                Some(Ipv4Addr::from(bits))
            }
            IpAddr::V6(_) => None,
        }
    }
}
