//! Per-user and per-group files: the parser (vectors, diagnostics naming file, line and
//! option) and the merge over the global policy (every precedence case, table-driven).
// Test helpers outside #[test] functions may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use rocserv_proto::config::options::{self, Status};
use rocserv_proto::config::{IpNet, Route, Severity};
use rocserv_proto::policy::file::{self, Locations};
use rocserv_proto::policy::{NetPriority, Overrides, Policy, PolicyFile};

fn ok(text: &str) -> PolicyFile {
    let parsed = file::parse(text, "/etc/ocserv/users/u");
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed.file
}

fn errors(text: &str) -> Vec<String> {
    file::parse(text, "/etc/ocserv/users/u")
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

fn net(s: &str) -> Route {
    let (a, p) = s.split_once('/').unwrap();
    Route::Net(IpNet {
        addr: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_option_parses() {
    let f = ok("\
# a panel-written file
dns = 10.0.0.53
ipv6-dns = fd00::53
ipv4-nbns = 10.0.0.54
split-dns = corp.example.com
tunnel_all_dns = true
route = 10.1.0.0/255.255.0.0
route = 10.2.0.0/16
  10.3.0.0/16
no-route = 10.1.5.0/24
iroute = 192.168.77.0/24
keepalive = 10
dpd = 20
mobile-dpd = 30
idle-timeout = 0
mobile-idle-timeout = 600
session-timeout = 3600
stats-report-time = 120
mtu = 1300
hostname = laptop-7
ipv4-network = 192.168.9.0
ipv4-netmask = 255.255.255.0
ipv6-network = fd00:9::/48
ipv6-subnet-prefix = 64
explicit-ipv4 = 192.168.9.7
explicit-ipv6 = fd00:9::7
rx-data-per-sec = 1000000
tx-data-per-sec = 2000000
restrict-user-to-routes = false
net-priority = 0x10
deny-roaming = yes
no-udp = \"true\"
max-same-clients = 2
cgroup = cpu:test
");
    assert_eq!(f.dns, vec![ip("10.0.0.53"), ip("fd00::53")]);
    assert_eq!(f.nbns, vec![ip("10.0.0.54")]);
    assert_eq!(f.split_dns, vec!["corp.example.com".to_owned()]);
    assert_eq!(f.tunnel_all_dns, Some(true));
    assert_eq!(
        f.routes,
        vec![net("10.1.0.0/16"), net("10.2.0.0/16"), net("10.3.0.0/16")]
    );
    assert_eq!(f.no_routes, vec![net("10.1.5.0/24")]);
    assert_eq!(
        f.iroutes,
        vec![IpNet {
            addr: ip("192.168.77.0"),
            prefix: 24
        }]
    );
    assert_eq!(
        (f.keepalive, f.dpd, f.mobile_dpd),
        (Some(10), Some(20), Some(30))
    );
    assert_eq!(f.idle_timeout, Some(None));
    assert_eq!(f.mobile_idle_timeout, Some(Some(600)));
    assert_eq!(f.session_timeout, Some(Some(3600)));
    assert_eq!(f.stats_report_time, Some(120));
    assert_eq!(f.mtu, Some(Some(1300)));
    assert_eq!(f.hostname.as_deref(), Some("laptop-7"));
    assert_eq!(f.ipv4_network, Some("192.168.9.0".parse().unwrap()));
    assert_eq!(f.ipv4_prefix, Some(24));
    assert_eq!(f.ipv6_network, Some("fd00:9::".parse().unwrap()));
    assert_eq!(f.ipv6_prefix, Some(48));
    assert_eq!(f.ipv6_subnet_prefix, Some(64));
    assert_eq!(f.explicit_ipv4, Some("192.168.9.7".parse().unwrap()));
    assert_eq!(f.explicit_ipv6, Some("fd00:9::7".parse().unwrap()));
    assert_eq!(
        (f.rx_data_per_sec, f.tx_data_per_sec),
        (Some(1_000_000), Some(2_000_000))
    );
    assert_eq!(f.restrict_user_to_routes, Some(false));
    assert_eq!(f.net_priority, Some(NetPriority::Tos(0x10)));
    assert_eq!(f.deny_roaming, Some(true));
    assert_eq!(f.no_udp, Some(true));
    assert_eq!(f.max_same_clients, Some(2));
    assert_eq!(f.cgroup.as_deref(), Some("cpu:test"));
}

#[test]
fn empty_and_comment_only_files_set_nothing() {
    assert_eq!(ok(""), PolicyFile::default());
    assert_eq!(ok("# nothing\n; nothing\n\n"), PolicyFile::default());
    assert_eq!(ok("tunnel-all-dns = false\n").tunnel_all_dns, Some(false));
    assert_eq!(
        ok("net-priority = 3\n").net_priority,
        Some(NetPriority::Priority(3))
    );
    assert_eq!(ok("mtu = 0\n").mtu, Some(None));
}

#[test]
fn bad_lines_are_errors_naming_file_line_and_option() {
    let cases: &[(&str, &str)] = &[
        ("dpd = 90\nfoo = 1\n", "/etc/ocserv/users/u:2: error: foo: not an option of per-user or per-group files"),
        ("dpd = 9O\n", "/etc/ocserv/users/u:1: error: dpd: expected a number of seconds"),
        ("\n\nroute = 10.0.0.0/33\n", "/etc/ocserv/users/u:3: error: route: expected"),
        ("dns = local\n", "/etc/ocserv/users/u:1: error: dns: the `local` keyword"),
        ("no-udp = maybe\n", "/etc/ocserv/users/u:1: error: no-udp: expected `true` or `false`"),
        ("max-clients = 3\n", "/etc/ocserv/users/u:1: error: max-clients: not an option of per-user or per-group files; it belongs in the main configuration file"),
        ("idle-timout = 3\n", "/etc/ocserv/users/u:1: error: idle-timout: not an option of per-user or per-group files; did you mean `idle-timeout`?"),
        ("iroute = default\n", "/etc/ocserv/users/u:1: error: iroute: expected a network"),
        ("mtu = 60\n", "/etc/ocserv/users/u:1: error: mtu: expected at least 68"),
        ("hostname = a b\n", "/etc/ocserv/users/u:1: error: hostname: expected a host name"),
        ("split-dns = \"x;y\"\n", "/etc/ocserv/users/u:1: error: split-dns: expected a domain name"),
        ("net-priority = 7\n", "/etc/ocserv/users/u:1: error: net-priority: expected a priority"),
        ("explicit-ipv4 = 10.0.0.300\n", "/etc/ocserv/users/u:1: error: explicit-ipv4: expected an IPv4 address"),
        ("rx-data-per-sec = -1\n", "/etc/ocserv/users/u:1: error: rx-data-per-sec: expected a number of bytes"),
        ("[vhost:x]\ndpd = 1\n", "/etc/ocserv/users/u:1: error: sections ([vhost:x]) have no place"),
        ("dpd\n", "/etc/ocserv/users/u:1: error: expected `option = value`"),
        ("route = 10.0.0.0/8\n  dns = 1.1.1.1\n", "/etc/ocserv/users/u:2: error: route: this indented line continues"),
        ("traffic-quota = 1.5G\n", "/etc/ocserv/users/u:1: error: traffic-quota: expected a number of bytes"),
        ("traffic-quota-period = year\n", "/etc/ocserv/users/u:1: error: traffic-quota-period: expected `day`, `week` or `month`"),
        ("max-session-time-per-day = 1h\n", "/etc/ocserv/users/u:1: error: max-session-time-per-day: expected a number of seconds"),
    ];
    for (text, want) in cases {
        let got = errors(text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{text:?}: wanted {want:?}, got {got:?}"
        );
    }
}

#[test]
fn options_refused_in_the_main_file_are_refused_here_too() {
    // Ignoring a restriction would give the user access the file takes away: while the main
    // file refuses the option, a per-user file setting it refuses the login.
    for (option, value) in [
        ("restrict-user-to-routes", "true"),
        ("restrict-user-to-ports", "tcp(443)"),
    ] {
        let refused_in_main = matches!(
            options::lookup(option).map(|o| o.status),
            Some(Status::Refused { .. })
        );
        let errs = errors(&format!("{option} = {value}\n"));
        if refused_in_main {
            assert!(
                errs.iter().any(|e| e.contains(option)),
                "{option}: {errs:?}"
            );
        }
    }
    assert!(errors("restrict-user-to-routes = false\n").is_empty());
}

#[test]
fn not_yet_options_warn() {
    let parsed = file::parse("cgroup = x\nuser-profile = /p.xml\n", "f");
    assert!(!parsed.has_errors());
    assert_eq!(parsed.diagnostics.len(), 2, "{:?}", parsed.diagnostics);
    // Applied per user: no warning (the table's status of per-user options is about the main
    // file, where they are ignored).
    let parsed = file::parse("hostname = pc\nexplicit-ipv6 = fd00::9\ndpd = 3\n", "f");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
}

#[test]
fn names_cannot_leave_the_directory() {
    let loc = Locations {
        per_user_dir: Some("/etc/ocserv/users".into()),
        per_group_dir: Some("/etc/ocserv/groups".into()),
        default_user: Some("/etc/ocserv/user.conf".into()),
        default_group: None,
    };
    for bad in ["", ".", "..", "../etc/shadow", "a/b", "/abs", "a\0b"] {
        assert!(loc.user(bad).is_err(), "{bad:?}");
        if !bad.is_empty() {
            assert!(loc.group(bad).is_err(), "{bad:?}");
        }
    }
    let user = loc.user("alice").unwrap().unwrap();
    assert_eq!(
        user.file.unwrap(),
        std::path::Path::new("/etc/ocserv/users/alice")
    );
    assert_eq!(
        user.fallback.unwrap(),
        std::path::Path::new("/etc/ocserv/user.conf")
    );
    // ..hidden and dotted names stay inside.
    assert!(loc.user("..alice").is_ok() && loc.user("a.b").is_ok());
    // No group: no group file and no default-group-config (as ocserv).
    assert_eq!(loc.group("").unwrap(), None);
    assert_eq!(Locations::default().user("alice").unwrap(), None);
}

/// The global policy of the precedence table.
fn global() -> Policy {
    Policy {
        dns: vec![ip("10.0.0.1")],
        nbns: vec![ip("10.0.0.2")],
        split_dns: vec!["global.example".into()],
        routes: vec![net("10.0.0.0/8")],
        no_routes: vec![net("10.9.0.0/16")],
        keepalive: 100,
        dpd: 200,
        mobile_dpd: 300,
        idle_timeout: Some(400),
        mobile_idle_timeout: Some(400),
        session_timeout: None,
        mtu: Some(1400),
        ipv4_network: Some(IpNet {
            addr: ip("192.168.1.0"),
            prefix: 24,
        }),
        deny_roaming: true,
        ..Policy::default()
    }
}

#[test]
fn precedence_and_merging() {
    type Check = fn(&Policy);
    /// Name, `append-routes`, group file, user file, what the effective policy must be.
    type Case = (
        &'static str,
        bool,
        Option<&'static str>,
        Option<&'static str>,
        Check,
    );
    let cases: &[Case] = &[
        ("no files: global", false, None, None, |p| {
            assert_eq!(*p, global())
        }),
        ("empty files: global", false, Some(""), Some(""), |p| {
            assert_eq!(*p, global())
        }),
        (
            "group scalar over global",
            false,
            Some("dpd = 5"),
            None,
            |p| assert_eq!(p.dpd, 5),
        ),
        (
            "user scalar over global",
            false,
            None,
            Some("dpd = 6"),
            |p| assert_eq!(p.dpd, 6),
        ),
        (
            "user scalar over group",
            false,
            Some("dpd = 5"),
            Some("dpd = 6"),
            |p| assert_eq!(p.dpd, 6),
        ),
        (
            "group scalar kept when user sets another",
            false,
            Some("dpd = 5"),
            Some("keepalive = 7"),
            |p| {
                assert_eq!((p.dpd, p.keepalive, p.mobile_dpd), (5, 7, 300));
            },
        ),
        (
            "user false over group true over global",
            false,
            Some("no-udp = true"),
            Some("no-udp = false"),
            |p| {
                assert!(!p.no_udp);
            },
        ),
        (
            "user deny-roaming false over global true",
            false,
            None,
            Some("deny-roaming = false"),
            |p| {
                assert!(!p.deny_roaming);
            },
        ),
        (
            "0 in a file means never, over a global limit",
            false,
            None,
            Some("idle-timeout = 0"),
            |p| {
                assert_eq!(p.idle_timeout, None);
                // mobile-idle-timeout keeps the global value (ocserv: its own option).
                assert_eq!(p.mobile_idle_timeout, Some(400));
            },
        ),
        (
            "session-timeout from the group",
            false,
            Some("session-timeout = 60"),
            None,
            |p| {
                assert_eq!(p.session_timeout, Some(60));
            },
        ),
        (
            "mtu 0 in a file: the default",
            false,
            None,
            Some("mtu = 0"),
            |p| assert_eq!(p.mtu, None),
        ),
        (
            "group routes replace global",
            false,
            Some("route = 10.1.0.0/16"),
            None,
            |p| {
                assert_eq!(p.routes, vec![net("10.1.0.0/16")]);
                assert_eq!(p.no_routes, vec![net("10.9.0.0/16")]);
            },
        ),
        (
            "group and user routes add up",
            false,
            Some("route = 10.1.0.0/16"),
            Some("route = 10.2.0.0/16"),
            |p| {
                assert_eq!(p.routes, vec![net("10.1.0.0/16"), net("10.2.0.0/16")]);
            },
        ),
        (
            "files without routes keep global routes",
            false,
            Some("dpd = 1"),
            Some("dpd = 2"),
            |p| {
                assert_eq!(p.routes, vec![net("10.0.0.0/8")]);
            },
        ),
        (
            "no-route replaces global no-route",
            false,
            None,
            Some("no-route = 10.8.0.0/16"),
            |p| {
                assert_eq!(p.no_routes, vec![net("10.8.0.0/16")]);
                assert_eq!(p.routes, vec![net("10.0.0.0/8")]);
            },
        ),
        (
            "append-routes: files then global",
            true,
            Some("route = 10.1.0.0/16"),
            Some("route = 10.0.0.0/8\nno-route = 10.8.0.0/16"),
            |p| {
                assert_eq!(p.routes, vec![net("10.1.0.0/16"), net("10.0.0.0/8")]);
                assert_eq!(p.no_routes, vec![net("10.8.0.0/16"), net("10.9.0.0/16")]);
            },
        ),
        (
            "append-routes without file routes: global once",
            true,
            None,
            Some("dpd = 1"),
            |p| {
                assert_eq!(p.routes, vec![net("10.0.0.0/8")]);
                assert_eq!(p.no_routes, vec![net("10.9.0.0/16")]);
            },
        ),
        (
            "append-routes does not append DNS",
            true,
            None,
            Some("dns = 10.5.5.5"),
            |p| {
                assert_eq!(p.dns, vec![ip("10.5.5.5")]);
            },
        ),
        (
            "route default in a file tunnels everything",
            false,
            Some("route = 10.1.0.0/16"),
            Some("route = default"),
            |p| {
                assert_eq!(p.routes, vec![Route::Default]);
            },
        ),
        (
            "dns, nbns, split-dns: files replace global",
            false,
            Some("dns = 10.5.5.5\nnbns = 10.6.6.6"),
            Some("dns = 10.7.7.7\nsplit-dns = u.example"),
            |p| {
                assert_eq!(p.dns, vec![ip("10.5.5.5"), ip("10.7.7.7")]);
                assert_eq!(p.nbns, vec![ip("10.6.6.6")]);
                assert_eq!(p.split_dns, vec!["u.example".to_owned()]);
            },
        ),
        (
            "dns from files only when given",
            false,
            Some("dpd = 1"),
            None,
            |p| {
                assert_eq!(p.dns, vec![ip("10.0.0.1")]);
                assert_eq!(p.split_dns, vec!["global.example".to_owned()]);
            },
        ),
        (
            "iroutes of both files",
            false,
            Some("iroute = 192.168.5.0/24"),
            Some("iroute = 192.168.6.0/24"),
            |p| {
                assert_eq!(p.iroutes.len(), 2);
            },
        ),
        (
            "network from user, netmask from group",
            false,
            Some("ipv4-netmask = 255.255.0.0"),
            Some("ipv4-network = 172.16.0.0"),
            |p| {
                assert_eq!(
                    p.ipv4_network,
                    Some(IpNet {
                        addr: ip("172.16.0.0"),
                        prefix: 16
                    })
                );
            },
        ),
        (
            "network with prefix in the user file",
            false,
            None,
            Some("ipv4-network = 172.16.0.0/20"),
            |p| {
                assert_eq!(
                    p.ipv4_network,
                    Some(IpNet {
                        addr: ip("172.16.0.0"),
                        prefix: 20
                    })
                );
            },
        ),
        (
            "netmask alone keeps the global address",
            false,
            None,
            Some("ipv4-netmask = 255.255.255.128"),
            |p| {
                assert_eq!(
                    p.ipv4_network,
                    Some(IpNet {
                        addr: ip("192.168.1.0"),
                        prefix: 25
                    })
                );
            },
        ),
        (
            "hostname and limits from the user",
            false,
            Some("max-same-clients = 4\nrx-data-per-sec = 5"),
            Some("hostname = pc1\nmax-same-clients = 1"),
            |p| {
                assert_eq!(p.hostname.as_deref(), Some("pc1"));
                assert_eq!((p.max_same_clients, p.rx_data_per_sec), (1, 5));
            },
        ),
        (
            "ipv6 network from the user, prefix from the group",
            false,
            Some("ipv6-prefix = 56"),
            Some("ipv6-network = fd00:9::\nipv6-subnet-prefix = 64"),
            |p| {
                assert_eq!(
                    p.ipv6_network,
                    Some(IpNet {
                        addr: ip("fd00:9::"),
                        prefix: 56
                    })
                );
                assert_eq!(p.ipv6_subnet_prefix, Some(64));
            },
        ),
        (
            "explicit addresses from the user",
            false,
            None,
            Some("explicit-ipv4 = 192.168.1.9\nexplicit-ipv6 = fd00::9"),
            |p| {
                assert_eq!(p.explicit_ipv4, Some("192.168.1.9".parse().unwrap()));
                assert_eq!(p.explicit_ipv6, Some("fd00::9".parse().unwrap()));
            },
        ),
        (
            "mobile-dpd 0 in a file falls back to dpd",
            false,
            None,
            Some("dpd = 11\nmobile-dpd = 0"),
            |p| {
                assert_eq!(p.dpd_secs(true), 11);
            },
        ),
        (
            "tunnel_all_dns spelling from group, user keeps it",
            false,
            Some("tunnel_all_dns = true"),
            Some("dpd = 1"),
            |p| {
                assert!(p.tunnel_all_dns);
            },
        ),
    ];
    for (name, append, group, user, check) in cases {
        let mut g = global();
        g.append_routes = *append;
        let overrides = Overrides {
            group: group.map(|t| Box::new(ok(t))),
            user: user.map(|t| Box::new(ok(t))),
            auth: None,
        };
        let mut resolved = g.resolve(&overrides);
        resolved.append_routes = false;
        eprintln!("case: {name}");
        check(&resolved);
    }
}

#[test]
fn main_file_options() {
    let text = "auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"\nserver-cert = /c.pem\nserver-key = /k.pem\n\
        ipv4-network = 10.10.0.0/24\nconfig-per-user = /etc/ocserv/users/\nconfig-per-group = /etc/ocserv/groups\n\
        default-user-config = /etc/ocserv/user.conf\ndefault-group-config = /etc/ocserv/group.conf\n\
        append-routes = true\nhostname = x\n";
    let parsed = rocserv_proto::config::parse(text, "o.conf");
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let c = parsed.config;
    assert_eq!(
        c.policy_files.per_user_dir.as_deref(),
        Some(std::path::Path::new("/etc/ocserv/users/"))
    );
    assert_eq!(
        c.policy_files.per_group_dir.as_deref(),
        Some(std::path::Path::new("/etc/ocserv/groups"))
    );
    assert!(c.policy_files.default_user.is_some() && c.policy_files.default_group.is_some());
    assert!(c.policy.append_routes);
    // hostname only makes sense per user: warned and ignored in the main file.
    assert_eq!(c.policy.hostname, None);
    assert!(parsed
        .diagnostics
        .iter()
        .any(|d| d.option.as_deref() == Some("hostname")));
    let relative =
        rocserv_proto::config::parse(&text.replace("/etc/ocserv/users/", "users"), "o.conf");
    assert!(relative.has_errors());
}

/// Our quota options: parsed into the file, 0 lifts a limit (`Some(None)`), silently (no
/// "not supported" warning).
#[test]
fn quota_options_parse() {
    use rocserv_proto::policy::quota::Period;
    let parsed = file::parse(
        "max-session-time-per-day = 7200\ntraffic-quota = 2G\ntraffic-quota-period = Week\n",
        "/etc/ocserv/users/u",
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.file.max_session_time_per_day, Some(Some(7200)));
    assert_eq!(parsed.file.traffic_quota, Some(Some(2 << 30)));
    assert_eq!(parsed.file.traffic_quota_period, Some(Period::Week));
    let lifted = ok("max-session-time-per-day = 0\ntraffic-quota = 0\n");
    assert_eq!(lifted.max_session_time_per_day, Some(None));
    assert_eq!(lifted.traffic_quota, Some(None));
}
