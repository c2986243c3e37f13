//! `use-utmp`: each tunnel as a login in utmp and wtmp, so that `who`, `w` and `last` list VPN
//! users (ocserv writes the same records from its main process: type USER_PROCESS, line = the
//! tun device, user, host = the client's numeric address, pid = the worker; at the end a
//! DEAD_PROCESS record for the same line and pid).
//!
//! glibc's utmp functions keep process-wide state and may wait up to seconds for the file's
//! lock, so the records are written by one thread of their own, fed through a bounded queue:
//! the accept loop and other sessions never wait for the disk, and a login's record is always
//! written before its logout's (one queue, one writer). A full queue drops the record (logged).
#![allow(unsafe_code)]

use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::SystemTime;

/// Records waiting for the writer; beyond this the disk is stuck and records are dropped.
const QUEUE: usize = 1024;

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub login: bool,
    pub pid: u32,
    /// The tun device (`ut_line`).
    pub line: String,
    pub user: String,
    pub host: Option<IpAddr>,
    pub at: SystemTime,
}

/// The tunnel of `user` from `host` on device `line`, served by worker `pid`, began.
pub fn login(pid: u32, line: &str, user: &str, host: IpAddr) {
    queue(Record {
        login: true,
        pid,
        line: line.to_owned(),
        user: user.to_owned(),
        host: Some(host),
        at: SystemTime::now(),
    });
}

/// That tunnel ended.
pub fn logout(pid: u32, line: &str) {
    queue(Record {
        login: false,
        pid,
        line: line.to_owned(),
        user: String::new(),
        host: None,
        at: SystemTime::now(),
    });
}

fn queue(record: Record) {
    static WRITER: OnceLock<Option<SyncSender<Record>>> = OnceLock::new();
    let writer = WRITER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Record>(QUEUE);
        // Writes only files: nothing on this thread spawns a child ([`crate::spawn`]).
        match std::thread::Builder::new()
            .name("rocserv-utmp".into())
            .spawn(move || {
                while let Ok(r) = rx.recv() {
                    write(&r);
                }
            }) {
            Ok(_) => Some(tx),
            Err(e) => {
                log::warn!("use-utmp: cannot start the writer thread: {e}; no utmp records");
                None
            }
        }
    });
    let Some(tx) = writer else { return };
    match tx.try_send(record) {
        Ok(()) => {}
        Err(TrySendError::Full(r)) => {
            log::warn!("use-utmp: writer stuck; record for {} dropped", r.line);
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Copy `src` into the fixed-size C field `dst`, truncated, NUL-padded (utmp fields need no
/// terminating NUL when full).
fn fill(dst: &mut [libc::c_char], src: &[u8]) {
    for (d, s) in dst
        .iter_mut()
        .zip(src.iter().chain(std::iter::repeat(&0u8)))
    {
        *d = *s as libc::c_char;
    }
}

/// The utmp entry of `r`, as ocserv fills it, plus `ut_id`: getutxent(3) finds the slot a
/// USER_PROCESS/DEAD_PROCESS record replaces by `ut_id`, so each tunnel needs its own; as
/// login(3) does, it is the line's last four bytes (the device numbers differ).
pub fn entry(r: &Record) -> libc::utmpx {
    // SAFETY: utmpx is plain old data (integers and byte arrays); all zeroes is a valid value.
    let mut e: libc::utmpx = unsafe { std::mem::zeroed() };
    e.ut_type = if r.login {
        libc::USER_PROCESS
    } else {
        libc::DEAD_PROCESS
    };
    e.ut_pid = libc::pid_t::try_from(r.pid).unwrap_or(0);
    let line = r.line.as_bytes();
    fill(&mut e.ut_line, line);
    fill(&mut e.ut_id, &line[line.len().saturating_sub(4)..]);
    if r.login {
        fill(&mut e.ut_user, r.user.as_bytes());
        if let Some(host) = r.host.map(|h| h.to_canonical()) {
            fill(&mut e.ut_host, host.to_string().as_bytes());
            match host {
                IpAddr::V4(v4) => e.ut_addr_v6[0] = i32::from_ne_bytes(v4.octets()),
                IpAddr::V6(v6) => {
                    for (word, chunk) in e.ut_addr_v6.iter_mut().zip(v6.octets().chunks(4)) {
                        let mut b = [0u8; 4];
                        b.copy_from_slice(chunk);
                        *word = i32::from_ne_bytes(b);
                    }
                }
            }
        }
    }
    let since =
        r.at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
    // 32-bit fields on x86-64 glibc (for compatibility with 32-bit programs).
    e.ut_tv.tv_sec = since.as_secs().try_into().unwrap_or_default();
    e.ut_tv.tv_usec = since.subsec_micros().try_into().unwrap_or_default();
    e
}

// glibc's (utmpx.h); the libc crate does not bind it.
extern "C" {
    fn updwtmpx(wtmpx_file: *const libc::c_char, utmpx: *const libc::utmpx);
}

/// The system's wtmp (glibc's _PATH_WTMP).
const WTMP: &std::ffi::CStr = c"/var/log/wtmp";

fn write(r: &Record) {
    let e = entry(r);
    // SAFETY: only this thread calls the utmp functions (process-wide state); `e` is a valid
    // entry and outlives the calls.
    let written = unsafe {
        libc::setutxent();
        let ok = !libc::pututxline(&e).is_null();
        libc::endutxent();
        ok
    };
    if !written {
        log::debug!(
            "use-utmp: utmp record for {} not written: {}",
            r.line,
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a NUL-terminated path and a valid entry; updwtmpx appends one record.
    unsafe { updwtmpx(WTMP.as_ptr(), &e) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: &[libc::c_char]) -> String {
        field
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8 as char)
            .collect()
    }

    #[test]
    fn login_record_has_ocserv_fields() {
        let r = Record {
            login: true,
            pid: 1234,
            line: "vpns12".into(),
            user: "alice".into(),
            host: Some("::ffff:10.1.2.3".parse().unwrap()),
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(5_000_007),
        };
        let e = entry(&r);
        assert_eq!(e.ut_type, libc::USER_PROCESS);
        assert_eq!(e.ut_pid, 1234);
        assert_eq!(text(&e.ut_line), "vpns12");
        assert_eq!(text(&e.ut_id), "ns12");
        assert_eq!(text(&e.ut_user), "alice");
        assert_eq!(text(&e.ut_host), "10.1.2.3");
        assert_eq!(e.ut_addr_v6[0], i32::from_ne_bytes([10, 1, 2, 3]));
        assert_eq!((e.ut_tv.tv_sec, e.ut_tv.tv_usec), (5, 7));
    }

    #[test]
    fn logout_record_names_line_only_and_long_names_are_cut() {
        let r = Record {
            login: false,
            pid: 9,
            line: "x".repeat(64),
            user: "bob".into(),
            host: None,
            at: SystemTime::UNIX_EPOCH,
        };
        let e = entry(&r);
        assert_eq!(e.ut_type, libc::DEAD_PROCESS);
        assert_eq!(text(&e.ut_line).len(), e.ut_line.len());
        assert_eq!(text(&e.ut_user), "");
    }
}
