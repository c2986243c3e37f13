//! One task per client connection: spawn `rocserv-worker` with the client socket and its two
//! IPC sockets, send `Start`, serve its messages (untrusted: a malformed one gets the worker
//! killed), enforce main's own deadlines (auth-timeout, idle and session timeouts from the tun
//! device's counters, the bounded wait after `Terminate`), and when the process is gone (any
//! reason, `kill -9` included: we wait on the child) release what the connection's record
//! holds, tell sec-mod, and log one line.

use std::net::SocketAddr;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocserv_proto::ipc::main_secmod::{EndCause, TunnelEnd};
use rocserv_proto::ipc::main_worker::{ToMain, ToWorker};
use rocserv_proto::ipc::{CloseReason, WorkerId, MAX_MESSAGE};
use rocserv_proto::logevent::{DisconnectReason, Event};
use tokio::sync::mpsc;
use tokio_seqpacket::UnixSeqpacket;

use crate::conn::{Conn, Stop, TERMINATE_GRACE};
use crate::connect::{self, Outcome};
use crate::ipc;
use crate::limits::IdleWatch;
use crate::secmod::sibling_binary;
use crate::spawn::Spawned as Child;
use crate::state::{DtlsRoute, Shared, UdpHandover};

/// After the worker closed its socket, how long it may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// After the worker exited, how long its last queued messages may take to read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// ocserv keeps a session this long past cookie-timeout (protocol.md §6.1).
const COOKIE_SLACK: Duration = Duration::from_secs(15);
/// UDP flows waiting to be handed to one worker; more are dropped (the client retries).
const UDP_QUEUE: usize = 4;
/// How much later than the worker's own timer main's backstops (auth, idle, session) fire, so
/// that an obedient worker always ends first and cleanly.
const TIMER_GRACE: Duration = Duration::from_secs(5);
/// The smallest tun MTU a worker may ask for (RFC 791's 576, as ocserv).
const MIN_TUN_MTU: u16 = 576;

