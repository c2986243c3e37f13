//! The logger: `rocserv[PID]: message`, one line per record, on stderr and/or syslog.
//!
//! Levels follow ocserv's `-d` scale: 0 = errors and warnings, 1 = normal (info), 2..=4 =
//! debug, 5 and above = trace.
//!
//! Like ocserv (which opens syslog with facility daemon and copies to stderr when `-d` is
//! given), main logs to syslog unless `--log-stderr`, and also to stderr with `-d N` (N > 0),
//! with `--log-stderr`, or when `/dev/log` cannot be reached. Syslog datagrams are RFC 3164
//! style without timestamp and host name (`<PRI>rocserv[PID]: message`; the local syslog
//! daemon stamps them), sent non-blocking: a stalled syslog daemon loses lines rather than
//! stalling main. The facility is `syslog-facility` (default daemon). Workers and sec-mod
//! write to their stderr, a pipe main relays: a worker's (crate::worker_log) tagged with the
//! worker's PID as ocserv's worker lines are, sec-mod's (crate::secmod_log) as
//! `rocserv-sm[PID]: ` (so that under systemd its failed logins reach syslog and the journal
//! with their own tag, which fail2ban reads, not nested in the service's stderr stream).
//!
//! Session events tools parse are written in ocserv's wording and shape
//! (`rocserv_proto::logevent`, doc/logs.md) through [`event`]. With `log-format = json` (ours)
//! every line, on stderr and syslog alike, is one JSON object instead.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocserv_proto::logevent::{self, Event, JsonHead, Process};

/// The local syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility `daemon` (RFC 3164 §4.1.1), ocserv's.
pub const FACILITY_DAEMON: u8 = 3;

/// The facility of syslog datagrams (`syslog-facility`).
static FACILITY: AtomicU8 = AtomicU8::new(FACILITY_DAEMON);
/// `log-format = json`: one JSON object per line.
static JSON: AtomicBool = AtomicBool::new(false);

/// The syslog socket once [`use_syslog`] connected it.
static SYSLOG: Mutex<Option<UnixDatagram>> = Mutex::new(None);
/// Whether lines also go to stderr.
static STDERR: AtomicBool = AtomicBool::new(true);

struct StderrLogger {
    pid: u32,
}

/// main's and the workers' syslog tag (ocserv's is `ocserv`).
pub const PROGRAM: &str = "rocserv";
/// sec-mod's tag: fail2ban's `journalmatch` selects it as `SYSLOG_IDENTIFIER=rocserv-sm`.
pub const SECMOD_PROGRAM: &str = "rocserv-sm";

/// `<PRI>PROGRAM[PID]: message` (RFC 3164 without TIMESTAMP and HOSTNAME).
pub fn syslog_line(facility: u8, level: Level, program: &str, pid: u32, message: &str) -> String {
    let pri = u16::from(facility) * 8 + u16::from(severity(level));
    format!("<{pri}>{program}[{pid}]: {message}")
}

/// The syslog severity of a level (RFC 3164 §4.1.1).
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Use `facility` (a code of RFC 3164 §4.1.1, from `syslog-facility`) for syslog lines.
pub fn set_facility(facility: u8) {
    FACILITY.store(facility, Ordering::Relaxed);
}

/// `log-format = json`: write every line as one JSON object.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether lines are JSON objects (`log-format = json`).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

fn now_rfc3339() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    logevent::rfc3339(millis)
}

/// Write one finished line (`message`, without tag) as process `pid` to syslog and/or stderr.
fn write(level: Level, pid: u32, message: &str) {
    write_as(level, PROGRAM, pid, message);
}

/// [`write`] under the tag `program[pid]`.
fn write_as(level: Level, program: &str, pid: u32, message: &str) {
    if let Some(sock) = rocserv_rt::lock(&SYSLOG).as_ref() {
        // Non-blocking: a full socket buffer drops the line (see the module comment).
        let facility = FACILITY.load(Ordering::Relaxed);
        let _ = sock.send(syslog_line(facility, level, program, pid, message).as_bytes());
    }
    if STDERR.load(Ordering::Relaxed) {
        rocserv_rt::logger::write_stderr(&format!("{program}[{pid}]: {message}\n"));
    }
}

/// Log a line sec-mod wrote (already made safe, crate::secmod_log) under its own tag,
/// `rocserv-sm[SECMOD_PID]: message`, where main's lines go.
pub fn secmod_line(level: Level, secmod_pid: u32, text: &str) {
    if level > log::max_level() {
        return;
    }
    write_as(level, SECMOD_PROGRAM, secmod_pid, text);
}

