//! From the parsed [`Config`] to what main and its children need: the worker's sandbox
//! identity, the public certificate chain, sec-mod's start message and the per-worker settings.
//! Every problem is collected (not just the first) so that `rocserv -t` can list them all.

use rocserv_proto::ipc::cluster::ClusterSettings;
use std::path::Path;

use nix::unistd::{Group, User};
use rocserv_proto::config::{Config, GroupChoice, IpNet};
use rocserv_proto::ipc::main_secmod::{SecModConfig, SecModVhost};
use rocserv_proto::ipc::main_worker::{
    AuthSettings, CertLogin, ClientCertSettings, ClientSettings, DtlsSettings, SandboxPolicy,
    TlsSettings, TunnelSettings, UserProfile, VhostCert, WorkerStart,
};
use rocserv_proto::ipc::{KeyKind, WorkerId};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::ip_pool::{IpPool, Range};

/// Problems found while preparing; errors stop the server, warnings do not.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    /// The file will behave differently here than under ocserv.
    pub warnings: Vec<String>,
    /// Advice that changes nothing about how the file behaves (a shared `nobody` uid).
    pub notes: Vec<String>,
}

/// A finding of [`prepare`] (or sec-mod's) in the `FILE:LINE: severity: OPTION: message` shape
/// of the parser's diagnostics: `finding` starts with `OPTION: ` (the line is where the option
/// is set, 0 when it is not in the file) or with `[vhost:NAME] (line N): OPTION: `.
pub fn locate(origin: &str, config: &Config, severity: &str, finding: &str) -> String {
    if let Some(rest) = finding.strip_prefix("[vhost:") {
        let vhost = rest
            .split_once(']')
            .and_then(|(name, rest)| Some((config.vhosts.iter().find(|v| v.name == name)?, rest)));
        if let Some((v, rest)) = vhost {
            let rest = rest
                .trim_start_matches(|c| c != ':')
                .trim_start_matches(": ");
            let (option, message) = rest.split_once(": ").unwrap_or(("", rest));
            let line = v.config.line_of(option).unwrap_or(v.line);
            return format!(
                "{origin}:{line}: {severity}: {option}: [vhost:{}] {message}",
                v.name
            );
        }
    }
    let line = finding
        .split_once(": ")
        .and_then(|(option, _)| config.line_of(option))
        .unwrap_or(0);
    format!("{origin}:{line}: {severity}: {finding}")
}

/// Everything checked and resolved before sec-mod starts.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sandbox: SandboxPolicy,
    /// `server-cert`, DER, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    pub secmod: SecModConfig,
    /// Each `[vhost:NAME]`'s certificate chain; the key kinds are sec-mod's answer
    /// ([`Prepared::set_vhost_keys`]).
    pub vhosts: Vec<VhostCert>,
    /// `auto-select-group`'s list, from sec-mod's `Ready` (empty until then, and without it).
    pub auto_groups: Vec<String>,
    /// SHA-1 of the leaf certificate, upper-case hex (the `webvpnc` cookie's `sh:`).
    pub cert_sha1: String,
    /// `user-profile` as read at start (reloads replace it in [`crate::reload::Live`]).
    pub profile: Option<UserProfile>,
    /// `ca-cert` as DER when a method is `certificate` (the workers name its CAs in the TLS
    /// certificate request; sec-mod reads the file itself to check chains).
    pub client_ca: Vec<Vec<u8>>,
}

impl Prepared {
    /// Fill in the key kinds sec-mod reported in `Ready`. Fails (naming the vhost) if sec-mod
    /// did not report one: it loaded every vhost's key, so that would be a bug.
    pub fn set_vhost_keys(&mut self, keys: &[(String, KeyKind)]) -> Result<(), String> {
        for v in &mut self.vhosts {
            v.key = keys
                .iter()
                .find(|(name, _)| *name == v.name)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| format!("sec-mod reported no key for [vhost:{}]", v.name))?;
        }
        Ok(())
    }
}

