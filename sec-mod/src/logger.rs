//! A tiny `log` backend: one line per record on stderr, `rocserv-sm[PID]: message`.
//! The level comes from `--log-level N` (ocserv's `-d` scale, 1 = normal).

use std::io::Write as _;

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    prefix: String,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // One write per line so lines from threads do not interleave; a failing stderr
            // cannot be reported anywhere, so the error is ignored.
            let line = format!("{}{}\n", self.prefix, record.args());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Map ocserv's debug level to a `log` filter: 0 warnings only, 1-2 normal, 3-8 debug, 9 trace.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Warn,
        1 | 2 => LevelFilter::Info,
        3..=8 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Install the logger (once per process; a second call is ignored).
pub fn init(program: &str, level: u8) {
    let logger = StderrLogger {
        prefix: format!("{program}[{}]: ", std::process::id()),
    };
    // Leaked once: the logger lives as long as the process (`log` needs a `'static`).
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(level_filter(level));
    }
}
