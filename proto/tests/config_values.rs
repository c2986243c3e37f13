//! Typed values: every kind, good and bad, with the exact message forms; unknown options and
//! their suggestions; mandatory options; ocserv's built-in defaults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use rocserv_proto::config::{parse, AuthMethod, Config, IpNet, RekeyMethod, Route};

mod common;
use common::{messages, with_base};

fn ok(extra: &str) -> Config {
    let parsed = with_base(extra);
    assert_eq!(messages(&parsed), Vec::<String>::new(), "input: {extra:?}");
    parsed.config
}

/// The one diagnostic `line` (at line 5) produces.
fn one(line: &str) -> String {
    let parsed = with_base(&format!("{line}\n"));
    let all = messages(&parsed);
    assert_eq!(all.len(), 1, "{line:?}: {all:#?}");
    all.concat()
}

fn net(addr: IpAddr, prefix: u8) -> IpNet {
    IpNet { addr, prefix }
}

#[test]
fn defaults_are_ocservs() {
    let c = ok("");
    assert_eq!(c.tcp_port, 443);
    assert_eq!(c.udp_port, None);
    assert_eq!(c.policy.keepalive, 32400);
    assert_eq!(c.policy.dpd, 90);
    assert_eq!(c.policy.mobile_dpd, 1800);
    assert_eq!(c.auth_timeout, 240);
    assert_eq!(c.cookie_timeout, 300);
    assert_eq!(c.rekey_time, 172800);
    assert_eq!(c.rekey_method, RekeyMethod::Ssl);
    assert!(c.predictable_ips);
    assert_eq!(c.device, "vpns");
    assert_eq!(c.policy.idle_timeout, None);
    assert!(c.tls.tls12 && c.tls.tls13 && c.tls.server_precedence);
    // Ours: pre-auth caps on by default.
    assert_eq!((c.max_pre_auth_clients, c.max_pre_auth_per_ip), (256, 32));
}

#[test]
fn booleans() {
    for (text, want) in [
        ("true", true),
        ("yes", true),
        ("TRUE", true),
        ("false", false),
        ("No", false),
    ] {
        assert_eq!(
            ok(&format!("tunnel-all-dns = {text}"))
                .policy
                .tunnel_all_dns,
            want
        );
    }
    assert_eq!(
        one("tunnel-all-dns = on"),
        "t.conf:5: error: tunnel-all-dns: expected `true` or `false`, found `on`"
    );
}

#[test]
fn numbers_and_durations() {
    let c = ok("max-clients = 0\nmax-same-clients = 3\nkeepalive = 10\nidle-timeout = 0\nsession-timeout = 3600\nlog-level = 9");
    assert_eq!(c.max_clients, 0);
    assert_eq!(c.policy.max_same_clients, 3);
    assert_eq!(c.policy.keepalive, 10);
    assert_eq!(c.policy.idle_timeout, None, "0 disables");
    assert_eq!(c.policy.session_timeout, Some(3600));
    assert_eq!(c.log_level, 9);
    let c = ok("max-pre-auth-clients = 0\nmax-pre-auth-per-ip = 4");
    assert_eq!((c.max_pre_auth_clients, c.max_pre_auth_per_ip), (0, 4));
    assert_eq!(
        one("dpd = 90s"),
        "t.conf:5: error: dpd: expected a number of seconds, found `90s`"
    );
    assert_eq!(
        one("max-clients = -1"),
        "t.conf:5: error: max-clients: expected a whole number of at least 0, found `-1`"
    );
    assert_eq!(
        one("log-level = 10"),
        "t.conf:5: error: log-level: expected a whole number from 0 to 9, found `10`"
    );
    assert_eq!(
        one("cookie-timeout = 99999999999"),
        "t.conf:5: error: cookie-timeout: expected a number of seconds, found `99999999999`"
    );
}

#[test]
fn mobile_dpd_zero_falls_back_to_dpd() {
    assert_eq!(ok("dpd = 30\nmobile-dpd = 0").policy.mobile_dpd, 30);
}

#[test]
fn ports() {
    let c = ok("tcp-port = 8443\nudp-port = 0");
    assert_eq!(c.tcp_port, 8443);
    assert_eq!(c.udp_port, None);
    assert_eq!(ok("udp-port = 4443").udp_port, Some(4443));
    assert_eq!(
        one("tcp-port = 70000"),
        "t.conf:5: error: tcp-port: expected a port number from 1 to 65535, found `70000`"
    );
}

