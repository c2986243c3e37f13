//! IPv6 leases (`ipv6-network`, `ipv6-prefix`, `ipv6-subnet-prefix`, `explicit-ipv6`): which
//! address (and subnet) each session gets, from the global pool or a per-group / per-user one.
//!
//! As in ocserv (src/ip-lease.c `get_ipv6_lease`): a client gets a whole subnet of
//! `ipv6-subnet-prefix` bits (128 = one address) inside the network; its address is a
//! candidate value masked into the network; two sessions never share a subnet, whatever pool
//! they come from (one table for all pools, keyed by subnet); the subnet holding the network's
//! first address and its +1 (the server's end of every tunnel) is never handed out. Candidates:
//! with `predictable-ips`, the first few come from a stable hash of the user name (ocserv uses
//! its IPv4 seed), so a user keeps its address across logins; then pseudo-random ones from a
//! secret seed drawn at start-up. A small network (few subnets) is also scanned in order, so it
//! fills up completely.
//!
//! Sans-IO: `now` and the seed are passed in. Leases follow the IPv4 pool's rules
//! (`crate::ip_pool`): an address stays with its session while connected and, reserved, until
//! the deadline the caller gives (openconnect aborts a reconnect with another address); a new
//! login of the same user takes back that user's reservation.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use rocserv_proto::config::IpNet;
use rocserv_proto::ipc::main_worker::Ipv6Link;
use rocserv_proto::ipc::{SessionId, WorkerId};

/// Hash-derived candidates tried before the pseudo-random ones (ocserv: `FIXED_IPS`).
const FIXED_CANDIDATES: u32 = 5;
/// Candidates tried in a large network before giving up (ocserv: `MAX_IP_TRIES`, 16).
const MAX_CANDIDATES: u32 = 64;
/// A network of at most this many subnets is also scanned in order.
const SCAN_LIMIT: u128 = 4096;

/// Why no IPv6 address was leased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lease6Error {
    /// The network is not IPv6, or the subnet prefix is not longer than the network's.
    #[error("ipv6-network {0} with subnet prefix /{1} is not a usable IPv6 pool")]
    BadPool(String, u8),
    /// No free subnet was found.
    #[error("the IPv6 address pool is exhausted")]
    Exhausted,
    /// The session's address is still in use by another connection of it (takeover pending).
    #[error("the session's IPv6 address is still in use by another connection")]
    InUse,
    /// `explicit-ipv6` names an address another connected session holds.
    #[error("explicit-ipv6 {addr} is in use by {holder}")]
    ExplicitInUse { addr: Ipv6Addr, holder: String },
    /// `explicit-ipv6` names the server's own address or the network's first subnet.
    #[error("explicit-ipv6 {0} is the server's address or in the network's first subnet")]
    ExplicitReserved(Ipv6Addr),
}

/// What one session asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub sid: SessionId,
    pub worker: WorkerId,
    pub username: &'a str,
    /// The effective `ipv6-network` (global, group or user).
    pub network: IpNet,
    /// `ipv6-subnet-prefix`; `None` = 128.
    pub subnet_prefix: Option<u8>,
    pub predictable: bool,
    /// `explicit-ipv6`.
    pub explicit: Option<Ipv6Addr>,
}

/// All IPv6 leases of the server.
#[derive(Debug)]
pub struct Ip6Leases {
    /// Secret per run: non-predictable candidates cannot be guessed by clients.
    seed: [u8; 32],
    /// Subnet (address with host bits cleared) -> lease.
    leases: HashMap<u128, Lease>,
    by_sid: HashMap<SessionId, u128>,
}

#[derive(Debug, Clone)]
struct Lease {
    sid: SessionId,
    worker: WorkerId,
    username: String,
    link: Ipv6Link,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Reserved { until: Instant },
}

/// One pool's geometry, as integers.
#[derive(Debug, Clone, Copy)]
struct Pool {
    network: u128,
    /// Bits of the network, and of each client's subnet.
    prefix: u8,
    subnet_prefix: u8,
    /// The server's end: network + 1.
    local: u128,
}

