//! Bandwidth limits (`rx-data-per-sec`, `tx-data-per-sec`) in the kernel, on the session's tun
//! device, so that a compromised worker cannot exceed them (doc/decisions/
//! 0004-bandwidth-limits-with-tc.md has the measurements behind the choice).
//!
//! - To the client (`tx`): a token-bucket shaper (`tc qdisc ... tbf`) as the tun device's root
//!   qdisc. Everything the worker reads from the device went through it, whichever channel
//!   (TLS or DTLS) it then takes. It goes away with the device.
//! - From the client (`rx`): the tun device's ingress is redirected (`ingress` qdisc, a
//!   match-all `u32` filter, `mirred egress redirect`) to an `ifb` device of its own whose root
//!   qdisc is the same shaper; packets the worker writes queue there and leave at the rate
//!   (a shaper, not a policer: TCP through a policer overshoots or stalls, see the decision).
//!   The ingress qdisc goes away with the tun device; the `ifb` device does not, so main
//!   deletes it when the tunnel ends ([`RxShaper`]'s drop) and at start-up ([`remove_stale`],
//!   after a crash).
//!
//! The worker does nothing for a limit, so its data path is the same with and without one.
//! Everything here runs only when a limit is set: no limit, no command, no device.
//!
//! The commands are iproute2's `tc` and `ip` (no shell; arguments are numbers and names main
//! made). `unsafe`: none; the `ifb` device is deleted by index with one rtnetlink message.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use crate::rtnetlink;

/// The `ifb` devices' name prefix; followed by the tun device's interface index (unique while
/// the namespace lives: the kernel counts indexes up), so a name is never reused for another
/// tunnel and fits IFNAMSIZ (5 + at most 10 digits).
pub const IFB_PREFIX: &str = "rocrx";
/// The smallest burst: two full 64 KiB offload bursts (the tun device's TSO reads and the
/// worker's joined writes are up to 64 KiB; a shaper whose bucket is smaller than a packet
/// would cut it up in software, or drop it).
pub const MIN_BURST: u64 = 128 * 1024;
/// The burst is this much of the rate when that is more than [`MIN_BURST`] (fast links).
pub const BURST_MILLIS: u64 = 50;
/// The largest burst: tc takes it as a 32-bit byte count (50 ms of a rate above 21 GB/s is more).
pub const MAX_BURST: u64 = 1 << 30;
/// How long a packet may wait in the shaper's queue before it is dropped (tbf `latency`).
pub const QUEUE_MILLIS: u64 = 50;
/// Each command gets this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A session's limits in bytes per second; 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the client (`rx-data-per-sec`).
    pub rx: u64,
    /// To the client (`tx-data-per-sec`).
    pub tx: u64,
}

impl Limits {
    pub fn from_policy(policy: &rocserv_proto::policy::Policy) -> Self {
        Self {
            rx: policy.rx_data_per_sec,
            tx: policy.tx_data_per_sec,
        }
    }

    pub fn is_none(&self) -> bool {
        self.rx == 0 && self.tx == 0
    }
}

/// Installing a limit failed: the CONNECT is refused (a limit the kernel does not hold would
/// be no limit at all).
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The program could not be started (not installed?).
    #[error("cannot run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The command exited with an error (the kernel lacks tbf/ifb/ingress/u32/mirred?).
    #[error("`{command}` failed: {output}")]
    Failed { command: String, output: String },
    /// The command did not finish in time (it was killed).
    #[error("`{command}` did not finish within {COMMAND_TIMEOUT:?}")]
    Timeout { command: String },
    /// The `ifb` device vanished right after it was made.
    #[error("cannot read the interface index of {0}")]
    Index(String, #[source] nix::Error),
}

/// The bucket size for `rate` bytes per second.
pub fn burst(rate: u64) -> u64 {
    (rate.saturating_mul(BURST_MILLIS) / 1000).clamp(MIN_BURST, MAX_BURST)
}

