//! After the last line: defaults that depend on other options, mandatory options, and the
//! vhosts put together (ocserv `check_cfg` in `src/config.c` does the same checks).

use std::net::{IpAddr, Ipv6Addr};

use super::apply::{normalise_routes, Section};
use super::diag::Sink;
use super::{tls_priorities, Config, IpNet, Parsed, VHost};

/// Build the final configuration from the global section and the vhosts.
pub(crate) fn finish(global: Section, vhosts: Vec<Section>, mut sink: Sink) -> Parsed {
    let mut config = complete(global, &mut sink);
    for section in vhosts {
        let name = section.vhost.clone().unwrap_or_default();
        let line = section.line;
        let vhost = complete(section, &mut sink);
        config.vhosts.push(VHost {
            name,
            line,
            config: Box::new(vhost),
        });
    }
    Parsed {
        config,
        diagnostics: sink.list,
    }
}

fn complete(section: Section, sink: &mut Sink) -> Config {
    let place = section
        .vhost
        .as_ref()
        .map(|n| format!("in [vhost:{n}]: "))
        .unwrap_or_default();
    let mobile_idle_given = section.seen_at("mobile-idle-timeout").is_some();
    let subnet_line = section.seen_at("ipv6-subnet-prefix");
    let camouflage_lines = (
        section.seen_at("camouflage").unwrap_or(0),
        section.seen_at("camouflage_secret").unwrap_or(0),
    );
    let lines = section_lines(&section);
    let unused_bad = section.unused_bad;
    let mut c = section.config;
    c.option_lines = section.seen.clone();
    if c.auth.required.is_empty() {
        sink.error(
            0,
            Some("auth"),
            format!(
                "{place}no authentication method; add e.g. \
                 `auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"`"
            ),
        );
    }
    // Bad values of options that matter only with their feature: errors then, silence
    // otherwise (ocserv ignores them; a warning would say the file behaves differently here).
    let in_use = |option: &str| {
        if option.starts_with("cert-") {
            c.auth.wants_certificate()
        } else {
            c.camouflage_on
        }
    };
    let mut bad_options = Vec::new();
    for (line, option, message) in &unused_bad {
        if in_use(option) {
            sink.error(*line, Some(option), format!("{place}{message}"));
            bad_options.push(*option);
        }
    }
    if !bad_options.contains(&"cert-user-oid") {
        cert_auth(&lines, &mut c, &place, sink);
    } else {
        c.auth.cert = None;
    }
    if c.server_cert.is_none() {
        sink.error(
            0,
            Some("server-cert"),
            format!(
                "{place}no server certificate; add `server-cert = /etc/ocserv/server-cert.pem`"
            ),
        );
    }
    if c.server_key.is_none() {
        sink.error(
            0,
            Some("server-key"),
            format!("{place}no server key; add `server-key = /etc/ocserv/server-key.pem`"),
        );
    }
    if section.certs > 0 && section.keys > 0 && section.certs != section.keys {
        sink.error(
            0,
            Some("server-key"),
            format!(
                "{place}{} server-cert but {} server-key lines; each certificate needs its key",
                section.certs, section.keys
            ),
        );
    }
    match (section.ipv4, section.ipv4_prefix) {
        (Some((addr, _)), Some(prefix)) => {
            c.policy.ipv4_network = Some(IpNet {
                addr: IpAddr::V4(addr),
                prefix,
            });
        }
        (Some((_, line)), None) => sink.error(
            line,
            Some("ipv4-network"),
            format!(
                "{place}no netmask; add `ipv4-netmask = 255.255.255.0` or write the network \
                 as a.b.c.d/24"
            ),
        ),
        (None, _) if section.ipv6.is_none() => sink.error(
            0,
            Some("ipv4-network"),
            format!("{place}no address pool for clients; set `ipv4-network` or `ipv6-network`"),
        ),
        (None, _) => {}
    }
    ipv6_pool(
        section.ipv6,
        section.ipv6_prefix,
        subnet_line,
        &mut c,
        &place,
        sink,
    );
    if normalise_routes(&mut c.policy.routes) {
        sink.warning(
            0,
            Some("route"),
            format!(
                "{place}`route = default` tunnels everything, so the other routes are dropped \
                 (as ocserv does)"
            ),
        );
    }
    if !bad_options.contains(&"camouflage_secret") {
        camouflage(&c, camouflage_lines, &place, sink);
    }
    if section.tls_priorities.is_none() {
        c.tls = implicit_tls(&c);
    }
    // ocserv: an unset mobile-idle-timeout is idle-timeout; 0 means never.
    c.policy.mobile_idle_timeout = if mobile_idle_given {
        c.policy.mobile_idle_timeout.filter(|s| *s != 0)
    } else {
        c.policy.idle_timeout
    };
    // ocserv: a mobile-dpd of 0 falls back to dpd.
    if c.policy.mobile_dpd == 0 {
        c.policy.mobile_dpd = c.policy.dpd;
    }
    c
}

/// Lines of the options the certificate checks name.
struct Lines {
    auth: usize,
}

fn section_lines(section: &Section) -> Lines {
    Lines {
        auth: section
            .seen_at("auth")
            .or_else(|| section.seen_at("enable-auth"))
            .unwrap_or(0),
    }
}

/// The `certificate` method's settings (`AuthPlan::cert`); like ocserv's `check_cfg`, a
/// certificate method without `ca-cert` or `cert-user-oid` is an error (nobody could log in).
fn cert_auth(lines: &Lines, c: &mut Config, place: &str, sink: &mut Sink) {
    c.auth.cert = None;
    // Without a `certificate` method ocserv reads neither OID either: nothing to say.
    if !c.auth.wants_certificate() {
        return;
    }
    let Some(ca_cert) = c.ca_cert.clone() else {
        sink.error(
            lines.auth,
            Some("auth"),
            format!(
                "{place}`certificate` needs the CA that issues client certificates: add \
                 `ca-cert = /etc/ocserv/ca.pem`"
            ),
        );
        return;
    };
    let Some(user) = c.cert_user_oid.clone() else {
        sink.error(
            lines.auth,
            Some("auth"),
            format!(
                "{place}`certificate` needs `cert-user-oid` (where the certificate names the \
                 user), e.g. `cert-user-oid = 0.9.2342.19200300.100.1.1` (UID) or `2.5.4.3` (CN)"
            ),
        );
        return;
    };
    c.auth.cert = Some(Box::new(super::CertAuth {
        ca_cert,
        crl: c.crl.clone(),
        user,
        group: c.cert_group_oid.clone(),
    }));
}

/// `ipv6-network` with its prefix (from either option) and `ipv6-subnet-prefix`, which must be
/// longer than the network's (ocserv `check_cfg` refuses to start otherwise).
fn ipv6_pool(
    network: Option<(Ipv6Addr, usize)>,
    prefix: Option<u8>,
    subnet_line: Option<usize>,
    c: &mut Config,
    place: &str,
    sink: &mut Sink,
) {
    let Some((addr, line)) = network else {
        return;
    };
    let Some(prefix) = prefix else {
        sink.error(
            line,
            Some("ipv6-network"),
            format!("{place}no prefix; add `ipv6-prefix = 64` or write the network as fd00:1::/64"),
        );
        return;
    };
    let subnet = c.policy.ipv6_subnet_prefix.unwrap_or(128);
    if subnet <= prefix {
        let line = subnet_line.unwrap_or(line);
        sink.error(
            line,
            Some("ipv6-subnet-prefix"),
            format!(
                "{place}the subnet prefix (/{subnet}) must be longer than the network's (/{prefix})"
            ),
        );
        return;
    }
    c.policy.ipv6_network = Some(IpNet {
        addr: IpAddr::V6(addr),
        prefix,
    });
}

/// Without `tls-priorities` ocserv uses its built-in string, minus TLS 1.3 for
/// `cisco-client-compat` (ocserv issue #318: AnyConnect fails with TLS 1.3).
fn implicit_tls(c: &Config) -> super::TlsPolicy {
    let mut policy = tls_priorities::map(tls_priorities::OCSERV_DEFAULT)
        .map(|m| m.policy)
        .unwrap_or_default();
    if c.cisco_client_compat {
        policy.tls13 = false;
    }
    policy
}

/// A secret shorter than this is worth a warning: every guess costs a scanner one connection
/// (and its ban points), but a short one is still guessed.
const SHORT_CAMOUFLAGE_SECRET: usize = 16;

/// `camouflage = true` needs its secret: ocserv starts without one and then refuses every
/// client that has no cookie yet, which is never what the administrator meant.
fn camouflage(c: &Config, (on_line, secret_line): (usize, usize), place: &str, sink: &mut Sink) {
    if !c.camouflage_on {
        return;
    }
    match &c.camouflage_secret {
        None => sink.error(
            on_line,
            Some("camouflage"),
            format!(
                "{place}`camouflage = true` needs `camouflage_secret`: clients connect to \
                 https://HOST/?SECRET"
            ),
        ),
        Some(secret) if secret.0.len() < SHORT_CAMOUFLAGE_SECRET => sink.warning(
            secret_line,
            Some("camouflage_secret"),
            format!(
                "{place}shorter than {SHORT_CAMOUFLAGE_SECRET} characters: scanners may guess \
                 it; a long random string hides the server better"
            ),
        ),
        Some(_) => {}
    }
}
