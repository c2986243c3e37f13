//! The channel to main (fd 3): start-up, new workers, session open/close; and the periodic
//! purge of expired cookies.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rocserv_proto::config::{AcctMethod, AuthMethod, AuthPlan};
use rocserv_proto::error_chain;
use rocserv_proto::ipc::main_secmod::{
    FromSecMod, KeyPin, SecModConfig, SessionGrant, SessionRefusal, ToSecMod,
};
use rocserv_proto::ipc::{self, WorkerId, MAX_MESSAGE};
use rocserv_proto::logevent::Event;
use rocserv_proto::policy::file::Locations;
use rocserv_proto::policy::quota::Limits;
use rocserv_proto::policy::Overrides;
use rocserv_rt::policy_files;
use tokio::sync::mpsc;
use tokio_seqpacket::ancillary::OwnedAncillaryMessage;
use tokio_seqpacket::UnixSeqpacket;

use crate::accounting::{Accounting, EndRequests};
use crate::auth::certificate::Certificate;
use crate::auth::chain::Chain;
use crate::auth::crypt::SALT_LEN;
use crate::auth::pam::Pam;
use crate::auth::plain::Plain;
use crate::auth::script::{Script, HOOK_RUNS};
use crate::auth::AuthBackend;
use crate::keys::ServerKey;
use crate::peers::{BanReports, Origins};
use crate::session_db::SessionDb;
use crate::sessions::{Closed, SessionPolicy, Sessions};
use crate::worker_link::{self, Shared, Vhost};

/// How often expired cookies are dropped from the table.
const PURGE_EVERY: Duration = Duration::from_secs(30);

/// How a run ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Main closed the socket, or `check_only` succeeded: exit 0.
    Done,
    /// Start-up failed (reported to main with `StartFailed`): exit 1.
    StartFailed,
}

/// Errors talking to main.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket failed.
    #[error("socket to main")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded.
    #[error("encoding a message to main")]
    Encode(#[from] ipc::IpcError),
}

/// Serve main until it closes the socket.
pub async fn run(sock: UnixSeqpacket) -> Result<Outcome, ServerError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = [0u8; 64];
    let Some((first, _fds)) = receive(&sock, &mut buf, &mut cmsg).await? else {
        log::warn!("main closed the socket before sending Start");
        return Ok(Outcome::StartFailed);
    };
    let Ok(ToSecMod::Start(config)) = first else {
        return fail_start(
            &sock,
            "the first message from main was not Start".into(),
            false,
        )
        .await;
    };
    // The first login's signature waits for aws-lc's seeding (~40 ms of CPU): start it now, on
    // the other core, beside this start (key, password file, session records). Main listens
    // before sec-mod starts, so it no longer shares the CPU with main's way to listening
    // (doc/performance.md, "2026-12-05, session 9: start-up").
    if !config.check_only {
        crate::keys::warm_up_rng();
    }
    // The cluster link first: its files (credentials, CA) are checked by `rocserv -t` too; its
    // tasks start only for a real run.
    let (cluster, mut cluster_events) = match &config.cluster {
        None => (None, None),
        Some(settings) if config.check_only => match crate::cluster::Store::new(settings) {
            Ok(_) => (None, None),
            Err(reason) => return fail_start(&sock, reason, true).await,
        },
        Some(settings) => match crate::cluster::Cluster::start(settings) {
            Ok((cluster, events)) => (Some(cluster), Some(events)),
            Err(reason) => return fail_start(&sock, reason, false).await,
        },
    };
    let mut store_state = cluster.as_ref().map(|c| c.store.watch());
    let shared = match start_with_cluster(&config, cluster) {
        Ok(shared) => Arc::new(shared),
        // `rocserv -t` prints the problems itself, one line each: no second copy in the log.
        Err(reason) => return fail_start(&sock, reason, config.check_only).await,
    };
    if !config.check_only {
        tokio::spawn(crate::memory::trimmer());
    }
    let groups = if config.auto_select_group {
        // The groups come from the password method (with `auth = certificate` first, the
        // second line's).
        config
            .auth
            .required
            .iter()
            .find(|m| !matches!(m, AuthMethod::Certificate))
            .map(auto_groups)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    send(
        &sock,
        &FromSecMod::Ready {
            key: shared.key.kind(),
            vhost_keys: shared
                .vhosts
                .iter()
                .map(|v| (v.name.clone(), v.key.kind()))
                .collect(),
            groups,
        },
    )
    .await?;
    log::info!(
        "ready: {:?} key, {} authentication",
        shared.key.kind(),
        shared.backend.name()
    );
    for v in &shared.vhosts {
        log::info!(
            "[vhost:{}] ready: {:?} key, {} authentication",
            v.name,
            v.key.kind(),
            v.backend.name()
        );
    }
    if config.check_only {
        return Ok(Outcome::Done);
    }

    let mut purge = tokio::time::interval(PURGE_EVERY);
    // Bounded by main's requests (each SessionOpen or History gets one batch).
    let (out, mut outbox) = mpsc::unbounded_channel::<Vec<FromSecMod>>();
    crate::cluster::sessions::start(&shared);
    loop {
        tokio::select! {
            received = receive(&sock, &mut buf, &mut cmsg) => {
                let Some((msg, fds)) = received? else {
                    log::info!("main closed the socket; exiting");
                    return Ok(Outcome::Done);
                };
                match msg {
                    Ok(msg) => handle(&sock, &shared, &out, msg, fds).await?,
                    Err(e) => log::error!("malformed message from main: {e}"),
                }
            }
            Some(batch) = outbox.recv() => {
                for msg in batch {
                    send(&sock, &msg).await?;
                }
            }
            _ = purge.tick() => {
                let expired = shared.sessions().purge(std::time::Instant::now());
                for sid in expired {
                    shared.origins().forget(sid);
                    log::info!("session {sid} expired");
                }
            }
            () = shared.bans.ready.notified() => {
                for (peer, points) in shared.bans.take() {
                    send(&sock, &FromSecMod::BanPoints { peer, points }).await?;
                }
            }
            Some(event) = next_cluster_event(&mut cluster_events) => {
                if let Some(cluster) = &shared.cluster {
                    crate::cluster::on_event(&shared, cluster, event);
                }
            }
            () = crate::cluster::to_main_ready(shared.cluster.as_ref()) => {
                if let Some(cluster) = &shared.cluster {
                    for notice in cluster.to_main.take() {
                        send(&sock, &FromSecMod::Cluster(notice)).await?;
                    }
                }
            }
            Some(up) = next_store_state(&mut store_state) => {
                send(&sock, &crate::cluster::state_notice(up)).await?;
                if let (true, Some(cluster)) = (up, &shared.cluster) {
                    tokio::spawn(crate::cluster::resync(Arc::clone(&shared), Arc::clone(cluster)));
                }
            }
            () = HOOK_RUNS.ready.notified() => {
                for run in HOOK_RUNS.take() {
                    log::debug!("asking main to run auth hook {} (run {})", run.path.display(), run.id);
                    send(&sock, &FromSecMod::RunAuthHook(Box::new(run))).await?;
                }
            }
            () = shared.accounting.ends.ready.notified() => {
                for (sid, why) in shared.accounting.ends.take() {
                    log::info!("asking main to end session {sid}: {why}");
                    send(&sock, &FromSecMod::EndSession { sid, why }).await?;
                }
            }
        }
    }
}

