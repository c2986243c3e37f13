//! The running server: listener, accept loop, signals, shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_proto::config::Config;
use rocserv_proto::ipc::WorkerId;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

use crate::counters::Counters;
use crate::limits::Pacer;
use crate::secmod::Supervisor;
use crate::state::Shared;

/// How long workers and sec-mod get to exit after SIGTERM at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Bind `listen-host:tcp-port`; without `listen-host`, `[::]` (dual-stack) if the system has
/// IPv6, else `0.0.0.0`. Synchronous (socket, bind, listen), so that it can run inside
/// `listen-netns` ([`crate::service::Netns::within`]) without an await in between.
pub fn bind(config: &Config) -> std::io::Result<std::net::TcpListener> {
    let port = config.tcp_port;
    match config.listen_host {
        Some(host) => listen(SocketAddr::new(host, port)),
        None => match listen(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
            Ok(l) => Ok(l),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            }
            Err(e) => Err(e),
        },
    }
}

/// What tokio's `TcpListener::bind` does (SO_REUSEADDR, backlog 1024), non-blocking.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.cloexec(),
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT: exit 0.
    Signal,
    /// sec-mod could not be restarted, or the listener failed: exit 1.
    Failure,
}

/// Longest `server-drain-ms` honoured, whatever the configuration says (a supervisor's stop
/// timeout should be longer still).
const MAX_DRAIN: Duration = Duration::from_secs(24 * 3600);

/// Accept connections until a signal or a fatal error, then shut everything down.
pub async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut secmod: Supervisor,
    pid_file: Option<PathBuf>,
    notifier: &crate::service::Notifier,
) -> Stop {
    // Bandwidth shapers' devices a killed predecessor left (none exist for a live tunnel yet).
    crate::rate_limit::remove_stale();
    let mut workers = JoinSet::new();
    let mut next_id = 0u64;
    let mut listener = Some(listener);
    let stop = match accept_loop(
        &shared,
        &mut listener,
        &mut secmod,
        &mut workers,
        &mut next_id,
        notifier,
    )
    .await
    {
        Ok(stop) => stop,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            Stop::Failure
        }
    };
    drop(listener);
    // Said already when a drain began; saying it twice changes nothing for systemd.
    notifier.stopping("stopping: ending the tunnels");
    shutdown(&shared, secmod, workers).await;
    if let Some(path) = pid_file {
        if let Err(e) = std::fs::remove_file(&path) {
            log::warn!("cannot remove pid file {}: {e}", path.display());
        }
    }
    stop
}

/// A stop request (signal or occtl): `Some` = stop now; `None` = `server-drain-ms` began (the
/// listener is closed, systemd told, the tunnels stay until `drain` passes). A request during
/// the drain ends it.
fn stop_requested(
    shared: &Shared,
    why: &str,
    listener: &mut Option<TcpListener>,
    drain: &mut Option<tokio::time::Instant>,
    notifier: &crate::service::Notifier,
) -> Option<Stop> {
    if drain.is_some() {
        log::info!("{why}: ending the drain early; shutting down");
        shutdown_line();
        return Some(Stop::Signal);
    }
    let ms = shared.live.get().server_drain_ms;
    if ms == 0 {
        log::info!("{why}: shutting down");
        shutdown_line();
        return Some(Stop::Signal);
    }
    let wait = Duration::from_millis(u64::from(ms)).min(MAX_DRAIN);
    // Closing our listener makes the port refuse connections (unless systemd holds it: socket
    // activation), which is what load balancers' health checks see.
    *listener = None;
    // Balancers polling `GET /health` stop sending new clients; the other nodes hear it too.
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if shared.cluster.is_some() {
        let secmod = Arc::clone(&shared.secmod);
        tokio::spawn(async move {
            use rocserv_proto::ipc::cluster::ToCluster;
            if let Err(e) = secmod.cluster_notice(ToCluster::Draining).await {
                log::warn!("cluster: cannot tell sec-mod that this node drains: {e}");
            }
        });
    }
    log::info!("{why}: termination request received; stopping new connections");
    log::info!("termination request received; waiting {ms} ms");
    notifier.stopping(&format!("draining: tunnels end in {ms} ms"));
    *drain = Some(tokio::time::Instant::now() + wait);
    None
}

