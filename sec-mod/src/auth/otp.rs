//! One-time passwords for `plain[...,otp=FILE]`: HOTP (RFC 4226) and TOTP (RFC 6238) with
//! HMAC-SHA1, checked against oath-toolkit's users file (`rocserv_proto::otp_file`), which is
//! rewritten after every accepted code so that no code is accepted twice, across restarts too.
//!
//! Windows (ours; ocserv passes a window of 20 to liboath for both kinds, which for TOTP means
//! 20 steps either side, ten minutes of codes at a 30 s step):
//! - TOTP: the code of the current step and of the step before and after it
//!   ([`TOTP_WINDOW_STEPS`]), for clock skew and a code typed as its step ends.
//! - HOTP: the next code and [`HOTP_LOOK_AHEAD`] more (a token button pressed without logging
//!   in advances the token's counter but not ours).
//!
//! Replay (what liboath does, plus a stored step for TOTP): a code equal to the token's last
//! accepted code is refused; an HOTP counter at or below the last used one is never tried; a
//! TOTP code is refused unless its step is later than the step of the last accepted code (found
//! in the window as liboath does, and written by us in the counter field, which liboath does not
//! use for TOTP).
//!
//! The file is the record: it is read, checked, updated and written back (temporary file in the
//! same directory, fsync, rename, fsync of the directory) under one lock, so two logins with the
//! same code cannot both pass, and a code that could not be recorded is refused (as ocserv does
//! when liboath cannot write the file).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;
use rocserv_proto::otp_file::{Kind, OtpFile, Token};

/// Steps either side of the current one whose TOTP code is accepted.
pub const TOTP_WINDOW_STEPS: u64 = 1;
/// HOTP counters tried after the next expected one.
pub const HOTP_LOOK_AHEAD: u64 = 10;
/// The second form's prompt (ocserv src/auth/common.c).
pub const PROMPT: &str = "Please enter your OTP password.";
/// Largest users file we read (a line is under 200 bytes; this is tens of thousands of users).
pub const MAX_FILE: u64 = 16 << 20;

/// Why a one-time password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpRejection {
    #[error("user has no token in the one-time password file")]
    UnknownUser,
    #[error("wrong one-time password")]
    Wrong,
    #[error("one-time password already used (replay)")]
    Replayed,
    #[error("one-time password file: {0}")]
    File(String),
}

/// The HOTP value of `counter` (RFC 4226 §5.3: HMAC-SHA1, dynamic truncation, `digits`
/// decimal digits).
pub fn hotp(secret: &[u8], counter: u64, digits: u8) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // RFC 4226 §5.4: the low nibble of the last byte is the offset of 4 bytes, top bit cleared.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = mac.get(offset..offset + 4) {
        word.copy_from_slice(bytes);
    }
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    binary % 10u32.pow(u32::from(digits))
}

/// `value` as the zero-padded code a token shows.
fn code_text(value: u32, digits: u8) -> String {
    format!("{value:0width$}", width = usize::from(digits))
}

/// Equal without an early exit on the first differing byte (codes have a fixed length).
fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What one token says of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenAnswer {
    /// Accepted; record this moving factor (HOTP counter, TOTP step).
    Accept(u64),
    Replayed,
    Wrong,
}

