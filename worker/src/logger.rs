//! The stderr logger (`rocserv_rt::logger`). The worker's stderr is a pipe to main, which logs
//! each line as `worker[PID] PEER: message` through its own logger, escaped
//! (main/src/worker_log.rs): here a line is only the severity tag and the message
//! (`<I> message`), levels on ocserv's `-d` scale.

use log::LevelFilter;
use rocserv_rt::logger::{Prefix, StderrLogger};

/// Install the logger. `level` is ocserv's scale: 0 errors only, 1 normal, 2 info, 3-4 debug,
/// 5 and above everything (libraries included: rustls speaks at debug level about every
/// handshake, so other crates' chatter below warnings shows only at the trace levels).
pub fn init(level: u8) {
    let filter = match level {
        0 => LevelFilter::Error,
        1..=2 => LevelFilter::Info,
        3..=4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let logger = StderrLogger {
        prefix: Prefix::SeverityTag,
        quiet_libraries: true,
    };
    rocserv_rt::logger::init(logger, filter);
}
