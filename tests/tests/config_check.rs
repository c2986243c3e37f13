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
    // Every line in the parser's shape, naming the file and the line of the option concerned;
    // nothing from sec-mod's own log mixed in; one line per problem.
    let origin = conf.display().to_string();
    for line in out.lines() {
        let shape = line
            .strip_prefix(&origin)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(": "))
            .is_some_and(|(n, rest)| {
                n.parse::<usize>().is_ok()
                    && ["error: ", "warning: ", "note: "]
                        .iter()
                        .any(|s| rest.starts_with(s))
            });
        assert!(shape, "not in FILE:LINE: severity: shape: {line:?}\n{out}");
    }
    assert!(
        out.contains(":1: error: auth: plain authentication: cannot read"),
        "{out}"
    );
    assert!(out.contains(":4: error: server-key: "), "{out}");
    assert!(
        out.contains(":5: error: run-as-user: no user named"),
        "{out}"
    );
    assert_eq!(out.matches("missing-passwd").count(), 1, "{out}");

    std::fs::write(&conf, "auth = \"plain[passwd=relative/passwd]\"\nserver-cert = cert.pem\nserver-key = /x/key.pem\n").unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok);
    assert!(
        out.contains("absolute"),
        "relative paths not reported:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn per_user_and_per_group_files_are_checked() {
    let dir = temp_dir("perfiles");
    let pki = pki::make(&dir, "127.0.0.1");
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    let users = dir.join("users");
    let groups = dir.join("groups");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::create_dir_all(&groups).unwrap();
    std::fs::write(users.join("alice"), "dpd = 30\nroute = 10.1.0.0/16\n").unwrap();
    std::fs::write(groups.join("staff"), "dns = 10.0.0.53\n").unwrap();
    let default_user = dir.join("user.conf");
    std::fs::write(&default_user, "idle-timeout = 600\n").unwrap();
    let conf = dir.join("ocserv.conf");
    std::fs::write(
        &conf,
        format!(
            "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\nrun-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\nconfig-per-user = {}\nconfig-per-group = {}\ndefault-user-config = {}\n",
            passwd.display(),
            pki.cert.display(),
            pki.key.display(),
            users.display(),
            groups.display(),
            default_user.display(),
        ),
    )
    .unwrap();
    let (ok, out) = check(&conf);
    assert!(ok, "good per-user files failed the check:\n{out}");

    // A bad line in a user file, a group file and the default file: each named with its line.
    std::fs::write(users.join("bob"), "dpd = 30\nroute = 10.0.0.0/33\n").unwrap();
    std::fs::write(groups.join("ops"), "bogus-option = 1\n").unwrap();
    std::fs::write(&default_user, "\n\nidle-timeout = soon\n").unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok, "bad per-user files passed the check:\n{out}");
    for want in [
        format!("{}:2: error: route:", users.join("bob").display()),
        format!("{}:1: error: bogus-option:", groups.join("ops").display()),
        format!("{}:3: error: idle-timeout:", default_user.display()),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("alice"), "a good file was reported:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-t` checks every vhost's key against its certificate and its password file, naming the
/// vhost.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn vhost_keys_and_password_files_are_checked() {
    let dir = temp_dir("vhost");
    let a = pki::make(&dir, "127.0.0.1");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let b = pki::make(&other, "b.example.com");
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    let conf = dir.join("ocserv.conf");
    let base = format!(
        "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\n\
         run-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\n\
         [vhost:b.example.com]\nserver-cert = {}\n",
        passwd.display(),
        a.cert.display(),
        a.key.display(),
        b.cert.display(),
    );
    // The vhost's own key: fine.
    std::fs::write(&conf, format!("{base}server-key = {}\n", b.key.display())).unwrap();
    let (ok, out) = check(&conf);
    assert!(ok, "a good vhost failed the check:\n{out}");
    // The default section's key with the vhost's certificate, and a missing password file.
    let missing = dir.join("no-such-ocpasswd");
    std::fs::write(
        &conf,
        format!(
            "{base}server-key = {}\nauth = \"plain[passwd={}]\"\n",
            a.key.display(),
            missing.display()
        ),
    )
    .unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok, "a vhost with a wrong key passed:\n{out}");
    assert!(
        out.contains("[vhost:b.example.com] server key") && out.contains("does not match"),
        "{out}"
    );
    assert!(out.contains(&*missing.to_string_lossy()), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `session-db`: `-t` reports a path that cannot hold the database and creates nothing for
/// one that can (the default is in /var/lib: a check must not write there).
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn session_db_is_checked_without_being_created() {
    let dir = temp_dir("sessiondb");
    let pki = pki::make(&dir, "127.0.0.1");
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    std::fs::write(dir.join("plain-file"), "").unwrap();
    let conf = dir.join("ocserv.conf");
    let base = format!(
        "auth = \"plain[passwd={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\nrun-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\n",
        passwd.display(),
        pki.cert.display(),
        pki.key.display()
    );
    let bad = dir.join("plain-file/sessions.db");
    std::fs::write(&conf, format!("{base}session-db = {}\n", bad.display())).unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok, "a session-db under a plain file passed:\n{out}");
    assert!(out.contains("session-db"), "not named:\n{out}");

    let good = dir.join("new/sessions.db");
    std::fs::write(&conf, format!("{base}session-db = {}\n", good.display())).unwrap();
    let (ok, out) = check(&conf);
    assert!(ok, "a creatable session-db failed:\n{out}");
    assert!(
        !dir.join("new").exists(),
        "-t created the database directory"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-t` reads the one-time password file of `plain[...,otp=FILE]` and names its bad line.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn otp_file_is_checked() {
    let dir = temp_dir("otp");
    let pki = pki::make(&dir, "127.0.0.1");
    let passwd = dir.join("ocpasswd");
    std::fs::write(&passwd, "").unwrap();
    let otp = dir.join("users.oath");
    std::fs::write(&otp, "HOTP/T30 alice - 3132\nHOTP/T45 bob - 3132\n").unwrap();
    let conf = dir.join("ocserv.conf");
    std::fs::write(
        &conf,
        format!(
            "auth = \"plain[passwd={},otp={}]\"\ntcp-port = 4443\nserver-cert = {}\nserver-key = {}\nrun-as-user = nobody\nrun-as-group = nogroup\nipv4-network = 192.168.1.0/24\n",
            passwd.display(),
            otp.display(),
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .unwrap();
    let (ok, out) = check(&conf);
    assert!(!ok, "a bad OTP file passed:\n{out}");
    let want = format!(
        "{}:1: error: auth: plain authentication: {}: line 2: unknown token type \"HOTP/T45\"",
        conf.display(),
        otp.display()
    );
    assert!(out.contains(&want), "{out}");
    std::fs::write(&otp, "HOTP/T30 alice - 3132\n").unwrap();
    let (ok, out) = check(&conf);
    assert!(ok, "a good OTP file failed the check:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
