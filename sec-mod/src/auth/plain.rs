//! `auth = "plain[passwd=FILE,otp=FILE]"`: ocserv's password file (format in
//! `rocserv_proto::passwd`) and, with `otp`, a one-time password asked as a second form
//! ([`super::otp`]).
//!
//! The files are read again on every attempt, so `ocpasswd` edits apply without a restart
//! (ocserv src/auth/plain.c does the same). An unknown user costs one hash computation with the
//! scheme, rounds and salt of the file's first usable entry, like a wrong password, so response
//! time does not reveal which names exist.
//! Differences from ocserv: an empty hash field refuses the login (ocserv lets such a user in
//! without a password when no OTP file is set), and a malformed file refuses every login (and
//! is reported at start) instead of skipping the bad line.
//!
//! With `otp`, as ocserv (src/auth/plain.c): the password is checked first, then the
//! one-time password is asked ([`super::otp::PROMPT`]); a user with an empty hash field, and
//! every user when there is no `passwd` file, is asked only the one-time password, which is then
//! the login form's password; a user the OTP file does not list is refused, and so is, with a
//! `passwd` file, a user it does not list. Without `passwd` there are no groups.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::crypt::{self, SALT_LEN};
use super::otp::{OtpStore, PROMPT};
use super::{
    answer_shape_ok, check_login_shape, Attempt, AttemptPeer, AuthBackend, Event, Login, Rejection,
    Verdict,
};

/// The plain backend.
#[derive(Debug, Clone)]
pub struct Plain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The password file; `None` with `plain[otp=FILE]` alone.
    path: Option<PathBuf>,
    /// Verified against when the user does not exist, to spend the same time.
    dummy_hash: String,
    otp: Option<OtpStore>,
}

/// What the password step established.
#[derive(Debug, PartialEq, Eq)]
struct FirstFactor {
    group: String,
    /// The form's password was checked as a password (else it is the one-time password).
    password_checked: bool,
}

impl Plain {
    /// `salt` only feeds the dummy hash (pass random bytes).
    pub fn new(path: PathBuf, salt: &[u8; SALT_LEN]) -> Self {
        Self::with_otp(Some(path), None, salt)
    }

