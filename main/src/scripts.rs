//! `connect-script`, `disconnect-script` and `host-update-script` (protocol.md §8).
//!
//! A script is a child process of main started with tokio (fork+exec, no shell, no arguments),
//! with main's environment plus ocserv's variables (§8.2, built by the pure [`environment`]).
//! Nothing waits for it but the task that asked: the CONNECT of that one client waits for its
//! connect-script; the disconnect-script runs after the connection's clean-up; a host-update
//! script runs in its own task. Each run is bounded by [`SCRIPT_TIMEOUT`]: the script is killed
//! then, which counts as a failure. Its stdout and stderr go to the log, one line per output
//! line (cut at 512 bytes, at most 1000 lines per stream, memory bounded whatever the script
//! prints), prefixed with the script kind and the user. The child is always waited for (no
//! zombies), also when the asking task is dropped (`kill_on_drop`; tokio reaps it). It runs in a
//! process group of its own, and when it is killed (timeout, or its task dropped because the
//! client's worker died or main shuts down) the whole group is: a `sleep` or `curl` it started
//! does not outlive it. A script that exits by itself keeps what it started in the background.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rocserv_proto::config::Route;
use tokio::io::AsyncRead;
use tokio::process::Command;

pub use rocserv_proto::SCRIPT_TIMEOUT;

/// How long output is still read after the script exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Longest output line logged (bytes); the rest of the line is dropped.
const MAX_LINE: usize = 512;
/// Most output lines logged per stream and run; later ones are read and dropped.
const MAX_LINES: usize = 1000;

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    HostUpdate,
}

impl Kind {
    /// The `REASON` value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::HostUpdate => "host-update",
        }
    }

    /// The option name, for log lines.
    pub fn option(self) -> &'static str {
        match self {
            Self::Connect => "connect-script",
            Self::Disconnect => "disconnect-script",
            Self::HostUpdate => "host-update-script",
        }
    }
}

/// What the scripts are told about one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The worker's pid (occtl's `ID`).
    pub id: u32,
    pub username: String,
    pub groupname: String,
    pub device: String,
    /// The client's address and ours on the TCP connection.
    pub ip_real: IpAddr,
    pub ip_real_local: IpAddr,
    /// Our end and the client's end of the tunnel (`None` with an IPv6-only pool).
    pub ip_local: Option<Ipv4Addr>,
    pub ip_remote: Option<Ipv4Addr>,
    /// `X-CSTP-Hostname`, if the client sent a valid one.
    pub hostname: Option<String>,
    pub user_agent: String,
    pub device_type: String,
    pub device_platform: String,
    /// What the client was told (the session's policy).
    pub routes: Vec<Route>,
    pub no_routes: Vec<Route>,
    pub dns: Vec<IpAddr>,
    /// The IPv6 ends of the tunnel and the client's prefix, if it has IPv6.
    pub ipv6: Option<rocserv_proto::ipc::main_worker::Ipv6Link>,
    /// The `[vhost:NAME]` of the session; `None` = the default section (`VHOST=default`, as
    /// ocserv names it).
    pub vhost: Option<String>,
    /// What the client reported at login (`ClientFacts`, checked by sec-mod): its device id
    /// and MAC addresses (normalised).
    pub device_id: Option<String>,
    pub macs: Vec<String>,
}

/// Traffic of an ended connection, for the disconnect-script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received from the client (written to the tun device) and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
}

