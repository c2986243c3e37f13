//! The registry of live tunnels that occtl reads (`show users`, `disconnect`, `show events`):
//! one record per worker with a granted CONNECT, the server's running totals (`show status`),
//! and a broadcast of connect/disconnect events. A connection's record (`crate::conn::Conn`)
//! adds and removes its entry; the ctl socket reads it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use rocserv_proto::ipc::main_worker::Ipv6Link;
use std::sync::Mutex;
use std::time::SystemTime;

use rocserv_proto::ipc::{SessionId, WorkerId};
use rocserv_rt::lock;
use tokio::sync::broadcast;

/// Events queued per `show events` subscriber before the slowest one starts missing some.
const EVENT_BACKLOG: usize = 256;

/// What a granted CONNECT adds to a tunnel record (built by `connect.rs`).
#[derive(Debug, Clone)]
pub struct Granted {
    pub sid: SessionId,
    pub username: String,
    pub groupname: String,
    pub device: String,
    pub mtu: u16,
    /// `None` with an IPv6-only pool.
    pub ipv4_local: Option<Ipv4Addr>,
    pub ipv4_remote: Option<Ipv4Addr>,
    pub user_agent: String,
    pub hostname: String,
    /// The session's effective policy, as granted (occtl shows this, not the configuration).
    pub policy: std::sync::Arc<rocserv_proto::policy::Policy>,
    /// The tunnel's IPv6 ends and the client's prefix, if it has IPv6.
    pub ipv6: Option<Ipv6Link>,
    /// The device facts of the login (empty when not reported), as the scripts got them.
    pub device_id: String,
    pub device_platform: String,
    pub macs: Vec<String>,
    /// The DPD interval the client was told (`mobile-dpd` for mobile clients), seconds.
    pub dpd_secs: u32,
    /// When the session was created (the login), from sec-mod's session age: a cookie
    /// reconnect keeps it while `connected_at` is this connection's.
    pub session_started: SystemTime,
}

/// One live tunnel.
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub worker: WorkerId,
    /// The worker's process id: occtl's `ID` (as in ocserv).
    pub pid: u32,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub granted: Granted,
    pub connected_at: SystemTime,
    /// The worker's last `Stats` report (bytes from / to the client).
    pub rx: u64,
    pub tx: u64,
    /// The worker's last accepted state report, as main formatted it (`crate::tunnel_state`).
    pub channels: Option<crate::tunnel_state::ChannelView>,
    /// The client's UDP address its DTLS session uses: one main handed over, named by the
    /// worker's last accepted report.
    pub udp_peer: Option<SocketAddr>,
}

/// A connect (`connected: true`) or disconnect, for `show events`.
#[derive(Debug, Clone)]
pub struct Event {
    pub connected: bool,
    pub tunnel: Tunnel,
}

/// Running totals since start (`show status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sessions_closed: u64,
    pub rx: u64,
    pub tx: u64,
    pub session_secs_sum: u64,
    pub session_secs_max: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
}

impl Totals {
    /// A tunnel of `secs` seconds ended, having moved `rx` and `tx` bytes.
    fn ended(&mut self, rx: u64, tx: u64, secs: u64) {
        self.sessions_closed = self.sessions_closed.saturating_add(1);
        self.rx = self.rx.saturating_add(rx);
        self.tx = self.tx.saturating_add(tx);
        self.session_secs_sum = self.session_secs_sum.saturating_add(secs);
        self.session_secs_max = self.session_secs_max.max(secs);
    }
}

/// The counters of ocserv's "current stats period" (`show status`: sessions handled,
/// authentication failures, session times, RX/TX), which restart every
/// `server-stats-reset-time`; the totals since start do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// When this period started.
    pub since: SystemTime,
    /// Of the tunnels that ended in it (the MTU range is left at 0: it is the server's).
    pub ended: Totals,
    pub auth_failures: u64,
}

impl Period {
    pub fn new(since: SystemTime) -> Self {
        Self {
            since,
            ended: Totals::default(),
            auth_failures: 0,
        }
    }