    /// `plain[passwd=...,otp=...]`: at least one of the two files.
    pub fn with_otp(passwd: Option<PathBuf>, otp: Option<PathBuf>, salt: &[u8; SALT_LEN]) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: passwd,
                dummy_hash: crypt::hash_sha256("rocserv-dummy-password", salt),
                otp: otp.map(OtpStore::new),
            }),
        }
    }

    /// Check at start that the password file can be read and parsed (users; 0 without one).
    pub fn check_file(&self) -> Result<usize, String> {
        match &self.inner.path {
            Some(path) => read_entries(path).map(|e| e.len()),
            None => Ok(0),
        }
    }

    /// Check at start that the OTP file can be read and parsed: its path and number of tokens.
    pub fn check_otp_file(&self) -> Option<Result<(&Path, usize), String>> {
        let otp = self.inner.otp.as_ref()?;
        Some(otp.check_file().map(|n| (otp.path(), n)))
    }

    /// Decide one login without a second form (blocking: reads the file and computes a hash).
    /// With an OTP file the form's password must then be the one-time password.
    pub fn check(&self, login: &Login) -> Verdict {
        self.converse(login, &mut |_, _| None)
    }

    /// Decide one login, asking the one-time password through `ask(prompt, secret)` when the
    /// password was right (blocking).
    pub fn converse(
        &self,
        login: &Login,
        ask: &mut dyn FnMut(&str, bool) -> Option<String>,
    ) -> Verdict {
        match self.converse_inner(login, ask) {
            Ok(group) => Verdict::accepted(group),
            Err(reason) => Verdict::Rejected(reason),
        }
    }

    fn converse_inner(
        &self,
        login: &Login,
        ask: &mut dyn FnMut(&str, bool) -> Option<String>,
    ) -> Result<String, Rejection> {
        let first = self.first_factor(login)?;
        if self.inner.otp.is_none() {
            return Ok(first.group);
        }
        let code = if first.password_checked {
            ask(PROMPT, true).ok_or(Rejection::BackendGone)?
        } else {
            login.password.clone()
        };
        self.second_factor(&login.username, &code)?;
        Ok(first.group)
    }

    /// The login's shape, the password file and the group (blocking).
    fn first_factor(&self, login: &Login) -> Result<FirstFactor, Rejection> {
        check_login_shape(login)?;
        match &self.inner.path {
            Some(path) => self.password(path, login, self.inner.otp.is_some()),
            None => Ok(FirstFactor {
                group: no_group(login)?,
                password_checked: false,
            }),
        }
    }

    /// The one-time password, checked and recorded (blocking: waits for the file's lock and
    /// writes the file).
    fn second_factor(&self, username: &str, code: &str) -> Result<(), Rejection> {
        let Some(otp) = &self.inner.otp else {
            return Ok(());
        };
        if !answer_shape_ok(code) {
            return Err(Rejection::Malformed);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        otp.authenticate_blocking(username, code, now)
            .map_err(Rejection::Otp)
    }

    /// [`Self::converse`] for [`AuthBackend::begin`]: the blocking steps on the blocking pool,
    /// the wait for the OTP answer on the event loop (a user pondering the second form holds
    /// no thread).
    async fn run(self, login: Login, peer: AttemptPeer) {
        let AttemptPeer {
            events,
            mut answers,
        } = peer;
        let verdict = async {
            let this = self.clone();
            let first_login = login.clone();
            let first = tokio::task::spawn_blocking(move || this.first_factor(&first_login))
                .await
                .map_err(|_| Rejection::BackendGone)??;
            if self.inner.otp.is_none() {
                return Ok(first.group);
            }
            let code = if first.password_checked {
                let challenge = Event::Challenge {
                    message: PROMPT.to_owned(),
                    secret: true,
                };
                events
                    .send(challenge)
                    .await
                    .map_err(|_| Rejection::BackendGone)?;
                answers.recv().await.ok_or(Rejection::BackendGone)?
            } else {
                login.password.clone()
            };
            let Some(otp) = &self.inner.otp else {
                return Ok(first.group);
            };
            if !answer_shape_ok(&code) {
                return Err(Rejection::Malformed);
            }
            // Queue for the file on the event loop, then one blocking thread for the I/O.
            let held = otp.lock().await;
            let this = self.clone();
            let user = login.username.clone();
            tokio::task::spawn_blocking(move || {
                let otp = this.inner.otp.as_ref().ok_or(Rejection::BackendGone)?;
                otp.authenticate(&held, &user, &code)
                    .map_err(Rejection::Otp)
            })
            .await
            .map_err(|_| Rejection::BackendGone)??;
            Ok(first.group)
        };
        let verdict = match verdict.await {
            Ok(group) => Verdict::accepted(group),
            Err(reason) => Verdict::Rejected(reason),
        };
        // Nobody listens any more when the conversation was abandoned.
        let _ = events.send(Event::Done(verdict)).await;
    }

    /// The password step; an empty hash is accepted (as "no password") only when
    /// `otp_only_allowed`.
    fn password(
        &self,
        path: &Path,
        login: &Login,
        otp_only_allowed: bool,
    ) -> Result<FirstFactor, Rejection> {
        let mut entries = read_entries(path).map_err(Rejection::File)?;
        let Some(index) = entries.iter().position(|e| e.username == login.username) else {
            self.burn(&login.password, &entries);
            return Err(Rejection::UnknownUser);
        };
        let entry = entries.swap_remove(index);
        if entry.hash.is_empty() {
            self.burn(&login.password, &entries);
            if entry.locked {
                return Err(Rejection::Locked);
            }
            if !otp_only_allowed {
                return Err(Rejection::NoPassword);
            }
            return Ok(FirstFactor {
                group: pick_group(entry.groups, login.group.as_deref())?,
                password_checked: false,
            });
        }
        // Verify even for a locked account, so that locking does not change the timing.
        let matches = crypt::verify(&login.password, &entry.hash)?;
        if entry.locked {
            return Err(Rejection::Locked);
        }
        if !matches {
            return Err(Rejection::WrongPassword);
        }
        Ok(FirstFactor {
            group: pick_group(entry.groups, login.group.as_deref())?,
            password_checked: true,
        })
    }
}

/// ocserv plain_auth_group: a requested group must be one of the user's; without a request the
/// first listed group is used.
fn pick_group(groups: Vec<String>, requested: Option<&str>) -> Result<String, Rejection> {
    match requested.filter(|g| !g.is_empty()) {
        Some(wanted) if groups.iter().any(|g| g == wanted) => Ok(wanted.to_owned()),
        Some(wanted) => Err(Rejection::GroupNotAllowed(wanted.to_owned())),
        None => Ok(groups.into_iter().next().unwrap_or_default()),
    }
}

