//! `auth = "plain[passwd=FILE]"`: ocserv's password file (format in `rocserv_proto::passwd`).
//!
//! The file is read again on every attempt, so `ocpasswd` edits apply without a restart
//! (ocserv src/auth/plain.c does the same). An unknown user costs one hash computation with the
//! scheme, rounds and salt of the file's first usable entry, like a wrong password, so response
//! time does not reveal which names exist.
//! Differences from ocserv: an empty hash field refuses the login (ocserv lets such a user in
//! without a password when no OTP file is set), and a malformed file refuses every login (and
//! is reported at start) instead of skipping the bad line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::crypt::{self, SALT_LEN};
use super::{check_login_shape, Attempt, AuthBackend, Login, Rejection, Verdict};

/// The plain backend.
#[derive(Debug, Clone)]
pub struct Plain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Verified against when the user does not exist, to spend the same time.
    dummy_hash: String,
}

impl Plain {
    /// `salt` only feeds the dummy hash (pass random bytes).
    pub fn new(path: PathBuf, salt: &[u8; SALT_LEN]) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                dummy_hash: crypt::hash_sha256("rocserv-dummy-password", salt),
            }),
        }
    }

    /// Check at start that the file can be read and parsed.
    pub fn check_file(&self) -> Result<usize, String> {
        read_entries(&self.inner.path).map(|e| e.len())
    }

    /// Decide one login (blocking: reads the file and computes a hash).
    pub fn check(&self, login: &Login) -> Verdict {
        match self.check_inner(login) {
            Ok(group) => Verdict::accepted(group),
            Err(reason) => Verdict::Rejected(reason),
        }
    }

    fn check_inner(&self, login: &Login) -> Result<String, Rejection> {
        check_login_shape(login)?;
        let mut entries = read_entries(&self.inner.path).map_err(Rejection::File)?;
        let Some(index) = entries.iter().position(|e| e.username == login.username) else {
            self.burn(&login.password, &entries);
            return Err(Rejection::UnknownUser);
        };
        let entry = entries.swap_remove(index);
        if entry.hash.is_empty() {
            self.burn(&login.password, &entries);
            return Err(Rejection::NoPassword);
        }
        // Verify even for a locked account, so that locking does not change the timing.
        let matches = crypt::verify(&login.password, &entry.hash)?;
        if entry.locked {
            return Err(Rejection::Locked);
        }
        if !matches {
            return Err(Rejection::WrongPassword);
        }
        // ocserv plain_auth_group: a requested group must be one of the user's; without a
        // request the first listed group is used.
        match login.group.as_deref().filter(|g| !g.is_empty()) {
            Some(wanted) if entry.groups.iter().any(|g| g == wanted) => Ok(wanted.to_owned()),
            Some(wanted) => Err(Rejection::GroupNotAllowed(wanted.to_owned())),
            None => Ok(entry.groups.into_iter().next().unwrap_or_default()),
        }
    }
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
        let this = self.clone();
        // Hashing takes milliseconds: keep it off the event loop.
        tokio::task::spawn_blocking(move || peer.finish(this.check(&login)));
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

    #[tokio::test]
    async fn backend_reports_through_an_attempt() {
        let dir = TempDir::new();
        let p = plain(&dir);
        let mut attempt = p.begin(login("alice", "alicepw", None));
        assert_eq!(
            attempt.next().await,
            super::super::Event::Done(Verdict::accepted(""))
        );
    }
}
