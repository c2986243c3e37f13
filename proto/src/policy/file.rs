//! ocserv's per-user and per-group files (`config-per-user`, `config-per-group`,
//! `default-user-config`, `default-group-config`): parsed sans-IO into [`PolicyFile`], then
//! laid over the global policy with [`Policy::resolve`].
//!
//! The syntax is ocserv.conf's (`config/lexer.rs`) and the values are parsed as there. What
//! ocserv does with these files (its `src/sup-config/file.c` and `src/main-sec-mod-cmd.c`):
//! - the group's file is read first, then the user's, into one set of values: a single-valued
//!   option of the user file overrides the group's; list options (`route`, `no-route`, `dns`,
//!   `nbns`, `split-dns`, `iroute`) of both files add up;
//! - each option the files leave unset takes the global (or vhost) value; a list the files
//!   give replaces the global list, except that with `append-routes` the global routes and
//!   no-routes are added after the files' ones;
//! - `default-group-config` / `default-user-config` stand in for a missing group / user file
//!   (the group ones only for a user who has a group).
//!
//! Differences, all on the side of refusing: an unknown option, a section or a bad value is an
//! error (ocserv skips unknown options and misreads bad numbers), and the caller refuses the
//! login (fail closed: these files restrict users). `tunnel-all-dns` is accepted under its
//! documented name as well as ocserv's `tunnel_all_dns` spelling.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{NetPriority, Policy, PortRules};
use crate::config::diag::{quote, Sink};
use crate::config::options::{self, Status};
use crate::config::values::{self, Bad};
use crate::config::{lexer, Diagnostic, IpNet, Route, Severity};

/// The longest file sec-mod reads (panels write a few lines; a huge file is a mistake).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The longest `split-dns` domain or `hostname` (DNS names are at most 253 bytes).
const MAX_NAME: usize = 253;

/// The options one per-user or per-group file sets; `None` / empty where it sets nothing.
/// Field names and meanings as in [`Policy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    pub dns: Vec<IpAddr>,
    pub nbns: Vec<IpAddr>,
    pub split_dns: Vec<String>,
    pub tunnel_all_dns: Option<bool>,
    pub routes: Vec<Route>,
    pub no_routes: Vec<Route>,
    pub iroutes: Vec<IpNet>,
    pub keepalive: Option<u32>,
    pub dpd: Option<u32>,
    pub mobile_dpd: Option<u32>,
    /// `Some(None)`: set to 0 (never) in the file.
    pub idle_timeout: Option<Option<u32>>,
    pub mobile_idle_timeout: Option<Option<u32>>,
    pub session_timeout: Option<Option<u32>>,
    pub stats_report_time: Option<u32>,
    /// `Some(None)`: `mtu = 0`, the default.
    pub mtu: Option<Option<u16>>,
    pub hostname: Option<String>,
    /// `ipv4-network`'s address and its prefix (from `/len` or `ipv4-netmask`), separately:
    /// as in ocserv, either may come from the group file, the user file or the global one.
    pub ipv4_network: Option<Ipv4Addr>,
    pub ipv4_prefix: Option<u8>,
    pub ipv6_network: Option<Ipv6Addr>,
    pub ipv6_prefix: Option<u8>,
    pub ipv6_subnet_prefix: Option<u8>,
    pub explicit_ipv4: Option<Ipv4Addr>,
    pub explicit_ipv6: Option<Ipv6Addr>,
    pub rx_data_per_sec: Option<u64>,
    pub tx_data_per_sec: Option<u64>,
    pub restrict_user_to_routes: Option<bool>,
    pub restrict_user_to_ports: Option<PortRules>,
    pub net_priority: Option<NetPriority>,
    pub deny_roaming: Option<bool>,
    pub no_udp: Option<bool>,
    pub max_same_clients: Option<u32>,
    pub cgroup: Option<String>,
    /// `max-session-time-per-day` (ours), seconds; `Some(None)`: 0, no limit (lifts a
    /// group's). Enforced by sec-mod ([`super::quota`]), not laid over [`super::Policy`].
    pub max_session_time_per_day: Option<Option<u32>>,
    /// `traffic-quota` (ours), bytes both ways per `traffic-quota-period`; `Some(None)`: 0.
    pub traffic_quota: Option<Option<u64>>,
    /// `traffic-quota-period` (ours).
    pub traffic_quota_period: Option<super::quota::Period>,
    /// rocserv only (`allowed-device-id`, one per line): the device ids (`ClientFacts::
    /// device_id`) this user may log in from; empty = any. Enforced by sec-mod at login, not
    /// by main (doc/security/device.md).
    pub allowed_device_ids: Vec<String>,
    /// rocserv only (`allowed-mac`, one per line, normalised `aa:bb:cc:dd:ee:ff`): the client
    /// must report at least one of these MAC addresses; empty = any.
    pub allowed_macs: Vec<String>,
}

