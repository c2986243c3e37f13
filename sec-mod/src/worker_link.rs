//! One worker's channel: the signature for its TLS handshake and its client's login
//! conversation.
//!
//! The worker is untrusted (it parses the internet): every request is decoded strictly, a
//! malformed one ends the channel with one log line, and identity (worker id, client address)
//! comes from main's `NewWorker`, never from the worker.
//!
//! The key is not an oracle for a compromised worker (doc/security/signing-oracle.md): a link signs at
//! most once, only before its first login request, and only what a TLS server signs in its
//! handshake ([`rocserv_proto::ipc::signable`]); anything else ends the link. Once main asked
//! for the session of this worker (`SessionOpen`, on CONNECT) the link ends too ([`Links`]): a
//! worker in its tunnel phase has nothing to ask sec-mod.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rocserv_proto::ipc::signable;
use rocserv_proto::ipc::worker_secmod::{AuthStep, ClientFacts, FromSecMod, ToSecMod};
use rocserv_proto::ipc::{self, WorkerId, MAX_MESSAGE};
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};
use tokio_seqpacket::UnixSeqpacket;

use crate::auth::{Attempt, AuthBackend, Event, Granted, Login, Rejection, Verdict};
use crate::keys::ServerKey;
use crate::peers::{BanReports, Origins};
use crate::sessions::{IssueError, LoginFacts, SessionSeed, Sessions, COOKIE_BYTES};

/// Failed logins allowed per worker connection (ocserv `MAX_PASSWORD_TRIES`, plain backend).
pub const MAX_ATTEMPTS: u32 = 3;

/// What every worker task shares.
pub struct Shared {
    pub key: ServerKey,
    pub backend: Box<dyn AuthBackend>,
    pub sessions: Mutex<Sessions>,
    pub auth_timeout: Duration,
    pub rng: SystemRandom,
    /// Client addresses of workers and sessions (`deny-roaming`).
    pub origins: Mutex<Origins>,
    pub deny_roaming: bool,
    /// `ban-points-wrong-password`, queued for main on each failed login.
    pub ban_points_wrong_password: u32,
    pub bans: BanReports,
    /// The open worker links, so that a `SessionOpen` can end one.
    pub links: Links,
    /// Where the per-user and per-group files are (read at each `SessionOpen`).
    pub policy_files: rocserv_proto::policy::file::Locations,
    /// The `[vhost:NAME]` sections (`key`/`backend` above are the default section's).
    pub vhosts: Vec<Vhost>,
    /// The tunnels' accounting (RADIUS, session database) and its requests to end sessions.
    pub accounting: crate::accounting::Accounting,
    /// `session-db` (ours): records, usage and quotas; `None` when off.
    pub session_db: Option<crate::session_db::SessionDb>,
    /// `cluster-store` (ours): the shared store and the other nodes; `None`: a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// One `[vhost:NAME]` section's key and authentication backend.
pub struct Vhost {
    /// Lower case, as in the configuration.
    pub name: String,
    pub key: ServerKey,
    pub backend: Box<dyn AuthBackend>,
    /// Its `deny-roaming` (sessions created in it).
    pub deny_roaming: bool,
    /// Its per-user and per-group files.
    pub policy_files: rocserv_proto::policy::file::Locations,
}

impl Shared {
    /// Lock the session table; a panic elsewhere cannot leave it half-updated (every update
    /// is a single map operation), so a poisoned lock is still usable.
    pub fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        rocserv_rt::lock(&self.sessions)
    }

    /// Lock the address tables.
    pub fn origins(&self) -> std::sync::MutexGuard<'_, Origins> {
        crate::peers::lock(&self.origins)
    }
}

/// Every worker link that is being served, by worker, with the signal that ends it.
#[derive(Debug, Default)]
pub struct Links(Mutex<HashMap<WorkerId, Arc<Notify>>>);

impl Links {
    /// Register the link of `worker` (when main hands it over, before it is served); the
    /// returned signal goes to [`serve`].
    pub fn open(&self, worker: WorkerId) -> Arc<Notify> {
        let end = Arc::new(Notify::new());
        self.map().insert(worker, Arc::clone(&end));
        end
    }

