//! Around one tunnel's life: admission by `max-same-clients` (the slot is the connection
//! record's, [`crate::conn::Conn`]), the connect-script before the tunnel is granted, the
//! host-update-script after, and at the end the counters and the disconnect-script
//! (protocol.md §6.1, §8.1).
//!
//! Only the task of the connection concerned ever waits here: a connect-script that takes 5 s
//! delays that one client's CONNECT answer, never the accept loop or another worker's task
//! (no lock is held across an await).

use log::Level;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rocserv_proto::config::Config;
use rocserv_proto::ipc::main_secmod::SessionGrant;
use rocserv_proto::logevent::Event;

use crate::conn::Conn;
use crate::counters::Counters;
use crate::scripts::{self, Kind, SessionInfo, Stats, SCRIPT_TIMEOUT};
use crate::state::Shared;

/// A connection that passed `max-same-clients` (its record holds the user slot).
#[derive(Debug)]
pub struct Admitted {
    /// The configuration in force when it connected (scripts, lists for the scripts).
    config: Arc<Config>,
    /// Set when the tunnel was granted (connect-script passed): the disconnect-script runs
    /// only then.
    granted: Option<(SessionInfo, Instant)>,
}

impl Admitted {
    /// When the tunnel was granted, if it was.
    pub fn started(&self) -> Option<Instant> {
        self.granted.as_ref().map(|(_, t)| *t)
    }
}

/// `max-same-clients`: `None` (logged) when the user already has as many other sessions with
/// a tunnel as allowed; the CONNECT is then refused with 401 (protocol.md §6.1).
pub fn admit(
    conn: &mut Conn,
    grant: &SessionGrant,
    peer: SocketAddr,
    policy: &rocserv_proto::policy::Policy,
    config: Arc<Config>,
) -> Option<Admitted> {
    // This node's count; with `cluster-store` the other nodes' tunnels are counted (and this
    // one reserved) after, by `crate::cluster::sessions::admit`.
    let max = policy.max_same_clients;
    if !conn.admit_user(&grant.username, grant.sid, max) {
        log::info!(
            "{peer}: CONNECT of {} refused: max-same-clients ({max}) reached",
            grant.username
        );
        return None;
    }
    Some(Admitted {
        config,
        granted: None,
    })
}

/// The tunnel is ready to be granted: run the connect-script, if any. `false` (logged) =
/// refuse the client; the disconnect-script will not run.
pub async fn grant(
    shared: &Shared,
    admitted: &mut Admitted,
    info: SessionInfo,
    peer: SocketAddr,
) -> bool {
    let user = info.username.clone();
    crate::logger::event(Level::Info, &Event::NewSession { user: &user, peer });
    if let Some(script) = admitted.config.connect_script.clone() {
        let env = scripts::environment(Kind::Connect, &info, None);
        let label = format!("user {}", info.username);
        if let Err(e) = scripts::run(Kind::Connect, &script, env, &label, SCRIPT_TIMEOUT).await {
            crate::logger::event(Level::Info, &Event::ScriptRefused { user: &user, peer });
            log::info!(
                "{peer}: CONNECT of {} refused: connect-script {}: {}",
                info.username,
                script.display(),
                crate::error_chain(&e)
            );
            return false;
        }
    }
    crate::logger::event(Level::Info, &Event::LoggedIn { user: &user, peer });
    log::info!(
        "{peer}: session started: user {}, vpn-ip {}, device {}",
        info.username,
        crate::connect::vpn_ips(info.ip_remote, info.ipv6),
        info.device
    );
    Counters::add(&shared.counters.sessions, 1);
    if admitted.config.use_utmp {
        crate::utmp::login(info.id, &info.device, &info.username, info.ip_real);
    }
    admitted.granted = Some((info, Instant::now()));
    true
}

/// After the tunnel went to the worker: the host-update-script, in its own task, if the
/// client sent a host name.
pub fn host_update(admitted: &Admitted) {
    let (Some(script), Some((info, _))) = (&admitted.config.host_update_script, &admitted.granted)
    else {
        return;
    };
    if info.hostname.is_none() {
        return;
    }
    let env = scripts::environment(Kind::HostUpdate, info, None);
    let label = format!("user {}", info.username);
    let script = script.clone();
    tokio::spawn(async move {
        if let Err(e) = scripts::run(Kind::HostUpdate, &script, env, &label, SCRIPT_TIMEOUT).await {
            log::warn!(
                "host-update-script {}: {}",
                script.display(),
                crate::error_chain(&e)
            );
        }
    });
}

/// The connection is gone: count its bytes, run the disconnect-script (if the tunnel had been
/// granted). Call after the connection's record released everything: the script delays
/// nothing but this task.
pub async fn ended(shared: &Shared, admitted: Admitted, rx: u64, tx: u64) {
    let Some((info, started)) = admitted.granted else {
        return;
    };
    if admitted.config.use_utmp {
        crate::utmp::logout(info.id, &info.device);
    }
    Counters::add(&shared.counters.rx_bytes, rx);
    Counters::add(&shared.counters.tx_bytes, tx);
    let Some(script) = &admitted.config.disconnect_script else {
        return;
    };
    let stats = Stats {
        bytes_in: rx,
        bytes_out: tx,
        duration: started.elapsed(),
    };
    let env = scripts::environment(Kind::Disconnect, &info, Some(stats));
    let label = format!("user {}", info.username);
    if let Err(e) = scripts::run(Kind::Disconnect, script, env, &label, SCRIPT_TIMEOUT).await {
        log::warn!(
            "disconnect-script {} (user {}): {}",
            script.display(),
            info.username,
            crate::error_chain(&e)
        );
    }
}

/// Whole seconds since `started`, for the "session ended" line.
pub fn duration_secs(started: Option<Instant>) -> u64 {
    started.map_or(0, |t| t.elapsed().as_secs())
}
