//! `auth = "pam"`: the system's PAM stack through the `nonstick` crate (dependency-findings.md
//! §6: no bindgen, real prompt texts). PAM service `ocserv` unless
//! `pam[service=NAME]` names another, like ocserv.
//!
//! PAM calls block (and call our conversation function from inside `pam_authenticate`), so each
//! login runs on its own thread. The first hidden prompt is answered with the form's password;
//! any further prompt (OTP, challenge) is sent to the worker as `AuthStep::Continue` and its
//! `AuthContinue` answer fed back, through the [`Attempt`] channels.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;

use tokio::sync::Semaphore;

use nonstick::{
    AuthnFlags, BinaryData, ConversationAdapter, ErrorCode, Transaction, TransactionBuilder,
};

use super::{answer_shape_ok, check_login_shape, Attempt, AuthBackend, Login, Rejection, Verdict};

/// ocserv's PAM service name (`pam[service=NAME]` chooses another).
pub const DEFAULT_SERVICE: &str = rocserv_proto::config::DEFAULT_PAM_SERVICE;
/// PAM conversations running at once, each on its own thread (a conversation waiting for an
/// OTP holds its thread up to `auth-timeout`). More logins wait for a free thread within their
/// own `auth-timeout`, so a login storm costs a bounded number of threads.
pub const MAX_PAM_THREADS: usize = 32;

/// The blocking authentication a PAM thread runs ([`authenticate`]; tests pass their own).
pub type Authenticate = fn(&str, &Login, Ask<'_>) -> Verdict;

/// The PAM backend.
#[derive(Debug, Clone)]
pub struct Pam {
    service: String,
    threads: Arc<Semaphore>,
    run: Authenticate,
}

impl Pam {
    /// Use the PAM configuration `/etc/pam.d/<service>`.
    pub fn new(service: impl Into<String>) -> Self {
        Self::with(service, MAX_PAM_THREADS, authenticate)
    }

    /// At most `threads` conversations at once, each running `run`.
    pub fn with(service: impl Into<String>, threads: usize, run: Authenticate) -> Self {
        Self {
            service: service.into(),
            threads: Arc::new(Semaphore::new(threads)),
            run,
        }
    }
}

impl Default for Pam {
    fn default() -> Self {
        Self::new(DEFAULT_SERVICE)
    }
}

impl AuthBackend for Pam {
    fn name(&self) -> &'static str {
        "pam"
    }

    /// Must be called inside the tokio runtime (sec-mod's worker links are).
    fn begin(&self, login: Login) -> Attempt {
        let (attempt, mut peer) = Attempt::channel();
        let service = self.service.clone();
        let threads = Arc::clone(&self.threads);
        let run = self.run;
        tokio::spawn(async move {
            let permit = tokio::select! {
                permit = threads.acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => return,
                },
                // Abandoned while queued (worker gone, auth-timeout): never start PAM for it.
                () = peer.events.closed() => return,
            };
            let spawned = std::thread::Builder::new()
                .name("pam".into())
                .spawn(move || {
                    let _permit = permit;
                    let verdict = run(&service, &login, &mut |message, secret| {
                        peer.ask(message.to_owned(), secret)
                    });
                    peer.finish(verdict);
                });
            if let Err(e) = spawned {
                log::error!("cannot start a PAM thread: {e}");
                // The peer was moved into the closure and dropped with it: the attempt
                // reports `BackendGone`.
            }
        });
        attempt
    }
}

/// Run one PAM authentication + account check for `login` with service `service`, blocking.
/// `ask(prompt, secret)` answers the prompts after the first hidden one (which gets the
/// password); `None` abandons the conversation.
pub fn authenticate(service: &str, login: &Login, ask: Ask<'_>) -> Verdict {
    if let Err(r) = check_login_shape(login) {
        return Verdict::Rejected(r);
    }
    // Checked by the configuration parser too; PAM would read any path it is given.
    if !rocserv_proto::config::valid_pam_service(service) {
        return Verdict::Rejected(Rejection::Pam(format!("invalid service name {service:?}")));
    }
    let bridge = Bridge {
        password: RefCell::new(Some(login.password.clone())),
        ask: RefCell::new(ask),
    };
    let result = TransactionBuilder::new_with_service(service)
        .username(&login.username)
        .build(bridge.into_conversation())
        .and_then(|mut txn| {
            txn.authenticate(AuthnFlags::DISALLOW_NULL_AUTHTOK)?;
            txn.account_management(AuthnFlags::DISALLOW_NULL_AUTHTOK)
        });
    match result {
        Ok(()) => match unix_group(&login.username, login.group.as_deref()) {
            Ok(group) => Verdict::accepted(group),
            Err(rejection) => Verdict::Rejected(rejection),
        },
        Err(code) => Verdict::Rejected(Rejection::Pam(describe(code))),
    }
}

