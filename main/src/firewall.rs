//! Access rules in the kernel: `restrict-user-to-routes` and `restrict-user-to-ports`, applied
//! with nftables to the packets that come out of a session's tun device (what its client
//! sends), by main, because the worker that writes those packets is assumed compromised
//! (doc/security/nft.md; the choice of the `nft` tool: doc/decisions/0003-nftables-access-rules.md).
//!
//! Everything lives in one table of ours, `inet rocserv`:
//!
//! ```text
//! table inet rocserv {
//!     map clients { type iface_index : verdict }      # tun ifindex -> jump c<worker>
//!     chain input   { type filter hook input   priority filter; iif vmap @clients }
//!     chain forward { type filter hook forward priority filter; iif vmap @clients }
//!     chain c<worker> { DNS exemption; port rules; accept or goto r<worker> }
//!     chain r<worker> { no-routes rejected; routes accepted; the rest rejected }
//! }
//! ```
//!
//! One map lookup per packet whatever the number of sessions; a session without restrictions
//! has no entry and costs nothing more. Both hooks: traffic to the server itself (input) is
//! filtered as well as forwarded traffic (ocserv's script filters only FORWARD).
//!
//! Semantics, as ocserv's `ocserv-fw` script applies them (facts from ocserv's sources):
//! - UDP and TCP port 53 to the session's DNS servers is always allowed;
//! - an allow list lets through only the listed ports (`tcp`/`udp`/`sctp` for IPv4 and IPv6,
//!   `icmp()` IPv4 only, `icmpv6()` IPv6 only, `esp()`), a `!(...)` list rejects the listed
//!   ones;
//! - then, with `restrict-user-to-routes` (which `restrict-user-to-ports` implies, as ocserv's
//!   documentation says): `no-route` networks are rejected; with routes other than `default`,
//!   only those networks (IPv4 and IPv6) are reachable; with none, everything else is.
//!
//! Rejected packets draw an ICMP "administratively prohibited" (ocserv's REJECT), so a client
//! learns at once instead of timing out.
//!
//! Lifetime: [`install`] runs before the worker gets the tun descriptor (nothing can enter
//! the device before its rules), and a failure refuses the CONNECT; the connection's record
//! ([`crate::conn::Conn`]) holds the [`Installed`] and [`remove`]s it on release, whatever
//! ended the worker (`kill -9` included). [`reset`] deletes the whole table at main's start
//! (rules left by a main that was killed) and at its exit. Every change is one `nft -f -`
//! transaction: atomic, run as a child process awaited by tokio (main's loop never blocks),
//! bounded by [`NFT_TIMEOUT`]. Only numbers and addresses we formatted go into the script (no
//! user-controlled text), so nothing can inject nft syntax.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use rocserv_proto::config::Route;
use rocserv_proto::ipc::WorkerId;
use rocserv_proto::policy::ports::PortRule;
use rocserv_proto::policy::Policy;
use tokio::io::AsyncWriteExt as _;

/// The table (family `inet`) that rocserv owns: recreated at start, nothing else touched.
pub const TABLE: &str = "rocserv";
/// Longest wait for one `nft` run (it takes milliseconds; a hung one must not hold a CONNECT).
pub const NFT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where `nft` is looked for (main may run with a PATH without the sbin directories).
const NFT_PATHS: [&str; 3] = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"];
/// What a rejected packet gets back.
const REJECT: &str = "reject with icmpx admin-prohibited";

/// Orders the changes: the start's [`spawn_start_reset`] holds it for writing until its `nft`
/// finished, every [`install`] and [`remove`] takes it for reading first, [`reset`] at exit for
/// writing. So the start need not wait for the reset (deleting the table waits ~10-40 ms for the
/// kernel, an RCU grace period: it was the larger part of exec -> listening) and the reset still
/// can never delete a new session's rules. tokio's lock is fair: a waiting writer is served
/// before later readers.
static ORDER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The rules of one session, in place; [`remove`] takes them out.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    worker: WorkerId,
    ifindex: u32,
}