    /// End the link of `worker`, if it is still open: [`serve`] returns at its next wait and
    /// drops its socket. A signal sent while `serve` is busy is kept until it waits.
    pub fn close(&self, worker: WorkerId) -> bool {
        let end = self.map().remove(&worker);
        end.inspect(|end| end.notify_one()).is_some()
    }

    /// The link of `worker` has ended.
    pub fn gone(&self, worker: WorkerId) {
        self.map().remove(&worker);
    }

    /// Each update is one map operation, so a poisoned lock is still consistent.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerId, Arc<Notify>>> {
        rocserv_rt::lock(&self.0)
    }
}

/// Serve `sock` until the worker closes it or misbehaves, or `end` is signalled
/// ([`Links::close`]).
pub async fn serve(
    sock: UnixSeqpacket,
    worker: WorkerId,
    peer: SocketAddr,
    shared: Arc<Shared>,
    end: Arc<Notify>,
) {
    let mut link = Link {
        worker,
        peer,
        shared,
        failures: 0,
        open: None,
        may_sign: true,
        vhost: None,
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let deadline = link.open.as_ref().map(|o| o.deadline);
        let recv = async {
            match deadline {
                Some(deadline) => timeout_at(deadline, sock.recv(&mut buf)).await.ok(),
                None => Some(sock.recv(&mut buf).await),
            }
        };
        let received = tokio::select! {
            biased;
            () = end.notified() => {
                log::debug!("{} worker {}: session asked for; closing its channel", peer, worker.0);
                return;
            }
            received = recv => received,
        };
        let Some(received) = received else {
            // The worker did not answer the challenge in time: a failed login (ban points), so
            // a client cannot hold PAM conversations open for free. Dropping the attempt ends a
            // PAM conversation waiting for an answer.
            if let Some(open) = link.open.take() {
                link.failed(&open.username, "no answer within auth-timeout");
            }
            continue;
        };
        let info = match received {
            Ok(info) => info,
            Err(e) => {
                log::warn!("{} worker {}: receive failed: {e}", peer, worker.0);
                return;
            }
        };
        if info.bytes_read() == 0 {
            log::debug!("{} worker {}: channel closed", peer, worker.0);
            return;
        }
        let request = match buf.get(..info.bytes_read()) {
            Some(bytes) if !info.truncated() => ipc::decode::<ToSecMod>(bytes),
            Some(_) | None => Err(ipc::IpcError::TooLarge(info.bytes_read())),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    "{} worker {}: malformed request ({e}); closing its channel",
                    peer,
                    worker.0
                );
                return;
            }
        };
        let Some(reply) = link.handle(request).await else {
            return;
        };
        let sent = match ipc::encode(&reply) {
            Ok(bytes) => sock.send(&bytes).await.map(drop),
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = sent {
            log::warn!("{} worker {}: send failed: {e}", peer, worker.0);
            return;
        }
    }
}

struct Link {
    worker: WorkerId,
    peer: SocketAddr,
    shared: Arc<Shared>,
    /// Failed logins so far on this connection.
    failures: u32,
    /// The conversation waiting for an `AuthContinue`.
    open: Option<Open>,
    /// The one handshake signature is still to come: no `Sign` and no login request yet.
    may_sign: bool,
    /// The vhost whose key signed this link's handshake (index into `Shared::vhosts`; `None`:
    /// the default section): its auth method runs the logins, and its sessions carry its name.
    /// The worker's choice (it alone sees the SNI), so untrusted: doc/security/vhost.md.
    vhost: Option<usize>,
}

struct Open {
    attempt: Attempt,
    username: String,
    group: Option<String>,
    /// What the client said about itself, kept with the session it gets.
    facts: Arc<ClientFacts>,
    deadline: Instant,
}

impl Link {
    fn vhost(&self) -> Option<&Vhost> {
        self.vhost.and_then(|i| self.shared.vhosts.get(i))
    }

