//! Password authentication backends behind one trait, [`AuthBackend`].
//!
//! A login is a conversation: the worker sends the form's user name and password
//! (`AuthStart`), the backend may ask further questions (PAM challenges, bridged to the worker
//! as `AuthStep::Continue`), and ends with a [`Verdict`]. Backends do their blocking work (crypt
//! rounds, the PAM stack) on their own threads and talk to the async side through an
//! [`Attempt`], so a slow login delays only its own user.

#[cfg(test)]
mod cert_tests;
pub mod certificate;
pub mod chain;
pub mod crypt;
pub mod groups;
pub mod otp;
pub mod pam;
pub mod plain;
pub mod radius;
pub mod script;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rocserv_proto::ipc::worker_secmod::ClientFacts;
use rocserv_proto::policy::file::PolicyFile;
use tokio::sync::mpsc;

/// Longest user name we pass to a backend (ocserv: `MAX_USERNAME_SIZE` 64; we are lenient).
pub const MAX_USERNAME: usize = 255;
/// Longest password or answer we accept. SHA-crypt costs grow with the square of the password
/// length, so a hostile worker must not be able to send a megabyte.
pub const MAX_PASSWORD: usize = 256;

/// The first credentials of a login, from the worker's login form, and what else is known of
/// the client.
#[derive(Clone, Default)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// The group the client selected, if any.
    pub group: Option<String>,
    /// What the client said about itself (shape checked: `ClientFacts::check`); the
    /// certificate chain in it is unverified until the `certificate` method checked it.
    pub facts: Arc<ClientFacts>,
    /// The client's address as main accepted it (trusted); `None` only in unit tests.
    pub peer: Option<SocketAddr>,
    /// The `[vhost:NAME]` the login is for (`None`: the default section).
    pub vhost: Option<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("group", &self.group)
            .field("facts.device_id", &self.facts.device_id)
            .field("peer", &self.peer)
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// How a login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Credentials are good; the session gets what [`Granted`] says.
    Accepted(Granted),
    /// Credentials refused; the reason is for the log only, never for the client.
    Rejected(Rejection),
}

impl Verdict {
    /// Accepted into `group` (empty for none), with nothing else granted.
    pub fn accepted(group: impl Into<String>) -> Self {
        Self::Accepted(Granted {
            group: group.into(),
            ..Default::default()
        })
    }
}

/// What an accepted login gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// The session's group (empty for none).
    pub group: String,
    /// The account the method established when it is not the form's user name (the
    /// certificate's `cert-user-oid`); with several methods all must name the same account.
    pub username: Option<String>,
    /// Per-session values the backend decided (RADIUS attributes with `groupconfig`, a
    /// script's answer), laid over the user's file (`Overrides::auth`).
    pub policy: Option<Box<PolicyFile>>,
    /// The client certificate's subject the method checked (occtl, scripts).
    pub cert_subject: Option<String>,
}

/// Why a login was refused (logged, never sent to the worker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The user name or password is empty, too long, or holds a NUL or control character.
    #[error("malformed user name or password")]
    Malformed,
    /// No such user in the password file.
    #[error("unknown user")]
    UnknownUser,
    /// The password does not match.
    #[error("wrong password")]
    WrongPassword,
    /// The account is locked (`!` before the hash).
    #[error("account locked")]
    Locked,
    /// The password file has an empty hash for this user.
    #[error("no password set for this user")]
    NoPassword,
    /// The requested group name is empty, too long or holds a character no group name has
    /// (`rocserv_proto::config::valid_group_name`).
    #[error("malformed group name")]
    BadGroupName,
    /// The user asked for a group they are not a member of.
    #[error("not a member of group {0:?}")]
    GroupNotAllowed(String),
    /// The password file could not be used.
    #[error("password file: {0}")]
    File(String),
    /// The user's hash is of a kind we cannot check.
    #[error("password hash: {0}")]
    Hash(#[from] crypt::CryptError),
    /// PAM refused or failed.
    #[error("PAM: {0}")]
    Pam(String),
    /// The client certificate was missing, not accepted, or names no usable user.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Two methods of the chain established different accounts (ocserv #694).
    #[error("the certificate names user {cert:?} but the password was for {password:?}")]
    UserMismatch { cert: String, password: String },
    /// The backend went away without a verdict.
    #[error("backend ended without a verdict")]
    BackendGone,
    /// The `script` hook refused, failed, died or timed out (the text names the hook).
    #[error("{0}")]
    Script(String),
    /// The one-time password was refused (wrong, replayed, user not in the OTP file, or the
    /// file could not be read or rewritten).
    #[error("{0}")]
    Otp(#[from] otp::OtpRejection),
    /// RADIUS: no server answered, or an answer we cannot use.
    #[error("RADIUS: {0}")]
    Radius(String),
}

/// What a running conversation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The backend asks another question; answer with [`Attempt::answer`].
    Challenge {
        message: String,
        secret: bool,
    },
    Done(Verdict),
}