fn check_token(token: &Token, code: &str, now_secs: u64) -> TokenAnswer {
    let digits = token.token_type.digits;
    if code.len() != usize::from(digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return TokenAnswer::Wrong;
    }
    let code_at = |counter| code_text(hotp(&token.secret, counter, digits), digits);
    // liboath: the same code as last time is a replay whatever else it matches.
    let is_last = token
        .last_otp
        .as_deref()
        .is_some_and(|last| same_code(last, code));
    let found = match token.token_type.kind {
        Kind::Event => {
            // liboath stores the counter of the code it accepted together with that code: the
            // next code is the one after it. A counter without a code (hand-written) is the
            // first one to accept.
            let start = token
                .counter
                .unwrap_or(0)
                .saturating_add(u64::from(token.last_otp.is_some()));
            let end = start.saturating_add(HOTP_LOOK_AHEAD);
            (start..=end).find(|&c| same_code(&code_at(c), code))
        }
        Kind::Time { step_secs } => {
            let now = now_secs / u64::from(step_secs.max(1));
            let window =
                now.saturating_sub(TOTP_WINDOW_STEPS)..=now.saturating_add(TOTP_WINDOW_STEPS);
            let Some(step) = window.clone().find(|&t| same_code(&code_at(t), code)) else {
                return TokenAnswer::Wrong;
            };
            // The last code's step, if still in the window (liboath's check), or the step we
            // recorded (which also holds when the clock went back).
            let last_step = token
                .last_otp
                .as_deref()
                .and_then(|last| window.clone().rev().find(|&t| same_code(&code_at(t), last)));
            let recorded = token.counter.filter(|&c| c >= step);
            if last_step.is_some_and(|s| s >= step) || recorded.is_some() {
                return TokenAnswer::Replayed;
            }
            Some(step)
        }
    };
    match found {
        _ if is_last => TokenAnswer::Replayed,
        Some(counter) => TokenAnswer::Accept(counter),
        None => TokenAnswer::Wrong,
    }
}

/// Which of `user`'s tokens accepts `code` at `now_secs` (Unix time): its index in
/// `file.tokens()` and the moving factor to record. Pure.
pub fn check(
    file: &OtpFile,
    user: &str,
    code: &str,
    now_secs: u64,
) -> Result<(usize, u64), OtpRejection> {
    let mut any = false;
    let mut replayed = false;
    for index in file.tokens_of(user) {
        any = true;
        let Some(token) = file.tokens().get(index) else {
            continue;
        };
        match check_token(token, code.trim(), now_secs) {
            TokenAnswer::Accept(counter) => return Ok((index, counter)),
            TokenAnswer::Replayed => replayed = true,
            TokenAnswer::Wrong => {}
        }
    }
    Err(match (any, replayed) {
        (false, _) => OtpRejection::UnknownUser,
        (true, true) => OtpRejection::Replayed,
        (true, false) => OtpRejection::Wrong,
    })
}

/// `secs` (Unix time) as liboath's local timestamp `%Y-%m-%dT%H:%M:%SL`.
#[allow(unsafe_code)]
fn local_timestamp(secs: i64) -> Option<String> {
    #[allow(
        clippy::useless_conversion,
        reason = "time_t is i32 on some 32-bit targets"
    )]
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: an all-zero `tm` is a valid value (integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the reentrant variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}L",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    ))
}

/// The users file and the lock that serialises its read-check-write cycles.
#[derive(Debug)]
pub struct OtpStore {
    path: PathBuf,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// Proof that the caller holds the file's lock ([`OtpStore::lock`]).
pub type Held = tokio::sync::OwnedMutexGuard<()>;

/// One lock per users file, shared by every backend naming it (vhosts may share a file).
fn lock_for(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(locks.entry(path.to_path_buf()).or_default())
}

impl OtpStore {
    pub fn new(path: PathBuf) -> Self {
        let lock = lock_for(&path);
        Self { path, lock }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the file's lock without holding a thread: a login queued behind a slow disk
    /// write keeps no blocking thread (those also hash other users' passwords).
    pub async fn lock(&self) -> Held {
        Arc::clone(&self.lock).lock_owned().await
    }

    /// Check at start that the file can be read and parsed; the number of tokens. Warns when
    /// others may read it (liboath makes it 0600 on its first write; we keep the mode).
    pub fn check_file(&self) -> Result<usize, String> {
        let (file, mode) = self.read()?;
        if mode & 0o077 != 0 {
            log::warn!(
                "one-time password file {} has mode {:o}: group or others can read the secrets",
                self.path.display(),
                mode & 0o7777
            );
        }
        Ok(file.tokens().len())
    }

    fn read(&self) -> Result<(OtpFile, u32), String> {
        let name = self.path.display();
        let file = File::open(&self.path).map_err(|e| format!("cannot read {name}: {e}"))?;
        let mode = file.metadata().map_err(|e| format!("{name}: {e}"))?.mode();
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(format!("{name} is larger than {MAX_FILE} bytes"));
        }
        let parsed = OtpFile::parse_bytes(&bytes).map_err(|e| format!("{name}: {e}"))?;
        Ok((parsed, mode))
    }

