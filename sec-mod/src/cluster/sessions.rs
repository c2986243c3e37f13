//! Sessions and cookies across the cluster (doc/cluster.md "Sessions and cookies").
//!
//! - The record of a session lives under `rocserv:session:<hex SHA-256 of the cookie>` (never
//!   the cookie): its id (the same on every node), user, group, vhost, login facts and login
//!   time; its expiry is the key's TTL. Written at login and on resync, its TTL renewed while
//!   a tunnel uses it, deleted when the session is (user disconnect, terminate). A node that
//!   gets a CONNECT with a cookie its own table does not know reads it and imports it.
//! - One live tunnel per session: the claim `rocserv:claim:<sid>` names the owner
//!   (`node/worker`), taken when a tunnel starts, renewed every [`CLAIM_RENEW`] (TTL
//!   [`CLAIM_TTL`]), released at the tunnel's end only if still ours. Taking a claim another
//!   node holds tells that node to end its tunnel (bus `Takeover`); a node that finds at a
//!   renewal that it lost a claim ends its tunnel too. A claim never blocks a CONNECT: the
//!   newest tunnel wins, so a dead node's claim does not delay its clients' reconnects.
//! - `max-same-clients` across the nodes: `rocserv:live:<hex SHA-256 of the user>` is a sorted
//!   set of the user's claimed sessions scored by the claim's expiry.
//!
//! sec-mod's own table ([`crate::sessions`]) stays the authority on this node and the
//! fallback while the store is down; every call here is bounded by the store's timeout and
//! skipped while the store is known to be down.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rocserv_proto::cluster::bus::BusBody;
use rocserv_proto::cluster::session::{Record, RECORD_VERSION};
use rocserv_proto::ipc::cluster::FromCluster;
use rocserv_proto::ipc::main_secmod::FromSecMod;
use rocserv_proto::ipc::{SessionId, WorkerId};
use tokio::sync::mpsc;

use super::{keys, unix_ms, Cluster};
use crate::sessions::{Imported, LoginFacts};
use crate::worker_link::Shared;

/// How often the owner renews its claims.
pub const CLAIM_RENEW: Duration = Duration::from_secs(5);
/// A claim not renewed for this long expires (its node died).
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// Most sessions of one user read for `max-same-clients`.
const MAX_LIVE_READ: usize = 1000;

/// `rocserv:session:<hex>`: the record of the session whose cookie hashes to `sha256`.
pub fn session_key(sha256: &[u8; 32]) -> String {
    format!("{}session:{}", keys::PREFIX, keys::hex(sha256))
}

/// `rocserv:claim:<sid>`: who holds the live tunnel of `sid`.
pub fn claim_key(sid: SessionId) -> String {
    format!("{}claim:{:016x}", keys::PREFIX, sid.0)
}

/// `rocserv:live:<hex SHA-256 of the user name>`: the user's claimed sessions.
pub fn live_key(user: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, user.as_bytes());
    format!("{}live:{}", keys::PREFIX, keys::hex(digest.as_ref()))
}

/// A claim's value: the owning node and worker.
fn owner(node: &str, worker: WorkerId) -> String {
    format!("{node}/{}", worker.0)
}

/// The node of a claim's value.
fn owner_node(value: &str) -> Option<&str> {
    value.rsplit_once('/').map(|(node, _)| node)
}

/// The store's record of a session of this table.
fn record_of(imported: &Imported, now_unix_ms: u64) -> Record {
    let age = u64::try_from(imported.age.as_millis()).unwrap_or(u64::MAX);
    Record {
        version: RECORD_VERSION,
        sid: imported.sid.0,
        username: imported.username.clone(),
        group: imported.group.clone(),
        vhost: imported.vhost.clone(),
        facts: imported.login.facts.clone(),
        cert_subject: imported.login.cert_subject.clone(),
        policy: imported.login.policy.clone(),
        created_unix_ms: now_unix_ms.saturating_sub(age),
    }
}

/// What the table imports of a checked record.
fn imported_of(r: Record, cookie_sha256: [u8; 32], now_unix_ms: u64) -> Imported {
    Imported {
        cookie_sha256,
        sid: SessionId(r.sid),
        username: r.username,
        group: r.group,
        vhost: r.vhost,
        login: LoginFacts {
            facts: r.facts,
            cert_subject: r.cert_subject,
            policy: r.policy,
        },
        age: Duration::from_millis(now_unix_ms.saturating_sub(r.created_unix_ms)),
    }
}

/// A claim this node holds.
#[derive(Debug, Clone)]
struct Held {
    worker: WorkerId,
    user: String,
    cookie_sha256: [u8; 32],
}

