//! IPv4 address leases: which client address each session gets, from the pool its policy
//! names (`ipv4-network` of the server or vhost, or of the user's group or user file) or the
//! fixed address of `explicit-ipv4`.
//!
//! One lease table for every pool: an address is held by at most one session whatever pool it
//! came from, so overlapping per-group networks or a fixed address inside a pool cannot give
//! one address to two tunnels. The pool is chosen per session by the caller ([`LeaseRequest`],
//! built from the session's policy), so a vhost or a group brings its own network without a
//! table of its own.
//!
//! Sans-IO: `now` is passed in, so expiry is tested without sleeping. An address stays with its
//! session (not just its user) while the session is connected and, after a connection that the
//! client may come back from, until a deadline the caller chooses (cookie-timeout + 15 s):
//! openconnect aborts a reconnect that yields a different address (protocol.md §2.3 item 4,
//! §6.3). With `predictable-ips` the first candidate is derived from a stable hash of the user
//! name within the pool's network, so even a new login of the same user usually gets the same
//! address (ocserv src/ip-lease.c does the same with its own hash).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rocserv_proto::config::IpNet;
use rocserv_proto::ipc::{SessionId, WorkerId};
use rocserv_proto::policy::Policy;

/// Why a pool cannot be built from a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// `ipv4-network` is an IPv6 network.
    #[error("not an IPv4 network")]
    NotIpv4,
    /// The prefix is longer than 30 bits or longer than 32: no room for the server and a client.
    #[error("a /{0} network has no room for the server address and a client")]
    TooSmall(u8),
}

/// Why [`IpPool::lease`] gave no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Every address is in use or reserved.
    #[error("the address pool is exhausted")]
    Exhausted,
    /// The session's address is still in use by another connection (whose worker has not
    /// exited): handing it out again would give one address to two tunnels.
    #[error("the session's address is still in use by another connection")]
    InUse,
    /// `explicit-ipv4`: the fixed address is held by another session.
    #[error("the fixed address {addr} (explicit-ipv4) is in use by a session of {holder}")]
    FixedInUse { addr: Ipv4Addr, holder: String },
    /// The address is held by another session (here, or on another node of the cluster).
    #[error("the address {0} is held by another session")]
    Taken(Ipv4Addr),
    /// `explicit-ipv4` names the network, broadcast or server address of the network.
    #[error("the fixed address {0} (explicit-ipv4) is the network's own address, not a host's")]
    FixedInvalid(Ipv4Addr),
    /// The session's policy has no IPv4 network.
    #[error("no ipv4-network for this session")]
    NoNetwork,
    /// The session's `ipv4-network` cannot be a pool.
    #[error("ipv4-network: {0}")]
    Network(#[from] PoolError),
}

/// One pool: an IPv4 network. The network address, the server's address (first host) and the
/// broadcast address are never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    network: u32,
    broadcast: u32,
    netmask: Ipv4Addr,
}

impl Range {
    /// The pool of `net` (host bits of `net.addr` are ignored).
    pub fn new(net: IpNet) -> Result<Self, PoolError> {
        let IpAddr::V4(addr) = net.addr else {
            return Err(PoolError::NotIpv4);
        };
        if net.prefix > 30 {
            return Err(PoolError::TooSmall(net.prefix));
        }
        let mask = u32::MAX << (32 - u32::from(net.prefix));
        let network = u32::from(addr) & mask;
        Ok(Self {
            network,
            broadcast: network | !mask,
            netmask: Ipv4Addr::from(mask),
        })
    }

    /// Our end of every tunnel of this pool: the first host of the network.
    pub fn server_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// The network's netmask (what `X-CSTP-Netmask` carries).
    pub fn netmask(&self) -> Ipv4Addr {
        self.netmask
    }

    /// First and last address a client may get (network + 1 is the server's end).
    fn first(&self) -> u32 {
        self.network + 2
    }

    fn last(&self) -> u32 {
        self.broadcast - 1
    }

    fn size(&self) -> u32 {
        self.last() - self.first() + 1
    }

    fn leasable(&self, addr: Ipv4Addr) -> bool {
        (self.first()..=self.last()).contains(&u32::from(addr))
    }

    /// The network, broadcast or server address: never a client's.
    fn reserved(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        a == self.network || a == self.broadcast || a == self.network + 1
    }
}

