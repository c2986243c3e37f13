//! IPv4 leases across the nodes of a cluster (`cluster-store`, ours; doc/cluster.md
//! "Addresses"). main keeps its own table ([`crate::ip_pool`]) and picks the candidates from
//! it; sec-mod's store decides atomically which one the session gets (one round trip in the
//! common case), so an address is held by one session in the whole cluster, a session that
//! reconnects on another node gets its address back, and `explicit-ipv4` of one user is
//! refused to another user wherever that one logs in.
//!
//! While the store is down (or does not answer in time) leasing is node-local, as on a single
//! node. When it is back, [`renew`] writes this node's live leases again; an address that
//! another node gave out meanwhile stays with the session the store holds, and this node ends
//! its own tunnel on that address (logged): two tunnels with one address would each lose
//! packets to the other's route.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocserv_proto::ipc::cluster::{
    AddressClaim, AddressClaimed, AddressHold, AddressRelease, ClusterAnswer, ClusterQuery,
    ToCluster,
};
use rocserv_proto::ipc::SessionId;

use crate::conn::{Conn, Stop};
use crate::ip_pool::{Grant, LeaseError, LeaseRequest, Plan};
use crate::secmod::SecModClient;
use crate::state::Shared;

/// Candidates one claim offers the store.
pub const CANDIDATES: usize = 32;
/// Most claims one CONNECT makes (each learns which candidates other nodes hold).
pub const ROUNDS: usize = 4;
/// How often this node renews its live leases in the store.
pub const RENEW: Duration = Duration::from_secs(10);
/// How long an address another node holds is skipped before the store is asked about it again.
const REMEMBER: Duration = Duration::from_secs(30);
/// Kept after a connection ends, beyond `cookie-timeout` (as the local reservation).
const SLACK: Duration = Duration::from_secs(15);

/// What main's lease logic keeps of the cluster.
#[derive(Debug, Default)]
pub struct Remote {
    /// Addresses the store said another node's sessions hold, until when to skip them.
    held: Mutex<HashMap<Ipv4Addr, Instant>>,
    /// Renew now (the store came back).
    renew_now: tokio::sync::Notify,
}

impl Remote {
    fn skip(&self, now: Instant) -> HashSet<Ipv4Addr> {
        let mut held = rocserv_rt::lock(&self.held);
        held.retain(|_, until| *until > now);
        held.keys().copied().collect()
    }

    fn remember(&self, addrs: impl Iterator<Item = Ipv4Addr>, now: Instant) {
        let mut held = rocserv_rt::lock(&self.held);
        for a in addrs {
            held.insert(a, now + REMEMBER);
        }
    }

    fn forget(&self, addr: Ipv4Addr) {
        rocserv_rt::lock(&self.held).remove(&addr);
    }

    /// The store is reachable again: renew (re-assert) at once.
    pub fn store_back(&self) {
        self.renew_now.notify_one();
    }
}