#[test]
fn access_rules() {
    use rocserv_proto::policy::ports::{PortRule, PortRules};
    let c = ok("restrict-user-to-routes = true\nrestrict-user-to-ports = \"tcp(80), udp(53)\"");
    assert!(c.policy.restrict_user_to_routes);
    assert_eq!(
        c.policy.restrict_user_to_ports,
        Some(PortRules {
            negated: false,
            rules: vec![PortRule::Tcp(80), PortRule::Udp(53)]
        })
    );
    let c = ok("restrict-user-to-ports = !(tcp(22))");
    assert!(!c.policy.restrict_user_to_routes);
    assert!(c.policy.restrict_user_to_ports.is_some_and(|p| p.negated));
    assert_eq!(ok("").policy.restrict_user_to_ports, None);
    assert_eq!(
        one("restrict-user-to-ports = \"tcp(80),\""),
        "t.conf:5: error: restrict-user-to-ports: at column 9: expected tcp, udp, sctp, icmp, icmpv6 or esp"
    );
    assert_eq!(
        one("restrict-user-to-routes = maybe"),
        "t.conf:5: error: restrict-user-to-routes: expected `true` or `false`, found `maybe`"
    );
}

#[test]
fn addresses() {
    assert_eq!(
        ok("listen-host = 127.0.0.1").listen_host,
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
    assert_eq!(
        ok("listen-host = [::1]").listen_host,
        Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
    );
    assert_eq!(
        one("listen-host = vpn.example.com"),
        "t.conf:5: error: listen-host: expected an IPv4 or IPv6 address, found `vpn.example.com` (host names are not resolved; give an address)"
    );
    let c = ok("dns = 10.1.0.1\ndns = fd00::1\nipv4-dns = 10.1.0.2");
    assert_eq!(c.policy.dns.len(), 3);
    assert_eq!(
        one("dns = local"),
        "t.conf:5: error: dns: the `local` keyword is no longer supported by ocserv; give an address"
    );
}

#[test]
fn ipv4_network_forms() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    for text in [
        "ipv4-network = 192.168.5.0\nipv4-netmask = 255.255.255.0",
        "ipv4-network = 192.168.5.0/24",
        "ipv4-network = 192.168.5.0/255.255.255.0",
        "ipv4-netmask = 255.255.255.0\nipv4-network = 192.168.5.0",
    ] {
        let p = parse(
            &format!("auth = pam\nserver-cert = /c\nserver-key = /k\n{text}\n"),
            "t.conf",
        );
        assert_eq!(messages(&p), Vec::<String>::new(), "{text}");
        assert_eq!(
            p.config.policy.ipv4_network,
            Some(net(v4(192, 168, 5, 0), 24)),
            "{text}"
        );
    }
    // A later netmask overrides the prefix, as in ocserv.
    let p = parse(
        "auth = pam\nserver-cert = /c\nserver-key = /k\nipv4-network = 10.2.0.0/16\nipv4-netmask = 255.255.255.0\n",
        "t.conf",
    );
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.policy.ipv4_network, Some(net(v4(10, 2, 0, 0), 24)));
    assert_eq!(
        one("ipv4-netmask = 255.0.255.0"),
        "t.conf:5: error: ipv4-netmask: expected a netmask such as 255.255.255.0, found `255.0.255.0`"
    );
    let p = parse(
        "auth = pam\nserver-cert = /c\nserver-key = /k\nipv4-network = 10.0.0.0\n",
        "t.conf",
    );
    assert_eq!(
        messages(&p),
        ["t.conf:4: error: ipv4-network: no netmask; add `ipv4-netmask = 255.255.255.0` or write the network as a.b.c.d/24"]
    );
    assert_eq!(
        messages(&with_base("ipv4-network = 10.0.0.0/33\n")).last().unwrap(),
        "t.conf:5: error: ipv4-network: expected an IPv4 network such as 192.168.1.0 or 192.168.1.0/24, found `10.0.0.0/33`"
    );
}

