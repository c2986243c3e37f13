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

/// A group the test creates (high gid, above the usual `gid-min`), removed on drop.
struct UnixGroup {
    name: String,
}

impl UnixGroup {
    fn new(gid: u32, member: &str) -> Self {
        let name = format!("rocpg{}", std::process::id() % 100_000);
        let status = Command::new("groupadd")
            .args(["-g", &gid.to_string(), &name])
            .status()
            .unwrap();
        assert!(status.success(), "groupadd failed");
        let group = Self { name };
        let status = Command::new("usermod")
            .args(["-a", "-G", &group.name, member])
            .status()
            .unwrap();
        assert!(status.success(), "usermod failed");
        group
    }
}

impl Drop for UnixGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).status();
    }
}

/// PAM users' groups are their Unix groups: with `auto-select-group` the form offers the
/// system's groups from `gid-min` up; a member gets the group it asks for (`--authgroup`), the
/// primary group when it asks for none, and a group it is not in is refused.
#[test]
#[ignore = "needs root, network namespaces, openconnect and PAM: run by tests/run-all.sh"]
fn pam_users_get_their_unix_groups() {
    const GID_MIN: u32 = 61_000;
    let lab = Lab::new();
    let fixture = PamFixture::new("pam-secret-2");
    let group = UnixGroup::new(GID_MIN + std::process::id() % 1000, &fixture.user);
    let server = Server::start(
        &lab.srv,
        &lab.config(&[
            ("auth", &format!("\"pam[gid-min={GID_MIN}]\"")),
            ("auto-select-group", "true"),
            ("max-ban-score", "0"),
        ]),
    );

    let mut opts = ClientOptions::password(&fixture.user, "pam-secret-2");
    opts.extra = vec![format!("--authgroup={}", group.name)];
    let mut client = Client::start(&lab, &opts);
    client
        .wait_up(WAIT)
        .expect("PAM login with a supplementary group");
    let logged = format!(
        "user '{}' logged in via pam (group '{}'",
        fixture.user, group.name
    );
    server.wait_for_log(&logged, WAIT).unwrap();
    drop(client);

    // The primary group (useradd made one of the user's name) is below gid-min: not offered.
    let mut opts = ClientOptions::password(&fixture.user, "pam-secret-2");
    opts.extra = vec![format!("--authgroup={}", fixture.user)];
    let mut client = Client::start(&lab, &opts);
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "{}", client.output());
    let output = client.output();
    assert!(
        output.contains(&format!("Auth choice \"{}\" not available", fixture.user)),
        "{output}"
    );
    // openconnect then lists the labels it was offered: `Group: [a|b|...]`.
    let offered: Vec<&str> = output
        .lines()
        .find_map(|l| l.strip_prefix("Group: ["))
        .and_then(|l| l.split(']').next())
        .unwrap_or_else(|| panic!("no group prompt in:\n{output}"))
        .split('|')
        .collect();
    assert!(offered.contains(&group.name.as_str()), "{offered:?}");
    assert!(offered.contains(&"nogroup"), "{offered:?}");
    assert!(!offered.contains(&fixture.user.as_str()), "{offered:?}");

    // Offered but not the user's: refused.
    let mut opts = ClientOptions::password(&fixture.user, "pam-secret-2");
    opts.extra = vec!["--authgroup=nogroup".into()];
    let mut client = Client::start(&lab, &opts);
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "{}", client.output());
    server
        .wait_for_log(
            &format!(
                "login failed for user '{}' via pam: not a member of group \"nogroup\"",
                fixture.user
            ),
            WAIT,
        )
        .unwrap();
}

/// A PAM service file `/etc/pam.d/rocserv-<kind>-<pid>` with `stack`, removed on drop.
struct ServiceFile {
    name: String,
}

impl ServiceFile {
    fn new(kind: &str, stack: &str) -> Self {
        let name = format!("rocserv-{kind}-{}", std::process::id());
        let file = Self { name };
        std::fs::write(file.path(), stack).unwrap();
        file
    }

    fn path(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/pam.d").join(&self.name)
    }
}

impl Drop for ServiceFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// `pam[service=NAME]` (ocserv 1.5) runs that service's stack, not `ocserv`'s: with
/// `/etc/pam.d/ocserv` on pam_unix, a pam_deny service refuses the right password and a
/// pam_permit service accepts a wrong one.
#[test]
#[ignore = "needs root, network namespaces, openconnect and PAM: run by tests/run-all.sh"]
fn pam_service_option_picks_the_stack() {
    let lab = Lab::new();
    let fixture = PamFixture::new("pam-secret-3");
    let deny = ServiceFile::new(
        "deny",
        "auth required pam_deny.so\naccount required pam_permit.so\n",
    );
    let permit = ServiceFile::new(
        "permit",
        "auth required pam_permit.so\naccount required pam_permit.so\n",
    );

    let auth = format!("\"pam[service={}]\"", deny.name);
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("auth", &auth), ("max-ban-score", "0")]),
    );
    let (status, output) = run_to_exit(&lab, &fixture.user, "pam-secret-3", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    assert!(!output.contains("CSTP connected"), "{output}");
    server
        .wait_for_log(
            &format!("login failed for user '{}' via pam", fixture.user),
            WAIT,
        )
        .unwrap();
    drop(server);

    let auth = format!("\"pam[service={}]\"", permit.name);
    let _server = Server::start(
        &lab.srv,
        &lab.config(&[("auth", &auth), ("max-ban-score", "0")]),
    );
    let mut client = Client::start(&lab, &ClientOptions::password(&fixture.user, "not-it"));
    client
        .wait_up(WAIT)
        .expect("pam_permit accepts any password");
}