/// Running `nft` failed; the caller logs it (and refuses the CONNECT when installing).
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// No `nft` program, or it could not be started.
    #[error("cannot run nft (is the nftables package installed?)")]
    Spawn(#[source] std::io::Error),
    /// Writing the script to its standard input or waiting for it failed.
    #[error("talking to nft failed")]
    Io(#[source] std::io::Error),
    /// It did not finish within [`NFT_TIMEOUT`] (it was killed).
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
    /// It refused the script.
    #[error("nft failed ({status}): {stderr}")]
    Refused {
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Whether `policy` restricts the client at all (a session without restrictions gets no rules).
pub fn restricts(policy: &Policy) -> bool {
    policy.restrict_user_to_routes || policy.restrict_user_to_ports.is_some()
}

/// Put the rules of `policy` on the tun device `ifindex` of connection `worker`. `Ok(None)`
/// when the policy restricts nothing.
pub async fn install(
    worker: WorkerId,
    ifindex: u32,
    policy: &Policy,
) -> Result<Option<Installed>, FirewallError> {
    let Some(script) = install_script(worker, ifindex, policy) else {
        return Ok(None);
    };
    let _order = ORDER.read().await;
    run(&script).await?;
    Ok(Some(Installed { worker, ifindex }))
}

/// Take a session's rules out, in a task of its own (called from the connection's release,
/// which cannot wait); a failure is logged. Without a runtime (process exit) nothing is done:
/// the next start deletes the table.
pub fn remove(installed: Installed) {
    let script = removal_script(&installed);
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        log::warn!(
            "access rules of worker {} left in place (shutting down)",
            installed.worker.0
        );
        return;
    };
    rt.spawn(async move {
        let _order = ORDER.read().await;
        match run(&script).await {
            Ok(()) => log::debug!(
                "access rules of worker {} (ifindex {}) removed",
                installed.worker.0,
                installed.ifindex
            ),
            Err(e) => log::error!(
                "cannot remove the access rules of worker {} (ifindex {}): {}",
                installed.worker.0,
                installed.ifindex,
                crate::error_chain(&e)
            ),
        }
    });
}

/// Delete our table and everything in it (at exit; at start: [`spawn_start_reset`]).
pub async fn reset() -> Result<(), FirewallError> {
    let _order = ORDER.write().await;
    run(&reset_script()).await
}

/// At start: delete what a killed main left, in a task of its own, and hand the outcome to
/// `report`. The order lock is taken here, before the task runs, so that every later
/// [`install`] or [`remove`] waits for the reset. Call it once, before the first connection
/// is accepted.
pub fn spawn_start_reset<F>(report: F)
where
    F: FnOnce(Result<(), FirewallError>) + Send + 'static,
{
    // Free at start (nothing else has run); were it not, the reset would simply queue.
    let held = ORDER.try_write().ok();
    tokio::spawn(async move {
        let _order = match held {
            Some(guard) => guard,
            None => ORDER.write().await,
        };
        report(run(&reset_script()).await);
    });
}

/// `add` then `delete` in one transaction: deletes the table whether or not it exists.
fn reset_script() -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")
}

fn chain_names(worker: WorkerId) -> (String, String) {
    (format!("c{}", worker.0), format!("r{}", worker.0))
}

/// The nft script that installs one session's rules, or `None` when nothing is restricted.
/// The table's skeleton is (re)declared each time in the same transaction: `add` is
/// idempotent, and the base chains are flushed and refilled so they hold exactly one rule
/// (this also repairs a table an administrator flushed).
pub fn install_script(worker: WorkerId, ifindex: u32, policy: &Policy) -> Option<String> {
    if !restricts(policy) {
        return None;
    }
    let (c, r) = chain_names(worker);
    let mut s = String::new();
    let t = format!("inet {TABLE}");
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "add map {t} clients {{ type iface_index : verdict; }}");
    for hook in ["input", "forward"] {
        let _ = writeln!(
            s,
            "add chain {t} {hook} {{ type filter hook {hook} priority filter; policy accept; }}"
        );
        let _ = writeln!(s, "flush chain {t} {hook}");
        let _ = writeln!(s, "add rule {t} {hook} iif vmap @clients");
    }
    let _ = writeln!(s, "add chain {t} {c}");
    let _ = writeln!(s, "flush chain {t} {c}");
    // What passed the port rules goes on to the routes chain: restrict-user-to-ports implies
    // restrict-user-to-routes (ocserv's sample.config), so every session with rules has one.
    let _ = writeln!(s, "add chain {t} {r}");
    let _ = writeln!(s, "flush chain {t} {r}");
    let next = format!("goto {r}");
    let rule = |s: &mut String, chain: &str, body: &str| {
        let _ = writeln!(s, "add rule {t} {chain} {body}");
    };

    // DNS to the session's servers, before anything else (ocserv-fw does the same).
    let (dns4, dns6): (Vec<IpAddr>, Vec<IpAddr>) =
        policy.dns.iter().copied().partition(IpAddr::is_ipv4);
    for (family, servers) in [("ip", dns4), ("ip6", dns6)] {
        if !servers.is_empty() {
            let servers = join(servers.iter().map(IpAddr::to_string));
            rule(
                &mut s,
                &c,
                &format!(
                    "{family} daddr {{ {servers} }} meta l4proto {{ tcp, udp }} th dport 53 accept"
                ),
            );
        }
    }

    match &policy.restrict_user_to_ports {
        None => rule(&mut s, &c, &next),
        Some(ports) => {
            let verdict = if ports.negated { REJECT } else { &next };
            for m in port_matches(&ports.rules) {
                rule(&mut s, &c, &format!("{m} {verdict}"));
            }
            rule(&mut s, &c, if ports.negated { &next } else { REJECT });
        }
    }

    // The routes chain.
    let nets = |list: &[Route]| -> (Vec<String>, Vec<String>) {
        let (v4, v6): (Vec<Net>, Vec<Net>) = list
            .iter()
            .filter_map(|r| match r {
                Route::Net(n) => Some(network(n.addr, n.prefix)),
                Route::Default => None,
            })
            .partition(|(a, _)| a.is_ipv4());
        (outermost(v4), outermost(v6))
    };
    let (no4, no6) = nets(&policy.no_routes);
    for (family, set) in [("ip", no4), ("ip6", no6)] {
        if !set.is_empty() {
            rule(
                &mut s,
                &r,
                &format!("{family} daddr {{ {} }} {REJECT}", join(set)),
            );
        }
    }
    let everything = policy.routes.is_empty() || policy.routes.contains(&Route::Default);
    if everything {
        rule(&mut s, &r, "accept");
    } else {
        let (to4, to6) = nets(&policy.routes);
        for (family, set) in [("ip", to4), ("ip6", to6)] {
            if !set.is_empty() {
                rule(
                    &mut s,
                    &r,
                    &format!("{family} daddr {{ {} }} accept", join(set)),
                );
            }
        }
        rule(&mut s, &r, REJECT);
    }

    // Last, so the device's traffic is steered only once its chains are complete (the whole
    // script is one transaction anyway).
    let _ = writeln!(s, "add element {t} clients {{ {ifindex} : jump {c} }}");
    Some(s)
}