/// What a session asks for: an address of a pool, or its fixed address (our end is then still
/// the pool's server address, as in ocserv).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest {
    pub range: Range,
    pub fixed: Option<Ipv4Addr>,
}

impl LeaseRequest {
    /// From the session's effective policy: its `ipv4-network` and `explicit-ipv4`.
    pub fn from_policy(policy: &Policy) -> Result<Self, LeaseError> {
        let net = policy.ipv4_network.ok_or(LeaseError::NoNetwork)?;
        Ok(Self {
            range: Range::new(net)?,
            fixed: policy.explicit_ipv4,
        })
    }

    /// Whether `addr` is what this request may get.
    pub fn fits(&self, addr: Ipv4Addr) -> bool {
        match self.fixed {
            Some(fixed) => addr == fixed,
            None => self.range.leasable(addr),
        }
    }
}

/// What [`IpPool::plan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The session's own address (a reconnect).
    Own(Ipv4Addr),
    /// Its `explicit-ipv4`.
    Fixed(Ipv4Addr),
    /// Candidates of the pool, best first (never empty).
    Pool(Vec<Ipv4Addr>),
}

/// A granted lease: both ends of the point-to-point link and the pool's netmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

/// The leases of every pool (one per server).
#[derive(Debug)]
pub struct IpPool {
    predictable: bool,
    leases: HashMap<Ipv4Addr, Lease>,
    by_sid: HashMap<SessionId, Ipv4Addr>,
}

#[derive(Debug, Clone)]
struct Lease {
    sid: SessionId,
    /// The connection that holds it (or held it last, while reserved): only that one may
    /// release it, so a late release of an older connection cannot touch a newer one's lease.
    worker: WorkerId,
    username: String,
    state: LeaseState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseState {
    /// A connection of the session uses the address.
    Active,
    /// Kept for a reconnect of the session until the deadline; reclaimable after it.
    Reserved { until: Instant },
}

impl IpPool {
    /// An empty lease table; `predictable` = `predictable-ips`.
    pub fn new(predictable: bool) -> Self {
        Self {
            predictable,
            leases: HashMap::new(),
            by_sid: HashMap::new(),
        }
    }

    /// An address for connection `worker` of session `sid`: the one the session already holds
    /// if it still fits the request (and no other connection uses it); else the fixed address
    /// if the request has one (refused while another session holds it); else the user's
    /// predictable address (or the pool's lowest) that is free, else the pool's oldest expired
    /// reservation.
    pub fn lease(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        worker: WorkerId,
        username: &str,
        now: Instant,
    ) -> Result<Grant, LeaseError> {
        let addr = match self.plan(req, sid, worker, username, now, &HashSet::new(), 1)? {
            Plan::Own(a) | Plan::Fixed(a) => a,
            Plan::Pool(c) => c.first().copied().ok_or(LeaseError::Exhausted)?,
        };
        self.take(req, sid, worker, username, addr, now)
    }

    /// The addresses [`Self::lease`] would choose from, in its order of preference, without
    /// taking one (the cluster decides which of them is free on every node, then
    /// [`Self::take`]): the session's own, or its fixed one, or up to `max` candidates of the
    /// pool that are free here and not in `skip` (held on another node). The session's own
    /// address is given back when it no longer fits or is in `skip`.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        worker: WorkerId,
        username: &str,
        now: Instant,
        skip: &HashSet<Ipv4Addr>,
        max: usize,
    ) -> Result<Plan, LeaseError> {
        if let Some(addr) = self.by_sid.get(&sid).copied() {
            if let Some(lease) = self.leases.get(&addr) {
                if lease.state == LeaseState::Active && lease.worker != worker {
                    return Err(LeaseError::InUse);
                }
                if req.fits(addr) && !skip.contains(&addr) {
                    return Ok(Plan::Own(addr));
                }
                // The session's pool or fixed address changed (its files were edited), or
                // another node gave the address away: the old address goes back.
                self.leases.remove(&addr);
            }
            self.by_sid.remove(&sid);
        }
        if let Some(fixed) = req.fixed {
            return self
                .fixed(&req.range, fixed, username, now)
                .map(Plan::Fixed);
        }
        let mut candidates: Vec<Ipv4Addr> = self
            .free_addresses(&req.range, username)
            .filter(|a| !skip.contains(a))
            .take(max)
            .collect();
        if candidates.len() < max {
            let mut expired: Vec<(Instant, Ipv4Addr)> = self
                .leases
                .iter()
                .filter(|(addr, _)| req.range.leasable(**addr) && !skip.contains(*addr))
                .filter_map(|(addr, lease)| match lease.state {
                    LeaseState::Reserved { until } if until <= now => Some((until, *addr)),
                    LeaseState::Reserved { .. } | LeaseState::Active => None,
                })
                .collect();
            expired.sort();
            candidates.extend(
                expired
                    .into_iter()
                    .map(|(_, a)| a)
                    .filter(|a| !candidates.contains(a))
                    .take(max - candidates.len())
                    .collect::<Vec<_>>(),
            );
        }
        if candidates.is_empty() {
            return Err(LeaseError::Exhausted);
        }
        Ok(Plan::Pool(candidates))
    }