#[test]
fn ipv6_network_forms() {
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let base = "auth = pam\nserver-cert = /c\nserver-key = /k\n";
    // An IPv6-only pool is a pool; the prefix comes from either option.
    for text in [
        "ipv6-network = fd00:1::/48",
        "ipv6-network = fd00:1::\nipv6-prefix = 48",
        "ipv6-prefix = 48\nipv6-network = fd00:1::",
    ] {
        let p = parse(&format!("{base}{text}\n"), "t.conf");
        assert_eq!(messages(&p), Vec::<String>::new(), "{text}");
        assert_eq!(p.config.policy.ipv6_network, Some(net(v6("fd00:1::"), 48)));
        assert_eq!(p.config.policy.ipv4_network, None);
        assert_eq!(p.config.policy.ipv6_subnet_prefix, None);
    }
    let p = parse(
        &format!("{base}ipv6-network = fd00:1::/48\nipv6-subnet-prefix = 64\nclient-bypass-protocol = true\n"),
        "t.conf",
    );
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.policy.ipv6_subnet_prefix, Some(64));
    assert!(p.config.policy.client_bypass_protocol);
    assert!(!ok("").policy.client_bypass_protocol);
    // Errors: no prefix, a subnet not longer than the network (ocserv exits), bad values.
    let p = parse(&format!("{base}ipv6-network = fd00:1::\n"), "t.conf");
    assert_eq!(
        messages(&p),
        ["t.conf:4: error: ipv6-network: no prefix; add `ipv6-prefix = 64` or write the network as fd00:1::/64"]
    );
    let p = parse(
        &format!("{base}ipv6-network = fd00:1::/64\nipv6-subnet-prefix = 64\n"),
        "t.conf",
    );
    assert_eq!(
        messages(&p),
        ["t.conf:5: error: ipv6-subnet-prefix: the subnet prefix (/64) must be longer than the network's (/64)"]
    );
    assert_eq!(p.config.policy.ipv6_network, None);
    let p = parse(&format!("{base}ipv6-network = fd00:1::/128\n"), "t.conf");
    assert!(p.has_errors(), "a /128 network leaves no room for a client");
    assert_eq!(
        one("ipv6-network = 10.0.0.0/8"),
        "t.conf:5: error: ipv6-network: expected an IPv6 network such as fd00:1::/64, found `10.0.0.0/8`"
    );
    assert_eq!(
        one("ipv6-prefix = 129"),
        "t.conf:5: error: ipv6-prefix: expected a whole number from 1 to 128, found `129`"
    );
}

#[test]
fn routes() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let c = ok("route = 10.0.0.0/8\nroute = 172.16.0.0/255.240.0.0\nroute = fd00::/64\nno-route = 10.5.0.0/16");
    assert_eq!(
        c.policy.routes,
        [
            Route::Net(net(v4(10, 0, 0, 0), 8)),
            Route::Net(net(v4(172, 16, 0, 0), 12)),
            Route::Net(net(IpAddr::V6("fd00::".parse().unwrap()), 64)),
        ]
    );
    assert_eq!(c.policy.no_routes, [Route::Net(net(v4(10, 5, 0, 0), 16))]);
    assert_eq!(ok("route = default").policy.routes, [Route::Default]);
    assert_eq!(ok("route = 0.0.0.0/0").policy.routes, [Route::Default]);
    assert_eq!(
        one("route = 10.0.0.0"),
        "t.conf:5: error: route: expected `default` or a network such as 10.0.0.0/8, 10.0.0.0/255.0.0.0 or fd00::/64, found `10.0.0.0`"
    );
    let p = with_base("route = 10.0.0.0/8\nroute = default\n");
    assert_eq!(p.config.policy.routes, [Route::Default]);
    assert_eq!(
        messages(&p),
        ["t.conf:0: warning: route: `route = default` tunnels everything, so the other routes are dropped (as ocserv does)"]
    );
}

