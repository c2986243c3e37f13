//! One test's world: a server namespace and a client namespace joined by a veth pair, a
//! certificate, a password file and a configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::netns::{self, Netns};
use crate::pki::{self, Pki};

/// Server side of the veth link, and the client side. Private addresses that exist only inside
/// the two namespaces this lab creates.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);

/// The address pool handed to VPN clients, and the server's address on every tun.
pub const POOL: &str = "192.168.231.0/24";
pub const VPN_SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 231, 1);

/// The IPv6 pool tests may configure (`ipv6-network`, ULA), and the server's IPv6 end of every
/// tun in it (the network + 1, as ocserv).
pub const POOL6: &str = "fd00:231:1::/64";
pub const VPN_SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x231, 1, 0, 0, 0, 0, 1);

/// IPv6 ends of the veth link, once [`Lab::add_outer_ipv6`] added them (ULA, inside the
/// namespaces only).
pub const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, 1);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, 2);

/// Users created in every lab's password file.
pub const USERS: [(&str, &str); 3] = [
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
];

pub struct Lab {
    pub srv: Netns,
    pub cli: Netns,
    pub dir: PathBuf,
    pub pki: Pki,
    pub passwd: PathBuf,
    pub script: PathBuf,
    pub vpn_server_ip: Ipv4Addr,
    /// The address the client is pointed at (the URL); [`SERVER_IP`] unless a test changes it.
    pub server_addr: IpAddr,
}

