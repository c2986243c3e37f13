//! The `log` backend: one line per record on stderr, which is a pipe main reads and relays
//! through its own logger (syslog and/or stderr) as `rocserv-sm[PID]: message`
//! (main/src/secmod_log.rs). Each line starts with its severity tag (`<I> `,
//! `rocserv_proto::logline`) so that main keeps the level; the text is ocserv's, or one JSON
//! object per line with `--log-json` (main passes it for `log-format = json`). The level comes
//! from `--log-level N` (ocserv's `-d` scale, 1 = normal). Session events tools parse go
//! through [`event`], in ocserv's wording and shape (`rocserv_proto::logevent`, doc/logs.md).

use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocserv_proto::logevent::{self, Event, JsonHead, Process};
use rocserv_proto::logline::Severity;
use rocserv_rt::logger::{Prefix, StderrLogger};

/// `--log-json`.
static JSON: AtomicBool = AtomicBool::new(false);

/// Map ocserv's debug level to a `log` filter: 0 warnings only, 1-2 normal, 3-8 debug, 9 trace.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Warn,
        1 | 2 => LevelFilter::Info,
        3..=8 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The tag main reads the level from (proto::logline).
fn tag(level: Level) -> &'static str {
    match level {
        Level::Error => Severity::Error,
        Level::Warn => Severity::Warn,
        Level::Info => Severity::Info,
        Level::Debug => Severity::Debug,
        Level::Trace => Severity::Trace,
    }
    .tag()
}

fn head_time() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    logevent::rfc3339(millis)
}

/// Text lines as `rocserv_rt`'s logger writes them; JSON lines built here.
struct SecModLogger {
    text: StderrLogger,
}

impl Log for SecModLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.text.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !JSON.load(Ordering::Relaxed) {
            return self.text.log(record);
        }
        if !self.enabled(record.metadata()) {
            return;
        }
        let time = head_time();
        let head = JsonHead {
            time: &time,
            process: Process::SecMod,
            pid: std::process::id(),
            level: rocserv_rt::logger::level_name(record.level()),
        };
        let line = logevent::json_text(head, None, None, &record.args().to_string());
        rocserv_rt::logger::write_stderr(&format!("{}{line}\n", tag(record.level())));
    }

    fn flush(&self) {}
}

/// Install the logger (once per process; a second call is ignored). Main adds the
/// `rocserv-sm[PID]: ` tag when it relays the lines.
pub fn init(level: u8, json: bool) {
    JSON.store(json, Ordering::Relaxed);
    let logger = SecModLogger {
        text: StderrLogger {
            prefix: Prefix::SeverityTag,
            quiet_libraries: false,
        },
    };
    // Leaked once: the logger lives as long as the process (`log` needs a `'static`).
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(level_filter(level));
    }
}

/// The line for an event: the severity tag and ocserv's text, or a JSON object.
pub fn event_line(level: Level, event: &Event<'_>, json: bool, time: &str) -> String {
    if json {
        let head = JsonHead {
            time,
            process: Process::SecMod,
            pid: std::process::id(),
            level: rocserv_rt::logger::level_name(level),
        };
        format!("{}{}\n", tag(level), logevent::json_event(head, event))
    } else {
        format!("{}{}\n", tag(level), event.line())
    }
}

/// Log an event tools parse at `level`.
pub fn event(level: Level, event: &Event<'_>) {
    if level > log::max_level() {
        return;
    }
    let json = JSON.load(Ordering::Relaxed);
    let time = if json { head_time() } else { String::new() };
    rocserv_rt::logger::write_stderr(&event_line(level, event, json, &time));
}