/// The variables ocserv sets for `kind` (protocol.md §8.2), in a fixed order. Known-but-empty
/// strings are set to the empty string; lists end each entry with a space, as ocserv's do.
pub fn environment(kind: Kind, info: &SessionInfo, stats: Option<Stats>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("REASON", kind.reason().to_owned());
    set("ID", info.id.to_string());
    set("USERNAME", info.username.clone());
    set("GROUPNAME", info.groupname.clone());
    set(
        "VHOST",
        info.vhost.clone().unwrap_or_else(|| "default".to_owned()),
    );
    set("DEVICE", info.device.clone());
    set("IP_REAL", info.ip_real.to_canonical().to_string());
    set(
        "IP_REAL_LOCAL",
        info.ip_real_local.to_canonical().to_string(),
    );
    // ocserv sets each address variable only for a family the tunnel has (src/main-user.c).
    if let Some(ip) = info.ip_local {
        set("IP_LOCAL", ip.to_string());
    }
    if let Some(link) = info.ipv6 {
        set("IPV6_LOCAL", link.local.to_string());
    }
    if let Some(ip) = info.ip_remote {
        set("IP_REMOTE", ip.to_string());
    }
    if let Some(link) = info.ipv6 {
        set("IPV6_REMOTE", link.remote.to_string());
        set("IPV6_PREFIX", link.prefix.to_string());
    }
    let hostname = info.hostname.clone().unwrap_or_default();
    set("HOSTNAME", hostname.clone());
    set("REMOTE_HOSTNAME", hostname);
    set("USER_AGENT", info.user_agent.clone());
    set("DEVICE_TYPE", info.device_type.clone());
    set("DEVICE_PLATFORM", info.device_platform.clone());
    // Ours (not ocserv's): the device facts of the login (doc/security/device.md).
    set("DEVICE_ID", info.device_id.clone().unwrap_or_default());
    set("MAC_ADDRESSES", info.macs.join(" "));
    if let (Kind::Disconnect, Some(stats)) = (kind, stats) {
        set("STATS_BYTES_IN", stats.bytes_in.to_string());
        set("STATS_BYTES_OUT", stats.bytes_out.to_string());
        set("STATS_DURATION", stats.duration.as_secs().to_string());
    }
    for (name, list) in [
        ("OCSERV_ROUTES", route_lists(&info.routes)),
        ("OCSERV_NO_ROUTES", route_lists(&info.no_routes)),
        ("OCSERV_DNS", address_lists(&info.dns)),
    ] {
        let [all, v4, v6] = list;
        // ocserv sets a list only when it is not empty.
        for (suffix, value) in [("", all), ("4", v4), ("6", v6)] {
            if !value.is_empty() {
                set(&format!("{name}{suffix}"), value);
            }
        }
    }
    env
}

/// All, IPv4 and IPv6 routes as ocserv writes them: `a.b.c.d/m.m.m.m ` and `x::/len `.
/// `default` is not a route here (it means "no split", ocserv lists nothing for it).
fn route_lists(routes: &[Route]) -> [String; 3] {
    let mut lists = [String::new(), String::new(), String::new()];
    for route in routes {
        let Route::Net(net) = route else { continue };
        let (text, v6) = match (net.addr, net.ipv4_netmask()) {
            (IpAddr::V4(a), Some(mask)) => (format!("{a}/{mask}"), false),
            (addr, _) => (format!("{addr}/{}", net.prefix), true),
        };
        push_entry(&mut lists, &text, v6);
    }
    lists
}

fn address_lists(addrs: &[IpAddr]) -> [String; 3] {
    let mut lists = [String::new(), String::new(), String::new()];
    for addr in addrs {
        push_entry(&mut lists, &addr.to_string(), addr.is_ipv6());
    }
    lists
}

fn push_entry(lists: &mut [String; 3], text: &str, v6: bool) {
    let [all, v4s, v6s] = lists;
    let _ = write!(all, "{text} ");
    let family = if v6 { v6s } else { v4s };
    let _ = write!(family, "{text} ");
}

/// Why a script did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// It could not be started.
    #[error("cannot execute {path}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// It ran longer than [`SCRIPT_TIMEOUT`] and was killed.
    #[error("killed after {0:?}")]
    Timeout(Duration),
    /// It exited with a failure status or was killed by a signal.
    #[error("{0}")]
    Failed(ExitStatus),
    /// Waiting for it failed.
    #[error("waiting for it failed")]
    Wait(#[source] std::io::Error),
}

