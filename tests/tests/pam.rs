//! `auth = "pam"` with a real local user and a PAM service file that this test creates and
//! removes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// A local user and the `ocserv` PAM service (the service name ocserv uses, and so do we),
/// restored to what was there before on drop.
struct PamFixture {
    user: String,
    saved_service: Option<Vec<u8>>,
}

const SERVICE: &str = "/etc/pam.d/ocserv";

impl PamFixture {
    fn new(password: &str) -> Self {
        let user = format!("rocpam{}", std::process::id() % 100_000);
        let saved_service = std::fs::read(SERVICE).ok();
        let fixture = Self {
            user,
            saved_service,
        };
        let status = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &fixture.user,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "useradd failed");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            writeln!(
                chpasswd.stdin.take().unwrap(),
                "{}:{password}",
                fixture.user
            )
            .unwrap();
        }
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
        std::fs::write(
            SERVICE,
            "auth required pam_unix.so nodelay\naccount required pam_unix.so\n",
        )
        .unwrap();
        fixture
    }
}

impl Drop for PamFixture {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        match &self.saved_service {
            Some(bytes) => {
                let _ = std::fs::write(SERVICE, bytes);
            }
            None => {
                let _ = std::fs::remove_file(SERVICE);
            }
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and PAM: run by tests/run-all.sh"]
fn pam_user_logs_in_and_wrong_password_is_refused() {
    let lab = Lab::new();
    let fixture = PamFixture::new("pam-secret-1");
    let server = Server::start(&lab.srv, &lab.config(&[("auth", "\"pam\"")]));

    let (status, output) = run_to_exit(&lab, &fixture.user, "wrong", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    assert!(!output.contains("CSTP connected"), "{output}");

    let mut client = Client::start(
        &lab,
        &ClientOptions::password(&fixture.user, "pam-secret-1"),
    );
    client.wait_up(WAIT).expect("PAM login");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    // As ocserv: a PAM user's group is the primary Unix group (useradd made one of its name).
    let logged = format!("user '{0}' logged in via pam (group '{0}'", fixture.user);
    assert!(server.log_text().contains(&logged), "{}", server.log_text());
}