/// Serve one accepted connection until its worker is gone. Never fails: problems are logged.
/// `conn` was reserved by the accept loop; `stops` is where [`crate::conn::Connections::terminate`]
/// requests for it arrive.
pub async fn serve(
    shared: Arc<Shared>,
    mut conn: Conn,
    stops: mpsc::Receiver<Stop>,
    client: OwnedFd,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let id = conn.worker();
    // For `net-priority`, which only the CONNECT's policy tells (the worker may not set it).
    let client_socket = client
        .try_clone()
        .map_err(|e| log::warn!("{peer}: cannot keep the client socket for net-priority: {e}"))
        .ok();
    // The user name, once the CONNECT is granted: the worker's relayed log lines carry it
    // (`worker[USER]: IP ...`, as ocserv's).
    let log_user = Arc::new(std::sync::OnceLock::new());
    let spawning = Instant::now();
    // The error is not `Send`: made a string before the next await.
    let spawned = spawn(&shared, id, client, peer, log_user.clone())
        .await
        .map_err(|e| crate::error_chain(&*e));
    shared.counters.worker_spawn.observe(spawning.elapsed());
    let (main_sock, mut child) = match spawned {
        Ok(pair) => pair,
        Err(e) => {
            log::error!("{peer}: cannot start a worker: {e}");
            conn.release(None, 0, 0);
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    conn.spawned(pid);
    log::debug!("{peer}: worker {} started as pid {pid}", id.0);

    let config = shared.live.get();
    let start = crate::settings::worker_start(
        &config,
        &shared.prepared,
        shared.live.profile(),
        shared.key,
        id,
        peer,
        local,
    );
    // Backstop of the worker's own auth deadline: not logged in by then, it is killed.
    let pre_auth_until =
        Instant::now() + Duration::from_secs(u64::from(config.auth_timeout)) + TIMER_GRACE;
    // The tunnel's timers come with the grant (the session's policy); main's backstops use
    // the same policy.
    let mut run = Run::new(conn, stops, pid, local, pre_auth_until);
    run.client_socket = client_socket;
    run.compression = start.tunnel.compression.enabled;
    run.log_user = log_user;
    if let Err(e) = ipc::send(&main_sock, &ToWorker::Start(Box::new(start)), &[]).await {
        log::error!(
            "{peer}: cannot send Start to the worker: {}",
            crate::error_chain(&e)
        );
        let _ = child.start_kill();
    } else {
        run.serve(&shared, id, peer, &main_sock, &mut child).await;
    }
    let status = child.wait().await;
    // Reaped: its pid may be reused from now on, so nobody may signal it by number any more
    // (the shutdown's SIGTERM to every live connection skips 0).
    run.conn.spawned(0);
    // The worker is gone: the client's connection must close now, not when we are done.
    run.client_socket = None;
    run.drain(&main_sock).await;
    Box::pin(run.finish(&shared, id, peer, status)).await;
}

/// main's own idle-timeout check of one tunnel (the worker's timer is the worker's word).
#[derive(Debug)]
struct IdleBackstop {
    device: String,
    ifindex: u32,
    watch: IdleWatch,
}

/// Accounting's interim updates, driven by main (not by the worker's reports, which a
/// compromised worker could stop or fake): every `stats-report-time` main reads the tun device's
/// kernel byte counters and tells sec-mod the larger of those and the worker's word.
#[derive(Debug)]
struct Accounting {
    next: Instant,
    every: Duration,
    device: String,
    ifindex: u32,
    /// The device's counters at the last reading (rx: from the client).
    device_bytes: (u64, u64),
}

impl Accounting {
    /// `stats-report-time` 0 means ocserv's 60 s; at least one a second.
    fn every(secs: u32) -> Duration {
        Duration::from_secs(u64::from(if secs == 0 { 60 } else { secs.max(1) }))
    }

    /// The bytes to account: the kernel's count, or the worker's if that is higher (the device
    /// is gone, or counts a reused name's traffic from 0).
    fn bytes(&self, worker: (u64, u64)) -> (u64, u64) {
        (
            self.device_bytes.0.max(worker.0),
            self.device_bytes.1.max(worker.1),
        )
    }
}

/// The per-worker state between spawn and clean-up.
#[derive(Debug)]
struct Run {
    /// Everything main holds for this connection; released once in [`Run::finish`].
    conn: Conn,
    stops: Option<mpsc::Receiver<Stop>>,
    /// Why main ended the connection, once it did (the first reason stands).
    stop: Option<Stop>,
    /// `Terminate` was sent: the worker is killed if still there at this time.
    kill_at: Option<Instant>,
    /// Not logged in by then: killed (`auth-timeout` backstop).
    pre_auth_until: Option<Instant>,
    idle: Option<IdleBackstop>,
    /// Interim updates to sec-mod, once the tunnel is accounted there.
    accounting: Option<Accounting>,
    outcome: Option<Outcome>,
    end: Option<CloseReason>,
    rx: u64,
    tx: u64,
    pid: u32,
    /// UDP flows the UDP task matched to this worker's DTLS id (see [`crate::udp`]).
    udp: (
        mpsc::Sender<UdpHandover>,
        Option<mpsc::Receiver<UdpHandover>>,
    ),
    /// Our address of the client's TCP connection.
    local: SocketAddr,
    /// The data MTU granted at CONNECT: the most a worker's `TunMtu` may ask for.
    granted_mtu: Option<u16>,
    /// Rate and content limits of the worker's messages.
    guard: crate::worker_guard::WorkerGuard,
    /// main's duplicate of the client's TCP socket, kept until the CONNECT is answered, to set
    /// `net-priority` on it (crate::net_priority); closed then, and when the worker is gone.
    client_socket: Option<OwnedFd>,
    /// Pacing and checks of the worker's state reports, and the UDP flows handed over.
    state_gate: crate::tunnel_state::StateGate,
    /// `compression` was on when the worker started: it may report compression.
    compression: bool,
    /// The granted user's name for the worker's relayed log lines (crate::worker_log).
    log_user: Arc<std::sync::OnceLock<String>>,
}

impl Run {
    fn new(
        conn: Conn,
        stops: mpsc::Receiver<Stop>,
        pid: u32,
        local: SocketAddr,
        pre_auth_until: Instant,
    ) -> Self {
        let (udp_tx, udp_rx) = mpsc::channel(UDP_QUEUE);
        Self {
            conn,
            stops: Some(stops),
            stop: None,
            kill_at: None,
            pre_auth_until: Some(pre_auth_until),
            idle: None,
            accounting: None,
            outcome: None,
            end: None,
            rx: 0,
            tx: 0,
            pid,
            udp: (udp_tx, Some(udp_rx)),
            local,
            granted_mtu: None,
            guard: crate::worker_guard::WorkerGuard::new(Instant::now()),
            client_socket: None,
            state_gate: crate::tunnel_state::StateGate::new(Instant::now()),
            compression: false,
            log_user: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// The earliest of main's own deadlines (not the kill), if any.
    fn next_timer(&self) -> Option<Instant> {
        let idle = self.idle.as_ref().map(|i| i.watch.next_check());
        let session = self.conn.session_deadline().filter(|_| self.stop.is_none());
        let accounting = self.accounting.as_ref().map(|a| a.next);
        [self.pre_auth_until, session, idle, accounting]
            .into_iter()
            .flatten()
            .min()
    }

    /// The worker broke a rule of main's: kill it now, and let its session end as
    /// server-terminated (its own `SessionEnd`, if any, is not believed).
    fn violation(&mut self, peer: SocketAddr, child: &mut Child, why: &str) {
        log::warn!("{peer}: killing worker {}: {why}", self.conn.worker().0);
        self.stop = after_violation(self.stop);
        let _ = child.start_kill();
    }

    /// End the connection for `why`: `Terminate` now, SIGKILL at [`TERMINATE_GRACE`].
    async fn stop(&mut self, why: Stop, peer: SocketAddr, sock: &UnixSeqpacket, child: &mut Child) {
        if self.stop.is_some() {
            return;
        }
        log::info!(
            "{peer}: ending worker {} (pid {}): {why}",
            self.conn.worker().0,
            self.pid
        );
        self.stop = Some(why);
        self.kill_at = Some(Instant::now() + TERMINATE_GRACE);
        let sent =
            tokio::time::timeout(TERMINATE_GRACE, ipc::send(sock, &ToWorker::Terminate, &[]));
        if !matches!(sent.await, Ok(Ok(()))) {
            let _ = child.start_kill();
        }
    }

    /// One of main's own deadlines passed. `true` = the worker was killed.
    async fn on_timer(
        &mut self,
        shared: &Shared,
        id: WorkerId,
        peer: SocketAddr,
        sock: &UnixSeqpacket,
        child: &mut Child,
    ) -> bool {
        let now = Instant::now();
        if self.pre_auth_until.is_some_and(|t| t <= now) {
            self.pre_auth_until = None;
            if self.conn.is_pre_auth() {
                log::warn!(
                    "{peer}: killing worker {}: not logged in within auth-timeout",
                    self.conn.worker().0
                );
                let _ = child.start_kill();
                return true;
            }
        }
        if self.conn.session_deadline().is_some_and(|t| t <= now) {
            self.conn.clear_session_deadline();
            self.stop(Stop::SessionTimeout, peer, sock, child).await;
        }
        let idle = match self.idle.as_mut() {
            Some(i) if i.watch.next_check() <= now => {
                let packets = crate::tun_stats::packets(&i.device, i.ifindex);
                i.watch.sample(packets, now)
            }
            Some(_) | None => false,
        };
        if idle {
            self.idle = None;
            self.stop(Stop::IdleTimeout, peer, sock, child).await;
        }
        self.interim(shared, id, peer, now).await;
        false
    }

    /// Serve messages until the worker closes its socket, sends garbage, or exits.
    async fn serve(
        &mut self,
        shared: &Shared,
        id: WorkerId,
        peer: SocketAddr,
        sock: &UnixSeqpacket,
        child: &mut Child,
    ) {
        let mut buf = Box::new([0u8; MAX_MESSAGE]);
        let (Some(mut stops), Some(mut udp)) = (self.stops.take(), self.udp.1.take()) else {
            return;
        };
        loop {
            let kill_at = self.kill_at;
            let timer = self.next_timer();
            tokio::select! {
                msg = ipc::recv::<ToMain>(sock, &mut buf) => match msg {
                    Ok(Some(msg)) => {
                        if let Err(why) = self.guard.check(&msg, Instant::now()) {
                            self.violation(peer, child, &why.to_string());
                            return;
                        }
                        // A CONNECT may wait for a connect-script for a while: if the worker dies
                        // meanwhile, stop waiting (dropping it kills the script) and clean up.
                        let handled = tokio::select! {
                            handled = Box::pin(self.handle(shared, id, peer, sock, msg)) => Some(handled),
                            _ = child.wait() => None,
                        };
                        match handled {
                            Some(Ok(())) => {}
                            Some(Err(why)) => {
                                self.violation(peer, child, why);
                                return;
                            }
                            None => {
                                                log::info!(
                                    "{peer}: worker {} exited while its message was handled; \
                                     abandoning it",
                                    id.0
                                );
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.violation(peer, child, &crate::error_chain(&e));
                        return;
                    }
                },
                Some(why) = stops.recv() => Box::pin(self.stop(why, peer, sock, child)).await,
                () = sleep_until(kill_at), if kill_at.is_some() => {
                    log::warn!(
                        "{peer}: worker {} did not exit within {TERMINATE_GRACE:?} of Terminate; killing it",
                        id.0
                    );
                    let _ = child.start_kill();
                    return;
                }
                () = sleep_until(timer), if timer.is_some() => {
                    if Box::pin(self.on_timer(shared, id, peer, sock, child)).await {
                        return;
                    }
                }
                Some(flow) = udp.recv() => {
                    // The descriptor is main's copy: it closes when `flow` drops right after
                    // sending, so main holds no UDP socket per worker.
                    let priority = self
                        .outcome
                        .as_ref()
                        .and_then(|o| o.policy.as_ref())
                        .and_then(|p| p.net_priority);
                    if let Some(priority) = priority {
                        if let Err(e) = crate::net_priority::apply(&flow.socket, priority) {
                            log::warn!("{peer}: cannot set net-priority {priority:?} on UDP: {e}");
                        }
                    }
                    let msg = ToWorker::Udp { first: flow.first };
                    let from = flow.peer;
                    // Bounded: a worker that stops reading its channel must not hold this loop
                    // (and with it the kill, occtl and the backstops) in a send for ever.
                    let fds = [flow.socket.as_fd()];
                    match tokio::time::timeout(TERMINATE_GRACE, ipc::send(sock, &msg, &fds)).await {
                        Ok(Ok(())) => self.state_gate.handed_over(from),
                        Ok(Err(_)) => {
                            log::debug!("{peer}: cannot hand a UDP flow to worker {}", id.0);
                        }
                        Err(_) => {
                            self.violation(peer, child, "it does not read its channel from main");
                            return;
                        }
                    }
                }
                _ = child.wait() => return,
            }
        }
        // The worker closed its socket: it is exiting. Give it a moment (no more than what is
        // left of a Terminate's grace), then make sure.
        let grace = Instant::now() + EXIT_GRACE;
        let until = self.kill_at.map_or(grace, |k| k.min(grace));
        if tokio::time::timeout_at(until.into(), child.wait())
            .await
            .is_err()
        {
            log::warn!(
                "{peer}: worker {} did not exit after closing its socket; killing it",
                id.0
            );
            let _ = child.start_kill();
        }
    }

    /// One message from the worker. An `Err` names a protocol violation.
    async fn handle(
        &mut self,
        shared: &Shared,
        id: WorkerId,
        peer: SocketAddr,
        sock: &UnixSeqpacket,
        msg: ToMain,
    ) -> Result<(), &'static str> {
        match msg {
            ToMain::Connect(req) => {
                if self.outcome.is_some() {
                    return Err("second CONNECT on one connection");
                }
                let dtls = DtlsRoute {
                    worker: id,
                    local_ip: self.local.ip(),
                    handover: self.udp.0.clone(),
                };
                let answered =
                    connect::handle(shared, id, peer, req, sock, &mut self.conn, dtls).await;
                // Granted or not, main's copy of the client socket is not needed any more.
                let client_socket = self.client_socket.take();
                match answered {
                    Ok(mut outcome) => {
                        let priority = outcome.policy.as_ref().and_then(|p| p.net_priority);
                        if let (Some(priority), Some(socket)) = (priority, &client_socket) {
                            if let Err(e) = crate::net_priority::apply(socket, priority) {
                                log::warn!("{peer}: cannot set net-priority {priority:?}: {e}");
                            }
                        }
                        if let (Some(bytes), Some(socket)) = (outcome.send_buffer, &client_socket) {
                            // output-buffer: a small buffer keeps latency low; it also turns
                            // off the kernel's send buffer autotuning for this socket.
                            let set = nix::sys::socket::setsockopt(
                                socket,
                                nix::sys::socket::sockopt::SndBuf,
                                &bytes,
                            );
                            if let Err(e) = set {
                                log::warn!("{peer}: cannot set output-buffer ({bytes} bytes): {e}");
                            }
                        }
                        if let Some(granted) = outcome.granted.take() {
                            self.granted(&outcome);
                            self.granted_mtu = Some(granted.mtu);
                            self.conn.register_tunnel(crate::tunnels::Tunnel {
                                worker: id,
                                pid: self.pid,
                                peer,
                                local: self.local,
                                granted,
                                connected_at: std::time::SystemTime::now(),
                                rx: 0,
                                tx: 0,
                                channels: None,
                                udp_peer: None,
                            });
                        }
                        if let Some(grant) = &outcome.grant {
                            let _ = self.log_user.set(grant.username.clone());
                        }
                        self.outcome = Some(outcome);
                    }
                    Err(_) => return Err("socket failed while answering CONNECT"),
                }
            }
            ToMain::Stats { rx_bytes, tx_bytes } => {
                shared.conns.tunnels.update_stats(id, rx_bytes, tx_bytes);
                self.rx = rx_bytes;
                self.tx = tx_bytes;
                // Accounting's interim updates come from main's own timer (`interim`): a
                // worker can neither stop them nor send them faster.
            }
            ToMain::TunMtu { mtu } => {
                if self.tun_mtu(peer, mtu)? {
                    // occtl's `mtu` shows the device's MTU now, as ocserv's does.
                    shared.conns.tunnels.update_mtu(id, mtu);
                }
            }
            ToMain::SessionEnd {
                reason,
                rx_bytes,
                tx_bytes,
            } => {
                self.end = Some(reason);
                self.rx = rx_bytes;
                self.tx = tx_bytes;
            }
            ToMain::TunnelState(state) => {
                let allowed = crate::tunnel_state::Allowed {
                    compression: self.compression,
                    dtls: self.outcome.as_ref().is_some_and(|o| o.dtls_offered),
                };
                match self.state_gate.admit(&state, allowed, Instant::now()) {
                    Ok((view, udp_peer)) => {
                        shared.conns.tunnels.update_channels(id, view, udp_peer);
                    }
                    Err(Some(why)) => {
                        log::warn!("{peer}: worker {}: state report ignored: {why}", id.0);
                    }
                    // Same burst: already logged.
                    Err(None) => {}
                }
            }
        }
        Ok(())
    }

    /// Accounting's interim update, when it is due: the device's counters, read by main.
    async fn interim(&mut self, shared: &Shared, id: WorkerId, peer: SocketAddr, now: Instant) {
        let Some(acct) = self.accounting.as_mut().filter(|a| a.next <= now) else {
            return;
        };
        acct.next = now + acct.every;
        if crate::tun_stats::ifindex_is(&acct.device, acct.ifindex) {
            if let Some(bytes) = crate::tun_stats::bytes(&acct.device) {
                acct.device_bytes = (
                    acct.device_bytes.0.max(bytes.0),
                    acct.device_bytes.1.max(bytes.1),
                );
            }
        }
        let (rx, tx) = acct.bytes((self.rx, self.tx));
        let Some(sid) = self
            .outcome
            .as_ref()
            .and_then(|o| o.grant.as_ref())
            .map(|g| g.sid)
        else {
            return;
        };
        if let Err(e) = shared.secmod.session_stats(sid, id, rx, tx).await {
            log::debug!("{peer}: stats not sent to sec-mod: {e}");
        }
    }

    /// The tunnel was granted: main's own session and idle deadlines start now.
    fn granted(&mut self, outcome: &Outcome) {
        self.pre_auth_until = None;
        let now = Instant::now();
        // What is left of the session since login (sec-mod's age; a cookie reconnect does not
        // restart it), plus a grace for the worker to end it itself first.
        if let Some(left) = outcome.session_left {
            self.conn
                .set_session_deadline(now + left + crate::session_deadline::WORKER_FIRST);
        }
        let idle = outcome
            .policy
            .as_ref()
            .and_then(|p| p.idle_timeout_for(outcome.mobile));
        self.idle = match (idle, &outcome.tun_name, outcome.tun_ifindex) {
            (Some(secs), Some(device), Some(ifindex)) if secs > 0 => Some(IdleBackstop {
                device: device.clone(),
                ifindex,
                watch: IdleWatch::new(Duration::from_secs(u64::from(secs)) + TIMER_GRACE, now),
            }),
            _ => None,
        };
        let report = outcome.policy.as_ref().map(|p| p.stats_report_time);
        self.accounting = match (
            outcome.accounted,
            report,
            &outcome.tun_name,
            outcome.tun_ifindex,
        ) {
            (true, Some(secs), Some(device), Some(ifindex)) => {
                let every = Accounting::every(secs);
                Some(Accounting {
                    next: now + every,
                    every,
                    device: device.clone(),
                    ifindex,
                    device_bytes: (0, 0),
                })
            }
            _ => None,
        };
    }

    /// The worker's DTLS path MTU changed (`try-mtu-discovery`): set its tun device's MTU. The
    /// value is the worker's word, so it must lie between the IPv4 minimum and what was
    /// granted (ocserv checks 576 up to the configured MTU); anything else is a violation.
    /// `Ok(true)` when the device took it.
    fn tun_mtu(&self, peer: SocketAddr, mtu: u16) -> Result<bool, &'static str> {
        let device = self.outcome.as_ref().and_then(|o| o.tun_name.as_deref());
        let ifindex = self.outcome.as_ref().and_then(|o| o.tun_ifindex);
        let (Some(granted), Some(device), Some(ifindex)) = (self.granted_mtu, device, ifindex)
        else {
            return Err("TunMtu without a tunnel");
        };
        if !(MIN_TUN_MTU..=granted).contains(&mtu) {
            return Err("TunMtu outside 576 and the granted MTU");
        }
        // By index: the name may belong to another user's device by now.
        match crate::tun_mtu::set_by_index(ifindex, mtu) {
            Ok(()) => {
                log::debug!("{peer}: {device}: MTU set to {mtu}");
                Ok(true)
            }
            Err(e) => {
                log::warn!("{peer}: {device}: cannot set the MTU to {mtu}: {e}");
                Ok(false)
            }
        }
    }

    /// Read what the exited worker queued before it died (typically `SessionEnd`).
    async fn drain(&mut self, sock: &UnixSeqpacket) {
        let mut buf = Box::new([0u8; MAX_MESSAGE]);
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while let Ok(Ok(Some(msg))) =
            tokio::time::timeout_at(deadline, ipc::recv::<ToMain>(sock, &mut buf)).await
        {
            if let ToMain::SessionEnd {
                reason,
                rx_bytes,
                tx_bytes,
            } = msg
            {
                self.end = Some(reason);
                self.rx = rx_bytes;
                self.tx = tx_bytes;
            }
        }
    }

    /// Release everything the connection held (once, through its record), close the session
    /// in sec-mod, log the one summary line, run the disconnect-script.
    async fn finish(
        mut self,
        shared: &Shared,
        id: WorkerId,
        peer: SocketAddr,
        status: std::io::Result<ExitStatus>,
    ) {
        let status = status.map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string());
        let admitted = self.outcome.as_mut().and_then(|o| o.admitted.take());
        // The worker (and with it the tun device) is gone: the rx shaper's device goes now,
        // before the session's end is logged.
        drop(self.outcome.as_mut().and_then(|o| o.rx_shaper.take()));
        let started = admitted
            .as_ref()
            .and_then(crate::lifecycle::Admitted::started);
        let reason = close_reason(self.stop, self.end, shared.config.persistent_cookies);
        let cookie_dies = match reason {
            CloseReason::UserDisconnect => !shared.config.persistent_cookies,
            CloseReason::ServerTerminated => true,
            CloseReason::Temporary => false,
        };
        let Some(Outcome {
            grant: Some(grant),
            address,
            tun_name,
            accounted,
            ..
        }) = self.outcome.take()
        else {
            // No tunnel; but sec-mod may have opened the session before CONNECT failed (the
            // worker's socket broke while main answered): close it, or it stays active.
            if let Some((sid, secmod)) = self.conn.release(None, self.rx, self.tx) {
                if let Err(e) = secmod.session_close(sid, reason, None).await {
                    log::error!("{peer}: cannot tell sec-mod that session {sid} closed: {e}");
                }
            }
            log::debug!("{peer}: worker {} ended without a tunnel ({status})", id.0);
            return;
        };
        let keep_until = (!cookie_dies).then(|| {
            Instant::now()
                + Duration::from_secs(u64::from(shared.config.cookie_timeout))
                + COOKIE_SLACK
        });
        // The worker's last word, or the device's last reading if that is higher.
        let (rx, tx) = self
            .accounting
            .as_ref()
            .map_or((self.rx, self.tx), |a| a.bytes((self.rx, self.tx)));
        let end = accounted.then(|| {
            (
                id,
                TunnelEnd {
                    rx,
                    tx,
                    duration_secs: crate::lifecycle::duration_secs(started),
                    cause: end_cause(self.stop, self.end),
                },
            )
        });
        if let Some((sid, secmod)) = self.conn.release(keep_until, self.rx, self.tx) {
            if let Err(e) = secmod.session_close(sid, reason, end).await {
                log::error!("{peer}: cannot tell sec-mod that session {sid} closed: {e}");
            }
        }
        let ip = address.map_or_else(|| "none".to_owned(), |a| a.to_string());
        crate::logger::event(
            log::Level::Info,
            &Event::Disconnected {
                user: &grant.username,
                peer,
                reason: ocserv_reason(end_cause(self.stop, self.end)),
                // The accounted values (also what sec-mod's accounting got), not only the
                // worker's word: a compromised worker cannot hide traffic from the log.
                rx,
                tx,
            },
        );
        log::info!(
            "{peer}: session ended: user {}, vpn-ip {ip}, device {}, rx {rx} bytes, tx {tx} bytes, duration {} s, reason: {reason}, worker {status}",
            grant.username,
            tun_name.as_deref().unwrap_or("none"),
            crate::lifecycle::duration_secs(started),
        );
        // After the release: a takeover never waits for this connection's disconnect-script.
        if let Some(admitted) = admitted {
            crate::lifecycle::ended(shared, admitted, self.rx, self.tx).await;
        }
    }
}

/// The `reason:` of ocserv's `user disconnected` line for how the tunnel ended (ocserv words
/// an administrator's disconnect `server disconnected`, seen with occtl against 1.1.6).
fn ocserv_reason(cause: EndCause) -> DisconnectReason {
    match cause {
        EndCause::UserRequest => DisconnectReason::UserDisconnected,
        EndCause::LostCarrier | EndCause::Takeover => DisconnectReason::ClientDisconnected,
        EndCause::IdleTimeout => DisconnectReason::IdleTimeout,
        EndCause::SessionTimeout => DisconnectReason::SessionTimeout,
        EndCause::AdminReset | EndCause::Policy | EndCause::ServerShutdown => {
            DisconnectReason::ServerDisconnected
        }
        EndCause::Violation => DisconnectReason::Error,
    }
}

/// main's reason to stop a worker once it broke a rule. A superseded connection's session lives
/// on in the newer connection: whatever the old worker does while it is being ended (its socket
/// resets when it exits with main's `Terminate` unread) must not end that session too.
fn after_violation(stop: Option<Stop>) -> Option<Stop> {
    match stop {
        Some(Stop::Takeover) => Some(Stop::Takeover),
        _ => Some(Stop::Violation),
    }
}

/// Why the tunnel ended, for accounting: main's reason, else the worker's word.
fn end_cause(stop: Option<Stop>, end: Option<CloseReason>) -> EndCause {
    match stop {
        Some(Stop::Admin) => EndCause::AdminReset,
        Some(Stop::Takeover) => EndCause::Takeover,
        Some(Stop::IdleTimeout) => EndCause::IdleTimeout,
        Some(Stop::SessionTimeout) => EndCause::SessionTimeout,
        Some(Stop::Violation) => EndCause::Violation,
        Some(Stop::Policy) => EndCause::Policy,
        None => match end {
            Some(CloseReason::UserDisconnect) => EndCause::UserRequest,
            // The worker ends a session itself only when its time is up.
            Some(CloseReason::ServerTerminated) => EndCause::SessionTimeout,
            Some(CloseReason::Temporary) | None => EndCause::LostCarrier,
        },
    }
}

/// How a session ends: main's reason wins over the worker's word (`end`, its `SessionEnd`); a
/// superseded connection's session lives on in the newer one.
/// With `persistent-cookies` an administrator's disconnect keeps the cookie, as ocserv does
/// (only `occtl terminate` invalidates it).
fn close_reason(stop: Option<Stop>, end: Option<CloseReason>, persistent: bool) -> CloseReason {
    match stop {
        Some(Stop::Takeover) => CloseReason::Temporary,
        Some(Stop::Admin) if persistent => CloseReason::UserDisconnect,
        Some(Stop::Admin | Stop::SessionTimeout | Stop::Violation | Stop::Policy) => {
            CloseReason::ServerTerminated
        }
        Some(Stop::IdleTimeout) | None => end.unwrap_or(CloseReason::Temporary),
    }
}

/// Sleep until `at`; never, without one (the `select!` arm is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Make the sockets, introduce the worker to sec-mod, and exec `rocserv-worker` with
/// fd 3 = client, 4 = main, 5 = sec-mod. main's copies of the child's ends close on return.
async fn spawn(
    shared: &Shared,
    id: WorkerId,
    client: OwnedFd,
    peer: SocketAddr,
    log_user: Arc<std::sync::OnceLock<String>>,
) -> Result<(UnixSeqpacket, Child), Box<dyn std::error::Error>> {
    let (main_sock, worker_main) = ipc::pair()?;
    let (secmod_end, worker_secmod) = ipc::child_pair()?;
    shared.secmod.new_worker(id, peer, &secmod_end).await?;
    drop(secmod_end);
    let path = sibling_binary("rocserv-worker")?;
    let level = shared.log_level.to_string();
    let main_pid = std::process::id().to_string();
    // Its log goes through main (worker_log), never straight into main's stderr; if this task
    // is dropped (shutdown), the worker goes with it (`Spawned`'s drop).
    let (child, stderr) = crate::spawn::spawn_vfork(
        &path,
        &["--log-level", &level, "--main-pid", &main_pid],
        [
            client.as_raw_fd(),
            worker_main.as_raw_fd(),
            worker_secmod.as_raw_fd(),
        ],
    )
    .map_err(|e| format!("cannot execute {}: {e}", path.display()))?;
    if let Some(pid) = child.id() {
        let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr)?;
        tokio::spawn(crate::worker_log::relay(stderr, pid, peer, log_user));
    }
    Ok((main_sock, child))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<F: std::future::Future>(
        _: impl FnOnce(Arc<Shared>, Conn, mpsc::Receiver<Stop>, OwnedFd, SocketAddr, SocketAddr) -> F,
    ) -> usize {
        size_of::<F>()
    }

    /// Each live connection keeps its task's future in main's heap for the whole session: the
    /// rarely live inner futures (message handler, stop, timers, the end) are boxed so that it
    /// does not carry their space (18.3 kB in a release build before, 4.3 kB after).
    #[test]
    fn a_connection_task_stays_small() {
        let size = future_size(serve);
        assert!(size <= 8 * 1024, "serve's future is {size} bytes");
    }

    /// A worker that reports less than the kernel counted (or nothing) does not lower what is
    /// accounted (quotas, RADIUS octets, session records); the reverse (a device that was gone)
    /// keeps the worker's count.
    #[test]
    fn accounting_takes_the_kernels_count_over_a_lower_word() {
        let acct = Accounting {
            next: Instant::now(),
            every: Accounting::every(0),
            device: "vpns0".into(),
            ifindex: 1,
            device_bytes: (50_000, 70_000),
        };
        assert_eq!(acct.bytes((0, 0)), (50_000, 70_000));
        assert_eq!(acct.bytes((60_000, 10)), (60_000, 70_000));
        assert_eq!(Accounting::every(0), Duration::from_secs(60));
        assert_eq!(Accounting::every(5), Duration::from_secs(5));
    }

    /// Seen in the cluster tests: a takeover's old worker exited with `Terminate` unread, main's
    /// read of its socket failed, and the session (live in the new connection) was deleted.
    #[test]
    fn a_taken_over_workers_last_error_keeps_the_session() {
        let stop = after_violation(Some(Stop::Takeover));
        assert_eq!(
            close_reason(stop, None, false),
            CloseReason::Temporary,
            "the newer connection's cookie stays valid"
        );
        assert!(matches!(after_violation(None), Some(Stop::Violation)));
        assert!(matches!(
            after_violation(Some(Stop::IdleTimeout)),
            Some(Stop::Violation)
        ));
    }

    #[test]
    fn mains_reason_wins_over_the_workers_word() {
        let worker_says = Some(CloseReason::Temporary);
        // A worker killed for breaking main's rules cannot keep its cookie alive by claiming a
        // temporary end.
        assert_eq!(
            close_reason(Some(Stop::Violation), worker_says, true),
            CloseReason::ServerTerminated
        );
        assert_eq!(
            close_reason(Some(Stop::Admin), worker_says, false),
            CloseReason::ServerTerminated
        );
        // persistent-cookies: a disconnect keeps the cookie.
        assert_eq!(
            close_reason(Some(Stop::Admin), worker_says, true),
            CloseReason::UserDisconnect
        );
        assert_eq!(
            close_reason(
                Some(Stop::Takeover),
                Some(CloseReason::UserDisconnect),
                false
            ),
            CloseReason::Temporary
        );
        assert_eq!(
            close_reason(None, Some(CloseReason::UserDisconnect), false),
            CloseReason::UserDisconnect
        );
        assert_eq!(close_reason(None, None, false), CloseReason::Temporary);
    }
}
