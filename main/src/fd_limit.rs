//! The open-files limit of main: raised to its hard limit at start.
//!
//! main holds about three descriptors per client besides its listeners (measured: 90 more with
//! 30 clients up than idle). systemd starts services with a soft limit of 1024
//! (and a hard limit of 524288 since systemd 240), so without this a node under systemd would
//! refuse new clients with EMFILE at around 330 sessions. Raising the soft limit up to the hard
//! one is what systemd.exec(5) ("LimitNOFILE=") asks of programs that need many descriptors; the
//! hard limit stays the administrator's.

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

/// Raise the soft open-files limit to the hard limit. Children (workers, scripts) inherit it.
pub fn raise() -> nix::Result<Outcome> {
    let (soft_before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let mut soft = soft_before;
    if soft_before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        soft = hard;
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
