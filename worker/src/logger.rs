//! The stderr logger. The worker's stderr is a pipe to main, which logs each line as
//! `worker[PID] PEER: message` through its own logger, escaped (main/src/worker_log.rs): here
//! a line is only the severity tag and the message (`<I> message`), levels on ocserv's `-d`
//! scale.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};
use rocserv_proto::logline::Severity;

static LOGGER: StderrLogger = StderrLogger;

/// Install the logger. `level` is ocserv's scale: 0 errors only, 1 normal, 2 info, 3-4 debug,
/// 5 and above everything (libraries included).
pub fn init(level: u8) {
    let filter = match level {
        0 => LevelFilter::Error,
        1..=2 => LevelFilter::Info,
        3..=4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(filter);
    }
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Libraries (rustls) speak at debug level about every handshake; their chatter is shown
        // only at the trace levels (5 and up).
        let own = metadata.target().starts_with("rocserv");
        metadata.level() <= log::max_level()
            && (own
                || metadata.level() <= log::Level::Warn
                || log::max_level() == LevelFilter::Trace)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let severity = match record.level() {
            log::Level::Error => Severity::Error,
            log::Level::Warn => Severity::Warn,
            log::Level::Info => Severity::Info,
            log::Level::Debug => Severity::Debug,
            log::Level::Trace => Severity::Trace,
        };
        // One write per line so that lines of the worker's threads do not interleave; a failing
        // stderr is nothing we could report anywhere.
        let line = format!("{}{}\n", severity.tag(), record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
