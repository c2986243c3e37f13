//! ocserv.conf syntax: comments, quotes, separators, white space, line ends, continuation
//! lines and sections. Expectations follow how ocserv (inih) reads the same text.

use rocserv_proto::config::{parse, Parsed, Route, Severity};

mod common;
use common::{messages, with_base, BASE};

fn clean(extra: &str) -> Parsed {
    let parsed = with_base(extra);
    assert_eq!(messages(&parsed), Vec::<String>::new(), "input: {extra:?}");
    parsed
}

#[test]
fn separators_and_spacing() {
    for text in [
        "banner = hi\n",
        "banner=hi\n",
        "banner\t=\thi   \n",
        "   banner = hi\n", // leading blanks before the first option are fine
        "banner: hi\n",     // inih also splits at `:`
    ] {
        let parsed = parse(&format!("{text}{BASE}"), "t.conf");
        assert_eq!(messages(&parsed), Vec::<String>::new(), "{text:?}");
        assert_eq!(parsed.config.banner.as_deref(), Some("hi"), "{text:?}");
    }
}

#[test]
fn comments() {
    let p = clean("# full line\n; also a comment\n   # indented comment\nbanner = hi # trailing\ndefault-domain = a#b\n");
    assert_eq!(p.config.banner.as_deref(), Some("hi"));
    // `#` not preceded by white space is part of the value, as in ocserv.
    assert_eq!(p.config.default_domain.as_deref(), Some("a#b"));
}

#[test]
fn quotes_are_stripped_from_both_ends() {
    let p = clean(
        "banner = \"Hello, world\"\npre-login-banner = \"\"\"x\"\ndefault-domain = \"a b\"\n",
    );
    assert_eq!(p.config.banner.as_deref(), Some("Hello, world"));
    assert_eq!(p.config.pre_login_banner.as_deref(), Some("x"));
    assert_eq!(p.config.default_domain.as_deref(), Some("a b"));
}

#[test]
fn hash_inside_quotes_still_starts_a_comment() {
    let p = with_base("banner = \"Hello # world\"\n");
    assert_eq!(p.config.banner.as_deref(), Some("Hello"));
    assert_eq!(
        messages(&p),
        ["t.conf:5: warning: banner: ` #` starts a comment even inside quotes (as in ocserv); the value is `Hello`"]
    );
}

#[test]
fn crlf_and_bom() {
    let text = format!("\u{feff}{}", BASE.replace('\n', "\r\n"));
    let p = parse(&format!("{text}banner = \"x\"\r\n"), "t.conf");
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.banner.as_deref(), Some("x"));
}

#[test]
fn repeated_keys_accumulate() {
    let p = clean("route = 10.0.0.0/8\nroute = 172.16.0.0/12\ndns = 10.1.0.1\ndns = 10.1.0.2\nno-route = 10.9.0.0/16\nno-route = 10.8.0.0/16\n");
    assert_eq!(p.config.policy.routes.len(), 2);
    assert_eq!(p.config.policy.dns.len(), 2);
    assert_eq!(p.config.policy.no_routes.len(), 2);
}

#[test]
fn repeated_single_value_warns_and_last_wins() {
    let p = with_base("dpd = 10\ndpd = 20\n");
    assert_eq!(p.config.policy.dpd, 20);
    assert_eq!(
        messages(&p),
        ["t.conf:6: warning: dpd: also set on line 5; this later value wins, as in ocserv"]
    );
}

#[test]
fn indented_line_continues_the_previous_option() {
    let p = clean("route = 10.0.0.0/8\n    172.16.0.0/12\n");
    assert_eq!(p.config.policy.routes.len(), 2);
    assert!(matches!(p.config.policy.routes.get(1), Some(Route::Net(n)) if n.prefix == 12));
}

#[test]
fn indented_option_is_reported_not_misread() {
    let p = with_base("route = 10.0.0.0/8\n  dns = 10.1.0.1\n");
    assert_eq!(
        messages(&p),
        ["t.conf:6: error: route: this indented line continues `route` (ocserv reads indented lines as more values of the option above); remove the indentation to set `dns`"]
    );
    assert!(p.config.policy.dns.is_empty());
}

#[test]
fn line_errors() {
    let p = with_base("just words\n= value\n[vhost:a\n");
    assert_eq!(
        messages(&p),
        [
            "t.conf:5: error: expected `option = value`, found `just words`",
            "t.conf:6: error: line has a value but no option name",
            "t.conf:7: error: section header has no closing `]`",
        ]
    );
}

