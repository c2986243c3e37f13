//! What sec-mod knows about client addresses: each worker's client (from main's `NewWorker`,
//! never from the worker), the address each session logged in from (`deny-roaming` pins a
//! cookie to it, protocol.md §6.1), and the ban points for wrong passwords waiting to be sent
//! to main (protocol.md §1.8). Sans-IO apart from the [`Notify`] that wakes the sender.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use rocserv_proto::ipc::SessionId;
use tokio::sync::Notify;

/// Most ban reports kept while main is slow to take them; beyond that they are dropped (a
/// flood of wrong passwords is already banned by then).
const MAX_PENDING: usize = 4096;

/// The address each session logged in from.
#[derive(Debug, Default)]
pub struct Origins {
    logins: HashMap<SessionId, IpAddr>,
}

impl Origins {
    /// Session `sid` was issued to a client at `peer`.
    pub fn logged_in(&mut self, sid: SessionId, peer: IpAddr) {
        self.logins.insert(sid, peer);
    }

    /// Session `sid` is gone.
    pub fn forget(&mut self, sid: SessionId) {
        self.logins.remove(&sid);
    }

    /// `deny-roaming`: may a client at `peer` (main's word, from the accepted connection) open
    /// session `sid`? Only from the login address; an unknown session is refused (fail closed).
    /// The worker's own sec-mod link has ended by then (it closes it before CONNECT), so the
    /// address comes with main's `SessionOpen`, never from a table of live links.
    pub fn same_origin(&self, peer: IpAddr, sid: SessionId) -> bool {
        self.logins.get(&sid) == Some(&peer)
    }
}

/// Ban points for main, queued by worker tasks and sent by the task that owns main's socket.
#[derive(Debug, Default)]
pub struct BanReports {
    pending: Mutex<Vec<(IpAddr, u32)>>,
    /// Wakes the sender when a report was queued.
    pub ready: Notify,
}

impl BanReports {
    /// Queue a failed login of `peer` worth `points` (also 0: main counts failures).
    pub fn add(&self, peer: IpAddr, points: u32) {
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING {
                return;
            }
            pending.push((peer, points));
        }
        self.ready.notify_one();
    }

    /// Everything queued so far.
    pub fn take(&self) -> Vec<(IpAddr, u32)> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// A poisoned lock only means a panic elsewhere; every update here is one operation.
pub use rocserv_rt::lock;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn roaming_is_refused_and_unknowns_fail_closed() {
        let mut o = Origins::default();
        o.logged_in(SessionId(7), ip("10.0.0.2"));
        assert!(o.same_origin(ip("10.0.0.2"), SessionId(7)));
        assert!(!o.same_origin(ip("10.0.0.3"), SessionId(7)));
        assert!(!o.same_origin(ip("10.0.0.2"), SessionId(8)));
        o.forget(SessionId(7));
        assert!(!o.same_origin(ip("10.0.0.2"), SessionId(7)));
    }

    #[test]
    fn ban_reports_queue_and_drain() {
        let r = BanReports::default();
        r.add(ip("10.0.0.2"), 10);
        r.add(ip("10.0.0.2"), 0);
        r.add(ip("::1"), 5);
        assert_eq!(
            r.take(),
            [(ip("10.0.0.2"), 10), (ip("10.0.0.2"), 0), (ip("::1"), 5)]
        );
        assert!(r.take().is_empty());
        for _ in 0..MAX_PENDING + 10 {
            r.add(ip("10.0.0.9"), 1);
        }
        assert_eq!(r.take().len(), MAX_PENDING);
    }
}