impl Pool {
    fn new(net: IpNet, subnet_prefix: Option<u8>) -> Result<Self, Lease6Error> {
        let subnet_prefix = subnet_prefix.unwrap_or(128);
        let bad = || Lease6Error::BadPool(format!("{}/{}", net.addr, net.prefix), subnet_prefix);
        let IpAddr::V6(addr) = net.addr else {
            return Err(bad());
        };
        if net.prefix == 0 || net.prefix >= subnet_prefix || subnet_prefix > 128 {
            return Err(bad());
        }
        let network = u128::from(addr) & mask(net.prefix);
        Ok(Self {
            network,
            prefix: net.prefix,
            subnet_prefix,
            local: network | 1,
        })
    }

    fn subnet_of(&self, addr: u128) -> u128 {
        addr & mask(self.subnet_prefix)
    }

    fn contains(&self, addr: u128) -> bool {
        addr & mask(self.prefix) == self.network
    }

    /// Neither the network's first subnet nor the server's address (ocserv `is_ipv6_ok`, plus
    /// the server's /128 when clients get single addresses).
    fn usable(&self, addr: u128) -> bool {
        let subnet = self.subnet_of(addr);
        subnet != self.network && subnet != self.subnet_of(self.local)
    }

    /// A client address from 128 bits of candidate: masked into the network; never a subnet's
    /// all-zero address (the subnet-router anycast address) when the subnet is wider than one.
    fn address(&self, bits: u128) -> u128 {
        let mut addr = self.network | (bits & !mask(self.prefix));
        if self.subnet_prefix < 128 && addr & !mask(self.subnet_prefix) == 0 {
            addr |= 1;
        }
        addr
    }

    /// Number of subnets, when small enough to scan.
    fn scannable(&self) -> Option<u128> {
        let bits = u32::from(self.subnet_prefix - self.prefix);
        (bits < 13)
            .then(|| 1u128 << bits)
            .filter(|n| *n <= SCAN_LIMIT)
    }

    fn link(&self, addr: u128) -> Ipv6Link {
        Ipv6Link {
            local: Ipv6Addr::from(self.local),
            remote: Ipv6Addr::from(addr),
            prefix: self.subnet_prefix,
        }
    }
}