/// Load everything `config` names; the error is the `StartFailed` reason. Every problem is
/// reported at once (`rocserv -t` must list them all), joined by "; ".
pub fn start(config: &SecModConfig) -> Result<Shared, String> {
    start_with_cluster(config, None)
}

/// [`start`], with the cluster link made by the caller (which owns its event receiver).
fn start_with_cluster(
    config: &SecModConfig,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> Result<Shared, String> {
    let mut problems = Vec::new();
    let rng = SystemRandom::new();
    HOOK_RUNS.set_auth_timeout(Duration::from_secs(config.auth_timeout_secs.max(1)));
    let loaded = load_section(
        &config.server_key,
        &config.server_cert,
        &config.key_pin,
        &config.auth,
        &rng,
        "",
    );
    let default = loaded.map_err(|e| problems.extend(e)).ok();
    // Every vhost's key and auth method is loaded now, so `-t` checks them all and a login
    // never finds a vhost half set up.
    let mut vhosts = Vec::with_capacity(config.vhosts.len());
    for v in &config.vhosts {
        let place = format!("[vhost:{}] ", v.name);
        match load_section(
            &v.server_key,
            &v.server_cert,
            &v.key_pin,
            &v.auth,
            &rng,
            &place,
        ) {
            Ok((key, backend)) => vhosts.push(Vhost {
                name: v.name.clone(),
                key,
                backend,
                deny_roaming: v.deny_roaming,
                policy_files: v.policy_files.clone(),
            }),
            Err(e) => problems.extend(e),
        }
    }
    let ends = Arc::new(EndRequests::default());
    let session_db = open_session_db(config, &ends)
        .map_err(|e| problems.push(e))
        .ok();
    let sinks = sinks(config, &ends, session_db.as_ref().and_then(Option::as_ref))
        .map_err(|e| problems.push(e))
        .ok();
    let (Some((key, backend)), Some(sinks), Some(session_db)) =
        (default.filter(|_| problems.is_empty()), sinks, session_db)
    else {
        return Err(problems.join("; "));
    };
    // A mistyped directory would silently drop every user's restrictions (a missing file
    // is "no override"): say so at start; `rocserv -t` makes it an error.
    let sections =
        std::iter::once(&config.policy_files).chain(config.vhosts.iter().map(|v| &v.policy_files));
    let dirs = sections.flat_map(|l| [&l.per_user_dir, &l.per_group_dir]);
    for dir in dirs.flatten() {
        if !dir.is_dir() {
            log::warn!(
                "{} is not a directory: no per-user or per-group file will be found there",
                dir.display()
            );
        }
    }
    Ok(Shared {
        key,
        backend,
        sessions: Mutex::new(Sessions::new(SessionPolicy {
            cookie_timeout: Duration::from_secs(config.cookie_timeout_secs),
            persistent_cookies: config.persistent_cookies,
        })),
        auth_timeout: Duration::from_secs(config.auth_timeout_secs.max(1)),
        rng,
        origins: Mutex::new(Origins::default()),
        deny_roaming: config.deny_roaming,
        ban_points_wrong_password: config.ban_points_wrong_password,
        bans: BanReports::default(),
        links: worker_link::Links::default(),
        policy_files: config.policy_files.clone(),
        vhosts,
        accounting: Accounting::new(sinks, ends),
        session_db,
        cluster,
    })
}

/// `session-db`: open it (creating it and its directory) and start its writer; with
/// `check_only` (`rocserv -t`) only check that it could be, changing nothing on disk.
fn open_session_db(
    config: &SecModConfig,
    ends: &Arc<EndRequests>,
) -> Result<Option<SessionDb>, String> {
    let Some(path) = &config.session_db else {
        return Ok(None);
    };
    if config.check_only {
        return crate::session_db::check(path).map(|()| None);
    }
    SessionDb::open(path, Arc::clone(ends))
        .map(Some)
        .map_err(|e| format!("session-db: {} (set `session-db = none` to run without session records and quotas)", error_chain(&e)))
}

/// One section's key (checked against its certificate) and authentication backend; every
/// problem is returned, each prefixed with `place` (`[vhost:NAME] `, empty for the default).
pub(crate) fn load_section(
    key_path: &Path,
    cert_path: &Path,
    key_pin: &KeyPin,
    plan: &AuthPlan,
    rng: &SystemRandom,
    place: &str,
) -> Result<(ServerKey, Box<dyn AuthBackend>), Vec<String>> {
    let key = read_pin(key_pin)
        .map_err(|e| format!("{place}{e}"))
        .and_then(|pin| {
            let loaded = ServerKey::load_files(key_path, cert_path, pin.as_deref());
            if let Some(mut pin) = pin {
                // Overwrite the PIN before its String is freed.
                pin.replace_range(.., &"\0".repeat(pin.len()));
                std::hint::black_box(&pin);
            }
            loaded.map_err(|e| {
                format!(
                    "{place}server key {} / certificate {}: {}",
                    key_path.display(),
                    cert_path.display(),
                    error_chain(&e)
                )
            })
        });
    let backend = plan_backend(plan, rng, place);
    match (key, backend) {
        (Ok(key), Ok(backend)) => Ok((key, backend)),
        (key, backend) => Err([key.err(), backend.err()].into_iter().flatten().collect()),
    }
}

/// The PIN of an encrypted key: `key-pin`, else the first line of `pin-file`, else none.
fn read_pin(key_pin: &KeyPin) -> Result<Option<String>, String> {
    if let Some(pin) = &key_pin.pin {
        return Ok(Some(pin.0.clone()));
    }
    let Some(path) = &key_pin.file else {
        return Ok(None);
    };
    let mut text = std::fs::read_to_string(path)
        .map_err(|e| format!("pin-file {}: cannot read: {e}", path.display()))?;
    let pin = text.lines().next().unwrap_or_default().to_owned();
    text.replace_range(.., &"\0".repeat(text.len()));
    std::hint::black_box(&text);
    Ok(Some(pin))
}

/// The backend of a section's plan: its one method, or a [`Chain`] of the `auth` lines and
/// the certificate alternative.
fn plan_backend(
    plan: &AuthPlan,
    rng: &SystemRandom,
    place: &str,
) -> Result<Box<dyn AuthBackend>, String> {
    let method = |m: &AuthMethod| -> Result<Box<dyn AuthBackend>, String> {
        match m {
            AuthMethod::Certificate => {
                let settings = plan.cert.as_ref().ok_or_else(|| {
                    format!("{place}`certificate` without `ca-cert` and `cert-user-oid`")
                })?;
                Certificate::load(settings)
                    .map(|c| Box::new(c) as Box<dyn AuthBackend>)
                    .map_err(|e| format!("{place}certificate authentication: {e}"))
            }
            other => backend_for(other, rng, place),
        }
    };
    match (plan.required.as_slice(), plan.alternatives.is_empty()) {
        ([], _) => Err(format!("{place}no authentication method")),
        ([only], true) => method(only),
        (required, _) => {
            let required = required
                .iter()
                .map(|m| method(m).map(Arc::from))
                .collect::<Result<Vec<Arc<dyn AuthBackend>>, String>>()?;
            let alone = if plan.certificate_alone() {
                Some(Arc::from(method(&AuthMethod::Certificate)?))
            } else {
                None
            };
            Ok(Box::new(Chain::new(required, alone)))
        }
    }
}

/// The backend of one method (`auth` or `enable-auth` line); the error names `place`.
fn backend_for(
    method: &AuthMethod,
    rng: &SystemRandom,
    place: &str,
) -> Result<Box<dyn AuthBackend>, String> {
    match method {
        AuthMethod::Plain { passwd, otp } => {
            let mut salt = [0u8; SALT_LEN];
            rng.fill(&mut salt)
                .map_err(|_| "system random number generator failed".to_owned())
                .and_then(|()| {
                    let plain = Plain::with_otp(passwd.clone(), otp.clone(), &salt);
                    let users = plain
                        .check_file()
                        .map_err(|e| format!("{place}plain authentication: {e}"))?;
                    if let Some(passwd) = passwd {
                        log::info!(
                            "{place}password file {} has {users} user(s)",
                            passwd.display()
                        );
                    }
                    match plain.check_otp_file() {
                        Some(Ok((path, tokens))) => log::info!(
                            "{place}one-time password file {} has {tokens} token(s)",
                            path.display()
                        ),
                        Some(Err(e)) => return Err(format!("{place}plain authentication: {e}")),
                        None => {}
                    }
                    Ok(Box::new(plain) as Box<dyn AuthBackend>)
                })
        }
        AuthMethod::Pam { service, .. } => {
            // The parser checked the name; a Start from a bad main is checked again here.
            if !rocserv_proto::config::valid_pam_service(service) {
                return Err(format!("{place}invalid PAM service name {service:?}"));
            }
            log::info!("{place}PAM service {service}");
            Ok(Box::new(Pam::new(service.clone())))
        }
        // main runs the hook (it checks the path against its own configuration).
        AuthMethod::Script {
            path, timeout_secs, ..
        } => Ok(Box::new(Script::new(path.clone(), *timeout_secs))),
        AuthMethod::Radius {
            config,
            groupconfig,
            nas_identifier,
        } => {
            let client = crate::radius_client::Client::load(config, true, false)
                .map_err(|e| format!("{place}radius authentication: {e}"))?;
            log::info!(
                "{place}RADIUS authentication: {} server(s) from {}",
                client.auth.len(),
                config.display()
            );
            Ok(Box::new(crate::auth::radius::Radius::new(
                client,
                *groupconfig,
                nas_identifier.clone(),
            )))
        }
        other => Err(format!(
            "{place}authentication method `{}` is not available",
            other.name()
        )),
    }
}

/// The accounting sinks `config` asks for (RADIUS accounting, the session database); the
/// error names what could not be set up.
fn sinks(
    config: &SecModConfig,
    _ends: &Arc<EndRequests>,
    session_db: Option<&SessionDb>,
) -> Result<Vec<Box<dyn crate::accounting::Sink>>, String> {
    let mut sinks: Vec<Box<dyn crate::accounting::Sink>> = Vec::new();
    if let Some(db) = session_db {
        sinks.push(Box::new(db.clone()));
    }
    let sections = std::iter::once((None, &config.auth)).chain(
        config
            .vhosts
            .iter()
            .map(|v| (Some(v.name.clone()), &v.auth)),
    );
    let mut problems = Vec::new();
    for (vhost, plan) in sections {
        let Some(AcctMethod::Radius {
            config: file,
            nas_identifier,
        }) = &plan.acct
        else {
            continue;
        };
        let place = vhost
            .as_ref()
            .map(|v| format!("[vhost:{v}] "))
            .unwrap_or_default();
        match crate::radius_client::Client::load(file, false, true) {
            Ok(client) => {
                log::info!(
                    "{place}RADIUS accounting: {} server(s) from {}",
                    client.acct.len(),
                    file.display()
                );
                sinks.push(Box::new(crate::radius_acct::RadiusAcct::start(
                    client,
                    nas_identifier.clone(),
                    vhost,
                )));
            }
            Err(e) => problems.push(format!("{place}radius accounting: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(sinks)
    } else {
        Err(problems.join("; "))
    }
}

/// `auto-select-group`'s list for `auth`; a password file that cannot be read gives none
/// (the start already reported why).
fn auto_groups(auth: &AuthMethod) -> Vec<String> {
    let groups = match auth {
        AuthMethod::Plain {
            passwd: Some(passwd),
            ..
        } => crate::auth::groups::from_passwd(passwd).unwrap_or_else(|e| {
            log::error!("auto-select-group: {e}");
            Vec::new()
        }),
        // `plain[otp=FILE]` alone: no groups.
        AuthMethod::Plain { passwd: None, .. } => Vec::new(),
        AuthMethod::Pam { gid_min, .. } => crate::auth::groups::from_system(*gid_min),
        AuthMethod::Certificate | AuthMethod::Radius { .. } | AuthMethod::Script { .. } => {
            Vec::new()
        }
    };
    log::info!("auto-select-group offers {} group(s)", groups.len());
    groups
}

async fn fail_start(
    sock: &UnixSeqpacket,
    reason: String,
    quiet: bool,
) -> Result<Outcome, ServerError> {
    if !quiet {
        log::error!("cannot start: {reason}");
    }
    send(sock, &FromSecMod::StartFailed { reason }).await?;
    Ok(Outcome::StartFailed)
}

/// Answers computed in tasks of their own, sent by the loop in order (a batch at a time).
type Outbox = mpsc::UnboundedSender<Vec<FromSecMod>>;

async fn handle(
    sock: &UnixSeqpacket,
    shared: &Arc<Shared>,
    out: &Outbox,
    msg: ToSecMod,
    mut fds: Vec<OwnedFd>,
) -> Result<(), ServerError> {
    match msg {
        ToSecMod::Start(_) => log::warn!("ignoring a second Start from main"),
        ToSecMod::NewWorker { worker, peer } => {
            if fds.len() != 1 {
                log::error!(
                    "NewWorker {} ({peer}) came with {} fds instead of 1",
                    worker.0,
                    fds.len()
                );
                return Ok(());
            }
            let Some(fd) = fds.pop() else { return Ok(()) };
            let sock = crate::fd::set_nonblocking(&fd).and_then(|()| UnixSeqpacket::try_from(fd));
            match sock {
                Ok(sock) => {
                    log::debug!("{peer} worker {}: channel open", worker.0);
                    // Registered here, not in the task, so that a SessionOpen can never
                    // overtake it.
                    let end = shared.links.open(worker);
                    let shared = Arc::clone(shared);
                    tokio::spawn(async move {
                        worker_link::serve(sock, worker, peer, Arc::clone(&shared), end).await;
                        shared.links.gone(worker);
                    });
                }
                Err(e) => log::error!("NewWorker {} ({peer}): bad socket: {e}", worker.0),
            }
        }
        ToSecMod::SessionOpen {
            worker,
            peer,
            cookie,
        } => {
            // The worker has sent CONNECT: its login phase is over, and an honest worker closed
            // its channel before (doc/security/signing-oracle.md). End the link, granted or not,
            // so that a compromised worker in its tunnel phase cannot reach sec-mod.
            shared.links.close(worker);
            // Answered from a task of its own: reading the user's files and the session
            // database may take seconds on a slow disk, and sec-mod's loop must not wait.
            let (shared, out) = (Arc::clone(shared), out.clone());
            tokio::spawn(async move {
                let result = open_session(&shared, worker, peer, &cookie).await;
                match &result {
                    Ok(grant) => {
                        crate::logger::event(
                            log::Level::Info,
                            &Event::SessionInitiated {
                                user: &grant.username,
                                session: &grant.sid.to_string(),
                            },
                        );
                        log::info!(
                            "session {} opened by worker {} (user '{}')",
                            grant.sid,
                            worker.0,
                            grant.username.escape_debug()
                        );
                    }
                    Err(refusal) => {
                        log::info!("worker {}: cookie refused ({refusal:?})", worker.0)
                    }
                }
                let _ = out.send(vec![FromSecMod::SessionOpened { worker, result }]);
            });
        }
        ToSecMod::SessionStarted {
            sid,
            worker,
            tunnel,
        } => {
            let Some(session) = shared.sessions().describe(sid) else {
                log::warn!("start of a tunnel of unknown session {sid}; not accounted");
                return Ok(());
            };
            if let Some(cluster) = &shared.cluster {
                crate::cluster::sessions::started(shared, cluster, sid, worker);
            }
            shared.accounting.started(crate::accounting::Record {
                sid,
                worker,
                username: session.username,
                group: session.group,
                vhost: session.vhost,
                facts: session.login.facts,
                cert_subject: session.login.cert_subject,
                tunnel,
                started: std::time::SystemTime::now(),
                limits: session.limits,
            });
        }
        ToSecMod::SessionStats {
            sid,
            worker,
            rx,
            tx,
        } => shared.accounting.interim(sid, worker, rx, tx),
        ToSecMod::SessionClose { sid, reason, end } => {
            if let Some((worker, end)) = end {
                shared.accounting.stopped(sid, worker, end);
            }
            let user = shared.sessions().describe(sid).map(|s| s.username);
            let cookie_sha256 = shared.sessions().cookie_sha256_of(sid);
            let closed = shared
                .sessions()
                .close(sid, reason, std::time::Instant::now());
            if let Some(cluster) = &shared.cluster {
                crate::cluster::sessions::closed(
                    shared,
                    cluster,
                    sid,
                    end.map(|(worker, _)| worker),
                    closed == Closed::Deleted,
                    user.clone().zip(cookie_sha256),
                );
            }
            match closed {
                Closed::Deleted => {
                    shared.origins().forget(sid);
                    if let Some(user) = &user {
                        crate::logger::event(
                            log::Level::Info,
                            &Event::SessionInvalidated {
                                user,
                                session: &sid.to_string(),
                            },
                        );
                    }
                    log::info!("session {sid} closed ({reason:?}); cookie deleted")
                }
                Closed::StillActive => {
                    log::info!("session {sid}: one tunnel closed ({reason:?}); others remain")
                }
                Closed::KeptUntil(_) => {
                    log::info!("session {sid} closed ({reason:?}); cookie kept for reconnects")
                }
                Closed::Unknown => log::debug!("close of unknown session {sid}"),
            }
        }
        ToSecMod::AuthHookDone { id, outcome } => HOOK_RUNS.done(id, outcome),
        ToSecMod::Cluster(notice) => match &shared.cluster {
            Some(cluster) => {
                tokio::spawn(crate::cluster::on_notice(Arc::clone(cluster), notice));
            }
            None => log::debug!("cluster notice without cluster-store: {notice:?}"),
        },
        ToSecMod::ClusterQuery { id, query } => match &shared.cluster {
            // Off the loop: a store round trip may take up to its timeout.
            Some(cluster) => {
                tokio::spawn(crate::cluster::on_query(
                    Arc::clone(cluster),
                    id,
                    query,
                    out.clone(),
                ));
            }
            None => {
                let answer = ipc::cluster::ClusterAnswer::Unavailable {
                    why: "no cluster-store".to_owned(),
                };
                send(sock, &FromSecMod::ClusterAnswer { id, answer }).await?;
            }
        },
        ToSecMod::ListSessions => {
            let rows = crate::listing::summaries(&shared.sessions());
            let pages = ipc::ctl::pages(rows, ipc::ctl::PAGE_BUDGET);
            let last = pages.len().saturating_sub(1);
            for (i, sessions) in pages.into_iter().enumerate() {
                let more = i < last;
                send(sock, &FromSecMod::SessionList { sessions, more }).await?;
            }
        }
        ToSecMod::History { user, limit } => {
            // Off the loop too: the database may be slow.
            let (shared, out) = (Arc::clone(shared), out.clone());
            tokio::spawn(async move {
                let answer = match &shared.session_db {
                    None => Err("no session database (`session-db = none`)".to_owned()),
                    Some(db) => tokio::time::timeout(DB_TIMEOUT, db.history(user, limit))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "the session database took more than {DB_TIMEOUT:?}"
                            ))
                        }),
                };
                let (records, error) = match answer {
                    Ok(records) => (records, None),
                    Err(e) => {
                        log::error!("show history: {e}");
                        (Vec::new(), Some(e))
                    }
                };
                let pages = ipc::ctl::pages(records, ipc::ctl::PAGE_BUDGET);
                let last = pages.len().saturating_sub(1);
                let batch = pages
                    .into_iter()
                    .enumerate()
                    .map(|(i, records)| {
                        let more = i < last;
                        FromSecMod::History {
                            records,
                            more,
                            error: error.clone().filter(|_| !more),
                        }
                    })
                    .collect();
                let _ = out.send(batch);
            });
        }
    }
    Ok(())
}