impl Lab {
    pub fn new() -> Self {
        crate::require_prerequisites();
        let tag = crate::unique_tag();
        let dir = std::env::temp_dir().join(format!("rocserv-e2e-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("lab dir");
        // The worker runs as nobody and must not need this directory; only main and sec-mod
        // (root) read it. Keep it private like /etc/ocserv.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let srv = Netns::new(format!("rocs{tag}"));
        let cli = Netns::new(format!("rocc{tag}"));
        netns::link(&srv, SERVER_IP, &cli, CLIENT_IP, &tag);
        let pki = pki::make(&dir, &SERVER_IP.to_string());
        let passwd = dir.join("ocpasswd");
        for (user, password) in USERS {
            add_user(&passwd, user, password, None);
        }
        let script = dir.join("vpn-script.sh");
        std::fs::write(&script, SCRIPT).expect("write script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self {
            srv,
            cli,
            dir,
            pki,
            passwd,
            script,
            vpn_server_ip: VPN_SERVER_IP,
            server_addr: IpAddr::V4(SERVER_IP),
        }
    }

    pub fn url(&self) -> String {
        match self.server_addr {
            IpAddr::V4(ip) => format!("https://{ip}/"),
            IpAddr::V6(ip) => format!("https://[{ip}]/"),
        }
    }

    /// Give the veth link IPv6 addresses too ([`SERVER_IP6`], [`CLIENT_IP6`]), usable at once
    /// (no duplicate address detection), and point the client at the server's.
    pub fn add_outer_ipv6(&mut self) {
        let tag = self.srv.name.trim_start_matches("rocs").to_owned();
        let (va, vb) = (format!("va{tag}"), format!("vb{tag}"));
        let (s, c) = (format!("{SERVER_IP6}/64"), format!("{CLIENT_IP6}/64"));
        self.srv
            .exec_ok(&["ip", "-6", "addr", "add", &s, "dev", &va, "nodad"]);
        self.cli
            .exec_ok(&["ip", "-6", "addr", "add", &c, "dev", &vb, "nodad"]);
        self.server_addr = IpAddr::V6(SERVER_IP6);
    }

    /// `count` pings to the server's IPv6 tunnel address ([`VPN_SERVER_IP6`]).
    pub fn ping6_through_tunnel(&self, count: u32) -> (bool, String) {
        let count = count.to_string();
        let target = VPN_SERVER_IP6.to_string();
        self.cli
            .exec(&["ping", "-6", "-c", &count, "-i", "0.2", "-W", "2", &target])
    }

    /// Write a configuration: the base below, with `overrides` replacing or adding options
    /// (an override with an empty value removes the option). Returns its path.
    pub fn config(&self, overrides: &[(&str, &str)]) -> PathBuf {
        let base: Vec<(String, String)> = vec![
            (
                "auth".into(),
                format!("\"plain[passwd={}]\"", self.passwd.display()),
            ),
            ("tcp-port".into(), "443".into()),
            ("run-as-user".into(), "nobody".into()),
            ("run-as-group".into(), "nogroup".into()),
            ("server-cert".into(), self.pki.cert.display().to_string()),
            ("server-key".into(), self.pki.key.display().to_string()),
            // No `isolate-workers`: every test runs with the default, the seccomp sandbox.
            (
                "pid-file".into(),
                self.dir.join("rocserv.pid").display().to_string(),
            ),
            (
                "socket-file".into(),
                self.dir.join("rocserv.socket").display().to_string(),
            ),
            ("device".into(), "vpns".into()),
            ("ipv4-network".into(), POOL.into()),
            ("dns".into(), VPN_SERVER_IP.to_string()),
            ("route".into(), POOL.into()),
            ("cookie-timeout".into(), "300".into()),
            ("auth-timeout".into(), "40".into()),
            ("keepalive".into(), "32400".into()),
            ("dpd".into(), "90".into()),
            ("default-domain".into(), "vpn.test".into()),
            // ocserv's default is on; tests must not write the host's utmp (tests/tests/service.rs
            // points it at files of its own).
            ("use-utmp".into(), "false".into()),
            // Each lab keeps its session records to itself (the default is in /var/lib).
            (
                "session-db".into(),
                self.dir.join("sessions.db").display().to_string(),
            ),
        ];
        let mut lines: Vec<(String, String)> = base;
        for (key, value) in overrides {
            lines.retain(|(k, _)| k != key);
            if !value.is_empty() {
                lines.push(((*key).to_owned(), (*value).to_owned()));
            }
        }
        let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let path = self
            .dir
            .join(format!("ocserv-{}.conf", crate::unique_tag()));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// `len` bytes each way through the tunnel (TCP to the server's VPN address on ports 5001
    /// and 5002), checked byte for byte. Bulk from the server is what the tun device hands the
    /// worker as large TCP packets (offloads), bulk from the client what it joins.
    pub fn bulk_both_ways(&self, len: usize) {
        let (sent, received, matched) =
            crate::tcp::transfer(&self.srv, &self.cli, self.vpn_server_ip, 5001, len);
        assert_eq!(sent, received, "the server received a different byte count");
        assert!(
            matched,
            "the digest of the bytes the server received differs"
        );
        let (sent, received, matched) =
            crate::tcp::transfer_down(&self.srv, &self.cli, self.vpn_server_ip, 5002, len);
        assert_eq!(sent, received, "the client received a different byte count");
        assert!(matched, "the bytes the client received differ");
    }

    /// Ping the server's VPN address from the client namespace through the tunnel.
    pub fn ping_through_tunnel(&self, count: u32) -> (bool, String) {
        self.ping_with(count, &[])
    }

    /// Same, with extra `ping` options (e.g. `-s 1200 -p 00` for large compressible packets).
    pub fn ping_with(&self, count: u32, extra: &[&str]) -> (bool, String) {
        let count = count.to_string();
        let target = VPN_SERVER_IP.to_string();
        let mut argv = vec!["ping", "-c", &count, "-i", "0.2", "-W", "2"];
        argv.extend_from_slice(extra);
        argv.push(&target);
        self.cli.exec(&argv)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("lab files kept for inspection in {}", self.dir.display());
        }
    }
}

/// Add a user with our ocpasswd (`-g` groups optional); the password goes on stdin.
pub fn add_user(passwd: &std::path::Path, user: &str, password: &str, groups: Option<&str>) {
    add_user_with(&crate::bin("ocpasswd"), passwd, user, password, groups);
}

/// Same with a given ocpasswd binary (ocserv's own, to check we read what it writes).
pub fn add_user_with(
    ocpasswd: &std::path::Path,
    passwd: &std::path::Path,
    user: &str,
    password: &str,
    groups: Option<&str>,
) {
    let mut cmd = Command::new(ocpasswd);
    cmd.arg("-c").arg(passwd);
    if let Some(groups) = groups {
        cmd.args(["-g", groups]);
    }
    cmd.arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ocpasswd");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // Twice: a tool that asks for confirmation reads the second line.
        let _ = write!(stdin, "{password}\n{password}\n");
    }
    let out = child.wait_with_output().expect("ocpasswd");
    assert!(
        out.status.success(),
        "ocpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stand-in for vpnc-script: addresses and MTU on the tun, a /32 route to the server's VPN
/// address (and a /128 to its IPv6 one when the tunnel has IPv6), and one line into the test's
/// FIFO (the IPv4 address, or the IPv6 one without IPv4). (vpnc-script would rewrite /etc/resolv.conf of
/// the host: `ip netns exec` does not isolate it.)
const SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
connect|reconnect)
    ip link set dev "$TUNDEV" mtu "${INTERNAL_IP4_MTU:-1400}" up
    if [ -n "$INTERNAL_IP4_ADDRESS" ]; then
        ip addr replace "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
        ip route replace "$E2E_ROUTE/32" dev "$TUNDEV" src "$INTERNAL_IP4_ADDRESS"
    fi
    if [ -n "$INTERNAL_IP6_NETMASK" ]; then
        ip -6 addr replace "$INTERNAL_IP6_NETMASK" dev "$TUNDEV" nodad
        ip -6 route replace "$E2E_ROUTE6/128" dev "$TUNDEV" src "$INTERNAL_IP6_ADDRESS"
    fi
    # The whole environment, for tests of what the server sent (e.g. INTERNAL_IP4_DNS).
    env > "${E2E_FIFO%/*}/env-$TUNDEV"
    [ -p "$E2E_FIFO" ] && echo "$reason ${INTERNAL_IP4_ADDRESS:-$INTERNAL_IP6_ADDRESS} $TUNDEV ${INTERNAL_IP4_MTU:-0}" > "$E2E_FIFO"
    ;;
esac
exit 0
"#;
