//! What sec-mod knows about client addresses: each worker's client (from main's `NewWorker`,
//! never from the worker), the address each session logged in from (`deny-roaming` pins a
//! cookie to it, protocol.md §6.1), and the ban points for wrong passwords waiting to be sent
//! to main (protocol.md §1.8). Sans-IO apart from the [`Notify`] that wakes the sender.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocserv_proto::ipc::{SessionId, WorkerId};
use tokio::sync::Notify;

/// Most ban reports kept while main is slow to take them; beyond that they are dropped (a
/// flood of wrong passwords is already banned by then).
const MAX_PENDING: usize = 4096;

/// The address tables.
#[derive(Debug, Default)]
pub struct Origins {
    workers: HashMap<WorkerId, IpAddr>,
    logins: HashMap<SessionId, IpAddr>,
}

impl Origins {
    /// Main introduced a worker serving `peer`.
    pub fn worker_started(&mut self, worker: WorkerId, peer: IpAddr) {
        self.workers.insert(worker, peer);
    }

    /// The worker's channel closed.
    pub fn worker_gone(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
    }

    /// The client of `worker`, if the worker is known.
    pub fn peer_of(&self, worker: WorkerId) -> Option<IpAddr> {
        self.workers.get(&worker).copied()
    }

    /// Session `sid` was issued to a client at `peer`.
    pub fn logged_in(&mut self, sid: SessionId, peer: IpAddr) {
        self.logins.insert(sid, peer);
    }

    /// Session `sid` is gone.
    pub fn forget(&mut self, sid: SessionId) {
        self.logins.remove(&sid);
    }

    /// `deny-roaming`: may `worker` open session `sid`? Only from the login address; an
    /// unknown worker or session is refused (fail closed).
    pub fn same_origin(&self, worker: WorkerId, sid: SessionId) -> bool {
        match (self.workers.get(&worker), self.logins.get(&sid)) {
            (Some(now), Some(first)) => now == first,
            _ => false,
        }
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
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn roaming_is_refused_and_unknowns_fail_closed() {
        let mut o = Origins::default();
        o.worker_started(WorkerId(1), ip("10.0.0.2"));
        o.logged_in(SessionId(7), ip("10.0.0.2"));
        o.worker_started(WorkerId(2), ip("10.0.0.2"));
        o.worker_started(WorkerId(3), ip("10.0.0.3"));
        assert!(o.same_origin(WorkerId(2), SessionId(7)));
        assert!(!o.same_origin(WorkerId(3), SessionId(7)));
        assert!(!o.same_origin(WorkerId(9), SessionId(7)));
        assert!(!o.same_origin(WorkerId(2), SessionId(8)));
        o.forget(SessionId(7));
        assert!(!o.same_origin(WorkerId(2), SessionId(7)));
        o.worker_gone(WorkerId(2));
        assert_eq!(o.peer_of(WorkerId(2)), None);
        assert_eq!(o.peer_of(WorkerId(3)), Some(ip("10.0.0.3")));
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
