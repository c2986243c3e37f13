//! A worker's CONNECT: cookie check by sec-mod, takeover of a session that still has a tunnel,
//! address lease, MTU, tun device, and the answer with the tun descriptor attached.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::time::Duration;

use rocserv_proto::ipc::main_secmod::{SessionGrant, SessionRefusal};
use rocserv_proto::ipc::main_worker::{ConnectRefusal, ConnectRequest, ToWorker, TunnelGrant};
use rocserv_proto::ipc::WorkerId;
use rocserv_proto::mtu::{self, MtuInput};
use tokio_seqpacket::UnixSeqpacket;

use crate::conn::{Conn, Prior, Stop, TERMINATE_GRACE};
use crate::ipc;
use crate::state::{DtlsRoute, Shared};

/// How long a takeover waits for the previous connection to be gone: the worker's bounded
/// wait after `Terminate`, then its kill, reaping and the read of its last messages.
const TAKEOVER_TIMEOUT: Duration = TERMINATE_GRACE.saturating_add(Duration::from_secs(3));
/// The largest per-packet DTLS overhead a worker may claim (DTLS 0.9 AES-CBC-SHA1 is 65 + 1).
const MAX_DTLS_OVERHEAD: u16 = 128;

/// What a CONNECT left behind, for the log line and scripts when the worker exits (what it
/// holds is in the connection's record, [`Conn`]).
#[derive(Debug, Default)]
pub struct Outcome {
    /// sec-mod opened the session.
    pub grant: Option<SessionGrant>,
    /// The client's address, if one was leased.
    pub address: Option<Ipv4Addr>,
    pub tun_name: Option<String>,
    /// A mobile AnyConnect client (it gets `mobile-idle-timeout`), as the worker decides it.
    pub mobile: bool,
    /// The tun device's interface index: `TunMtu` and main's idle backstop address
    /// the device by it (names are reused).
    pub tun_ifindex: Option<u32>,
    /// What occtl shows about the tunnel (taken by the worker task when it registers it).
    pub granted: Option<crate::tunnels::Granted>,
    /// Admitted by `max-same-clients`; ended (scripts, user slot) when the worker is gone.
    pub admitted: Option<crate::lifecycle::Admitted>,
    /// The session's effective policy (main's idle backstop, occtl).
    pub policy: Option<std::sync::Arc<rocserv_proto::policy::Policy>>,
    /// What was left of `session-timeout` when the tunnel was granted (main's backstop).
    pub session_left: Option<Duration>,
}

