//! main's part of the cluster's sessions (doc/cluster.md "Sessions and cookies"): sec-mod
//! keeps the session records and the claims in the store; main only ends a tunnel whose
//! session another node took over.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rocserv_proto::cluster::REQUEST_BUDGET;
use rocserv_proto::ipc::cluster::{ClusterAnswer, ClusterQuery};
use rocserv_proto::ipc::main_secmod::SessionGrant;
use rocserv_proto::ipc::SessionId;

use crate::conn::{Conn, Stop};
use crate::state::Shared;

/// Most of this node's sessions of one user a reservation names (the store script reads at
/// most 1000 members; a user with more here is counted on this node only).
const MAX_HERE: usize = 1000;

/// One CONNECT's time with the store ([`REQUEST_BUDGET`]): sec-mod spends it first (the
/// session's lookup) and says how long it waited for the store and whether it spent it all;
/// the store round trips main makes right after (the `max-same-clients` reservation, the
/// address claims) get what is left, counted from the grant's arrival, and once it is spent the
/// CONNECT finishes node-locally, as if the store were down, with one log line (sec-mod's or
/// this one). Time sec-mod spent on other things (queued behind hashes, the session-db) is not
/// charged: the cluster's checks are skipped only for a store that was slow.
#[derive(Debug)]
pub struct StoreBudget {
    deadline: Instant,
    spent: bool,
}

impl StoreBudget {
    /// The budget left of a CONNECT whose grant arrived now: sec-mod waited `used` for the
    /// store; `spent`: sec-mod spent it all already (and logged it).
    pub fn new(used: Duration, spent: bool) -> Self {
        Self {
            deadline: Instant::now() + REQUEST_BUDGET.saturating_sub(used),
            spent,
        }
    }

    /// What is left for the next round trip; `None` once spent (logged once, here, unless
    /// sec-mod did).
    pub fn left(&mut self, peer: SocketAddr, user: &str) -> Option<Duration> {
        if self.spent {
            return None;
        }
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => {
                self.spend(peer, user);
                None
            }
        }
    }

    /// The request ran out of time waiting for the store (logged once).
    pub fn spend(&mut self, peer: SocketAddr, user: &str) {
        if !std::mem::replace(&mut self.spent, true) {
            log::warn!(
                "{peer}: CONNECT of {user}: the cluster store is too slow (this CONNECT spent \
                 its {REQUEST_BUDGET:?} with it); finished node-locally, as if the store were down"
            );
        }
    }
}

/// `max-same-clients` across the nodes, once main's own count admitted the CONNECT: sec-mod
/// counts the user's sessions with a tunnel on other nodes and reserves this one in the same
/// store script, so that two CONNECTs on two nodes at once cannot both pass. `false` (logged):
/// one too many. Node-local (admitted) when the store is down, does not answer, or the
/// CONNECT's `budget` is spent.
pub async fn admit(
    shared: &Shared,
    conn: &Conn,
    grant: &SessionGrant,
    peer: SocketAddr,
    max: u32,
    budget: &mut StoreBudget,
) -> bool {
    let Some(cluster) = &shared.cluster else {
        return true;
    };
    if max == 0 || !cluster.store_up() {
        return true;
    }
    let here: Vec<SessionId> = conn
        .user_sessions(&grant.username)
        .into_iter()
        .filter(|s| *s != grant.sid)
        .collect();
    if here.len() > MAX_HERE {
        return true;
    }
    // main's count admitted this one: here.len() < max.
    let room = max
        .saturating_sub(1)
        .saturating_sub(u32::try_from(here.len()).unwrap_or(u32::MAX));
    let Some(left) = budget.left(peer, &grant.username) else {
        return true;
    };
    let query = ClusterQuery::ReserveTunnel {
        user: grant.username.clone(),
        sid: grant.sid,
        room,
        here,
    };
    let answer = match tokio::time::timeout(left, shared.secmod.cluster_query(query)).await {
        Ok(answer) => answer,
        Err(_elapsed) => {
            budget.spend(peer, &grant.username);
            return true;
        }
    };
    match answer {
        Ok(ClusterAnswer::Reserved { reserved: true, .. }) => true,
        Ok(ClusterAnswer::Reserved { elsewhere, .. }) => {
            log::info!(
                "{peer}: CONNECT of {} refused: max-same-clients ({max}) reached on the cluster \
                 ({elsewhere} on other nodes)",
                grant.username
            );
            false
        }
        other => {
            let why = super::why_no_answer(other);
            log::warn!(
                "{peer}: CONNECT of {}: max-same-clients counted on this node only: the cluster \
                 store cannot answer ({why})",
                grant.username
            );
            true
        }
    }
}

/// Another node took the claim of `sid`: end its tunnel here as a local takeover would
/// (`EndCause::Takeover`; the session's cookie stays valid, the record stays in the store).
pub fn end_tunnel(shared: &Shared, sid: SessionId) {
    match shared.conns.worker_of_session(sid) {
        Some(worker) if shared.conns.terminate(worker, Stop::Takeover) => {
            log::info!("session {sid}: taken over by another node; ending its tunnel here");
        }
        Some(_) | None => log::debug!("session {sid}: taken over elsewhere; no tunnel here"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 443))
    }

    #[test]
    fn a_budget_spent_in_sec_mod_leaves_nothing() {
        let mut b = StoreBudget::new(Duration::ZERO, true);
        assert_eq!(b.left(peer(), "alice"), None);
    }

    #[test]
    fn main_gets_what_sec_mods_store_waits_left() {
        let mut b = StoreBudget::new(Duration::from_millis(400), false);
        let left = b.left(peer(), "alice").unwrap();
        assert!(left <= REQUEST_BUDGET - Duration::from_millis(400));
        assert!(left > REQUEST_BUDGET / 2);
        // sec-mod waited the whole budget without being cut (a last answer just in time):
        // nothing left, and it stays so.
        let mut used_up = StoreBudget::new(REQUEST_BUDGET, false);
        assert_eq!(used_up.left(peer(), "alice"), None);
        assert_eq!(used_up.left(peer(), "alice"), None);
        b.spend(peer(), "alice");
        assert_eq!(b.left(peer(), "alice"), None, "spent by a cut command");
    }
}
