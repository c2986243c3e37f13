//! `rocserv -t`: every problem of a configuration is listed and the exit status says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use rocserv_e2e::{bin, pki};

fn check(conf: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin("rocserv"))
        .args(["-t", "-c"])
        .arg(conf)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rocserv-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn good_configuration_passes() {
    let dir = temp_dir("good");
    let pki = pki::make(&dir, "127.0.0.1");
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    let conf = dir.join("ocserv.conf");
    std::fs::write(
        &conf,
        format!(
            "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\nrun-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\n",
            passwd.display(),
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .unwrap();
    let (ok, out) = check(&conf);
    assert!(ok, "a good configuration failed the check:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn every_problem_is_reported() {
    let dir = temp_dir("bad");
    let a = pki::make(&dir, "127.0.0.1");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let b = pki::make(&other, "127.0.0.1");
    let conf = dir.join("ocserv.conf");
    std::fs::write(
        &conf,
        format!(
            "auth = \"plain[passwd={}/missing-passwd]\"\nmax-clinets = 4\nserver-cert = {}\nserver-key = {}\nrun-as-user = no-such-user-here\n",
            dir.display(),
            a.cert.display(),
            b.key.display()
        ),
    )
    .unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok, "a broken configuration passed:\n{out}");
    assert!(
        out.contains("max-clinets") && out.contains("max-clients"),
        "unknown option not named with a suggestion:\n{out}"
    );
    assert!(
        out.contains(":2:"),
        "the line of the unknown option is missing:\n{out}"
    );
    assert!(
        out.contains("no-such-user-here"),
        "missing run-as-user not reported:\n{out}"
    );
    assert!(
        out.to_lowercase().contains("match"),
        "key/certificate mismatch not reported:\n{out}"
    );
    assert!(
        out.contains("missing-passwd"),
        "unreadable password file not reported:\n{out}"
    );

    std::fs::write(&conf, "auth = \"plain[passwd=relative/passwd]\"\nserver-cert = cert.pem\nserver-key = /x/key.pem\n").unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok);
    assert!(
        out.contains("absolute"),
        "relative paths not reported:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
