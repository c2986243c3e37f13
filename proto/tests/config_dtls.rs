//! The DTLS options (protocol.md §4): defaults, values, and what is refused.

use std::net::IpAddr;

use rocserv_proto::config::Config;

mod common;
use common::with_base;

fn ok(extra: &str) -> Config {
    let parsed = with_base(extra);
    let messages: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(messages, Vec::<String>::new(), "input: {extra:?}");
    parsed.config
}

#[test]
fn defaults_are_ocservs() {
    let c = ok("");
    assert_eq!(c.udp_port, None);
    assert_eq!(c.udp_listen_host, None);
    assert!(c.dtls_psk);
    assert!(c.dtls_legacy);
    assert!(!c.match_tls_dtls_ciphers);
    assert_eq!(c.switch_to_tcp_timeout, 25);
    assert!(!c.policy.no_udp);
    assert!(!c.try_mtu_discovery);
}

#[test]
fn values_are_parsed() {
    let c = ok(
        "udp-port = 4443\nudp-listen-host = 10.0.0.1\ndtls-psk = false\n\
                dtls-legacy = no\nmatch-tls-dtls-ciphers = true\nswitch-to-tcp-timeout = 0\n\
                no-udp = true\ntry-mtu-discovery = true\n",
    );
    assert_eq!(c.udp_port, Some(4443));
    assert_eq!(
        c.udp_listen_host,
        Some("10.0.0.1".parse::<IpAddr>().unwrap())
    );
    assert!(!c.dtls_psk);
    assert!(!c.dtls_legacy);
    assert!(c.match_tls_dtls_ciphers);
    assert_eq!(c.switch_to_tcp_timeout, 0);
    assert!(c.policy.no_udp);
    assert!(c.try_mtu_discovery);
}

#[test]
fn bad_values_are_errors() {
    for line in [
        "udp-listen-host = vpn.example.com",
        "switch-to-tcp-timeout = 25s",
        "dtls-psk = maybe",
        "no-udp = 1",
        "try-mtu-discovery = maybe",
    ] {
        assert!(with_base(line).has_errors(), "{line} accepted");
    }
}

#[test]
fn dtls_psk_is_global_only() {
    assert!(with_base("[vhost:a.example.com]\ndtls-psk = false\n").has_errors());
    let c = ok("[vhost:a.example.com]\ndtls-legacy = false\nswitch-to-tcp-timeout = 5\n");
    assert_eq!(
        c.vhosts.first().map(|v| v.config.switch_to_tcp_timeout),
        Some(5)
    );
}