/// What sec-mod read for one login, in the order they apply (group first, then user); `None`
/// where there is no such file. Boxed: IPC messages that carry it stay small otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub group: Option<Box<PolicyFile>>,
    pub user: Option<Box<PolicyFile>>,
    /// What the authentication backend granted (RADIUS attributes with `groupconfig`, a
    /// script's answer): laid over the user's file.
    pub auth: Option<Box<PolicyFile>>,
}

/// Where the files are: `config-per-user`, `config-per-group`, `default-user-config`,
/// `default-group-config` (all absolute).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locations {
    pub per_user_dir: Option<PathBuf>,
    pub per_group_dir: Option<PathBuf>,
    pub default_user: Option<PathBuf>,
    pub default_group: Option<PathBuf>,
}

/// Which file to read for a user or a group: the one named after it in the directory, and
/// the default file to use when that one does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub file: Option<PathBuf>,
    pub fallback: Option<PathBuf>,
}

/// A user or group name that cannot name a file inside the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {name} cannot name a file in {dir}")]
pub struct BadName {
    pub kind: &'static str,
    pub name: String,
    pub dir: String,
}

impl Locations {
    /// Nothing configured: no file is ever read.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The group's file (and `default-group-config`); `None` when no group directory is
    /// configured or the user has no group (ocserv reads neither then).
    pub fn group(&self, group: &str) -> Result<Option<Candidate>, BadName> {
        match &self.per_group_dir {
            Some(dir) if !group.is_empty() => Ok(Some(Candidate {
                file: Some(in_dir(dir, group, "group")?),
                fallback: self.default_group.clone(),
            })),
            Some(_) | None => Ok(None),
        }
    }

    /// The user's file (and `default-user-config`); `None` without a user directory.
    pub fn user(&self, user: &str) -> Result<Option<Candidate>, BadName> {
        match &self.per_user_dir {
            Some(dir) => Ok(Some(Candidate {
                file: Some(in_dir(dir, user, "user")?),
                fallback: self.default_user.clone(),
            })),
            None => Ok(None),
        }
    }
}

/// `dir/name`, refusing a name that would leave `dir` or name it (`/`, `.`, `..`, NUL, empty).
fn in_dir(dir: &Path, name: &str, kind: &'static str) -> Result<PathBuf, BadName> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']);
    if bad {
        return Err(BadName {
            kind,
            name: quote(&name.escape_debug().to_string()),
            dir: dir.display().to_string(),
        });
    }
    Ok(dir.join(name))
}

/// A parsed file and what the parser found.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub file: PolicyFile,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when a line is wrong: the login this file is for must be refused.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The first error, for the refusal's log line.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
    }
}

/// Options not applied per user or group yet although the main file's status says otherwise
/// (supported there), or that only these files take (`Scope::PerUser`, whose status in the
/// table is about the main file); a file setting one is accepted with a warning. The owners of
/// those items remove them from here.
const NOT_APPLIED_PER_USER: &[&str] = &[];

/// Parse the text of a per-user or per-group file; `origin` names it in diagnostics.
pub fn parse(source: &str, origin: &str) -> Parsed {
    let mut sink = Sink::new(origin);
    let mut file = PolicyFile::default();
    let mut skipping = false;
    for item in lexer::lex(source, &mut sink) {
        match item {
            lexer::Item::Section { name, line } => {
                sink.error(
                    line,
                    None,
                    format!(
                        "sections ([{name}]) have no place in a per-user or per-group file; \
                         their options would be skipped"
                    ),
                );
                skipping = true;
            }
            lexer::Item::Assign { .. } if skipping => {}
            lexer::Item::Assign { name, value, line } => {
                assign(&mut file, name, values::unquote(value), line, &mut sink);
            }
        }
    }
    Parsed {
        file,
        diagnostics: sink.list,
    }
}