#[test]
fn auth_methods() {
    let plain = |f: &str| {
        Some(AuthMethod::Plain {
            passwd: Some(PathBuf::from(f)),
            otp: None,
        })
    };
    let with_otp = |passwd: Option<&str>, otp: &str| {
        Some(AuthMethod::Plain {
            passwd: passwd.map(PathBuf::from),
            otp: Some(PathBuf::from(otp)),
        })
    };
    let pam = |gid_min| {
        Some(AuthMethod::Pam {
            gid_min,
            service: "ocserv".into(),
        })
    };
    let pam_service = |service: &str| {
        Some(AuthMethod::Pam {
            gid_min: 0,
            service: service.into(),
        })
    };
    let text = |auth: &str| {
        format!("auth = \"{auth}\"\nserver-cert = /c\nserver-key = /k\nipv4-network = 10.0.0.0/8\n")
    };
    for (value, want) in [
        (
            "plain[passwd=/etc/ocserv/ocpasswd]",
            plain("/etc/ocserv/ocpasswd"),
        ),
        ("plain[ passwd = /etc/p ]", plain("/etc/p")),
        ("plain[/etc/legacy]", plain("/etc/legacy")),
        (
            "plain[passwd=/etc/p,otp=/etc/users.oath]",
            with_otp(Some("/etc/p"), "/etc/users.oath"),
        ),
        (
            "plain[OTP=/etc/users.oath , passwd=/etc/p]",
            with_otp(Some("/etc/p"), "/etc/users.oath"),
        ),
        (
            "plain[otp=/etc/users.oath]",
            with_otp(None, "/etc/users.oath"),
        ),
        ("pam", pam(0)),
        ("pam[gid-min=1000]", pam(1000)),
        ("pam[service=ocserv,gid-min=5]", pam(5)),
        ("pam[service=vpn]", pam_service("vpn")),
        (
            "pam[service=ocserv-otp.v2_x]",
            pam_service("ocserv-otp.v2_x"),
        ),
        (
            "radius[config=/etc/radcli.conf,groupconfig=true]",
            Some(AuthMethod::Radius {
                config: "/etc/radcli.conf".into(),
                groupconfig: true,
                nas_identifier: None,
            }),
        ),
    ] {
        let p = parse(&text(value), "t.conf");
        assert_eq!(messages(&p), Vec::<String>::new(), "{value}");
        assert_eq!(p.config.auth.primary(), want.as_ref(), "{value}");
    }
    for (value, message) in [
        ("radius[groupconfig=true]", "`radius` needs radcli's configuration file: `radius[config=/etc/radcli/radiusclient.conf]`"),
        ("certificate[x=1]", "`certificate` takes no options (use `ca-cert`, `crl`, `cert-user-oid`)"),
        ("plain[passwd=ocpasswd]", "passwd file must be an absolute path, found `ocpasswd`"),
        ("plain", "`plain` needs a password file, a one-time password file or both: `plain[passwd=/etc/ocserv/ocpasswd,otp=/etc/ocserv/users.oath]`"),
        ("plain[passwd=/p,otp=users.oath]", "otp file must be an absolute path, found `users.oath`"),
        ("plain[passwd=/p,pin=1]", "unknown option `pin` for `plain` (it takes `passwd=FILE` and `otp=FILE`)"),
        ("pam[service=../shadow]", "PAM service `../shadow` is not a file name in /etc/pam.d (letters, digits, `.`, `_`, `-`, not starting with `.`, at most 64 bytes)"),
        ("pam[service=..]", "PAM service `..` is not a file name in /etc/pam.d (letters, digits, `.`, `_`, `-`, not starting with `.`, at most 64 bytes)"),
        ("pam[service=]", "PAM service `` is not a file name in /etc/pam.d (letters, digits, `.`, `_`, `-`, not starting with `.`, at most 64 bytes)"),
        ("pam[gid-min=x]", "gid-min: expected a whole number of at least 0, found `x`"),
        ("pam[foo=1]", "unknown option `foo` for `pam` (it takes `gid-min=N` and `service=NAME`)"),
        ("kerberos", "expected `plain[passwd=FILE,otp=FILE]`, `pam[gid-min=N]`, `certificate`, `radius[config=FILE]` or `script[path=FILE]`, found `kerberos`"),
    ] {
        let p = parse(&text(value), "t.conf");
        assert_eq!(messages(&p).first().map(String::as_str), Some(&*format!("t.conf:1: error: auth: {message}")), "{value}");
    }
    let p = with_base("auth = \"plain[passwd=/etc/p]\"\n");
    assert_eq!(
        messages(&p),
        ["t.conf:5: error: auth: several `auth` lines must all succeed, and only `certificate` can be combined with one password method; `plain` would be a second password method"]
    );
}

