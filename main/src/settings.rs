//! From the parsed [`Config`] to what main and its children need: the worker's sandbox
//! identity, the public certificate chain, sec-mod's start message and the per-worker settings.
//! Every problem is collected (not just the first) so that `rocserv -t` can list them all.

use std::path::Path;

use nix::unistd::{Group, User};
use rocserv_proto::config::{Config, GroupChoice, IpNet};
use rocserv_proto::ipc::main_secmod::SecModConfig;
use rocserv_proto::ipc::main_worker::{
    AuthSettings, DtlsSettings, SandboxPolicy, TlsSettings, TunnelSettings, WorkerStart,
};
use rocserv_proto::ipc::{KeyKind, WorkerId};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::ip_pool::IpPool;

/// Problems found while preparing; errors stop the server, warnings do not.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Everything checked and resolved before sec-mod starts.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sandbox: SandboxPolicy,
    /// `server-cert`, DER, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    pub secmod: SecModConfig,
    /// `auto-select-group`'s list, from sec-mod's `Ready` (empty until then, and without it).
    pub auto_groups: Vec<String>,
}

/// Check `config` and resolve what main needs. Returns `None` when an error was found (all
/// errors are in `findings`).
pub fn prepare(config: &Config, findings: &mut Findings) -> Option<Prepared> {
    for vhost in &config.vhosts {
        findings.warnings.push(format!(
            "[vhost:{}] (line {}): virtual hosts are not supported yet; the section is ignored \
             and every client is served with the global settings",
            vhost.name, vhost.line
        ));
    }
    match config.policy.ipv4_network {
        None if config.policy.ipv6_network.is_none() => findings.warnings.push(
            "no ipv4-network or ipv6-network configured: every CONNECT will be refused (503)"
                .to_owned(),
        ),
        None => {}
        Some(net) => {
            if let Err(e) = IpPool::new(net, config.predictable_ips) {
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
    if config.auth.is_none() {
        findings
            .errors
            .push("auth: no authentication method configured".to_owned());
    }
    let secmod = secmod_config(config)?;
    Some(Prepared {
        sandbox: sandbox?,
        cert_chain: cert_chain?,
        secmod,
        auto_groups: Vec::new(),
    })
}

/// sec-mod's start message, if the configuration names a key, a certificate and an auth method.
pub fn secmod_config(config: &Config) -> Option<SecModConfig> {
    Some(SecModConfig {
        server_key: config.server_key.clone()?,
        server_cert: config.server_cert.clone()?,
        auth: config.auth.clone()?,
        cookie_timeout_secs: u64::from(config.cookie_timeout),
        persistent_cookies: config.persistent_cookies,
        auth_timeout_secs: u64::from(config.auth_timeout),
        check_only: false,
        ban_points_wrong_password: config.ban_points_wrong_password,
        deny_roaming: config.policy.deny_roaming,
        policy_files: config.policy_files.clone(),
        auto_select_group: config.auto_select_group,
    })
}

/// The worker's start message (without the per-connection fields' sockets).
pub fn worker_start(
    config: &Config,
    prepared: &Prepared,
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
        },
        auth: AuthSettings {
            auth_timeout_secs: u64::from(config.auth_timeout),
            handshake_timeout_secs: u64::from(config.handshake_timeout),
            pre_login_banner: config.pre_login_banner.clone(),
            groups: group_choices(config, &prepared.auto_groups),
            default_select_group: config.default_select_group.clone(),
            // ocserv 1.5: cisco-client-compat implies select-group-by-url.
            select_group_by_url: config.select_group_by_url || config.cisco_client_compat,
        },
        tunnel: tunnel_settings(config),
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

fn tunnel_settings(config: &Config) -> TunnelSettings {
    TunnelSettings {
        rekey_secs: config.rekey_time,
        rekey_method: config.rekey_method,
        default_domain: config.default_domain.clone(),
        banner: config.banner.clone(),
        dtls: dtls_settings(config),
        compression: config.compression,
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

/// The pool of `ipv4-network`, if configured (errors were reported by [`prepare`]).
pub fn ip_pool(config: &Config) -> Option<IpPool> {
    let net: IpNet = config.policy.ipv4_network?;
    IpPool::new(net, config.predictable_ips).ok()
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
/// warning). Workers must not stay root: they verify that `setuid(0)` fails after dropping.
/// Warnings (logged at every start, and by `-t`): no seccomp (`isolate-workers = false`), and
/// workers sharing the `nobody` uid with other services, which can then signal them.
fn resolve_sandbox(config: &Config, findings: &mut Findings) -> Option<SandboxPolicy> {
    if !config.isolate_workers {
        findings.warnings.push(
            "isolate-workers = false: workers run without the seccomp filter, so a bug in the \
             code that parses client bytes gives the attacker every system call of the worker's \
             user; remove the line to turn the sandbox back on"
                .to_owned(),
        );
    }
    let user_name = match &config.run_as_user {
        Some(name) => {
            if name == "nobody" {
                findings.warnings.push(SHARED_NOBODY.to_owned());
            }
            name.clone()
        }
        None => {
            findings
                .warnings
                .push(format!("run-as-user not set: {SHARED_NOBODY}"));
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
    if user.as_ref().is_some_and(|u| u.uid.is_root()) {
        findings
            .errors
            .push("run-as-user: workers must not run as root".to_owned());
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
                .warnings
                .push("run-as-group not set: workers run as group `nogroup`".to_owned());
            // Debian has `nogroup`, Fedora `nobody`; else the user's primary group.
            ["nogroup", "nobody"]
                .iter()
                .find_map(|n| Group::from_name(n).ok().flatten())
                .map(|g| g.gid)
                .or_else(|| user.as_ref().map(|u| u.gid))
        }
    };
    let user = user?;
    if user.uid.is_root() {
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
    fn root_workers_are_refused() {
        let config = Config {
            run_as_user: Some("root".into()),
            run_as_group: Some("root".into()),
            ..Config::default()
        };
        let mut findings = Findings::default();
        assert!(resolve_sandbox(&config, &mut findings).is_none());
        assert!(findings.errors.iter().any(|e| e.contains("root")));
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
                .any(|w| w.contains("isolate-workers = false") && w.contains("seccomp")),
            "{:?}",
            findings.warnings
        );
    }

    #[test]
    fn nobody_as_the_worker_user_warns() {
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
            assert!(
                findings
                    .warnings
                    .iter()
                    .any(|w| w.contains("`nobody`, a uid other services share")),
                "{:?}",
                findings.warnings
            );
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
}
