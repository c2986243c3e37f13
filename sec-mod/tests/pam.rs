//! PAM through `nonstick` against a real local user (root only: it creates a user and a PAM
//! service file, and pam_unix needs root to read /etc/shadow). Ignored by default; CI runs it
//! with `cargo test -p rocserv-sec-mod -- --ignored` as root. Everything it creates is removed
//! by a Drop guard, also when an assertion fails.
// Test helpers outside #[test] functions may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rocserv_sec_mod::auth::pam::{authenticate, Pam};
use rocserv_sec_mod::auth::{AuthBackend, Event, Login, Rejection, Verdict};

const PASSWORD: &str = "Corr3ct-h0rse";

/// A local user and a PAM service file, removed on drop.
struct PamFixture {
    user: String,
    service: String,
    service_file: PathBuf,
}

impl PamFixture {
    fn new() -> Self {
        // Unique per fixture: tests of this binary run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let user = format!("rocsrvt{pid}x{n}");
        let service = format!("rocserv-test-{pid}-{n}");
        let service_file = PathBuf::from("/etc/pam.d").join(&service);
        // Build the guard first so that a failure below still cleans up what exists.
        let fixture = Self {
            user,
            service,
            service_file,
        };
        std::fs::write(
            &fixture.service_file,
            "auth required pam_unix.so nodelay\naccount required pam_unix.so\n",
        )
        .unwrap();
        let status = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin"])
            .arg(&fixture.user)
            .status()
            .unwrap();
        assert!(status.success(), "useradd failed");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(
            chpasswd.stdin.take().unwrap(),
            "{}:{PASSWORD}",
            fixture.user
        )
        .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
        fixture
    }

    fn login(&self, password: &str) -> Login {
        Login {
            username: self.user.clone(),
            password: password.into(),
            group: None,
            ..Default::default()
        }
    }
}

impl Drop for PamFixture {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = std::fs::remove_file(&self.service_file);
    }
}

fn no_more_questions(message: &str, _secret: bool) -> Option<String> {
    panic!("unexpected PAM prompt {message:?}")
}

#[test]
#[ignore = "needs root: creates a local user and /etc/pam.d/rocserv-test-<pid>"]
fn pam_accepts_the_right_password_only() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root"
    );
    let f = PamFixture::new();

    assert_eq!(
        authenticate(&f.service, &f.login(PASSWORD), &mut no_more_questions),
        // As ocserv: the account's primary group (useradd made one of its name).
        Verdict::accepted(f.user.clone())
    );
    assert!(matches!(
        authenticate(&f.service, &f.login("wrong"), &mut no_more_questions),
        Verdict::Rejected(Rejection::Pam(_))
    ));
    let stranger = Login {
        username: format!("{}x", f.user),
        ..f.login(PASSWORD)
    };
    assert!(matches!(
        authenticate(&f.service, &stranger, &mut no_more_questions),
        Verdict::Rejected(Rejection::Pam(_))
    ));
    // NULs would make nonstick panic inside the C callback: refused before PAM runs.
    assert_eq!(
        authenticate(&f.service, &f.login("a\0b"), &mut no_more_questions),
        Verdict::Rejected(Rejection::Malformed)
    );

    // The same through the backend, on its own thread, from async code.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = Pam::new(f.service.clone());
        let mut good = backend.begin(f.login(PASSWORD));
        assert_eq!(
            good.next().await,
            Event::Done(Verdict::accepted(f.user.clone()))
        );
        let mut bad = backend.begin(f.login("nope"));
        assert!(matches!(
            bad.next().await,
            Event::Done(Verdict::Rejected(Rejection::Pam(_)))
        ));
    });
}

const HARDENED_CHILD: &str = "ROCSERV_PAM_HARDENED_CHILD";

/// The PAM path works inside sec-mod's lock-down (`harden::apply`: capabilities, seccomp): a
/// child process of this test binary applies it and then runs pam_unix.
#[test]
#[ignore = "needs root: creates a local user and /etc/pam.d/rocserv-test-<pid>"]
fn pam_works_after_harden() {
    if let Ok(spec) = std::env::var(HARDENED_CHILD) {
        let (service, user) = spec.split_once(' ').unwrap();
        rocserv_sec_mod::harden::apply().unwrap();
        let login = |password: &str| Login {
            username: user.to_owned(),
            password: password.into(),
            group: None,
            ..Default::default()
        };
        let good = authenticate(service, &login(PASSWORD), &mut no_more_questions);
        let bad = authenticate(service, &login("wrong"), &mut no_more_questions);
        println!("good: {good:?}");
        println!("bad: {bad:?}");
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root"
    );
    let f = PamFixture::new();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pam_works_after_harden",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HARDENED_CHILD, format!("{} {}", f.service, f.user))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains(&format!("good: Accepted(Granted {{ group: {:?},", f.user)),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("bad: Rejected(Pam("), "{stdout}\n{stderr}");
}
