//! Refused logins: wrong password, unknown user, locked user. Also: a password file written by
//! ocserv's own ocpasswd is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

fn assert_refused(lab: &Lab, user: &str, password: &str) {
    let (status, output) = run_to_exit(lab, user, password, WAIT);
    let status = status.expect("openconnect should give up on its own");
    assert!(
        !status.success(),
        "login as {user} with a wrong password succeeded:\n{output}"
    );
    assert!(!output.contains("CSTP connected"), "{output}");
    assert!(
        output.contains("Login failed") || output.contains("Failed to complete authentication"),
        "openconnect did not report a failed login:\n{output}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn wrong_password_and_unknown_user_are_refused() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    assert_refused(&lab, "alice", "not-her-password");
    assert_refused(&lab, "mallory", "whatever");
    // The server is still fine and a good login works afterwards.
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("good login after bad ones");
    drop(server);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn locked_user_is_refused_and_unlocked_user_gets_in() {
    let lab = Lab::new();
    let ocpasswd = rocserv_e2e::bin("ocpasswd");
    let status = std::process::Command::new(&ocpasswd)
        .arg("-c")
        .arg(&lab.passwd)
        .args(["-l", "carol"])
        .status()
        .unwrap();
    assert!(status.success());
    let _server = Server::start(&lab.srv, &lab.config(&[]));
    assert_refused(&lab, "carol", "carol-pw");
    let status = std::process::Command::new(&ocpasswd)
        .arg("-c")
        .arg(&lab.passwd)
        .args(["-u", "carol"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut client = Client::start(&lab, &ClientOptions::password("carol", "carol-pw"));
    client
        .wait_up(WAIT)
        .expect("unlocked user logs in (the file is re-read per login)");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn password_file_from_ocserv_ocpasswd_is_accepted() {
    let theirs = Path::new("/usr/bin/ocpasswd");
    assert!(
        theirs.is_file(),
        "ocserv's ocpasswd is missing (.ci/run installs the ocserv package)"
    );
    let lab = Lab::new();
    let passwd = lab.dir.join("ocserv-written");
    lab::add_user_with(theirs, &passwd, "dave", "dave-pw", Some("staff"));
    let conf = lab.config(&[("auth", &format!("\"plain[passwd={}]\"", passwd.display()))]);
    let _server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(&lab, &ClientOptions::password("dave", "dave-pw"));
    client
        .wait_up(WAIT)
        .expect("login with a hash written by ocserv's ocpasswd");
}

/// TLS 1.2 only (`tls-priorities` without 1.3): the worker's one signature is sec-mod's TLS 1.2
/// ServerKeyExchange check's case; a password login and a cookie reconnect (a handshake
/// signature, then CONNECT without a login) work, and sec-mod refuses nothing.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn tls12_login_and_cookie_reconnect() {
    let lab = Lab::new();
    let server = Server::start(
        &lab.srv,
        &lab.config(&[(
            "tls-priorities",
            "\"NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.3\"",
        )]),
    );
    let mut client = Client::start(&lab, &ClientOptions::password("bob", "bob-pw"));
    client.wait_up(WAIT).expect("TLS 1.2 login");
    assert!(
        client.output().contains("(TLS1.2)"),
        "not TLS 1.2:\n{}",
        client.output()
    );
    drop(client);
    let cookie =
        rocserv_e2e::client::authenticate(&lab, "alice", "alice-pw").expect("authenticate");
    let mut reconnect = Client::start(&lab, &ClientOptions::cookie(&cookie));
    reconnect.wait_up(WAIT).expect("TLS 1.2 cookie reconnect");
    assert_sec_mod_refused_nothing(&server);
}

/// The default (TLS 1.3) login and cookie reconnect: sec-mod signs the CertificateVerify of
/// each handshake and refuses nothing.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn tls13_login_and_cookie_reconnect_sign_once() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let cookie =
        rocserv_e2e::client::authenticate(&lab, "alice", "alice-pw").expect("authenticate");
    let mut reconnect = Client::start(&lab, &ClientOptions::cookie(&cookie));
    reconnect.wait_up(WAIT).expect("cookie reconnect");
    assert!(
        reconnect.output().contains("(TLS1.3)"),
        "not TLS 1.3:\n{}",
        reconnect.output()
    );
    assert_sec_mod_refused_nothing(&server);
}

/// sec-mod's lines reach the server log (a login is there), and none says it refused to sign.
fn assert_sec_mod_refused_nothing(server: &Server) {
    let log = server.log_text();
    assert!(log.contains("logged in via"), "no sec-mod lines:\n{log}");
    for refusal in ["refusing to sign", "signature request after"] {
        assert!(!log.contains(refusal), "{refusal}:\n{log}");
    }
}