/// Run `path` with main's environment plus `env`, log its output as `"{kind} ({label}): line"`,
/// and wait for it (at most `limit`, then kill and reap it).
pub async fn run(
    kind: Kind,
    path: &Path,
    env: Vec<(String, String)>,
    label: &str,
    limit: Duration,
) -> Result<(), ScriptError> {
    let mut child = Command::new(path)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ScriptError::Spawn {
            path: path.display().to_string(),
            source,
        })?;
    // Declared after `child`, so dropped first: the group goes before tokio kills the leader.
    let mut group = child.id().map(GroupKill);
    let prefix = format!("{} ({label})", kind.option());
    let (stdout, stderr, prefix) = (child.stdout.take(), child.stderr.take(), &prefix);
    let logs = async move { tokio::join!(log_lines(stdout, prefix), log_lines(stderr, prefix)) };
    tokio::pin!(logs);
    let mut logs_done = false;
    let finished = tokio::time::timeout(limit, async {
        loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = &mut logs, if !logs_done => logs_done = true,
            }
        }
    })
    .await;
    if finished.is_ok() {
        // It exited by itself (and is reaped, so its id is free): what it left running is the
        // administrator's business.
        if let Some(group) = group.take() {
            std::mem::forget(group);
        }
    }
    // Output still buffered after the exit; a background grandchild holding the pipe open
    // does not keep us here.
    if !logs_done {
        let _ = tokio::time::timeout(OUTPUT_GRACE, &mut logs).await;
    }
    let status = match finished {
        Ok(status) => status.map_err(ScriptError::Wait)?,
        Err(_elapsed) => {
            drop(group.take());
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(ScriptError::Timeout(limit));
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(ScriptError::Failed(status))
    }
}