/// Check `config` and resolve what main needs. Returns `None` when an error was found (all
/// errors are in `findings`).
pub fn prepare(config: &Config, findings: &mut Findings) -> Option<Prepared> {
    let vhosts = vhost_certs(config, findings);
    for v in &config.vhosts {
        for option in not_per_vhost(config, &v.config) {
            findings.warnings.push(format!(
                "[vhost:{}] (line {}): {option}: not applied per vhost yet; every client gets the \
                 default section's value",
                v.name, v.line
            ));
        }
    }
    match config.policy.ipv4_network {
        None if config.policy.ipv6_network.is_none() => findings.warnings.push(
            "ipv4-network: neither ipv4-network nor ipv6-network is configured: every CONNECT \
             will be refused (503)"
                .to_owned(),
        ),
        None => {}
        Some(net) => {
            if let Err(e) = Range::new(net) {
                findings.errors.push(format!("ipv4-network: {e}"));
            }
        }
    }
    let sandbox = resolve_sandbox(config, findings);
    let cert_chain = match &config.server_cert {
        None => {
            findings
                .errors
                .push("server-cert: no certificate configured".to_owned());
            None
        }
        Some(path) => match read_cert_chain(path) {
            Ok(chain) => Some(chain),
            Err(e) => {
                findings.errors.push(format!("server-cert: {e}"));
                None
            }
        },
    };
    if config.server_key.is_none() {
        findings
            .errors
            .push("server-key: no private key configured".to_owned());
    }
    if config.auth.required.is_empty() {
        findings
            .errors
            .push("auth: no authentication method configured".to_owned());
    }
    let profile = match &config.user_profile {
        Some(path) => match read_profile(path) {
            Ok(profile) => Some(profile),
            Err(e) => {
                findings.errors.push(format!("user-profile: {e}"));
                None
            }
        },
        None => None,
    };
    let client_ca = client_ca(config, findings);
    let secmod = secmod_config(config)?;
    if let Some(sandbox) = &sandbox {
        findings
            .errors
            .extend(crate::auth_hook::problems(&secmod, sandbox));
    }
    let (cert_chain, vhosts, client_ca) = (cert_chain?, vhosts?, client_ca?);
    // Every chain travels in each worker's `Start`, one IPC message of at most 64 KiB; the
    // rest of the message is far below the margin.
    let chains: usize = std::iter::once(&cert_chain)
        .chain(vhosts.iter().map(|v| &v.cert_chain))
        .flatten()
        .map(Vec::len)
        .chain(vhosts.iter().map(|v| v.name.len()))
        .chain(client_ca.iter().map(Vec::len))
        .sum();
    // The profile travels in the same message.
    let chains = chains.saturating_add(profile.as_ref().map_or(0, |p| p.xml.len()));
    if chains > MAX_CHAINS {
        findings.errors.push(format!(
            "server-cert: the certificate chains of the default section and the vhosts and the user-profile \
             hold {chains} bytes; at most {MAX_CHAINS} fit in a worker's start message"
        ));
        return None;
    }
    if config.user_profile.is_some() && profile.is_none() {
        return None;
    }
    let cert_sha1 = cert_chain.first().map(|c| sha1_hex(c)).unwrap_or_default();
    Some(Prepared {
        sandbox: sandbox?,
        cert_chain,
        secmod,
        vhosts,
        auto_groups: Vec::new(),
        cert_sha1,
        profile,
        client_ca,
    })
}

/// `ca-cert` as DER when some section has a `certificate` method (public data: main may read
/// it); `None` after an error is recorded.
fn client_ca(config: &Config, findings: &mut Findings) -> Option<Vec<Vec<u8>>> {
    let sections = std::iter::once(config).chain(config.vhosts.iter().map(|v| &*v.config));
    let mut ca = Vec::new();
    for section in sections.filter(|c| c.auth.wants_certificate()) {
        let Some(path) = &section.ca_cert else {
            // The configuration parser already reported it.
            continue;
        };
        match read_cert_chain(path) {
            Ok(certs) => {
                for cert in certs {
                    if !ca.contains(&cert) {
                        ca.push(cert);
                    }
                }
            }
            Err(e) => {
                findings.errors.push(format!("ca-cert: {e}"));
                return None;
            }
        }
    }
    Some(ca)
}

/// How `section` logs a client in with its certificate (the worker picks the section by SNI).
fn cert_login(section: &Config) -> CertLogin {
    CertLogin {
        alone: section.auth.certificate_alone(),
        no_form: section.auth.certificate_only(),
    }
}

/// What the worker does with client certificates: asked for when any section has the
/// `certificate` method; `alone`/`no_form` here are the default section's (each vhost's are in
/// `WorkerStart.vhost_cert_login`, chosen by SNI after the handshake).
fn client_cert(config: &Config, prepared: &Prepared) -> Option<ClientCertSettings> {
    let sections = || std::iter::once(config).chain(config.vhosts.iter().map(|v| &*v.config));
    if !sections().any(|c| c.auth.wants_certificate()) {
        return None;
    }
    Some(ClientCertSettings {
        ca: prepared.client_ca.clone(),
        mandatory: sections().all(|c| c.auth.certificate_only()),
        alone: config.auth.certificate_alone(),
        no_form: config.auth.certificate_only(),
    })
}

