//! Real configuration files: Debian's packaged ocserv.conf, the benchmark's, our own
//! every-option fixture and the annotated example at the repository root.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rocserv_proto::config::{options, parse, AuthMethod, IpNet, Parsed, Route, Severity};

const DEBIAN: &str = include_str!("vectors/config/debian-ocserv.conf");
const BENCH: &str = include_str!("vectors/config/bench-ocserv.conf");
const EVERY: &str = include_str!("vectors/config/every-option.conf");
const EXAMPLE: &str = include_str!("../../ocserv.conf.example");

fn errors(parsed: &Parsed) -> Vec<String> {
    parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

fn v4net(a: [u8; 4], prefix: u8) -> IpNet {
    IpNet {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        prefix,
    }
}

/// Debian ships the certificate lines commented out; `ocserv -t` on that file says
/// "the 'server-cert' and 'server-key' configuration options must be specified", and so do we.
/// Nothing else in the file is an error.
#[test]
fn debian_as_shipped_only_lacks_the_certificate() {
    let parsed = parse(DEBIAN, "debian.conf");
    assert_eq!(
        errors(&parsed),
        [
            "debian.conf:0: error: server-cert: no server certificate; add `server-cert = /etc/ocserv/server-cert.pem`",
            "debian.conf:0: error: server-key: no server key; add `server-key = /etc/ocserv/server-key.pem`",
        ]
    );
}

#[test]
fn debian_with_certificate_has_no_errors() {
    let text = format!(
        "{DEBIAN}\nserver-cert = /etc/ocserv/server-cert.pem\nserver-key = /etc/ocserv/server-key.pem\n"
    );
    let parsed = parse(&text, "debian.conf");
    assert_eq!(errors(&parsed), Vec::<String>::new());
    let c = &parsed.config;
    assert_eq!(
        c.auth.primary(),
        Some(&AuthMethod::Plain {
            passwd: Some("/etc/ocserv/passwd".into()),
            otp: None,
        })
    );
    assert_eq!(c.tcp_port, 443);
    assert_eq!(c.udp_port, Some(443));
    assert_eq!(c.run_as_user.as_deref(), Some("ocserv"));
    assert_eq!(c.max_clients, 16);
    assert_eq!(c.policy.max_same_clients, 2);
    assert_eq!(c.policy.dpd, 90);
    assert!(c.tls.tls12);
    assert!(!c.tls.tls13, "Debian's string has -VERS-TLS1.3");
    assert!(c.tls.server_precedence);
    assert_eq!(c.policy.ipv4_network, Some(v4net([192, 168, 1, 0], 24)));
    assert_eq!(c.policy.dns, [IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))]);
    assert_eq!(c.policy.routes.len(), 3);
    assert_eq!(
        c.policy.routes.first(),
        Some(&Route::Net(v4net([10, 0, 0, 0], 8)))
    );
    assert!(c.cisco_client_compat);
    assert_eq!(c.pid_file.as_deref(), Some(Path::new("/run/ocserv.pid")));
    // Not-yet-supported options are warnings that name their line.
    let chroot = parsed
        .diagnostics
        .iter()
        .find(|d| d.option.as_deref() == Some("chroot-dir"))
        .unwrap();
    assert_eq!(chroot.severity, Severity::Warning);
    assert!(chroot.line > 0);
}

#[test]
fn bench_config_has_no_errors() {
    let parsed = parse(BENCH, "bench.conf");
    assert_eq!(errors(&parsed), Vec::<String>::new());
    let c = &parsed.config;
    assert_eq!(
        c.auth.primary(),
        Some(&AuthMethod::Plain {
            passwd: Some("/srv/vpnbench/pki/ocpasswd".into()),
            otp: None,
        })
    );
    assert_eq!(c.max_clients, 1024);
    assert_eq!(c.run_as_group.as_deref(), Some("nogroup"));
    assert_eq!(
        c.occtl_socket_file.as_deref(),
        Some(Path::new("/tmp/vpnbench/occtl.socket"))
    );
    assert!(c.tls.tls12 && c.tls.tls13);
    assert_eq!(c.policy.ipv4_network, Some(v4net([192, 168, 99, 0], 24)));
    assert_eq!(c.policy.routes, [Route::Net(v4net([192, 168, 99, 0], 24))]);
    assert_eq!(c.default_domain.as_deref(), Some("vpn.test"));
    // max-ban-score = 0 and compression = false ask for what we do anyway: no warning.
    for quiet in [
        "max-ban-score",
        "compression",
        "try-mtu-discovery",
        "rate-limit-ms",
    ] {
        assert!(
            !parsed
                .diagnostics
                .iter()
                .any(|d| d.option.as_deref() == Some(quiet)),
            "{quiet}"
        );
    }
}

#[test]
fn every_option_fixture_covers_the_table() {
    for option in options::all() {
        let prefix = format!("\n{} =", option.name);
        assert!(EVERY.contains(&prefix), "fixture lacks {}", option.name);
    }
}

#[test]
fn every_option_fixture_errors_only_on_refused_options() {
    let parsed = parse(EVERY, "every.conf");
    let marker = EVERY
        .lines()
        .position(|l| l.starts_with("# --- refused"))
        .unwrap()
        .saturating_add(1);
    let mut errored: Vec<usize> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.line)
        .collect();
    errored.sort_unstable();
    let expected: Vec<usize> = EVERY
        .lines()
        .enumerate()
        .skip(marker)
        .filter(|(_, l)| l.contains(" = "))
        .map(|(i, _)| i.saturating_add(1))
        .collect();
    assert_eq!(errored, expected, "{:#?}", parsed.diagnostics);
    let c = &parsed.config;
    assert_eq!(
        c.auth.primary(),
        Some(&AuthMethod::Pam {
            gid_min: 1000,
            service: "ocserv".into()
        })
    );
    assert_eq!(
        c.listen_host,
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    );
    assert_eq!(
        c.policy.dns.len(),
        3,
        "dns, ipv4-dns and ipv6-dns all add servers"
    );
    assert_eq!((c.auth_timeout, c.handshake_timeout), (120, 10));
    assert_eq!(c.device, "tun-vpn");
    assert!(
        !c.cisco_client_compat,
        "always-require-cert = true keeps it off"
    );
    let vhost = c.vhosts.first().unwrap();
    assert_eq!(vhost.name, "vpn2.example.net");
    assert_eq!(vhost.config.policy.routes, [Route::Default]);
    assert_eq!(
        vhost.config.policy.ipv4_network,
        Some(v4net([10, 78, 0, 0], 24))
    );
    assert_eq!(
        vhost.config.log_level, 3,
        "inherited from the global section"
    );
}

#[test]
fn example_config_is_clean() {
    let parsed = parse(EXAMPLE, "ocserv.conf.example");
    let all: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(all, Vec::<String>::new());
    assert!(parsed.config.auth.primary().is_some());
    // Metrics name users: the example keeps them on loopback (doc/security/metrics.md).
    let metrics = parsed
        .config
        .metrics_listen
        .expect("metrics-listen in the example");
    assert!(metrics.ip().is_loopback(), "{metrics}");
    // Only supported options appear in the example.
    for line in EXAMPLE.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let name = line.split('=').next().unwrap().trim();
        let spec = options::lookup(name).unwrap();
        assert_eq!(spec.status, options::Status::Supported, "{name}");
    }
}
