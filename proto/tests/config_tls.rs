//! `tls-priorities`: GnuTLS priority strings mapped onto what rustls can do.

use rocserv_proto::config::{parse, Parsed, TlsPolicy};

mod common;
use common::{messages, BASE};

fn prio(s: &str) -> Parsed {
    parse(&format!("{BASE}tls-priorities = \"{s}\"\n"), "t.conf")
}

fn policy(tls12: bool, tls13: bool, precedence: bool, ciphers: [bool; 3]) -> TlsPolicy {
    let [aes_128_gcm, aes_256_gcm, chacha20_poly1305] = ciphers;
    TlsPolicy {
        tls12,
        tls13,
        server_precedence: precedence,
        aes_128_gcm,
        aes_256_gcm,
        chacha20_poly1305,
    }
}

#[test]
fn ocserv_sample_string() {
    let p = prio("NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1");
    assert_eq!(p.config.tls, policy(true, true, true, [true; 3]));
    // -VERS-SSL3.0 etc. are already true of rustls, and %COMPAT changes nothing for rustls:
    // ocserv's own sample string draws no warning.
    assert_eq!(messages(&p), Vec::<String>::new());
}

#[test]
fn debian_string_turns_tls13_off() {
    let p = prio("NORMAL:%SERVER_PRECEDENCE:%COMPAT:-RSA:-VERS-SSL3.0:-ARCFOUR-128:-VERS-TLS1.3");
    assert_eq!(p.config.tls, policy(true, false, true, [true; 3]));
    // -RSA (static RSA key exchange) and -ARCFOUR-128 are things rustls never does.
    assert_eq!(messages(&p), Vec::<String>::new());
}

/// Published configurations start with changes and no level: they apply to NORMAL.
#[test]
fn a_string_may_start_with_a_change() {
    let p = prio("-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.3:%SERVER_PRECEDENCE");
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.tls, policy(true, true, true, [true; 3]));
    let p = prio("-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM");
    assert_eq!(
        p.config.tls,
        policy(true, false, false, [false, true, false])
    );
    let p = prio("%SERVER_PRECEDENCE:-VERS-TLS1.2");
    assert_eq!(p.config.tls, policy(false, true, true, [true; 3]));
}

#[test]
fn versions_and_ciphers() {
    let p = prio("NONE:+VERS-TLS1.3:+AES-256-GCM:+CHACHA20-POLY1305");
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(
        p.config.tls,
        policy(false, true, false, [false, true, true])
    );
    let p = prio("SECURE256:-VERS-ALL:+VERS-TLS1.2");
    assert_eq!(
        p.config.tls,
        policy(true, false, false, [false, true, true])
    );
    let p = prio("NORMAL:-CIPHER-ALL:+AES-128-GCM");
    assert_eq!(
        p.config.tls,
        policy(true, true, false, [true, false, false])
    );
}

#[test]
fn inexpressible_and_unknown_keywords_are_listed() {
    let p = prio("NORMAL:+AES-128-CBC:-GROUP-X25519:%NO_EXTENSIONS:+VERS-TLS1.0:-ECDHE-RSA:+FROB");
    assert_eq!(
        messages(&p),
        ["t.conf:5: warning: tls-priorities: rustls cannot express `+AES-128-CBC`, `-GROUP-X25519`, `%NO_EXTENSIONS`, `+VERS-TLS1.0`, `-ECDHE-RSA`, `+FROB`; ignored"]
    );
}

#[test]
fn nothing_left_is_an_error() {
    assert_eq!(
        messages(&prio("NORMAL:-VERS-TLS1.2:-VERS-TLS1.3")),
        ["t.conf:5: error: tls-priorities: leaves no protocol version rustls can offer (it offers TLS 1.2 and TLS 1.3)"]
    );
    assert_eq!(
        messages(&prio("NORMAL:-VERS-ALL:+VERS-TLS1.0")).last().map(String::as_str),
        Some("t.conf:5: error: tls-priorities: leaves no protocol version rustls can offer (it offers TLS 1.2 and TLS 1.3)")
    );
    assert_eq!(
        messages(&prio("NORMAL:-CIPHER-ALL:+AES-128-CBC")),
        ["t.conf:5: error: tls-priorities: leaves no cipher rustls can offer (it offers AES-128-GCM, AES-256-GCM and CHACHA20-POLY1305)"]
    );
    assert_eq!(
        messages(&prio("FROB:+VERS-TLS1.2")),
        ["t.conf:5: error: tls-priorities: a priority string starts with a level such as NORMAL or SECURE256, found `FROB`"]
    );
    assert!(prio("").has_errors());
}

#[test]
fn system_policy_is_assumed_normal() {
    let p = prio("@SYSTEM");
    assert_eq!(p.config.tls, policy(true, true, false, [true; 3]));
    assert_eq!(
        messages(&p),
        ["t.conf:5: warning: tls-priorities: rustls cannot express `@SYSTEM`; ignored"]
    );
}

#[test]
fn cisco_client_compat_drops_tls13_only_without_an_explicit_string() {
    let p = parse(&format!("{BASE}cisco-client-compat = true\n"), "t.conf");
    assert!(p.config.tls.tls12 && !p.config.tls.tls13);
    let p = parse(
        &format!("{BASE}cisco-client-compat = true\ntls-priorities = NORMAL\n"),
        "t.conf",
    );
    assert!(p.config.tls.tls13);
}

#[test]
fn vhost_inherits_the_global_string() {
    let p = parse(
        &format!("{BASE}tls-priorities = \"NORMAL:-VERS-TLS1.3\"\n[vhost:a]\ncisco-client-compat = false\n"),
        "t.conf",
    );
    let v = p.config.vhosts.first().unwrap();
    assert!(!v.config.tls.tls13);
}
