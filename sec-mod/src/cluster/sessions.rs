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
//!   set of the user's claimed (or, during a CONNECT, reserved) sessions scored by the claim's
//!   expiry; a CONNECT counts and reserves in one script ([`reserve`]).
//!
//! sec-mod's own table ([`crate::sessions`]) stays the authority on this node and the
//! fallback while the store is down; every call here is bounded by the store's timeout and
//! skipped while the store is known to be down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocserv_proto::cluster::bus::BusBody;
use rocserv_proto::cluster::session::{Record, RECORD_VERSION};
use rocserv_proto::ipc::cluster::FromCluster;
use rocserv_proto::ipc::{SessionId, WorkerId};

use super::store::Budget;
use super::{keys, unix_ms, Cluster, StoreError};
use crate::sessions::{Imported, LoginFacts};
use crate::worker_link::Shared;

/// How often the owner renews its claims.
pub const CLAIM_RENEW: Duration = Duration::from_secs(5);
/// A claim not renewed for this long expires (its node died).
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// Most sessions of one user read for `max-same-clients`.
const MAX_LIVE_READ: usize = 1000;
/// How long a CONNECT's reservation in the user's live set holds without its tunnel: the
/// tunnel's claim replaces it when the tunnel starts, the session's close removes it. Between
/// the two main may run the connect-script, for up to its bound
/// ([`rocserv_proto::SCRIPT_TIMEOUT`]): the reservation outlasts that by a claim's TTL, so
/// another node's CONNECT cannot pass meanwhile. A CONNECT that died in between holds the
/// user's place on other nodes for at most this long.
const RESERVE_TTL: Duration =
    Duration::from_secs(rocserv_proto::SCRIPT_TIMEOUT.as_secs() + CLAIM_TTL.as_secs());
/// Sessions written back per store round trip on resync.
const RESYNC_CHUNK: usize = 256;

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

/// `rocserv:gone:<hex>`: the tombstone of a deleted session, so that no node (one cut off
/// from the store while it was deleted, one that missed the bus) brings its cookie back.
pub fn gone_key(sha256: &[u8; 32]) -> String {
    format!("{}gone:{}", keys::PREFIX, keys::hex(sha256))
}

/// A claim's value: the owning node and worker.
fn owner(node: &str, worker: WorkerId) -> String {
    format!("{node}/{}", worker.0)
}

/// The node and worker of a claim's value.
fn parse_owner(value: &str) -> Option<(&str, WorkerId)> {
    let (node, worker) = value.rsplit_once('/')?;
    Some((node, WorkerId(worker.parse().ok()?)))
}

#[cfg(test)]
fn owner_node(value: &str) -> Option<&str> {
    parse_owner(value).map(|(node, _)| node)
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

/// A claim this node holds (or is taking).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    worker: WorkerId,
    user: String,
    cookie_sha256: [u8; 32],
    /// The CLAIM is on its way to the store: not renewed yet, and a close meanwhile is
    /// deferred until it is done.
    taking: bool,
}

/// What releasing a tunnel's claim needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    sid: SessionId,
    /// main's worker of the tunnel; `None` when the session closed without one.
    worker: Option<WorkerId>,
    user: String,
    cookie_sha256: [u8; 32],
    /// The session is gone here: delete its record (and leave a tombstone).
    deleted: bool,
}

/// What a close means for the store (see [`Claims::close`]).
#[derive(Debug, PartialEq, Eq)]
pub enum OnClose {
    /// Release now.
    Release(Release),
    /// The claim is being taken: the task taking it releases it when done.
    Deferred,
    /// A newer tunnel of this node holds the claim, or nothing is known: leave it.
    Nothing,
}