    /// Give `addr` (chosen by [`Self::plan`], or the session's address on another node) to
    /// connection `worker` of session `sid`, if it may still have it here: free, the session's
    /// own, a reservation of the same user or an expired one.
    pub fn take(
        &mut self,
        req: &LeaseRequest,
        sid: SessionId,
        worker: WorkerId,
        username: &str,
        addr: Ipv4Addr,
        now: Instant,
    ) -> Result<Grant, LeaseError> {
        if !req.fits(addr) {
            return Err(LeaseError::Taken(addr));
        }
        // Another connection of the session still uses its address (see `plan`).
        if let Some(own) = self.by_sid.get(&sid).and_then(|a| self.leases.get(a)) {
            if own.state == LeaseState::Active && own.worker != worker {
                return Err(LeaseError::InUse);
            }
        }
        if let Some(lease) = self.leases.get_mut(&addr) {
            if lease.sid == sid {
                if lease.state == LeaseState::Active && lease.worker != worker {
                    return Err(LeaseError::InUse);
                }
            } else {
                let may = match lease.state {
                    LeaseState::Reserved { until } => lease.username == username || until <= now,
                    LeaseState::Active => false,
                };
                if !may {
                    return Err(match req.fixed {
                        Some(_) => LeaseError::FixedInUse {
                            addr,
                            holder: lease.username.clone(),
                        },
                        None => LeaseError::Taken(addr),
                    });
                }
            }
        }
        // Taking back the user's own reservation (or an expired one): forget the session that
        // held it. A session that held another address here gives it back.
        if let Some(old) = self.leases.get(&addr) {
            self.by_sid.remove(&old.sid);
        }
        if let Some(old) = self.by_sid.remove(&sid) {
            if old != addr {
                self.leases.remove(&old);
            }
        }
        self.leases.insert(
            addr,
            Lease {
                sid,
                worker,
                username: username.to_owned(),
                state: LeaseState::Active,
            },
        );
        self.by_sid.insert(sid, addr);
        Ok(Grant {
            local: req.range.server_address(),
            remote: addr,
            netmask: req.range.netmask(),
        })
    }