    fn vhost_name(&self) -> Option<&str> {
        self.vhost().map(|v| v.name.as_str())
    }

    /// The key of the link's vhost.
    fn key(&self) -> &ServerKey {
        self.vhost().map_or(&self.shared.key, |v| &v.key)
    }

    /// The authentication backend of the link's vhost.
    fn backend(&self) -> &dyn AuthBackend {
        self.vhost().map_or(&*self.shared.backend, |v| &*v.backend)
    }

    /// `[vhost:NAME] ` for log lines, empty for the default section.
    fn place(&self) -> String {
        self.vhost_name()
            .map(|n| format!("[vhost:{n}] "))
            .unwrap_or_default()
    }

    /// Answer one request; `None` closes the channel.
    async fn handle(&mut self, request: ToSecMod) -> Option<FromSecMod> {
        match request {
            ToSecMod::Sign {
                scheme,
                message,
                vhost,
            } => self.sign(scheme, &message, vhost.as_deref()),
            ToSecMod::AuthStart {
                username,
                password,
                group,
                facts,
            } => {
                self.may_sign = false;
                if let Err(what) = facts.check() {
                    log::warn!(
                        "{} worker {}: malformed client facts ({what}); closing its channel",
                        self.peer,
                        self.worker.0
                    );
                    return None;
                }
                Some(FromSecMod::Auth(
                    self.start(username, password, group, facts).await,
                ))
            }
            ToSecMod::AuthContinue { answer } => {
                self.may_sign = false;
                Some(FromSecMod::Auth(self.proceed(answer).await))
            }
        }
    }

    /// The link's one handshake signature; a second one, one after a login request, or one of
    /// anything but a TLS handshake structure ends the link (`None`): no honest worker asks.
    /// The key is that of `vhost`, which must be a configured section (an unknown name ends
    /// the link: the worker was given only configured names).
    fn sign(&mut self, scheme: u16, message: &[u8], vhost: Option<&str>) -> Option<FromSecMod> {
        if !std::mem::replace(&mut self.may_sign, false) {
            log::warn!(
                "{} worker {}: signature request after the handshake's one; closing its channel",
                self.peer,
                self.worker.0
            );
            return None;
        }
        if let Err(e) = signable::check(scheme, message) {
            log::warn!(
                "{} worker {}: refusing to sign {} bytes ({e}); closing its channel",
                self.peer,
                self.worker.0,
                message.len()
            );
            return None;
        }
        if let Some(name) = vhost {
            let Some(i) = self.shared.vhosts.iter().position(|v| v.name == name) else {
                log::warn!(
                    "{} worker {}: signature asked with the key of an unknown vhost '{}'; \
                     closing its channel",
                    self.peer,
                    self.worker.0,
                    name.escape_debug()
                );
                return None;
            };
            self.vhost = Some(i);
        }
        Some(match self.key().sign(scheme, message) {
            Some(sig) => FromSecMod::Signature(sig),
            None => {
                log::info!(
                    "{} worker {}: cannot sign with scheme {scheme:#06x}",
                    self.peer,
                    self.worker.0
                );
                FromSecMod::SignFailed
            }
        })
    }

    async fn start(
        &mut self,
        username: String,
        password: String,
        group: Option<String>,
        facts: ClientFacts,
    ) -> AuthStep {
        // A new AuthStart abandons any unfinished conversation.
        self.open = None;
        if self.failures >= MAX_ATTEMPTS {
            log::info!(
                "{} worker {}: login attempt for '{}' after {MAX_ATTEMPTS} failures refused",
                self.peer,
                self.worker.0,
                username.escape_debug()
            );
            return AuthStep::Failed { retry: false };
        }
        // An empty choice is no choice (a form's empty select); anything else is checked
        // against the user's groups by the backend.
        let group = group.filter(|g| !g.is_empty());
        let facts = Arc::new(facts);
        let attempt = self.backend().begin(Login {
            username: username.clone(),
            password,
            group: group.clone(),
            facts: Arc::clone(&facts),
            peer: Some(self.peer),
            vhost: self.vhost_name().map(str::to_owned),
        });
        let open = Open {
            attempt,
            username,
            group,
            facts,
            deadline: Instant::now() + self.shared.auth_timeout,
        };
        self.wait(open).await
    }