/// Whether `profile` fits in a worker's start message beside the certificate chains main
/// started with (checked again at reload, where the profile may have grown).
pub fn profile_fits(prepared: &Prepared, profile: &UserProfile) -> Result<(), String> {
    let chains: usize = std::iter::once(&prepared.cert_chain)
        .chain(prepared.vhosts.iter().map(|v| &v.cert_chain))
        .flatten()
        .map(Vec::len)
        .chain(prepared.vhosts.iter().map(|v| v.name.len()))
        .sum();
    let total = chains.saturating_add(profile.xml.len());
    if total > MAX_CHAINS {
        return Err(format!(
            "the certificate chains and the profile hold {total} bytes; at most {MAX_CHAINS} \
             fit in a worker's start message"
        ));
    }
    Ok(())
}

/// A worker's start message for `config` must fit in one IPC message: besides the certificate
/// chains and the profile it carries the group choices, custom headers, banners and split
/// domains, whose sizes only the whole message tells. Checked at start and at reload, so that a
/// configuration that cannot be sent never fails every connection at run time.
pub fn start_fits(
    config: &Config,
    prepared: &Prepared,
    profile: Option<UserProfile>,
) -> Result<(), String> {
    // The largest socket addresses (IPv6 with flow label and scope) make the worst case.
    let any = std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::from([0xffff; 8]),
        u16::MAX,
        u32::MAX,
        u32::MAX,
    ));
    let start = worker_start(
        config,
        prepared,
        profile,
        KeyKind::EcdsaP384,
        WorkerId(u64::MAX),
        any,
        any,
    );
    match rocserv_proto::ipc::encode(&rocserv_proto::ipc::main_worker::ToWorker::Start(Box::new(
        start,
    ))) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "a worker's start message would not fit ({e}): shorten select-group labels, \
             custom-header / included-http-headers lines, banners, split domains, the \
             profile or the certificate chains"
        )),
    }
}

/// What all certificate chains together may hold (DER bytes): [`ipc::MAX_MESSAGE`] minus room
/// for the rest of `WorkerStart`.
///
/// [`ipc::MAX_MESSAGE`]: rocserv_proto::ipc::MAX_MESSAGE
const MAX_CHAINS: usize = rocserv_proto::ipc::MAX_MESSAGE - 8 * 1024;