/// The group of a PAM user, as ocserv gives it (src/auth-unix.c, `get_user_auth_group`): a
/// requested group if the account is a member of it (else the login is refused), otherwise the
/// name of the account's primary group; empty for a user the system's user database does not
/// know (PAM may authenticate users that have no local account). Such a user asking for a group
/// is refused (ocserv lets them in without a group). `gid-min` only limits the list
/// `auto-select-group` offers, as in ocserv.
fn unix_group(username: &str, requested: Option<&str>) -> Result<String, Rejection> {
    use nix::unistd::{getgrouplist, Group, User};
    let requested = requested.filter(|g| !g.is_empty());
    let Ok(Some(user)) = User::from_name(username) else {
        return match requested {
            Some(wanted) => Err(Rejection::GroupNotAllowed(wanted.to_owned())),
            None => Ok(String::new()),
        };
    };
    let name_of = |gid| Group::from_gid(gid).ok().flatten().map(|g| g.name);
    match requested {
        None => Ok(name_of(user.gid).unwrap_or_default()),
        Some(wanted) => {
            let member = std::ffi::CString::new(username)
                .ok()
                .and_then(|c| getgrouplist(&c, user.gid).ok())
                .is_some_and(|gids| {
                    gids.into_iter()
                        .any(|gid| name_of(gid).as_deref() == Some(wanted))
                });
            if member {
                Ok(wanted.to_owned())
            } else {
                Err(Rejection::GroupNotAllowed(wanted.to_owned()))
            }
        }
    }
}

fn describe(code: ErrorCode) -> String {
    format!("{code:?}")
}

/// Answers a prompt after the first: `(message, secret) -> answer`, `None` to give up.
pub type Ask<'a> = &'a mut dyn FnMut(&str, bool) -> Option<String>;

/// Our side of the PAM conversation.
struct Bridge<'a> {
    /// The form's password, handed out once to the first hidden prompt.
    password: RefCell<Option<String>>,
    ask: RefCell<Ask<'a>>,
}

impl Bridge<'_> {
    fn relay(&self, message: &OsStr, secret: bool) -> nonstick::Result<OsString> {
        let message = message.to_string_lossy();
        let mut ask = self
            .ask
            .try_borrow_mut()
            .map_err(|_| ErrorCode::ConversationError)?;
        match (*ask)(message.trim(), secret) {
            Some(answer) if answer_shape_ok(&answer) => Ok(answer.into()),
            Some(_) | None => Err(ErrorCode::ConversationError),
        }
    }
}