/// One `name = value` line.
fn assign(file: &mut PolicyFile, name: &str, value: &str, line: usize, sink: &mut Sink) {
    // ocserv spells it with underscores in these files; accept both.
    let key = match name {
        "tunnel_all_dns" => "tunnel-all-dns",
        "ipv4-dns" | "ipv6-dns" => "dns",
        "ipv4-nbns" | "ipv6-nbns" => "nbns",
        other => other,
    };
    if !ALLOWED.contains(&key) {
        let hint = if options::lookup(key).is_some() {
            "; it belongs in the main configuration file".to_owned()
        } else {
            options::suggest(key)
                .filter(|s| ALLOWED.contains(s))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default()
        };
        sink.error(
            line,
            Some(name),
            format!("not an option of per-user or per-group files{hint}"),
        );
        return;
    }
    if let Err(message) = set(file, key, value) {
        return sink.error(line, Some(name), message);
    }
    note_status(key, name, value, line, sink);
}

/// Every option ocserv reads in these files (`user-profile` only in its AnyConnect build).
const ALLOWED: &[&str] = &[
    "allowed-device-id",
    "allowed-mac",
    "cgroup",
    "deny-roaming",
    "dns",
    "dpd",
    "explicit-ipv4",
    "explicit-ipv6",
    "hostname",
    "idle-timeout",
    "iroute",
    "ipv4-netmask",
    "ipv4-network",
    "ipv6-network",
    "ipv6-prefix",
    "ipv6-subnet-prefix",
    "keepalive",
    "max-same-clients",
    "max-session-time-per-day",
    "mobile-dpd",
    "mobile-idle-timeout",
    "mtu",
    "nbns",
    "net-priority",
    "no-route",
    "no-udp",
    "restrict-user-to-ports",
    "restrict-user-to-routes",
    "route",
    "rx-data-per-sec",
    "session-timeout",
    "split-dns",
    "stats-report-time",
    "traffic-quota",
    "traffic-quota-period",
    "tunnel-all-dns",
    "tx-data-per-sec",
    "user-profile",
];

/// A value rocserv parsed but does not apply yet: a warning, or an error where ignoring it
/// would give the user access the file takes away (the option's status in the main file
/// decides, so these files follow the options table).
fn note_status(key: &str, name: &str, value: &str, line: usize, sink: &mut Sink) {
    match key {
        "cgroup" => {
            return sink.warning(
                line,
                Some(name),
                "ignored: cgroups are not applied (ocserv 1.5 removed the option too)",
            )
        }
        "user-profile" => {
            return sink.warning(
                line,
                Some(name),
                "not supported yet in these files; ignored",
            )
        }
        _ => {}
    }
    if NOT_APPLIED_PER_USER.contains(&key) {
        return sink.warning(
            line,
            Some(name),
            "not applied per user or group yet; the main file's value is used",
        );
    }
    let Some(spec) = options::lookup(key) else {
        return;
    };
    if spec.scope == options::Scope::PerUser {
        return;
    }
    match Some(spec.status) {
        Some(Status::NotYet { quiet }) if !quiet.iter().any(|q| q.eq_ignore_ascii_case(value)) => {
            sink.warning(line, Some(name), "not supported yet; ignored")
        }
        Some(Status::Refused { safe }) if !safe.iter().any(|s| s.eq_ignore_ascii_case(value)) => {
            sink.error(
                line,
                Some(name),
                "not supported yet, and ignoring it is not safe: it would give the user \
                 access this file takes away",
            )
        }
        _ => {}
    }
}

