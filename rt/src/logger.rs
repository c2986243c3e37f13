//! The stderr half of every process's logger: one line per record, written with one `write`.
//!
//! sec-mod's and a worker's stderr are pipes that main reads line by line
//! (main/src/secmod_log.rs, main/src/worker_log.rs). One `write` per line keeps lines of
//! threads sharing a stderr whole.

use std::io::Write as _;

use log::{LevelFilter, Log, Metadata, Record};
use rocserv_proto::logline::Severity;

/// Write `line` (which ends with a newline) to stderr in one `write`. A failing stderr cannot
/// be reported anywhere, so the error is ignored.
pub fn write_stderr(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The level's name in JSON log lines (`log-format = json`) of every process.
pub fn level_name(level: log::Level) -> &'static str {
    use log::Level;
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// What starts each line.
#[derive(Debug, Clone)]
pub enum Prefix {
    /// Fixed text, e.g. `rocserv-sm[PID]: `.
    Text(String),
    /// The record's severity tag (`<I> `), for a worker whose lines main prefixes
    /// (proto::logline).
    SeverityTag,
}

/// A `log` backend writing one line per record to stderr.
#[derive(Debug)]
pub struct StderrLogger {
    pub prefix: Prefix,
    /// Records of other crates (rustls) below warning level only at the trace level: they
    /// speak at debug level about every handshake.
    pub quiet_libraries: bool,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let own = !self.quiet_libraries || metadata.target().starts_with("rocserv");
        metadata.level() <= log::max_level()
            && (own
                || metadata.level() <= log::Level::Warn
                || log::max_level() == LevelFilter::Trace)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match &self.prefix {
            Prefix::Text(text) => format!("{text}{}\n", record.args()),
            Prefix::SeverityTag => {
                let severity = match record.level() {
                    log::Level::Error => Severity::Error,
                    log::Level::Warn => Severity::Warn,
                    log::Level::Info => Severity::Info,
                    log::Level::Debug => Severity::Debug,
                    log::Level::Trace => Severity::Trace,
                };
                format!("{}{}\n", severity.tag(), record.args())
            }
        };
        write_stderr(&line);
    }

    fn flush(&self) {}
}

/// Install `logger` with `filter` (once per process; a second call is ignored).
pub fn init(logger: StderrLogger, filter: LevelFilter) {
    // Leaked once: the logger lives as long as the process (`log` needs a `'static`).
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(filter);
    }
}