/// Kills a killed script's process group when dropped (timeout, or the waiting task dropped), so
/// that what it started goes too. The group id is the script's pid: the leader is not reaped
/// before this runs, so the id cannot have been reused.
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            if pgid > 1 {
                // ESRCH (the group is already empty) is the usual case.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Log every line of one output stream until it closes, with bounded memory (a script's
/// endless line must not grow main; see [`crate::bounded_lines`]).
async fn log_lines<R: AsyncRead + Unpin>(stream: Option<R>, prefix: &str) {
    let Some(stream) = stream else { return };
    crate::bounded_lines::read_lines(stream, MAX_LINE, MAX_LINES, |line| {
        log::info!("{prefix}: {line}");
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::config::IpNet;

    fn info() -> SessionInfo {
        SessionInfo {
            id: 7646,
            username: "test".into(),
            groupname: String::new(),
            device: "vpns0".into(),
            ip_real: "::ffff:127.0.0.1".parse().unwrap(),
            ip_real_local: "127.0.0.1".parse().unwrap(),
            ip_local: Some(Ipv4Addr::new(192, 168, 99, 1)),
            ip_remote: Some(Ipv4Addr::new(192, 168, 99, 190)),
            hostname: Some("vm".into()),
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            device_type: String::new(),
            device_platform: String::new(),
            routes: vec![
                Route::Net(IpNet {
                    addr: "10.99.0.0".parse().unwrap(),
                    prefix: 16,
                }),
                Route::Net(IpNet {
                    addr: "2001:db8::".parse().unwrap(),
                    prefix: 48,
                }),
                Route::Default,
            ],
            no_routes: vec![],
            dns: vec!["192.168.99.1".parse().unwrap()],
            ipv6: None,
            vhost: None,
            device_id: None,
            macs: Vec::new(),
        }
    }

    #[test]
    fn device_facts_of_the_login() {
        let env = environment(Kind::Connect, &info(), None);
        assert_eq!(get(&env, "DEVICE_ID"), Some(""));
        assert_eq!(get(&env, "MAC_ADDRESSES"), Some(""));
        let bound = SessionInfo {
            device_id: Some("3B5C0E8F".into()),
            macs: vec!["00:0c:29:5e:1a:9b".into(), "02:00:00:00:00:01".into()],
            device_platform: "win".into(),
            ..info()
        };
        for kind in [Kind::Connect, Kind::Disconnect, Kind::HostUpdate] {
            let env = environment(kind, &bound, None);
            assert_eq!(get(&env, "DEVICE_ID"), Some("3B5C0E8F"));
            assert_eq!(
                get(&env, "MAC_ADDRESSES"),
                Some("00:0c:29:5e:1a:9b 02:00:00:00:00:01")
            );
            assert_eq!(get(&env, "DEVICE_PLATFORM"), Some("win"));
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn connect_environment_matches_the_ocserv_trace() {
        // protocol.md §8.2 [trace] example.
        let env = environment(Kind::Connect, &info(), None);
        for (k, v) in [
            ("REASON", "connect"),
            ("ID", "7646"),
            ("USERNAME", "test"),
            ("GROUPNAME", ""),
            ("VHOST", "default"),
            ("DEVICE", "vpns0"),
            ("IP_REAL", "127.0.0.1"),
            ("IP_REAL_LOCAL", "127.0.0.1"),
            ("IP_LOCAL", "192.168.99.1"),
            ("IP_REMOTE", "192.168.99.190"),
            ("REMOTE_HOSTNAME", "vm"),
            ("HOSTNAME", "vm"),
            ("USER_AGENT", "Open AnyConnect VPN Agent v9.01-3"),
            ("DEVICE_PLATFORM", ""),
            ("DEVICE_TYPE", ""),
            ("OCSERV_DNS", "192.168.99.1 "),
            ("OCSERV_DNS4", "192.168.99.1 "),
            ("OCSERV_ROUTES", "10.99.0.0/255.255.0.0 2001:db8::/48 "),
            ("OCSERV_ROUTES4", "10.99.0.0/255.255.0.0 "),
            ("OCSERV_ROUTES6", "2001:db8::/48 "),
        ] {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
        for absent in ["STATS_BYTES_IN", "OCSERV_DNS6", "OCSERV_NO_ROUTES"] {
            assert_eq!(get(&env, absent), None, "{absent}");
        }
        let in_vhost = SessionInfo {
            vhost: Some("b.example.com".into()),
            ..info()
        };
        let env = environment(Kind::Connect, &in_vhost, None);
        assert_eq!(get(&env, "VHOST"), Some("b.example.com"));
    }

    #[test]
    fn ipv6_variables_only_for_an_ipv6_tunnel() {
        let env = environment(Kind::Connect, &info(), None);
        for absent in ["IPV6_LOCAL", "IPV6_REMOTE", "IPV6_PREFIX"] {
            assert_eq!(get(&env, absent), None, "{absent}");
        }
        // IPv6-only: no IPv4 variables (as ocserv), the IPv6 ones with the prefix.
        let v6_only = SessionInfo {
            ip_local: None,
            ip_remote: None,
            ipv6: Some(rocserv_proto::ipc::main_worker::Ipv6Link {
                local: "fd00:1::1".parse().unwrap(),
                remote: "fd00:1::5".parse().unwrap(),
                prefix: 128,
            }),
            ..info()
        };
        let env = environment(Kind::Disconnect, &v6_only, None);
        assert_eq!(get(&env, "IP_LOCAL"), None);
        assert_eq!(get(&env, "IP_REMOTE"), None);
        assert_eq!(get(&env, "IPV6_LOCAL"), Some("fd00:1::1"));
        assert_eq!(get(&env, "IPV6_REMOTE"), Some("fd00:1::5"));
        assert_eq!(get(&env, "IPV6_PREFIX"), Some("128"));
    }

    #[test]
    fn disconnect_has_stats_and_others_do_not() {
        let stats = Stats {
            bytes_in: 0,
            bytes_out: 392,
            duration: Duration::from_millis(20_900),
        };
        let env = environment(Kind::Disconnect, &info(), Some(stats));
        assert_eq!(get(&env, "REASON"), Some("disconnect"));
        assert_eq!(get(&env, "STATS_BYTES_IN"), Some("0"));
        assert_eq!(get(&env, "STATS_BYTES_OUT"), Some("392"));
        assert_eq!(get(&env, "STATS_DURATION"), Some("20"));
        let env = environment(Kind::HostUpdate, &info(), Some(stats));
        assert_eq!(get(&env, "REASON"), Some("host-update"));
        assert_eq!(get(&env, "STATS_BYTES_OUT"), None);
    }

    #[tokio::test]
    async fn exit_status_timeout_and_output() {
        let sh = Path::new("/bin/sh");
        let ok = run(Kind::Connect, sh, vec![], "t", Duration::from_secs(5));
        // /bin/sh with stdin closed exits 0.
        assert!(ok.await.is_ok());
        let dir = std::env::temp_dir().join(format!("rocserv-scripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt as _;
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let fail = write("fail.sh", "#!/bin/sh\necho \"user $USERNAME\"\nexit 3\n");
        let env = vec![("USERNAME".to_owned(), "bob".to_owned())];
        let err = run(Kind::Connect, &fail, env, "t", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ScriptError::Failed(s) if s.code() == Some(3)));
        let slow = write("slow.sh", "#!/bin/sh\nexec sleep 10\n");
        let started = std::time::Instant::now();
        let err = run(
            Kind::Connect,
            &slow,
            vec![],
            "t",
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ScriptError::Timeout(_)));
        assert!(started.elapsed() < Duration::from_secs(5));
        let missing = dir.join("missing.sh");
        let err = run(Kind::Connect, &missing, vec![], "t", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, ScriptError::Spawn { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