/// Without a password file a user has no groups (ocserv: asking for one is refused).
fn no_group(login: &Login) -> Result<String, Rejection> {
    pick_group(Vec::new(), login.group.as_deref())
}

impl Plain {
    /// Cost one hash as the file's users do: with the scheme, rounds and salt of its first
    /// usable entry (a file of `$6$rounds=100000$` hashes must not answer an unknown name
    /// after one `$5$` default-rounds hash), else with our own dummy hash.
    fn burn(&self, password: &str, entries: &[rocserv_proto::passwd::Entry]) {
        let burned = entries.iter().any(|e| crypt::burn(password, &e.hash));
        if !burned {
            crypt::burn(password, &self.inner.dummy_hash);
        }
    }
}

impl AuthBackend for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn begin(&self, login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        tokio::spawn(self.clone().run(login, peer));
        attempt
    }
}

pub(crate) fn read_entries(path: &Path) -> Result<Vec<rocserv_proto::passwd::Entry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rocserv_proto::passwd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::otp::OtpRejection;
    use crate::testutil::TempDir;

    fn fixture(dir: &TempDir) -> PathBuf {
        let alice = crypt::hash_sha256("alicepw", &[1; SALT_LEN]);
        // $6$ from `openssl passwd -6 -salt q1w2e3r4t5y6u7i8 bobpw`.
        let bob = "$6$q1w2e3r4t5y6u7i8$IjB8V/CJBmwVzddhFYKSitZ3K5AkvW4SkLh8p2mF1.qKbZeCc12h5oFgG79U5KLOh4hlBQgQUb4tiN8UHhsmh.";
        let carol = crypt::hash_sha256("carolpw", &[2; SALT_LEN]);
        dir.write(
            "ocpasswd",
            &format!(
                "# test users\nalice:*:{alice}\nbob:staff,admins:{bob}\ncarol:*:!{carol}\ndave:*:\n\
                 erin:*:$1$abc$def\n"
            ),
        )
    }

    fn login(user: &str, pw: &str, group: Option<&str>) -> Login {
        Login {
            username: user.into(),
            password: pw.into(),
            group: group.map(Into::into),
            ..Default::default()
        }
    }

    fn plain(dir: &TempDir) -> Plain {
        Plain::new(fixture(dir), &[9; SALT_LEN])
    }

    #[test]
    fn good_passwords_are_accepted() {
        let dir = TempDir::new();
        let p = plain(&dir);
        assert_eq!(p.check_file(), Ok(5));
        assert_eq!(
            p.check(&login("alice", "alicepw", None)),
            Verdict::accepted("")
        );
        assert_eq!(
            p.check(&login("bob", "bobpw", None)),
            Verdict::accepted("staff")
        );
        assert_eq!(
            p.check(&login("bob", "bobpw", Some("admins"))),
            Verdict::accepted("admins")
        );
    }

    #[test]
    fn bad_logins_are_refused_with_a_reason() {
        let dir = TempDir::new();
        let p = plain(&dir);
        let cases = [
            (login("alice", "wrong", None), Rejection::WrongPassword),
            (login("bob", "alicepw", None), Rejection::WrongPassword),
            (login("mallory", "alicepw", None), Rejection::UnknownUser),
            (login("carol", "carolpw", None), Rejection::Locked),
            (login("dave", "", None), Rejection::NoPassword),
            (
                login("bob", "bobpw", Some("root")),
                Rejection::GroupNotAllowed("root".into()),
            ),
            (
                login("bob", "bobpw", Some("../staff")),
                Rejection::BadGroupName,
            ),
            (
                login("bob", "bobpw", Some(&"s".repeat(200))),
                Rejection::BadGroupName,
            ),
            (
                login("erin", "x", None),
                Rejection::Hash(crypt::CryptError::Unsupported),
            ),
            (login("", "x", None), Rejection::Malformed),
            (login("alice", "a\0b", None), Rejection::Malformed),
            (
                login("alice", &"x".repeat(super::super::MAX_PASSWORD + 1), None),
                Rejection::Malformed,
            ),
        ];
        for (l, want) in cases {
            assert_eq!(p.check(&l), Verdict::Rejected(want), "{l:?}");
        }
    }

    /// An unknown user (or one without a hash) costs one digest with the scheme and rounds the
    /// file's users have, like a wrong password of a known user.
    #[test]
    fn unknown_user_costs_the_files_own_hash() {
        let dir = TempDir::new();
        let slow = "$6$rounds=7000$q1w2e3r4$x";
        let path = dir.write(
            "ocpasswd",
            &format!("erin:*:$1$abc$def\nfrank:*:{slow}\ngina:*:\n"),
        );
        let p = Plain::new(path, &[9; SALT_LEN]);
        let computed = |l: Login| {
            crypt::COMPUTED.with(|c| c.borrow_mut().clear());
            let verdict = p.check(&l);
            (verdict, crypt::COMPUTED.with(|c| c.borrow().clone()))
        };
        assert_eq!(
            computed(login("frank", "guess", None)),
            (Verdict::Rejected(Rejection::WrongPassword), vec![(6, 7000)])
        );
        assert_eq!(
            computed(login("nobody", "guess", None)),
            (Verdict::Rejected(Rejection::UnknownUser), vec![(6, 7000)])
        );
        assert_eq!(
            computed(login("gina", "guess", None)),
            (Verdict::Rejected(Rejection::NoPassword), vec![(6, 7000)])
        );
        // No usable hash in the file: our own dummy ($5$, default rounds).
        dir.write("ocpasswd", "erin:*:$1$abc$def\n");
        assert_eq!(
            computed(login("nobody", "guess", None)),
            (Verdict::Rejected(Rejection::UnknownUser), vec![(5, 5000)])
        );
    }

    #[test]
    fn file_is_reread_on_every_attempt() {
        let dir = TempDir::new();
        let p = plain(&dir);
        assert!(matches!(
            p.check(&login("frank", "frankpw", None)),
            Verdict::Rejected(Rejection::UnknownUser)
        ));
        let hash = crypt::hash_sha256("frankpw", &[3; SALT_LEN]);
        dir.write("ocpasswd", &format!("frank:*:{hash}\n"));
        assert!(matches!(
            p.check(&login("frank", "frankpw", None)),
            Verdict::Accepted(_)
        ));
    }

    #[test]
    fn broken_or_missing_file_refuses() {
        let dir = TempDir::new();
        let path = dir.write("ocpasswd", "alice:$5$x$y\n");
        let p = Plain::new(path, &[0; SALT_LEN]);
        let err = p.check_file().unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(matches!(
            p.check(&login("alice", "x", None)),
            Verdict::Rejected(Rejection::File(_))
        ));
        let missing = Plain::new(dir.path().join("nope"), &[0; SALT_LEN]);
        assert!(missing.check_file().unwrap_err().contains("cannot read"));
    }

    const KEY_HEX: &str = "3132333435363738393031323334353637383930";

    /// alice (password + OTP), dave (empty hash: OTP only), bob (no token).
    fn with_otp(dir: &TempDir, passwd: bool) -> (Plain, PathBuf) {
        let otp = dir.write(
            "users.oath",
            &format!("HOTP alice - {KEY_HEX}\nHOTP dave - {KEY_HEX}\nHOTP/T30 erin - {KEY_HEX}\n"),
        );
        let passwd = passwd.then(|| fixture(dir));
        (
            Plain::with_otp(passwd, Some(otp.clone()), &[9; SALT_LEN]),
            otp,
        )
    }

    /// Answers every question with `answers` in turn, recording the prompts.
    fn asker<'a>(
        answers: &'a [&'a str],
    ) -> (Vec<String>, impl FnMut(&str, bool) -> Option<String> + 'a) {
        let mut next = answers.iter();
        (Vec::new(), move |prompt: &str, secret: bool| {
            assert!(secret && prompt == PROMPT, "{prompt}");
            next.next().map(|a| (*a).to_owned())
        })
    }

    #[test]
    fn otp_is_asked_after_the_password_and_each_code_works_once() {
        let dir = TempDir::new();
        let (p, _) = with_otp(&dir, true);
        assert_eq!(p.check_otp_file().map(|r| r.map(|(_, n)| n)), Some(Ok(3)));
        let (_, mut ask) = asker(&["755224"]);
        assert_eq!(
            p.converse(&login("alice", "alicepw", None), &mut ask),
            Verdict::accepted("")
        );
        // The same code again: refused as a replay; the next one is good.
        let (_, mut ask) = asker(&["755224"]);
        assert_eq!(
            p.converse(&login("alice", "alicepw", None), &mut ask),
            Verdict::Rejected(Rejection::Otp(OtpRejection::Replayed))
        );
        let (_, mut ask) = asker(&["287082"]);
        assert_eq!(
            p.converse(&login("alice", "alicepw", None), &mut ask),
            Verdict::accepted("")
        );
        // A wrong password is refused before any question.
        let mut asked = false;
        let verdict = p.converse(&login("alice", "wrong", None), &mut |_, _| {
            asked = true;
            None
        });
        assert_eq!(verdict, Verdict::Rejected(Rejection::WrongPassword));
        assert!(!asked);
        let (_, mut ask) = asker(&["000000"]);
        assert_eq!(
            p.converse(&login("alice", "alicepw", None), &mut ask),
            Verdict::Rejected(Rejection::Otp(OtpRejection::Wrong))
        );
        // No answer (conversation abandoned): refused.
        let (_, mut ask) = asker(&[]);
        assert_eq!(
            p.converse(&login("alice", "alicepw", None), &mut ask),
            Verdict::Rejected(Rejection::BackendGone)
        );
    }

    /// As ocserv: a user of the password file the OTP file does not list is refused.
    #[test]
    fn user_without_a_token_is_refused() {
        let dir = TempDir::new();
        let (p, _) = with_otp(&dir, true);
        let (_, mut ask) = asker(&["755224"]);
        assert_eq!(
            p.converse(&login("bob", "bobpw", None), &mut ask),
            Verdict::Rejected(Rejection::Otp(OtpRejection::UnknownUser))
        );
    }

    /// An empty hash with an OTP file: the form's password is the one-time password (ocserv);
    /// without an OTP file it is still refused.
    #[test]
    fn empty_hash_means_otp_only() {
        let dir = TempDir::new();
        let (p, _) = with_otp(&dir, true);
        let verdict = p.converse(&login("dave", "755224", None), &mut |_, _| panic!("asked"));
        assert_eq!(verdict, Verdict::accepted(""));
        assert_eq!(
            p.check(&login("dave", "755224", None)),
            Verdict::Rejected(Rejection::Otp(OtpRejection::Replayed))
        );
        assert_eq!(
            plain(&dir).check(&login("dave", "", None)),
            Verdict::Rejected(Rejection::NoPassword)
        );
        // Locked stays locked.
        let (p, _) = with_otp(&dir, true);
        assert_eq!(
            p.check(&login("carol", "755224", None)),
            Verdict::Rejected(Rejection::Locked)
        );
    }

    #[test]
    fn otp_file_alone_asks_only_the_code_and_gives_no_group() {
        let dir = TempDir::new();
        let (p, _) = with_otp(&dir, false);
        assert_eq!(p.check_file(), Ok(0));
        assert_eq!(
            p.check(&login("alice", "755224", None)),
            Verdict::accepted("")
        );
        assert_eq!(
            p.check(&login("alice", "287082", Some("staff"))),
            Verdict::Rejected(Rejection::GroupNotAllowed("staff".into()))
        );
        assert_eq!(
            p.check(&login("mallory", "755224", None)),
            Verdict::Rejected(Rejection::Otp(OtpRejection::UnknownUser))
        );
    }

    #[tokio::test]
    async fn backend_asks_the_otp_as_a_second_form() {
        let dir = TempDir::new();
        let (p, otp) = with_otp(&dir, true);
        let challenge = Event::Challenge {
            message: PROMPT.into(),
            secret: true,
        };
        // As ocserv: asked, then refused for want of a token.
        let mut attempt = p.begin(login("bob", "bobpw", Some("admins")));
        assert_eq!(attempt.next().await, challenge);
        assert!(attempt.answer("755224".into()).await);
        assert_eq!(
            attempt.next().await,
            Event::Done(Verdict::Rejected(Rejection::Otp(OtpRejection::UnknownUser)))
        );
        let mut attempt = p.begin(login("alice", "alicepw", None));
        assert_eq!(attempt.next().await, challenge);
        assert!(attempt.answer("755224".into()).await);
        assert_eq!(attempt.next().await, Event::Done(Verdict::accepted("")));
        let text = std::fs::read_to_string(otp).unwrap();
        assert!(
            text.starts_with(&format!("HOTP\talice\t-\t{KEY_HEX}\t0\t755224\t")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn backend_reports_through_an_attempt() {
        let dir = TempDir::new();
        let p = plain(&dir);
        let mut attempt = p.begin(login("alice", "alicepw", None));
        assert_eq!(attempt.next().await, Event::Done(Verdict::accepted("")));
    }
}