    /// The live leases (address, session, connection, user): what this node renews in the
    /// cluster store.
    pub fn active(&self) -> Vec<(Ipv4Addr, SessionId, WorkerId, String)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.state == LeaseState::Active)
            .map(|(a, l)| (*a, l.sid, l.worker, l.username.clone()))
            .collect()
    }

    /// The connection holding `addr` live, if one does.
    pub fn active_worker(&self, addr: Ipv4Addr) -> Option<WorkerId> {
        self.leases
            .get(&addr)
            .filter(|l| l.state == LeaseState::Active)
            .map(|l| l.worker)
    }

    /// `explicit-ipv4`: free, or reserved for an earlier session of the same user, or reserved
    /// past its deadline. As in ocserv it need not lie inside the network, but it cannot be
    /// the network's own addresses.
    fn fixed(
        &self,
        range: &Range,
        addr: Ipv4Addr,
        username: &str,
        now: Instant,
    ) -> Result<Ipv4Addr, LeaseError> {
        if range.reserved(addr) {
            return Err(LeaseError::FixedInvalid(addr));
        }
        match self.leases.get(&addr) {
            None => Ok(addr),
            Some(lease) => match lease.state {
                LeaseState::Reserved { until } if lease.username == username || until <= now => {
                    Ok(addr)
                }
                LeaseState::Reserved { .. } | LeaseState::Active => Err(LeaseError::FixedInUse {
                    addr,
                    holder: lease.username.clone(),
                }),
            },
        }
    }

    /// Connection `worker` of `sid` ended. `None` frees the address now; `Some(deadline)` keeps
    /// it for the session until then. Nothing happens unless `worker` holds the lease.
    pub fn release(&mut self, sid: SessionId, worker: WorkerId, keep_until: Option<Instant>) {
        let Some(addr) = self.by_sid.get(&sid).copied() else {
            return;
        };
        if self.leases.get(&addr).is_none_or(|l| l.worker != worker) {
            return;
        }
        match keep_until {
            None => {
                self.leases.remove(&addr);
                self.by_sid.remove(&sid);
            }
            Some(until) => {
                if let Some(lease) = self.leases.get_mut(&addr) {
                    lease.state = LeaseState::Reserved { until };
                }
            }
        }
    }

    /// Number of addresses held (active or reserved).
    pub fn held(&self) -> usize {
        self.leases.len()
    }

    /// The user of the lease on `addr`, if any (for logs).
    pub fn holder(&self, addr: Ipv4Addr) -> Option<&str> {
        self.leases.get(&addr).map(|l| l.username.as_str())
    }

    /// First address of `range` this user may take, scanning from the user's predictable
    /// address (or the lowest) and wrapping around: one without a lease, or one reserved (not
    /// in use) for an earlier session of the same user. A new login of a user whose worker died
    /// thus gets the same address back instead of a second one (the issue's "kill -9 frees its
    /// address").
    fn free_addresses<'a>(
        &'a self,
        range: &Range,
        username: &'a str,
    ) -> impl Iterator<Item = Ipv4Addr> + 'a {
        let size = range.size();
        let first = range.first();
        let start = if self.predictable {
            fnv1a(username.as_bytes()) % size
        } else {
            0
        };
        // u64: start + i may exceed u32 for a very large network.
        (0..u64::from(size))
            .map(move |i| {
                let offset = (u64::from(start) + i) % u64::from(size);
                Ipv4Addr::from(first + offset as u32)
            })
            .filter(move |addr| match self.leases.get(addr) {
                None => true,
                Some(lease) => {
                    matches!(lease.state, LeaseState::Reserved { .. }) && lease.username == username
                }
            })
    }
}