    async fn proceed(&mut self, answer: String) -> AuthStep {
        let Some(open) = self.open.take() else {
            log::info!(
                "{} worker {}: answer without an open login conversation",
                self.peer,
                self.worker.0
            );
            return AuthStep::Failed { retry: false };
        };
        if !open.attempt.answer(answer).await {
            return self.failed(&open.username, "backend ended the conversation");
        }
        self.wait(open).await
    }

    /// Wait for the backend's next question or verdict, within the conversation's deadline.
    async fn wait(&mut self, mut open: Open) -> AuthStep {
        let event = match timeout_at(open.deadline, open.attempt.next()).await {
            Ok(event) => event,
            Err(_elapsed) => {
                // Counted like a wrong password: a stack that hangs on this user (or a module
                // the client can slow down) must cost the client ban points too.
                return self.failed(&open.username, "backend did not answer within auth-timeout");
            }
        };
        match event {
            Event::Challenge { message, secret } => {
                self.open = Some(open);
                AuthStep::Continue { message, secret }
            }
            Event::Done(Verdict::Accepted(granted)) => {
                let username = granted.username.clone().unwrap_or(open.username);
                if let Err(step) = self.device_binding(&username, &granted, &open.facts).await {
                    return step;
                }
                let step = self.complete(&username, granted, &open.facts);
                // `cluster-store`: the record is in the store before the cookie is handed
                // out, so any node accepts it at once (bounded by the login's budget).
                if let (AuthStep::Complete { sid, .. }, Some(cluster)) =
                    (&step, &self.shared.cluster)
                {
                    let budget =
                        crate::cluster::store::Budget::new(format!("login of session {sid}"));
                    crate::cluster::sessions::issued(&self.shared, cluster, *sid, &budget).await;
                }
                step
            }
            Event::Done(Verdict::Rejected(reason)) => {
                let group = open.group.as_deref().unwrap_or("");
                let why = match reason {
                    // Already names the group.
                    Rejection::GroupNotAllowed(_) => reason.to_string(),
                    _ if group.is_empty() => reason.to_string(),
                    _ => format!("{reason} (group '{}')", group.escape_debug()),
                };
                self.failed(&open.username, &why)
            }
        }
    }

    /// `allowed-device-id` / `allowed-mac` of the accepted account (crate::device): a
    /// mismatch is a failed login like a wrong password (same answer to the client, so the
    /// binding tells an attacker nothing about the password). Unusable files are left to the
    /// CONNECT, which refuses them (503, as before) and checks the binding again.
    async fn device_binding(
        &mut self,
        username: &str,
        granted: &Granted,
        facts: &ClientFacts,
    ) -> Result<(), AuthStep> {
        let locations = self
            .vhost()
            .map_or(&self.shared.policy_files, |v| &v.policy_files);
        let checked = crate::device::check(
            locations,
            username,
            &granted.group,
            granted.policy.as_deref(),
            facts,
        )
        .await;
        match checked {
            Ok(()) => Ok(()),
            Err(e @ crate::device::Refused::Device { .. }) => Err(self.failed(
                username,
                &format!("{e} (group '{}')", granted.group.escape_debug()),
            )),
            Err(crate::device::Refused::Files(e)) => {
                log::warn!(
                    "{} worker {}: {}device binding of user '{}' (group '{}') not checked at \
                     login: {e}; its CONNECT is refused while the file is unusable",
                    self.peer,
                    self.worker.0,
                    self.place(),
                    username.escape_debug(),
                    granted.group.escape_debug()
                );
                Ok(())
            }
        }
    }