#[test]
fn overlong_line_is_an_error() {
    let long = format!("banner = {}\n", "x".repeat(3000));
    let p = with_base(&long);
    assert!(p.has_errors());
    assert!(messages(&p)[0].starts_with("t.conf:5: error: line is 3009 bytes long"));
}

#[test]
fn unknown_section_is_skipped_with_a_warning() {
    let p = with_base("[global]\nnot-an-option = 1\n[]\nbanner = back\n");
    assert_eq!(
        messages(&p),
        ["t.conf:5: warning: unknown section [global]; its options are skipped, as ocserv does"]
    );
    assert_eq!(p.config.banner.as_deref(), Some("back"));
}

#[test]
fn vhost_inherits_and_overrides() {
    let p = clean(concat!(
        "dpd = 45\nroute = 10.0.0.0/8\nbanner = global\n",
        "[vhost:VPN.example.com]\n",
        "banner = \"for vpn\"\nroute = 192.168.0.0/16\nauth = \"plain[passwd=/etc/ocserv/vpn.passwd]\"\n",
        "[ vhost:other ]\n",
        "[vhost:vpn.example.com]\n",
        "keepalive = 60\n",
    ));
    let c = &p.config;
    assert_eq!(c.banner.as_deref(), Some("global"));
    assert_eq!(
        c.vhosts.len(),
        2,
        "a repeated header continues the same vhost"
    );
    let v = c.vhosts.first().unwrap();
    assert_eq!(v.name, "vpn.example.com");
    assert_eq!(v.line, 8);
    assert_eq!(v.config.policy.dpd, 45, "inherited");
    assert_eq!(v.config.policy.keepalive, 60);
    assert_eq!(v.config.banner.as_deref(), Some("for vpn"));
    assert_eq!(
        v.config.policy.routes.len(),
        2,
        "vhost routes add to the inherited ones"
    );
    assert!(matches!(
        v.config.auth.primary(),
        Some(rocserv_proto::config::AuthMethod::Plain { .. })
    ));
    assert!(v.config.vhosts.is_empty());
    let other = c.vhosts.get(1).unwrap();
    assert_eq!(other.name, "other");
    assert_eq!(other.config.auth, c.auth, "auth inherited");
    assert_eq!(c.policy.keepalive, 32400, "the global section is untouched");
}

/// A session's section: its vhost's by name (case and a trailing dot ignored, as for SNI), the
/// default section for no name or a name no vhost has.
#[test]
fn section_by_vhost_name() {
    let p =
        clean("keepalive = 10\n[vhost:a.example.com]\nkeepalive = 20\n[vhost:b]\nkeepalive = 30\n");
    let c = &p.config;
    let keepalive = |name| c.section(name).policy.keepalive;
    assert_eq!(keepalive(None), 10);
    assert_eq!(keepalive(Some("a.example.com")), 20);
    assert_eq!(keepalive(Some("A.Example.COM.")), 20);
    assert_eq!(keepalive(Some("b")), 30);
    assert_eq!(keepalive(Some("c.example.com")), 10);
    assert_eq!(keepalive(Some("a.example.com.evil")), 10);
    assert!(rocserv_proto::config::same_host("x.org", "X.ORG."));
    assert!(!rocserv_proto::config::same_host("x.org", "x.org.."));
    assert!(!rocserv_proto::config::same_host("x.org", "y.x.org"));
}

#[test]
fn global_only_option_in_vhost_is_an_error() {
    let p = with_base("[vhost:a]\ntcp-port = 8443\n");
    assert_eq!(
        messages(&p),
        ["t.conf:6: error: tcp-port: cannot be set inside [vhost:a]; it applies to the whole server"]
    );
}

#[test]
fn empty_vhost_name_is_an_error() {
    let p = with_base("[vhost: ]\n");
    assert_eq!(
        messages(&p),
        ["t.conf:5: error: [vhost:] needs a host name"]
    );
}

#[test]
fn diagnostics_carry_severity_and_option() {
    let p = with_base("max-client = 3\n");
    let d = p.diagnostics.first().unwrap();
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.line, 5);
    assert_eq!(d.option.as_deref(), Some("max-client"));
    assert_eq!(d.origin, "t.conf");
}
