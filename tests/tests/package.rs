//! The installed Debian package: its binaries, started from their installed paths with the
//! installed example configuration (only the test's certificate, users, addresses and runtime
//! paths swapped in), serve a real openconnect login, and the installed occtl sees it.
//!
//! Run by tests/package-smoke.sh, which builds the package and installs it with apt-get inside
//! a private mount namespace over throw-away overlays of /usr, /etc and /var (so the machine's
//! own packages, ocserv's ocpasswd that tests/tests/auth.rs compares with included, stay as
//! they were); the e2e step of tests/run-all.sh skips it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;

use rocserv_e2e::{lab, Client, ClientOptions, Lab, Server, WAIT};

const ROCSERV: &str = "/usr/sbin/rocserv";
const LIBEXEC: &str = "/usr/libexec/rocserv";
const OCCTL: &str = "/usr/bin/occtl";
const OCPASSWD: &str = "/usr/bin/ocpasswd";
const CONFIG: &str = "/etc/ocserv/ocserv.conf";

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The installed example with `overrides` replacing (or adding; an empty value removes) options.
fn config_from_installed(lab: &Lab, overrides: &[(&str, String)]) -> std::path::PathBuf {
    let example = std::fs::read_to_string(CONFIG).expect("installed example configuration");
    let mut text = String::new();
    for line in example.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !line.trim_start().starts_with('#') && overrides.iter().any(|(k, _)| *k == key) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    for (key, value) in overrides.iter().filter(|(_, v)| !v.is_empty()) {
        text.push_str(&format!("{key} = {value}\n"));
    }
    let path = lab.dir.join("installed.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs the package installed: run by tests/package-smoke.sh"]
fn installed_package_serves_a_login() {
    assert_eq!(
        std::env::var("ROCSERV_PACKAGE_SMOKE").as_deref(),
        Ok("1"),
        "run by tests/package-smoke.sh, which installs the package first"
    );
    // The layout main relies on: rocserv-sm and rocserv-worker next to the real rocserv.
    for b in ["rocserv", "rocserv-sm", "rocserv-worker"] {
        assert!(Path::new(LIBEXEC).join(b).is_file(), "{LIBEXEC}/{b}");
    }
    // The worker ships as a static PIE (doc/decisions/0014-static-pie-worker.md); sec-mod
    // stays dynamic (PAM loads its modules).
    let worker = Path::new(LIBEXEC).join("rocserv-worker");
    assert_eq!(elf_kind(&worker), (true, false), "{}", worker.display());
    assert_eq!(
        elf_kind(&Path::new(LIBEXEC).join("rocserv-sm")),
        (true, true)
    );
    assert_eq!(
        std::fs::read_link(ROCSERV).unwrap(),
        Path::new("../libexec/rocserv/rocserv")
    );
    assert!(run("dpkg", &["-S", ROCSERV]).starts_with("rocserv: "));
    for page in ["rocserv", "occtl", "ocpasswd"] {
        let path = format!("/usr/share/man/man8/{page}.8.gz");
        let text = run("zcat", &[&path]);
        assert!(text.contains(&format!(".TH {page} 8")), "{path}:\n{text}");
    }
    let occtl_page = run("zcat", &["/usr/share/man/man8/occtl.8.gz"]);
    assert!(occtl_page.contains("show users"), "{occtl_page}");
    // postinst made the user the example configuration runs workers as (package-smoke.sh
    // removed any earlier one before installing).
    let ocserv_uid = run("getent", &["passwd", "ocserv"])
        .split(':')
        .nth(2)
        .unwrap()
        .to_owned();

    let lab = Lab::new();
    let passwd = lab.dir.join("installed-ocpasswd");
    lab::add_user_with(Path::new(OCPASSWD), &passwd, "alice", "alice-pw", None);
    let occtl_socket = lab.dir.join("occtl.socket");
    let conf = config_from_installed(
        &lab,
        &[
            ("auth", format!("\"plain[passwd={}]\"", passwd.display())),
            ("server-cert", lab.pki.cert.display().to_string()),
            ("server-key", lab.pki.key.display().to_string()),
            (
                "pid-file",
                lab.dir.join("rocserv.pid").display().to_string(),
            ),
            (
                "socket-file",
                lab.dir.join("rocserv.socket").display().to_string(),
            ),
            ("occtl-socket-file", occtl_socket.display().to_string()),
            (
                "session-db",
                lab.dir.join("sessions.db").display().to_string(),
            ),
            ("ipv4-network", lab::POOL.into()),
            ("dns", lab::VPN_SERVER_IP.to_string()),
            ("route", lab::POOL.into()),
            ("no-route", String::new()),
            // Default on: the host's /run/utmp and /var/log/wtmp are not the test's to write.
            ("use-utmp", "false".into()),
        ],
    );
    let conf_str = conf.to_str().unwrap();
    run(ROCSERV, &["-t", "-c", conf_str]);

    let server = Server::start_binary(&lab.srv, &conf, Path::new(ROCSERV));
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    assert!(up.address.starts_with("192.168.231."), "{}", up.address);
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "ping through the tunnel failed:\n{out}");

    // The worker that serves the client is the installed one, run as the package's user.
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "{}", server.log_text());
    let exe = std::fs::read_link(format!("/proc/{}/exe", workers[0])).unwrap();
    assert_eq!(exe, Path::new(LIBEXEC).join("rocserv-worker"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", workers[0])).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(1),
        Some(ocserv_uid.as_str()),
        "{uid}"
    );

    let users = run(
        OCCTL,
        &["-s", occtl_socket.to_str().unwrap(), "-j", "show", "users"],
    );
    assert!(users.contains("\"alice\""), "{users}");
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

/// (position-independent, has a program interpreter) of a little-endian ELF64 executable:
/// ET_DYN in the header, a PT_INTERP program header.
fn elf_kind(path: &Path) -> (bool, bool) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        bytes.get(..5),
        Some(&b"\x7fELF\x02"[..]),
        "ELF64: {}",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let pie = u16_at(0x10) == 3; // e_type ET_DYN
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let interp = (0..usize::from(phnum)).any(|i| {
        let at = phoff + i * usize::from(phentsize);
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    });
    (pie, interp)
}
