//! Applying one `name = value` to the section being built, and what ocserv does with options
//! it only accepts (warnings, errors, aliases).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::diag::{quote, Sink};
use super::options::{self, OptionSpec, Scope, Status};
use super::values::{self, Bad};
use super::{auth, route_cmd, tls_priorities, told, Config, RekeyMethod, Route};

/// ocserv refuses longer banners (`MAX_BANNER_SIZE` in ocserv `src/vpn.h`).
const MAX_BANNER: usize = 256;

/// Linux interface names hold 15 bytes; leave room for the device number.
const MAX_DEVICE: usize = 10;

/// The state of one section (global or `[vhost:NAME]`) while its lines are read.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) config: Config,
    /// `None` for the global section.
    pub(crate) vhost: Option<String>,
    /// Line of the (first) section header; 0 for the global section.
    pub(crate) line: usize,
    /// `ipv4-network` address and its line; the prefix may come from either option.
    pub(crate) ipv4: Option<(Ipv4Addr, usize)>,
    pub(crate) ipv4_prefix: Option<u8>,
    /// `ipv6-network` address and its line; the prefix may come from `ipv6-prefix`.
    pub(crate) ipv6: Option<(Ipv6Addr, usize)>,
    pub(crate) ipv6_prefix: Option<u8>,
    /// `tls-priorities` as written, if set (inherited by vhosts).
    pub(crate) tls_priorities: Option<String>,
    /// Counts of `server-cert` / `server-key` lines (ocserv wants them paired).
    pub(crate) certs: usize,
    pub(crate) keys: usize,
    /// Options given in this section: replace what a vhost inherited, warn on repeats.
    pub(crate) seen: Vec<(&'static str, usize)>,
    /// Bad values of options that change nothing unless their feature is on
    /// (`cert-user-oid` / `cert-group-oid` without `certificate`, `camouflage_*` without
    /// `camouflage = true`): (line, option, message), reported as errors only then, since
    /// ocserv ignores them too.
    pub(crate) unused_bad: Vec<(usize, &'static str, String)>,
}

impl Section {
    pub(crate) fn global() -> Self {
        Self {
            config: Config::default(),
            vhost: None,
            line: 0,
            ipv4: None,
            ipv4_prefix: None,
            ipv6: None,
            ipv6_prefix: None,
            tls_priorities: None,
            certs: 0,
            keys: 0,
            seen: Vec::new(),
            unused_bad: Vec::new(),
        }
    }

    /// A new vhost starts as a copy of the global section, as in ocserv 1.5 (#705).
    pub(crate) fn vhost_of(global: &Self, name: String, line: usize) -> Self {
        let mut section = global.clone();
        section.config.vhosts = Vec::new();
        section.vhost = Some(name);
        section.line = line;
        section.certs = 0;
        section.keys = 0;
        section.seen = Vec::new();
        section.unused_bad = Vec::new();
        section
    }

    /// Line where `name` was first given in this section.
    pub(crate) fn seen_at(&self, name: &str) -> Option<usize> {
        self.seen.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
    }
}

/// Handle one `name = value` line in `section`.
pub(crate) fn assign(section: &mut Section, name: &str, raw: &str, line: usize, sink: &mut Sink) {
    assign_as(section, name, name, raw, line, sink);
}

/// `assign` of option `key`, reported under `name` (they differ for an alias).
fn assign_as(
    section: &mut Section,
    key: &str,
    name: &str,
    raw: &str,
    line: usize,
    sink: &mut Sink,
) {
    let Some(spec) = options::lookup(key) else {
        let hint = options::suggest(name)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        sink.error(line, Some(name), format!("unknown option{hint}"));
        return;
    };
    if spec.scope == Scope::Global {
        if let Some(vhost) = &section.vhost {
            sink.error(
                line,
                Some(name),
                format!("cannot be set inside [vhost:{vhost}]; it applies to the whole server"),
            );
            return;
        }
    }
    // included-http-headers keeps its quotes (ocserv passes the raw value).
    let value = if spec.name == "included-http-headers" {
        raw
    } else {
        values::unquote(raw)
    };
    if spec.scope == Scope::PerUser && spec.status == Status::Supported {
        sink.warning(
            line,
            Some(name),
            "belongs in per-user/per-group files; ignored in the main file, as in ocserv",
        );
        return;
    }
    match spec.status {
        Status::Supported => {}
        Status::Alias { of, old } => {
            if old {
                sink.warning(line, Some(name), format!("old name of `{of}`"));
            }
            // ocserv only ever lets `use-dbus` switch occtl on.
            if spec.name == "use-dbus" && matches_any(value, options::FALSE) {
                return;
            }
            assign_as(section, of, name, raw, line, sink);
            return;
        }
        Status::NotYet { quiet } => {
            if !matches_any(value, quiet) {
                let scope = match spec.scope {
                    Scope::PerUser => "; it belongs in per-user/per-group files",
                    Scope::Global | Scope::Vhost => "",
                };
                sink.warning(
                    line,
                    Some(name),
                    format!("not supported yet; ignored{scope}"),
                );
            }
            return;
        }
        Status::Refused { safe } => {
            if !matches_any(value, safe) {
                sink.error(line, Some(name), refusal(spec));
            }
            return;
        }
        Status::NotApplicable => return,
        Status::Removed { error } => {
            let text = format!("no longer an ocserv option: {}", spec.difference);
            if error {
                sink.error(line, Some(name), text);
            } else {
                sink.warning(line, Some(name), format!("{text}; ignored"));
            }
            return;
        }
    }
    if !spec.repeatable {
        if let Some(first) = section.seen_at(spec.name) {
            sink.warning(
                line,
                Some(name),
                format!("also set on line {first}; this later value wins, as in ocserv"),
            );
        }
    }
    let first_here = section.seen_at(spec.name).is_none();
    if first_here {
        section.seen.push((spec.name, line));
    }
    if let Err(message) = supported(section, spec.name, value, first_here, line, sink) {
        sink.error(line, Some(name), message);
    }
}

/// A further `auth` line: every line must succeed, in order. As in ocserv, that is the
/// certificate together with one password method; two password methods would ask the same
/// form twice.
fn combine(required: &[super::AuthMethod], next: &super::AuthMethod) -> Result<(), Bad> {
    use super::AuthMethod::Certificate;
    let certs = required
        .iter()
        .chain([next])
        .filter(|m| **m == Certificate)
        .count();
    let others = required.len().saturating_add(1).saturating_sub(certs);
    if certs > 1 {
        return Err("`certificate` is given twice".to_owned());
    }
    if others > 1 {
        return Err(format!(
            "several `auth` lines must all succeed, and only `certificate` can be combined with \
             one password method; `{}` would be a second password method",
            next.name()
        ));
    }
    Ok(())
}

fn matches_any(value: &str, list: &[&str]) -> bool {
    list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

fn refusal(spec: &OptionSpec) -> String {
    let mut why = spec.difference.trim_end_matches('.').to_owned();
    if let Some(first) = why.get(..1) {
        let lower = first.to_ascii_lowercase();
        why.replace_range(..1, &lower);
    }
    format!("not supported yet, and ignoring it is not safe: {why}")
}

/// Parse a supported option into the section. `first_here`: the first time this option
/// appears in this section (a vhost's first `route` etc. adds to the inherited list, but its
/// first `auth` or `server-cert` replaces the inherited one).
pub(crate) fn supported(
    s: &mut Section,
    name: &str,
    v: &str,
    first_here: bool,
    line: usize,
    sink: &mut Sink,
) -> Result<(), Bad> {
    let c = &mut s.config;
    match name {
        "auth" => {
            let method = auth::method(v)?;
            if first_here {
                c.auth.required = vec![method];
            } else {
                combine(&c.auth.required, &method)?;
                c.auth.required.push(method);
            }
        }
        "acct" => c.auth.acct = Some(auth::acct(v)?),
        "enable-auth" => {
            let method = auth::method(v)?;
            // Each alternative logs a client in on its own, without the login form; of
            // ocserv's (certificate, gssapi) rocserv has the certificate.
            if method != super::AuthMethod::Certificate {
                return Err(format!(
                    "only `certificate` can be an alternative method in rocserv (found `{}`); \
                     put password methods in `auth`",
                    method.name()
                ));
            }
            if first_here {
                c.auth.alternatives = vec![method];
            } else if !c.auth.alternatives.contains(&method) {
                c.auth.alternatives.push(method);
            }
        }
        "crl" => c.crl = Some(values::absolute_path(v)?),
        "cert-user-oid" => match auth::cert_field(v) {
            Ok(field) => c.cert_user_oid = Some(field),
            Err(e) => s.unused_bad.push((line, "cert-user-oid", e)),
        },
        "cert-group-oid" => match auth::cert_field(v) {
            Ok(field) => c.cert_group_oid = Some(field),
            Err(e) => s.unused_bad.push((line, "cert-group-oid", e)),
        },
        "listen-netns" => c.listen_netns = Some(values::netns_name(v)?),
        // Longer than a day would only postpone shutdown past any supervisor's patience.
        "server-drain-ms" => c.server_drain_ms = values::number(v, 0, 86_400_000)?,
        "use-utmp" => c.use_utmp = values::boolean(v)?,
        "always-require-cert" => {
            sink.warning(line, Some(name), "old option; use `cisco-client-compat`");
            if !values::boolean(v)? {
                c.cisco_client_compat = true;
            }
        }
        "listen-host" => {
            c.listen_host = Some(
                values::ip(v)
                    .map_err(|e| format!("{e} (host names are not resolved; give an address)"))?,
            )
        }
        "tcp-port" => c.tcp_port = values::port(v)?,
        "udp-port" => {
            c.udp_port = match v {
                "0" => None,
                _ => Some(values::port(v)?),
            }
        }
        "udp-listen-host" => {
            c.udp_listen_host = Some(
                values::ip(v)
                    .map_err(|e| format!("{e} (host names are not resolved; give an address)"))?,
            )
        }
        "dtls-psk" => c.dtls_psk = values::boolean(v)?,
        "dtls-legacy" => c.dtls_legacy = values::boolean(v)?,
        "match-tls-dtls-ciphers" => c.match_tls_dtls_ciphers = values::boolean(v)?,
        "switch-to-tcp-timeout" => c.switch_to_tcp_timeout = values::seconds(v)?,
        "no-udp" => c.policy.no_udp = values::boolean(v)?,
        "try-mtu-discovery" => c.try_mtu_discovery = values::boolean(v)?,
        "key-pin" => c.key_pin = Some(super::Secret(v.to_owned())),
        "pin-file" => c.pin_file = Some(values::absolute_path(v)?),
        "run-as-user" => c.run_as_user = Some(values::name(v, 32)?),
        "run-as-group" => c.run_as_group = Some(values::name(v, 32)?),
        // ocserv takes it relative to `chroot-dir`; rocserv makes no such file, so any name is
        // fine.
        "socket-file" => c.socket_file = Some(values::file_name(v)?),
        "occtl-socket-file" => c.occtl_socket_file = Some(values::absolute_path(v)?),
        // Relative: to the directory rocserv was started in (main makes it absolute at start).
        "pid-file" => c.pid_file = Some(values::file_name(v)?),
        "metrics-listen" => {
            c.metrics_listen = Some(v.parse().map_err(|_| {
                format!(
                    "expected ADDRESS:PORT (e.g. 127.0.0.1:9616, [::1]:9616), found {}",
                    quote(v)
                )
            })?)
        }
        "cluster-store" => {
            c.cluster_store = Some(
                crate::cluster::StoreUrl::parse(v)
                    .map_err(|e| format!("{e}, found {}", quote(v)))?,
            )
        }
        "cluster-node" => {
            if !crate::cluster::valid_node_name(v) {
                return Err(format!(
                    "expected 1-{} of A-Z a-z 0-9 . _ -, found {}",
                    crate::cluster::MAX_NODE_NAME,
                    quote(v)
                ));
            }
            c.cluster_node = Some(v.to_owned())
        }
        "cluster-store-auth-file" => c.cluster_store_auth_file = Some(values::absolute_path(v)?),
        "cluster-store-ca-cert" => c.cluster_store_ca_cert = Some(values::absolute_path(v)?),
        "cluster-route-add-cmd" => {
            c.cluster_route_add_cmd =
                Some(route_cmd::RouteCmd::parse(v).map_err(|e| e.to_string())?)
        }
        "cluster-route-del-cmd" => {
            c.cluster_route_del_cmd =
                Some(route_cmd::RouteCmd::parse(v).map_err(|e| e.to_string())?)
        }
        "session-db" => {
            c.session_db = match v {
                "none" => None,
                _ => Some(values::absolute_path(v)?),
            }
        }
        "server-cert" | "server-key" => {
            if v.contains(':') && !v.starts_with('/') {
                return Err(format!(
                    "key and certificate URLs (PKCS #11, TPM) are not supported; give a PEM \
                     file, found {}",
                    quote(v)
                ));
            }
            let path = values::absolute_path(v)?;
            let (slot, count) = if name == "server-cert" {
                (&mut c.server_cert, &mut s.certs)
            } else {
                (&mut c.server_key, &mut s.keys)
            };
            *count = count.saturating_add(1);
            if first_here {
                *slot = Some(path);
            } else {
                sink.warning(
                    line,
                    Some(name),
                    "several certificate/key pairs are not supported yet; only the first is used",
                );
            }
        }
        "ca-cert" => c.ca_cert = Some(values::absolute_path(v)?),
        "isolate-workers" => c.isolate_workers = values::boolean(v)?,
        "use-occtl" => c.use_occtl = values::boolean(v)?,
        "max-clients" => c.max_clients = values::number(v, 0, u32::MAX)?,
        "max-pre-auth-clients" => c.max_pre_auth_clients = values::number(v, 0, u32::MAX)?,
        "max-pre-auth-per-ip" => c.max_pre_auth_per_ip = values::number(v, 0, u32::MAX)?,
        "max-same-clients" => c.policy.max_same_clients = values::number(v, 0, u32::MAX)?,
        "keepalive" => c.policy.keepalive = values::seconds(v)?,
        "dpd" => c.policy.dpd = values::seconds(v)?,
        "mobile-dpd" => c.policy.mobile_dpd = values::seconds(v)?,
        "auth-timeout" => c.auth_timeout = values::seconds(v)?,
        "handshake-timeout" => c.handshake_timeout = values::number(v, 1, 3600)?,
        "idle-timeout" => c.policy.idle_timeout = values::optional_seconds(v)?,
        "session-timeout" => c.policy.session_timeout = values::optional_seconds(v)?,
        "cookie-timeout" => c.cookie_timeout = values::seconds(v)?,
        "rekey-time" => c.rekey_time = values::seconds(v)?,
        "persistent-cookies" => c.persistent_cookies = values::boolean(v)?,
        "predictable-ips" => c.predictable_ips = values::boolean(v)?,
        "tunnel-all-dns" => c.policy.tunnel_all_dns = values::boolean(v)?,
        "cisco-client-compat" => c.cisco_client_compat = values::boolean(v)?,
        "compression" => c.compression.enabled = values::boolean(v)?,
        "compression-algo-priority" => {
            crate::compress::negotiate::apply_priority(v, &mut c.compression)
                .map_err(|e| e.to_string())?;
        }
        "no-compress-limit" => {
            let limit = values::number(v, 0, u32::MAX)?;
            c.compression.no_compress_limit =
                limit.max(crate::compress::negotiate::MIN_NO_COMPRESS_LIMIT);
        }
        "rekey-method" => {
            c.rekey_method = match v {
                "ssl" => RekeyMethod::Ssl,
                "new-tunnel" => RekeyMethod::NewTunnel,
                _ => {
                    return Err(format!(
                        "expected `ssl` or `new-tunnel`, found {}",
                        quote(v)
                    ))
                }
            }
        }
        "syslog-facility" => {
            let name = values::unquote(v).to_ascii_lowercase();
            c.syslog_facility = super::SYSLOG_FACILITIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, code)| *code)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        super::SYSLOG_FACILITIES.iter().map(|(n, _)| *n).collect();
                    format!("expected one of {}, found {}", names.join(", "), quote(v))
                })?;
        }
        "log-format" => {
            c.log_format = match values::unquote(v) {
                "text" => super::LogFormat::Text,
                "json" => super::LogFormat::Json,
                _ => return Err(format!("expected `text` or `json`, found {}", quote(v))),
            }
        }
        "log-level" => {
            c.log_level = u8::try_from(values::number(v, 0, 9)?).unwrap_or(u8::MAX);
        }
        "device" => c.device = values::name(v, MAX_DEVICE)?,
        "default-domain" => c.default_domain = values::text(v),
        "banner" | "pre-login-banner" => {
            if v.len() > MAX_BANNER {
                return Err(format!(
                    "is {} bytes long; ocserv allows at most {MAX_BANNER}",
                    v.len()
                ));
            }
            if name == "banner" {
                c.banner = values::text(v);
            } else {
                c.pre_login_banner = values::text(v);
            }
        }
        "mtu" => {
            c.policy.mtu = match values::number(v, 0, 65535)? {
                0 => None,
                n if n < 68 => {
                    return Err(format!(
                        "expected at least 68 (or 0 for the default), found {n}"
                    ))
                }
                n => u16::try_from(n).ok(),
            }
        }
        "dns" => {
            if v == "local" {
                return Err(
                    "the `local` keyword is no longer supported by ocserv; give an address".into(),
                );
            }
            c.policy.dns.push(values::ip(v)?);
        }
        "route" => c.policy.routes.push(values::route(v)?),
        "no-route" => c.policy.no_routes.push(values::route(v)?),
        "ipv4-network" => {
            let (addr, prefix) = values::ipv4_network(v)?;
            s.ipv4 = Some((addr, line));
            if prefix.is_some() {
                s.ipv4_prefix = prefix;
            }
        }
        "ipv4-netmask" => s.ipv4_prefix = Some(values::netmask(v)?),
        "ipv6-network" => {
            let (addr, prefix) = values::ipv6_network(v)?;
            s.ipv6 = Some((addr, line));
            if prefix.is_some() {
                s.ipv6_prefix = prefix;
            }
        }
        "ipv6-prefix" => s.ipv6_prefix = Some(values::ipv6_prefix(v)?),
        // ocserv ignores 0 (the default, 128, stays).
        "ipv6-subnet-prefix" => match values::number(v, 0, 128)? {
            0 => {}
            n => c.policy.ipv6_subnet_prefix = u8::try_from(n).ok(),
        },
        "client-bypass-protocol" => c.policy.client_bypass_protocol = values::boolean(v)?,
        "route-add-cmd" => {
            c.route_add_cmd = Some(route_cmd::RouteCmd::parse(v).map_err(|e| e.to_string())?)
        }
        "route-del-cmd" => {
            c.route_del_cmd = Some(route_cmd::RouteCmd::parse(v).map_err(|e| e.to_string())?)
        }
        "expose-iroutes" => c.expose_iroutes = values::boolean(v)?,
        "camouflage" => c.camouflage_on = values::boolean(v)?,
        "camouflage_secret" => match values::camouflage_secret(v) {
            Ok(secret) => c.camouflage_secret = Some(super::Secret(secret)),
            Err(e) => s.unused_bad.push((line, "camouflage_secret", e)),
        },
        "camouflage_realm" => match values::camouflage_realm(v) {
            Ok(realm) => c.camouflage_realm = realm,
            Err(e) => s.unused_bad.push((line, "camouflage_realm", e)),
        },
        "connect-script" => c.connect_script = Some(values::absolute_path(v)?),
        "disconnect-script" => c.disconnect_script = Some(values::absolute_path(v)?),
        "host-update-script" => c.host_update_script = Some(values::absolute_path(v)?),
        "deny-roaming" => c.policy.deny_roaming = values::boolean(v)?,
        "append-routes" => c.policy.append_routes = values::boolean(v)?,
        "config-per-user" => c.policy_files.per_user_dir = Some(values::absolute_path(v)?),
        "config-per-group" => c.policy_files.per_group_dir = Some(values::absolute_path(v)?),
        "default-user-config" => c.policy_files.default_user = Some(values::absolute_path(v)?),
        "default-group-config" => c.policy_files.default_group = Some(values::absolute_path(v)?),
        "restrict-user-to-routes" => c.policy.restrict_user_to_routes = values::boolean(v)?,
        "restrict-user-to-ports" => {
            c.policy.restrict_user_to_ports = Some(crate::policy::ports::parse(v)?);
        }
        "max-ban-score" => c.max_ban_score = values::number(v, 0, u32::MAX)?,
        "ban-time" => c.ban_time = values::seconds(v)?,
        "ban-reset-time" => c.ban_reset_time = values::seconds(v)?,
        "ban-points-wrong-password" => {
            c.ban_points_wrong_password = values::number(v, 0, u32::MAX)?
        }
        "ban-points-connection" => c.ban_points_connection = values::number(v, 0, u32::MAX)?,
        "ban-points-kkdcp" => c.ban_points_kkdcp = values::number(v, 0, u32::MAX)?,
        "mobile-idle-timeout" => {
            // 0 = never; `None` is kept for "not given" and resolved in `finish`.
            c.policy.mobile_idle_timeout = Some(values::seconds(v)?);
        }
        "select-group" => {
            // The list travels in every worker's start message (64 KiB at most).
            if c.select_groups.len() >= super::MAX_SELECT_GROUPS {
                return Err(format!(
                    "more than {} `select-group` lines",
                    super::MAX_SELECT_GROUPS
                ));
            }
            c.select_groups.push(values::group_choice(v)?)
        }
        "auto-select-group" => c.auto_select_group = values::boolean(v)?,
        "default-select-group" => c.default_select_group = Some(values::group_name(v)?),
        "select-group-by-url" => c.select_group_by_url = values::boolean(v)?,
        "rate-limit-ms" => c.rate_limit_ms = values::number(v, 0, 3_600_000)?,
        "listen-proxy-proto" => c.listen_proxy_proto = values::boolean(v)?,
        // Packets of MTU size; bounded so that MTU x packets fits an int for SO_SNDBUF.
        "output-buffer" => c.output_buffer = values::number(v, 0, 65_536)?,
        "server-stats-reset-time" => c.server_stats_reset_time = values::seconds(v)?,
        "stats-report-time" => c.policy.stats_report_time = values::seconds(v)?,
        "rx-data-per-sec" => c.policy.rx_data_per_sec = values::data_per_sec(v)?,
        "tx-data-per-sec" => c.policy.tx_data_per_sec = values::data_per_sec(v)?,
        "net-priority" => c.policy.net_priority = Some(values::net_priority(v)?),
        "tls-priorities" => {
            let mapped = tls_priorities::map(v)?;
            let mut ignored = mapped.ignored.clone();
            ignored.extend(mapped.unknown.iter().cloned());
            if !ignored.is_empty() {
                let list = ignored
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                sink.warning(
                    line,
                    Some(name),
                    format!("rustls cannot express {list}; ignored"),
                );
            }
            c.tls = mapped.policy;
            s.tls_priorities = Some(v.to_owned());
        }
        "nbns" => c.policy.nbns.push(values::ip(v)?),
        "split-dns" => c.policy.split_dns.push(told::domain(v)?),
        "custom-header" => c.custom_headers.push(told::header_line(v)?),
        "included-http-headers" => {
            // The raw value (see `assign_as`): one pair of surrounding quotes is not part of it.
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(v);
            c.included_http_headers.push(told::header_line(v)?);
        }
        "proxy-url" => c.proxy_url = Some(told::url(v)?),
        "user-profile" => c.user_profile = Some(told::profile_path(v)?),
        "dynamic-split-include-domains" => c
            .dynamic_split_include_domains
            .extend(told::domain_list(v)?),
        "dynamic-split-exclude-domains" => c
            .dynamic_split_exclude_domains
            .extend(told::domain_list(v)?),
        _ => return Err(format!("BUG: no parser for supported option `{name}`")),
    }
    Ok(())
}

/// `route = default` tunnels everything: ocserv drops every other route then.
pub(crate) fn normalise_routes(routes: &mut Vec<Route>) -> bool {
    if routes.contains(&Route::Default) && routes.len() > 1 {
        *routes = vec![Route::Default];
        return true;
    }
    false
}
