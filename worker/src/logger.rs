//! The stderr logger: `rocserv-worker[PID]: <peer> message` (the brief's log format), levels on
//! ocserv's `-d` scale.

use std::io::Write;
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};

static LOGGER: StderrLogger = StderrLogger;
static PREFIX: OnceLock<String> = OnceLock::new();
static PEER: OnceLock<String> = OnceLock::new();

/// Install the logger. `level` is ocserv's scale: 0 errors only, 1 normal, 2 info, 3-4 debug,
/// 5 and above everything (libraries included).
pub fn init(level: u8) {
    let filter = match level {
        0 => LevelFilter::Error,
        1..=2 => LevelFilter::Info,
        3..=4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let _ = PREFIX.set(format!("rocserv-worker[{}]:", std::process::id()));
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(filter);
    }
}

/// Name the client in every later line (known once main's Start message arrived).
pub fn set_peer(peer: std::net::SocketAddr) {
    let _ = PEER.set(peer.to_string());
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
        let prefix = PREFIX.get().map_or("rocserv-worker:", String::as_str);
        let peer = PEER.get().map_or("-", String::as_str);
        // One write per line so lines of different processes do not interleave; a failing
        // stderr is nothing we could report anywhere.
        let line = format!("{prefix} {peer} {}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