/// Log an event tools parse, in ocserv's shape (or as JSON), at `level`.
pub fn event(level: Level, event: &Event<'_>) {
    if level > log::max_level() {
        return;
    }
    let pid = std::process::id();
    let text = if json() {
        let time = now_rfc3339();
        let head = JsonHead {
            time: &time,
            process: Process::Main,
            pid,
            level: rocserv_rt::logger::level_name(level),
        };
        logevent::json_event(head, event)
    } else {
        event.line()
    };
    write(level, pid, &text);
}

/// Log a line a worker wrote (already escaped, crate::worker_log) as that worker's:
/// `rocserv[WORKER_PID]: worker[USER]: IP message`, `worker: IP message` before the login.
pub fn worker_line(
    level: Level,
    worker_pid: u32,
    user: Option<&str>,
    peer: SocketAddr,
    text: &str,
) {
    if level > log::max_level() {
        return;
    }
    let line = if json() {
        let time = now_rfc3339();
        let head = JsonHead {
            time: &time,
            process: Process::Worker,
            pid: worker_pid,
            level: rocserv_rt::logger::level_name(level),
        };
        logevent::json_text(head, user, Some((peer.ip(), Some(peer.port()))), text)
    } else {
        format!("{} {text}", logevent::worker_prefix(user, peer.ip()))
    };
    write(level, worker_pid, &line);
}

/// Send log lines to the syslog socket at `path` (normally [`SYSLOG_SOCKET`]); stderr gets
/// them too when `also_stderr`. On error nothing changes (stderr stays on).
pub fn use_syslog(path: &Path, also_stderr: bool) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    sock.set_nonblocking(true)?;
    *rocserv_rt::lock(&SYSLOG) = Some(sock);
    STDERR.store(also_stderr, Ordering::Relaxed);
    Ok(())
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let text = if json() {
            let time = now_rfc3339();
            let head = JsonHead {
                time: &time,
                process: Process::Main,
                pid: self.pid,
                level: rocserv_rt::logger::level_name(record.level()),
            };
            logevent::json_text(head, None, None, &message)
        } else {
            message
        };
        write(record.level(), self.pid, &text);
    }

    fn flush(&self) {}
}

/// The `log` filter for an ocserv debug level.
pub fn filter_for(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2..=4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Install the logger (once; later calls only change the level).
pub fn init(level: u8) {
    let logger = StderrLogger {
        pid: std::process::id(),
    };
    // Leaked once: the logger lives as long as the process.
    let _ = log::set_logger(Box::leak(Box::new(logger)));
    log::set_max_level(filter_for(level));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_are_rfc3164_with_the_facility() {
        let d = FACILITY_DAEMON;
        assert_eq!(
            syslog_line(d, Level::Error, PROGRAM, 7, "x"),
            "<27>rocserv[7]: x"
        );
        assert_eq!(
            syslog_line(d, Level::Warn, PROGRAM, 7, "x"),
            "<28>rocserv[7]: x"
        );
        assert_eq!(
            syslog_line(d, Level::Info, PROGRAM, 7, "ready"),
            "<30>rocserv[7]: ready"
        );
        assert_eq!(
            syslog_line(d, Level::Trace, PROGRAM, 7, "x"),
            "<31>rocserv[7]: x"
        );
        // authpriv (10) and local7 (23), RFC 3164 §4.1.1.
        assert_eq!(
            syslog_line(10, Level::Info, PROGRAM, 7, "x"),
            "<86>rocserv[7]: x"
        );
        assert_eq!(
            syslog_line(23, Level::Error, PROGRAM, 7, "x"),
            "<187>rocserv[7]: x"
        );
        assert_eq!(
            syslog_line(d, Level::Warn, SECMOD_PROGRAM, 8, "x"),
            "<28>rocserv-sm[8]: x"
        );
    }

    #[test]
    fn a_missing_syslog_socket_is_an_error() {
        assert!(use_syslog(Path::new("/nonexistent/rocserv-log"), false).is_err());
        assert!(STDERR.load(Ordering::Relaxed));
    }

    #[test]
    fn levels_follow_the_ocserv_scale() {
        assert_eq!(filter_for(0), LevelFilter::Warn);
        assert_eq!(filter_for(1), LevelFilter::Info);
        assert_eq!(filter_for(3), LevelFilter::Debug);
        assert_eq!(filter_for(9), LevelFilter::Trace);
    }
}
