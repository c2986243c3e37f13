//! One task per client connection: spawn `rocserv-worker` with the client socket and its two
//! IPC sockets, send `Start`, serve its messages (untrusted: a malformed one gets the worker
//! killed), and when the process is gone (any reason, `kill -9` included: we wait on the child)
//! release its address, tell sec-mod, and log one line.

use std::net::SocketAddr;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocserv_proto::ipc::main_worker::{ToMain, ToWorker};
use rocserv_proto::ipc::{CloseReason, WorkerId, MAX_MESSAGE};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_seqpacket::UnixSeqpacket;

use crate::connect::{self, Outcome};
use crate::ipc;
use crate::secmod::sibling_binary;
use crate::state::{DtlsRoute, Owner, Shared, UdpHandover};

/// After the worker closed its socket, how long it may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// After the worker exited, how long its last queued messages may take to read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// ocserv keeps a session this long past cookie-timeout (protocol.md §6.1).
const COOKIE_SLACK: Duration = Duration::from_secs(15);
/// UDP flows waiting to be handed to one worker; more are dropped (the client retries).
const UDP_QUEUE: usize = 4;
/// The smallest tun MTU a worker may ask for (RFC 791's 576, as ocserv).
const MIN_TUN_MTU: u16 = 576;

/// Serve one accepted connection until its worker is gone. Never fails: problems are logged.
pub async fn serve(
    shared: Arc<Shared>,
    id: WorkerId,
    client: OwnedFd,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let (main_sock, mut child) = match spawn(&shared, id, client, peer).await {
        Ok(pair) => pair,
        Err(e) => {
            log::error!("{peer}: cannot start a worker: {}", crate::error_chain(&*e));
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    shared.workers().insert(id, pid);
    log::debug!("{peer}: worker {} started as pid {pid}", id.0);

    let start = crate::settings::worker_start(
        &shared.live.get(),
        &shared.prepared,
        shared.key,
        id,
        peer,
        local,
    );
    let mut run = Run {
        local: Some(local),
        pid,
        ..Run::default()
    };
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
    run.drain(&main_sock).await;
    shared.workers().remove(&id);
    run.finish(&shared, id, peer, status).await;
}

/// The per-worker state between spawn and clean-up.
#[derive(Debug)]
struct Run {
    outcome: Option<Outcome>,
    end: Option<CloseReason>,
    rx: u64,
    tx: u64,
    superseded: bool,
    takeover: (mpsc::Sender<()>, Option<mpsc::Receiver<()>>),
    done: watch::Sender<bool>,
    /// occtl disconnect/terminate: send `Terminate`, the session ends as server-terminated.
    kick: (mpsc::Sender<()>, Option<mpsc::Receiver<()>>),
    pid: u32,
    /// UDP flows the UDP task matched to this worker's DTLS id (see [`crate::udp`]).
    udp: (
        mpsc::Sender<UdpHandover>,
        Option<mpsc::Receiver<UdpHandover>>,
    ),
    /// Our address of the client's TCP connection.
    local: Option<SocketAddr>,
    /// The data MTU granted at CONNECT: the most a worker's `TunMtu` may ask for.
    granted_mtu: Option<u16>,
    /// `session-timeout`, enforced by main too (see [`crate::session_deadline`]).
    deadline: Option<crate::session_deadline::Deadline>,
    /// Rate and content limits of the worker's messages.
    guard: crate::worker_guard::WorkerGuard,
}

impl Default for Run {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(1);
        let (udp_tx, udp_rx) = mpsc::channel(UDP_QUEUE);
        Self {
            outcome: None,
            end: None,
            rx: 0,
            tx: 0,
            superseded: false,
            takeover: (tx, Some(rx)),
            done: watch::Sender::new(false),
            kick: {
                let (tx, rx) = mpsc::channel(1);
                (tx, Some(rx))
            },
            pid: 0,
            udp: (udp_tx, Some(udp_rx)),
            local: None,
            granted_mtu: None,
            deadline: None,
            guard: crate::worker_guard::WorkerGuard::new(Instant::now()),
        }
    }
}

impl Run {
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
        let (Some(mut takeover), Some(mut udp)) = (self.takeover.1.take(), self.udp.1.take())
        else {
            return;
        };
        let Some(mut kick) = self.kick.1.take() else {
            return;
        };
        loop {
            let wake = self.deadline.map(|d| d.poll_timeout());
            tokio::select! {
                msg = ipc::recv::<ToMain>(sock, &mut buf) => match msg {
                    Ok(Some(msg)) => {
                        if let Err(why) = self.guard.check(&msg, Instant::now()) {
                            log::warn!("{peer}: killing worker {}: {why}", id.0);
                            let _ = child.start_kill();
                            return;
                        }
                        if let Err(why) = self.handle(shared, id, peer, sock, msg).await {
                            log::warn!("{peer}: killing worker {}: {why}", id.0);
                            let _ = child.start_kill();
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("{peer}: killing worker {}: {}", id.0, crate::error_chain(&e));
                        let _ = child.start_kill();
                        return;
                    }
                },
                Some(()) = kick.recv() => {
                    if ipc::send(sock, &ToWorker::Terminate, &[]).await.is_err() {
                        let _ = child.start_kill();
                    }
                }
                Some(()) = takeover.recv() => {
                    self.superseded = true;
                    if ipc::send(sock, &ToWorker::Terminate, &[]).await.is_err() {
                        let _ = child.start_kill();
                    }
                }
                Some(flow) = udp.recv() => {
                    // The descriptor is main's copy: it closes when `flow` drops right after
                    // sending, so main holds no UDP socket per worker.
                    let msg = ToWorker::Udp { first: flow.first };
                    if ipc::send(sock, &msg, &[flow.socket.as_fd()]).await.is_err() {
                        log::debug!("{peer}: cannot hand a UDP flow to worker {}", id.0);
                    }
                }
                () = crate::session_deadline::sleep(wake) => {
                    if self.session_deadline(id, peer, sock).await {
                        let _ = child.start_kill();
                        return;
                    }
                }
                _ = child.wait() => return,
            }
        }
        // The worker closed its socket: it is exiting. Give it a moment, then make sure.
        if tokio::time::timeout(EXIT_GRACE, child.wait())
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

    /// main's `session-timeout` backstop fired; `true` when the worker must be killed now.
    async fn session_deadline(
        &mut self,
        id: WorkerId,
        peer: SocketAddr,
        sock: &UnixSeqpacket,
    ) -> bool {
        use crate::session_deadline::Step;
        let Some(deadline) = self.deadline.as_mut() else {
            return false;
        };
        match deadline.handle_timeout(tokio::time::Instant::now()) {
            Step::Terminate => {
                log::info!("{peer}: session timeout: terminating worker {}", id.0);
                ipc::send(sock, &ToWorker::Terminate, &[]).await.is_err()
            }
            Step::Kill => {
                log::warn!(
                    "{peer}: worker {} outlived its session timeout; killing it",
                    id.0
                );
                true
            }
            Step::Nothing => false,
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
                let me = Owner {
                    worker: id,
                    takeover: self.takeover.0.clone(),
                    done: self.done.subscribe(),
                };
                let dtls = DtlsRoute {
                    worker: id,
                    local_ip: self.local.map_or(peer.ip(), |l| l.ip()),
                    handover: self.udp.0.clone(),
                };
                match connect::handle(shared, id, peer, req, sock, me, dtls).await {
                    Ok(mut outcome) => {
                        self.deadline = outcome.session_left.map(|left| {
                            crate::session_deadline::Deadline::new(
                                tokio::time::Instant::now(),
                                left,
                            )
                        });
                        if let Some(granted) = outcome.granted.take() {
                            self.granted_mtu = Some(granted.mtu);
                            shared.tunnels.insert(crate::tunnels::Tunnel {
                                worker: id,
                                pid: self.pid,
                                peer,
                                local: self.local.unwrap_or(peer),
                                granted,
                                connected_at: std::time::SystemTime::now(),
                                rx: 0,
                                tx: 0,
                                kick: self.kick.0.clone(),
                            });
                        }
                        self.outcome = Some(outcome);
                    }
                    Err(_) => return Err("socket failed while answering CONNECT"),
                }
            }
            ToMain::Stats { rx_bytes, tx_bytes } => {
                shared.tunnels.update_stats(id, rx_bytes, tx_bytes);
                self.rx = rx_bytes;
                self.tx = tx_bytes;
            }
            ToMain::TunMtu { mtu } => {
                if self.tun_mtu(peer, mtu)? {
                    // occtl's `mtu` shows the device's MTU now, as ocserv's does.
                    shared.tunnels.update_mtu(id, mtu);
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
        }
        Ok(())
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

    /// Release the address, close the session in sec-mod, log the one summary line.
    async fn finish(
        mut self,
        shared: &Shared,
        id: WorkerId,
        peer: SocketAddr,
        status: std::io::Result<ExitStatus>,
    ) {
        let status = status.map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string());
        shared.tunnels.remove(id, self.rx, self.tx);
        if let Some(id) = self.outcome.as_ref().and_then(|o| o.dtls_id) {
            shared.forget_dtls(&id);
        }
        let admitted = self.outcome.as_mut().and_then(|o| o.admitted.take());
        let started = admitted
            .as_ref()
            .and_then(crate::lifecycle::Admitted::started);
        let Some(Outcome {
            grant: Some(grant),
            address,
            tun_name,
            ..
        }) = self.outcome
        else {
            log::debug!("{peer}: worker {} ended without a tunnel ({status})", id.0);
            let _ = self.done.send(true);
            return;
        };
        // A superseded connection's session lives on in the newer one.
        let reason = match self.end {
            // Out of session time: the cookie dies, whatever the worker said or did not say.
            _ if self.deadline.is_some_and(|d| d.expired()) => CloseReason::ServerTerminated,
            _ if self.superseded => CloseReason::Temporary,
            Some(reason) => reason,
            None => CloseReason::Temporary,
        };
        let cookie_dies = match reason {
            CloseReason::UserDisconnect => !shared.config.persistent_cookies,
            CloseReason::ServerTerminated => true,
            CloseReason::Temporary => false,
        };
        let keep_until = (!cookie_dies).then(|| {
            Instant::now()
                + Duration::from_secs(u64::from(shared.config.cookie_timeout))
                + COOKIE_SLACK
        });
        if let Some(pool) = shared.pool().as_mut() {
            pool.release(grant.sid, keep_until);
        }
        shared.release_session(grant.sid, id);
        if let Err(e) = shared.secmod.session_close(grant.sid, reason).await {
            log::error!(
                "{peer}: cannot tell sec-mod that session {} closed: {e}",
                grant.sid
            );
        }
        let ip = address.map_or_else(|| "none".to_owned(), |a| a.to_string());
        log::info!(
            "{peer}: session ended: user {}, vpn-ip {ip}, device {}, rx {} bytes, tx {} bytes, duration {} s, reason: {reason}, worker {status}",
            grant.username,
            tun_name.as_deref().unwrap_or("none"),
            self.rx,
            self.tx,
            crate::lifecycle::duration_secs(started),
        );
        let _ = self.done.send(true);
        // After `done`: a takeover never waits for this connection's disconnect-script.
        if let Some(admitted) = admitted {
            crate::lifecycle::ended(shared, admitted, self.rx, self.tx).await;
        }
    }
}

/// Make the sockets, introduce the worker to sec-mod, and exec `rocserv-worker` with
/// fd 3 = client, 4 = main, 5 = sec-mod. main's copies of the child's ends close on return.
async fn spawn(
    shared: &Shared,
    id: WorkerId,
    client: OwnedFd,
    peer: SocketAddr,
) -> Result<(UnixSeqpacket, Child), Box<dyn std::error::Error>> {
    let (main_sock, worker_main) = ipc::pair()?;
    let (secmod_end, worker_secmod) = ipc::child_pair()?;
    shared.secmod.new_worker(id, peer, &secmod_end).await?;
    drop(secmod_end);
    let path = sibling_binary("rocserv-worker")?;
    let mut cmd = Command::new(&path);
    cmd.arg("--log-level")
        .arg(shared.log_level.to_string())
        .env_clear()
        .stdin(Stdio::null())
        // Its log goes through main (worker_log), never straight into main's stderr.
        .stderr(Stdio::piped())
        // If this task is dropped (shutdown), the worker goes with it.
        .kill_on_drop(true);
    crate::spawn::inherit_fds(
        &mut cmd,
        [
            client.as_raw_fd(),
            worker_main.as_raw_fd(),
            worker_secmod.as_raw_fd(),
        ],
    );
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot execute {}: {e}", path.display()))?;
    if let (Some(stderr), Some(pid)) = (child.stderr.take(), child.id()) {
        tokio::spawn(crate::worker_log::relay(stderr, pid, peer));
    }
    Ok((main_sock, child))
}