/// The options a vhost sets to something else than the default section although rocserv
/// applies them server-wide (per vhost are: `auth`, `server-cert`/`server-key`, the address
/// pool and `predictable-ips`, `deny-roaming` and every per-session policy option).
fn not_per_vhost(global: &Config, vhost: &Config) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 21] = [
        ("banner", vhost.banner != global.banner),
        (
            "pre-login-banner",
            vhost.pre_login_banner != global.pre_login_banner,
        ),
        (
            "default-domain",
            vhost.default_domain != global.default_domain,
        ),
        ("ca-cert", vhost.ca_cert != global.ca_cert),
        (
            "cookie-timeout",
            vhost.cookie_timeout != global.cookie_timeout,
        ),
        (
            "persistent-cookies",
            vhost.persistent_cookies != global.persistent_cookies,
        ),
        ("rekey-time", vhost.rekey_time != global.rekey_time),
        ("rekey-method", vhost.rekey_method != global.rekey_method),
        ("compression", vhost.compression != global.compression),
        ("tls-priorities", vhost.tls != global.tls),
        ("dtls-legacy", vhost.dtls_legacy != global.dtls_legacy),
        (
            "match-tls-dtls-ciphers",
            vhost.match_tls_dtls_ciphers != global.match_tls_dtls_ciphers,
        ),
        (
            "switch-to-tcp-timeout",
            vhost.switch_to_tcp_timeout != global.switch_to_tcp_timeout,
        ),
        (
            "cisco-client-compat",
            vhost.cisco_client_compat != global.cisco_client_compat,
        ),
        (
            "connect-script",
            vhost.connect_script != global.connect_script
                || vhost.disconnect_script != global.disconnect_script
                || vhost.host_update_script != global.host_update_script,
        ),
        (
            "custom-header",
            vhost.custom_headers != global.custom_headers,
        ),
        ("proxy-url", vhost.proxy_url != global.proxy_url),
        ("user-profile", vhost.user_profile != global.user_profile),
        (
            "included-http-headers",
            vhost.included_http_headers != global.included_http_headers,
        ),
        (
            "dynamic-split-include-domains",
            vhost.dynamic_split_include_domains != global.dynamic_split_include_domains,
        ),
        (
            "dynamic-split-exclude-domains",
            vhost.dynamic_split_exclude_domains != global.dynamic_split_exclude_domains,
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
}

/// Each vhost's certificate chain (public; its key is sec-mod's), and a check of its address
/// pool. The parser already reported a vhost without certificate, key, auth or pool.
fn vhost_certs(config: &Config, findings: &mut Findings) -> Option<Vec<VhostCert>> {
    let mut certs = Vec::with_capacity(config.vhosts.len());
    let mut ok = true;
    for v in &config.vhosts {
        let place = format!("[vhost:{}] (line {})", v.name, v.line);
        if let Some(net) = v.config.policy.ipv4_network {
            if let Err(e) = Range::new(net) {
                findings.errors.push(format!("{place}: ipv4-network: {e}"));
            }
        }
        // Same network: one shared pool. Overlapping but different: both pools would hand out
        // the shared addresses.
        let nets = std::iter::once(config.policy.ipv4_network)
            .chain(config.vhosts.iter().map(|o| o.config.policy.ipv4_network));
        let mine = v.config.policy.ipv4_network;
        if let Some(clash) = nets
            .flatten()
            .find(|n| mine.is_some_and(|m| m != *n && overlaps(m, *n)))
        {
            findings.errors.push(format!(
                "{place}: ipv4-network {}/{} overlaps {}/{} of another section; give each \
                 vhost the same network or one of its own",
                mine.map(|m| m.addr.to_string()).unwrap_or_default(),
                mine.map_or(0, |m| m.prefix),
                clash.addr,
                clash.prefix
            ));
            ok = false;
        }
        match v.config.server_cert.as_deref().map(read_cert_chain) {
            Some(Ok(cert_chain)) => certs.push(VhostCert {
                name: v.name.clone(),
                cert_chain,
                // Replaced by sec-mod's answer before any worker starts.
                key: KeyKind::Rsa,
            }),
            Some(Err(e)) => {
                findings.errors.push(format!("{place}: server-cert: {e}"));
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(certs)
}

/// sec-mod's start message, if the configuration names a key, a certificate and an auth method.
pub fn secmod_config(config: &Config) -> Option<SecModConfig> {
    Some(SecModConfig {
        server_key: config.server_key.clone()?,
        server_cert: config.server_cert.clone()?,
        auth: Some(config.auth.clone()).filter(|a| !a.required.is_empty())?,
        stats_report_secs: config.policy.stats_report_time,
        cookie_timeout_secs: u64::from(config.cookie_timeout),
        persistent_cookies: config.persistent_cookies,
        auth_timeout_secs: u64::from(config.auth_timeout),
        check_only: false,
        ban_points_wrong_password: config.ban_points_wrong_password,
        deny_roaming: config.policy.deny_roaming,
        policy_files: config.policy_files.clone(),
        vhosts: config
            .vhosts
            .iter()
            .map(|v| {
                Some(SecModVhost {
                    name: v.name.clone(),
                    server_key: v.config.server_key.clone()?,
                    server_cert: v.config.server_cert.clone()?,
                    auth: Some(v.config.auth.clone()).filter(|a| !a.required.is_empty())?,
                    deny_roaming: v.config.policy.deny_roaming,
                    policy_files: v.config.policy_files.clone(),
                    key_pin: key_pin(&v.config),
                })
            })
            .collect::<Option<Vec<_>>>()?,
        auto_select_group: config.auto_select_group,
        session_db: config.session_db.clone(),
        key_pin: key_pin(config),
        cluster: config.cluster_store.clone().map(|store| ClusterSettings {
            store,
            node: config
                .cluster_node
                .clone()
                .unwrap_or_else(default_node_name),
            auth_file: config.cluster_store_auth_file.clone(),
            ca_cert: config.cluster_store_ca_cert.clone(),
        }),
    })
}

/// `cluster-node`'s default: the host name up to its first dot, with anything a node name
/// cannot hold replaced by `-` (`rocserv` when there is no host name).
fn default_node_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let short = host.split('.').next().unwrap_or_default();
    let name: String = short
        .chars()
        .take(rocserv_proto::cluster::MAX_NODE_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if rocserv_proto::cluster::valid_node_name(&name) {
        name
    } else {
        "rocserv".to_owned()
    }
}

/// A section's `key-pin` / `pin-file`, for sec-mod.
fn key_pin(config: &Config) -> rocserv_proto::ipc::main_secmod::KeyPin {
    rocserv_proto::ipc::main_secmod::KeyPin {
        pin: config.key_pin.clone(),
        file: config.pin_file.clone(),
    }
}

/// The worker's start message (without the per-connection fields' sockets). `profile` is the
/// `user-profile` in force (read at start or at the last reload).
#[allow(clippy::too_many_arguments)] // one call site; the values are all different kinds
pub fn worker_start(
    config: &Config,
    prepared: &Prepared,
    profile: Option<UserProfile>,
    key: KeyKind,
    worker: WorkerId,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
) -> WorkerStart {
    WorkerStart {
        worker,
        peer,
        local,
        sandbox: prepared.sandbox.clone(),
        tls: TlsSettings {
            cert_chain: prepared.cert_chain.clone(),
            key,
            tls12: config.tls.tls12,
            tls13: config.tls.tls13,
            vhosts: prepared.vhosts.clone(),
        },
        auth: AuthSettings {
            auth_timeout_secs: u64::from(config.auth_timeout),
            handshake_timeout_secs: u64::from(config.handshake_timeout),
            pre_login_banner: config.pre_login_banner.clone(),
            groups: group_choices(config, &prepared.auto_groups),
            default_select_group: config.default_select_group.clone(),
            // ocserv 1.5: cisco-client-compat implies select-group-by-url.
            select_group_by_url: config.select_group_by_url || config.cisco_client_compat,
            client_cert: client_cert(config, prepared),
        },
        tunnel: tunnel_settings(config),
        client: ClientSettings {
            profile,
            cert_sha1: prepared.cert_sha1.clone(),
            included_http_headers: config.included_http_headers.clone(),
            camouflage: config.camouflage(),
        },
        vhost_camouflage: config
            .vhosts
            .iter()
            .map(|v| (v.name.clone(), v.config.camouflage()))
            .collect(),
        vhost_cert_login: config
            .vhosts
            .iter()
            .map(|v| (v.name.clone(), cert_login(&v.config)))
            .collect(),
    }
}

/// The login form's groups: with `auto-select-group` the backend's list replaces the
/// `select-group` lines (as in ocserv), keeping the label a `select-group` line gives a group.
fn group_choices(config: &Config, auto_groups: &[String]) -> Vec<GroupChoice> {
    if !config.auto_select_group {
        return config.select_groups.clone();
    }
    auto_groups
        .iter()
        .map(|name| GroupChoice {
            name: name.clone(),
            label: config
                .select_groups
                .iter()
                .find(|g| &g.name == name)
                .and_then(|g| g.label.clone()),
        })
        .collect()
}

/// `user-profile` files larger than this are refused: the profile travels to every worker in
/// its start message, which must stay under the IPC limit with the certificate chain (Cisco
/// profiles are a few KiB).
pub const MAX_PROFILE: u64 = 32 * 1024;

/// Read a `user-profile` file (public data: every client that logs in may fetch it).
pub fn read_profile(path: &Path) -> Result<UserProfile, String> {
    use std::io::Read as _;
    let name = rocserv_proto::config::told::profile_name(path)
        .ok_or_else(|| format!("{}: not a file name that can be served", path.display()))?;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut xml = Vec::new();
    file.take(MAX_PROFILE + 1)
        .read_to_end(&mut xml)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if xml.len() as u64 > MAX_PROFILE {
        return Err(format!(
            "{} is larger than {MAX_PROFILE} bytes",
            path.display()
        ));
    }
    Ok(UserProfile {
        name,
        sha1: sha1_hex(&xml),
        xml,
    })
}

/// SHA-1 in upper-case hex, as ocserv prints the hashes of the `webvpnc` cookie and the
/// profile manifest. Integrity checks of public data, not a security function.
fn sha1_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

fn tunnel_settings(config: &Config) -> TunnelSettings {
    TunnelSettings {
        rekey_secs: config.rekey_time,
        rekey_method: config.rekey_method,
        default_domain: config.default_domain.clone(),
        banner: config.banner.clone(),
        dtls: dtls_settings(config),
        compression: config.compression,
        custom_headers: config.custom_headers.clone(),
        proxy_url: config.proxy_url.clone(),
        dynamic_split_include_domains: config.dynamic_split_include_domains.clone(),
        dynamic_split_exclude_domains: config.dynamic_split_exclude_domains.clone(),
    }
}

/// DTLS is offered when a UDP port is configured and `no-udp` is off (protocol.md §4.1);
/// `cisco-client-compat` implies `dtls-legacy`, as in ocserv.
fn dtls_settings(config: &Config) -> Option<DtlsSettings> {
    let port = config.udp_port.filter(|_| !config.policy.no_udp)?;
    Some(DtlsSettings {
        port,
        psk: config.dtls_psk,
        legacy: config.dtls_legacy || config.cisco_client_compat,
        match_tls_ciphers: config.match_tls_dtls_ciphers,
        switch_to_tcp_secs: config.switch_to_tcp_timeout,
        try_mtu_discovery: config.try_mtu_discovery,
    })
}

/// Whether two networks share an address (a pool each would hand it out twice).
fn overlaps(a: IpNet, b: IpNet) -> bool {
    let prefix = a.prefix.min(b.prefix);
    match (a.addr, b.addr) {
        (std::net::IpAddr::V4(x), std::net::IpAddr::V4(y)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(x) & mask == u32::from(y) & mask
        }
        (std::net::IpAddr::V6(x), std::net::IpAddr::V6(y)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(x) & mask == u128::from(y) & mask
        }
        _ => false,
    }
}

/// The lease table of every pool (each session's `ipv4-network` chooses its pool).
pub fn ip_pool(config: &Config) -> IpPool {
    IpPool::new(config.predictable_ips)
}

/// `server-cert` as DER certificates, leaf first. Public data: main may read it.
pub fn read_cert_chain(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain = iter
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(chain)
}

/// Why `nobody` is a poor worker user.
const SHARED_NOBODY: &str = "workers run as `nobody`, a uid other services share: any process \
     running as nobody may signal (kill) the workers; create a dedicated user (e.g. `useradd \
     --system --no-create-home --shell /usr/sbin/nologin rocserv`) and set `run-as-user`";

/// `run-as-user` / `run-as-group` to numeric ids; `nobody` / `nogroup` when absent (with a
/// warning). Workers verify that `setuid(0)` fails after dropping; a root worker (`run-as-user =
/// root`, warned about) instead verifies that it holds no capability.
/// Warnings (logged at every start, and by `-t`): no seccomp (`isolate-workers = false`), and
/// workers sharing the `nobody` uid with other services, which can then signal them.
fn resolve_sandbox(config: &Config, findings: &mut Findings) -> Option<SandboxPolicy> {
    if !config.isolate_workers {
        findings.warnings.push(
            "isolate-workers: false: workers run without the seccomp filter, so a bug in the \
             code that parses client bytes gives the attacker every system call of the worker's \
             user; remove the line to turn the sandbox back on"
                .to_owned(),
        );
    }
    let user_name = match &config.run_as_user {
        Some(name) => {
            if name == "nobody" {
                findings.notes.push(format!("run-as-user: {SHARED_NOBODY}"));
            }
            name.clone()
        }
        None => {
            findings
                .notes
                .push(format!("run-as-user: not set: {SHARED_NOBODY}"));
            "nobody".to_owned()
        }
    };
    let user = match User::from_name(&user_name) {
        Ok(Some(u)) => Some(u),
        Ok(None) => {
            findings
                .errors
                .push(format!("run-as-user: no user named `{user_name}`"));
            None
        }
        Err(e) => {
            findings
                .errors
                .push(format!("run-as-user: cannot look up `{user_name}`: {e}"));
            None
        }
    };
    // ocserv runs its workers as root when told to; so do we, but a root worker keeps no
    // capability (worker/src/sandbox.rs drops them all, bounding set included, and locks
    // the securebits) and, as ever, the seccomp allow-list, which has no open, kill or exec.
    if user.as_ref().is_some_and(|u| u.uid.is_root()) {
        if config.isolate_workers {
            findings.warnings.push(
                "run-as-user: root: workers run as uid 0 (with no capability, in the seccomp \
                 sandbox); a dedicated unprivileged user is safer"
                    .to_owned(),
            );
        } else {
            findings.errors.push(
                "run-as-user: root with isolate-workers = false would leave a worker that \
                 parses client bytes with every system call of uid 0; keep the sandbox or use \
                 another user"
                    .to_owned(),
            );
        }
    }
    let gid = match &config.run_as_group {
        Some(name) => match Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid),
            Ok(None) => {
                findings
                    .errors
                    .push(format!("run-as-group: no group named `{name}`"));
                None
            }
            Err(e) => {
                findings
                    .errors
                    .push(format!("run-as-group: cannot look up `{name}`: {e}"));
                None
            }
        },
        None => {
            findings
                .notes
                .push("run-as-group: not set: workers run as group `nogroup`".to_owned());
            // Debian has `nogroup`, Fedora `nobody`; else the user's primary group.
            ["nogroup", "nobody"]
                .iter()
                .find_map(|n| Group::from_name(n).ok().flatten())
                .map(|g| g.gid)
                .or_else(|| user.as_ref().map(|u| u.gid))
        }
    };
    let user = user?;
    if user.uid.is_root() && !config.isolate_workers {
        return None;
    }
    Some(SandboxPolicy {
        uid: user.uid.as_raw(),
        gid: gid?.as_raw(),
        seccomp: config.isolate_workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chains that would not fit in a worker's start message are refused at start.
    #[test]
    fn chains_must_fit_in_the_start_message() {
        let dir = std::env::temp_dir().join(format!("rocserv-chains-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("big.pem");
        // One fake certificate body of 60 KiB (main does not parse the DER).
        let der = vec![0x30u8; 60 * 1024];
        let b64 = base64_encode(&der);
        std::fs::write(
            &cert,
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let config = Config {
            server_cert: Some(cert),
            server_key: Some("/nonexistent/k.pem".into()),
            auth: rocserv_proto::config::AuthPlan {
                required: vec![rocserv_proto::config::AuthMethod::Pam {
                    gid_min: 0,
                    service: "ocserv".into(),
                }],
                ..Default::default()
            },
            ..Config::default()
        };
        let mut findings = Findings::default();
        assert!(prepare(&config, &mut findings).is_none());
        assert!(
            findings.errors.iter().any(|e| e.contains("start message")),
            "{:?}",
            findings.errors
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Everything else a worker's start message carries counts too: a configuration whose
    /// start message cannot be sent is refused at start (and by `-t`, and on reload), not at
    /// every connection.
    #[test]
    fn the_whole_start_message_must_fit() {
        let dir = std::env::temp_dir().join(format!("rocserv-startmsg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.pem");
        let b64 = base64_encode(&[0x30u8; 600]);
        std::fs::write(
            &cert,
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let config = Config {
            server_cert: Some(cert),
            server_key: Some("/nonexistent/k.pem".into()),
            auth: rocserv_proto::config::AuthPlan {
                required: vec![rocserv_proto::config::AuthMethod::Pam {
                    gid_min: 0,
                    service: "ocserv".into(),
                }],
                ..Default::default()
            },
            run_as_user: Some("daemon".into()),
            run_as_group: Some("daemon".into()),
            ..Config::default()
        };
        let mut findings = Findings::default();
        let prepared = prepare(&config, &mut findings).expect("prepared");
        assert_eq!(start_fits(&config, &prepared, None), Ok(()));
        let big = Config {
            custom_headers: (0..200)
                .map(|i| (format!("X-Big-{i}"), "v".repeat(400)))
                .collect(),
            ..config.clone()
        };
        let err = start_fits(&big, &prepared, None).unwrap_err();
        assert!(err.contains("start message would not fit"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Standard base64, wrapped at 64 columns (PEM).
    fn base64_encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.as_bytes()
            .chunks(64)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A vhost's network of its own gets a pool; one it shares with another section uses that
    /// section's; one that overlaps another's without being equal is an error.
    #[test]
    fn vhost_networks_get_pools_and_must_not_overlap() {
        let text = |v_net: &str| {
            format!(
                "auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"\nserver-cert = /nonexistent/c.pem\n\
                 server-key = /nonexistent/k.pem\nipv4-network = 10.1.0.0/16\n\
                 [vhost:same.example.com]\n\
                 [vhost:own.example.com]\nipv4-network = 10.2.0.0/24\n\
                 [vhost:x.example.com]\nipv4-network = {v_net}\nbanner = hi\n"
            )
        };
        let parsed = rocserv_proto::config::parse(&text("10.2.0.0/24"), "t");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let mut findings = Findings::default();
        prepare(&parsed.config, &mut findings);
        assert!(
            !findings.errors.iter().any(|e| e.contains("overlaps")),
            "{:?}",
            findings.errors
        );
        // What is not per vhost yet is said, not silently dropped.
        let warned: Vec<_> = findings
            .warnings
            .iter()
            .filter(|w| w.contains("not applied per vhost"))
            .collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("[vhost:x.example.com]") && warned[0].contains("banner"));

        for clash in ["10.1.5.0/24", "10.2.0.0/23"] {
            let parsed = rocserv_proto::config::parse(&text(clash), "t");
            let mut findings = Findings::default();
            prepare(&parsed.config, &mut findings);
            assert!(
                findings
                    .errors
                    .iter()
                    .any(|e| e.contains("[vhost:x.example.com]") && e.contains("overlaps")),
                "{clash}: {:?}",
                findings.errors
            );
        }
    }

    #[test]
    fn missing_essentials_are_all_reported() {
        let config = Config {
            run_as_user: Some("no-such-user-rocserv".into()),
            run_as_group: Some("no-such-group-rocserv".into()),
            ..Config::default()
        };
        let mut findings = Findings::default();
        assert!(prepare(&config, &mut findings).is_none());
        let all = findings.errors.join("\n");
        for needle in [
            "server-cert",
            "server-key",
            "auth",
            "no user named",
            "no group named",
        ] {
            assert!(all.contains(needle), "{needle} missing in:\n{all}");
        }
        assert!(findings.warnings.iter().any(|w| w.contains("ipv4-network")));
    }

    #[test]
    fn findings_name_file_and_line() {
        let text = "auth = \"plain[passwd=/etc/p]\"\nrun-as-user = nobody\nserver-cert = /c\n\
                    server-key = /k\nipv4-network = 10.0.0.0/24\n";
        let config = rocserv_proto::config::parse(text, "t.conf").config;
        assert_eq!(
            locate("t.conf", &config, "error", "server-cert: cannot read /c"),
            "t.conf:3: error: server-cert: cannot read /c"
        );
        assert_eq!(
            locate("t.conf", &config, "note", "run-as-user: shared"),
            "t.conf:2: note: run-as-user: shared"
        );
        // An option the file does not set: line 0, the whole file.
        assert_eq!(
            locate("t.conf", &config, "warning", "run-as-group: not set"),
            "t.conf:0: warning: run-as-group: not set"
        );
    }

    /// ocserv runs root workers when told to; so do we, with a warning on the option's line,
    /// and only in the seccomp sandbox.
    #[test]
    fn root_workers_run_sandboxed_with_a_warning() {
        let text = "run-as-user = root\nrun-as-group = root\n";
        let config = rocserv_proto::config::parse(text, "t.conf").config;
        let mut findings = Findings::default();
        let policy = resolve_sandbox(&config, &mut findings).expect("root is allowed");
        assert_eq!((policy.uid, policy.gid, policy.seccomp), (0, 0, true));
        assert!(findings.errors.is_empty(), "{:?}", findings.errors);
        let warning = findings
            .warnings
            .iter()
            .find(|w| w.starts_with("run-as-user: root"))
            .expect("a warning");
        assert!(locate("t.conf", &config, "warning", warning)
            .starts_with("t.conf:1: warning: run-as-user: root"),);
        let config = Config {
            isolate_workers: false,
            ..config
        };
        let mut findings = Findings::default();
        assert!(resolve_sandbox(&config, &mut findings).is_none());
        assert!(findings
            .errors
            .iter()
            .any(|e| e.contains("isolate-workers")));
    }

    #[test]
    fn the_sandbox_is_on_by_default_and_turning_it_off_warns() {
        let config = Config {
            run_as_user: Some("daemon".into()),
            run_as_group: Some("daemon".into()),
            ..Config::default()
        };
        let mut findings = Findings::default();
        let policy = resolve_sandbox(&config, &mut findings).unwrap();
        assert!(policy.seccomp);
        assert_eq!(findings.warnings, Vec::<String>::new());

        let config = Config {
            isolate_workers: false,
            ..config
        };
        let mut findings = Findings::default();
        assert!(!resolve_sandbox(&config, &mut findings).unwrap().seccomp);
        assert!(
            findings
                .warnings
                .iter()
                .any(|w| w.contains("isolate-workers: false") && w.contains("seccomp")),
            "{:?}",
            findings.warnings
        );
    }

    #[test]
    fn nobody_as_the_worker_user_is_noted() {
        for run_as_user in [None, Some("nobody".to_owned())] {
            let config = Config {
                run_as_user,
                run_as_group: Some("daemon".into()),
                ..Config::default()
            };
            let mut findings = Findings::default();
            let policy = resolve_sandbox(&config, &mut findings).unwrap();
            assert_eq!(
                Some(policy.uid),
                User::from_name("nobody").unwrap().map(|u| u.uid.as_raw())
            );
            // Advice, not a warning: the file behaves as under ocserv.
            assert!(
                findings
                    .notes
                    .iter()
                    .any(|w| w.contains("`nobody`, a uid other services share")),
                "{:?}",
                findings.notes
            );
            assert_eq!(findings.warnings, Vec::<String>::new());
        }
    }

    #[test]
    fn unreadable_certificate_is_an_error() {
        let err = read_cert_chain(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(err.contains("/nonexistent/cert.pem"));
        let dir = std::env::temp_dir().join(format!("rocserv-main-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        assert!(read_cert_chain(&empty)
            .unwrap_err()
            .contains("no CERTIFICATE"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn profiles_are_read_hashed_and_bounded() {
        let dir = std::env::temp_dir().join(format!("rocserv-profile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corp-profile.xml");
        std::fs::write(&path, "abc").unwrap();
        let profile = read_profile(&path).unwrap();
        assert_eq!(profile.name, "corp-profile.xml");
        assert_eq!(profile.xml, b"abc");
        // SHA-1("abc"), FIPS 180-2 appendix A.1.
        assert_eq!(profile.sha1, "A9993E364706816ABA3E25717850C26C9CD0D89D");
        std::fs::write(&path, vec![b'x'; MAX_PROFILE as usize + 1]).unwrap();
        assert!(read_profile(&path).unwrap_err().contains("larger than"));
        assert!(read_profile(&dir.join("missing.xml"))
            .unwrap_err()
            .contains("cannot open"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
