//! IPv4 address leases shared by the nodes (doc/cluster.md "Addresses"). main owns the leases
//! and picks the candidates from its own table; the store decides, atomically, which of them
//! this session may have, so that one address is never given to two sessions on two nodes.
//!
//! One record per address, `rocserv:lease4:ADDR` = `SID NODE/WORKER STATE USER` (`STATE` `a`
//! live, `r` kept for the session's reconnect), and one per session,
//! `rocserv:lease4-sid:SID` = `ADDR`, so that a reconnect on another node finds its address.
//! Both expire unless renewed: a dead node's records outlive it by the reservation time
//! (`cookie-timeout` + slack, main's `ttl_ms`), long enough for its sessions to resume
//! elsewhere with their addresses. Each operation is one Lua script: one round trip, atomic.
//! The scripts read the session's previous address key by name from a value (not declared in
//! `KEYS`): a single store (or a primary with replicas), not Redis Cluster's sharding.

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use rocserv_proto::ipc::cluster::{
    AddressClaim, AddressClaimed, AddressHold, AddressRelease, AddressTaken, ClusterAnswer,
};
use rocserv_proto::ipc::SessionId;

use super::{keys, Cluster, StoreError};

/// Most candidates one claim carries (main sends fewer).
pub const MAX_CANDIDATES: usize = 64;
/// Most leases one renewal script carries (a node with more sends several).
const RENEW_CHUNK: usize = 256;
/// Longest user name a record may carry back (longer: garbage).
const MAX_USER: usize = 1024;
/// Most bytes of lost addresses one renewal answer carries: it must fit in one IPC message
/// ([`rocserv_proto::ipc::MAX_MESSAGE`], 64 KiB) whatever user names the store holds.
const MAX_LOST_BYTES: usize = 48 * 1024;

/// `rocserv:lease4:ADDR`.
pub fn addr_key(addr: Ipv4Addr) -> String {
    format!("{}lease4:{addr}", keys::PREFIX)
}

/// `rocserv:lease4-sid:SID` (the session id in hex, as in logs).
pub fn sid_key(sid: SessionId) -> String {
    format!("{}lease4-sid:{sid}", keys::PREFIX)
}

/// The record's holder: this node and main's connection.
fn tag(cluster: &Cluster, worker: u64) -> String {
    format!("{}/{worker}", cluster.node)
}

/// Shared by the scripts: split a record; `nil` for anything else (overwritten as free). The
/// scripts read with `redis.pcall`: a key of another type (any store writer) is an error
/// table here, treated as garbage, rather than failing the whole script.
const PARSE: &str = r"
local function parse(v)
  if type(v) ~= 'string' then return nil end
  return string.match(v, '^(%x+) (%S+) ([ar]) (.*)$')
end
local function node_of(t)
  return string.match(t, '^(.*)/') or t
end
";

/// KEYS[1] the session's key, KEYS[2..] the candidates' keys; ARGV: sid, tag, user, ttl,
/// address-key prefix, then the candidates' addresses. The session's own address first (held
/// under its sid, anywhere), else the first candidate that is free, or the session's, or a
/// reservation of the same user (as a single node does: protocol.md §6.3).
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{PARSE}
local sid, tag, user, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function hold(key, addr)
  redis.call('SET', key, sid .. ' ' .. tag .. ' a ' .. user, 'PX', ttl)
  redis.call('SET', KEYS[1], addr, 'PX', ttl)
end
local prev = redis.pcall('GET', KEYS[1])
if type(prev) == 'string' and string.match(prev, '^[0-9.]+$') then
  local key = ARGV[5] .. prev
  local s = parse(redis.pcall('GET', key))
  if s == sid then hold(key, prev) return {{'previous', prev}} end
end
local taken = {{'taken'}}
for i = 2, #KEYS do
  local addr = ARGV[4 + i]
  local s, t, st, u = parse(redis.pcall('GET', KEYS[i]))
  if s == nil or s == sid or (st == 'r' and u == user) then
    hold(KEYS[i], addr)
    return {{'claimed', addr}}
  end
  table.insert(taken, addr)
  table.insert(taken, node_of(t))
  table.insert(taken, u)
end
return taken
"
    ))
});

/// KEYS: per lease its address key and session key; ARGV: ttl, then per lease sid, tag, user,
/// address. Renews the records that are still this connection's and writes again those the
/// store lost; answers (address, node, user) for each another session holds.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{PARSE}
local ttl = ARGV[1]
local lost = {{}}
for i = 1, #KEYS / 2 do
  local k, sk = KEYS[2 * i - 1], KEYS[2 * i]
  local sid, tag, user, addr = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  local s, t, st, u = parse(redis.pcall('GET', k))
  if s == nil or (s == sid and t == tag) then
    redis.call('SET', k, sid .. ' ' .. tag .. ' a ' .. user, 'PX', ttl)
    redis.call('SET', sk, addr, 'PX', ttl)
  else
    table.insert(lost, addr)
    table.insert(lost, node_of(t))
    table.insert(lost, u)
  end