/// The claims this node holds, by session (one sec-mod per process).
static HELD: LazyLock<Mutex<HashMap<SessionId, Held>>> = LazyLock::new(Default::default);
/// Where notices for main go (sec-mod's outbox), set by [`start`].
static OUT: OnceLock<mpsc::UnboundedSender<Vec<FromSecMod>>> = OnceLock::new();

fn held() -> std::sync::MutexGuard<'static, HashMap<SessionId, Held>> {
    rocserv_rt::lock(&HELD)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether the store is known to be down (skip it: the node works alone meanwhile).
fn down(cluster: &Cluster) -> bool {
    *cluster.store.watch().borrow() == Some(false)
}

/// Ask main to end this node's tunnel of `sid` (another node holds its claim).
fn end_here(sid: SessionId) {
    if let Some(out) = OUT.get() {
        let _ = out.send(vec![FromSecMod::Cluster(FromCluster::EndTunnel { sid })]);
    }
}

/// Start the claim renewal; `out` reaches main. Once, when sec-mod's loop starts.
pub fn start(shared: &Arc<Shared>, out: mpsc::UnboundedSender<Vec<FromSecMod>>) {
    let Some(cluster) = &shared.cluster else {
        return;
    };
    if OUT.set(out).is_err() {
        return;
    }
    tokio::spawn(renew(Arc::clone(shared), Arc::clone(cluster)));
}

/// Write the record of session `sid` (just issued here). Bounded; a failure leaves the
/// session local to this node until the next resync.
pub async fn issued(shared: &Shared, cluster: &Cluster, sid: SessionId) {
    if down(cluster) {
        return;
    }
    let export = shared.sessions().export_one(sid, Instant::now());
    if let Some((imported, left)) = export {
        if let Err(e) = write(cluster, &imported, left).await {
            log::warn!("cluster: session {sid} not written to the store: {e}");
        }
    }
}

async fn write(cluster: &Cluster, imported: &Imported, left: Duration) -> Result<(), String> {
    let bytes = record_of(imported, unix_ms())
        .encode()
        .map_err(|e| e.to_string())?;
    let cmd = redis::cmd("SET")
        .arg(session_key(&imported.cookie_sha256))
        .arg(bytes)
        .arg("PX")
        .arg(ms(left).max(1))
        .clone();
    cluster
        .store
        .cmd::<()>("SET session", &cmd)
        .await
        .map_err(|e| e.to_string())
}

/// A CONNECT presents `cookie`: if this node's table does not know it, read its record from
/// the store and import it (with its id and login time). Nothing when the store is down or
/// has no such record: the table then refuses the cookie.
pub async fn import(shared: &Shared, cluster: &Cluster, cookie: &str) {
    if shared.sessions().sid_of(cookie).is_some() || down(cluster) {
        return;
    }
    let hash = crate::sessions::cookie_sha256(cookie);
    let cmd = redis::cmd("GET").arg(session_key(&hash)).clone();
    let bytes = match cluster
        .store
        .cmd::<Option<Vec<u8>>>("GET session", &cmd)
        .await
    {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            log::warn!("cluster: cannot read a session record: {e}");
            return;
        }
    };
    let now = unix_ms();
    let vhosts: Vec<&str> = shared.vhosts.iter().map(|v| v.name.as_str()).collect();
    let record = match Record::decode(&bytes, now, &vhosts) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("cluster: session record {} refused: {e}", keys::hex(&hash));
            return;
        }
    };
    let sid = SessionId(record.sid);
    let imported = imported_of(record, hash, now);
    let user = imported.username.clone();
    match shared.sessions().import(imported, Instant::now()) {
        Ok(()) => log::info!(
            "session {sid} of '{}' taken from the cluster store",
            user.escape_debug()
        ),
        Err(e) => log::warn!("cluster: session {sid} not imported: {e}"),
    }
}

/// How many sessions of `user` other than `sid` hold a live tunnel on other nodes (for
/// `max-same-clients`); 0 when the store cannot say.
pub async fn live_elsewhere(cluster: &Cluster, user: &str, sid: SessionId) -> u32 {
    if down(cluster) {
        return 0;
    }
    let cmd = redis::cmd("ZRANGEBYSCORE")
        .arg(live_key(user))
        .arg(unix_ms())
        .arg("+inf")
        .arg("LIMIT")
        .arg(0)
        .arg(MAX_LIVE_READ)
        .clone();
    let members = match cluster
        .store
        .cmd::<Vec<String>>("ZRANGEBYSCORE", &cmd)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            log::warn!("cluster: cannot count the user's tunnels on other nodes: {e}");
            return 0;
        }
    };
    let here = held();
    let n = members
        .iter()
        .filter_map(|m| u64::from_str_radix(m, 16).ok().map(SessionId))
        .filter(|s| *s != sid && !here.contains_key(s))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Take the claim: set ours, return the previous owner; add the session to the user's live