/// `listener.accept()`, or never when the listener is closed (draining).
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    shared: &Arc<Shared>,
    listener: &mut Option<TcpListener>,
    secmod: &mut Supervisor,
    workers: &mut JoinSet<()>,
    next_id: &mut u64,
    notifier: &crate::service::Notifier,
) -> std::io::Result<Stop> {
    let mut drain: Option<tokio::time::Instant> = None;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let client = Arc::clone(&shared.secmod);
    // Serves sec-mod's messages and restarts it when it dies; ends only if that fails.
    let secmod_reader = secmod.run(
        &client,
        |peer, points| {
            // protocol.md §1.8: sec-mod reports each wrong password with its points.
            Counters::add(&shared.counters.auth_failures, 1);
            shared.conns.tunnels.auth_failed();
            shared.bans.add_points(peer.to_canonical(), points);
        },
        |sid, why| {
            // A quota ran out or the RADIUS server said so: end the tunnel as occtl would.
            match shared.conns.worker_of_session(sid) {
                Some(worker) if shared.conns.terminate(worker, crate::conn::Stop::Policy) => {
                    log::info!("session {sid}: ending its tunnel: {}", why.escape_debug());
                }
                Some(_) | None => {
                    log::debug!("session {sid}: no tunnel to end ({})", why.escape_debug())
                }
            }
        },
    );
    tokio::pin!(secmod_reader);
    let mut pacer = Pacer::default();
    let mut refusals = Refusals::default();
    // A burst's end gives its freed memory back at once (rt::memory::TrimTrigger).
    let mut trim = rocserv_rt::memory::TrimTrigger::new();
    // listen-proxy-proto (fixed at start): connections whose header is being read, and the
    // log pacing of the ones refused for their header.
    let proxied = shared.config.listen_proxy_proto;
    shared
        .conns
        .tunnels
        .set_period_length(shared.config.server_stats_reset_time);
    let mut headers = JoinSet::new();
    let mut header_refusals = Refusals::default();
    loop {
        let paused = pacer.paused_until(std::time::Instant::now());
        // max-pre-auth-clients reached: new clients wait in the listen backlog (a login storm
        // larger than the cap is served as slots free) instead of being closed at accept.
        // Without a PROXY header to read, nothing is learnt by accepting first.
        let full = !proxied
            && shared
                .conns
                .pre_auth_full(shared.live.get().max_pre_auth_clients);
        tokio::select! {
            accepted = accept_on(listener.as_ref()), if paused.is_none() && listener.is_some() && !full => match accepted {
                Ok((stream, peer)) => {
                    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    let config = shared.live.get();
                    let interval = Duration::from_millis(u64::from(config.rate_limit_ms));
                    let now = std::time::Instant::now();
                    pacer.accepted(now, interval);
                    if !proxied {
                        admit(shared, workers, next_id, &mut refusals, stream, Arrival::direct(peer));
                        continue;
                    }
                    // listen-proxy-proto: `peer` is the balancer. Its header names the client;
                    // read on a task of its own, bounded in time and in number, so a slow or
                    // silent balancer connection never holds up this loop.
                    let cap = match usize::try_from(config.max_pre_auth_clients) {
                        Ok(0) | Err(_) => crate::proxy_header::DEFAULT_IN_FLIGHT,
                        Ok(n) => n,
                    };
                    if headers.len() >= cap {
                        header_refusals.refused(peer, "too many PROXY protocol headers being read", now);
                        Counters::add(&shared.counters.rejected, 1);
                        continue;
                    }
                    let Ok(local) = stream.local_addr() else { continue };
                    headers.spawn(async move {
                        let mut stream = stream;
                        let read = crate::proxy_header::read(&mut stream, peer, local).await;
                        (stream, peer, read)
                    });
                }
                // EMFILE and friends: log and keep serving, but do not spin.
                Err(e) => {
                    log::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = workers.join_next(), if !workers.is_empty() => {
                // The ended connection's task is freed by now.
                if trim.update(workers.len()) {
                    rocserv_rt::memory::trim();
                }
            }
            // A pre-auth slot freed (a login, or a connection gone); a reload may also have
            // raised the cap, hence the periodic look.
            () = shared.conns.pre_auth_room(), if full => {}
            () = tokio::time::sleep(Duration::from_secs(1)), if full => {}
            Some(read) = headers.join_next(), if !headers.is_empty() => match read {
                Ok((stream, _, Ok(ends))) => {
                    let arrival = Arrival { peer: ends.peer, local: Some(ends.local), health_check: ends.local_command };
                    admit(shared, workers, next_id, &mut refusals, stream, arrival);
                }
                Ok((_, balancer, Err(e))) => {
                    header_refusals.refused(balancer, e, std::time::Instant::now());
                    Counters::add(&shared.counters.rejected, 1);
                }
                Err(e) => log::warn!("a PROXY protocol header task failed: {e}"),
            },
            _ = sigterm.recv() => if let Some(stop) = stop_requested(shared, "SIGTERM", listener, &mut drain, notifier) { return Ok(stop) },
            _ = sigint.recv() => if let Some(stop) = stop_requested(shared, "SIGINT", listener, &mut drain, notifier) { return Ok(stop) },
            () = shared.stop.notified() => if let Some(stop) = stop_requested(shared, "occtl stop", listener, &mut drain, notifier) { return Ok(stop) },
            () = tokio::time::sleep_until(drain.unwrap_or_else(tokio::time::Instant::now)), if drain.is_some() => {
                log::info!("drain time over: shutting down");
                shutdown_line();
                return Ok(Stop::Signal);
            }
            // rate-limit-ms: accepting resumes here.
            () = tokio::time::sleep_until(paused.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std)), if paused.is_some() => {}
            _ = sighup.recv() => {
                log::info!("SIGHUP: reloading the configuration");
                let shared = Arc::clone(shared);
                // Its own task: reading the file never holds up accepting or signals.
                tokio::spawn(async move { let _ = crate::reload::reload(&shared).await; });
            }
            err = &mut secmod_reader => {
                log::error!("sec-mod cannot be restarted ({}); shutting down", crate::error_chain(&err));
                return Ok(Stop::Failure);
            }
        }
    }
}

/// Where an accepted connection comes from, once known.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// The client (with `listen-proxy-proto`: the one the header names).
    peer: SocketAddr,
    /// The address the client reached, when a PROXY header said (else the socket's).
    local: Option<SocketAddr>,
    /// A PROXY v2 `LOCAL` connection (the balancer's health check): no ban points.
    health_check: bool,
}

