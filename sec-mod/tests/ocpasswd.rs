//! Runs the `ocpasswd` binary on a temporary file and checks the result with `proto::passwd`.
// Test helpers outside #[test] functions may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::TempDir;
use rocserv_proto::passwd::{self, Entry};
use rocserv_sec_mod::auth::crypt;

fn ocpasswd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocpasswd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn entries(path: &Path) -> Vec<Entry> {
    passwd::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "ocpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn add_lock_unlock_groups_delete() {
    let dir = TempDir::new("ocpasswd");
    let file = dir.path().join("ocpasswd");
    let f = file.to_str().unwrap();

    // Add (file created, mode 0600, `*` group, $5$ hash that verifies).
    ok(&ocpasswd(&["-c", f, "alice"], "alicepw\n"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:*:$5$"), "{text}");
    assert!(text.ends_with('\n'));
    let e = &entries(&file)[0];
    assert_eq!(e.hash.len(), "$5$".len() + 16 + 1 + 43);
    assert_eq!(crypt::verify("alicepw", &e.hash), Ok(true));
    assert_eq!(crypt::verify("alicepw\n", &e.hash), Ok(false));

    // A second user with groups; the first line stays byte-identical.
    ok(&ocpasswd(
        &["-c", f, "-g", "staff, admins", "bob"],
        "bobpw\r\n",
    ));
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.starts_with(&text), "{after}");
    let es = entries(&file);
    assert_eq!(es[1].username, "bob");
    assert_eq!(es[1].groups, ["staff", "admins"]);
    assert_eq!(crypt::verify("bobpw", &es[1].hash), Ok(true));

    // Lock and unlock.
    ok(&ocpasswd(&["-c", f, "-l", "bob"], ""));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("bob:staff,admins:!$5$"));
    assert!(entries(&file)[1].locked);
    ok(&ocpasswd(&["--passwd", f, "--unlock", "bob"], ""));
    assert!(!entries(&file)[1].locked);

    // A new password keeps the groups; -g replaces them.
    ok(&ocpasswd(&["-c", f, "bob"], "newpw\n"));
    let es = entries(&file);
    assert_eq!(es[1].groups, ["staff", "admins"]);
    assert_eq!(crypt::verify("newpw", &es[1].hash), Ok(true));
    ok(&ocpasswd(&["-c", f, "-g", "ops", "bob"], "newpw\n"));
    assert_eq!(entries(&file)[1].groups, ["ops"]);

    // An existing mode is kept.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&ocpasswd(&["-c", f, "-d", "alice"], ""));
    let es = entries(&file);
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].username, "bob");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(!dir.path().join("ocpasswd.tmp").exists());
}

#[test]
fn errors_exit_1() {
    let dir = TempDir::new("ocpasswd-err");
    let file = dir.path().join("ocpasswd");
    let f = file.to_str().unwrap();
    // Missing file for -l/-u/-d, empty password, unknown user, conflicting flags, no user.
    assert_eq!(ocpasswd(&["-c", f, "-l", "x"], "").status.code(), Some(1));
    assert_eq!(ocpasswd(&["-c", f, "alice"], "\n").status.code(), Some(1));
    assert!(!file.exists());
    ok(&ocpasswd(&["-c", f, "alice"], "pw\n"));
    assert_eq!(
        ocpasswd(&["-c", f, "-d", "nobody"], "").status.code(),
        Some(1)
    );
    assert_eq!(
        ocpasswd(&["-c", f, "-l", "-u", "alice"], "").status.code(),
        Some(1)
    );
    assert_eq!(ocpasswd(&["-c", f], "").status.code(), Some(1));
    assert_eq!(ocpasswd(&["-c", f, "a:b"], "pw\n").status.code(), Some(1));
    // A stale temporary file is a lock, as in ocserv.
    std::fs::write(dir.path().join("ocpasswd.tmp"), "").unwrap();
    let out = ocpasswd(&["-c", f, "bob"], "pw\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    assert_eq!(entries(&file).len(), 1);
}

#[test]
fn help_exits_0() {
    let out = ocpasswd(&["-h"], "");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--passwd", "--groupname", "--delete", "--lock", "--unlock"] {
        assert!(help.contains(flag), "{help}");
    }
}

/// `--version`: the first line in the shape of ocserv's ocpasswd's (`ocpasswd - 1.1.6`).
#[test]
fn version_line_parses_like_ocserv_ocpasswd() {
    let out = ocpasswd(&["--version"], "");
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().next(),
        Some(&*format!("ocpasswd - {}", env!("CARGO_PKG_VERSION")))
    );
}