fn mask(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

impl Ip6Leases {
    /// `seed`: secret random bytes (drawn once at start-up).
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            leases: HashMap::new(),
            by_sid: HashMap::new(),
        }
    }

    /// A subnet for connection `req.worker` of session `req.sid`: the one the session holds if
    /// it still fits the request (and no other connection of it uses it), else the explicit
    /// address, else a free candidate.
    pub fn lease(&mut self, req: &Request<'_>, now: Instant) -> Result<Ipv6Link, Lease6Error> {
        let pool = Pool::new(req.network, req.subnet_prefix)?;
        self.expire(now);
        if let Some(link) = self.resume(req, &pool)? {
            return Ok(link);
        }
        let addr = match req.explicit {
            Some(explicit) => self.explicit(&pool, u128::from(explicit))?,
            None => self.candidate(req, &pool).ok_or(Lease6Error::Exhausted)?,
        };
        let subnet = pool.subnet_of(addr);
        if let Some(old) = self.leases.remove(&subnet) {
            self.by_sid.remove(&old.sid);
        }
        let link = pool.link(addr);
        self.leases.insert(
            subnet,
            Lease {
                sid: req.sid,
                worker: req.worker,
                username: req.username.to_owned(),
                link,
                state: State::Active,
            },
        );
        self.by_sid.insert(req.sid, subnet);
        Ok(link)
    }

    /// Connection `worker` of `sid` ended: `None` frees its subnet now, `Some(deadline)` keeps
    /// it for the session until then. Nothing happens unless `worker` holds the lease.
    pub fn release(&mut self, sid: SessionId, worker: WorkerId, keep_until: Option<Instant>) {
        let Some(subnet) = self.by_sid.get(&sid).copied() else {
            return;
        };
        let Some(lease) = self.leases.get_mut(&subnet) else {
            return;
        };
        if lease.worker != worker {
            return;
        }
        match keep_until {
            Some(until) => lease.state = State::Reserved { until },
            None => {
                self.leases.remove(&subnet);
                self.by_sid.remove(&sid);
            }
        }
    }

    /// Subnets held (active or reserved).
    pub fn held(&self) -> usize {
        self.leases.len()
    }

    /// Who holds the subnet of `addr` (for tests and logs).
    pub fn holder(&self, addr: Ipv6Addr, subnet_prefix: u8) -> Option<&str> {
        let subnet = u128::from(addr) & mask(subnet_prefix);
        self.leases.get(&subnet).map(|l| l.username.as_str())
    }

    /// The session's own lease, reactivated, if it still matches what is asked for.
    fn resume(&mut self, req: &Request<'_>, pool: &Pool) -> Result<Option<Ipv6Link>, Lease6Error> {
        let Some(subnet) = self.by_sid.get(&req.sid).copied() else {
            return Ok(None);
        };
        let Some(lease) = self.leases.get_mut(&subnet) else {
            self.by_sid.remove(&req.sid);
            return Ok(None);
        };
        let addr = u128::from(lease.link.remote);
        let fits = lease.link.prefix == pool.subnet_prefix
            && match req.explicit {
                Some(explicit) => u128::from(explicit) == addr,
                None => pool.contains(addr),
            };
        if !fits {
            // The user's policy changed since: give the old subnet back, lease anew.
            if lease.state == State::Active && lease.worker != req.worker {
                return Err(Lease6Error::InUse);
            }
            self.leases.remove(&subnet);
            self.by_sid.remove(&req.sid);
            return Ok(None);
        }
        if lease.state == State::Active && lease.worker != req.worker {
            return Err(Lease6Error::InUse);
        }
        lease.state = State::Active;
        lease.worker = req.worker;
        Ok(Some(lease.link))
    }

    /// `explicit-ipv6`: free, or only reserved (a session that left keeps no claim on an address
    /// the configuration gives to someone).
    fn explicit(&self, pool: &Pool, addr: u128) -> Result<u128, Lease6Error> {
        let explicit = Ipv6Addr::from(addr);
        if pool.subnet_of(addr) == pool.network
            || addr == pool.local
            || pool.subnet_of(addr) == pool.subnet_of(pool.local)
        {
            return Err(Lease6Error::ExplicitReserved(explicit));
        }
        match self.leases.get(&pool.subnet_of(addr)) {
            Some(lease) if lease.state == State::Active => Err(Lease6Error::ExplicitInUse {
                addr: explicit,
                holder: lease.username.clone(),
            }),
            Some(_) | None => Ok(addr),
        }
    }

    /// The first usable candidate whose subnet is free (or reserved for this user).
    fn candidate(&self, req: &Request<'_>, pool: &Pool) -> Option<u128> {
        let free = |addr: u128| {
            pool.usable(addr)
                && match self.leases.get(&pool.subnet_of(addr)) {
                    None => true,
                    Some(l) => {
                        matches!(l.state, State::Reserved { .. }) && l.username == req.username
                    }
                }
        };
        let mut first = None;
        for i in 0..MAX_CANDIDATES {
            let bits = if req.predictable && i < FIXED_CANDIDATES {
                stable_bits(&[b"user", req.username.as_bytes()], i)
            } else {
                let sid = req.sid.0.to_be_bytes();
                stable_bits(&[b"random", &self.seed, &sid], i)
            };
            let addr = pool.address(bits);
            first.get_or_insert(addr);
            if free(addr) {
                return Some(addr);
            }
        }
        // A small network: walk every subnet from the first candidate's.
        let count = pool.scannable()?;
        let start = first.map_or(0, |a| {
            (a - pool.network) >> (128 - u32::from(pool.subnet_prefix))
        });
        let shift = 128 - u32::from(pool.subnet_prefix);
        (0..count)
            .map(|i| {
                let index = (start + i) % count;
                let host = first.map_or(0, |a| a & !mask(pool.subnet_prefix));
                pool.address((index << shift) | host)
            })
            .find(|addr| free(*addr))
    }

    /// Forget reservations whose deadline passed.
    fn expire(&mut self, now: Instant) {
        let by_sid = &mut self.by_sid;
        self.leases.retain(|_, lease| match lease.state {
            State::Reserved { until } if until <= now => {
                by_sid.remove(&lease.sid);
                false
            }
            State::Reserved { .. } | State::Active => true,
        });
    }
}