/// Parse `value` into the field of option `key`.
fn set(f: &mut PolicyFile, key: &str, v: &str) -> Result<(), Bad> {
    match key {
        "dns" => {
            if v == "local" {
                return Err("the `local` keyword is not supported; give an address".into());
            }
            f.dns.push(values::ip(v)?);
        }
        "nbns" => f.nbns.push(values::ip(v)?),
        "split-dns" => f.split_dns.push(domain(v)?),
        "tunnel-all-dns" => f.tunnel_all_dns = Some(values::boolean(v)?),
        "route" => f.routes.push(values::route(v)?),
        "no-route" => f.no_routes.push(values::route(v)?),
        "iroute" => match values::route(v)? {
            Route::Net(net) => f.iroutes.push(net),
            Route::Default => {
                return Err("expected a network such as 192.168.5.0/24, not `default`".into())
            }
        },
        "keepalive" => f.keepalive = Some(values::seconds(v)?),
        "dpd" => f.dpd = Some(values::seconds(v)?),
        "mobile-dpd" => f.mobile_dpd = Some(values::seconds(v)?),
        "idle-timeout" => f.idle_timeout = Some(values::optional_seconds(v)?),
        "mobile-idle-timeout" => f.mobile_idle_timeout = Some(values::optional_seconds(v)?),
        "session-timeout" => f.session_timeout = Some(values::optional_seconds(v)?),
        "stats-report-time" => f.stats_report_time = Some(values::seconds(v)?),
        "mtu" => f.mtu = Some(mtu(v)?),
        "hostname" => f.hostname = Some(hostname(v)?),
        "ipv4-network" => {
            let (addr, prefix) = values::ipv4_network(v)?;
            f.ipv4_network = Some(addr);
            if prefix.is_some() {
                f.ipv4_prefix = prefix;
            }
        }
        "ipv4-netmask" => f.ipv4_prefix = Some(values::netmask(v)?),
        "ipv6-network" => {
            let (addr, prefix) = ipv6_network(v)?;
            f.ipv6_network = Some(addr);
            if prefix.is_some() {
                f.ipv6_prefix = prefix;
            }
        }
        "ipv6-prefix" => f.ipv6_prefix = Some(ipv6_len(v)?),
        "ipv6-subnet-prefix" => f.ipv6_subnet_prefix = Some(ipv6_len(v)?),
        "explicit-ipv4" => {
            f.explicit_ipv4 = Some(
                v.parse()
                    .map_err(|_| format!("expected an IPv4 address, found {}", quote(v)))?,
            )
        }
        "explicit-ipv6" => {
            let bare = v.split_once('/').map_or(v, |(a, _)| a);
            f.explicit_ipv6 = Some(
                bare.parse()
                    .map_err(|_| format!("expected an IPv6 address, found {}", quote(v)))?,
            )
        }
        "rx-data-per-sec" => f.rx_data_per_sec = Some(values::data_per_sec(v)?),
        "tx-data-per-sec" => f.tx_data_per_sec = Some(values::data_per_sec(v)?),
        "restrict-user-to-routes" => f.restrict_user_to_routes = Some(values::boolean(v)?),
        "restrict-user-to-ports" => {
            let rules = super::ports::parse(v)?;
            // ocserv adds the rules of every line up; a mix of `!(...)` and plain lists has
            // no single meaning, so it is refused.
            match &mut f.restrict_user_to_ports {
                Some(old) if old.negated == rules.negated => old.rules.extend(rules.rules),
                Some(_) => {
                    return Err(
                        "mixes a negated `!(...)` list with a plain one; give one kind".into(),
                    )
                }
                None => f.restrict_user_to_ports = Some(rules),
            }
        }
        "net-priority" => f.net_priority = Some(values::net_priority(v)?),
        "deny-roaming" => f.deny_roaming = Some(values::boolean(v)?),
        "no-udp" => f.no_udp = Some(values::boolean(v)?),
        "max-same-clients" => f.max_same_clients = Some(values::number(v, 0, u32::MAX)?),
        "cgroup" => f.cgroup = values::text(v),
        "max-session-time-per-day" => {
            f.max_session_time_per_day = Some(values::optional_seconds(v)?)
        }
        "traffic-quota" => f.traffic_quota = Some(super::quota::parse_bytes(v)?),
        "traffic-quota-period" => f.traffic_quota_period = Some(super::quota::Period::parse(v)?),
        "user-profile" => {}
        "allowed-device-id" => {
            let id = v.trim();
            let fits = id.len() <= crate::ipc::worker_secmod::MAX_FACT;
            if id.is_empty() || !fits || id.chars().any(char::is_control) {
                return Err(format!(
                    "expected a device id of 1 to {} bytes without control characters",
                    crate::ipc::worker_secmod::MAX_FACT
                ));
            }
            f.allowed_device_ids.push(id.to_owned());
        }
        "allowed-mac" => {
            let mac = crate::ipc::worker_secmod::normalize_mac(v).ok_or_else(|| {
                format!(
                    "expected a MAC address such as 00:11:22:33:44:55 (not all zero), found {}",
                    quote(v)
                )
            })?;
            f.allowed_macs.push(mac);
        }
        _ => return Err(format!("BUG: no parser for `{key}`")),
    }
    Ok(())
}

