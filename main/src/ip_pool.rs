//! The IPv4 address pool of `ipv4-network`: which client address each session gets.
//!
//! Sans-IO: `now` is passed in, so expiry is tested without sleeping. An address stays with its
//! session (not just its user) while the session is connected and, after a connection that the
//! client may come back from, until a deadline the caller chooses (cookie-timeout + 15 s):
//! openconnect aborts a reconnect that yields a different address (protocol.md §2.3 item 4,
//! §6.3). With `predictable-ips` the first candidate is derived from a stable hash of the user
//! name, so even a new login of the same user usually gets the same address (ocserv
//! src/ip-lease.c does the same with its own hash).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rocserv_proto::config::IpNet;
use rocserv_proto::ipc::{SessionId, WorkerId};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Every address is in use or reserved.
    #[error("the address pool is exhausted")]
    Exhausted,
    /// The session's address is still in use by another connection (whose worker has not
    /// exited): handing it out again would give one address to two tunnels.
    #[error("the session's address is still in use by another connection")]
    InUse,
}

/// Leases of one IPv4 network. The network address, the server's address (first host) and the
/// broadcast address are never handed out.
#[derive(Debug)]
pub struct IpPool {
    /// First and last leasable address, as integers.
    first: u32,
    last: u32,
    server: Ipv4Addr,
    netmask: Ipv4Addr,
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
    /// A pool over `net` (host bits of `net.addr` are ignored).
    pub fn new(net: IpNet, predictable: bool) -> Result<Self, PoolError> {
        let IpAddr::V4(addr) = net.addr else {
            return Err(PoolError::NotIpv4);
        };
        if net.prefix > 30 {
            return Err(PoolError::TooSmall(net.prefix));
        }
        let mask = u32::MAX << (32 - u32::from(net.prefix));
        let network = u32::from(addr) & mask;
        let broadcast = network | !mask;
        Ok(Self {
            // network + 1 is the server's end of every point-to-point link.
            first: network + 2,
            last: broadcast - 1,
            server: Ipv4Addr::from(network + 1),
            netmask: Ipv4Addr::from(mask),
            predictable,
            leases: HashMap::new(),
            by_sid: HashMap::new(),
        })
    }

    /// Our end of every tunnel: the first host of the network.
    pub fn server_address(&self) -> Ipv4Addr {
        self.server
    }

    /// The network's netmask (what `X-CSTP-Netmask` carries).
    pub fn netmask(&self) -> Ipv4Addr {
        self.netmask
    }

    /// An address for connection `worker` of session `sid`: the one the session already holds
    /// if it has one (and no other connection uses it), else the user's predictable address (or
    /// the lowest) that is free, else the oldest expired reservation.
    pub fn lease(
        &mut self,
        sid: SessionId,
        worker: WorkerId,
        username: &str,
        now: Instant,
    ) -> Result<Ipv4Addr, LeaseError> {
        if let Some(addr) = self.by_sid.get(&sid).copied() {
            if let Some(lease) = self.leases.get_mut(&addr) {
                if lease.state == LeaseState::Active && lease.worker != worker {
                    return Err(LeaseError::InUse);
                }
                lease.state = LeaseState::Active;
                lease.worker = worker;
                return Ok(addr);
            }
        }
        let addr = self
            .free_address(username)
            .or_else(|| self.reclaim(now))
            .ok_or(LeaseError::Exhausted)?;
        // Taking back the user's own reservation: forget the session that held it.
        if let Some(old) = self.leases.get(&addr) {
            self.by_sid.remove(&old.sid);
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
        Ok(addr)
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

    fn size(&self) -> u32 {
        self.last - self.first + 1
    }

    /// First address this user may take, scanning from the user's predictable address (or the
    /// lowest) and wrapping around: one without a lease, or one reserved (not in use) for an
    /// earlier session of the same user. A new login of a user whose worker died thus gets the
    /// same address back instead of a second one (the "kill -9 frees its address").
    fn free_address(&self, username: &str) -> Option<Ipv4Addr> {
        let size = self.size();
        let start = if self.predictable {
            fnv1a(username.as_bytes()) % size
        } else {
            0
        };
        // u64: start + i may exceed u32 for a very large network.
        (0..u64::from(size))
            .map(|i| {
                let offset = (u64::from(start) + i) % u64::from(size);
                Ipv4Addr::from(self.first + offset as u32)
            })
            .find(|addr| match self.leases.get(addr) {
                None => true,
                Some(lease) => {
                    matches!(lease.state, LeaseState::Reserved { .. }) && lease.username == username
                }
            })
    }

    /// Take back the reservation that expired first, if any has expired.
    fn reclaim(&mut self, now: Instant) -> Option<Ipv4Addr> {
        let (addr, sid) = self
            .leases
            .iter()
            .filter_map(|(addr, lease)| match lease.state {
                LeaseState::Reserved { until } if until <= now => Some((until, *addr, lease.sid)),
                LeaseState::Reserved { .. } | LeaseState::Active => None,
            })
            .min_by_key(|(until, _, _)| *until)
            .map(|(_, addr, sid)| (addr, sid))?;
        self.leases.remove(&addr);
        self.by_sid.remove(&sid);
        Some(addr)
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

    fn pool(prefix: u8, predictable: bool) -> IpPool {
        IpPool::new(net("10.77.0.0", prefix), predictable).unwrap()
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
        let p = IpPool::new(net("10.77.0.200", 24), false).unwrap();
        assert_eq!(p.server_address(), Ipv4Addr::new(10, 77, 0, 1));
    }

    #[test]
    fn rejects_v6_and_tiny_networks() {
        assert_eq!(
            IpPool::new(net("fd00::", 64), true).unwrap_err(),
            PoolError::NotIpv4
        );
        assert_eq!(
            IpPool::new(net("10.0.0.0", 31), true).unwrap_err(),
            PoolError::TooSmall(31)
        );
        assert!(IpPool::new(net("10.0.0.0", 30), true).is_ok());
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
}