impl Arrival {
    fn direct(peer: SocketAddr) -> Self {
        Self {
            peer,
            local: None,
            health_check: false,
        }
    }
}

/// Admit one connection from `arrival.peer`: drop it if banned or over a cap, else reserve
/// its record and spawn its worker task.
fn admit(
    shared: &Arc<Shared>,
    workers: &mut JoinSet<()>,
    next_id: &mut u64,
    refusals: &mut Refusals,
    stream: TcpStream,
    arrival: Arrival,
) {
    let peer = arrival.peer;
    let config = shared.live.get();
    // Banned addresses are dropped before TLS: no worker, ocserv's one event line (paced).
    let banned = if arrival.health_check {
        shared.bans.is_banned(peer.ip())
    } else {
        shared.bans.check_connection(peer.ip())
    };
    if banned {
        refusals.banned(peer, std::time::Instant::now());
        Counters::add(&shared.counters.rejected, 1);
        return;
    }
    // Reserved before the spawn: max-clients and the pre-auth caps are checked and counted in
    // one step.
    *next_id += 1;
    let id = WorkerId(*next_id);
    let limits = crate::conn::Limits::from_config(&config);
    let (conn, stops) = match crate::conn::reserve(&shared.conns, id, peer.ip(), limits) {
        Ok(reserved) => reserved,
        Err(why) => {
            refusals.refused(peer, why, std::time::Instant::now());
            Counters::add(&shared.counters.rejected, 1);
            return;
        }
    };
    let local = match arrival.local.map_or_else(|| stream.local_addr(), Ok) {
        Ok(a) => a,
        Err(e) => {
            log::warn!("{peer}: connection lost before it was served: {e}");
            return;
        }
    };
    let fd: OwnedFd = match stream.into_std() {
        Ok(s) => s.into(),
        Err(e) => {
            log::warn!("{peer}: cannot take the connection: {e}");
            return;
        }
    };
    Counters::add(&shared.counters.connections, 1);
    workers.spawn(crate::worker::serve(
        Arc::clone(shared),
        conn,
        stops,
        fd,
        peer,
        local,
    ));
}