fn mtu(v: &str) -> Result<Option<u16>, Bad> {
    match values::number(v, 0, 65535)? {
        0 => Ok(None),
        n if n < 68 => Err(format!(
            "expected at least 68 (or 0 for the default), found {n}"
        )),
        n => Ok(u16::try_from(n).ok()),
    }
}

/// A DNS name: letters, digits, `-`, `_`, `.`; it goes into a header to the client.
fn domain(v: &str) -> Result<String, Bad> {
    let ok = !v.is_empty()
        && v.len() <= MAX_NAME
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "expected a domain name such as example.com, found {}",
            quote(v)
        ))
    }
}

/// `hostname`: a DNS name (ocserv puts it where the client's `X-CSTP-Hostname` went).
fn hostname(v: &str) -> Result<String, Bad> {
    domain(v).map_err(|_| {
        format!(
            "expected a host name of letters, digits, `-`, `_` and `.`, found {}",
            quote(v)
        )
    })
}

/// `addr` or `addr/len` of an IPv6 network.
fn ipv6_network(v: &str) -> Result<(Ipv6Addr, Option<u8>), Bad> {
    let bad = || {
        format!(
            "expected an IPv6 network such as fd00::/64, found {}",
            quote(v)
        )
    };
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a.trim(), Some(ipv6_len(p.trim()).map_err(|_| bad())?)),
        None => (v, None),
    };
    Ok((addr.parse().map_err(|_| bad())?, prefix))
}

fn ipv6_len(v: &str) -> Result<u8, Bad> {
    let n = values::number(v, 1, 128)?;
    u8::try_from(n).map_err(|_| format!("expected a prefix length, found {}", quote(v)))
}

impl Policy {
    /// The global (or vhost) policy with `overrides` laid over it, as ocserv merges them:
    /// single values backend over user over group over global (the backend layer: `Overrides::auth`); lists of both files added up, replacing
    /// the global list (routes and no-routes: followed by the global ones with
    /// `append-routes`).
    pub fn resolve(&self, overrides: &Overrides) -> Policy {
        let mut p = self.clone();
        let files: Vec<&PolicyFile> = [&overrides.group, &overrides.user, &overrides.auth]
            .into_iter()
            .flatten()
            .map(|f| &**f)
            .collect();
        if files.is_empty() {
            return p;
        }
        let list = |get: fn(&PolicyFile) -> &[Route]| -> Vec<Route> {
            files.iter().flat_map(|f| get(f).iter().copied()).collect()
        };
        let routes = list(|f| &f.routes);
        let no_routes = list(|f| &f.no_routes);
        if self.append_routes {
            p.routes = append(routes, &self.routes);
            p.no_routes = append(no_routes, &self.no_routes);
        } else {
            replace(&mut p.routes, routes);
            replace(&mut p.no_routes, no_routes);
        }
        crate::config::apply::normalise_routes(&mut p.routes);
        replace(
            &mut p.dns,
            files.iter().flat_map(|f| f.dns.iter().copied()).collect(),
        );
        replace(
            &mut p.nbns,
            files.iter().flat_map(|f| f.nbns.iter().copied()).collect(),
        );
        replace(
            &mut p.split_dns,
            files
                .iter()
                .flat_map(|f| f.split_dns.iter().cloned())
                .collect(),
        );
        replace(
            &mut p.iroutes,
            files
                .iter()
                .flat_map(|f| f.iroutes.iter().copied())
                .collect(),
        );
        // A network's address and its prefix may come from different files, or one of them
        // from the main file (as in ocserv, where both are separate strings).
        let last = |get: fn(&PolicyFile) -> Option<IpNet>| files.iter().rev().find_map(|f| get(f));
        let v4_addr = last(|f| f.ipv4_network.map(|a| net(IpAddr::V4(a), 0)));
        let v4_prefix = last(|f| {
            f.ipv4_prefix
                .map(|n| net(IpAddr::V4(Ipv4Addr::UNSPECIFIED), n))
        });
        p.ipv4_network = combine(self.ipv4_network, v4_addr, v4_prefix);
        let v6_addr = last(|f| f.ipv6_network.map(|a| net(IpAddr::V6(a), 0)));
        let v6_prefix = last(|f| {
            f.ipv6_prefix
                .map(|n| net(IpAddr::V6(Ipv6Addr::UNSPECIFIED), n))
        });
        p.ipv6_network = combine(self.ipv6_network, v6_addr, v6_prefix);
        for f in files {
            f.lay_over(&mut p);
        }
        p
    }
}