#[test]
fn certificate_settings_and_chains() {
    use rocserv_proto::config::{CertAuth, CertField};
    let base = "server-cert = /c\nserver-key = /k\nipv4-network = 10.0.0.0/8\n";
    let cert = "ca-cert = /ca.pem\ncrl = /crl.pem\ncert-user-oid = 0.9.2342.19200300.100.1.1\ncert-group-oid = 2.5.4.11\n";
    let p = parse(
        &format!("auth = certificate\nauth = \"plain[passwd=/p]\"\n{base}{cert}"),
        "t.conf",
    );
    assert_eq!(messages(&p), Vec::<String>::new());
    let plan = &p.config.auth;
    assert_eq!(plan.required.len(), 2);
    assert_eq!(plan.required[0], AuthMethod::Certificate);
    assert!(!plan.certificate_alone() && !plan.certificate_only());
    assert_eq!(
        plan.cert,
        Some(Box::new(CertAuth {
            ca_cert: "/ca.pem".into(),
            crl: Some("/crl.pem".into()),
            user: CertField::Oid("0.9.2342.19200300.100.1.1".into()),
            group: Some(CertField::Oid("2.5.4.11".into())),
        }))
    );
    // enable-auth = certificate: the certificate alone suffices too.
    let p = parse(
        &format!("auth = pam\nenable-auth = certificate\n{base}{cert}"),
        "t.conf",
    );
    assert_eq!(messages(&p), Vec::<String>::new());
    assert!(p.config.auth.certificate_alone());
    let p = parse(
        &format!("auth = certificate\n{base}ca-cert = /ca\ncert-user-oid = SAN(rfc822name)\n"),
        "t.conf",
    );
    assert_eq!(messages(&p), Vec::<String>::new());
    assert!(p.config.auth.certificate_only());
    assert_eq!(p.config.auth.cert.unwrap().user, CertField::SanRfc822Name);

    for (text, want) in [
        (format!("auth = certificate\n{base}cert-user-oid = 2.5.4.3\n"),
         "t.conf:1: error: auth: `certificate` needs the CA that issues client certificates: add `ca-cert = /etc/ocserv/ca.pem`"),
        (format!("auth = certificate\n{base}ca-cert = /ca\n"),
         "t.conf:1: error: auth: `certificate` needs `cert-user-oid` (where the certificate names the user), e.g. `cert-user-oid = 0.9.2342.19200300.100.1.1` (UID) or `2.5.4.3` (CN)"),
        (format!("auth = pam\n{base}enable-auth = \"plain[passwd=/p]\"\n"),
         "t.conf:5: error: enable-auth: only `certificate` can be an alternative method in rocserv (found `plain`); put password methods in `auth`"),
        (format!("auth = certificate\nauth = certificate\n{base}"),
         "t.conf:2: error: auth: `certificate` is given twice"),
        (format!("auth = certificate\n{base}ca-cert = /ca\ncert-user-oid = uid\n"),
         "t.conf:6: error: cert-user-oid: expected a dotted OID such as 0.9.2342.19200300.100.1.1 (UID) or 2.5.4.3 (CN), or `SAN(rfc822name)`, found `uid`"),
    ] {
        assert_eq!(messages(&parse(&text, "t.conf")).first().map(String::as_str), Some(want), "{text}");
    }
    // One message per problem: a bad cert-user-oid is not also a missing one.
    let p = parse(
        &format!("auth = certificate\n{base}ca-cert = /ca\ncert-user-oid = uid\n"),
        "t.conf",
    );
    assert_eq!(messages(&p).len(), 1, "{:?}", messages(&p));
    // Without a `certificate` method ocserv reads neither OID: whatever they say, no message
    // (a warning must mean the file behaves differently here).
    for extra in [
        "cert-user-oid = 0.9.2342.19200300.100.1.1\ncert-group-oid = 2.5.4.11\n",
        "cert-user-oid = uid\ncert-group-oid = ou\n",
    ] {
        let p = parse(&format!("auth = pam\n{base}{extra}"), "t.conf");
        assert_eq!(messages(&p), Vec::<String>::new(), "{extra}");
    }
}

/// `camouflage_*` while camouflage is off change nothing, as in ocserv: no message, whatever
/// their values; with camouflage on, a bad value is one error.
#[test]
fn camouflage_settings_while_camouflage_is_off() {
    let base = "auth = pam\nserver-cert = /c\nserver-key = /k\nipv4-network = 10.0.0.0/8\n";
    for extra in [
        "camouflage = false\ncamouflage_secret = \"mysecretkey\"\ncamouflage_realm = \"Restricted Content\"\n",
        "camouflage_secret = \"my secret key\"\ncamouflage_realm = \"a \\\"quoted\\\" realm\"\n",
        "camouflage_secret = short\n",
    ] {
        let p = parse(&format!("{base}{extra}"), "t.conf");
        assert_eq!(messages(&p), Vec::<String>::new(), "{extra}");
    }
    let p = parse(
        &format!("{base}camouflage = true\ncamouflage_secret = \"my secret key\"\n"),
        "t.conf",
    );
    let m = messages(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("t.conf:6: error: camouflage_secret:"),
        "{m:?}"
    );
}

#[test]
fn paths_must_be_absolute() {
    for option in ["server-cert", "server-key", "ca-cert", "occtl-socket-file"] {
        assert_eq!(
            one(&format!("{option} = certs/x.pem")),
            format!("t.conf:5: error: {option}: must be an absolute path, found `certs/x.pem`")
        );
    }
    // Published ocserv.conf files use relative ones here, which ocserv accepts.
    let c = ok("pid-file = run/ocserv.pid\nsocket-file = ocserv-socket");
    assert_eq!(c.pid_file, Some(PathBuf::from("run/ocserv.pid")));
    assert_eq!(c.socket_file, Some(PathBuf::from("ocserv-socket")));
    assert_eq!(
        one("server-key = pkcs11:object=vpn"),
        "t.conf:5: error: server-key: key and certificate URLs (PKCS #11, TPM) are not supported; give a PEM file, found `pkcs11:object=vpn`"
    );
}

