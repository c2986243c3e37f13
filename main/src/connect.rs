//! A worker's CONNECT: cookie check by sec-mod, takeover of a session that still has a tunnel,
//! address lease, MTU, tun device, and the answer with the tun descriptor attached.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use rocserv_proto::ipc::main_secmod::SessionGrant;
use rocserv_proto::ipc::main_worker::{ConnectRefusal, ConnectRequest, ToWorker, TunnelGrant};
use rocserv_proto::ipc::WorkerId;
use rocserv_proto::mtu::{self, MtuInput};
use tokio_seqpacket::UnixSeqpacket;

use crate::ipc;
use crate::state::{Owner, Shared};

/// How long a takeover waits for the previous connection's worker to go away.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a CONNECT left behind, for the clean-up when the worker exits.
#[derive(Debug, Default)]
pub struct Outcome {
    /// sec-mod opened the session (it must be told when it closes).
    pub grant: Option<SessionGrant>,
    /// The client's address, if one was leased.
    pub address: Option<Ipv4Addr>,
    pub tun_name: Option<String>,
}

/// Serve one `Connect`. Errors are only those of the socket to the worker.
pub async fn handle(
    shared: &Shared,
    worker: WorkerId,
    peer: SocketAddr,
    req: ConnectRequest,
    sock: &UnixSeqpacket,
    me: Owner,
) -> Result<Outcome, ipc::ChannelError> {
    let mut outcome = Outcome::default();
    let grant = match shared.secmod.session_open(worker, req.cookie.clone()).await {
        Ok(Ok(grant)) => grant,
        Ok(Err(refusal)) => {
            log::info!("{peer}: CONNECT refused: cookie not accepted ({refusal:?})");
            return refuse(sock, ConnectRefusal::BadCookie, outcome).await;
        }
        Err(e) => {
            log::error!("{peer}: CONNECT refused: sec-mod: {e}");
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    outcome.grant = Some(grant.clone());
    if let Some(old) = shared.claim_session(grant.sid, me) {
        take_over(&grant, peer, old).await;
    }
    let leased = {
        let mut pool = shared.pool();
        match pool.as_mut() {
            None => Err("no ipv4-network configured"),
            Some(pool) => pool
                .lease(grant.sid, &grant.username, Instant::now())
                .map(|remote| (pool.server_address(), remote, pool.netmask()))
                .ok_or("the address pool is exhausted"),
        }
    };
    let (local, remote, netmask) = match leased {
        Ok(l) => l,
        Err(why) => {
            log::error!("{peer}: CONNECT of {} refused: {why}", grant.username);
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    outcome.address = Some(remote);
    let mtu = mtu::compute(MtuInput {
        configured: shared.config.mtu,
        client_base_mtu: req.base_mtu,
        client_mtu: req.cstp_mtu,
        outer_ipv6: peer.is_ipv6(),
        assigns_ipv6: false,
        dtls_overhead: None,
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
    });
    log::info!(
        "{peer}: user {} connected: {} ({} -> {remote}, mtu {})",
        grant.username,
        device.name,
        local,
        mtu.data
    );
    outcome.tun_name = Some(device.name.clone());
    ipc::send(sock, &answer, &[device.fd.as_fd()]).await?;
    // Our copy of the tun descriptor closes here; the worker holds the device from now on.
    drop(device);
    Ok(outcome)
}

async fn refuse(
    sock: &UnixSeqpacket,
    why: ConnectRefusal,
    outcome: Outcome,
) -> Result<Outcome, ipc::ChannelError> {
    ipc::send(sock, &ToWorker::ConnectRefused(why), &[]).await?;
    Ok(outcome)
}

/// Ask the worker that still serves this session to end and wait (bounded) until its task has
/// released the address, so that the lease below finds the session's reservation.
async fn take_over(grant: &SessionGrant, peer: SocketAddr, mut old: Owner) {
    log::info!(
        "{peer}: session of {} taken over from worker {}",
        grant.username,
        old.worker.0
    );
    let _ = old.takeover.try_send(());
    let waited = tokio::time::timeout(TAKEOVER_TIMEOUT, old.done.wait_for(|done| *done)).await;
    if waited.is_err() {
        log::warn!(
            "{peer}: previous connection of {} did not end within {TAKEOVER_TIMEOUT:?}",
            grant.username
        );
    }
}