/// A password authentication method.
pub trait AuthBackend: Send + Sync {
    /// Short name for logs (`plain`, `pam`).
    fn name(&self) -> &'static str;
    /// Start one login conversation. Must not block: the work runs elsewhere and reports
    /// through the returned [`Attempt`]. Dropping the attempt abandons the conversation.
    fn begin(&self, login: Login) -> Attempt;
}

/// The async end of one login conversation.
#[derive(Debug)]
pub struct Attempt {
    events: mpsc::Receiver<Event>,
    answers: mpsc::Sender<String>,
}

/// The backend's (blocking) end of a conversation.
#[derive(Debug)]
pub struct AttemptPeer {
    events: mpsc::Sender<Event>,
    answers: mpsc::Receiver<String>,
}

impl Attempt {
    /// A connected pair of ends.
    pub fn channel() -> (Self, AttemptPeer) {
        let (events_tx, events_rx) = mpsc::channel(1);
        let (answers_tx, answers_rx) = mpsc::channel(1);
        (
            Self {
                events: events_rx,
                answers: answers_tx,
            },
            AttemptPeer {
                events: events_tx,
                answers: answers_rx,
            },
        )
    }

    /// The next question or the verdict.
    pub async fn next(&mut self) -> Event {
        self.events
            .recv()
            .await
            .unwrap_or(Event::Done(Verdict::Rejected(Rejection::BackendGone)))
    }

    /// Answer the last [`Event::Challenge`]. Returns false if the backend is gone.
    pub async fn answer(&self, answer: String) -> bool {
        self.answers.send(answer).await.is_ok()
    }
}

impl AttemptPeer {
    /// Report the verdict (from a blocking thread). Ignored if nobody listens any more.
    pub fn finish(self, verdict: Verdict) {
        let _ = self.events.blocking_send(Event::Done(verdict));
    }

    /// Ask a further question and wait for the answer (from a blocking thread). `None` when
    /// the conversation was abandoned (worker gone, `auth-timeout`).
    pub fn ask(&mut self, message: String, secret: bool) -> Option<String> {
        self.events
            .blocking_send(Event::Challenge { message, secret })
            .ok()?;
        self.answers.blocking_recv()
    }

    /// [`Self::finish`] for a backend that runs on the runtime (RADIUS).
    pub async fn finish_async(self, verdict: Verdict) {
        let _ = self.events.send(Event::Done(verdict)).await;
    }

    /// [`Self::ask`] for a backend that runs on the runtime.
    pub async fn ask_async(&mut self, message: String, secret: bool) -> Option<String> {
        self.events
            .send(Event::Challenge { message, secret })
            .await
            .ok()?;
        self.answers.recv().await
    }
}

/// Refuse user names and passwords no backend should see: empty, oversized, or with NUL or
/// control characters (PAM's C strings cannot hold a NUL; nonstick panics on one); and a
/// requested group that cannot be a group name (the worker's word, so checked here).
pub fn check_login_shape(login: &Login) -> Result<(), Rejection> {
    let name_ok = !login.username.is_empty()
        && login.username.len() <= MAX_USERNAME
        && !login.username.chars().any(char::is_control);
    if !(name_ok && answer_shape_ok(&login.password)) {
        return Err(Rejection::Malformed);
    }
    match login.group.as_deref() {
        Some(group) if !rocserv_proto::config::valid_group_name(group) => {
            Err(Rejection::BadGroupName)
        }
        Some(_) | None => Ok(()),
    }
}

/// Whether a password or challenge answer may be handed to a backend.
pub fn answer_shape_ok(answer: &str) -> bool {
    answer.len() <= MAX_PASSWORD && !answer.contains('\0')
}