/// How long a query of the session database (a CONNECT's usage, occtl's history) may take.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

/// The most the encoded per-user and per-group files may take in a `SessionOpened` answer (an
/// IPC message holds 64 KiB; the rest of the grant is small). main sends the resolved policy on
/// to the worker and checks that message's size too.
const MAX_OVERRIDES: usize = MAX_MESSAGE - 4 * 1024;

/// How long reading one login's per-user and per-group files may take.
pub(crate) const POLICY_FILES_TIMEOUT: Duration = Duration::from_secs(5);

/// Open the session of `cookie` for a CONNECT from `peer`: read the group's and the user's
/// files (each time, so an edit applies to the next login), check `deny-roaming` as they
/// decide it, then grant with the files' values for main to lay over the global policy.
async fn open_session(
    shared: &Arc<Shared>,
    worker: WorkerId,
    peer: IpAddr,
    cookie: &str,
) -> Result<SessionGrant, SessionRefusal> {
    // `cluster-store`: a cookie another node issued becomes a session of this table first.
    // One budget for all of this CONNECT's store round trips (main's too: it is told).
    let budget = crate::cluster::store::Budget::new(format!("CONNECT of worker {}", worker.0));
    if let Some(cluster) = &shared.cluster {
        crate::cluster::sessions::import(shared, cluster, cookie, &budget).await;
    }
    let now = std::time::Instant::now();
    let mut overrides = Overrides::default();
    // The session's section (vhost) decides, unless the user's or group's file does; the
    // files are that section's.
    let (mut deny_roaming, locations) = section_of(shared, cookie);
    let who = shared.sessions().peek(cookie, now);
    if let Some((user, group)) = who.filter(|_| !locations.is_empty()) {
        let (u, g) = (user.clone(), group.clone());
        // Bounded: a configuration directory on a hung network mount must not stall every
        // other request sec-mod serves.
        let loaded = tokio::time::timeout(
            POLICY_FILES_TIMEOUT,
            tokio::task::spawn_blocking(move || policy_files::load(&locations, &u, &g)),
        )
        .await;
        let Ok(loaded) = loaded else {
            log::error!(
                "worker {}: CONNECT of user '{}' refused: reading the per-user/group files took \
                 more than {POLICY_FILES_TIMEOUT:?}",
                worker.0,
                user.escape_debug()
            );
            return Err(SessionRefusal::PolicyFile);
        };
        let loaded = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                log::error!(
                    "worker {}: CONNECT of user '{}' (group '{}') refused: {e}",
                    worker.0,
                    user.escape_debug(),
                    group.escape_debug()
                );
                return Err(SessionRefusal::PolicyFile);
            }
            Err(e) => {
                log::error!("worker {}: reading the user's files failed: {e}", worker.0);
                return Err(SessionRefusal::PolicyFile);
            }
        };
        for warning in &loaded.warnings {
            log::warn!("{warning}");
        }
        // The files travel to main in one IPC message: files too large for it refuse this
        // login (logged) instead of failing the answer, which would end sec-mod.
        if let Err(e) = ipc::encode(&loaded.overrides)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                (bytes.len() <= MAX_OVERRIDES)
                    .then_some(())
                    .ok_or_else(|| format!("{} bytes, at most {MAX_OVERRIDES}", bytes.len()))
            })
        {
            log::error!(
                "worker {}: CONNECT of user '{}' (group '{}') refused: their per-user/group \
                 files hold too much to send ({e}); shorten the route lists",
                worker.0,
                user.escape_debug(),
                group.escape_debug()
            );
            return Err(SessionRefusal::PolicyFile);
        }
        overrides = loaded.overrides;
        deny_roaming = [&overrides.user, &overrides.group]
            .into_iter()
            .flatten()
            .find_map(|f| f.deny_roaming)
            .unwrap_or(deny_roaming);
    }
    if deny_roaming && !roaming_allowed(shared, peer, cookie) {
        log::info!(
            "worker {}: cookie used from another address (deny-roaming)",
            worker.0
        );
        return Err(SessionRefusal::UnknownCookie);
    }
    let described = {
        let sessions = shared.sessions();
        sessions
            .sid_of(cookie)
            .and_then(|sid| sessions.describe(sid))
    };
    // The device binding again (crate::device checked it at login): a file edited since, or a
    // cookie reused for a reconnect after a binding was added, must not bypass it.
    if let Some(described) = &described {
        let files = [
            described.login.policy.as_deref(),
            overrides.user.as_deref(),
            overrides.group.as_deref(),
        ];
        let binding = rocserv_proto::policy::device::Binding::of(files.into_iter().flatten());
        if let Err(why) = binding.check(&described.login.facts) {
            log::warn!(
                "worker {}: CONNECT of user '{}' from {peer} refused: device not allowed: {why} \
                 ({})",
                worker.0,
                described.username.escape_debug(),
                crate::device::seen(&described.login.facts)
            );
            return Err(SessionRefusal::UnknownCookie);
        }
    }
    // The backend's values (kept in the session) go over the files just read; the usage
    // limits come from all three.
    overrides.auth = described.and_then(|d| d.login.policy);
    let limits = Limits::of(&overrides);
    // Bound first: the table's lock must not be held across the await.
    let user = shared.sessions().peek(cookie, now).map(|(user, _)| user);
    if let Some(user) = user {
        check_quota(shared, worker, &user, limits).await?;
    }
    let mut grant = shared.sessions().open(cookie, now)?;
    grant.cluster_spent = budget.is_spent();
    grant.cluster_store_used_ms = u32::try_from(budget.used().as_millis()).unwrap_or(u32::MAX);
    grant.overrides = overrides;
    shared.sessions().set_limits(grant.sid, limits);
    Ok(grant)
}