/// The claims this node holds, by session (sans-IO). Changed only in sec-mod's `handle()`,
/// which sees main's `SessionStarted` and `SessionClose` in order, and by the tasks that
/// finish a CLAIM; the store calls run on tasks in any order, so a close that overtakes its
/// tunnel's CLAIM is parked here and released by that task after the CLAIM.
#[derive(Debug, Default)]
pub struct Claims {
    held: HashMap<SessionId, Held>,
    /// Releases waiting for the CLAIM of the same (session, worker) to finish.
    after_take: HashMap<(SessionId, WorkerId), Release>,
}

impl Claims {
    /// A tunnel of `sid` served by `worker` started: its claim is being taken.
    pub fn start(&mut self, sid: SessionId, worker: WorkerId, user: String, hash: [u8; 32]) {
        self.held.insert(
            sid,
            Held {
                worker,
                user,
                cookie_sha256: hash,
                taking: true,
            },
        );
    }

    /// The CLAIM of (`sid`, `worker`) is done (or failed): the release to run now, if the
    /// tunnel closed meanwhile.
    pub fn taken(&mut self, sid: SessionId, worker: WorkerId) -> Option<Release> {
        if let Some(h) = self.held.get_mut(&sid) {
            if h.worker == worker {
                h.taking = false;
            }
        }
        self.after_take.remove(&(sid, worker))
    }

    /// A tunnel of `sid` ended (`worker`, if main said which), or the session closed
    /// (`deleted`: it is gone here). `known` is the session's user and cookie hash as the
    /// table had them, for a release of a claim this node does not hold.
    pub fn close(
        &mut self,
        sid: SessionId,
        worker: Option<WorkerId>,
        deleted: bool,
        known: Option<(String, [u8; 32])>,
    ) -> OnClose {
        let held = match (self.held.get(&sid), worker) {
            (Some(h), Some(w)) if h.worker == w => self.held.remove(&sid),
            // The session is gone here: no tunnel of it may stay claimed.
            (Some(_), None) if deleted => self.held.remove(&sid),
            (Some(_), _) => return OnClose::Nothing, // a newer tunnel of this node holds it
            (None, _) => None,
        };
        let (user, cookie_sha256) = match (&held, known) {
            (Some(h), _) => (h.user.clone(), h.cookie_sha256),
            (None, Some(k)) => k,
            (None, None) => return OnClose::Nothing,
        };
        let release = Release {
            sid,
            worker: worker.or(held.as_ref().map(|h| h.worker)),
            user,
            cookie_sha256,
            deleted,
        };
        match held {
            Some(h) if h.taking => {
                self.after_take.insert((sid, h.worker), release);
                OnClose::Deferred
            }
            _ => OnClose::Release(release),
        }
    }

    /// Another node took the claim `sid` from `worker` here: whether this node's tunnel was
    /// that one (end it). A late message about an older tunnel leaves a newer one alone.
    pub fn taken_over(&mut self, sid: SessionId, worker: WorkerId) -> bool {
        if self.held.get(&sid).is_some_and(|h| h.worker == worker) {
            self.held.remove(&sid);
            return true;
        }
        false
    }

    /// The claims to renew (those whose CLAIM is done).
    fn to_renew(&self) -> Vec<(SessionId, Held)> {
        self.held
            .iter()
            .filter(|(_, h)| !h.taking)
            .map(|(s, h)| (*s, h.clone()))
            .collect()
    }

    /// A renewal found `sid` held elsewhere: drop it if `worker` still holds it here.
    fn lost(&mut self, sid: SessionId, worker: WorkerId) -> bool {
        self.taken_over(sid, worker)
    }

    #[cfg(test)]
    fn contains(&self, sid: SessionId) -> bool {
        self.held.contains_key(&sid)
    }

    /// Drop claims of sessions the table no longer has (never renew a dead session).
    fn retain(&mut self, alive: impl Fn(SessionId) -> bool) {
        self.held.retain(|sid, _| alive(*sid));
    }
}

fn claims(cluster: &Cluster) -> std::sync::MutexGuard<'_, Claims> {
    rocserv_rt::lock(&cluster.claims)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether the store is known to be down (skip it: the node works alone meanwhile).
