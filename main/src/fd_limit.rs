//! The open-files limit of main: raised towards its hard limit at start.
//!
//! main holds about three descriptors per client besides its listeners (measured: 90 more with
//! 30 clients up than idle). systemd starts services with a soft limit of 1024
//! (and a hard limit of 524288 since systemd 240), so without this a node under systemd would
//! refuse new clients with EMFILE at around 330 sessions. Raising the soft limit towards the
//! hard one is what systemd.exec(5) ("LimitNOFILE=") asks of programs that need many
//! descriptors; the hard limit stays the administrator's.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors main needs per client, with room for a script's pipes and a pending accept.
const PER_CLIENT: u64 = 4;
/// Listeners, sec-mod and occtl sockets, metrics, logging, netlink, the session database.
const BASE: u64 = 128;

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Descriptors main needs for `max_clients` (0: no limit configured).
pub fn needed(max_clients: u32) -> Option<u64> {
    (max_clients > 0).then(|| {
        u64::from(max_clients)
            .saturating_mul(PER_CLIENT)
            .saturating_add(BASE)
    })
}

/// The warning for a hard limit too low for `max-clients`, if it is.
pub fn shortfall(outcome: &Outcome, max_clients: u32) -> Option<String> {
    let need = needed(max_clients)?;
    (outcome.soft < need).then(|| {
        format!(
            "max-clients: {max_clients} clients need about {need} open files in main, but its \
             limit is {} (hard {}), so clients beyond about {} will be refused; raise it \
             (LimitNOFILE= in the systemd unit, or ulimit -n)",
            outcome.soft,
            outcome.hard,
            outcome.soft.saturating_sub(BASE) / PER_CLIENT
        )
    })
}

/// What the soft limit is raised to without a larger `max-clients`: ~16000 clients. Not the hard
/// limit itself, which may be ~10^9 (`LimitNOFILE=infinity`, containers): children inherit the
/// soft limit, and a script that closes every descriptor up to it would spin for minutes.
const USUAL_CEILING: u64 = 65_536;

/// The soft limit to ask for: enough for `max_clients` (at least [`USUAL_CEILING`]), never
/// below what we were given nor above the hard limit.
pub fn target(soft_before: u64, hard: u64, max_clients: u32) -> u64 {
    let want = needed(max_clients).unwrap_or(0).max(USUAL_CEILING);
    want.max(soft_before).min(hard)
}

/// Raise the soft open-files limit towards the hard limit ([`target`]). Children (workers,
/// scripts) inherit it.
pub fn raise(max_clients: u32) -> nix::Result<Outcome> {
    let (soft_before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let soft = target(soft_before, hard, max_clients);
    if soft != soft_before {
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
    }
    Ok(Outcome {
        soft_before,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_bounded_by_the_hard_limit_and_a_usual_ceiling() {
        assert_eq!(target(1024, 524_288, 0), 65_536);
        assert_eq!(target(1024, 4096, 0), 4096);
        assert_eq!(target(1024, 1 << 30, 100_000), 400_128);
        assert_eq!(target(200_000, 1 << 30, 0), 200_000);
    }

    #[test]
    fn no_max_clients_needs_nothing_particular() {
        assert_eq!(needed(0), None);
        let o = Outcome {
            soft_before: 1024,
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(shortfall(&o, 0), None);
    }

    #[test]
    fn a_limit_below_max_clients_is_named() {
        let low = Outcome {
            soft_before: 1024,
            soft: 1024,
            hard: 1024,
        };
        let w = shortfall(&low, 1000).expect("1024 is too low for 1000 clients");
        assert!(w.starts_with("max-clients: 1000 clients"), "{w}");
        assert!(w.contains("LimitNOFILE="), "{w}");
        assert!(w.contains("beyond about 224"), "{w}");
        let raised = Outcome {
            soft_before: 1024,
            soft: 524_288,
            hard: 524_288,
        };
        assert_eq!(shortfall(&raised, 1000), None);
    }
}