/// Refuse a CONNECT of `user` whose usage reached `limits` (logged), or whose usage cannot be
/// read while a limit is set: a limit that cannot be checked would not be one.
async fn check_quota(
    shared: &Shared,
    worker: WorkerId,
    user: &str,
    limits: Limits,
) -> Result<(), SessionRefusal> {
    if limits.is_none() {
        return Ok(());
    }
    let refuse = |why: &str| {
        log::error!(
            "worker {}: CONNECT of user '{}' refused: {why}",
            worker.0,
            user.escape_debug()
        );
        Err(SessionRefusal::Quota)
    };
    let Some(db) = &shared.session_db else {
        return refuse(
            "their files set max-session-time-per-day or traffic-quota, which need a \
             session-db (it is `none`)",
        );
    };
    let usage = tokio::time::timeout(DB_TIMEOUT, db.usage(user, limits)).await;
    match usage {
        Err(_) => refuse(&format!(
            "their usage could not be read from the session database within {DB_TIMEOUT:?}"
        )),
        Ok(Err(e)) => refuse(&format!("their usage could not be read: {e}")),
        Ok(Ok(usage)) => match limits.exceeded(usage) {
            Some(exceeded) => refuse(&exceeded.to_string()),
            None => Ok(()),
        },
    }
}

