//! `camouflage`, `camouflage_secret`, `camouflage_realm`: what is accepted, what is refused,
//! what a vhost inherits, and that the secret never shows in a diagnostic or `Debug`.

use rocserv_proto::config::{Camouflage, Secret};

mod common;
use common::{messages, with_base};

const SECRET: &str = "a-long-random-secret-0123";

#[test]
fn on_with_secret_and_realm() {
    let p = with_base(&format!(
        "camouflage = true\ncamouflage_secret = \"{SECRET}\"\ncamouflage_realm = \"Restricted Content\"\n"
    ));
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(
        p.config.camouflage(),
        Some(Camouflage {
            secret: Secret(SECRET.into()),
            realm: Some("Restricted Content".into()),
        })
    );
    // The sample config's values are accepted, with a warning about the short secret.
    let p = with_base("camouflage = true\ncamouflage_secret = \"mysecretkey\"\n");
    assert_eq!(
        messages(&p),
        ["t.conf:6: warning: camouflage_secret: shorter than 16 characters: scanners may guess it; a long random string hides the server better"]
    );
    assert_eq!(p.config.camouflage().map(|c| c.realm), Some(None));
}

#[test]
fn off_unless_true_and_a_secret_is_required() {
    // ocserv's sample config sets a secret and a realm with camouflage = false.
    let p = with_base(&format!(
        "camouflage = false\ncamouflage_secret = {SECRET}\ncamouflage_realm = x\n"
    ));
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(p.config.camouflage(), None);
    let p = with_base("camouflage = true\n");
    assert_eq!(
        messages(&p),
        ["t.conf:5: error: camouflage: `camouflage = true` needs `camouflage_secret`: clients connect to https://HOST/?SECRET"]
    );
}

#[test]
fn bad_secrets_and_realms_are_refused_without_echoing_the_secret() {
    for secret in [
        "\"has space here-0123456\"",
        "\"frag#ment-0123456789\"",
        "\"ünïcode-0123456789\"",
        "\"\"",
    ] {
        let p = with_base(&format!(
            "camouflage = true\ncamouflage_secret = {secret}\n"
        ));
        let all = messages(&p).join("\n");
        assert!(all.contains("error: camouflage_secret"), "{secret}: {all}");
        let bare = secret.trim_matches('"');
        assert!(bare.is_empty() || !all.contains(bare), "{all}");
    }
    let long = "x".repeat(257);
    let p = with_base(&format!("camouflage = true\ncamouflage_secret = {long}\n"));
    assert!(messages(&p)[0].contains("expected 1 to 256 characters"));
    for realm in ["a\\\\b", "a\u{7}b"] {
        let p = with_base(&format!(
            "camouflage = true\ncamouflage_secret = s3cret\ncamouflage_realm = \"{realm}\"\n"
        ));
        assert!(
            messages(&p)[0].contains("error: camouflage_realm"),
            "{realm:?}: {:?}",
            messages(&p)
        );
    }
    // Every character RFC 3986 lets a query carry as it is.
    let p = with_base("camouflage = true\ncamouflage_secret = Az09-._~!$&'()*+,;=:@/?%41\n");
    assert_eq!(messages(&p), Vec::<String>::new());
    assert_eq!(
        format!("{:?}", p.config.camouflage()),
        "Some(Camouflage { secret: Secret(<hidden>), realm: None })"
    );
}

#[test]
fn vhosts_inherit_and_override() {
    let vhost = "[vhost:other.example]\nserver-cert = /c2.pem\nserver-key = /k2.pem\n";
    let p = with_base(&format!(
        "camouflage = true\ncamouflage_secret = {SECRET}\n{vhost}camouflage = false\n\
         [vhost:third.example]\nserver-cert = /c3.pem\nserver-key = /k3.pem\n\
         camouflage_realm = \"Third\"\n"
    ));
    assert_eq!(messages(&p), Vec::<String>::new());
    assert!(p.config.camouflage().is_some());
    assert_eq!(p.config.vhosts[0].config.camouflage(), None);
    assert_eq!(
        p.config.vhosts[1].config.camouflage(),
        Some(Camouflage {
            secret: Secret(SECRET.into()),
            realm: Some("Third".into()),
        })
    );
}