/// The matches of a port list, one per protocol (ports of one protocol in one set).
fn port_matches(rules: &[PortRule]) -> Vec<String> {
    let mut tcp = std::collections::BTreeSet::new();
    let mut udp = std::collections::BTreeSet::new();
    let mut sctp = std::collections::BTreeSet::new();
    let (mut icmp, mut icmpv6, mut esp) = (false, false, false);
    for rule in rules {
        match *rule {
            PortRule::Tcp(p) => {
                tcp.insert(p);
            }
            PortRule::Udp(p) => {
                udp.insert(p);
            }
            PortRule::Sctp(p) => {
                sctp.insert(p);
            }
            PortRule::Icmp => icmp = true,
            PortRule::Icmpv6 => icmpv6 = true,
            PortRule::Esp => esp = true,
        }
    }
    let mut out = Vec::new();
    for (proto, ports) in [("tcp", tcp), ("udp", udp), ("sctp", sctp)] {
        if !ports.is_empty() {
            out.push(format!(
                "{proto} dport {{ {} }}",
                join(ports.iter().map(u16::to_string))
            ));
        }
    }
    // `nfproto` keeps protocol 1 inside an IPv6 packet from passing for ICMP, and 58 in IPv4.
    if icmp {
        out.push("meta nfproto ipv4 meta l4proto icmp".to_owned());
    }
    if icmpv6 {
        out.push("meta nfproto ipv6 meta l4proto ipv6-icmp".to_owned());
    }
    if esp {
        out.push("meta l4proto esp".to_owned());
    }
    out
}