    /// At `now`, with periods of `every` seconds (0 = one period forever): start a new period
    /// if this one is over, and return the one that ended. A clock set back starts none.
    pub fn roll(&mut self, every: u32, now: SystemTime) -> Option<Period> {
        let age = now.duration_since(self.since).ok()?;
        if every == 0 || age.as_secs() < u64::from(every) {
            return None;
        }
        Some(std::mem::replace(self, Self::new(now)))
    }
}

/// The registry (one per server, inside `state::Shared`).
#[derive(Debug)]
pub struct Registry {
    live: Mutex<HashMap<WorkerId, Tunnel>>,
    totals: Mutex<Totals>,
    period: Mutex<Period>,
    /// `server-stats-reset-time` (fixed at start).
    reset_every: std::sync::atomic::AtomicU32,
    events: broadcast::Sender<Event>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            live: Mutex::new(HashMap::new()),
            totals: Mutex::new(Totals::default()),
            period: Mutex::new(Period::new(SystemTime::now())),
            reset_every: std::sync::atomic::AtomicU32::new(7 * 24 * 3600),
            events: broadcast::Sender::new(EVENT_BACKLOG),
        }
    }
}

impl Registry {
    /// A tunnel came up.
    pub fn insert(&self, tunnel: Tunnel) {
        {
            let mut totals = lock(&self.totals);
            let mtu = tunnel.granted.mtu;
            totals.min_mtu = match totals.min_mtu {
                0 => mtu,
                m => m.min(mtu),
            };
            totals.max_mtu = totals.max_mtu.max(mtu);
        }
        lock(&self.live).insert(tunnel.worker, tunnel.clone());
        // No subscriber is not an error.
        let _ = self.events.send(Event {
            connected: true,
            tunnel,
        });
    }

    /// The worker reported its counters.
    pub fn update_stats(&self, worker: WorkerId, rx: u64, tx: u64) {
        if let Some(t) = lock(&self.live).get_mut(&worker) {
            t.rx = rx;
            t.tx = tx;
        }
    }

    /// The worker's state report passed main's checks; `udp_peer` (main's own record of the
    /// flow the report names) replaces the last one when known.
    pub fn update_channels(
        &self,
        worker: WorkerId,
        view: crate::tunnel_state::ChannelView,
        udp_peer: Option<SocketAddr>,
    ) {
        if let Some(t) = lock(&self.live).get_mut(&worker) {
            t.channels = Some(view);
            if udp_peer.is_some() {
                t.udp_peer = udp_peer;
            }
        }
    }

    /// The worker's path MTU discovery lowered (or raised again) its device's MTU.
    pub fn update_mtu(&self, worker: WorkerId, mtu: u16) {
        if let Some(t) = lock(&self.live).get_mut(&worker) {
            t.granted.mtu = mtu;
            let mut totals = lock(&self.totals);
            totals.min_mtu = totals.min_mtu.min(mtu);
        }
    }

    /// The worker is gone; its final counters go into the totals.
    pub fn remove(&self, worker: WorkerId, rx: u64, tx: u64) {
        let Some(mut tunnel) = lock(&self.live).remove(&worker) else {
            return;
        };
        tunnel.rx = rx;
        tunnel.tx = tx;
        let secs = SystemTime::now()
            .duration_since(tunnel.connected_at)
            .map_or(0, |d| d.as_secs());
        lock(&self.totals).ended(rx, tx, secs);
        // As ocserv: a session that ends after the period's time opens the next period.
        self.roll(&mut lock(&self.period)).ended.ended(rx, tx, secs);
        let _ = self.events.send(Event {
            connected: false,
            tunnel,
        });
    }

    /// Every live tunnel, ordered by connection.
    pub fn snapshot(&self) -> Vec<Tunnel> {
        let mut all: Vec<Tunnel> = lock(&self.live).values().cloned().collect();
        all.sort_by_key(|t| t.worker);
        all
    }

    pub fn totals(&self) -> Totals {
        *lock(&self.totals)
    }

    /// A failed login, for the current period.
    pub fn auth_failed(&self) {
        let mut period = lock(&self.period);
        period.auth_failures = period.auth_failures.saturating_add(1);
    }

