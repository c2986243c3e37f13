//! rocserv-worker: serves one client connection (TLS, the login conversation, the CSTP tunnel).
//!
//! Privileges: exec'd as root by main, it reads main's Start message, then becomes the
//! configured unprivileged user, sets no_new_privs, checks that root cannot come back and
//! installs a seccomp allow-list, all before reading a byte from the client. It never sees the
//! server key (signatures come from sec-mod over fd 5), never opens a file, never parses
//! configuration. What it holds: this client's TLS stream (fd 3), its channel to main (fd 4, over
//! which the tun fd arrives), its channel to sec-mod (fd 5, closed before CONNECT: the tunnel
//! phase cannot reach the process with the key).
//!
//! Flow: Start -> sandbox -> TLS handshake -> HTTP login loop (all bounded by `auth-timeout`;
//! the handshake and the first request, and each request once begun, by `handshake-timeout`)
//! -> close the sec-mod channel -> CONNECT -> main grants the tunnel and a tun fd ->
//! `200 CONNECTED` -> CSTP pump -> `SessionEnd` -> exit 0.

pub mod bpf_tree;
pub mod caps;
pub mod fds;
pub mod http;
pub mod ipc;
pub mod logger;
pub mod memory;
pub mod sandbox;
pub mod tls;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use rocserv_proto::compress::Compressor;
use rocserv_proto::ipc::main_worker::{
    CertLogin, ConnectRefusal, ToMain, ToWorker, TunnelState, WorkerStart,
};
use rocserv_proto::ipc::CloseReason;
use rustls::ProtocolVersion;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use crate::http::{connect, Banners, Outcome};
use crate::ipc::{IpcChannelError, MainChannel, SecModClient};
use crate::tunnel::dtls::Dtls;
use crate::tunnel::SessionTimers;

/// Readiness events taken per poll of the descriptors (the client's socket, the tun device, main,
/// the DTLS sockets, tokio's own); more are taken at the next poll.
const IO_EVENTS: usize = 64;