/// The `tc` arguments of a shaper at `rate` bytes per second as `dev`'s root qdisc.
pub fn shaper(dev: &str, rate: u64) -> Vec<String> {
    vec![
        "qdisc".to_owned(),
        "replace".to_owned(),
        "dev".to_owned(),
        dev.to_owned(),
        "root".to_owned(),
        "tbf".to_owned(),
        "rate".to_owned(),
        // In bits: tc's `bps` means bytes per second, an easy mistake to make when reading.
        format!("{}bit", rate.saturating_mul(8)),
        "burst".to_owned(),
        burst(rate).to_string(),
        "latency".to_owned(),
        format!("{QUEUE_MILLIS}ms"),
    ]
}

/// The `tc` commands that send everything arriving on `tun` (what the worker writes) through
/// `ifb`: an ingress qdisc with one match-all filter.
pub fn redirect(tun: &str, ifb: &str) -> [Vec<String>; 2] {
    let owned = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    [
        owned(&["qdisc", "add", "dev", tun, "handle", "ffff:", "ingress"]),
        owned(&[
            "filter", "add", "dev", tun, "parent", "ffff:", "protocol", "all", "u32", "match",
            "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
        ]),
    ]
}

/// The `ifb` device's name for the tun device with index `tun_ifindex`.
pub fn ifb_name(tun_ifindex: u32) -> String {
    format!("{IFB_PREFIX}{tun_ifindex}")
}

/// Is `name` one of our `ifb` devices (prefix, then only digits)?
pub fn is_ifb_name(name: &str) -> bool {
    name.strip_prefix(IFB_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The `ifb` device of one tunnel's `rx` limit; deleted (by index) when dropped. Held in the
/// connection's [`crate::connect::Outcome`], so it goes when the worker is gone or the CONNECT
/// is refused after the limit was installed.
#[derive(Debug)]
pub struct RxShaper {
    name: String,
    ifindex: u32,
}

impl RxShaper {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for RxShaper {
    fn drop(&mut self) {
        if let Err(e) = delete_link(self.ifindex) {
            if e.raw_os_error() != Some(libc::ENODEV) {
                log::warn!("cannot delete {}: {e}", self.name);
            }
        }
    }
}

/// Install `limits` on the tun device `tun` (index `tun_ifindex`), before the worker gets it.
/// `Ok(Some)` holds the `rx` shaper's device.
pub async fn install(
    tun: &str,
    tun_ifindex: u32,
    limits: Limits,
) -> Result<Option<RxShaper>, RateLimitError> {
    if limits.tx > 0 {
        run(TC, &shaper(tun, limits.tx)).await?;
    }
    if limits.rx == 0 {
        return Ok(None);
    }
    let name = ifb_name(tun_ifindex);
    run(IP, &to_owned(&["link", "add", &name, "type", "ifb"])).await?;
    let ifindex = nix::net::if_::if_nametoindex(name.as_str())
        .map_err(|e| RateLimitError::Index(name.clone(), e))?;
    // From here on the device is deleted on any error (drop).
    let shaper_dev = RxShaper { name, ifindex };
    run(TC, &shaper(&shaper_dev.name, limits.rx)).await?;
    run(
        IP,
        &to_owned(&["link", "set", "dev", &shaper_dev.name, "up"]),
    )
    .await?;
    for command in redirect(tun, &shaper_dev.name) {
        run(TC, &command).await?;
    }
    Ok(Some(shaper_dev))
}

/// Delete the `ifb` devices a previous main left behind (killed before it could). Called once
/// at start-up, before any tunnel exists.
pub fn remove_stale() {
    let Ok(interfaces) = nix::net::if_::if_nameindex() else {
        return;
    };
    for interface in interfaces.iter() {
        let Ok(name) = interface.name().to_str() else {
            continue;
        };
        if is_ifb_name(name) {
            match delete_link(interface.index()) {
                Ok(()) => log::info!("deleted {name}, left by an earlier run"),
                Err(e) => log::warn!("cannot delete {name}, left by an earlier run: {e}"),
            }
        }
    }
}

/// iproute2's programs, by absolute path where they usually live (main's PATH may lack sbin).
const TC: &[&str] = &["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc", "/bin/tc"];
const IP: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

fn to_owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| (*s).to_owned()).collect()
}

/// Run one command to completion (bounded in time; killed when late).
async fn run(program: &[&str], args: &[String]) -> Result<(), RateLimitError> {
    let path = program
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .or(program.last())
        .copied()
        .unwrap_or("tc");
    let command = format!("{path} {}", args.join(" "));
    let child = tokio::process::Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RateLimitError::Spawn {
            program: path.to_owned(),
            source,
        })?;
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(RateLimitError::Spawn {
                program: path.to_owned(),
                source,
            })
        }
        Err(_) => return Err(RateLimitError::Timeout { command }),
    };
    if output.status.success() {
        log::debug!("{command}");
        return Ok(());
    }
    let text: String = String::from_utf8_lossy(&output.stderr)
        .trim()
        .chars()
        .take(300)
        .collect();
    Err(RateLimitError::Failed {
        command,
        output: format!("{} ({text})", output.status),
    })
}