/// `deny-roaming` and the per-user/group file locations of the section (vhost) the session of
/// `cookie` was created in.
fn section_of(shared: &Shared, cookie: &str) -> (bool, Locations) {
    let sessions = shared.sessions();
    let vhost = sessions
        .vhost_of(cookie)
        .and_then(|name| shared.vhosts.iter().find(|v| v.name == name));
    match vhost {
        Some(v) => (v.deny_roaming, v.policy_files.clone()),
        None => (shared.deny_roaming, shared.policy_files.clone()),
    }
}

/// `deny-roaming` (protocol.md §6.1): the worker presenting `cookie` serves the address that
/// logged in. An unknown cookie passes here and is refused by the session table.
fn roaming_allowed(shared: &Shared, peer: IpAddr, cookie: &str) -> bool {
    let sid = shared.sessions().sid_of(cookie);
    sid.is_none_or(|sid| shared.origins().same_origin(peer, sid))
}

/// The next event of the cluster tasks; never ready without a cluster.
async fn next_cluster_event(
    events: &mut Option<mpsc::Receiver<crate::cluster::Event>>,
) -> Option<crate::cluster::Event> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The store's state after its next change; never ready without a cluster.
async fn next_store_state(
    state: &mut Option<tokio::sync::watch::Receiver<Option<bool>>>,
) -> Option<bool> {
    let Some(rx) = state else {
        return std::future::pending().await;
    };
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(up) = *rx.borrow_and_update() {
            return Some(up);
        }
    }
}

