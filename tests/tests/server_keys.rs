//! Every server key family ocserv loads, made by certtool (GnuTLS, what ocserv's documentation
//! uses) and by openssl, each used by a real openconnect login: RSA of GnuTLS's odd sizes,
//! P-384 and P-521, RSA-PSS, PKCS#1 / PKCS#8 / SEC1 with and without certtool's text
//! preamble, and encrypted keys opened with `key-pin` or `pin-file`. A wrong PIN stops
//! `rocserv -t` with an error naming the key file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use rocserv_e2e::{bin, pki, Client, ClientOptions, Lab, Server, WAIT};

const TEMPLATE: &str = "cn = \"vpn.test\"\ndns_name = \"vpn.test\"\nip_address = \"SERVER_IP\"\n\
                        expiration_days = 30\nsigning_key\nencryption_key\ntls_www_server\n";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key made by certtool with `args` and its self-signed certificate.
fn certtool(dir: &Path, name: &str, args: &[&str], server_ip: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let template = dir.join("template");
    std::fs::write(&template, TEMPLATE.replace("SERVER_IP", server_ip)).unwrap();
    run(Command::new("certtool")
        .args(["--generate-privkey", "--outfile"])
        .arg(&key)
        .args(args));
    run(Command::new("certtool")
        .args(["--generate-self-signed", "--load-privkey"])
        .arg(&key)
        .arg("--template")
        .arg(&template)
        .arg("--outfile")
        .arg(&cert));
    (key, cert)
}

/// A key made by `openssl genpkey` / `openssl ecparam` (`args` make it) and its certificate.
fn openssl(dir: &Path, name: &str, args: &[&str], pass: Option<&str>) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    // `-out` right after the command: `genrsa` wants its size last.
    run(Command::new("openssl")
        .arg(args[0])
        .arg("-out")
        .arg(&key)
        .args(&args[1..]));
    let mut req = Command::new("openssl");
    req.args([
        "req",
        "-new",
        "-x509",
        "-days",
        "30",
        "-subj",
        "/CN=vpn.test",
    ])
    .arg("-key")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    if let Some(pass) = pass {
        req.args(["-passin", &format!("pass:{pass}")]);
    }
    run(&mut req);
    (key, cert)
}

/// openconnect's pin of `cert` (SHA-256 of its SubjectPublicKeyInfo).
fn pin_of(cert: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    pki::pin_of_spki(&out.stdout)
}

/// Start a server with `key`/`cert` (+ `extra` options) and log alice in.
fn login_with(lab: &Lab, label: &str, key: &Path, cert: &Path, extra: &[(&str, &str)]) {
    let (key, cert) = (key.display().to_string(), cert.display().to_string());
    let mut overrides = vec![("server-key", key.as_str()), ("server-cert", cert.as_str())];
    overrides.extend_from_slice(extra);
    let server = Server::start(&lab.srv, &lab.config(&overrides));
    let opts = ClientOptions {
        servercert: Some(pin_of(cert.as_ref())),
        ..ClientOptions::password("alice", "alice-pw")
    };
    let mut client = Client::start(lab, &opts);
    if let Err(e) = client.wait_up(WAIT) {
        panic!(
            "{label}: no tunnel: {e}\nserver log:\n{}",
            server.log_text()
        );
    }
    drop(client);
    drop(server);
}

#[test]
#[ignore = "needs root, network namespaces, openconnect, certtool, openssl: run by tests/run-all.sh"]
fn certtool_keys_log_in() {
    let lab = Lab::new();
    let ip = lab.server_addr.to_string();
    let dir = lab.dir.join("certtool");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[(&str, &[&str])] = &[
        // The size ring refused ("failed to parse private key"): primes of 1216 bits.
        ("rsa-2432", &["--bits", "2432"]),
        ("rsa-3072", &["--bits", "3072"]),
        ("p384", &["--key-type=ecdsa", "--curve=secp384r1"]),
        ("p521", &["--key-type=ecdsa", "--curve=secp521r1"]),
        ("rsa-pss", &["--key-type=rsa-pss", "--bits", "2048"]),
    ];
    for (name, args) in cases {
        let (key, cert) = certtool(&dir, name, args, &ip);
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.starts_with("Public Key Info:"), "certtool's preamble");
        login_with(&lab, name, &key, &cert, &[]);
    }
    // Encrypted PKCS#8 (PBES2), PIN in a `pin-file`.
    let (key, cert) = certtool(&dir, "p256", &["--key-type=ecdsa"], &ip);
    let encrypted = dir.join("p256-enc.key");
    run(Command::new("certtool")
        .args(["--to-p8", "--password", "pin 1234", "--load-privkey"])
        .arg(&key)
        .arg("--outfile")
        .arg(&encrypted));
    let pin_file = dir.join("pin.txt");
    std::fs::write(&pin_file, "pin 1234\n").unwrap();
    let pin_file = pin_file.display().to_string();
    login_with(
        &lab,
        "encrypted p256",
        &encrypted,
        &cert,
        &[("pin-file", &pin_file)],
    );
}

#[test]
#[ignore = "needs root, network namespaces, openconnect, openssl: run by tests/run-all.sh"]
fn openssl_keys_log_in() {
    let lab = Lab::new();
    let dir = lab.dir.join("openssl");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("rsa-4096-pkcs1", &["genrsa", "-traditional", "4096"]),
        (
            "rsa-2432-pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2432",
            ],
        ),
        (
            "p521-sec1",
            &["ecparam", "-name", "secp521r1", "-genkey", "-noout"],
        ),
        (
            "rsa-pss",
            &[
                "genpkey",
                "-algorithm",
                "RSA-PSS",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        ),
    ];
    for (name, args) in cases {
        let (key, cert) = openssl(&dir, name, args, None);
        login_with(&lab, name, &key, &cert, &[]);
    }
    let (key, cert) = openssl(
        &dir,
        "p384-enc",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-aes256",
            "-pass",
            "pass:s3cret",
        ],
        Some("s3cret"),
    );
    login_with(
        &lab,
        "encrypted p384",
        &key,
        &cert,
        &[("key-pin", "s3cret")],
    );
}

#[test]
#[ignore = "spawns the built binaries and openssl: run by tests/run-all.sh"]
fn wrong_pin_is_refused_naming_the_key_file() {
    let dir = std::env::temp_dir().join(format!("rocserv-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = openssl(
        &dir,
        "enc",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:right",
        ],
        Some("right"),
    );
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    let conf = |pin: &str| {
        let path = dir.join(format!("ocserv-{pin}.conf"));
        std::fs::write(
            &path,
            format!(
                "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\n\
                 server-key = {}\nkey-pin = {pin}\nrun-as-user = nobody\n\
                 run-as-group = nogroup\nipv4-network = 192.168.1.0/24\n",
                passwd.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        path
    };
    let check = |conf: &Path| {
        let out = Command::new(bin("rocserv"))
            .args(["-t", "-c"])
            .arg(conf)
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, out) = check(&conf("wrong"));
    assert!(!ok, "a wrong key-pin passed the check:\n{out}");
    assert!(out.contains(&*key.display().to_string()), "{out}");
    assert!(out.contains("wrong `key-pin`"), "{out}");
    let (ok, out) = check(&conf("right"));
    assert!(ok, "the right key-pin failed the check:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
