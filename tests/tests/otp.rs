//! `auth = "plain[passwd=FILE,otp=FILE]"`: one-time passwords (oath-toolkit's users file) asked
//! as a second form after the password, with the real openconnect's soft tokens
//! (`--token-mode=totp|hotp`); wrong and replayed codes refused, the used code recorded in the
//! file by sec-mod (uid 0 without CAP_DAC_OVERRIDE, under seccomp) so that a restart does not
//! accept it again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;
use rocserv_e2e::client::authenticate;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// RFC 4226's test key ("12345678901234567890") and two more.
const ALICE_KEY: &str = "3132333435363738393031323334353637383930";
const BOB_KEY: &str = "0102030405060708090a0b0c0d0e0f1011121314";
const CAROL_KEY: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4";

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 4226 HOTP, 6 digits (the test's own, to post codes openconnect would not pick).
fn hotp(key_hex: &str, counter: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &unhex(key_hex));
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

fn write_otp_file(lab: &Lab) -> PathBuf {
    let path = lab.dir.join("users.oath");
    std::fs::write(
        &path,
        format!(
            "# one-time password tokens\nHOTP/T30 alice - {ALICE_KEY}\nHOTP/T30\tbob\t-\t{BOB_KEY}\nHOTP carol - {CAROL_KEY}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn otp_config(lab: &Lab, otp: &Path) -> PathBuf {
    lab.config(&[
        (
            "auth",
            &format!(
                "\"plain[passwd={},otp={}]\"",
                lab.passwd.display(),
                otp.display()
            ),
        ),
        // Several refused logins from the one client address.
        ("max-ban-score", "0"),
    ])
}

/// The fields of `user`'s line in the users file.
fn line_of(path: &Path, user: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.get(1).map(String::as_str) == Some(user))
        .unwrap_or_else(|| panic!("no line for {user} in:\n{text}"))
}

fn token_options(user: &str, password: &str, mode: &str, secret: &str) -> ClientOptions {
    let mut opts = ClientOptions::password(user, password);
    opts.extra = vec![
        format!("--token-mode={mode}"),
        format!("--token-secret={secret}"),
    ];
    opts
}

fn refused(lab: &Lab, opts: &ClientOptions) -> String {
    let mut client = Client::start(lab, opts);
    let status = client.wait_exit(WAIT).expect("openconnect gives up");
    let output = client.output();
    assert!(!status.success(), "login succeeded:\n{output}");
    assert!(!output.contains("CSTP connected"), "{output}");
    output
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn totp_second_form_wrong_and_replayed_codes() {
    let lab = Lab::new();
    let otp = write_otp_file(&lab);
    let server = Server::start(&lab.srv, &otp_config(&lab, &otp));
    server
        .wait_for_log("one-time password file", WAIT)
        .expect("sec-mod reports the OTP file");

    // openconnect's TOTP soft token fills the second form (`secondary_password`).
    let mut client = Client::start(
        &lab,
        &token_options("alice", "alice-pw", "totp", &format!("0x{ALICE_KEY}")),
    );
    client.wait_up(WAIT).expect("password + TOTP login");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    server
        .wait_for_log("user 'alice' logged in via plain", WAIT)
        .unwrap();
    drop(client);
    // sec-mod (uid 0, no CAP_DAC_OVERRIDE, seccomp) rewrote the root-owned file, liboath's
    // layout, keeping its mode and owner.
    let alice = line_of(&otp, "alice");
    assert_eq!(alice.len(), 7, "{alice:?}");
    assert_eq!(alice[..4], ["HOTP/T30", "alice", "-", ALICE_KEY]);
    let meta = std::fs::metadata(&otp).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 0, 0)
    );

    // A wrong code (from ten minutes ago) after the right password: refused.
    let now = step_now();
    let window: Vec<String> = (now - 1..=now + 2).map(|t| hotp(BOB_KEY, t)).collect();
    let wrong = (10..20)
        .map(|back| hotp(BOB_KEY, now - back))
        .find(|c| !window.contains(c))
        .unwrap();
    let before = server.log_len();
    let err = authenticate(&lab, "bob", &format!("bob-pw\n{wrong}")).unwrap_err();
    assert!(!err.contains("COOKIE="), "{err}");
    server
        .wait_for_log_after(
            before,
            "login failed for user 'bob' via plain: wrong one-time password",
            WAIT,
        )
        .unwrap();

    // The current code works once (posted as the second line on stdin); the same code again,
    // still inside its window, is a replay.
    let code = hotp(BOB_KEY, step_now());
    authenticate(&lab, "bob", &format!("bob-pw\n{code}")).expect("first use of the code");
    let before = server.log_len();
    authenticate(&lab, "bob", &format!("bob-pw\n{code}")).expect_err("second use refused");
    server
        .wait_for_log_after(
            before,
            "login failed for user 'bob' via plain: one-time password already used (replay)",
            WAIT,
        )
        .unwrap();
    assert_eq!(line_of(&otp, "bob")[5], code);
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn hotp_code_stays_used_across_a_restart() {
    let lab = Lab::new();
    let otp = write_otp_file(&lab);
    let conf = otp_config(&lab, &otp);
    let server = Server::start(&lab.srv, &conf);
    let mut client = Client::start(
        &lab,
        &token_options("carol", "carol-pw", "hotp", &format!("0x{CAROL_KEY},0")),
    );
    client
        .wait_up(WAIT)
        .expect("password + HOTP (counter 0) login");
    drop(client);
    let carol = line_of(&otp, "carol");
    assert_eq!(
        carol[4..6],
        ["0".to_owned(), hotp(CAROL_KEY, 0)],
        "{carol:?}"
    );
    drop(server);

    let server = Server::start(&lab.srv, &conf);
    refused(
        &lab,
        &token_options("carol", "carol-pw", "hotp", &format!("0x{CAROL_KEY},0")),
    );
    server
        .wait_for_log(
            "login failed for user 'carol' via plain: one-time password already used (replay)",
            WAIT,
        )
        .unwrap();
    // A user of the password file without a token is refused, as ocserv does.
    rocserv_e2e::lab::add_user(&lab.passwd, "dave", "dave-pw", None);
    refused(
        &lab,
        &token_options("dave", "dave-pw", "hotp", &format!("0x{CAROL_KEY},1")),
    );
    server
        .wait_for_log(
            "login failed for user 'dave' via plain: user has no token in the one-time password file",
            WAIT,
        )
        .unwrap();
    let mut client = Client::start(
        &lab,
        &token_options("carol", "carol-pw", "hotp", &format!("0x{CAROL_KEY},1")),
    );
    client.wait_up(WAIT).expect("the next HOTP code");
    assert_eq!(line_of(&otp, "carol")[4], "1");
}

/// `plain[otp=FILE]` alone (ocserv accepts it): the only question is the one-time password, in
/// the login form's password field.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn otp_file_alone_asks_only_the_code() {
    let lab = Lab::new();
    let otp = write_otp_file(&lab);
    let conf = lab.config(&[
        ("auth", &format!("\"plain[otp={}]\"", otp.display())),
        ("max-ban-score", "0"),
    ]);
    let server = Server::start(&lab.srv, &conf);
    let code = hotp(ALICE_KEY, step_now());
    authenticate(&lab, "alice", &code).expect("login with the code alone");
    server
        .wait_for_log("user 'alice' logged in via plain", WAIT)
        .unwrap();
    // A password is not a code.
    authenticate(&lab, "bob", "bob-pw").expect_err("a password instead of the code");
    server
        .wait_for_log(
            "login failed for user 'bob' via plain: wrong one-time password",
            WAIT,
        )
        .unwrap();
}
