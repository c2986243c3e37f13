//! Client certificates (issue 11 item 1) with the real openconnect (`-c` / `-k`): a good
//! certificate logs in without any form, a revoked one or one of another CA is refused; with
//! `auth = certificate` plus `auth = plain` both must pass for the SAME user (ocserv #694: the
//! certificate of alice with the password of bob must not log in).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use rocserv_e2e::occtl::json;
use rocserv_e2e::pki::{ClientCa, ClientCert};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

const UID: &str = "0.9.2342.19200300.100.1.1";

struct Setup {
    server: Server,
    socket: PathBuf,
    ca: ClientCa,
    crl: PathBuf,
}

/// A server with `auth` lines `auth` (the first replaces the lab's plain one).
fn start(lab: &Lab, auth: &[&str]) -> Setup {
    let ca = ClientCa::new(&lab.dir, "Client CA");
    let crl = lab.dir.join("crl.pem");
    ca.write_crl(&crl, &[]);
    let socket = lab.dir.join("occtl.socket");
    let first = format!("\"{}\"", auth[0]);
    let conf = lab.config(&[
        ("auth", &first),
        ("ca-cert", ca.cert.to_str().unwrap()),
        ("crl", crl.to_str().unwrap()),
        ("cert-user-oid", UID),
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        // Several refused logins from one address.
        ("max-ban-score", "0"),
    ]);
    let more: String = auth[1..]
        .iter()
        .map(|a| format!("auth = \"{a}\"\n"))
        .collect();
    let text = std::fs::read_to_string(&conf).unwrap() + &more;
    std::fs::write(&conf, text).unwrap();
    Setup {
        server: Server::start(&lab.srv, &conf),
        socket,
        ca,
        crl,
    }
}

fn with_cert(cert: &ClientCert, user: Option<(&str, &str)>) -> ClientOptions {
    let mut opts = match user {
        Some((user, password)) => ClientOptions::password(user, password),
        None => ClientOptions::default(),
    };
    opts.extra = cert.args();
    opts
}

/// openconnect gives up, and the server logs `why` for that login.
fn refused(lab: &Lab, s: &Setup, opts: &ClientOptions, why: &str) {
    let skip = s.server.log_len();
    let mut client = Client::start(lab, opts);
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "got in:\n{}", client.output());
    s.server.wait_for_log_after(skip, why, WAIT).unwrap();
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_certificate_alone_logs_in_without_a_form_unless_revoked_or_foreign() {
    let lab = Lab::new();
    let s = start(&lab, &["certificate"]);

    // No user name, no password: openconnect (--non-inter) would fail at any form.
    let alice = s.ca.client("alice", 10);
    let mut client = Client::start(&lab, &with_cert(&alice, None));
    client.wait_up(WAIT).expect("alice by certificate");
    let users = json(&s.socket, &["show", "users"]);
    assert_eq!(users[0]["Username"], "alice", "{users}");
    s.server
        .wait_for_log("user 'alice' logged in via certificate", WAIT)
        .unwrap();
    drop(client);

    // Revoked: the CRL is re-read at the next login, no reload.
    let bob = s.ca.client("bob", 11);
    s.ca.write_crl(&s.crl, &[11]);
    refused(
        &lab,
        &s,
        &with_cert(&bob, None),
        "certificate: not accepted",
    );

    // Another CA's certificate for alice.
    let other = ClientCa::new(&lab.dir, "Other CA");
    let forged = other.client("alice", 10);
    refused(
        &lab,
        &s,
        &with_cert(&forged, None),
        "certificate: not accepted",
    );

    // No certificate at all: the handshake asks for one and fails without.
    let mut client = Client::start(&lab, &ClientOptions::default());
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "got in:\n{}", client.output());
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn certificate_and_password_must_name_the_same_user() {
    let lab = Lab::new();
    let plain = format!("plain[passwd={}]", lab.passwd.display());
    let s = start(&lab, &["certificate", &plain]);
    let alice = s.ca.client("alice", 20);

    // ocserv #694: alice's certificate with bob's (right) password.
    refused(
        &lab,
        &s,
        &with_cert(&alice, Some(("bob", "bob-pw"))),
        "the certificate names user \"alice\" but the password was for \"bob\"",
    );
    // alice's certificate, wrong password.
    refused(
        &lab,
        &s,
        &with_cert(&alice, Some(("alice", "bob-pw"))),
        "login failed for user 'alice' via certificate+plain: wrong password",
    );
    // No certificate: the password alone is not enough.
    refused(
        &lab,
        &s,
        &ClientOptions::password("alice", "alice-pw"),
        "the client sent no certificate",
    );
    // Both right.
    let mut client = Client::start(&lab, &with_cert(&alice, Some(("alice", "alice-pw"))));
    client
        .wait_up(WAIT)
        .expect("alice with certificate and password");
    let users = json(&s.socket, &["show", "users"]);
    assert_eq!(users[0]["Username"], "alice", "{users}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn enable_auth_certificate_is_an_alternative_to_the_password() {
    let lab = Lab::new();
    // The lab's `auth` is plain.
    let ca = ClientCa::new(&lab.dir, "Alt CA");
    let crl = lab.dir.join("alt-crl.pem");
    ca.write_crl(&crl, &[]);
    let socket = lab.dir.join("alt-occtl.socket");
    let conf = lab.config(&[
        ("enable-auth", "certificate"),
        ("ca-cert", ca.cert.to_str().unwrap()),
        ("crl", crl.to_str().unwrap()),
        ("cert-user-oid", UID),
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("max-ban-score", "0"),
    ]);
    let server = Server::start(&lab.srv, &conf);

    // A certificate, no password: in by the certificate alone.
    let carol = ca.client("carol", 30);
    let mut client = Client::start(&lab, &with_cert(&carol, None));
    client.wait_up(WAIT).expect("carol by certificate");
    assert_eq!(json(&socket, &["show", "users"])[0]["Username"], "carol");
    server
        .wait_for_log("user 'carol' logged in via plain or certificate", WAIT)
        .unwrap();
    drop(client);

    // No certificate: the password form as usual.
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("bob by password");
    assert_eq!(json(&socket, &["show", "users"])[0]["Username"], "bob");
}