    /// `server-stats-reset-time`, from the configuration main started with.
    pub fn set_period_length(&self, secs: u32) {
        self.reset_every
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current period, after starting a new one if its time passed (ocserv checks only
    /// when a session ends; we also check when occtl asks, so `show status` never shows a
    /// period longer than the setting).
    pub fn period(&self) -> Period {
        *self.roll(&mut lock(&self.period))
    }

    /// Start a new period if the current one's time passed, logging the one that ended (as
    /// ocserv does).
    fn roll<'a>(&self, period: &'a mut Period) -> &'a mut Period {
        let every = self.reset_every.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(ended) = period.roll(every, SystemTime::now()) {
            log::info!(
                "resetting stats counters: {} sessions handled, {} authentication failures, \
                 {} bytes in, {} bytes out since the last reset",
                ended.ended.sessions_closed,
                ended.auth_failures,
                ended.ended.rx,
                ended.ended.tx
            );
        }
        period
    }

    /// Subscribe to connect/disconnect events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(worker: u64, mtu: u16) -> Tunnel {
        Tunnel {
            worker: WorkerId(worker),
            pid: 100,
            peer: "10.0.0.2:5000".parse().unwrap(),
            local: "10.0.0.1:443".parse().unwrap(),
            granted: Granted {
                sid: SessionId(worker),
                username: "alice".into(),
                groupname: String::new(),
                device: "vpns0".into(),
                mtu,
                ipv4_local: Some(Ipv4Addr::new(192, 168, 1, 1)),
                ipv4_remote: Some(Ipv4Addr::new(192, 168, 1, 2)),
                user_agent: "oc".into(),
                hostname: String::new(),
                policy: Default::default(),
                ipv6: None,
                device_id: String::new(),
                device_platform: String::new(),
                macs: Vec::new(),
                dpd_secs: 90,
                session_started: SystemTime::now(),
            },
            connected_at: SystemTime::now(),
            rx: 0,
            tx: 0,
            channels: None,
            udp_peer: None,
        }
    }

    #[test]
    fn tunnels_come_and_go_with_events_and_totals() {
        let reg = Registry::default();
        let mut events = reg.subscribe();
        reg.insert(tunnel(2, 1400));
        reg.insert(tunnel(1, 1300));
        reg.update_stats(WorkerId(1), 5, 6);
        reg.update_mtu(WorkerId(2), 1200);
        let live = reg.snapshot();
        assert_eq!(live[1].granted.mtu, 1200);
        assert_eq!(live.len(), 2);
        assert_eq!(
            (live[0].worker, live[0].rx, live[0].tx),
            (WorkerId(1), 5, 6)
        );
        reg.remove(WorkerId(1), 10, 20);
        reg.remove(WorkerId(1), 10, 20);
        assert_eq!(reg.snapshot().len(), 1);
        let totals = reg.totals();
        assert_eq!((totals.sessions_closed, totals.rx, totals.tx), (1, 10, 20));
        assert_eq!((totals.min_mtu, totals.max_mtu), (1200, 1400));
        let seen: Vec<(bool, u64)> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| (e.connected, e.tunnel.worker.0))
            .collect();
        assert_eq!(seen, [(true, 2), (true, 1), (false, 1)]);
    }

    #[test]
    fn the_period_restarts_after_its_time_and_the_totals_do_not() {
        let reg = Registry::default();
        let start = lock(&reg.period).since;
        reg.insert(tunnel(1, 1400));
        reg.remove(WorkerId(1), 10, 20);
        reg.auth_failed();
        reg.auth_failed();
        reg.set_period_length(3600);
        let p = reg.period();
        assert_eq!(
            (p.ended.sessions_closed, p.ended.rx, p.auth_failures),
            (1, 10, 2)
        );

        let mut period = p;
        let hour = std::time::Duration::from_secs(3600);
        // Not yet, and never with 0, and not when the clock went back.
        assert_eq!(
            period.roll(3600, start + hour - std::time::Duration::from_secs(1)),
            None
        );
        assert_eq!(period.roll(0, start + hour * 1000), None);
        assert_eq!(period.roll(3600, start - hour), None);
        let ended = period.roll(3600, start + hour).unwrap();
        assert_eq!(ended.auth_failures, 2);
        assert_eq!(period, Period::new(start + hour));
        // The totals since start keep counting.
        assert_eq!(reg.totals().sessions_closed, 1);
    }
}