/// 128 bits from SHA-256 over `parts` and `i`: stable across runs and builds (a user's
/// predictable address survives a restart).
fn stable_bits(parts: &[&[u8]], i: u32) -> u128 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&i.to_be_bytes());
    let digest = ctx.finish();
    let mut bytes = [0u8; 16];
    for (dst, src) in bytes.iter_mut().zip(digest.as_ref()) {
        *dst = *src;
    }
    u128::from_be_bytes(bytes)
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

    fn req(sid: u64, user: &str, network: IpNet, subnet: Option<u8>) -> Request<'_> {
        Request {
            sid: SessionId(sid),
            worker: WorkerId(sid),
            username: user,
            network,
            subnet_prefix: subnet,
            predictable: false,
            explicit: None,
        }
    }

    fn leases() -> Ip6Leases {
        Ip6Leases::new([7; 32])
    }

    #[test]
    fn addresses_lie_in_the_network_and_never_in_the_servers_subnet() {
        let mut l = leases();
        let now = Instant::now();
        let n = net("fd00:1::", 64);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let link = l.lease(&req(i, "u", n, None), now).unwrap();
            assert_eq!(link.local, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
            assert_eq!(link.prefix, 128);
            let a = u128::from(link.remote);
            assert_eq!(
                a >> 64,
                u128::from("fd00:1::".parse::<Ipv6Addr>().unwrap()) >> 64
            );
            assert!(a & 0xffff_ffff_ffff_ffff > 1, "{}", link.remote);
            assert!(seen.insert(link.remote));
        }
        assert_eq!(l.held(), 200);
    }

    #[test]
    fn subnets_are_whole_and_exclusive() {
        let mut l = leases();
        let now = Instant::now();
        // A /120 network in /124 subnets: 16 subnets, the first one is the server's.
        let n = net("fd00:2::100", 120);
        let mut subnets = std::collections::HashSet::new();
        for i in 0..15 {
            let link = l.lease(&req(i, "u", n, Some(124)), now).unwrap();
            assert_eq!(link.prefix, 124);
            assert_eq!(link.local, "fd00:2::101".parse::<Ipv6Addr>().unwrap());
            let subnet = link.remote_net();
            assert_ne!(subnet, "fd00:2::100".parse::<Ipv6Addr>().unwrap());
            assert_ne!(
                link.remote, subnet,
                "never the subnet-router anycast address"
            );
            assert!(subnets.insert(subnet));
        }
        assert_eq!(
            l.lease(&req(99, "u", n, Some(124)), now),
            Err(Lease6Error::Exhausted)
        );
    }

    #[test]
    fn a_small_single_address_pool_fills_up_and_skips_the_server() {
        let mut l = leases();
        let now = Instant::now();
        // /125 of single addresses: ::0 (network) and ::1 (server) are never handed out.
        let n = net("fd00:3::", 125);
        let got: std::collections::HashSet<_> = (0..6)
            .map(|i| l.lease(&req(i, "u", n, None), now).unwrap().remote)
            .collect();
        let want: std::collections::HashSet<Ipv6Addr> = (2..8)
            .map(|h| format!("fd00:3::{h}").parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            l.lease(&req(6, "u", n, None), now),
            Err(Lease6Error::Exhausted)
        );
    }

    #[test]
    fn predictable_addresses_follow_the_user_and_survive_a_restart() {
        let now = Instant::now();
        let n = net("fd00:4::", 64);
        let predictable = |sid, user| Request {
            predictable: true,
            ..req(sid, user, n, None)
        };
        let a = leases().lease(&predictable(1, "alice"), now).unwrap();
        // Another server run (another seed), another session: the same address.
        let mut l = Ip6Leases::new([9; 32]);
        assert_eq!(l.lease(&predictable(7, "alice"), now).unwrap(), a);
        assert_ne!(l.lease(&predictable(8, "bob"), now).unwrap(), a);
        // A second concurrent session of alice gets another one.
        assert_ne!(l.lease(&predictable(9, "alice"), now).unwrap(), a);
        // Without predictable-ips the seed decides.
        let r1 = leases().lease(&req(1, "alice", n, None), now).unwrap();
        let r2 = Ip6Leases::new([8; 32])
            .lease(&req(1, "alice", n, None), now)
            .unwrap();
        assert_ne!(r1, r2);
    }

    #[test]
    fn session_keeps_its_address_across_reconnects_and_takeovers() {
        let mut l = leases();
        let now = Instant::now();
        let n = net("fd00:5::", 64);
        let a = l.lease(&req(1, "alice", n, None), now).unwrap();
        // A second connection of the session while the first holds it: refused.
        let second = Request {
            worker: WorkerId(11),
            ..req(1, "alice", n, None)
        };
        assert_eq!(l.lease(&second, now), Err(Lease6Error::InUse));
        l.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        assert_eq!(l.lease(&second, now), Ok(a));
        // A late release of the first connection changes nothing.
        l.release(SessionId(1), WorkerId(1), None);
        assert_eq!(l.holder(a.remote, 128), Some("alice"));
        // Gone for good: freed.
        l.release(SessionId(1), WorkerId(11), None);
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn reservations_expire_and_a_new_login_takes_its_users_back() {
        let mut l = leases();
        let t0 = Instant::now();
        let n = net("fd00:6::", 126); // two client addresses: ::2, ::3
        let a = l.lease(&req(1, "bob", n, None), t0).unwrap();
        let b = l.lease(&req(2, "carol", n, None), t0).unwrap();
        l.release(
            SessionId(1),
            WorkerId(1),
            Some(t0 + Duration::from_secs(10)),
        );
        // Someone else waits for the deadline...
        assert_eq!(
            l.lease(&req(3, "dave", n, None), t0),
            Err(Lease6Error::Exhausted)
        );
        // ...but bob's next login gets it back at once.
        assert_eq!(l.lease(&req(4, "bob", n, None), t0).unwrap(), a);
        l.release(
            SessionId(4),
            WorkerId(4),
            Some(t0 + Duration::from_secs(10)),
        );
        let later = t0 + Duration::from_secs(11);
        assert_eq!(l.lease(&req(3, "dave", n, None), later).unwrap(), a);
        assert_ne!(a, b);
    }

    #[test]
    fn explicit_addresses_are_exclusive_and_refused_clearly() {
        let mut l = leases();
        let now = Instant::now();
        let n = net("fd00:7::", 64);
        let fixed: Ipv6Addr = "fd00:7::77".parse().unwrap();
        let explicit = |sid, user| Request {
            explicit: Some(fixed),
            ..req(sid, user, n, None)
        };
        assert_eq!(l.lease(&explicit(1, "erin"), now).unwrap().remote, fixed);
        // The same session reconnecting keeps it.
        l.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        assert_eq!(l.lease(&explicit(1, "erin"), now).unwrap().remote, fixed);
        // A second login while it is in use: refused, naming the holder.
        let err = l.lease(&explicit(2, "erin"), now).unwrap_err();
        assert_eq!(
            err,
            Lease6Error::ExplicitInUse {
                addr: fixed,
                holder: "erin".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "explicit-ipv6 fd00:7::77 is in use by erin"
        );
        // Once the first session left (reserved), the configured owner takes it.
        l.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        assert_eq!(l.lease(&explicit(2, "erin"), now).unwrap().remote, fixed);
        assert_eq!(l.held(), 1);
        // The server's own address and the first subnet are refused.
        for bad in ["fd00:7::1", "fd00:7::"] {
            let r = Request {
                explicit: Some(bad.parse().unwrap()),
                ..req(5, "x", n, None)
            };
            assert!(matches!(
                l.lease(&r, now),
                Err(Lease6Error::ExplicitReserved(_))
            ));
        }
    }

    #[test]
    fn per_user_pools_share_one_table_and_a_changed_pool_gives_a_new_address() {
        let mut l = leases();
        let now = Instant::now();
        let global = net("fd00:8::", 64);
        let group = net("fd00:9::", 64);
        let a = l.lease(&req(1, "u", global, None), now).unwrap();
        l.release(
            SessionId(1),
            WorkerId(1),
            Some(now + Duration::from_secs(300)),
        );
        // The user's policy moved them to another pool: a new address from that pool.
        let b = l.lease(&req(1, "u", group, None), now).unwrap();
        assert_ne!(a, b);
        assert_eq!(b.local, "fd00:9::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(l.held(), 1);
    }

    #[test]
    fn unusable_pools_are_refused() {
        let mut l = leases();
        let now = Instant::now();
        for (n, subnet) in [
            (net("10.0.0.0", 8), None),
            (net("fd00::", 64), Some(64)),
            (net("fd00::", 64), Some(48)),
            (net("fd00::", 128), None),
        ] {
            assert!(matches!(
                l.lease(&req(1, "u", n, subnet), now),
                Err(Lease6Error::BadPool(..))
            ));
        }
    }
}