#[test]
fn strings_and_names() {
    let c = ok("run-as-user = ocserv\nrun-as-group = nogroup\ndevice = tun\ndefault-domain = \"a.example b.example\"\nmtu = 1400\nrekey-method = new-tunnel");
    assert_eq!(c.run_as_user.as_deref(), Some("ocserv"));
    assert_eq!(c.device, "tun");
    assert_eq!(c.default_domain.as_deref(), Some("a.example b.example"));
    assert_eq!(c.policy.mtu, Some(1400));
    assert_eq!(c.rekey_method, RekeyMethod::NewTunnel);
    assert_eq!(ok("mtu = 0").policy.mtu, None);
    assert_eq!(
        one("rekey-method = tls"),
        "t.conf:5: error: rekey-method: expected `ssl` or `new-tunnel`, found `tls`"
    );
    assert_eq!(
        one("device = averyveryverylongname"),
        "t.conf:5: error: device: expected a name of 1 to 10 letters, digits, `_`, `-` or `.`, found `averyveryverylongname`"
    );
    assert_eq!(
        one(&format!("banner = {}", "b".repeat(300))),
        "t.conf:5: error: banner: is 300 bytes long; ocserv allows at most 256"
    );
    assert_eq!(
        one("mtu = 20"),
        "t.conf:5: error: mtu: expected at least 68 (or 0 for the default), found 20"
    );
}

#[test]
fn unknown_options_get_a_suggestion() {
    assert_eq!(
        one("max-client = 3"),
        "t.conf:5: error: max-client: unknown option; did you mean `max-clients`?"
    );
    assert_eq!(
        one("tls_priorities = NORMAL"),
        "t.conf:5: error: tls_priorities: unknown option; did you mean `tls-priorities`?"
    );
    assert_eq!(
        one("camouflage-secret = x"),
        "t.conf:5: error: camouflage-secret: unknown option; did you mean `camouflage_secret`?"
    );
    assert_eq!(
        one("frobnicate = 1"),
        "t.conf:5: error: frobnicate: unknown option"
    );
}