impl ConversationAdapter for Bridge<'_> {
    fn prompt(&self, request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        self.relay(request.as_ref(), false)
    }

    fn masked_prompt(&self, request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        let first = self
            .password
            .try_borrow_mut()
            .map_err(|_| ErrorCode::ConversationError)?
            .take();
        match first {
            Some(password) => Ok(password.into()),
            None => self.relay(request.as_ref(), true),
        }
    }

    fn error_msg(&self, message: impl AsRef<OsStr>) {
        log::debug!("PAM error message: {}", message.as_ref().to_string_lossy());
    }

    fn info_msg(&self, message: impl AsRef<OsStr>) {
        log::debug!("PAM info message: {}", message.as_ref().to_string_lossy());
    }

    fn binary_prompt(&self, _data_and_type: (&[u8], u8)) -> nonstick::Result<BinaryData> {
        Err(ErrorCode::ConversationError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_the_primary_one_or_a_requested_one_the_account_is_in() {
        // root and its primary group exist on every system.
        assert_eq!(unix_group("root", None).unwrap(), "root");
        assert_eq!(unix_group("root", Some("")).unwrap(), "root");
        assert_eq!(unix_group("root", Some("root")).unwrap(), "root");
        assert!(matches!(
            unix_group("root", Some("rocserv-no-such-group")),
            Err(Rejection::GroupNotAllowed(g)) if g == "rocserv-no-such-group"
        ));
        // No local account: no group, as ocserv; asking for one is refused.
        assert_eq!(unix_group("rocserv-no-such-user", None).unwrap(), "");
        assert!(matches!(
            unix_group("rocserv-no-such-user", Some("root")),
            Err(Rejection::GroupNotAllowed(g)) if g == "root"
        ));
    }

    #[test]
    fn first_hidden_prompt_gets_the_password_then_questions_are_relayed() {
        let mut asked = Vec::new();
        let mut ask = |message: &str, secret: bool| {
            asked.push((message.to_owned(), secret));
            Some(if secret { "123456" } else { "blue" }.to_owned())
        };
        let bridge = Bridge {
            password: RefCell::new(Some("pw".into())),
            ask: RefCell::new(&mut ask),
        };
        assert_eq!(bridge.masked_prompt("Password: ").unwrap(), "pw");
        assert_eq!(bridge.masked_prompt("OTP: ").unwrap(), "123456");
        assert_eq!(bridge.prompt("Favourite colour? ").unwrap(), "blue");
        assert!(bridge.binary_prompt((&[1, 2], 0)).is_err());
        drop(bridge);
        assert_eq!(
            asked,
            [
                ("OTP:".to_owned(), true),
                ("Favourite colour?".to_owned(), false)
            ]
        );
    }

    #[test]
    fn abandoned_or_malformed_answers_fail_the_conversation() {
        let mut ask = |_: &str, secret: bool| secret.then(|| "a\0b".to_owned());
        let bridge = Bridge {
            password: RefCell::new(None),
            ask: RefCell::new(&mut ask),
        };
        assert_eq!(
            bridge.masked_prompt("OTP: ").unwrap_err(),
            ErrorCode::ConversationError
        );
        assert_eq!(
            bridge.prompt("Name: ").unwrap_err(),
            ErrorCode::ConversationError
        );
    }

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::auth::Event;

    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);

    /// Stands in for a PAM stack that asks for an OTP: holds its thread until answered.
    fn asks_otp(_service: &str, _login: &Login, ask: Ask<'_>) -> Verdict {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        let answer = ask("OTP:", true);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        match answer {
            Some(_) => Verdict::accepted(String::new()),
            None => Verdict::Rejected(Rejection::BackendGone),
        }
    }

    async fn next(attempt: &mut Attempt) -> Event {
        tokio::time::timeout(Duration::from_secs(10), attempt.next())
            .await
            .unwrap()
    }

    // current-thread: the queued tasks then ask for a thread in the order the logins began.
    #[tokio::test]
    async fn a_login_storm_uses_a_bounded_number_of_threads() {
        const LIMIT: usize = 3;
        let pam = Pam::with("test", LIMIT, asks_otp);
        let login = Login {
            username: "u".into(),
            password: "p".into(),
            group: None,
            ..Default::default()
        };
        let mut attempts: Vec<Attempt> = (0..10).map(|_| pam.begin(login.clone())).collect();
        // The first LIMIT get a thread and ask; the others wait for one.
        for attempt in &mut attempts[..LIMIT] {
            let event = next(attempt).await;
            assert!(matches!(event, Event::Challenge { .. }), "{event:?}");
        }
        let queued = tokio::time::timeout(Duration::from_millis(300), attempts[LIMIT].next()).await;
        assert!(queued.is_err(), "a login beyond the limit got a thread");
        assert_eq!(MOST.load(Ordering::SeqCst), LIMIT);
        // Each finished conversation lets one waiting login in, never more than LIMIT at once.
        for (i, attempt) in attempts.iter_mut().enumerate() {
            if i >= LIMIT {
                let event = next(attempt).await;
                assert!(matches!(event, Event::Challenge { .. }), "{event:?}");
            }
            assert!(attempt.answer("123456".into()).await);
            let done = next(attempt).await;
            assert!(
                matches!(done, Event::Done(Verdict::Accepted(_))),
                "{done:?}"
            );
        }
        assert_eq!(MOST.load(Ordering::SeqCst), LIMIT);
    }

    #[test]
    fn bad_service_names_are_refused_before_pam() {
        let login = Login {
            username: "u".into(),
            password: "p".into(),
            group: None,
            ..Default::default()
        };
        for service in ["", "../etc/passwd", "a\0b", "..", ".hidden", "a b", "a/b"] {
            assert!(matches!(
                authenticate(service, &login, &mut |_, _| None),
                Verdict::Rejected(Rejection::Pam(_))
            ));
        }
    }
}