/// set. KEYS: claim, live. ARGV: owner, ttl ms, now ms, member.
const CLAIM: &str = r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return old
";

/// Renew a claim if still ours (re-take it if the store lost it): 1, or 0 if another owner
/// holds it. KEYS: claim, live, record. ARGV: owner, ttl ms, now ms, member, record ttl ms.
const RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
";

/// Release a claim if still ours; then delete the record (ARGV[3] = 'del') or set its TTL
/// (ARGV[3] = ms). A claim held by another node leaves everything alone (a takeover's old
/// tunnel ending): 0. Without any claim (the tunnel never started, the store lost it) the
/// record is still updated. KEYS: claim, live, record. ARGV: owner, member, what.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
if cur then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == 'del' then redis.call('DEL', KEYS[3]) else redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1
";

/// The tunnel of `sid` served by `worker` started: take the session's claim, telling the
/// node that held it, if another, to end its tunnel. On a task of its own.
pub async fn started(shared: Arc<Shared>, cluster: Arc<Cluster>, sid: SessionId, worker: WorkerId) {
    let Some((user, hash)) = ({
        let sessions = shared.sessions();
        sessions
            .describe(sid)
            .zip(sessions.cookie_sha256_of(sid))
            .map(|(d, h)| (d.username, h))
    }) else {
        return;
    };
    held().insert(
        sid,
        Held {
            worker,
            user: user.clone(),
            cookie_sha256: hash,
        },
    );
    if down(&cluster) {
        return;
    }
    let script = redis::Script::new(CLAIM);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(live_key(&user))
        .arg(owner(&cluster.node, worker))
        .arg(ms(CLAIM_TTL))
        .arg(unix_ms())
        .arg(format!("{:016x}", sid.0));
    let old = match cluster
        .store
        .script::<Option<String>>("claim", invocation)
        .await
    {
        Ok(old) => old,
        Err(e) => {
            log::warn!("cluster: session {sid}: claim not taken: {e}");
            return;
        }
    };
    let Some(node) = old.as_deref().and_then(owner_node) else {
        return;
    };
    if node == cluster.node {
        return;
    }
    log::info!("session {sid}: taken over from node {node}");
    let body = BusBody::Takeover {
        node: node.to_owned(),
        sid: sid.0,
    };
    if let Err(e) = cluster.publish(body).await {
        log::warn!("cluster: cannot tell node {node} to end session {sid}: {e}");
    }
}