#[test]
fn not_yet_refused_and_renamed_options() {
    // Supported now (what the client is told): parsed, no diagnostic.
    let p = with_base("split-dns = example.com\nnbns = 10.0.0.1\n");
    assert_eq!(p.diagnostics, []);
    assert_eq!(p.config.policy.split_dns, ["example.com"]);
    assert_eq!(
        p.config.policy.nbns,
        ["10.0.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(with_base("deny-roaming = true\n").diagnostics, []);
    assert_eq!(
        one("iroute = 10.0.0.0/8"),
        "t.conf:5: warning: iroute: belongs in per-user/per-group files; ignored in the main file, as in ocserv"
    );
    assert_eq!(
        with_base("sec-mod-scale = 4\n").diagnostics,
        [],
        "not applicable: silent"
    );
    // The sandbox is on unless the file turns it off.
    assert!(ok("").isolate_workers);
    assert!(!ok("isolate-workers = false\n").isolate_workers);
    assert!(ok("isolate-workers = true\n").isolate_workers);
    let p = with_base("use-seccomp = false\n");
    assert!(!p.config.isolate_workers);
    assert_eq!(
        messages(&p),
        ["t.conf:5: warning: use-seccomp: old name of `isolate-workers`"]
    );
    let p = with_base("always-require-cert = false\n");
    assert!(p.config.cisco_client_compat);
    // Old names that mean exactly what the new ones do draw no warning: nothing changes.
    let p = with_base("min-reauth-time = 120\nuse-dbus = true\n");
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.ban_time, 120);
    assert!(p.config.use_occtl);
}

#[test]
fn mandatory_options() {
    let p = parse("", "empty.conf");
    assert_eq!(
        messages(&p),
        [
            "empty.conf:0: error: auth: no authentication method; add e.g. `auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"`",
            "empty.conf:0: error: server-cert: no server certificate; add `server-cert = /etc/ocserv/server-cert.pem`",
            "empty.conf:0: error: server-key: no server key; add `server-key = /etc/ocserv/server-key.pem`",
            "empty.conf:0: error: ipv4-network: no address pool for clients; set `ipv4-network` or `ipv6-network`",
        ]
    );
    assert!(p.has_errors());
    assert!(!with_base("").has_errors());
}

#[test]
fn cert_and_key_counts_must_match() {
    let p = with_base("server-cert = /c2.pem\n");
    assert_eq!(
        messages(&p),
        [
            "t.conf:5: warning: server-cert: several certificate/key pairs are not supported yet; only the first is used",
            "t.conf:0: error: server-key: 2 server-cert but 1 server-key lines; each certificate needs its key",
        ]
    );
}

#[test]
fn compression_options() {
    use rocserv_proto::compress::{choose, Algorithm};
    let c = ok("");
    assert!(!c.compression.enabled);
    assert_eq!(c.compression.no_compress_limit, 256);
    let c =
        ok("compression = true\ncompression-algo-priority = lzs:1000\nno-compress-limit = 10\n");
    assert!(c.compression.enabled);
    assert_eq!(c.compression.no_compress_limit, 64);
    assert_eq!(
        choose(Some("oc-lz4,lzs"), &c.compression),
        Some(Algorithm::Lzs)
    );
    let c = ok("compression = yes\ncompression-algo-priority = lzs:oc-lz4\n");
    assert_eq!(
        choose(Some("oc-lz4,lzs"), &c.compression),
        Some(Algorithm::Lzs)
    );
    assert_eq!(
        one("compression-algo-priority = zstd:5"),
        "t.conf:5: error: compression-algo-priority: unknown compression algorithm `zstd`; expected `oc-lz4` or `lzs`"
    );
}

#[test]
fn operations_options() {
    // Bans are on by default, with the values of ocserv's current sample configuration
    // (max-ban-score 80, ban-reset-time 1200, min-reauth-time 300; points 10/1/1).
    let c = ok("");
    assert_eq!(
        (c.max_ban_score, c.ban_time, c.ban_reset_time),
        (80, 300, 1200)
    );
    assert_eq!(
        (
            c.ban_points_wrong_password,
            c.ban_points_connection,
            c.ban_points_kkdcp
        ),
        (10, 1, 1)
    );
    assert_eq!(
        ok("max-ban-score = 0\n").max_ban_score,
        0,
        "0 turns bans off"
    );
    assert_eq!(
        (c.policy.mobile_idle_timeout, c.connect_script),
        (None, None)
    );
    let c = ok("max-ban-score = 80\nban-time = 60\nban-reset-time = 1200\n\
         ban-points-wrong-password = 5\nban-points-connection = 2\nrate-limit-ms = 100\n\
         connect-script = /usr/bin/up\ndisconnect-script = /usr/bin/down\n\
         host-update-script = /usr/bin/host\ndeny-roaming = true\nstats-report-time = 60\n");
    assert_eq!(
        (c.max_ban_score, c.ban_time, c.ban_reset_time),
        (80, 60, 1200)
    );
    assert_eq!(
        (c.ban_points_wrong_password, c.ban_points_connection),
        (5, 2)
    );
    assert_eq!((c.rate_limit_ms, c.policy.stats_report_time), (100, 60));
    assert!(c.policy.deny_roaming);
    let script = |p: Option<&std::path::Path>| p.map(|p| p.display().to_string());
    assert_eq!(script(c.connect_script.as_deref()).unwrap(), "/usr/bin/up");
    assert_eq!(
        script(c.disconnect_script.as_deref()).unwrap(),
        "/usr/bin/down"
    );
    assert_eq!(
        script(c.host_update_script.as_deref()).unwrap(),
        "/usr/bin/host"
    );
    // The old name still works, with a warning.
    assert_eq!(with_base("min-reauth-time = 60\n").config.ban_time, 60);
    assert!(one("connect-script = up.sh").contains("absolute path"));
    // mobile-idle-timeout: unset = idle-timeout, 0 = never, else its own value.
    assert_eq!(
        ok("idle-timeout = 600\n").policy.mobile_idle_timeout,
        Some(600)
    );
    let c = ok("idle-timeout = 600\nmobile-idle-timeout = 0\n");
    assert_eq!(
        (c.policy.idle_timeout, c.policy.mobile_idle_timeout),
        (Some(600), None)
    );
    let c = ok("mobile-idle-timeout = 2400\n");
    assert_eq!(c.policy.mobile_idle_timeout, Some(2400));
}

#[test]
fn group_choices() {
    use rocserv_proto::config::GroupChoice;
    let c = ok(
        "select-group = staff\nselect-group = admins[Admin network]\n\
                select-group = ops [Ops (24/7)]\ndefault-select-group = DEFAULT\n\
                auto-select-group = false\nselect-group-by-url = true\n",
    );
    assert_eq!(
        c.select_groups,
        vec![
            GroupChoice {
                name: "staff".into(),
                label: None
            },
            GroupChoice {
                name: "admins".into(),
                label: Some("Admin network".into())
            },
            GroupChoice {
                name: "ops".into(),
                label: Some("Ops (24/7)".into())
            },
        ]
    );
    assert_eq!(c.default_select_group.as_deref(), Some("DEFAULT"));
    assert!(!c.auto_select_group && c.select_group_by_url);
    assert!(ok("auto-select-group = true\n").auto_select_group);
    let too_many: String = (0..=rocserv_proto::config::MAX_SELECT_GROUPS)
        .map(|i| format!("select-group = g{i}\n"))
        .collect();
    let parsed = with_base(&too_many);
    assert_eq!(messages(&parsed).len(), 1, "{:?}", messages(&parsed));
    for bad in [
        "select-group = a[b",
        "select-group = a[]",
        "select-group = [Label]",
        "select-group = a/b",
        "select-group = a[b]c]",
        "select-group = a:b",
        "default-select-group = x,y",
        &format!("select-group = a[{}]", "x".repeat(256)),
    ] {
        let message = one(bad);
        assert!(message.contains("error"), "{bad}: {message}");
    }
}

#[test]
fn route_commands_and_expose_iroutes() {
    use rocserv_proto::config::route_cmd::RouteCmd;
    let c = ok("route-add-cmd = \"/sbin/ip route add %{R} dev %{D}\"\n\
                route-del-cmd = /sbin/ip route del %{RI} dev %{D}\n\
                expose-iroutes = true\n");
    assert_eq!(
        c.route_add_cmd,
        Some(RouteCmd::parse("/sbin/ip route add %{R} dev %{D}").unwrap())
    );
    assert_eq!(
        c.route_del_cmd,
        Some(RouteCmd::parse("/sbin/ip route del %{RI} dev %{D}").unwrap())
    );
    assert!(c.expose_iroutes);
    let d = ok("");
    assert_eq!((d.route_add_cmd, d.route_del_cmd), (None, None));
    assert!(!d.expose_iroutes);
    // Shell syntax is accepted, as ocserv does: such a command runs with `/bin/sh -c`.
    let c = ok("route-add-cmd = \"ip route add %{R} dev %{D} && logger added\"");
    assert!(c.route_add_cmd.is_some_and(|cmd| cmd.uses_shell()));
    // Per-user options in the main file: a warning, nothing applied.
    let msg = one("iroute = 10.0.0.0/8");
    assert!(msg.contains("belongs in per-user"), "{msg}");
    let msg = one("explicit-ipv4 = 10.0.0.5");
    assert!(msg.contains("belongs in per-user"), "{msg}");
}

#[test]
fn bandwidth_limits_and_net_priority() {
    use rocserv_proto::policy::NetPriority;
    let c = ok("");
    assert_eq!((c.policy.rx_data_per_sec, c.policy.tx_data_per_sec), (0, 0));
    assert_eq!(c.policy.net_priority, None);
    let c = ok("rx-data-per-sec = 40000\ntx-data-per-sec = 5000000000\nnet-priority = 5");
    assert_eq!(c.policy.rx_data_per_sec, 40_000);
    assert_eq!(c.policy.tx_data_per_sec, 5_000_000_000);
    assert_eq!(c.policy.net_priority, Some(NetPriority::Priority(5)));
    for (text, tos) in [("0x10", 0x10), ("0xB8", 0xb8), ("0x0", 0), ("0XfF", 0xff)] {
        let c = ok(&format!("net-priority = {text}"));
        assert_eq!(c.policy.net_priority, Some(NetPriority::Tos(tos)), "{text}");
    }
    assert_eq!(
        one("rx-data-per-sec = 1k"),
        "t.conf:5: error: rx-data-per-sec: expected a number of bytes per second from 0 \
         (no limit) to 1000000000000, found `1k`"
    );
    for bad in ["-1", "+5", "1000000000001", ""] {
        let msg = one(&format!("tx-data-per-sec = {bad}"));
        assert!(
            msg.contains("expected a number of bytes per second"),
            "{bad}: {msg}"
        );
    }
    for bad in ["7", "-1", "0x", "0x100", "0xg0", "high", "1.5"] {
        let msg = one(&format!("net-priority = {bad}"));
        assert!(
            msg.ends_with(&format!(
                "expected a priority from 0 to 6, or a TOS byte such as `0x10`, found `{bad}`"
            )),
            "{bad}: {msg}"
        );
    }
}

#[test]
fn metrics_listen_is_an_address_and_port() {
    assert_eq!(ok("").metrics_listen, None);
    assert_eq!(
        ok("metrics-listen = 127.0.0.1:9616").metrics_listen,
        Some("127.0.0.1:9616".parse().unwrap())
    );
    assert_eq!(
        ok("metrics-listen = [::1]:9616").metrics_listen,
        Some("[::1]:9616".parse().unwrap())
    );
    for bad in ["localhost:9616", "127.0.0.1", "9616", "127.0.0.1:99999"] {
        assert_eq!(
            one(&format!("metrics-listen = {bad}")),
            format!(
                "t.conf:5: error: metrics-listen: expected ADDRESS:PORT (e.g. 127.0.0.1:9616, \
                 [::1]:9616), found `{bad}`"
            )
        );
    }
}