/// At most one "connection refused" line per second for the admission caps, and one for banned
/// addresses: a flood of connections must not become a flood of log lines.
#[derive(Debug, Default)]
struct Refusals {
    caps: LinePacer,
    banned: LinePacer,
}

#[derive(Debug, Default)]
struct LinePacer {
    last_log: Option<std::time::Instant>,
    unlogged: u64,
}

impl LinePacer {
    const EVERY: Duration = Duration::from_secs(1);

    /// `Some(lines not logged since the last one)` when a line is due at `now`.
    fn due(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last_log
            .is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY)
        {
            self.unlogged = self.unlogged.saturating_add(1);
            return None;
        }
        self.last_log = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl Refusals {
    fn refused(&mut self, peer: SocketAddr, why: impl std::fmt::Display, now: std::time::Instant) {
        match self.caps.due(now) {
            None => {}
            Some(0) => log::warn!("{peer}: connection refused: {why}"),
            Some(more) => log::warn!(
                "{peer}: connection refused: {why} ({more} more refused since the last such line)"
            ),
        }
    }

    /// A banned address connected: ocserv's event line (what log watchers match).
    fn banned(&mut self, peer: SocketAddr, now: std::time::Instant) {
        let Some(more) = self.banned.due(now) else {
            return;
        };
        crate::logger::event(
            log::Level::Info,
            &rocserv_proto::logevent::Event::RejectedBanned { ip: peer.ip() },
        );
        if more > 0 {
            log::info!(
                "{more} more connections from banned addresses refused since the last such line"
            );
        }
    }
}

/// SIGTERM to every worker we spawned and to sec-mod (by PID), wait a little for the worker
/// tasks to reap them, then kill what is left (dropping a task kills its child).
async fn shutdown(shared: &Shared, secmod: Supervisor, mut workers: JoinSet<()>) {
    let pids = shared.conns.pids();
    for pid in pids {
        terminate(pid);
    }
    let all_done = async { while workers.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done)
        .await
        .is_err()
    {
        log::warn!("some workers did not exit within {SHUTDOWN_GRACE:?}; killing them");
        workers.shutdown().await;
    }
    secmod.stop().await;
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

/// ocserv's shutdown line, which log-based tools watch for.
fn shutdown_line() {
    crate::logger::event(log::Level::Info, &rocserv_proto::logevent::Event::Shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_paced_and_count_the_skipped_ones() {
        let t0 = std::time::Instant::now();
        let mut p = LinePacer::default();
        assert_eq!(p.due(t0), Some(0));
        assert_eq!(p.due(t0), None);
        assert_eq!(p.due(t0 + Duration::from_millis(999)), None);
        assert_eq!(p.due(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(p.due(t0 + Duration::from_secs(3)), Some(0));
    }
}
