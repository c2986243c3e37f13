//! A real FreeRADIUS (Debian's `freeradius`, 3.x) started inside the lab's server namespace with a
//! configuration directory of its own: one auth and one acct listener on non-standard ports of
//! the server's veth address, PAP users from a `users` file, a challenge user, and accounting
//! written to a detail file the test reads.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::lab::{Lab, SERVER_IP};
use crate::output::Output;

pub const AUTH_PORT: u16 = 18120;
pub const ACCT_PORT: u16 = 18130;
pub const SECRET: &str = "e2e-radius-secret";
/// The user whose login is challenged: first its password, then [`CHALLENGE_CODE`].
pub const CHALLENGE_USER: &str = "chuck";
pub const CHALLENGE_PASSWORD: &str = "chuck-pw";
pub const CHALLENGE_CODE: &str = "424242";
pub const CHALLENGE_PROMPT: &str = "Enter the code from your token";

pub struct FreeRadius {
    child: Child,
    log: Output,
    pub dir: PathBuf,
    /// Where accounting requests are written.
    pub detail: PathBuf,
    /// radcli's configuration file for rocserv (`radius[config=...]`).
    pub radcli_conf: PathBuf,
}

/// `users` file lines (FreeRADIUS format) for the accounts the test adds.
impl FreeRadius {
    /// Write the configuration with `users` as the users file and start the server; waits for
    /// "Ready to process requests".
    pub fn start(lab: &Lab, users: &str) -> Self {
        let dir = lab.dir.join("freeradius");
        std::fs::create_dir_all(dir.join("run")).expect("mkdir");
        let detail = dir.join("detail");
        let users_file = dir.join("users");
        let challenge =
            format!("{CHALLENGE_USER} Cleartext-Password := \"{CHALLENGE_PASSWORD}\"\n\n");
        std::fs::write(&users_file, format!("{challenge}{users}")).expect("users");
        std::fs::write(dir.join("empty"), "").expect("empty");
        let d = dir.display();
        let conf = format!(
            r#"
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/radiusd.pid
dictdir = /usr/share/freeradius
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    auth = yes
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
client rocserv {{
    ipaddr = {SERVER_IP}
    secret = {SECRET}
    require_message_authenticator = yes
}}
modules {{
    always handled {{
        rcode = handled
    }}
    always ok {{
        rcode = ok
    }}
    always reject {{
        rcode = reject
    }}
    pap {{
        normalise = yes
    }}
    files {{
        filename = {d}/users
        acctusersfile = {d}/empty
        preproxy_usersfile = {d}/empty
    }}
    detail {{
        filename = {d}/detail
        permissions = 0600
        header = "%t"
    }}
}}
server default {{
listen {{
    type = auth
    ipaddr = {SERVER_IP}
    port = {AUTH_PORT}
}}
listen {{
    type = acct
    ipaddr = {SERVER_IP}
    port = {ACCT_PORT}
}}
authorize {{
    files
    if (&User-Name == "{CHALLENGE_USER}") {{
        if (&State) {{
            update control {{
                &Auth-Type := CodeCheck
            }}
        }}
        else {{
            update control {{
                &Auth-Type := PasswordThenCode
            }}
        }}
    }}
    else {{
        pap
    }}
}}
authenticate {{
    Auth-Type PAP {{
        pap
    }}
    Auth-Type PasswordThenCode {{
        pap
        if (ok) {{
            update reply {{
                &Reply-Message := "{CHALLENGE_PROMPT}"
                &State := "round-two"
            }}
            update control {{
                &Response-Packet-Type := Access-Challenge
            }}
            handled
        }}
    }}
    Auth-Type CodeCheck {{
        if ((&State == "round-two") && (&User-Password == "{CHALLENGE_CODE}")) {{
            ok
        }}
        else {{
            reject
        }}
    }}
}}
accounting {{
    detail
    ok
}}
post-auth {{
    ok
}}
}}
"#
        );
        std::fs::write(dir.join("radiusd.conf"), conf).expect("radiusd.conf");
        let radcli_conf = dir.join("radiusclient.conf");
        std::fs::write(
            &radcli_conf,
            format!(
                "# written by the e2e test\n\
                 authserver {SERVER_IP}:{AUTH_PORT}:{SECRET}\n\
                 acctserver {SERVER_IP}:{ACCT_PORT}\n\
                 servers {d}/servers\n\
                 dictionary /etc/radcli/dictionary\n\
                 radius_timeout 2\n\
                 radius_retries 2\n\
                 bindaddr *\n"
            ),
        )
        .expect("radiusclient.conf");
        std::fs::write(
            dir.join("servers"),
            format!("{SERVER_IP}:{ACCT_PORT} {SECRET}\n"),
        )
        .expect("servers");
        let mut child = lab
            .srv
            .command("freeradius")
            .args(["-X", "-d"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn freeradius");
        let log = Output::capture(&mut child, "freeradius");
        let radius = Self {
            child,
            log,
            dir,
            detail,
            radcli_conf,
        };
        let mut radius = radius;
        radius.wait_ready();
        radius
    }

    /// Wait for the readiness line; fail at once if FreeRADIUS exits (a configuration error).
    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + crate::WAIT;
        loop {
            if self
                .log
                .wait_for(0, "Ready to process requests", Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("FreeRADIUS exited ({status}):\n{}", self.log.text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "FreeRADIUS not ready:\n{}",
                self.log.text()
            );
        }
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// The detail file's text once it holds `needle` (accounting arrives after the event).
    pub fn wait_for_detail(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.detail).unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("{needle:?} not in the detail file:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        // `ip netns exec` execs, so the child is FreeRADIUS itself.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = crate::output::wait_exit(&mut self.child, Duration::from_secs(5));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