end
return lost
"
    ))
});

/// KEYS: the address key, the session key; ARGV: sid, tag, keep ms (0: free), address. Only
/// the connection that holds the record may release it.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{PARSE}
local s, t, st, u = parse(redis.pcall('GET', KEYS[1]))
if s ~= ARGV[1] or t ~= ARGV[2] then return 0 end
local own = redis.pcall('GET', KEYS[2]) == ARGV[4]
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], s .. ' ' .. t .. ' r ' .. u, 'PX', ARGV[3])
  if own then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
else
  redis.call('DEL', KEYS[1])
  if own then redis.call('DEL', KEYS[2]) end
end
return 1
"
    ))
});

/// [`rocserv_proto::ipc::cluster::ClusterQuery::ClaimAddress`].
pub async fn claim(cluster: &Cluster, claim: AddressClaim) -> ClusterAnswer {
    if claim.candidates.len() > MAX_CANDIDATES {
        return ClusterAnswer::Unavailable {
            why: format!("more than {MAX_CANDIDATES} candidates"),
        };
    }
    let mut inv = CLAIM.prepare_invoke();
    inv.key(sid_key(claim.sid));
    for addr in &claim.candidates {
        inv.key(addr_key(*addr));
    }
    inv.arg(claim.sid.to_string())
        .arg(tag(cluster, claim.worker))
        .arg(&claim.user)
        .arg(claim.ttl_ms.max(1))
        .arg(format!("{}lease4:", keys::PREFIX));
    for addr in &claim.candidates {
        inv.arg(addr.to_string());
    }
    let answer: Result<Vec<String>, StoreError> = cluster.store.script("lease claim", inv).await;
    match answer.map(|words| parse_claim(&words, &claim.candidates)) {
        Ok(Some(claimed)) => ClusterAnswer::AddressClaim(claimed),
        Ok(None) => {
            log::warn!("cluster leases: the store answered a claim with garbage");
            ClusterAnswer::Unavailable {
                why: "garbage answer".into(),
            }
        }
        Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
    }
}

/// [`rocserv_proto::ipc::cluster::ClusterQuery::RenewAddresses`].
pub async fn renew(cluster: &Cluster, holds: &[AddressHold], ttl_ms: u64) -> ClusterAnswer {
    let mut lost = Vec::new();
    let mut lost_bytes = 0usize;
    let mut capped = 0usize;
    for chunk in holds.chunks(RENEW_CHUNK) {
        let mut inv = RENEW.prepare_invoke();
        inv.arg(ttl_ms.max(1));
        for h in chunk {
            inv.key(addr_key(h.addr)).key(sid_key(h.sid));
            inv.arg(h.sid.to_string())
                .arg(tag(cluster, h.worker))
                .arg(&h.user)
                .arg(h.addr.to_string());
        }
        let words: Vec<String> = match cluster.store.script("lease renewal", inv).await {
            Ok(w) => w,
            Err(e) => return ClusterAnswer::Unavailable { why: e.to_string() },
        };
        let known: Vec<Ipv4Addr> = chunk.iter().map(|h| h.addr).collect();
        match parse_taken(&words, &known) {
            Some(t) => capped += keep_within(&mut lost, &mut lost_bytes, t),
            None => {
                log::warn!("cluster leases: the store answered a renewal with garbage");
                return ClusterAnswer::Unavailable {
                    why: "garbage answer".into(),
                };
            }
        }
    }
    if capped > 0 {
        // Their tunnels are still renewed; the next renewal reports them again.
        log::warn!(
            "cluster leases: {capped} lost addresses left out of this answer (too large); \
             the next renewal reports them"
        );
    }
    ClusterAnswer::AddressesLost(lost)
}

/// Add `more` to `lost` while their encoded size (`bytes`, counted across calls) stays within
/// [`MAX_LOST_BYTES`]; how many were left out.
fn keep_within(lost: &mut Vec<AddressTaken>, bytes: &mut usize, more: Vec<AddressTaken>) -> usize {
    let mut left_out = 0;
    for taken in more {
        // An upper bound (postcard: the address is 4 bytes, lengths are short varints).
        let size = taken.node.len() + taken.user.len() + 16;
        if *bytes + size > MAX_LOST_BYTES {
            left_out += 1;
        } else {
            *bytes += size;
            lost.push(taken);
        }
    }
    left_out
}