/// How long sec-mod may take to answer one request (a PAM conversation included).
const SECMOD_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker could not start; its `Display` names the step, the source says why.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// fds 3-5 are not all open.
    #[error("inherited descriptors 3-5 missing (rocserv-worker is started by rocserv only)")]
    Fds(#[source] nix::Error),
    /// The Start message did not arrive or made no sense.
    #[error("reading the Start message from main")]
    Start(#[source] IpcChannelError),
    /// A socket could not be prepared.
    #[error("setting up the {0} socket")]
    Socket(&'static str, #[source] std::io::Error),
    /// An IPC socket could not be prepared.
    #[error("setting up the {0} channel")]
    Channel(&'static str, #[source] IpcChannelError),
    /// The TLS configuration is unusable.
    #[error("TLS setup")]
    Tls(#[from] tls::TlsSetupError),
    /// The sandbox could not be entered.
    #[error("entering the sandbox")]
    Sandbox(#[from] sandbox::SandboxError),
}

/// Run the worker; returns when the connection is over.
pub fn run(log_level: u8) -> Result<(), WorkerError> {
    logger::init(log_level);
    let fds = fds::take_inherited().map_err(WorkerError::Fds)?;
    let start = ipc::recv_start(&fds.main).map_err(WorkerError::Start)?;
    let secmod = Arc::new(
        SecModClient::new(fds.secmod, SECMOD_TIMEOUT)
            .map_err(|e| WorkerError::Channel("sec-mod", e))?,
    );
    let tls_config = tls::config::server_config_with(
        &start.tls,
        Arc::clone(&secmod),
        start.auth.client_cert.as_ref(),
    )?;
    let client = std::net::TcpStream::from(fds.client);
    client
        .set_nonblocking(true)
        .and_then(|()| client.set_nodelay(true))
        .map_err(|e| WorkerError::Socket("client", e))?;

    // Everything that needs a syscall outside the allow-list happens before `sandbox::enter`:
    // the runtime (epoll, eventfd), fd flags.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // A worker polls a handful of descriptors: 1024 events (tokio's default) would be a
        // 12 kB array in every worker's heap.
        .max_io_events_per_tick(IO_EVENTS)
        .build()
        .map_err(|e| WorkerError::Socket("runtime", e))?;
    let _guard = runtime.enter();
    let client = TcpStream::from_std(client).map_err(|e| WorkerError::Socket("client", e))?;
    let mut main = MainChannel::new(fds.main).map_err(|e| WorkerError::Channel("main", e))?;
    tunnel::sched_slice::init();
    if let Err(e) = tunnel::sched_slice::lower_for_login() {
        log::debug!("login at the start priority: {e}");
    }
    sandbox::enter(&start.sandbox)?;
    log::debug!("sandboxed (seccomp: {})", start.sandbox.seccomp);

    // One future per phase (doc/performance.md, "session 9: memory per idle worker"): the
    // login's is freed before the tunnel starts, and the tunnel's holds a pointer to the pump
    // (one future for both was 27 kB of every idle worker's heap: tokio boxes futures that large).
    let login = serve(
        start,
        client,
        &mut main,
        secmod,
        TlsAcceptor::from(tls_config),
    );
    if let Some(tunnel) = runtime.block_on(login) {
        memory::release_stack_below();
        let stats_every = tunnel.stats_every;
        let summary = match tunnel.start() {
            Ok(pump) => runtime.block_on(Box::pin(pump.run(&mut main, stats_every))),
            Err(summary) => summary,
        };
        runtime.block_on(end_session(
            &main,
            summary.reason,
            summary.rx_bytes,
            summary.tx_bytes,
        ));
    }
    Ok(())
}

/// What the login phase hands to the tunnel phase.
struct Tunnel {
    tcp: TcpStream,
    conn: rustls::ServerConnection,
    tun: std::os::fd::OwnedFd,
    timers: SessionTimers,
    cstp_compressor: Option<Compressor>,
    dtls: Dtls,
    stats_every: Duration,
    state: TunnelState,
}

impl Tunnel {
    fn start(self) -> Result<Box<tunnel::Pump>, tunnel::Summary> {
        tunnel::start(
            self.tcp,
            self.conn,
            self.tun,
            self.timers,
            self.cstp_compressor,
            self.dtls,
            self.state,
        )
    }
}

pub use rocserv_proto::error_chain;

/// One connection, from the TLS handshake to the `200 CONNECTED`: the tunnel to run, if one was
/// granted. Every failure is logged here, once.
async fn serve(
    mut start: WorkerStart,
    client: TcpStream,
    main: &mut MainChannel,
    secmod: Arc<SecModClient>,
    acceptor: TlsAcceptor,
) -> Option<Tunnel> {
    let now = Instant::now();
    let deadline = now + Duration::from_secs(start.auth.auth_timeout_secs);
    // `handshake-timeout`: a connection that does not get through TLS and its first request
    // quickly (one that sends nothing, or trickles) costs a worker process only briefly.
    let handshake = Duration::from_secs(start.auth.handshake_timeout_secs);
    let timeouts = http::ReadTimeouts {
        first_request_by: deadline.min(now + handshake),
        per_request: handshake,
    };
    let mut tls = match timeout_at(timeouts.first_request_by, acceptor.accept(client)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            log::info!("TLS handshake failed: {err}");
            return None;
        }
        Err(_) => {
            log::info!("TLS handshake timed out");
            return None;
        }
    };
    let banners = Banners {
        pre_login: start.auth.pre_login_banner.as_deref(),
        post_login: start.tunnel.banner.as_deref(),
    };
    let groups = http::Groups {
        choices: start.auth.groups.clone(),
        default_select: start.auth.default_select_group.clone(),
        by_url: start.auth.select_group_by_url,
    };
    // `camouflage` is vhost-scoped: the section the SNI names (as for the certificate).
    let chosen = http::camouflage::choose(
        start.client.camouflage.as_ref(),
        &start.vhost_camouflage,
        tls.get_ref().1.server_name(),
    )
    .cloned();
    start.client.camouflage = chosen;
    // The certificate login of the section the SNI names (a password-only vhost must never
    // get the default section's certificate-only login, and the reverse).
    let login = start
        .auth
        .client_cert
        .as_ref()
        .map_or(CertLogin::default(), |c| {
            CertLogin::choose(
                CertLogin {
                    alone: c.alone,
                    no_form: c.no_form,
                },
                &start.vhost_cert_login,
                tls.get_ref().1.server_name(),
            )
        });
    // The chain the client proved it holds the key of (unchecked: sec-mod decides).
    let cert = http::ClientCert {
        chain: tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default(),
        alone: login.alone,
        no_form: login.no_form,
    };
    let phase = http::serve_with_cert(
        &mut tls,
        &*secmod,
        banners,
        &groups,
        timeouts,
        &start.client,
        &cert,
    );
    let connect = match timeout_at(deadline, phase).await {
        Ok(Ok(Outcome::Tunnel(connect))) => connect,
        Ok(Ok(Outcome::Closed)) => {
            log::debug!("connection closed");
            return None;
        }
        Ok(Err(err)) => {
            log::info!("closing: {}", error_chain(&err));
            return None;
        }
        Err(_) => {
            log::info!("auth-timeout reached, closing");
            return None;
        }
    };
    // The login phase is over: nothing after this point may reach the key's process
    // (doc/security/signing-oracle.md). sec-mod also ends its side once main asks it for the session.
    secmod.close();

    // protocol.md §4.1: the DTLS mode is chosen now, so that main can size the MTU for it.
    let dtls_settings = start.tunnel.dtls.as_ref();
    let dtls_choice = dtls_settings.and_then(|settings| {
        let facts = tunnel::dtls_mode::tls_facts(tls.get_ref().1);
        tunnel::dtls_mode::choose(settings, &connect.dtls, facts)
    });
    let mut request = connect.request.clone();
    request.dtls_overhead = dtls_choice.as_ref().map(|c| c.overhead);
    if let Err(err) = main.send(&ToMain::Connect(request)).await {
        log::error!("asking main for the tunnel: {}", error_chain(&err));
        return None;
    }
    let (grant, tun) = match timeout_at(deadline, main.recv()).await {
        Ok(Ok((ToWorker::ConnectGranted(grant), Some(tun)))) => (grant, tun),
        Ok(Ok((ToWorker::ConnectGranted(_), None))) => {
            log::error!("main granted the tunnel without a tun device");
            let _ = http::write_response(&mut tls, &connect::unavailable("Server error")).await;
            end_session(main, CloseReason::Temporary, 0, 0).await;
            return None;
        }
        Ok(Ok((ToWorker::ConnectRefused(refusal), _))) => {
            let response = match refusal {
                ConnectRefusal::BadCookie => {
                    log::info!("cookie rejected");
                    // Without the secret and a good cookie, the VPN stays hidden.
                    match start
                        .client
                        .camouflage
                        .as_ref()
                        .filter(|_| connect.camouflaged)
                    {
                        Some(camouflage) => http::camouflage::Gate::new(camouflage).answer(),
                        None => connect::bad_cookie(),
                    }
                }
                ConnectRefusal::ServerError => {
                    log::info!("main could not set up the tunnel");
                    connect::unavailable("Server configuration error")
                }
            };
            let _ = http::write_response(&mut tls, &response).await;
            return None;
        }
        Ok(Ok((other @ (ToWorker::Start(_) | ToWorker::Terminate | ToWorker::Udp { .. }), _))) => {
            log::info!("main answered CONNECT with {other:?}, closing");
            return None;
        }
        Ok(Err(err)) => {
            log::error!("waiting for main: {}", error_chain(&err));
            return None;
        }
        Err(_) => {
            log::error!("main did not answer CONNECT in time");
            return None;
        }
    };

    let tls13 = tls.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_3);
    let offer =
        tunnel::dtls_mode::offer(dtls_settings, dtls_choice.as_ref(), grant.dtls_id.as_ref());
    let response = connect::connected(&start.tunnel, &grant, &connect, tls13, offer);
    // protocol.md §3.1: the head goes out (flushed) before the first frame.
    if let Err(err) = http::write_response(&mut tls, &response).await {
        log::info!("sending the CONNECT answer: {err}");
        end_session(main, CloseReason::Temporary, 0, 0).await;
        return None;
    }
    log::info!(
        "tunnel up: user '{}' session {} on {} as {}",
        grant.username,
        grant.sid,
        grant.tun_name,
        [
            grant.ipv4_remote.map(|a| a.to_string()),
            grant.ipv6.map(|l| format!("{}/{}", l.remote, l.prefix)),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    );
    let dpd = grant.policy.dpd_secs(connect.mobile);
    let timers = SessionTimers {
        dpd: (dpd > 0).then(|| Duration::from_secs(dpd.into())),
        // mobile-idle-timeout for mobile AnyConnect clients (main already resolved its default).
        idle: grant
            .policy
            .idle_timeout_for(connect.mobile)
            .map(|s| Duration::from_secs(s.into())),
        // What main says is left, counted from the login (a cookie reconnect does not
        // restart the session's clock).
        session: grant.session_remaining_ms.map(Duration::from_millis),
    };
    // The same pure choice as in the CONNECT answer (protocol.md §5.1).
    let (cstp_compression, dtls_compression) = connect.compression(&start.tunnel.compression);
    if let Some(algorithm) = cstp_compression {
        log::info!("CSTP compression: {}", algorithm.name());
    }
    let cstp_compressor =
        cstp_compression.map(|a| Compressor::new(a, start.tunnel.compression.no_compress_limit));
    // What main shows in occtl (code points; main checks them and makes the text).
    let state = tunnel_state(tls.get_ref().1, cstp_compression, dtls_compression);
    let (tcp, conn) = tls.into_inner();
    let dtls = match (dtls_choice, grant.dtls_id, dtls_settings) {
        (Some(chosen), Some(id), Some(settings)) => {
            log::debug!("DTLS offered: {:?}", chosen.mode);
            let switch = (settings.switch_to_tcp_secs > 0)
                .then(|| Duration::from_secs(settings.switch_to_tcp_secs.into()));
            let compressor = dtls_compression
                .map(|a| Compressor::new(a, start.tunnel.compression.no_compress_limit));
            // Link MTU = data MTU + outer IP/UDP header + DTLS record (protocol.md §2.4).
            let outer: u16 = if start.peer.is_ipv6() { 40 + 8 } else { 20 + 8 };
            let overhead = outer.saturating_add(chosen.overhead);
            Dtls::new(chosen.mode, id, switch, compressor)
                .with_dpd(timers.dpd, grant.mtu)
                .with_path_mtu(settings.try_mtu_discovery, grant.mtu, overhead)
        }
        _ => Dtls::disabled(),
    };
    // `stats-report-time` (0: every 60 s, main's occtl view needs numbers).
    let stats_every = Duration::from_secs(match grant.policy.stats_report_time {
        0 => 60,
        n => n.into(),
    });
    Some(Tunnel {
        tcp,
        conn,
        tun,
        timers,
        cstp_compressor,
        dtls,
        stats_every,
        state,
    })
}

/// The TLS half of the tunnel's state report, and the compression negotiated at CONNECT; the
/// DTLS half is filled in by the tunnel as it changes.
fn tunnel_state(
    conn: &rustls::ServerConnection,
    cstp_compression: Option<rocserv_proto::compress::Algorithm>,
    dtls_compression: Option<rocserv_proto::compress::Algorithm>,
) -> TunnelState {
    TunnelState {
        tls_version: conn.protocol_version().map_or(0, u16::from),
        tls_suite: conn
            .negotiated_cipher_suite()
            .map_or(0, |s| u16::from(s.suite())),
        tls_group: conn
            .negotiated_key_exchange_group()
            .map(|g| u16::from(g.name())),
        tls_signature: tls::remote_key::signed_scheme(),
        dtls_suite: None,
        dtls_flow: 0,
        dtls_in_use: false,
        cstp_compression,
        dtls_compression,
    }
}

async fn end_session(main: &MainChannel, reason: CloseReason, rx_bytes: u64, tx_bytes: u64) {
    let msg = ToMain::SessionEnd {
        reason,
        rx_bytes,
        tx_bytes,
    };
    if let Err(err) = main.send(&msg).await {
        log::error!("telling main the session ended: {}", error_chain(&err));
    }
}