fn net(addr: IpAddr, prefix: u8) -> IpNet {
    IpNet { addr, prefix }
}

/// The main file's network with the files' address and prefix (each `Some` only when a file
/// gives it) laid over it; unchanged when the result would lack one of the two.
fn combine(global: Option<IpNet>, addr: Option<IpNet>, prefix: Option<IpNet>) -> Option<IpNet> {
    if addr.is_none() && prefix.is_none() {
        return global;
    }
    let addr = addr.or(global).map(|n| n.addr);
    let prefix = prefix.or(global).map(|n| n.prefix);
    match (addr, prefix) {
        (Some(addr), Some(prefix)) => Some(IpNet { addr, prefix }),
        _ => global,
    }
}

/// A list from the files replaces the global one when the files give one.
fn replace<T>(global: &mut Vec<T>, from_files: Vec<T>) {
    if !from_files.is_empty() {
        *global = from_files;
    }
}

/// `append-routes`: the files' entries, then the global ones they do not repeat.
fn append(mut from_files: Vec<Route>, global: &[Route]) -> Vec<Route> {
    for route in global {
        if !from_files.contains(route) {
            from_files.push(*route);
        }
    }
    from_files
}

impl PolicyFile {
    /// This file's single values over `p` (lists are merged by [`Policy::resolve`]).
    fn lay_over(&self, p: &mut Policy) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut p.tunnel_all_dns, &self.tunnel_all_dns);
        set(&mut p.keepalive, &self.keepalive);
        set(&mut p.dpd, &self.dpd);
        set(&mut p.mobile_dpd, &self.mobile_dpd);
        set(&mut p.idle_timeout, &self.idle_timeout);
        set(&mut p.mobile_idle_timeout, &self.mobile_idle_timeout);
        set(&mut p.session_timeout, &self.session_timeout);
        set(&mut p.stats_report_time, &self.stats_report_time);
        set(&mut p.mtu, &self.mtu);
        if self.hostname.is_some() {
            p.hostname.clone_from(&self.hostname);
        }
        if self.ipv6_subnet_prefix.is_some() {
            p.ipv6_subnet_prefix = self.ipv6_subnet_prefix;
        }
        if self.explicit_ipv4.is_some() {
            p.explicit_ipv4 = self.explicit_ipv4;
        }
        if self.explicit_ipv6.is_some() {
            p.explicit_ipv6 = self.explicit_ipv6;
        }
        set(&mut p.rx_data_per_sec, &self.rx_data_per_sec);
        set(&mut p.tx_data_per_sec, &self.tx_data_per_sec);
        set(
            &mut p.restrict_user_to_routes,
            &self.restrict_user_to_routes,
        );
        if self.restrict_user_to_ports.is_some() {
            p.restrict_user_to_ports
                .clone_from(&self.restrict_user_to_ports);
        }
        if self.net_priority.is_some() {
            p.net_priority = self.net_priority;
        }
        set(&mut p.deny_roaming, &self.deny_roaming);
        set(&mut p.no_udp, &self.no_udp);
        set(&mut p.max_same_clients, &self.max_same_clients);
        if self.cgroup.is_some() {
            p.cgroup.clone_from(&self.cgroup);
        }
    }
}
