//! Configuration reload (SIGHUP, occtl `reload`).
//!
//! The file is read and parsed again; if it has any error, every error is logged and the
//! running configuration stays. Otherwise the new one is swapped in for NEW connections and
//! sessions: established tunnels keep what they were given. As in ocserv (its sample config
//! splits the options into "do not change with server reload" and "reloaded on SIGHUP"), the
//! listening sockets, identities, key and certificate and authentication method need a restart;
//! rocserv also keeps the address pool, the tun device name, the MTU, DTLS's UDP choice and
//! what sec-mod was started with (cookie lifetime, `deny-roaming`, points per wrong password,
//! its `auth-timeout`). A changed option of that kind is logged as "needs a restart" and keeps
//! its running value, so main and its children never disagree.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rocserv_proto::config::{self, Config, Severity};
use rocserv_proto::ipc::main_worker::UserProfile;
use rocserv_rt::lock;

use crate::ban::BanPolicy;
use crate::counters::Counters;
use crate::state::Shared;

/// The configuration in force for new connections, and where it comes from.
#[derive(Debug)]
pub struct Live {
    current: Mutex<Arc<Config>>,
    source: Mutex<Source>,
    /// `user-profile` as read with `current` (main reads it; workers get its bytes).
    profile: Mutex<Option<UserProfile>>,
}

#[derive(Debug, Default, Clone)]
struct Source {
    /// `None` in demo mode (built in code: nothing to reload).
    path: Option<PathBuf>,
    /// `-d N` given on the command line: it wins over `log-level` on reload too.
    debug: Option<u8>,
}

impl Live {
    pub fn new(config: Config) -> Self {
        Self {
            current: Mutex::new(Arc::new(config)),
            source: Mutex::new(Source::default()),
            profile: Mutex::new(None),
        }
    }

    /// The `user-profile` for new connections.
    pub fn profile(&self) -> Option<UserProfile> {
        lock(&self.profile).clone()
    }

    /// Set the `user-profile` read at start.
    pub fn set_profile(&self, profile: Option<UserProfile>) {
        *lock(&self.profile) = profile;
    }

    /// Where reloads read from, and the command line's `-d`.
    pub fn set_source(&self, path: Option<PathBuf>, debug: Option<u8>) {
        *lock(&self.source) = Source { path, debug };
    }

    /// The configuration for a new connection.
    pub fn get(&self) -> Arc<Config> {
        Arc::clone(&lock(&self.current))
    }

    fn set(&self, config: Config) {
        *lock(&self.current) = Arc::new(config);
    }
}

/// Options of `new` that differ from `old` but cannot change without a restart; their old
/// values are put back into `new`.
pub fn keep_fixed(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! fixed {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(
                if old.$field != new.$field {
                    changed.push($name);
                    new.$field = old.$field.clone();
                }
            )*
        };
    }
    macro_rules! fixed_policy {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(
                if old.policy.$field != new.policy.$field {
                    changed.push($name);
                    new.policy.$field = old.policy.$field.clone();
                }
            )*
        };
    }
    fixed_policy!(
        no_udp => "no-udp",
        ipv4_network => "ipv4-network",
        mtu => "mtu",
        deny_roaming => "deny-roaming",
    );
    fixed!(
        auth => "auth",
        listen_host => "listen-host",
        tcp_port => "tcp-port",
        udp_port => "udp-port",
        udp_listen_host => "udp-listen-host",
        run_as_user => "run-as-user",
        run_as_group => "run-as-group",
        socket_file => "socket-file",
        occtl_socket_file => "occtl-socket-file",
        use_occtl => "use-occtl",
        pid_file => "pid-file",
        server_cert => "server-cert",
        server_key => "server-key",
        ca_cert => "ca-cert",
        isolate_workers => "isolate-workers",
        device => "device",
        predictable_ips => "predictable-ips",
        cookie_timeout => "cookie-timeout",
        persistent_cookies => "persistent-cookies",
        ban_points_wrong_password => "ban-points-wrong-password",
        auth_timeout => "auth-timeout",
        policy_files => "config-per-user/config-per-group/default-user-config/default-group-config",
        auto_select_group => "auto-select-group",
        session_db => "session-db",
        metrics_listen => "metrics-listen",
        listen_proxy_proto => "listen-proxy-proto",
        server_stats_reset_time => "server-stats-reset-time",
    );
    // sec-mod holds each vhost's key and auth method, main its pool: adding or removing a
    // section needs a restart, and inside each section the same options are fixed.
    let same_vhosts = old.vhosts.len() == new.vhosts.len()
        && old
            .vhosts
            .iter()
            .zip(&new.vhosts)
            .all(|(o, n)| o.name == n.name);
    if same_vhosts {
        for (o, n) in old.vhosts.iter().zip(new.vhosts.iter_mut()) {
            for name in keep_fixed(&o.config, &mut n.config) {
                if !changed.contains(&name) {
                    changed.push(name);
                }
            }
        }
    } else {
        changed.push("[vhost:NAME] sections");
        new.vhosts = old.vhosts.clone();
    }
    changed
}