/// A tunnel of `sid` ended (`worker`, if main said which): release the claim if this tunnel
/// held it, and delete the record (`deleted`: the session is gone here) or keep it for
/// reconnects; a session another node took over is left alone. Called before the table's
/// close, with the cookie's hash it had.
pub async fn closed(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    sid: SessionId,
    worker: Option<WorkerId>,
    deleted: bool,
    cookie_sha256: Option<[u8; 32]>,
    user: Option<String>,
) {
    let ours = {
        let mut held = held();
        match (held.get(&sid), worker) {
            (Some(h), Some(w)) if h.worker == w => held.remove(&sid),
            (Some(_), _) => return, // a newer tunnel of this node holds it
            (None, _) => None,
        }
    };
    let (Some(hash), Some(user)) = (
        ours.as_ref().map(|h| h.cookie_sha256).or(cookie_sha256),
        ours.as_ref().map(|h| h.user.clone()).or(user),
    ) else {
        return;
    };
    if down(&cluster) {
        return;
    }
    let lifetime = ms(shared.sessions().idle_lifetime());
    let what = if deleted {
        "del".to_owned()
    } else {
        lifetime.to_string()
    };
    let w = worker.unwrap_or(WorkerId(u64::MAX));
    let script = redis::Script::new(RELEASE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(live_key(&user))
        .key(session_key(&hash))
        .arg(owner(&cluster.node, w))
        .arg(format!("{:016x}", sid.0))
        .arg(what);
    match cluster.store.script::<u8>("release", invocation).await {
        Ok(1) if deleted => {
            let body = BusBody::SessionDeleted {
                cookie_sha256: hash,
            };
            if let Err(e) = cluster.publish(body).await {
                log::warn!("cluster: cannot tell the other nodes session {sid} ended: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cluster: session {sid}: claim not released: {e}"),
    }
}

/// Delete a record unless a tunnel (anywhere) holds the session's claim: 1 if deleted.
/// KEYS: claim, record.
const DELETE_IDLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('DEL', KEYS[2])
";

/// This node evicted session `sid` (the user's per-node cap of sessions): its cookie dies in
/// the store and on the other nodes too, unless a tunnel elsewhere uses it.
pub async fn evicted(cluster: Arc<Cluster>, sid: SessionId, cookie_sha256: [u8; 32]) {
    if down(&cluster) {
        return;
    }
    let script = redis::Script::new(DELETE_IDLE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(session_key(&cookie_sha256));
    match cluster.store.script::<u8>("evict", invocation).await {
        Ok(1) => {
            if let Err(e) = cluster
                .publish(BusBody::SessionDeleted { cookie_sha256 })
                .await
            {
                log::warn!("cluster: cannot tell the other nodes session {sid} was evicted: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cluster: evicted session {sid} not deleted from the store: {e}"),
    }
}

/// Renew this node's claims every [`CLAIM_RENEW`]; end the tunnels whose claim another node
/// took.
async fn renew(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut every = tokio::time::interval(CLAIM_RENEW);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if down(&cluster) {
            continue;
        }
        let claims: Vec<(SessionId, Held)> = held().iter().map(|(s, h)| (*s, h.clone())).collect();
        let lifetime = ms(shared.sessions().idle_lifetime()).saturating_add(ms(CLAIM_TTL));
        let script = redis::Script::new(RENEW);
        for (sid, h) in claims {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(claim_key(sid))
                .key(live_key(&h.user))
                .key(session_key(&h.cookie_sha256))
                .arg(owner(&cluster.node, h.worker))
                .arg(ms(CLAIM_TTL))
                .arg(unix_ms())
                .arg(format!("{:016x}", sid.0))
                .arg(lifetime);
            match cluster.store.script::<u8>("renew", invocation).await {
                Ok(1) => {}
                Ok(_) => {
                    let lost = {
                        let mut held = held();
                        let same = held.get(&sid).is_some_and(|x| x.worker == h.worker);
                        same.then(|| held.remove(&sid)).is_some()
                    };
                    if lost {
                        log::info!("session {sid}: another node holds its claim; ending here");
                        end_here(sid);
                    }
                }
                Err(e) => {
                    log::debug!("cluster: claim renewal stopped: {e}");
                    break;
                }
            }
        }
    }
}

/// Another node took the claim of `sid` (bus `Takeover` addressed to this node).
pub fn taken_over(sid: SessionId) {
    if held().remove(&sid).is_some() {
        log::info!("session {sid}: taken over by another node; ending its tunnel here");
        end_here(sid);
    }
}

/// Another node deleted a session: drop this node's idle copy so the cookie is dead here too.
pub fn deleted_elsewhere(shared: &Shared, cookie_sha256: [u8; 32]) {
    if let Some(sid) = shared.sessions().forget(cookie_sha256) {
        shared.origins().forget(sid);
        log::info!("session {sid} deleted on another node");
    }
}

/// The store is back: write every live session of this node again (the store may have lost
/// them); the claims are re-taken by the next renewal.
pub async fn resync(shared: &Shared, cluster: &Cluster) {
    let sessions = shared.sessions().export(Instant::now());
    let n = sessions.len();
    for (imported, left) in sessions {
        let exists = redis::cmd("EXISTS")
            .arg(session_key(&imported.cookie_sha256))
            .clone();
        match cluster.store.cmd::<u8>("EXISTS", &exists).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => {
                log::warn!("cluster: session resync stopped: {e}");
                return;
            }
        }
        if let Err(e) = write(cluster, &imported, left).await {
            log::warn!("cluster: session resync stopped: {e}");
            return;
        }
    }
    log::debug!("cluster: {n} sessions checked in the store");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_the_session_and_its_login_time() {
        let imported = Imported {
            cookie_sha256: [7; 32],
            sid: SessionId(0x1234),
            username: "alice".into(),
            group: "staff".into(),
            vhost: None,
            login: LoginFacts {
                cert_subject: Some("CN=alice".into()),
                ..Default::default()
            },
            age: Duration::from_secs(40),
        };
        let record = record_of(&imported, 1_000_000);
        assert_eq!(record.created_unix_ms, 960_000);
        let bytes = record.encode().unwrap();
        let back = Record::decode(&bytes, 1_005_000, &[]).unwrap();
        assert_eq!(
            imported_of(back, [7; 32], 1_005_000),
            Imported {
                age: Duration::from_secs(45),
                ..imported
            }
        );
    }

    #[test]
    fn key_names_hold_no_cookie() {
        let cookie = "c29tZS1jb29raWU";
        let hash = crate::sessions::cookie_sha256(cookie);
        let key = session_key(&hash);
        assert!(key.starts_with("rocserv:session:"));
        assert_eq!(key.len(), "rocserv:session:".len() + 64);
        assert!(!key.contains(cookie));
        assert_eq!(claim_key(SessionId(0xab)), "rocserv:claim:00000000000000ab");
        assert!(live_key("alice").starts_with("rocserv:live:"));
        assert!(!live_key("alice").contains("alice"));
        assert_eq!(owner_node(&owner("node-a", WorkerId(3))), Some("node-a"));
    }
}