    /// Check `code` for `user` now and record it, holding the lock `held` (blocking: file
    /// I/O; run on the blocking pool).
    pub fn authenticate(&self, held: &Held, user: &str, code: &str) -> Result<(), OtpRejection> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| OtpRejection::File("the system clock is before 1970".into()))?
            .as_secs();
        self.authenticate_at(held, user, code, now)
    }

    /// [`Self::authenticate`] at Unix time `now`.
    pub fn authenticate_at(
        &self,
        held: &Held,
        user: &str,
        code: &str,
        now: u64,
    ) -> Result<(), OtpRejection> {
        if !Arc::ptr_eq(tokio::sync::OwnedMutexGuard::mutex(held), &self.lock) {
            return Err(OtpRejection::File("internal error: wrong lock held".into()));
        }
        let (mut file, _) = self.read().map_err(OtpRejection::File)?;
        let (index, counter) = check(&file, user, code, now)?;
        let stamp = i64::try_from(now)
            .ok()
            .and_then(local_timestamp)
            .ok_or_else(|| OtpRejection::File("cannot format the local time".into()))?;
        file.record_use(index, counter, code.trim(), &stamp)
            .map_err(|e| OtpRejection::File(e.to_string()))?;
        replace(&self.path, file.to_text().as_bytes()).map_err(|e| {
            OtpRejection::File(format!(
                "cannot record the used code in {}: {e}",
                self.path.display()
            ))
        })
    }

    /// Take the lock from a blocking thread (never from async code: it would block the
    /// runtime) and check `code` at `now`.
    pub fn authenticate_blocking(
        &self,
        user: &str,
        code: &str,
        now: u64,
    ) -> Result<(), OtpRejection> {
        let held = Arc::clone(&self.lock).blocking_lock_owned();
        self.authenticate_at(&held, user, code, now)
    }
}