/// A network as (address, prefix length).
type Net = (IpAddr, u8);

/// The network of `addr/prefix` (host bits cleared, prefix bounded by the family).
fn network(addr: IpAddr, prefix: u8) -> Net {
    match addr {
        IpAddr::V4(a) => {
            let prefix = prefix.min(32);
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            (IpAddr::V4((u32::from(a) & mask).into()), prefix)
        }
        IpAddr::V6(a) => {
            let prefix = prefix.min(128);
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            (IpAddr::V6((u128::from(a) & mask).into()), prefix)
        }
    }
}

/// The networks not inside another one of the list (one family), as `addr/prefix`: an nft
/// interval set refuses overlapping elements on some versions.
fn outermost(mut nets: Vec<Net>) -> Vec<String> {
    nets.sort_by_key(|(a, p)| (*p, *a));
    let mut kept: Vec<Net> = Vec::new();
    for (addr, prefix) in nets {
        if !kept.iter().any(|(k, kp)| network(addr, *kp) == (*k, *kp)) {
            kept.push((addr, prefix));
        }
    }
    kept.iter().map(|(a, p)| format!("{a}/{p}")).collect()
}

fn join(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// The script that removes one session's rules: the map entry first (nothing jumps to the
/// chains any more), then the chains, emptied. One transaction.
fn removal_script(installed: &Installed) -> String {
    let (c, r) = chain_names(installed.worker);
    let t = format!("inet {TABLE}");
    let mut s = String::new();
    let _ = writeln!(s, "delete element {t} clients {{ {} }}", installed.ifindex);
    for chain in [&c, &r] {
        let _ = writeln!(s, "flush chain {t} {chain}");
    }
    for chain in [&c, &r] {
        let _ = writeln!(s, "delete chain {t} {chain}");
    }
    s
}

/// Run `nft -f -` with `script` on its standard input.
async fn run(script: &str) -> Result<(), FirewallError> {
    let program = NFT_PATHS
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .copied()
        .unwrap_or("nft");
    let mut child = tokio::process::Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(FirewallError::Spawn)?;
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(FirewallError::Io)?;
            // Dropping it closes the pipe: nft reads to the end, then applies.
        }
        child.wait_with_output().await.map_err(FirewallError::Io)
    };
    let output = tokio::time::timeout(NFT_TIMEOUT, work)
        .await
        .map_err(|_| FirewallError::Timeout(NFT_TIMEOUT))??;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // nft's messages are a few lines; keep the log line bounded anyway.
    let stderr: String = stderr.trim().chars().take(600).collect();
    Err(FirewallError::Refused {
        status: output.status,
        stderr: stderr.replace('\n', " | "),
    })
}

#[cfg(test)]
mod tests {
    use rocserv_proto::config::IpNet;
    use rocserv_proto::policy::ports;

    use super::*;