/// Re-read the configuration file and apply it to new connections. The error lists every
/// problem (also logged); the running configuration is unchanged then.
pub async fn reload(shared: &Shared) -> Result<(), String> {
    let source = lock(&shared.live.source).clone();
    let Some(path) = source.path else {
        return Err("no configuration file to reload (demo mode)".to_owned());
    };
    let origin = path.display().to_string();
    // A blocking read off the event loop (the runtime has no tokio::fs).
    let read_path = path.clone();
    let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(read_path))
        .await
        .map_err(|e| format!("{origin}: cannot read: {e}"))?
        .map_err(|e| format!("{origin}: cannot read: {e}"))?;
    let parsed = config::parse(&text, &origin);
    let errors: Vec<String> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        for e in &errors {
            log::error!("reload: {e}");
        }
        log::error!("reload: keeping the running configuration");
        return Err(errors.join("; "));
    }
    for d in &parsed.diagnostics {
        log::warn!("reload: {d}");
    }
    let old = shared.live.get();
    let mut new = parsed.config;
    for name in keep_fixed(&old, &mut new) {
        log::warn!("reload: {name} changed; it needs a restart (the running value stays)");
    }
    // The profile is read again (an administrator edits it and reloads), before anything
    // changes: an unreadable one keeps the running configuration, as a bad line does.
    let profile = match new.user_profile.clone() {
        Some(path) => {
            let read = tokio::task::spawn_blocking(move || crate::settings::read_profile(&path))
                .await
                .map_err(|e| format!("user-profile: {e}"))
                .and_then(|r| r.map_err(|e| format!("user-profile: {e}")))
                .and_then(|p| {
                    crate::settings::profile_fits(&shared.prepared, &p)
                        .map(|()| p)
                        .map_err(|e| format!("user-profile: {e}"))
                });
            match read {
                Ok(profile) => Some(profile),
                Err(e) => {
                    log::error!("reload: {e}");
                    log::error!("reload: keeping the running configuration");
                    return Err(e);
                }
            }
        }
        None => None,
    };
    if let Err(e) = crate::settings::start_fits(&new, &shared.prepared, profile.clone()) {
        log::error!("reload: {e}");
        log::error!("reload: keeping the running configuration");
        return Err(e);
    }
    shared.bans.set_policy(BanPolicy::from_config(&new));
    let level = source.debug.unwrap_or(new.log_level).min(9);
    log::set_max_level(crate::logger::filter_for(level));
    // expose-iroutes reads the per-user files again, as ocserv does on reload.
    let for_files = new.clone();
    match tokio::task::spawn_blocking(move || crate::iroutes::from_user_files(&for_files)).await {
        Ok(nets) => shared.conns.set_file_iroutes(nets),
        Err(e) => log::error!("reload: expose-iroutes: {e}"),
    }
    shared.live.set(new);
    shared.live.set_profile(profile);
    Counters::add(&shared.counters.reloads, 1);
    log::info!("configuration reloaded from {origin}; it applies to new connections");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_options_keep_their_running_value() {
        let old = Config::default();
        let mut new = Config {
            tcp_port: 4443,
            device: "tun".into(),
            policy: rocserv_proto::policy::Policy {
                dns: vec!["10.0.0.1".parse().unwrap()],
                idle_timeout: Some(60),
                max_same_clients: 1,
                ..Default::default()
            },
            ..Config::default()
        };
        let changed = keep_fixed(&old, &mut new);
        assert_eq!(changed, ["tcp-port", "device"]);
        assert_eq!(new.tcp_port, old.tcp_port);
        assert_eq!(new.device, old.device);
        // Reloadable ones stay new.
        assert_eq!(new.policy.dns.len(), 1);
        assert_eq!(new.policy.idle_timeout, Some(60));
        assert_eq!(new.policy.max_same_clients, 1);
        assert!(keep_fixed(&old, &mut Config::default()).is_empty());
    }

    /// A vhost's key, auth and pool are fixed like the default section's; its policy reloads;
    /// a section added needs a restart (sec-mod has no key for it).
    #[test]
    fn vhost_sections_keep_what_needs_a_restart() {
        let parse = |text: &str| config::parse(text, "t").config;
        let base = "auth = pam\nserver-cert = /c.pem\nserver-key = /k.pem\n\
                    ipv4-network = 10.1.0.0/24\n[vhost:b]\nipv4-network = 10.2.0.0/24\n";
        let old = parse(base);
        let mut new = parse(&format!("{base}keepalive = 7\nserver-key = /k2.pem\n"));
        assert_eq!(keep_fixed(&old, &mut new), ["server-key"]);
        assert_eq!(
            new.vhosts[0].config.server_key,
            old.vhosts[0].config.server_key
        );
        assert_eq!(new.vhosts[0].config.policy.keepalive, 7);
        let mut new = parse(&format!("{base}[vhost:c]\n"));
        assert_eq!(keep_fixed(&old, &mut new), ["[vhost:NAME] sections"]);
        assert_eq!(new.vhosts.len(), 1);
    }

    #[test]
    fn live_swaps_for_new_readers_only() {
        let live = Live::new(Config::default());
        let before = live.get();
        live.set(Config {
            max_clients: 7,
            ..Config::default()
        });
        assert_eq!(before.max_clients, 0);
        assert_eq!(live.get().max_clients, 7);
    }
}
