//! The `log` backend: one line per record on stderr, `rocserv-sm[PID]: message`
//! (`rocserv_rt::logger`). The level comes from `--log-level N` (ocserv's `-d` scale, 1 =
//! normal).

use log::LevelFilter;
use rocserv_rt::logger::{Prefix, StderrLogger};

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
        prefix: Prefix::Text(format!("{program}[{}]: ", std::process::id())),
        quiet_libraries: false,
    };
    rocserv_rt::logger::init(logger, level_filter(level));
}