/// How long a record lives in the store without renewal: the reservation a session gets for
/// its reconnect (`cookie-timeout` + slack), so a dead node's sessions can resume elsewhere
/// with their addresses; at least three renewals.
pub fn ttl_ms(cookie_timeout_secs: u32) -> u64 {
    let keep = Duration::from_secs(u64::from(cookie_timeout_secs)) + SLACK;
    ms(keep.max(RENEW * 3))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Lease an address for session `sid` of `user` (a CONNECT from `peer`) as `req` asks: through
/// the cluster store when it is up and the CONNECT's `budget` is not spent, node-local
/// otherwise.
pub async fn lease(
    shared: &Shared,
    conn: &mut Conn,
    req: &LeaseRequest,
    (peer, sid, user): (std::net::SocketAddr, SessionId, &str),
    budget: &mut crate::cluster::sessions::StoreBudget,
) -> Result<Grant, LeaseError> {
    let Some(cluster) = shared.cluster.as_ref() else {
        return conn.lease(req, sid, user);
    };
    let now = Instant::now();
    let mut skip = cluster.leases.skip(now);
    if !cluster.store_up() {
        return local(shared, conn, req, sid, user, &skip);
    }
    let worker = conn.worker().0;
    let ttl = ttl_ms(shared.config.cookie_timeout);
    for _ in 0..ROUNDS {
        let candidates = match conn.plan_lease(req, sid, user, &skip, CANDIDATES)? {
            Plan::Own(a) | Plan::Fixed(a) => vec![a],
            Plan::Pool(c) => c,
        };
        let claim = AddressClaim {
            sid,
            worker,
            user: user.to_owned(),
            candidates: candidates.clone(),
            ttl_ms: ttl,
        };
        let Some(left) = budget.left(peer, user) else {
            return local(shared, conn, req, sid, user, &skip);
        };
        let query = shared
            .secmod
            .cluster_query(ClusterQuery::ClaimAddress(claim));
        let Ok(answer) = tokio::time::timeout(left, query).await else {
            // The store may still write this claim: the record expires unless renewed, and
            // the renewal writes the address this node gave (doc/cluster.md "Failure").
            budget.spend(peer, user);
            return local(shared, conn, req, sid, user, &skip);
        };
        let addr = match answer {
            Ok(ClusterAnswer::AddressClaim(
                AddressClaimed::Previous(a) | AddressClaimed::Claimed(a),
            )) => a,
            Ok(ClusterAnswer::AddressClaim(AddressClaimed::Taken(taken))) => {
                cluster.leases.remember(taken.iter().map(|t| t.addr), now);
                if let (Some(fixed), Some(t)) = (req.fixed, taken.first()) {
                    return Err(LeaseError::FixedInUse {
                        addr: fixed,
                        holder: format!("{} on node {}", t.user, t.node),
                    });
                }
                skip.extend(candidates);
                continue;
            }
            other => {
                let why = crate::cluster::why_no_answer(other);
                log::warn!(
                    "address of {user}: the cluster store cannot answer ({why}): node-local"
                );
                return local(shared, conn, req, sid, user, &skip);
            }
        };
        let hold = AddressHold {
            addr,
            sid,
            worker,
            user: user.to_owned(),
        };
        match conn.take_lease(req, sid, user, addr) {
            Ok(grant) => {
                cluster.leases.forget(addr);
                conn.shared_lease(hold, Arc::clone(&shared.secmod));
                return Ok(grant);
            }
            Err(e) => {
                // The store's answer does not fit here (the session's network changed since
                // it held that address, or a connection of this node holds it): give the
                // record back and try again without it.
                log::debug!("address {addr} of {user} from the cluster store: {e}");
                release(hold, Arc::clone(&shared.secmod), None);
                if req.fixed.is_some() {
                    return Err(e);
                }
                skip.insert(addr);
            }
        }
    }
    Err(LeaseError::Exhausted)
}

/// Node-local, still skipping what other nodes are known to hold. Released in the store too:
/// [`renew`] writes it there once the store is back.
fn local(
    shared: &Shared,
    conn: &mut Conn,
    req: &LeaseRequest,
    sid: SessionId,
    user: &str,
    skip: &HashSet<Ipv4Addr>,
) -> Result<Grant, LeaseError> {
    let addr = match conn.plan_lease(req, sid, user, skip, 1)? {
        Plan::Own(a) | Plan::Fixed(a) => a,
        Plan::Pool(c) => c.first().copied().ok_or(LeaseError::Exhausted)?,
    };
    let grant = conn.take_lease(req, sid, user, addr)?;
    let hold = AddressHold {
        addr,
        sid,
        worker: conn.worker().0,
        user: user.to_owned(),
    };
    conn.shared_lease(hold, Arc::clone(&shared.secmod));
    Ok(grant)
}

/// The connection ended: release its record in the store (kept for the session until
/// `keep_until`, or freed), in the background.
pub fn release(hold: AddressHold, secmod: Arc<SecModClient>, keep_until: Option<Instant>) {
    let keep_ms = keep_until.map_or(0, |t| {
        ms(t.saturating_duration_since(Instant::now())).max(1)
    });
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let notice = ToCluster::ReleaseAddress(AddressRelease { hold, keep_ms });
        if let Err(e) = secmod.cluster_notice(notice).await {
            log::debug!("cannot release an address in the cluster store: {e}");
        }
    });
}