/// Receive one message and the fds beside it; `None` at end of stream.
async fn receive(
    sock: &UnixSeqpacket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> Result<Option<(Result<ToSecMod, ipc::IpcError>, Vec<OwnedFd>)>, ServerError> {
    let (info, ancillary) = sock.recv_with_ancillary(buf, cmsg).await?;
    let mut fds = Vec::new();
    for message in ancillary.into_messages() {
        if let OwnedAncillaryMessage::FileDescriptors(received) = message {
            fds.extend(received);
        }
    }
    if info.bytes_read() == 0 {
        return Ok(None);
    }
    let msg = match buf.get(..info.bytes_read()) {
        Some(bytes) if !info.truncated() => ipc::decode(bytes),
        Some(_) | None => Err(ipc::IpcError::TooLarge(info.bytes_read())),
    };
    Ok(Some((msg, fds)))
}

/// Send `msg` to main. Only the socket failing is fatal: a message that cannot be encoded
/// (too large: answers are built from the cluster store, which any store writer fills) is
/// logged and dropped, or, for a cluster answer, replaced by `Unavailable` so that main's
/// question is answered at once rather than timed out. sec-mod never exits over it (its
/// session table, every idle cookie, would go with it).
async fn send(sock: &UnixSeqpacket, msg: &FromSecMod) -> Result<(), ServerError> {
    let Some(bytes) = encode_or_fallback(msg) else {
        return Ok(());
    };
    sock.send(&bytes).await?;
    Ok(())
}

/// The bytes of `msg`, or of its small stand-in when it cannot be encoded (see [`send`]).
fn encode_or_fallback(msg: &FromSecMod) -> Option<Vec<u8>> {
    let e = match ipc::encode(msg) {
        Ok(bytes) => return Some(bytes),
        Err(e) => e,
    };
    let FromSecMod::ClusterAnswer { id, .. } = msg else {
        log::error!("a message to main could not be encoded and was dropped: {e}");
        return None;
    };
    log::error!("cluster answer {id} could not be encoded ({e}); main is told Unavailable");
    let stand_in = FromSecMod::ClusterAnswer {
        id: *id,
        answer: ipc::cluster::ClusterAnswer::Unavailable {
            why: "answer too large".to_owned(),
        },
    };
    ipc::encode(&stand_in)
        .map_err(|e| log::error!("cluster answer {id}: not even Unavailable encodes: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::cluster::{ClusterAnswer, ClusterStatus};

    #[test]
    fn cluster_answer_too_large_becomes_unavailable() {
        // What any store writer can cause: thousands of long node names.
        let nodes: Vec<String> = (0..2000).map(|i| format!("{i:0>64}")).collect();
        let msg = FromSecMod::ClusterAnswer {
            id: 9,
            answer: ClusterAnswer::Status(ClusterStatus {
                node: "a".into(),
                store_up: true,
                nodes,
            }),
        };
        assert!(
            ipc::encode(&msg).is_err(),
            "the test needs an oversized answer"
        );
        let bytes = encode_or_fallback(&msg).expect("a stand-in is sent");
        let back: FromSecMod = ipc::decode(&bytes).unwrap();
        assert!(
            matches!(
                back,
                FromSecMod::ClusterAnswer {
                    id: 9,
                    answer: ClusterAnswer::Unavailable { .. }
                }
            ),
            "{back:?}"
        );
    }

    #[test]
    fn other_oversized_cluster_messages_are_dropped_not_fatal() {
        let msg = FromSecMod::StartFailed {
            reason: "x".repeat(MAX_MESSAGE + 1),
        };
        assert_eq!(encode_or_fallback(&msg), None);
        let small = FromSecMod::Cluster(ipc::cluster::FromCluster::StoreState { up: true });
        assert!(encode_or_fallback(&small).is_some());
    }
}
