//! Session accounting: main reports each tunnel's start (`SessionStarted`), its traffic every
//! `stats-report-time` (`SessionStats`) and its end (`SessionClose`); [`Accounting`] turns them
//! into [`Event`]s for every [`Sink`] (RADIUS accounting, the session database).
//!
//! Sinks are called on sec-mod's main loop and must not block or await: each queues the event
//! for a task or thread of its own, so a slow RADIUS server or disk delays only accounting, never
//! a login or a CONNECT. A sink that wants a session ended (a quota ran out) asks through
//! [`EndRequests`]; sec-mod forwards that to main as `EndSession`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rocserv_proto::ipc::main_secmod::{TunnelEnd, TunnelFacts};
use rocserv_proto::ipc::worker_secmod::ClientFacts;
use rocserv_proto::ipc::{SessionId, WorkerId};
use tokio::sync::Notify;

use crate::peers::lock;

/// One tunnel of a session, as accounting knows it from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sid: SessionId,
    /// The worker serving the tunnel: a session may have a second tunnel while a takeover ends
    /// the first, so tunnels are told apart by worker.
    pub worker: WorkerId,
    pub username: String,
    /// Empty for none.
    pub group: String,
    /// `[vhost:NAME]` of the session; `None` for the default section.
    pub vhost: Option<String>,
    /// What the client said about itself at login (no certificate chain).
    pub facts: ClientFacts,
    pub cert_subject: Option<String>,
    /// Addresses and device of the tunnel (main's word).
    pub tunnel: TunnelFacts,
    /// When main reported the start.
    pub started: SystemTime,
    /// The user's usage limits (the session database enforces them).
    pub limits: rocserv_proto::policy::quota::Limits,
}

impl Record {
    /// The client's real address, if main gave it.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.tunnel.peer
    }
}

/// What happened to a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started(Arc<Record>),
    /// Traffic so far (bytes from and to the client since the tunnel started).
    Interim {
        record: Arc<Record>,
        rx: u64,
        tx: u64,
    },
    Stopped {
        record: Arc<Record>,
        end: TunnelEnd,
    },
}

impl Event {
    pub fn record(&self) -> &Arc<Record> {
        match self {
            Self::Started(record) | Self::Interim { record, .. } | Self::Stopped { record, .. } => {
                record
            }
        }
    }
}

/// Something that accounts sessions. Must return at once (queue the work elsewhere).
pub trait Sink: Send + Sync {
    /// Short name for logs (`radius`, `session-db`).
    fn name(&self) -> &'static str;
    fn event(&self, event: &Event);
}

/// Most end requests queued for main; beyond it requests are dropped (a sink asks again at its
/// next interim update).
const MAX_PENDING_ENDS: usize = 4096;

/// Sessions a sink wants ended, waiting to be sent to main as `EndSession`.
#[derive(Debug, Default)]
pub struct EndRequests {
    pending: Mutex<Vec<(SessionId, String)>>,
    /// Wakes sec-mod's main loop when a request was queued.
    pub ready: Notify,
}

impl EndRequests {
    /// Ask main to end every tunnel of `sid`; `why` is logged by main.
    pub fn end(&self, sid: SessionId, why: String) {
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING_ENDS {
                return;
            }
            pending.push((sid, why));
        }
        self.ready.notify_one();
    }

    /// Everything queued so far.
    pub fn take(&self) -> Vec<(SessionId, String)> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// The sinks and the tunnels they are told about.
#[derive(Default)]
pub struct Accounting {
    sinks: Vec<Box<dyn Sink>>,
    live: Mutex<HashMap<WorkerId, Arc<Record>>>,
    pub ends: Arc<EndRequests>,
}

