//! A stderr logger: `rocserv[PID]: message`, one line per record.
//!
//! Levels follow ocserv's `-d` scale: 0 = errors and warnings, 1 = normal (info), 2..=4 =
//! debug, 5 and above = trace.

use std::io::Write as _;

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    pid: u32,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line so that lines of concurrent processes do not interleave.
        let line = format!("rocserv[{}]: {}\n", self.pid, record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    fn levels_follow_the_ocserv_scale() {
        assert_eq!(filter_for(0), LevelFilter::Warn);
        assert_eq!(filter_for(1), LevelFilter::Info);
        assert_eq!(filter_for(3), LevelFilter::Debug);
        assert_eq!(filter_for(9), LevelFilter::Trace);
    }
}