/// 32-bit FNV-1a: stable across runs and builds, unlike std's randomized hasher, so a user's
/// predictable address survives a server restart.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    /// One pool over 10.77.0.0/`prefix`, as the tests of a single pool see it.
    struct P {
        pool: IpPool,
        req: LeaseRequest,
    }

    impl P {
        fn lease(
            &mut self,
            sid: SessionId,
            worker: WorkerId,
            user: &str,
            now: Instant,
        ) -> Result<Ipv4Addr, LeaseError> {
            self.pool
                .lease(&self.req, sid, worker, user, now)
                .map(|g| g.remote)
        }
        fn release(&mut self, sid: SessionId, worker: WorkerId, keep: Option<Instant>) {
            self.pool.release(sid, worker, keep)
        }
        fn held(&self) -> usize {
            self.pool.held()
        }
        fn holder(&self, addr: Ipv4Addr) -> Option<&str> {
            self.pool.holder(addr)
        }
        fn server_address(&self) -> Ipv4Addr {
            self.req.range.server_address()
        }
        fn netmask(&self) -> Ipv4Addr {
            self.req.range.netmask()
        }
    }

    fn request(s: &str, prefix: u8) -> LeaseRequest {
        LeaseRequest {
            range: Range::new(net(s, prefix)).unwrap(),
            fixed: None,
        }
    }

    fn pool(prefix: u8, predictable: bool) -> P {
        P {
            pool: IpPool::new(predictable),
            req: request("10.77.0.0", prefix),
        }
    }

    #[test]
    fn fnv1a_known_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn skips_network_server_and_broadcast() {
        let mut p = pool(29, false); // .0 net, .1 server, .2-.6 clients, .7 broadcast
        let now = Instant::now();
        assert_eq!(p.server_address(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(p.netmask(), Ipv4Addr::new(255, 255, 255, 248));
        let got: Vec<_> = (0..5)
            .map(|i| p.lease(SessionId(i), WorkerId(i), "u", now).unwrap())
            .collect();
        let want: Vec<_> = (2..=6).map(|h| Ipv4Addr::new(10, 77, 0, h)).collect();
        assert_eq!(got, want);
        assert_eq!(p.lease(SessionId(99), WorkerId(99), "u", now).ok(), None);
    }

    #[test]
    fn host_bits_of_the_configured_network_are_ignored() {
        let r = Range::new(net("10.77.0.200", 24)).unwrap();
        assert_eq!(r.server_address(), Ipv4Addr::new(10, 77, 0, 1));
    }

    #[test]
    fn rejects_v6_and_tiny_networks() {
        assert_eq!(
            Range::new(net("fd00::", 64)).unwrap_err(),
            PoolError::NotIpv4
        );
        assert_eq!(
            Range::new(net("10.0.0.0", 31)).unwrap_err(),
            PoolError::TooSmall(31)
        );
        assert!(Range::new(net("10.0.0.0", 30)).is_ok());
    }

    #[test]
    fn same_session_gets_same_address_while_reserved() {
        let mut p = pool(24, false);
        let now = Instant::now();
        let a = p.lease(SessionId(1), WorkerId(1), "alice", now).unwrap();
        // The same connection asking again: same address.
        assert_eq!(
            p.lease(SessionId(1), WorkerId(1), "alice", now).ok(),
            Some(a)
        );
        p.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(315)),
        );
        // Someone else does not get it while it is reserved...
        let b = p.lease(SessionId(2), WorkerId(2), "bob", now).unwrap();
        assert_ne!(a, b);
        // ...and the session gets it back, even after the deadline if nobody took it.
        let later = now + Duration::from_secs(1000);
        assert_eq!(
            p.lease(SessionId(1), WorkerId(1), "alice", later).ok(),
            Some(a)
        );
    }

    #[test]
    fn free_without_deadline_releases_at_once() {
        let mut p = pool(30, false); // exactly one client address: .2
        let now = Instant::now();
        let a = p.lease(SessionId(1), WorkerId(1), "alice", now).unwrap();
        assert_eq!(p.lease(SessionId(2), WorkerId(2), "bob", now).ok(), None);
        p.release(SessionId(1), WorkerId(1), None);
        assert_eq!(p.held(), 0);
        assert_eq!(p.lease(SessionId(2), WorkerId(2), "bob", now).ok(), Some(a));
        assert_eq!(p.holder(a), Some("bob"));
    }

    #[test]
    fn full_pool_reclaims_oldest_expired_reservation_only() {
        let mut p = pool(29, false); // 5 client addresses
        let t0 = Instant::now();
        let addrs: Vec<_> = (0..5)
            .map(|i| p.lease(SessionId(i), WorkerId(i), "u", t0).unwrap())
            .collect();
        p.release(
            SessionId(3),
            WorkerId(3),
            Some(t0 + Duration::from_secs(20)),
        );
        p.release(
            SessionId(1),
            WorkerId(1),
            Some(t0 + Duration::from_secs(10)),
        );
        // Nothing expired yet: the pool is full.
        assert_eq!(p.lease(SessionId(10), WorkerId(10), "v", t0).ok(), None);
        // At 15 s only session 1's reservation has expired.
        let t15 = t0 + Duration::from_secs(15);
        assert_eq!(
            p.lease(SessionId(10), WorkerId(10), "v", t15).ok(),
            Some(addrs[1])
        );
        assert_eq!(p.lease(SessionId(11), WorkerId(11), "v", t15).ok(), None);
        // At 25 s session 3's is reclaimable too.
        let t25 = t0 + Duration::from_secs(25);
        assert_eq!(
            p.lease(SessionId(11), WorkerId(11), "v", t25).ok(),
            Some(addrs[3])
        );
        // Session 1 lost its address; it gets a new one only if one is free.
        assert_eq!(p.lease(SessionId(1), WorkerId(1), "u", t25).ok(), None);
    }

    #[test]
    fn predictable_addresses_follow_the_user_name() {
        let now = Instant::now();
        let mut p1 = pool(16, true);
        let mut p2 = pool(16, true);
        // Same user, different sessions and pools: same address (stable hash).
        let a1 = p1.lease(SessionId(1), WorkerId(1), "alice", now).unwrap();
        let a2 = p2.lease(SessionId(7), WorkerId(7), "alice", now).unwrap();
        assert_eq!(a1, a2);
        let size = 65536 - 3;
        let expected = u32::from(Ipv4Addr::new(10, 77, 0, 2)) + fnv1a(b"alice") % size;
        assert_eq!(u32::from(a1), expected);
        // A new login of the same user after a clean logout gets it again.
        p1.release(SessionId(1), WorkerId(1), None);
        assert_eq!(
            p1.lease(SessionId(2), WorkerId(2), "alice", now).ok(),
            Some(a1)
        );
        // A second concurrent session of that user gets the next one.
        let next = p1.lease(SessionId(3), WorkerId(3), "alice", now).unwrap();
        assert_ne!(next, a1);
    }

    #[test]
    fn predictable_scan_wraps_around() {
        let now = Instant::now();
        let mut p = pool(29, true);
        let mut seen = Vec::new();
        for i in 0..5 {
            seen.push(p.lease(SessionId(i), WorkerId(i), "same", now).unwrap());
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5);
        assert_eq!(p.lease(SessionId(9), WorkerId(9), "same", now).ok(), None);
    }

    #[test]
    fn new_login_of_the_same_user_takes_back_its_reservation() {
        let mut p = pool(24, true);
        let now = Instant::now();
        let a = p.lease(SessionId(1), WorkerId(1), "bob", now).unwrap();
        p.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        // Another user does not get bob's reserved address...
        let other = p.lease(SessionId(2), WorkerId(2), "mallory", now).unwrap();
        assert_ne!(other, a);
        // ...but bob's next login does, and the old session no longer owns it.
        assert_eq!(p.lease(SessionId(3), WorkerId(3), "bob", now).ok(), Some(a));
        assert_eq!(p.held(), 2);
        let again = p.lease(SessionId(1), WorkerId(1), "bob", now).unwrap();
        assert_ne!(again, a, "the old session must not share the address");
    }

    #[test]
    fn a_takeover_waits_for_the_old_connection_and_a_late_release_changes_nothing() {
        let mut p = pool(24, false);
        let now = Instant::now();
        let a = p.lease(SessionId(1), WorkerId(10), "alice", now).unwrap();
        // A second connection of the session while the first still holds the address.
        assert_eq!(
            p.lease(SessionId(1), WorkerId(11), "alice", now),
            Err(LeaseError::InUse)
        );
        // The first ended (reserved for the session): the second gets the address.
        p.release(
            SessionId(1),
            WorkerId(10),
            Some(now + Duration::from_secs(300)),
        );
        assert_eq!(p.lease(SessionId(1), WorkerId(11), "alice", now), Ok(a));
        // A late or repeated release by the first connection leaves the second's lease active:
        // nobody else may get the address.
        p.release(SessionId(1), WorkerId(10), None);
        p.release(SessionId(1), WorkerId(10), Some(now));
        assert_eq!(p.holder(a), Some("alice"));
        let far = now + Duration::from_secs(10_000);
        let b = p.lease(SessionId(2), WorkerId(12), "bob", far).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            p.lease(SessionId(1), WorkerId(13), "alice", far),
            Err(LeaseError::InUse)
        );
    }

    #[test]
    fn release_of_unknown_session_is_harmless() {
        let mut p = pool(24, true);
        p.release(SessionId(42), WorkerId(42), None);
        p.release(SessionId(42), WorkerId(42), Some(Instant::now()));
        assert_eq!(p.held(), 0);
    }

    fn fixed(addr: &str) -> LeaseRequest {
        LeaseRequest {
            fixed: Some(addr.parse().unwrap()),
            ..request("10.77.0.0", 24)
        }
    }

    #[test]
    fn several_pools_share_one_table_and_each_has_its_server_address() {
        let mut p = IpPool::new(true);
        let now = Instant::now();
        let global = request("10.77.0.0", 24);
        let group = request("10.88.0.0", 16);
        let a = p
            .lease(&global, SessionId(1), WorkerId(1), "alice", now)
            .unwrap();
        let b = p
            .lease(&group, SessionId(2), WorkerId(2), "alice", now)
            .unwrap();
        assert_eq!(a.local, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(a.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(b.local, Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(b.netmask, Ipv4Addr::new(255, 255, 0, 0));
        // predictable-ips within each pool: the user's hash in that network.
        assert_eq!(
            u32::from(a.remote),
            u32::from(Ipv4Addr::new(10, 77, 0, 2)) + fnv1a(b"alice") % 253
        );
        assert_eq!(
            u32::from(b.remote),
            u32::from(Ipv4Addr::new(10, 88, 0, 2)) + fnv1a(b"alice") % 65533
        );
        // Overlapping pools never hand out one address twice.
        let inner = request("10.77.0.0", 28);
        let mut seen = vec![a.remote];
        for i in 3..20 {
            match p.lease(&inner, SessionId(i), WorkerId(i), "u", now) {
                Ok(g) => seen.push(g.remote),
                Err(e) => assert_eq!(e, LeaseError::Exhausted),
            }
        }
        let n = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n);
        assert_eq!(p.held(), n + 1);
    }

    #[test]
    fn a_fixed_address_in_use_refuses_the_second_login() {
        let mut p = IpPool::new(false);
        let now = Instant::now();
        let want = fixed("10.77.0.50");
        let g = p
            .lease(&want, SessionId(1), WorkerId(1), "alice", now)
            .unwrap();
        assert_eq!(g.remote, Ipv4Addr::new(10, 77, 0, 50));
        assert_eq!(g.local, Ipv4Addr::new(10, 77, 0, 1));
        // A second session with the same fixed address: refused, naming address and holder.
        assert_eq!(
            p.lease(&want, SessionId(2), WorkerId(2), "alice", now),
            Err(LeaseError::FixedInUse {
                addr: Ipv4Addr::new(10, 77, 0, 50),
                holder: "alice".to_owned()
            })
        );
        // The pool does not hand the fixed address to anyone else either.
        let pool = request("10.77.0.0", 24);
        for i in 3..300 {
            match p.lease(&pool, SessionId(i), WorkerId(i), "bob", now) {
                Ok(g) => assert_ne!(g.remote, Ipv4Addr::new(10, 77, 0, 50)),
                Err(e) => assert_eq!(e, LeaseError::Exhausted),
            }
        }
        // Once the first session ended (kept for its reconnect), a new login of the same user
        // takes the address back; the old session no longer holds it.
        p.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        let again = p
            .lease(&want, SessionId(2), WorkerId(2), "alice", now)
            .unwrap();
        assert_eq!(again.remote, g.remote);
        assert_eq!(
            p.lease(&want, SessionId(1), WorkerId(9), "alice", now),
            Err(LeaseError::FixedInUse {
                addr: g.remote,
                holder: "alice".to_owned()
            })
        );
    }

    #[test]
    fn a_fixed_address_reserved_for_another_user_waits_for_its_deadline() {
        let mut p = IpPool::new(false);
        let now = Instant::now();
        let pool = request("10.77.0.0", 30); // one client address: .2
        let g = p
            .lease(&pool, SessionId(1), WorkerId(1), "bob", now)
            .unwrap();
        let until = now + Duration::from_secs(60);
        p.release(SessionId(1), WorkerId(1), Some(until));
        let want = LeaseRequest {
            fixed: Some(g.remote),
            ..pool
        };
        assert!(matches!(
            p.lease(&want, SessionId(2), WorkerId(2), "alice", now),
            Err(LeaseError::FixedInUse { .. })
        ));
        let got = p
            .lease(&want, SessionId(2), WorkerId(2), "alice", until)
            .unwrap();
        assert_eq!(got.remote, g.remote);
        assert_eq!(p.holder(g.remote), Some("alice"));
    }

    #[test]
    fn a_fixed_address_cannot_be_the_networks_own() {
        let mut p = IpPool::new(false);
        let now = Instant::now();
        for a in ["10.77.0.0", "10.77.0.1", "10.77.0.255"] {
            assert_eq!(
                p.lease(&fixed(a), SessionId(1), WorkerId(1), "u", now),
                Err(LeaseError::FixedInvalid(a.parse().unwrap()))
            );
        }
        // Outside the network is accepted, as in ocserv (the link is point-to-point).
        let g = p
            .lease(&fixed("192.168.9.9"), SessionId(1), WorkerId(1), "u", now)
            .unwrap();
        assert_eq!(g.remote, Ipv4Addr::new(192, 168, 9, 9));
        assert_eq!(g.local, Ipv4Addr::new(10, 77, 0, 1));
    }

    #[test]
    fn a_session_whose_pool_changed_gets_an_address_of_the_new_pool() {
        let mut p = IpPool::new(false);
        let now = Instant::now();
        let a = p
            .lease(
                &request("10.77.0.0", 24),
                SessionId(1),
                WorkerId(1),
                "u",
                now,
            )
            .unwrap();
        p.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        let b = p
            .lease(
                &request("10.88.0.0", 24),
                SessionId(1),
                WorkerId(2),
                "u",
                now,
            )
            .unwrap();
        assert_eq!(b.remote, Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(p.holder(a.remote), None);
        assert_eq!(p.held(), 1);
        // Now fixed: the pool address goes back too.
        p.release(
            SessionId(1),
            WorkerId(2),
            Some(now + Duration::from_secs(300)),
        );
        let c = p
            .lease(&fixed("10.77.0.9"), SessionId(1), WorkerId(3), "u", now)
            .unwrap();
        assert_eq!(c.remote, Ipv4Addr::new(10, 77, 0, 9));
        assert_eq!(p.held(), 1);
    }

    #[test]
    fn plan_skips_addresses_held_elsewhere_and_take_checks_again() {
        let mut p = IpPool::new(false);
        let now = Instant::now();
        let req = request("10.77.0.0", 29); // .2 to .6
        let skip: HashSet<Ipv4Addr> = [Ipv4Addr::new(10, 77, 0, 2)].into();
        let plan = p
            .plan(&req, SessionId(1), WorkerId(1), "alice", now, &skip, 3)
            .unwrap();
        let want: Vec<_> = (3..=5).map(|h| Ipv4Addr::new(10, 77, 0, h)).collect();
        assert_eq!(plan, Plan::Pool(want));
        // Nothing is taken by planning.
        assert_eq!(p.held(), 0);
        // The cluster gave .4: taken here.
        let a = Ipv4Addr::new(10, 77, 0, 4);
        let g = p
            .take(&req, SessionId(1), WorkerId(1), "alice", a, now)
            .unwrap();
        assert_eq!(g.remote, a);
        assert_eq!(
            p.plan(&req, SessionId(1), WorkerId(1), "alice", now, &skip, 3),
            Ok(Plan::Own(a))
        );
        // Another session cannot take it here, whatever the store says.
        assert_eq!(
            p.take(&req, SessionId(2), WorkerId(2), "bob", a, now),
            Err(LeaseError::Taken(a))
        );
        // An address outside the session's network is refused.
        let out = Ipv4Addr::new(10, 99, 0, 9);
        assert_eq!(
            p.take(&req, SessionId(2), WorkerId(2), "bob", out, now),
            Err(LeaseError::Taken(out))
        );
        // The session's own address held elsewhere now (in `skip`): given back, others offered.
        let skip: HashSet<Ipv4Addr> = [a].into();
        let plan = p
            .plan(&req, SessionId(1), WorkerId(1), "alice", now, &skip, 1)
            .unwrap();
        assert_eq!(plan, Plan::Pool(vec![Ipv4Addr::new(10, 77, 0, 2)]));
        assert_eq!(p.held(), 0);
        // A session that moves to the address the store holds for it gives its old one back.
        let b = Ipv4Addr::new(10, 77, 0, 5);
        p.take(&req, SessionId(3), WorkerId(3), "carol", a, now)
            .unwrap();
        p.take(&req, SessionId(3), WorkerId(4), "carol", b, now)
            .unwrap_err();
        p.release(
            SessionId(3),
            WorkerId(3),
            Some(now + Duration::from_secs(60)),
        );
        p.take(&req, SessionId(3), WorkerId(4), "carol", b, now)
            .unwrap();
        assert_eq!(p.holder(a), None);
        assert_eq!(p.holder(b), Some("carol"));
        assert_eq!(p.active().len(), 1);
    }

    #[test]
    fn request_from_policy() {
        let mut policy = Policy::default();
        assert_eq!(
            LeaseRequest::from_policy(&policy),
            Err(LeaseError::NoNetwork)
        );
        policy.ipv4_network = Some(net("fd00::", 64));
        assert_eq!(
            LeaseRequest::from_policy(&policy),
            Err(LeaseError::Network(PoolError::NotIpv4))
        );
        policy.ipv4_network = Some(net("10.5.0.0", 16));
        policy.explicit_ipv4 = Some(Ipv4Addr::new(10, 5, 1, 1));
        let r = LeaseRequest::from_policy(&policy).unwrap();
        assert_eq!(r.fixed, Some(Ipv4Addr::new(10, 5, 1, 1)));
        assert_eq!(r.range.server_address(), Ipv4Addr::new(10, 5, 0, 1));
    }
}