impl std::fmt::Debug for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounting")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Accounting {
    pub fn new(sinks: Vec<Box<dyn Sink>>, ends: Arc<EndRequests>) -> Self {
        Self {
            sinks,
            live: Mutex::default(),
            ends,
        }
    }

    /// A tunnel came up. A second start for the same worker replaces the first (main sends one).
    pub fn started(&self, record: Record) {
        let record = Arc::new(record);
        lock(&self.live).insert(record.worker, Arc::clone(&record));
        self.emit(&Event::Started(record));
    }

    /// Traffic of a live tunnel; ignored for a tunnel accounting never saw start.
    pub fn interim(&self, sid: SessionId, worker: WorkerId, rx: u64, tx: u64) {
        let record = lock(&self.live).get(&worker).cloned();
        match record {
            Some(record) if record.sid == sid => self.emit(&Event::Interim { record, rx, tx }),
            Some(_) | None => log::debug!("stats for unknown tunnel of session {sid}"),
        }
    }

    /// A tunnel ended.
    pub fn stopped(&self, sid: SessionId, worker: WorkerId, end: TunnelEnd) {
        let record = {
            let mut live = lock(&self.live);
            match live.get(&worker) {
                Some(r) if r.sid == sid => live.remove(&worker),
                Some(_) | None => None,
            }
        };
        match record {
            Some(record) => self.emit(&Event::Stopped { record, end }),
            None => log::debug!("end of unknown tunnel of session {sid}"),
        }
    }

    /// Tunnels live now (sinks that enforce limits look at them).
    pub fn live(&self) -> Vec<Arc<Record>> {
        lock(&self.live).values().cloned().collect()
    }

    fn emit(&self, event: &Event) {
        for sink in &self.sinks {
            sink.event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Event>>);

    impl Sink for Arc<Seen> {
        fn name(&self) -> &'static str {
            "test"
        }
        fn event(&self, event: &Event) {
            lock(&self.0).push(event.clone());
        }
    }

    fn record(sid: u64, worker: u64) -> Record {
        Record {
            sid: SessionId(sid),
            worker: WorkerId(worker),
            username: "u".into(),
            group: String::new(),
            vhost: None,
            facts: ClientFacts::default(),
            cert_subject: None,
            tunnel: TunnelFacts::default(),
            started: SystemTime::UNIX_EPOCH,
            limits: Default::default(),
        }
    }

    #[test]
    fn events_follow_tunnels_by_worker() {
        let seen = Arc::new(Seen::default());
        let acct = Accounting::new(vec![Box::new(Arc::clone(&seen))], Arc::default());
        acct.started(record(1, 10));
        // A takeover: the new tunnel starts before the old one's end arrives.
        acct.started(record(1, 11));
        acct.interim(SessionId(1), WorkerId(10), 5, 6);
        let end = TunnelEnd {
            rx: 7,
            tx: 8,
            duration_secs: 1,
            cause: rocserv_proto::ipc::main_secmod::EndCause::Takeover,
        };
        acct.stopped(SessionId(1), WorkerId(10), end);
        // Unknown tunnels and mismatched sessions are ignored.
        acct.interim(SessionId(1), WorkerId(10), 9, 9);
        acct.stopped(SessionId(2), WorkerId(11), end);
        assert_eq!(acct.live().len(), 1);
        let seen = lock(&seen.0);
        let kinds: Vec<_> = seen
            .iter()
            .map(|e| match e {
                Event::Started(r) => format!("start {}", r.worker.0),
                Event::Interim { record, rx, .. } => format!("interim {} {rx}", record.worker.0),
                Event::Stopped { record, end } => format!("stop {} {}", record.worker.0, end.rx),
            })
            .collect();
        assert_eq!(kinds, ["start 10", "start 11", "interim 10 5", "stop 10 7"]);
    }

    #[test]
    fn end_requests_are_bounded() {
        let r = EndRequests::default();
        for i in 0..MAX_PENDING_ENDS + 5 {
            r.end(SessionId(i as u64), "quota".into());
        }
        assert_eq!(r.take().len(), MAX_PENDING_ENDS);
        assert!(r.take().is_empty());
    }
}