fn down(cluster: &Cluster) -> bool {
    *cluster.store.watch().borrow() == Some(false)
}

/// Ask main to end this node's tunnel of `sid` (another node holds its claim).
fn end_here(cluster: &Cluster, sid: SessionId) {
    cluster.to_main.push(FromCluster::EndTunnel { sid });
}

/// Start the claim renewal. Once per [`Cluster`], when sec-mod's loop starts.
pub fn start(shared: &Arc<Shared>) {
    let Some(cluster) = &shared.cluster else {
        return;
    };
    tokio::spawn(renew(Arc::clone(shared), Arc::clone(cluster)));
}

/// Write the record of session `sid` (just issued here), within the login's `budget`; a
/// failure leaves the session local to this node until the next resync.
pub async fn issued(shared: &Shared, cluster: &Cluster, sid: SessionId, budget: &Budget) {
    if down(cluster) {
        return;
    }
    let export = shared.sessions().export_one(sid, Instant::now());
    if let Some((imported, left)) = export {
        match write(cluster, &imported, left, budget).await {
            Ok(()) | Err(StoreError::Spent(_)) => {} // logged once by the budget
            Err(e) => log::warn!("cluster: session {sid} not written to the store: {e}"),
        }
    }
}

async fn write(
    cluster: &Cluster,
    imported: &Imported,
    left: Duration,
    budget: &Budget,
) -> Result<(), StoreError> {
    let bytes = record_of(imported, unix_ms())
        .encode()
        .map_err(|e| StoreError::Refused {
            what: "SET session",
            why: e.to_string(),
        })?;
    let cmd = redis::cmd("SET")
        .arg(session_key(&imported.cookie_sha256))
        .arg(bytes)
        .arg("PX")
        .arg(ms(left).max(1))
        .clone();
    cluster
        .store
        .cmd_within::<()>("SET session", &cmd, budget)
        .await
}

/// Read a session's record unless its tombstone exists: the record (bulk), 1 (deleted), or
/// nil (neither). KEYS: record, gone.
const LOOKUP: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
return redis.call('GET', KEYS[1])
";

