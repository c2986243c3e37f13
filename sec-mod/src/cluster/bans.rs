//! Bans across the cluster, sec-mod's side (doc/cluster.md "Bans"): main decides (it keeps
//! the scores); here its news is written to the store and published, the other nodes' news is
//! checked and handed to main, and the store's bans are read back on main's request.
//!
//! Keys: `rocserv:ban:IP` = the score, with the ban's time left as TTL (so a ban ends in the
//! store when it ends on the node that started it, and a store writer cannot make a ban last
//! longer than the reader's own `ban-time`: main caps it).

use std::net::IpAddr;

use rocserv_proto::cluster::bans::{
    ban_key, parse_stored, BanPoints, BanRecord, BAN_PATTERN, MAX_PER_MESSAGE, MAX_READ,
};
use rocserv_proto::cluster::bus::BusBody;
use rocserv_proto::ipc::cluster::FromCluster;

use super::{Cluster, StoreError};

/// Keys read per pipeline (one `GET` and one `PTTL` each).
const READ_BATCH: usize = 128;

/// main charged points: tell the other nodes.
pub async fn points(cluster: &Cluster, points: Vec<BanPoints>) {
    if points.is_empty() || points.len() > MAX_PER_MESSAGE {
        return;
    }
    if let Err(e) = cluster.publish(BusBody::BanPoints(points)).await {
        log::debug!("cluster: ban points not published: {e}");
    }
}

/// main banned (or re-asserts its bans): write the keys, then tell the other nodes.
pub async fn banned(cluster: &Cluster, bans: Vec<BanRecord>) {
    let bans: Vec<BanRecord> = bans
        .into_iter()
        .filter(|b| b.remaining_ms > 0)
        .take(MAX_PER_MESSAGE)
        .collect();
    if bans.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for b in &bans {
        pipe.cmd("SET")
            .arg(ban_key(b.ip))
            .arg(b.score)
            .arg("PX")
            .arg(b.remaining_ms)
            .ignore();
    }
    if let Err(e) = cluster.store.pipe::<()>("SET ban", &pipe).await {
        // Written again when the store comes back (main re-asserts its running bans).
        log::warn!("cluster: {} bans not written to the store: {e}", bans.len());
    }
    if let Err(e) = cluster.publish(BusBody::Banned(bans)).await {
        log::debug!("cluster: bans not published: {e}");
    }
}

/// occtl `unban ip` on this node: delete the key, tell the other nodes.
pub async fn unban(cluster: &Cluster, ip: IpAddr) {
    let del = redis::cmd("DEL").arg(ban_key(ip)).clone();
    if let Err(e) = cluster.store.cmd::<()>("DEL ban", &del).await {
        log::warn!("cluster: unban of {ip} not written to the store: {e}");
    }
    if let Err(e) = cluster.publish(BusBody::Unban(ip)).await {
        log::warn!("cluster: unban of {ip} not published: {e}");
    }
}

/// Another node's ban news, for main (the bus decoder bounded the size; checked again here).
pub fn on_bus(cluster: &Cluster, from: &str, body: BusBody) {
    let notice = match body {
        BusBody::BanPoints(p) if p.len() <= MAX_PER_MESSAGE => FromCluster::BanPoints(p),
        BusBody::Banned(b) if b.len() <= MAX_PER_MESSAGE => FromCluster::Banned(b),
        BusBody::Unban(ip) => {
            log::info!("cluster node {from}: unban ip {ip}");
            FromCluster::Unban(ip)
        }
        other => {
            log::warn!("cluster node {from}: oversized ban message skipped ({other:?})");
            return;
        }
    };
    cluster.to_main.push(notice);
}

/// Every ban in the store (at most [`MAX_READ`]); garbage keys are skipped with one line.
pub async fn read_all(cluster: &Cluster) -> Result<Vec<BanRecord>, StoreError> {
    let keys = cluster.scan(BAN_PATTERN).await?;
    let mut found = Vec::new();
    let mut skipped = 0usize;
    for batch in keys.chunks(READ_BATCH) {
        let mut pipe = redis::pipe();
        for k in batch {
            pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
        }
        // Two answers per key (GET, PTTL); anything unexpected counts as garbage.
        let values: Vec<redis::Value> = cluster.store.pipe("GET ban", &pipe).await?;
        let mut values = values.into_iter();
        for key in batch {
            let value: Option<Vec<u8>> = values
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .flatten();
            let pttl: i64 = values
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .unwrap_or(-1);
            match parse_stored(key, value.as_deref(), pttl) {
                Some(b) if found.len() < MAX_READ => found.push(b),
                Some(_) => skipped += 1,
                // Expired between SCAN and GET: not garbage.
                None if pttl == -2 => {}
                None => {
                    skipped += 1;
                    log::debug!("cluster: skipped ban key {}", key.escape_debug());
                }
            }
        }
    }
    if skipped > 0 {
        log::warn!(
            "cluster: {skipped} ban keys skipped (malformed, without expiry, or beyond {MAX_READ})"
        );
    }
    Ok(found)
}