/// Renew this node's live leases every [`RENEW`], and at once when the store comes back.
pub fn spawn(shared: &Arc<Shared>) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RENEW);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = cluster.leases.renew_now.notified() => {}
            }
            if cluster.store_up() {
                renew(&shared).await;
            }
        }
    });
}

/// Most leases one renewal query carries.
const RENEW_CHUNK: usize = 256;
/// Most bytes of user names one renewal query carries (with the rest of each hold, the query
/// stays well under one IPC message, `rocserv_proto::ipc::MAX_MESSAGE`).
const RENEW_CHUNK_BYTES: usize = 40 * 1024;

/// Split this node's leases into renewal queries of at most [`RENEW_CHUNK`] leases and
/// [`RENEW_CHUNK_BYTES`] of user names: one query for all of them would not fit in one message
/// past about 1500 leases, and none would be renewed.
fn renewal_chunks(holds: Vec<AddressHold>) -> Vec<Vec<AddressHold>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<AddressHold> = Vec::new();
    let mut bytes = 0;
    for h in holds {
        let size = h.user.len();
        if !chunk.is_empty() && (chunk.len() >= RENEW_CHUNK || bytes + size > RENEW_CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(h);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Renew (write again) every live lease of this node; end the tunnels whose address the store
/// gives to another session.
pub async fn renew(shared: &Shared) {
    let holds: Vec<AddressHold> = shared
        .conns
        .pool()
        .active()
        .into_iter()
        .map(|(addr, sid, worker, user)| AddressHold {
            addr,
            sid,
            worker: worker.0,
            user,
        })
        .collect();
    let ttl_ms = ttl_ms(shared.config.cookie_timeout);
    let mut lost = Vec::new();
    for chunk in renewal_chunks(holds) {
        let count = chunk.len();
        let query = ClusterQuery::RenewAddresses {
            holds: chunk,
            ttl_ms,
        };
        // A failed chunk is not renewed this round: its records outlive it by the
        // reservation time, and the next round (every RENEW) tries again.
        match shared.secmod.cluster_query(query).await {
            Ok(ClusterAnswer::AddressesLost(l)) => lost.extend(l),
            Ok(other) => log::warn!("lease renewal of {count} addresses: {other:?}"),
            Err(e) => log::warn!("lease renewal of {count} addresses: {e}"),
        }
    }
    for t in lost {
        let Some(worker) = shared.conns.pool().active_worker(t.addr) else {
            continue;
        };
        log::error!(
            "address {} is held by a session of {} on node {} in the cluster store (given out \
             while this node could not reach the store, or the session moved there): ending \
             the tunnel on this node",
            t.addr,
            t.user,
            t.node
        );
        shared.conns.terminate(worker, Stop::Takeover);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(n: u32, user_len: usize) -> Vec<AddressHold> {
        (0..n)
            .map(|i| AddressHold {
                addr: Ipv4Addr::from(0x0a00_0000 + i),
                sid: SessionId(u64::from(i)),
                worker: u64::MAX - u64::from(i),
                user: "u".repeat(user_len),
            })
            .collect()
    }

    #[test]
    fn renewals_go_in_chunks_that_each_fit_in_one_message() {
        for (n, user_len) in [(0, 8), (1, 8), (256, 8), (257, 8), (3000, 8), (3000, 1024)] {
            let all = holds(n, user_len);
            let chunks = renewal_chunks(all.clone());
            assert!(chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() <= RENEW_CHUNK));
            assert_eq!(chunks.concat(), all, "every lease once, in order");
            for c in chunks {
                let msg = rocserv_proto::ipc::main_secmod::ToSecMod::ClusterQuery {
                    id: u64::MAX,
                    query: ClusterQuery::RenewAddresses {
                        holds: c,
                        ttl_ms: u64::MAX,
                    },
                };
                rocserv_proto::ipc::encode(&msg).expect("one chunk fits in one message");
            }
        }
        // One query for all 3000 would not (what the chunks avoid).
        let msg = rocserv_proto::ipc::main_secmod::ToSecMod::ClusterQuery {
            id: 1,
            query: ClusterQuery::RenewAddresses {
                holds: holds(3000, 8),
                ttl_ms: 1,
            },
        };
        assert!(rocserv_proto::ipc::encode(&msg).is_err());
    }
}