    fn net(s: &str) -> Route {
        let (a, p) = s.split_once('/').unwrap();
        Route::Net(IpNet {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        })
    }

    fn policy(routes_only: bool, ports_text: Option<&str>) -> Policy {
        Policy {
            restrict_user_to_routes: routes_only,
            restrict_user_to_ports: ports_text.map(|t| ports::parse(t).unwrap()),
            ..Policy::default()
        }
    }

    /// The rules of chain `chain` in `script`, in order, without the `add rule inet rocserv X`.
    fn rules_of(script: &str, chain: &str) -> Vec<String> {
        let prefix = format!("add rule inet rocserv {chain} ");
        script
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn nothing_restricted_installs_nothing() {
        assert_eq!(install_script(WorkerId(1), 5, &Policy::default()), None);
        assert!(!restricts(&Policy::default()));
    }

    #[test]
    fn allow_list_then_routes() {
        let mut p = policy(
            false,
            Some("tcp(80), udp(53), tcp(443), tcp(80), icmp(), esp()"),
        );
        p.dns = vec!["10.0.0.53".parse().unwrap(), "fd00::53".parse().unwrap()];
        let s = install_script(WorkerId(7), 42, &p).unwrap();
        assert_eq!(
            rules_of(&s, "c7"),
            [
                "ip daddr { 10.0.0.53 } meta l4proto { tcp, udp } th dport 53 accept",
                "ip6 daddr { fd00::53 } meta l4proto { tcp, udp } th dport 53 accept",
                "tcp dport { 80, 443 } goto r7",
                "udp dport { 53 } goto r7",
                "meta nfproto ipv4 meta l4proto icmp goto r7",
                "meta l4proto esp goto r7",
                "reject with icmpx admin-prohibited",
            ]
        );
        // No routes: everything the port rules let through.
        assert_eq!(rules_of(&s, "r7"), ["accept"]);
        assert!(s.ends_with("add element inet rocserv clients { 42 : jump c7 }\n"));
        // The base chains are refilled with exactly one rule each.
        assert_eq!(rules_of(&s, "input"), ["iif vmap @clients"]);
        assert_eq!(rules_of(&s, "forward"), ["iif vmap @clients"]);
    }

    #[test]
    fn deny_list_rejects_the_listed_and_passes_the_rest_on() {
        let s =
            install_script(WorkerId(3), 9, &policy(false, Some("!(tcp(22), icmpv6())"))).unwrap();
        assert_eq!(
            rules_of(&s, "c3"),
            [
                "tcp dport { 22 } reject with icmpx admin-prohibited",
                "meta nfproto ipv6 meta l4proto ipv6-icmp reject with icmpx admin-prohibited",
                "goto r3",
            ]
        );
    }

    #[test]
    fn routes_and_no_routes_both_families() {
        let mut p = policy(true, None);
        p.routes = vec![
            net("10.1.0.0/16"),
            net("10.1.2.0/24"),
            net("192.168.7.9/24"),
            net("fd00:1::/64"),
        ];
        p.no_routes = vec![net("10.1.5.0/24"), net("fd00:1::5/128")];
        let s = install_script(WorkerId(2), 4, &p).unwrap();
        assert_eq!(rules_of(&s, "c2"), ["goto r2"]);
        assert_eq!(
            rules_of(&s, "r2"),
            [
                "ip daddr { 10.1.5.0/24 } reject with icmpx admin-prohibited",
                "ip6 daddr { fd00:1::5/128 } reject with icmpx admin-prohibited",
                "ip daddr { 10.1.0.0/16, 192.168.7.0/24 } accept",
                "ip6 daddr { fd00:1::/64 } accept",
                "reject with icmpx admin-prohibited",
            ]
        );
        // `default` among the routes: everything but the no-routes.
        p.routes.push(Route::Default);
        let s = install_script(WorkerId(2), 4, &p).unwrap();
        assert_eq!(rules_of(&s, "r2").last().unwrap(), "accept");
        // Only IPv4 routes: IPv6 is rejected (as ocserv-fw's ip6tables rules do).
        p.routes = vec![net("10.1.0.0/16")];
        let s = install_script(WorkerId(2), 4, &p).unwrap();
        assert!(!rules_of(&s, "r2")
            .iter()
            .any(|r| r.contains("ip6 daddr { fd00:1::/64")));
    }

    #[test]
    fn networks_are_masked_and_nested_ones_dropped() {
        let v4 = |s: &str, p| (s.parse::<IpAddr>().unwrap(), p);
        assert_eq!(network("10.1.2.3".parse().unwrap(), 8), v4("10.0.0.0", 8));
        assert_eq!(network("10.1.2.3".parse().unwrap(), 0), v4("0.0.0.0", 0));
        assert_eq!(network("10.1.2.3".parse().unwrap(), 99), v4("10.1.2.3", 32));
        assert_eq!(network("fd00::1".parse().unwrap(), 0), v4("::", 0));
        assert_eq!(
            outermost(vec![
                v4("10.1.0.0", 16),
                v4("10.0.0.0", 8),
                v4("11.0.0.0", 8),
                v4("10.0.0.0", 8)
            ]),
            ["10.0.0.0/8", "11.0.0.0/8"]
        );
    }

    #[test]
    fn removal_takes_out_the_entry_and_both_chains() {
        let s = removal_script(&Installed {
            worker: WorkerId(7),
            ifindex: 42,
        });
        assert_eq!(
            s,
            "delete element inet rocserv clients { 42 }\nflush chain inet rocserv c7\n\
             flush chain inet rocserv r7\ndelete chain inet rocserv c7\ndelete chain inet rocserv r7\n"
        );
    }

    /// The scripts are valid for the real nft, and the removal leaves nothing of the session:
    /// applied in a network namespace of the test's own (needs root, `unshare` and `nft`;
    /// skipped without them).
    #[test]
    fn scripts_apply_in_a_scratch_namespace() {
        if !nix::unistd::geteuid().is_root()
            || !NFT_PATHS.iter().any(|p| std::path::Path::new(p).exists())
        {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let mut p = policy(
            true,
            Some("tcp(80), udp(53), sctp(9), icmp(), icmpv6(), esp()"),
        );
        p.dns = vec!["10.0.0.53".parse().unwrap()];
        p.routes = vec![net("10.1.0.0/16"), net("fd00::/64")];
        p.no_routes = vec![net("10.1.5.0/24")];
        let deny = policy(false, Some("!(tcp(22))"));
        let dir = std::env::temp_dir().join(format!("rocserv-fw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            ("a", install_script(WorkerId(7), 1, &p).unwrap()),
            ("b", install_script(WorkerId(8), 2, &deny).unwrap()),
            (
                "c",
                removal_script(&Installed {
                    worker: WorkerId(7),
                    ifindex: 1,
                }),
            ),
            ("reset", reset_script()),
        ];
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let d = dir.display();
        let out = std::process::Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-ec",
                &format!(
                    "nft -f {d}/reset; nft -f {d}/a; nft -f {d}/b; nft -f {d}/a; \
                     nft list table inet rocserv > {d}/before; nft -f {d}/c; \
                     nft list table inet rocserv; nft -f {d}/reset; nft -f {d}/reset; \
                     ! nft list table inet rocserv 2>/dev/null"
                ),
            ])
            .output()
            .unwrap();
        let before = std::fs::read_to_string(dir.join("before")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        let after = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            before.contains("chain c7") && before.contains("chain r8"),
            "{before}"
        );
        // Installing twice leaves one steering rule per hook.
        assert_eq!(before.matches("iif vmap @clients").count(), 2, "{before}");
        assert!(!after.contains("c7") && !after.contains("r7"), "{after}");
        assert!(
            after.contains("2 : jump c8") && !after.contains("1 : jump"),
            "{after}"
        );
    }
}