/// [`rocserv_proto::ipc::cluster::ToCluster::ReleaseAddress`].
pub async fn release(cluster: &Cluster, release: AddressRelease) {
    let h = &release.hold;
    let mut inv = RELEASE.prepare_invoke();
    inv.key(addr_key(h.addr))
        .key(sid_key(h.sid))
        .arg(h.sid.to_string())
        .arg(tag(cluster, h.worker))
        .arg(release.keep_ms)
        .arg(h.addr.to_string());
    if let Err(e) = cluster.store.script::<i64>("lease release", inv).await {
        // The record expires by itself (its TTL is the reservation's at most).
        log::debug!("cluster leases: release of {}: {e}", h.addr);
    }
}

/// `previous ADDR` | `claimed ADDR` (one of `candidates`) | `taken (ADDR NODE USER)*`.
fn parse_claim(words: &[String], candidates: &[Ipv4Addr]) -> Option<AddressClaimed> {
    let (first, rest) = words.split_first()?;
    match (first.as_str(), rest) {
        ("previous", [addr]) => addr.parse().ok().map(AddressClaimed::Previous),
        ("claimed", [addr]) => {
            let addr: Ipv4Addr = addr.parse().ok()?;
            candidates
                .contains(&addr)
                .then_some(AddressClaimed::Claimed(addr))
        }
        ("taken", rest) => parse_taken(rest, candidates).map(AddressClaimed::Taken),
        _ => None,
    }
}

/// Triples (address among `known`, node name, user name of bounded length).
fn parse_taken(words: &[String], known: &[Ipv4Addr]) -> Option<Vec<AddressTaken>> {
    if !words.len().is_multiple_of(3) || words.len() / 3 > known.len() {
        return None;
    }
    words
        .chunks_exact(3)
        .map(|w| {
            let addr: Ipv4Addr = w[0].parse().ok()?;
            let ok = known.contains(&addr)
                && rocserv_proto::cluster::valid_node_name(&w[1])
                && w[2].len() <= MAX_USER;
            ok.then(|| AddressTaken {
                addr,
                node: w[1].clone(),
                user: w[2].clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn a_renewal_answer_with_long_users_fits_in_one_message() {
        let taken = |i: u32| AddressTaken {
            addr: Ipv4Addr::from(0x0a00_0000 + i),
            node: "n".repeat(64),
            user: "u".repeat(MAX_USER),
        };
        let (mut lost, mut bytes, mut left_out) = (Vec::new(), 0, 0);
        // Several full chunks of the largest records the parser accepts.
        for c in 0..4 {
            let chunk = (0..256).map(|i| taken(c * 256 + i)).collect();
            left_out += keep_within(&mut lost, &mut bytes, chunk);
        }
        assert!(left_out > 0 && !lost.is_empty());
        assert_eq!(lost.len() + left_out, 4 * 256);
        let msg = rocserv_proto::ipc::main_secmod::FromSecMod::ClusterAnswer {
            id: u64::MAX,
            answer: ClusterAnswer::AddressesLost(lost),
        };
        rocserv_proto::ipc::encode(&msg).expect("fits in one IPC message");
    }

    #[test]
    fn key_names() {
        assert_eq!(
            addr_key(Ipv4Addr::new(10, 0, 0, 2)),
            "rocserv:lease4:10.0.0.2"
        );
        assert_eq!(
            sid_key(SessionId(0xab)),
            "rocserv:lease4-sid:00000000000000ab"
        );
    }

    #[test]
    fn claim_answers_are_checked() {
        let c = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)];
        assert_eq!(
            parse_claim(&words(&["claimed", "10.0.0.3"]), &c),
            Some(AddressClaimed::Claimed(c[1]))
        );
        assert_eq!(
            parse_claim(&words(&["previous", "10.9.0.7"]), &c),
            Some(AddressClaimed::Previous(Ipv4Addr::new(10, 9, 0, 7)))
        );
        assert_eq!(
            parse_claim(&words(&["taken", "10.0.0.2", "b", "bob"]), &c),
            Some(AddressClaimed::Taken(vec![AddressTaken {
                addr: c[0],
                node: "b".into(),
                user: "bob".into()
            }]))
        );
        assert_eq!(
            parse_claim(&words(&["taken"]), &c),
            Some(AddressClaimed::Taken(vec![]))
        );
        // Garbage: an address we did not offer, a bad node name, wrong arity, unknown word.
        for bad in [
            &["claimed", "10.0.0.9"][..],
            &["claimed", "x"],
            &["taken", "10.0.0.2", "b c", "bob"],
            &["taken", "10.0.0.2", "b"],
            &["previous"],
            &["what", "10.0.0.2"],
            &[],
        ] {
            assert_eq!(parse_claim(&words(bad), &c), None, "{bad:?}");
        }
    }
}