/// Delete the link with index `ifindex` (RTM_DELLINK, rtnetlink(7)); `ENODEV` when gone.
fn delete_link(ifindex: u32) -> io::Result<()> {
    rtnetlink::request(&dellink(ifindex, SEQ)?, SEQ)
}

const SEQ: u32 = 1;

/// `nlmsghdr` + `ifinfomsg{index}`.
fn dellink(ifindex: u32, seq: u32) -> io::Result<Vec<u8>> {
    let total = rtnetlink::NLMSG_HDR_LEN + rtnetlink::IFINFOMSG_LEN;
    let mut m = Vec::with_capacity(total);
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK;
    rtnetlink::header(&mut m, total, libc::RTM_DELLINK, flags, seq)?;
    rtnetlink::ifinfomsg(&mut m, ifindex)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_at_least_two_offload_bursts_else_50_ms_within_32_bits() {
        assert_eq!(burst(1), MIN_BURST);
        assert_eq!(burst(2_000_000), MIN_BURST);
        assert_eq!(burst(10_000_000), 500_000);
        assert_eq!(burst(1_000_000_000_000), MAX_BURST, "tc takes 32 bits");
    }

    #[test]
    fn shaper_rate_is_in_bits() {
        assert_eq!(
            shaper("vpns3", 250_000).join(" "),
            "qdisc replace dev vpns3 root tbf rate 2000000bit burst 131072 latency 50ms"
        );
    }

    #[test]
    fn redirect_sends_everything_to_the_ifb() {
        let [q, f] = redirect("vpns0", "rocrx7");
        assert_eq!(q.join(" "), "qdisc add dev vpns0 handle ffff: ingress");
        assert_eq!(
            f.join(" "),
            "filter add dev vpns0 parent ffff: protocol all u32 match u32 0 0 action mirred \
             egress redirect dev rocrx7"
        );
    }

    #[test]
    fn ifb_names_fit_and_are_recognised() {
        let longest = ifb_name(u32::MAX);
        assert!(longest.len() < libc::IFNAMSIZ, "{longest}");
        assert!(is_ifb_name(&longest));
        assert!(is_ifb_name("rocrx12"));
        for other in ["rocrx", "rocrx1a", "vpns0", "xrocrx1", "rocrx-1"] {
            assert!(!is_ifb_name(other), "{other}");
        }
    }

    /// A limit the kernel does not take is an error (the CONNECT is then refused), with the
    /// command in the message.
    #[tokio::test]
    async fn a_failed_command_is_an_error_naming_it() {
        let limits = Limits { rx: 0, tx: 1000 };
        match install("rocnodev0", u32::MAX, limits).await {
            Err(RateLimitError::Failed { command, .. }) => {
                assert!(command.contains("dev rocnodev0 root tbf"), "{command}");
            }
            Err(RateLimitError::Spawn { .. }) => {} // no tc on this machine: also refused
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dellink_names_the_index() {
        let m = dellink(42, 9).unwrap();
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            libc::RTM_DELLINK
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 42);
    }
}