/// Serve one `Connect`. Errors are only those of the socket to the worker.
pub async fn handle(
    shared: &Shared,
    worker: WorkerId,
    peer: SocketAddr,
    req: ConnectRequest,
    sock: &UnixSeqpacket,
    conn: &mut Conn,
    dtls: DtlsRoute,
) -> Result<Outcome, ipc::ChannelError> {
    let mut outcome = Outcome::default();
    let grant = match shared
        .secmod
        .session_open(worker, peer.ip(), req.cookie.clone())
        .await
    {
        Ok(Ok(grant)) => grant,
        Ok(Err(SessionRefusal::PolicyFile)) => {
            // sec-mod logged the file and line; the client hears a server error, as for any
            // configuration problem (the cookie itself was fine).
            log::info!("{peer}: CONNECT refused: the user's or group's file is not usable");
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
        Ok(Err(refusal)) => {
            log::info!("{peer}: CONNECT refused: cookie not accepted ({refusal:?})");
            return refuse(sock, ConnectRefusal::BadCookie, outcome).await;
        }
        Err(e) => {
            log::error!("{peer}: CONNECT refused: sec-mod: {e}");
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    conn.opened(grant.sid, std::sync::Arc::clone(&shared.secmod));
    outcome.grant = Some(grant.clone());
    // The session's policy: the configuration in force, with the group's and the user's files
    // (as sec-mod read them for this CONNECT) laid over it.
    let config = shared.live.get();
    let policy = std::sync::Arc::new(config.policy.resolve(&grant.overrides));
    // max-same-clients (protocol.md §6.1): another session of this user is one too many.
    match crate::lifecycle::admit(conn, &grant, peer, &policy, config.clone()) {
        Some(admitted) => outcome.admitted = Some(admitted),
        None => return refuse(sock, ConnectRefusal::BadCookie, outcome).await,
    }
    if let Some(old) = conn.claim_session(grant.sid) {
        if !take_over(shared, &grant, peer, old).await {
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    }
    let (local, remote, netmask) = match conn.lease(grant.sid, &grant.username) {
        Ok(l) => l,
        Err(why) => {
            log::error!("{peer}: CONNECT of {} refused: {why}", grant.username);
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    outcome.address = Some(remote);
    // DTLS only when we serve UDP and the worker chose a mode; the overhead is the worker's
    // word (untrusted), so it is bounded, and `compute` never goes below 576 anyway.
    let dtls_overhead = req
        .dtls_overhead
        .filter(|_| {
            shared.config.udp_port.is_some() && !shared.config.policy.no_udp && !policy.no_udp
        })
        .map(|o| o.min(MAX_DTLS_OVERHEAD));
    let dtls_id = match dtls_overhead.map(|_| new_dtls_id()) {
        Some(Ok(id)) => Some(id),
        Some(Err(ring::error::Unspecified)) => {
            log::error!("{peer}: no randomness for a DTLS id; offering TLS only");
            None
        }
        None => None,
    };
    let mtu = mtu::compute(MtuInput {
        configured: policy.mtu,
        client_base_mtu: req.base_mtu,
        client_mtu: req.cstp_mtu,
        outer_ipv6: peer.is_ipv6(),
        assigns_ipv6: false,
        dtls_overhead: dtls_id.and(dtls_overhead),
    });
    let device = match crate::tun::create(&shared.config.device, local, remote, mtu.data) {
        Ok(d) => d,
        Err(e) => {
            log::error!(
                "{peer}: CONNECT of {} refused: tun device: {}",
                grant.username,
                crate::error_chain(&e)
            );
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    let session_left = crate::session_deadline::remaining(
        policy.session_timeout,
        Duration::from_millis(grant.age_ms),
    );
    let answer = ToWorker::ConnectGranted(TunnelGrant {
        sid: grant.sid,
        username: grant.username.clone(),
        groupname: grant.groupname.clone(),
        tun_name: device.name.clone(),
        ipv4_local: local,
        ipv4_remote: remote,
        ipv4_netmask: netmask,
        base_mtu: mtu.base,
        mtu: mtu.data,
        dtls_id,
        session_remaining_ms: session_left.map(crate::session_deadline::as_millis),
        policy: Box::new((*policy).clone()),
    });
    // protocol.md §8.1: the connect-script runs before the client hears 200; a failure is a
    // 401 and no disconnect-script. Dropping `device` on refusal removes the tun.
    let info = crate::scripts::SessionInfo {
        id: conn.pid(),
        username: grant.username.clone(),
        groupname: grant.groupname.clone(),
        device: device.name.clone(),
        ip_real: peer.ip(),
        ip_real_local: dtls.local_ip,
        ip_local: local,
        ip_remote: remote,
        // A `hostname` of the user's file replaces the one the client sent (as ocserv).
        hostname: policy.hostname.clone().or_else(|| req.hostname.clone()),
        user_agent: req.user_agent.clone(),
        device_type: req.device_type.clone(),
        device_platform: req.device_platform.clone(),
        routes: policy.routes.clone(),
        no_routes: policy.no_routes.clone(),
        dns: policy.dns.clone(),
    };
    if let Some(admitted) = outcome.admitted.as_mut() {
        if !crate::lifecycle::grant(shared, admitted, info, peer).await {
            return refuse(sock, ConnectRefusal::BadCookie, outcome).await;
        }
    }
    if let Some(id) = dtls_id {
        conn.register_dtls(id, dtls);
    }
    log::info!(
        "{peer}: user {} connected: {} ({} -> {remote}, mtu {})",
        grant.username,
        device.name,
        local,
        mtu.data
    );
    outcome.tun_name = Some(device.name.clone());
    outcome.tun_ifindex = Some(device.ifindex);
    outcome.mobile =
        req.device_platform.starts_with("android") || req.device_platform.starts_with("apple-ios");
    outcome.granted = Some(crate::tunnels::Granted {
        sid: grant.sid,
        username: grant.username.clone(),
        groupname: grant.groupname.clone(),
        device: device.name.clone(),
        mtu: mtu.data,
        ipv4_local: local,
        ipv4_remote: remote,
        user_agent: req.user_agent.clone(),
        hostname: policy
            .hostname
            .clone()
            .or_else(|| req.hostname.clone())
            .unwrap_or_default(),
        policy: std::sync::Arc::clone(&policy),
    });
    if let Err(e) = ipc::send(sock, &answer, &[device.fd.as_fd()]).await {
        conn.forget_dtls();
        return Err(e);
    }
    // Logged in: no longer counted against the pre-auth caps or killed at auth-timeout.
    conn.logged_in();
    // Our copy of the tun descriptor closes here; the worker holds the device from now on.
    drop(device);
    outcome.session_left = session_left;
    outcome.policy = Some(policy);
    if let Some(admitted) = &outcome.admitted {
        crate::lifecycle::host_update(admitted);
    }
    Ok(outcome)
}

/// A fresh DTLS id (protocol.md §4.1: new for every CONNECT).
fn new_dtls_id() -> Result<[u8; 32], ring::error::Unspecified> {
    let mut id = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)?;
    Ok(id)
}

async fn refuse(
    sock: &UnixSeqpacket,
    why: ConnectRefusal,
    outcome: Outcome,
) -> Result<Outcome, ipc::ChannelError> {
    ipc::send(sock, &ToWorker::ConnectRefused(why), &[]).await?;
    Ok(outcome)
}

/// End the connection that still serves this session (`Terminate`, SIGKILL after the bounded
/// wait) and wait until its record released everything, so that the lease below finds the
/// session's reservation. `false` (logged) if it is still there: the CONNECT is then refused
/// rather than one address given to two tunnels.
async fn take_over(
    shared: &Shared,
    grant: &SessionGrant,
    peer: SocketAddr,
    mut old: Prior,
) -> bool {
    log::info!(
        "{peer}: session of {} taken over from worker {}",
        grant.username,
        old.worker.0
    );
    shared.conns.terminate(old.worker, Stop::Takeover);
    // An error means the record is gone already (its sender dropped): released.
    let waited = tokio::time::timeout(TAKEOVER_TIMEOUT, old.done.wait_for(|done| *done)).await;
    if waited.is_err() {
        log::warn!(
            "{peer}: previous connection of {} did not end within {TAKEOVER_TIMEOUT:?}",
            grant.username
        );
        return false;
    }
    true
}
