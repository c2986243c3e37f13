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
//! stalling main. Workers and sec-mod keep logging to the inherited stderr.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The local syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility `daemon` (RFC 3164 §4.1.1).
const FACILITY_DAEMON: u8 = 3;

/// The syslog socket once [`use_syslog`] connected it.
static SYSLOG: Mutex<Option<UnixDatagram>> = Mutex::new(None);
/// Whether lines also go to stderr.
static STDERR: AtomicBool = AtomicBool::new(true);

struct StderrLogger {
    pid: u32,
}

/// `<PRI>rocserv[PID]: message` (RFC 3164 without TIMESTAMP and HOSTNAME).
pub fn syslog_line(level: Level, pid: u32, message: &str) -> String {
    let severity: u8 = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let pri = u16::from(FACILITY_DAEMON) * 8 + u16::from(severity);
    format!("<{pri}>rocserv[{pid}]: {message}")
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
        if let Some(sock) = rocserv_rt::lock(&SYSLOG).as_ref() {
            // Non-blocking: a full socket buffer drops the line (see the module comment).
            let _ = sock.send(syslog_line(record.level(), self.pid, &message).as_bytes());
        }
        if STDERR.load(Ordering::Relaxed) {
            rocserv_rt::logger::write_stderr(&format!("rocserv[{}]: {message}\n", self.pid));
        }
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
    fn syslog_lines_are_rfc3164_daemon() {
        assert_eq!(syslog_line(Level::Error, 7, "x"), "<27>rocserv[7]: x");
        assert_eq!(syslog_line(Level::Warn, 7, "x"), "<28>rocserv[7]: x");
        assert_eq!(
            syslog_line(Level::Info, 7, "ready"),
            "<30>rocserv[7]: ready"
        );
        assert_eq!(syslog_line(Level::Trace, 7, "x"), "<31>rocserv[7]: x");
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