/// Replace `path` with `contents` atomically: a temporary file beside it with the same mode
/// and owner, written and synced, renamed over it, then the directory synced.
fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("/"));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".rocserv-new");
    let tmp = dir.join(tmp_name);
    // A leftover of a crash in the middle of a write.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let write = || -> std::io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // Owner first: chown clears set-id bits, and only then the mode is set.
        if (meta.uid(), meta.gid())
            != (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        {
            std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()))?;
        }
        out.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        out.write_all(contents)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// RFC 4226 appendix D: secret "12345678901234567890", counters 0 to 9.
    #[test]
    fn rfc4226_vectors() {
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in want.into_iter().enumerate() {
            assert_eq!(
                hotp(b"12345678901234567890", counter as u64, 6),
                want,
                "{counter}"
            );
        }
    }

    /// RFC 6238 appendix B, SHA-1 rows (8 digits, 30 s step).
    #[test]
    fn rfc6238_vectors() {
        for (time, want) in [
            (59u64, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(b"12345678901234567890", time / 30, 8), want, "{time}");
            assert_eq!(code_text(want, 8).len(), 8);
        }
        assert_eq!(code_text(7081804, 8), "07081804");
    }

    const KEY_HEX: &str = "3132333435363738393031323334353637383930";

    fn file(line: &str) -> OtpFile {
        OtpFile::parse(line).unwrap()
    }

    fn totp_at(t: u64) -> String {
        code_text(hotp(b"12345678901234567890", t / 30, 6), 6)
    }

    #[test]
    fn totp_accepts_the_current_step_and_one_either_side() {
        let f = file(&format!("HOTP/T30 alice - {KEY_HEX}\n"));
        let now: u64 = 1_234_567_890;
        let step = now / 30;
        for dt in [-30i64, 0, 30] {
            let code = totp_at(now.saturating_add_signed(dt));
            let t = step.saturating_add_signed(dt / 30);
            assert_eq!(check(&f, "alice", &code, now), Ok((0, t)), "{dt}");
        }
        for dt in [-60i64, 60, 3600] {
            let code = totp_at(now.saturating_add_signed(dt));
            assert_eq!(
                check(&f, "alice", &code, now),
                Err(OtpRejection::Wrong),
                "{dt}"
            );
        }
        assert_eq!(
            check(&f, "bob", &totp_at(now), now),
            Err(OtpRejection::UnknownUser)
        );
        for bad in ["", "12345", "1234567", "abcdef", " 1 2 3"] {
            assert_eq!(
                check(&f, "alice", bad, now),
                Err(OtpRejection::Wrong),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rfc_vector_through_the_file_with_8_digits() {
        let f = file(&format!("HOTP/T30/8 alice - {KEY_HEX}\n"));
        assert_eq!(
            check(&f, "alice", "89005924", 1234567890),
            Ok((0, 1234567890 / 30))
        );
        let f = file(&format!("HOTP/E/8 alice - {KEY_HEX}\n"));
        // RFC 4226 counter 1 (6-digit 287082): the 8-digit truncation of the same value.
        assert_eq!(
            check(
                &f,
                "alice",
                &code_text(hotp(b"12345678901234567890", 1, 8), 8),
                0
            ),
            Ok((0, 1))
        );
    }

    #[test]
    fn totp_replay_is_refused() {
        let now = 1_234_567_890;
        let step = now / 30;
        let code = totp_at(now);
        let stamp = "2009-02-13T23:31:30L";
        // As liboath records a use: the code itself.
        let f = file(&format!("HOTP/T30 alice - {KEY_HEX} 0 {code} {stamp}\n"));
        assert_eq!(check(&f, "alice", &code, now), Err(OtpRejection::Replayed));
        // An earlier code of the window, after a later one was used.
        let earlier = totp_at(now - 30);
        assert_eq!(
            check(&f, "alice", &earlier, now),
            Err(OtpRejection::Replayed)
        );
        // The next step's code is still good.
        let next = totp_at(now + 30);
        assert_eq!(check(&f, "alice", &next, now), Ok((0, step + 1)));
        // Our recorded step alone (no code, or a code out of the window) also refuses.
        let f = file(&format!(
            "HOTP/T30 alice - {KEY_HEX} {step} 000000 {stamp}\n"
        ));
        assert_eq!(check(&f, "alice", &code, now), Err(OtpRejection::Replayed));
        assert_eq!(
            check(&f, "alice", &earlier, now),
            Err(OtpRejection::Replayed)
        );
        assert_eq!(check(&f, "alice", &next, now), Ok((0, step + 1)));
        // liboath's small TOTP counters (0 + window position) do not get in the way.
        let f = file(&format!("HOTP/T30 alice - {KEY_HEX} 3 000000 {stamp}\n"));
        assert_eq!(check(&f, "alice", &code, now), Ok((0, step)));
    }

    #[test]
    fn hotp_counts_forward_and_refuses_replays() {
        let at = |c| code_text(hotp(b"12345678901234567890", c, 6), 6);
        let f = file(&format!("HOTP alice - {KEY_HEX}\n"));
        assert_eq!(check(&f, "alice", "755224", 0), Ok((0, 0)));
        assert_eq!(
            check(&f, "alice", &at(HOTP_LOOK_AHEAD), 0),
            Ok((0, HOTP_LOOK_AHEAD))
        );
        assert_eq!(
            check(&f, "alice", &at(HOTP_LOOK_AHEAD + 1), 0),
            Err(OtpRejection::Wrong)
        );
        // After counter 3 was used (liboath's record): 3 and below are gone, 4.. are good.
        let f = file(&format!(
            "HOTP alice - {KEY_HEX} 3 {} 2006-12-30T00:00:00L\n",
            at(3)
        ));
        assert_eq!(check(&f, "alice", &at(3), 0), Err(OtpRejection::Replayed));
        assert_eq!(check(&f, "alice", &at(2), 0), Err(OtpRejection::Wrong));
        assert_eq!(check(&f, "alice", &at(4), 0), Ok((0, 4)));
        assert_eq!(check(&f, "alice", &at(14), 0), Ok((0, 14)));
        assert_eq!(check(&f, "alice", &at(15), 0), Err(OtpRejection::Wrong));
        // A hand-written starting counter: that code is the first good one.
        let f = file(&format!("HOTP alice - {KEY_HEX} 5\n"));
        assert_eq!(check(&f, "alice", &at(5), 0), Ok((0, 5)));
        assert_eq!(check(&f, "alice", &at(4), 0), Err(OtpRejection::Wrong));
    }

    #[test]
    fn a_user_with_two_tokens_may_use_either() {
        let f = file(&format!("HOTP alice - 00\nHOTP/T30 alice - {KEY_HEX}\n"));
        assert_eq!(check(&f, "alice", &totp_at(59), 59), Ok((1, 1)));
        assert_eq!(check(&f, "alice", "999999x", 59), Err(OtpRejection::Wrong));
    }

    #[test]
    fn store_records_each_use_and_refuses_it_again() {
        let dir = TempDir::new();
        let path = dir.write(
            "users.oath",
            &format!("# ours\nHOTP/T30 alice - {KEY_HEX}\nHOTP bob - {KEY_HEX}\n"),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let store = OtpStore::new(path.clone());
        assert_eq!(store.check_file(), Ok(2));
        let now = 1_234_567_890;
        let code = totp_at(now);
        assert_eq!(store.authenticate_blocking("alice", &code, now), Ok(()));
        assert_eq!(
            store.authenticate_blocking("alice", &code, now),
            Err(OtpRejection::Replayed)
        );
        // A new store (a restarted sec-mod) reads the record.
        let again = OtpStore::new(path.clone());
        assert_eq!(
            again.authenticate_blocking("alice", &code, now + 20),
            Err(OtpRejection::Replayed)
        );
        assert_eq!(again.authenticate_blocking("bob", "755224", now), Ok(()));
        assert_eq!(
            again.authenticate_blocking("bob", "755224", now),
            Err(OtpRejection::Replayed)
        );
        assert_eq!(again.authenticate_blocking("bob", "287082", now), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# ours");
        let alice: Vec<&str> = lines[1].split('\t').collect();
        assert_eq!(
            alice[..6],
            [
                "HOTP/T30",
                "alice",
                "-",
                KEY_HEX,
                &(now / 30).to_string(),
                &code
            ]
        );
        assert!(
            rocserv_proto::otp_file::valid_time(alice[6]),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with(&format!("HOTP\tbob\t-\t{KEY_HEX}\t1\t287082\t")),
            "{}",
            lines[2]
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("users.oath")]);
    }

    #[test]
    fn store_refuses_when_the_code_cannot_be_recorded() {
        let dir = TempDir::new();
        let path = dir.write("users.oath", &format!("HOTP bob - {KEY_HEX}\n"));
        let store = OtpStore::new(path.clone());
        // A directory where the temporary file would go: the write fails, the login too.
        std::fs::create_dir(dir.path().join("users.oath.rocserv-new")).unwrap();
        std::fs::write(dir.path().join("users.oath.rocserv-new/x"), "").unwrap();
        assert!(matches!(
            store.authenticate_blocking("bob", "755224", 0),
            Err(OtpRejection::File(_))
        ));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("HOTP bob - {KEY_HEX}\n")
        );
        let missing = OtpStore::new(dir.path().join("nope"));
        assert!(missing.check_file().unwrap_err().contains("cannot read"));
        assert!(matches!(
            missing.authenticate_blocking("bob", "755224", 0),
            Err(OtpRejection::File(_))
        ));
    }

    /// Backends naming the same file (vhosts) share its lock; another file has its own.
    #[tokio::test]
    async fn one_lock_per_file() {
        let dir = TempDir::new();
        let path = dir.write("users.oath", "");
        let (a, b) = (OtpStore::new(path.clone()), OtpStore::new(path));
        let other = OtpStore::new(dir.write("other.oath", ""));
        let held = a.lock().await;
        assert!(b.lock.try_lock().is_err());
        assert!(other.lock.try_lock().is_ok());
        // A guard of another file's lock is refused.
        let other_held = other.lock().await;
        assert!(matches!(
            a.authenticate_at(&other_held, "bob", "755224", 0),
            Err(OtpRejection::File(_))
        ));
        drop(held);
        assert!(b.lock.try_lock().is_ok());
    }

    #[test]
    fn timestamps_have_liboaths_shape() {
        let t = local_timestamp(1_234_567_890).unwrap();
        assert!(rocserv_proto::otp_file::valid_time(&t), "{t}");
    }
}