    fn failed(&mut self, username: &str, why: &str) -> AuthStep {
        self.failures = self.failures.saturating_add(1);
        // protocol.md §1.8: main bans the address once its points reach max-ban-score.
        self.shared
            .bans
            .add(self.peer.ip(), self.shared.ban_points_wrong_password);
        // ocserv's line for fail2ban and exporters, at its priority (err).
        crate::logger::event(
            log::Level::Error,
            &rocserv_proto::logevent::Event::AuthFailed {
                user: username,
                ip: self.peer.ip(),
            },
        );
        log::info!(
            "{} worker {}: {}login failed for user '{}' via {}: {why} (attempt {}/{MAX_ATTEMPTS})",
            self.peer,
            self.worker.0,
            self.place(),
            username.escape_debug(),
            self.backend().name(),
            self.failures
        );
        AuthStep::Failed {
            retry: self.failures < MAX_ATTEMPTS,
        }
    }

    fn complete(&mut self, username: &str, granted: Granted, facts: &ClientFacts) -> AuthStep {
        let group = granted.group.as_str();
        let now = std::time::Instant::now();
        for _ in 0..4 {
            let mut seed = SessionSeed {
                cookie: [0; COOKIE_BYTES],
                sid: 0,
            };
            let mut sid = [0u8; 8];
            if self.shared.rng.fill(&mut seed.cookie).is_err()
                || self.shared.rng.fill(&mut sid).is_err()
            {
                log::error!("system random number generator failed");
                return AuthStep::Failed { retry: false };
            }
            seed.sid = u64::from_ne_bytes(sid);
            let issued = self.shared.sessions().issue(username, group, seed, now);
            let issued = match issued {
                Ok(issued) => issued,
                Err(IssueError::Collision) => continue,
                Err(e @ IssueError::TooMany) => {
                    log::warn!(
                        "{} worker {}: login of user '{}' refused: {e}",
                        self.peer,
                        self.worker.0,
                        username.escape_debug()
                    );
                    return AuthStep::Failed { retry: false };
                }
            };
            let vhost = self.vhost_name().map(str::to_owned);
            self.shared.sessions().set_vhost(issued.sid, vhost);
            self.shared.sessions().set_login(
                issued.sid,
                LoginFacts {
                    // The chain is checked and done with; the session keeps the rest.
                    facts: ClientFacts {
                        cert_chain: Vec::new(),
                        ..facts.clone()
                    },
                    cert_subject: granted.cert_subject.clone(),
                    policy: granted.policy.clone(),
                },
            );
            if let Some(old) = issued.evicted {
                if let (Some(cluster), Some(hash)) = (&self.shared.cluster, issued.evicted_sha256) {
                    tokio::spawn(crate::cluster::sessions::evicted(
                        Arc::clone(&self.shared),
                        Arc::clone(cluster),
                        old,
                        hash,
                    ));
                }
                self.shared.origins().forget(old);
                log::info!(
                    "session {old} of '{}' evicted: too many sessions",
                    username.escape_debug()
                );
            }
            self.shared.origins().logged_in(issued.sid, self.peer.ip());
            log::info!(
                "{} worker {}: {}user '{}' logged in via {} (group '{}', session {})",
                self.peer,
                self.worker.0,
                self.place(),
                username.escape_debug(),
                self.backend().name(),
                group.escape_debug(),
                issued.sid
            );
            return AuthStep::Complete {
                cookie: issued.cookie,
                sid: issued.sid,
                username: username.to_owned(),
            };
        }
        log::error!("could not draw a unique session id");
        AuthStep::Failed { retry: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_signals_the_link_once_even_before_it_waits() {
        let links = Links::default();
        let end = links.open(WorkerId(7));
        // Signalled while the link is busy (not waiting): kept for its next wait.
        assert!(links.close(WorkerId(7)));
        tokio::time::timeout(Duration::from_secs(5), end.notified())
            .await
            .unwrap();
        // Gone from the table: a second close finds nothing.
        assert!(!links.close(WorkerId(7)));
        let other = links.open(WorkerId(8));
        links.gone(WorkerId(8));
        assert!(!links.close(WorkerId(8)));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), other.notified())
                .await
                .is_err()
        );
    }
}
