//! Bans across the cluster, main's side (doc/cluster.md "Bans"). main keeps the scores
//! ([`crate::ban`]); with `cluster-store` it tells the other nodes what it charged and banned
//! (through sec-mod, which publishes on the bus and writes `rocserv:ban:IP` keys), applies
//! what they tell it without passing it on, and on each return of the store re-asserts its
//! running bans and reads everyone's (a ban lost by the store or the bus is written again by
//! any node that still holds it: lost bans come back, an unban is what can be lost).
//!
//! Bounded: points and bans are coalesced per address over [`FLUSH_GAP`] (a flood of wrong
//! passwords from one address is one message per window), at most
//! [`crate::ban`]'s `MAX_OUTGOING` addresses wait, and a message carries at most
//! [`MAX_PER_MESSAGE`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rocserv_proto::cluster::bans::{BanPoints, BanRecord, MAX_PER_MESSAGE};
use rocserv_proto::ipc::cluster::{ClusterAnswer, ClusterQuery, ToCluster};

use crate::state::Shared;

/// Time news is gathered before it is sent: at most one flush per window.
pub const FLUSH_GAP: Duration = Duration::from_millis(250);

/// Start telling the other nodes (with `cluster-store` only).
pub fn spawn(shared: &Arc<Shared>) {
    if shared.cluster.is_none() {
        return;
    }
    shared.bans.share();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        loop {
            shared.bans.outgoing.notified().await;
            tokio::time::sleep(FLUSH_GAP).await;
            let (points, bans) = shared.bans.take_outgoing();
            send_points(&shared, points).await;
            send_bans(&shared, bans).await;
        }
    });
}

async fn send_points(shared: &Shared, points: Vec<BanPoints>) {
    for chunk in points.chunks(MAX_PER_MESSAGE) {
        let notice = ToCluster::BanPoints(chunk.to_vec());
        if let Err(e) = shared.secmod.cluster_notice(notice).await {
            log::debug!("cluster: cannot pass ban points to sec-mod: {e}");
        }
    }
}

async fn send_bans(shared: &Shared, bans: Vec<BanRecord>) {
    for chunk in bans.chunks(MAX_PER_MESSAGE) {
        if let Err(e) = shared
            .secmod
            .cluster_notice(ToCluster::Banned(chunk.to_vec()))
            .await
        {
            log::warn!("cluster: cannot pass bans to sec-mod: {e}");
        }
    }
}

/// Another node's points.
pub fn on_points(shared: &Shared, points: &[BanPoints]) {
    for p in points.iter().take(MAX_PER_MESSAGE) {
        shared.bans.add_remote_points(p.ip, p.points);
    }
}

/// Another node's bans (or the store's).
pub fn on_banned(shared: &Shared, bans: &[BanRecord]) {
    for b in bans {
        shared.bans.apply_remote_ban(b);
    }
}

/// Another node's occtl `unban ip`.
pub fn on_unban(shared: &Shared, ip: IpAddr) {
    shared.bans.unban_remote(ip);
}

/// occtl `unban ip` here: end the ban on the other nodes too (key deleted, bus message). Sent
/// whether or not this node knew the address: the ban may be another node's.
pub async fn unban(shared: &Shared, ip: IpAddr) {
    if shared.cluster.is_none() {
        return;
    }
    let notice = ToCluster::Unban(crate::ban::key(ip));
    if let Err(e) = shared.secmod.cluster_notice(notice).await {
        log::warn!("cluster: cannot pass the unban of {ip} to sec-mod: {e}");
    }
}

/// The store is reachable again (or for the first time): write this node's running bans
/// again, then apply every ban the store holds.
pub fn resync(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        send_bans(&shared, shared.bans.records()).await;
        match shared.secmod.cluster_query(ClusterQuery::Bans).await {
            Ok(ClusterAnswer::Bans(bans)) => {
                log::debug!("cluster: {} bans in the store", bans.len());
                on_banned(&shared, &bans);
            }
            Ok(ClusterAnswer::Unavailable { why }) => {
                log::warn!("cluster: cannot read the bans in the store: {why}")
            }
            Ok(other) => log::warn!("cluster: unexpected answer to a ban query: {other:?}"),
            Err(e) => log::warn!("cluster: cannot read the bans in the store: {e}"),
        }
    });
}