/// A CONNECT presents `cookie`: if this node's table does not know it, read its record from
/// the store and import it (with its id and login time); if the session was deleted on another
/// node (its tombstone), drop this node's idle copy. One round trip; nothing when the store is
/// down or the CONNECT's `budget` is spent: the table then decides alone.
pub async fn import(shared: &Shared, cluster: &Cluster, cookie: &str, budget: &Budget) {
    if down(cluster) {
        return;
    }
    let known = shared.sessions().sid_of(cookie).is_some();
    let hash = crate::sessions::cookie_sha256(cookie);
    let script = redis::Script::new(LOOKUP);
    let mut invocation = script.prepare_invoke();
    invocation.key(session_key(&hash)).key(gone_key(&hash));
    let bytes = match cluster
        .store
        .script_within::<redis::Value>("lookup session", invocation, budget)
        .await
    {
        Ok(redis::Value::BulkString(bytes)) => bytes,
        Ok(redis::Value::Int(1)) => {
            deleted_elsewhere(shared, hash);
            return;
        }
        Ok(_) | Err(StoreError::Spent(_)) => return,
        Err(e) => {
            log::warn!("cluster: cannot read a session record: {e}");
            return;
        }
    };
    if known {
        return;
    }
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

/// `max-same-clients` across the nodes, counted and reserved in one step: count the user's
/// sessions in the live set (unexpired) other than this one (ARGV[3]) and this node's own
/// (ARGV[5..]: main counts those itself); if there are at most ARGV[4] (the room main's own
/// count leaves), add this session (score: now + ttl, never earlier than it was) so that a
/// CONNECT of the user on another node counts it from now on. Answers {count, 1 if added}.
/// KEYS: live. ARGV: now ms, ttl ms, member, room, this node's members...
pub const RESERVE: &str = r"
local now, ttl, me, room = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local mine = {}
for i = 5, #ARGV do mine[ARGV[i]] = true end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'LIMIT', 0, 1000)) do
  if m ~= me and not mine[m] then n = n + 1 end
end
if n > room then return {n, 0} end
local cur = redis.call('ZSCORE', KEYS[1], me)
if not cur or tonumber(cur) < now + ttl then redis.call('ZADD', KEYS[1], now + ttl, me) end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {n, 1}
";

/// The live set's member of session `sid`.
fn member(sid: SessionId) -> String {
    format!("{:016x}", sid.0)
}

/// [`rocserv_proto::ipc::cluster::ClusterQuery::ReserveTunnel`]: whether a tunnel of session
/// `sid` of `user` fits under `max-same-clients` with the user's sessions on other nodes
/// (`room`: how many main's own count leaves; `here`: this node's sessions of the user, which
/// main counted), reserved in the store if it does ([`RESERVE`]).
pub async fn reserve(
    cluster: &Cluster,
    user: &str,
    sid: SessionId,
    room: u32,
    here: &[SessionId],
) -> Result<(u32, bool), StoreError> {
    let script = redis::Script::new(RESERVE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(live_key(user))
        .arg(unix_ms())
        .arg(ms(RESERVE_TTL))
        .arg(member(sid))
        .arg(room);
    // The node's claims table knows its tunnels whose CONNECT main may have forgotten
    // already (closing); main's list its CONNECTs whose tunnel is not up yet.
    let held: Vec<SessionId> = claims(cluster)
        .held
        .iter()
        .filter(|(_, h)| h.user == user)
        .map(|(s, _)| *s)
        .collect();
    for s in here.iter().chain(&held).take(MAX_LIVE_READ) {
        invocation.arg(member(*s));
    }
    let (n, added) = cluster
        .store
        .script::<(u32, u8)>("reserve", invocation)
        .await?;
    Ok((n, added == 1))
}

/// Take the claim: set ours, return the previous owner; add the session to the user's live
/// set, whose expiry is only ever extended (a reservation in it may outlive a claim's TTL:
/// [`RESERVE_TTL`]). KEYS: claim, live. ARGV: owner, ttl ms, now ms, member.
const CLAIM: &str = r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return old
";

/// Renew a claim if this node still holds it (re-take it if the store lost it, or if another
/// tunnel of this node wrote it: this node's claims table decides among its own tunnels): 1,
/// or 0 if another node holds it. KEYS: claim, live, record. ARGV: owner, ttl ms, now ms,
/// member, record ttl ms, 'node/'.
const RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and string.sub(cur, 1, #ARGV[6]) ~= ARGV[6] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
";

/// Release a claim if still ours; then delete the record and leave its tombstone (ARGV[3] =
/// 'del') or set its TTL (ARGV[3] = ms). A claim held by another node leaves everything alone
/// (a takeover's old tunnel ending): 0. Without any claim (the tunnel never started, the store
/// lost it) the record is still updated. KEYS: claim, live, record, gone. ARGV: owner, member,
/// what, tombstone ttl ms.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
if cur then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
else
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return 1
";

/// How long a tombstone stays: longer than any node's idle copy of the session can live.
fn tombstone_ms(shared: &Shared) -> u64 {
    ms(shared.sessions().idle_lifetime()).saturating_add(ms(CLAIM_TTL))
}

/// The tunnel of `sid` served by `worker` started: note the claim in this node's table, now
/// and in order with main's other messages (sec-mod's `handle()`), then take it in the store
/// on a task of its own.
pub fn started(shared: &Arc<Shared>, cluster: &Arc<Cluster>, sid: SessionId, worker: WorkerId) {
    let Some((user, hash)) = ({
        let sessions = shared.sessions();
        sessions
            .describe(sid)
            .zip(sessions.cookie_sha256_of(sid))
            .map(|(d, h)| (d.username, h))
    }) else {
        return;
    };
    claims(cluster).start(sid, worker, user.clone(), hash);
    let (shared, cluster) = (Arc::clone(shared), Arc::clone(cluster));
    tokio::spawn(async move {
        take(&cluster, sid, worker, &user).await;
        let release = claims(&cluster).taken(sid, worker);
        if let Some(release) = release {
            // The tunnel ended while its claim was being taken.
            release_now(&shared, &cluster, release).await;
        }
    });
}

/// Take the claim of `sid` for `worker`, telling the node that held it, if another, to end
/// its tunnel.
async fn take(cluster: &Cluster, sid: SessionId, worker: WorkerId, user: &str) {
    if down(cluster) {
        return;
    }
    let script = redis::Script::new(CLAIM);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(live_key(user))
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
    let Some((node, old_worker)) = old.as_deref().and_then(parse_owner) else {
        return;
    };
    if node == cluster.node {
        return;
    }
    log::info!("session {sid}: taken over from node {node}");
    let body = BusBody::Takeover {
        node: node.to_owned(),
        sid: sid.0,
        worker: old_worker.0,
    };
    if let Err(e) = cluster.publish(body).await {
        log::warn!("cluster: cannot tell node {node} to end session {sid}: {e}");
    }
}

/// A tunnel of `sid` ended (`worker`, if main said which), or the session closed: update
/// this node's claims table now (in order with `started`), then release the claim if this
/// tunnel held it and delete the record (`deleted`: the session is gone here; a tombstone
/// stays) or keep it for reconnects, on a task. A session another node took over is left
/// alone. Called before the table's close, with the user and cookie hash it had.
pub fn closed(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    sid: SessionId,
    worker: Option<WorkerId>,
    deleted: bool,
    known: Option<(String, [u8; 32])>,
) {
    let release = match claims(cluster).close(sid, worker, deleted, known) {
        OnClose::Release(r) => r,
        OnClose::Deferred | OnClose::Nothing => return,
    };
    let (shared, cluster) = (Arc::clone(shared), Arc::clone(cluster));
    tokio::spawn(async move { release_now(&shared, &cluster, release).await });
}

async fn release_now(shared: &Shared, cluster: &Cluster, r: Release) {
    if down(cluster) {
        return;
    }
    let sid = r.sid;
    let what = if r.deleted {
        "del".to_owned()
    } else {
        ms(shared.sessions().idle_lifetime()).to_string()
    };
    let w = r.worker.unwrap_or(WorkerId(u64::MAX));
    let script = redis::Script::new(RELEASE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(live_key(&r.user))
        .key(session_key(&r.cookie_sha256))
        .key(gone_key(&r.cookie_sha256))
        .arg(owner(&cluster.node, w))
        .arg(format!("{:016x}", sid.0))
        .arg(what)
        .arg(tombstone_ms(shared));
    match cluster.store.script::<u8>("release", invocation).await {
        Ok(1) if r.deleted => {
            let body = BusBody::SessionDeleted {
                cookie_sha256: r.cookie_sha256,
            };
            if let Err(e) = cluster.publish(body).await {
                log::warn!("cluster: cannot tell the other nodes session {sid} ended: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cluster: session {sid}: claim not released: {e}"),
    }
}

/// Delete a record, leaving its tombstone, unless a tunnel (anywhere) holds the session's
/// claim: 1 if deleted. KEYS: claim, record, gone. ARGV: tombstone ttl ms.
const DELETE_IDLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
return redis.call('DEL', KEYS[2])
";

/// This node evicted session `sid` (the user's per-node cap of sessions): its cookie dies in
/// the store and on the other nodes too, unless a tunnel elsewhere uses it.
pub async fn evicted(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    sid: SessionId,
    cookie_sha256: [u8; 32],
) {
    if down(&cluster) {
        return;
    }
    let script = redis::Script::new(DELETE_IDLE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(claim_key(sid))
        .key(session_key(&cookie_sha256))
        .key(gone_key(&cookie_sha256))
        .arg(tombstone_ms(&shared));
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
    let mine = format!("{}/", cluster.node);
    loop {
        every.tick().await;
        if down(&cluster) {
            continue;
        }
        let claims_now = {
            let mut c = claims(&cluster);
            // A claim of a session the table no longer has must not be renewed for ever.
            c.retain(|sid| shared.sessions().describe(sid).is_some());
            c.to_renew()
        };
        let lifetime = ms(shared.sessions().idle_lifetime()).saturating_add(ms(CLAIM_TTL));
        let script = redis::Script::new(RENEW);
        for (sid, h) in claims_now {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(claim_key(sid))
                .key(live_key(&h.user))
                .key(session_key(&h.cookie_sha256))
                .arg(owner(&cluster.node, h.worker))
                .arg(ms(CLAIM_TTL))
                .arg(unix_ms())
                .arg(format!("{:016x}", sid.0))
                .arg(lifetime)
                .arg(&mine);
            match cluster.store.script::<u8>("renew", invocation).await {
                Ok(1) => {}
                Ok(_) => {
                    let lost = claims(&cluster).lost(sid, h.worker);
                    if lost {
                        log::info!("session {sid}: another node holds its claim; ending here");
                        end_here(&cluster, sid);
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

/// Another node took the claim of `sid` from this node's `worker` (bus `Takeover` addressed
/// to this node). A late message about an older tunnel leaves the session's newer tunnel here
/// alone.
pub fn taken_over(cluster: &Cluster, sid: SessionId, worker: WorkerId) {
    if claims(cluster).taken_over(sid, worker) {
        log::info!("session {sid}: taken over by another node; ending its tunnel here");
        end_here(cluster, sid);
    }
}

/// Another node deleted a session: drop this node's idle copy so the cookie is dead here too.
pub fn deleted_elsewhere(shared: &Shared, cookie_sha256: [u8; 32]) {
    if let Some(sid) = shared.sessions().forget(cookie_sha256) {
        shared.origins().forget(sid);
        log::info!("session {sid} deleted on another node");
    }
}

/// Write records back where neither the record nor its tombstone exists (SET NX PX); the
/// 1-based pairs whose tombstone exists. KEYS: record, gone, record, gone, ...; ARGV: value,
/// ttl ms, value, ttl ms, ...
const RESYNC: &str = r"
local gone = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    gone[#gone + 1] = (i + 1) / 2
  else
    redis.call('SET', KEYS[i], ARGV[i], 'NX', 'PX', ARGV[i + 1])
  end
end
return gone
";

/// The store is back: write every live session of this node again where the store lost it
/// ([`RESYNC_CHUNK`] per round trip), never over a session deleted meanwhile elsewhere (its
/// tombstone: the copy here is dropped instead); the claims are re-taken by the next renewal.
pub async fn resync(shared: &Shared, cluster: &Cluster) {
    let sessions = shared.sessions().export(Instant::now());
    let n = sessions.len();
    let now = unix_ms();
    let script = redis::Script::new(RESYNC);
    let mut dropped = 0;
    let encoded: Vec<([u8; 32], Vec<u8>, Duration)> = sessions
        .iter()
        .filter_map(|(imported, left)| match record_of(imported, now).encode() {
            Ok(bytes) => Some((imported.cookie_sha256, bytes, *left)),
            Err(e) => {
                log::warn!("cluster: session {} not written back: {e}", imported.sid);
                None
            }
        })
        .collect();
    for chunk in encoded.chunks(RESYNC_CHUNK) {
        let mut invocation = script.prepare_invoke();
        for (hash, bytes, left) in chunk {
            invocation
                .key(session_key(hash))
                .key(gone_key(hash))
                .arg(bytes.as_slice())
                .arg(ms(*left).max(1));
        }
        let gone = match cluster
            .store
            .script::<Vec<usize>>("resync sessions", invocation)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                log::warn!("cluster: session resync stopped: {e}");
                return;
            }
        };
        for i in gone {
            if let Some((hash, _, _)) = i.checked_sub(1).and_then(|i| chunk.get(i)) {
                deleted_elsewhere(shared, *hash);
                dropped += 1;
            }
        }
    }
    log::debug!("cluster: {n} sessions checked in the store, {dropped} deleted elsewhere");
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

    const S: SessionId = SessionId(7);
    const W1: WorkerId = WorkerId(1);
    const W2: WorkerId = WorkerId(2);

    fn known() -> Option<(String, [u8; 32])> {
        Some(("alice".into(), [5; 32]))
    }

    #[test]
    fn a_close_before_the_claim_is_taken_releases_it_after_the_take() {
        let mut c = Claims::default();
        c.start(S, W1, "alice".into(), [5; 32]);
        // The close overtakes the CLAIM task: nothing is released yet, nothing renewed.
        assert_eq!(c.close(S, Some(W1), false, known()), OnClose::Deferred);
        assert!(c.to_renew().is_empty());
        assert!(!c.contains(S), "no claim of a closed tunnel is held");
        // The CLAIM is done: its task releases it at once.
        let r = c.taken(S, W1).expect("the release waits for the take");
        assert_eq!((r.sid, r.worker, r.deleted), (S, Some(W1), false));
        assert!(c.to_renew().is_empty(), "no claim left renewed");
        assert_eq!(c.taken(S, W1), None);
    }

    #[test]
    fn a_claim_taken_then_closed_is_released_and_not_renewed() {
        let mut c = Claims::default();
        c.start(S, W1, "alice".into(), [5; 32]);
        assert!(c.to_renew().is_empty(), "not renewed while being taken");
        assert_eq!(c.taken(S, W1), None);
        assert_eq!(c.to_renew().len(), 1);
        match c.close(S, Some(W1), true, None) {
            OnClose::Release(r) => assert!(r.deleted && r.user == "alice"),
            other => panic!("{other:?}"),
        }
        assert!(c.to_renew().is_empty());
    }

    #[test]
    fn a_late_close_or_takeover_leaves_a_newer_tunnel_alone() {
        let mut c = Claims::default();
        c.start(S, W1, "alice".into(), [5; 32]);
        assert_eq!(c.taken(S, W1), None);
        c.start(S, W2, "alice".into(), [5; 32]);
        assert_eq!(c.close(S, Some(W1), false, known()), OnClose::Nothing);
        assert!(!c.taken_over(S, W1), "a Takeover of the old tunnel");
        assert!(c.contains(S));
        assert_eq!(c.taken(S, W2), None);
        assert!(c.taken_over(S, W2), "a Takeover of this tunnel ends it");
        assert!(!c.contains(S));
    }

    #[test]
    fn a_deleted_session_keeps_no_claim() {
        let mut c = Claims::default();
        c.start(S, W1, "alice".into(), [5; 32]);
        let _ = c.taken(S, W1);
        // Closed without a tunnel (end: None) yet gone here: the claim goes too.
        assert!(matches!(
            c.close(S, None, true, known()),
            OnClose::Release(_)
        ));
        assert!(!c.contains(S));
        // Not deleted and no worker: the tunnel's own close decides.
        c.start(S, W1, "alice".into(), [5; 32]);
        assert_eq!(c.close(S, None, false, known()), OnClose::Nothing);
        assert!(c.contains(S));
        c.retain(|_| false);
        assert!(!c.contains(S), "a session the table lost is not renewed");
    }

    #[test]
    fn takeover_names_the_worker() {
        assert_eq!(parse_owner("node-a/12"), Some(("node-a", WorkerId(12))));
        assert_eq!(parse_owner("garbage"), None);
        assert_eq!(parse_owner("a/x"), None);
        assert!(gone_key(&[1; 32]).starts_with("rocserv:gone:"));
    }

    /// A redis-server of this test's own on a free loopback port (killed on drop), or `None`
    /// when none is installed: the script's decisions need the real store.
    struct TestStore(std::process::Child, u16);

    impl Drop for TestStore {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn test_store() -> Option<TestStore> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(c) => Some(TestStore(c, port)),
            Err(e) => {
                eprintln!("no redis-server ({e}): the RESERVE script is not tested here");
                None
            }
        }
    }

    async fn connect(port: u16) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        for _ in 0..100 {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} does not answer");
    }

    /// One RESERVE of `me` with `room` and this node's `mine`: (count, reserved).
    async fn reserve_in(
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
        now: u64,
        me: u64,
        room: u32,
        mine: &[u64],
    ) -> (u32, bool) {
        let script = redis::Script::new(RESERVE);
        let mut inv = script.prepare_invoke();
        inv.key(key)
            .arg(now)
            .arg(ms(RESERVE_TTL))
            .arg(member(SessionId(me)))
            .arg(room);
        for m in mine {
            inv.arg(member(SessionId(*m)));
        }
        let (n, added): (u32, u8) = inv.invoke_async(conn).await.unwrap();
        (n, added == 1)
    }

    #[tokio::test]
    async fn reserve_counts_other_nodes_sessions_and_reserves_within_the_room() {
        let Some(store) = test_store() else { return };
        let mut conn = connect(store.1).await;
        let key = live_key("alice");
        let now = unix_ms();
        // max-same-clients 1, nothing anywhere: reserved.
        assert_eq!(reserve_in(&mut conn, &key, now, 1, 0, &[]).await, (0, true));
        // Another session of the user on another node now: one too many.
        assert_eq!(
            reserve_in(&mut conn, &key, now, 2, 0, &[]).await,
            (1, false)
        );
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            members,
            vec![member(SessionId(1))],
            "a refusal reserves nothing"
        );
        // The same session again (a reconnect): itself does not count.
        assert_eq!(reserve_in(&mut conn, &key, now, 1, 0, &[]).await, (0, true));
        // Session 1 is this node's (main counted it): not counted again.
        assert_eq!(
            reserve_in(&mut conn, &key, now, 2, 0, &[1]).await,
            (0, true)
        );
        // max-same-clients 3, one here: room 1 for two elsewhere (1 and 2): no.
        assert_eq!(
            reserve_in(&mut conn, &key, now, 3, 1, &[9]).await,
            (2, false)
        );
        // Expired reservations (a CONNECT that died, a dead node) do not count.
        let later = now + ms(RESERVE_TTL) + 1;
        assert_eq!(
            reserve_in(&mut conn, &key, later, 3, 0, &[]).await,
            (0, true)
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "the set expires by itself: {ttl}");
    }

    /// The reason for the script: two CONNECTs of one user on two nodes at the same moment
    /// cannot both pass `max-same-clients = 1` (a read then a write could).
    #[tokio::test]
    async fn two_reservations_at_once_never_both_pass() {
        let Some(store) = test_store() else { return };
        let a = connect(store.1).await;
        let b = connect(store.1).await;
        for round in 0..50u64 {
            let key = live_key(&format!("user{round}"));
            let now = unix_ms();
            let (mut a, mut b) = (a.clone(), b.clone());
            let (ka, kb) = (key.clone(), key.clone());
            let ta = tokio::spawn(async move { reserve_in(&mut a, &ka, now, 1, 0, &[]).await });
            let tb = tokio::spawn(async move { reserve_in(&mut b, &kb, now, 2, 0, &[]).await });
            let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
            assert!(
                ra.1 != rb.1,
                "round {round}: exactly one passes: {ra:?} {rb:?}"
            );
        }
    }
}
