//! A worker's CONNECT: cookie check by sec-mod, takeover of a session that still has a tunnel,
//! address lease, MTU, tun device, its access rules, and the answer with the tun descriptor
//! attached.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::time::Duration;

use rocserv_proto::ipc::main_secmod::{SessionGrant, SessionRefusal};
use rocserv_proto::ipc::main_worker::{
    ConnectRefusal, ConnectRequest, Ipv6Link, ToWorker, TunnelGrant,
};
use rocserv_proto::ipc::WorkerId;
use rocserv_proto::mtu::{self, MtuInput};
use tokio_seqpacket::UnixSeqpacket;

use rocserv_proto::config::{IpNet, Route};

use crate::conn::{Conn, Prior, Stop, TERMINATE_GRACE};
use crate::ip_pool::LeaseRequest;
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
    /// The `rx-data-per-sec` shaper's device, deleted when this is dropped (the tun device's
    /// own shaper goes with the device).
    pub rx_shaper: Option<crate::rate_limit::RxShaper>,
    /// sec-mod was told the tunnel started (`SessionStarted`): its stats and end go there too.
    pub accounted: bool,
    /// A DTLS id was handed out: the worker may report a DTLS session.
    pub dtls_offered: bool,
    /// `output-buffer` of the session's section, in bytes (MTU x packets): the client's TCP
    /// send buffer, set by the worker task on main's copy of the socket.
    pub send_buffer: Option<usize>,
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
    let asked = std::time::Instant::now();
    let answer = shared
        .secmod
        .session_open(worker, peer.ip(), req.cookie.clone())
        .await;
    shared.counters.secmod_request.observe(asked.elapsed());
    let grant = match answer {
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
    // The session's policy: the configuration in force (the section of the vhost the session
    // was created in, as sec-mod recorded it), with the group's and the user's files (as
    // sec-mod read them for this CONNECT) laid over it.
    let config = shared.live.get();
    let section = config.section(grant.vhost.as_deref());
    if let Some(name) = grant.vhost.as_deref() {
        if std::ptr::eq(section, &*config) {
            log::warn!(
                "{peer}: session of {} belongs to [vhost:{name}], which the configuration no \
                 longer has; using the default section",
                grant.username
            );
        }
    }
    let mut policy = section.policy.resolve(&grant.overrides);
    if section.expose_iroutes {
        let known = shared.conns.known_iroutes(&policy.iroutes);
        expose_iroutes(&mut policy, known);
    }
    let policy = std::sync::Arc::new(policy);
    // max-same-clients (protocol.md §6.1): another session of this user is one too many.
    match crate::lifecycle::admit(conn, &grant, peer, &policy, config.clone()) {
        Some(admitted) => outcome.admitted = Some(admitted),
        None => return refuse(sock, ConnectRefusal::BadCookie, outcome).await,
    }
    // `cluster-store`: every store round trip of this CONNECT (sec-mod's above, and these)
    // within one budget.
    let mut budget = crate::cluster::sessions::StoreBudget::new(
        Duration::from_millis(u64::from(grant.cluster_store_used_ms)),
        grant.cluster_spent,
    );
    let max = policy.max_same_clients;
    if !crate::cluster::sessions::admit(shared, conn, &grant, peer, max, &mut budget).await {
        return refuse(sock, ConnectRefusal::BadCookie, outcome).await;
    }
    if let Some(old) = conn.claim_session(grant.sid) {
        if !take_over(shared, &grant, peer, old).await {
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    }
    // An IPv4 address when the session has an IPv4 network, an IPv6 one when it has an IPv6
    // network; at least one (ocserv: "no IPv4 or IPv6 addresses are configured"). The IPv4
    // one comes from the session's pool (global, vhost, group or user `ipv4-network`) or is
    // its fixed `explicit-ipv4`.
    let ipv4 = match policy.ipv4_network {
        None => None,
        Some(_) => match match LeaseRequest::from_policy(&policy) {
            Ok(req) => {
                let who = (peer, grant.sid, grant.username.as_str());
                crate::cluster_leases::lease(shared, conn, &req, who, &mut budget).await
            }
            Err(e) => Err(e),
        } {
            Ok(g) => Some((g.local, g.remote, g.netmask)),
            Err(why) => {
                log::error!("{peer}: CONNECT of {} refused: {why}", grant.username);
                return refuse(sock, ConnectRefusal::ServerError, outcome).await;
            }
        },
    };
    let mut ipv6 = match lease6(conn, &grant, &policy, section.predictable_ips) {
        Ok(link) => link,
        Err(why) => {
            log::error!("{peer}: CONNECT of {} refused: {why}", grant.username);
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    };
    outcome.address = ipv4.map(|(_, remote, _)| remote);
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
        assigns_ipv6: ipv6.is_some(),
        dtls_overhead: dtls_id.and(dtls_overhead),
    });
    // output-buffer: packets of the link MTU, as ocserv (worker-vpn.c sets SO_SNDBUF on the
    // TCP socket after CONNECT).
    outcome.send_buffer = (section.output_buffer > 0).then(|| {
        usize::from(mtu.base).saturating_mul(usize::try_from(section.output_buffer).unwrap_or(0))
    });
    // IPv6 needs links of at least 1280 bytes (RFC 8200 §5; ocserv drops IPv6 below it too).
    if ipv6.is_some() && mtu.data < IPV6_MIN_MTU {
        log::info!(
            "{peer}: tunnel MTU {} of {} is below IPv6's {IPV6_MIN_MTU}: no IPv6 address",
            mtu.data,
            grant.username
        );
        conn.drop_lease6();
        ipv6 = None;
    }
    if ipv4.is_none() && ipv6.is_none() {
        log::error!(
            "{peer}: CONNECT of {} refused: no IPv4 or IPv6 address for this session",
            grant.username
        );
        return refuse(sock, ConnectRefusal::ServerError, outcome).await;
    }
    let ends = ipv4.map(|(local, remote, _)| (local, remote));
    let device = match crate::tun::create(&shared.config.device, ends, ipv6, mtu.data) {
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
    // Access rules before the worker gets the device, so nothing enters it unfiltered; no
    // rules, no tunnel (fail closed). The record takes them out when the connection ends.
    match crate::firewall::install(conn.worker(), device.ifindex, &policy).await {
        Ok(Some(installed)) => conn.firewalled(installed),
        Ok(None) => {}
        Err(e) => {
            log::error!(
                "{peer}: CONNECT of {} refused: cannot install its access rules \
                 (restrict-user-to-routes/-ports): {}",
                grant.username,
                crate::error_chain(&e)
            );
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    }
    // iroute: the networks behind this client go to its device (ocserv refuses the login
    // when that fails, too). The removal is the record's, at release.
    if !policy.iroutes.is_empty() {
        let cmds = crate::iroutes::commands(&config, &policy.iroutes, &device.name);
        if !conn.add_iroutes(&policy.iroutes, cmds).await {
            log::error!(
                "{peer}: CONNECT of {} refused: cannot add its iroutes on {}",
                grant.username,
                device.name
            );
            return refuse(sock, ConnectRefusal::ServerError, outcome).await;
        }
    }
    // cluster-route-add-cmd / -del-cmd (ours, doc/cluster.md "Addresses"): this node serves
    // the address now, so a routing daemon can move its /32 here. In the background (never
    // awaited); the removal runs at release, before a takeover's addition.
    if let (Some((_, remote, _)), true) = (ipv4, shared.cluster.is_some()) {
        let net = IpNet {
            addr: std::net::IpAddr::V4(remote),
            prefix: 32,
        };
        let argv = |c: &rocserv_proto::config::route_cmd::RouteCmd| c.argv(&net, &device.name);
        let add = config.cluster_route_add_cmd.as_ref().map(argv);
        let del = config.cluster_route_del_cmd.as_ref().map(argv);
        conn.cluster_route(add, del);
    }
    // Bandwidth limits, in the kernel before the worker holds the device (a limit that cannot
    // be installed refuses the CONNECT: it would be no limit at all). No limit, no work.
    let limits = crate::rate_limit::Limits::from_policy(&policy);
    if !limits.is_none() {
        match crate::rate_limit::install(&device.name, device.ifindex, limits).await {
            Ok(rx_shaper) => outcome.rx_shaper = rx_shaper,
            Err(e) => {
                log::error!(
                    "{peer}: CONNECT of {} refused: bandwidth limit: {}",
                    grant.username,
                    crate::error_chain(&e)
                );
                return refuse(sock, ConnectRefusal::ServerError, outcome).await;
            }
        }
        log::info!(
            "{peer}: {}: bandwidth limited to {} B/s from the client, {} B/s to it (0 = none)",
            device.name,
            limits.rx,
            limits.tx
        );
    }
    let session_left = crate::session_deadline::remaining(
        policy.session_timeout,
        Duration::from_millis(grant.age_ms),
    );
    let answer = ToWorker::ConnectGranted(TunnelGrant {
        sid: grant.sid,
        username: grant.username.clone(),
        groupname: grant.groupname.clone(),
        tun_name: device.name.clone(),
        ipv4_local: ipv4.map(|(local, _, _)| local),
        ipv4_remote: ipv4.map(|(_, remote, _)| remote),
        ipv4_netmask: ipv4.map(|(_, _, netmask)| netmask),
        base_mtu: mtu.base,
        mtu: mtu.data,
        dtls_id,
        session_remaining_ms: session_left.map(crate::session_deadline::as_millis),
        policy: Box::new((*policy).clone()),
        ipv6,
    });
    // The policy goes to the worker in one IPC message (long route lists, many exposed
    // iroutes): one that cannot be sent refuses this login before any script runs.
    if let Err(e) = rocserv_proto::ipc::encode(&answer) {
        log::error!(
            "{peer}: CONNECT of {} refused: its tunnel settings cannot be sent to the worker \
             ({e}); shorten its route lists",
            grant.username
        );
        return refuse(sock, ConnectRefusal::ServerError, outcome).await;
    }
    // protocol.md §8.1: the connect-script runs before the client hears 200; a failure is a
    // 401 and no disconnect-script. Dropping `device` on refusal removes the tun.
    // openconnect sends `X-AnyConnect-Identifier-Platform` at CONNECT only with a mobile
    // `--os`; the platform it reported at login (`<device-id>`) stands in otherwise.
    let device_platform = if req.device_platform.is_empty() {
        grant.facts.platform.clone().unwrap_or_default()
    } else {
        req.device_platform.clone()
    };
    let info = crate::scripts::SessionInfo {
        id: conn.pid(),
        username: grant.username.clone(),
        groupname: grant.groupname.clone(),
        device: device.name.clone(),
        ip_real: peer.ip(),
        ip_real_local: dtls.local_ip,
        ip_local: ipv4.map(|(local, _, _)| local),
        ip_remote: ipv4.map(|(_, remote, _)| remote),
        // A `hostname` of the user's file replaces the one the client sent (as ocserv).
        hostname: policy.hostname.clone().or_else(|| req.hostname.clone()),
        user_agent: req.user_agent.clone(),
        device_type: req.device_type.clone(),
        device_platform: device_platform.clone(),
        routes: policy.routes.clone(),
        no_routes: policy.no_routes.clone(),
        dns: policy.dns.clone(),
        ipv6,
        vhost: grant.vhost.clone(),
        device_id: grant.facts.device_id.clone(),
        macs: grant.facts.macs.clone(),
    };
    let tunnel = rocserv_proto::ipc::main_secmod::TunnelFacts {
        peer: Some(peer),
        vpn_ipv4: info.ip_remote,
        vpn_ipv6: info.ipv6.map(|l| l.remote),
        device: info.device.clone(),
    };
    if let Some(admitted) = outcome.admitted.as_mut() {
        if !crate::lifecycle::grant(shared, admitted, info, peer).await {
            return refuse(sock, ConnectRefusal::BadCookie, outcome).await;
        }
    }
    // Accounting starts once the connect-script accepted the tunnel.
    match shared
        .secmod
        .session_started(grant.sid, worker, tunnel)
        .await
    {
        Ok(()) => outcome.accounted = true,
        Err(e) => log::warn!(
            "{peer}: session {} of {} not accounted: {}",
            grant.sid,
            grant.username,
            crate::error_chain(&e)
        ),
    }
    if let Some(id) = dtls_id {
        conn.register_dtls(id, dtls);
        outcome.dtls_offered = true;
    }
    log::info!(
        "{peer}: user {} connected: {} ({}, mtu {}){}",
        grant.username,
        device.name,
        link_text(ipv4.map(|(local, remote, _)| (local, remote)), ipv6),
        mtu.data,
        grant
            .vhost
            .as_deref()
            .map(|n| format!(" in [vhost:{n}]"))
            .unwrap_or_default()
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
        ipv4_local: ipv4.map(|(local, _, _)| local),
        ipv4_remote: ipv4.map(|(_, remote, _)| remote),
        user_agent: req.user_agent.clone(),
        hostname: policy
            .hostname
            .clone()
            .or_else(|| req.hostname.clone())
            .unwrap_or_default(),
        policy: std::sync::Arc::clone(&policy),
        ipv6,
        device_id: grant.facts.device_id.clone().unwrap_or_default(),
        device_platform,
        macs: grant.facts.macs.clone(),
        // What the worker told the client (`X-CSTP-DPD`), decided the same way.
        dpd_secs: policy.dpd_secs(outcome.mobile),
        // sec-mod's age of the session (its clock is not ours: an age, not a time).
        session_started: std::time::SystemTime::now()
            .checked_sub(Duration::from_millis(grant.age_ms))
            .unwrap_or(std::time::UNIX_EPOCH),
    });
    // Before the worker hears of the grant: its tunnel's scheduling slice writes main's nice.
    if let Err(e) = crate::worker_priority::tunnel_granted(conn.pid()) {
        log::warn!("{peer}: cannot give the worker its tunnel's CPU priority: {e}");
    }
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

/// IPv6's minimum link MTU (RFC 8200 §5).
const IPV6_MIN_MTU: u16 = 1280;

/// The session's IPv6 lease, if its policy has an `ipv6-network` (`explicit-ipv6` honoured).
fn lease6(
    conn: &mut Conn,
    grant: &SessionGrant,
    policy: &rocserv_proto::policy::Policy,
    predictable: bool,
) -> Result<Option<Ipv6Link>, crate::ip6_pool::Lease6Error> {
    let Some(network) = policy.ipv6_network else {
        return Ok(None);
    };
    let req = crate::ip6_pool::Request {
        sid: grant.sid,
        worker: conn.worker(),
        username: &grant.username,
        network,
        subnet_prefix: policy.ipv6_subnet_prefix,
        predictable,
        explicit: policy.explicit_ipv6,
    };
    conn.lease6(&req).map(Some)
}

/// `local -> remote` of each family the tunnel has, for log lines.
fn link_text(ipv4: Option<(Ipv4Addr, Ipv4Addr)>, ipv6: Option<Ipv6Link>) -> String {
    let v4 = ipv4.map(|(l, r)| format!("{l} -> {r}"));
    let v6 = ipv6.map(|l| format!("{} -> {}/{}", l.local, l.remote, l.prefix));
    [v4, v6]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The client's VPN addresses, for log lines (`-` when it has none of a family).
pub fn vpn_ips(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Link>) -> String {
    let v4 = ipv4.map(|a| a.to_string());
    let v6 = ipv6.map(|l| l.remote.to_string());
    let all: Vec<String> = [v4, v6].into_iter().flatten().collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join(" ")
    }
}

/// `expose-iroutes`: the other clients' iroutes become routes of this one, unless it tunnels
/// everything (no route, or `default`): the list would turn it into a split tunnel.
fn expose_iroutes(policy: &mut rocserv_proto::policy::Policy, known: Vec<IpNet>) {
    if policy.routes.is_empty() || policy.routes.contains(&Route::Default) {
        return;
    }
    for net in known {
        let route = Route::Net(net);
        if !policy.routes.contains(&route) {
            policy.routes.push(route);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn exposed_iroutes_join_a_split_tunnel_only() {
        let known = vec![net("10.9.1.0", 24), net("10.0.0.0", 8)];
        let mut p = rocserv_proto::policy::Policy::default();
        expose_iroutes(&mut p, known.clone());
        assert!(p.routes.is_empty(), "full tunnel stays full");
        p.routes = vec![Route::Default];
        expose_iroutes(&mut p, known.clone());
        assert_eq!(p.routes, [Route::Default]);
        p.routes = vec![Route::Net(net("10.0.0.0", 8))];
        expose_iroutes(&mut p, known);
        assert_eq!(
            p.routes,
            [
                Route::Net(net("10.0.0.0", 8)),
                Route::Net(net("10.9.1.0", 24))
            ]
        );
    }
}
