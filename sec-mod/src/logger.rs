//! The `log` backend: one line per record on stderr, `rocserv-sm[PID]: message`
//! (`rocserv_rt::logger`), or one JSON object per line with `--log-format json` (main passes
//! it for `log-format = json`). The level comes from `--log-level N` (ocserv's `-d` scale, 1 =
//! normal). Session events tools parse go through [`event`], in ocserv's wording and shape
//! (`rocserv_proto::logevent`, doc/logs.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocserv_proto::logevent::{self, Event, JsonHead, Process};
use rocserv_rt::logger::{Prefix, StderrLogger};

/// `--log-format json`.
static JSON: AtomicBool = AtomicBool::new(false);
/// `PROGRAM[PID]: `, the tag of text lines.
static TAG: OnceLock<String> = OnceLock::new();

/// Map ocserv's debug level to a `log` filter: 0 warnings only, 1-2 normal, 3-8 debug, 9 trace.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Warn,
        1 | 2 => LevelFilter::Info,
        3..=8 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
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
            level: level_name(record.level()),
        };
        let line = logevent::json_text(head, None, None, &record.args().to_string());
        rocserv_rt::logger::write_stderr(&format!("{line}\n"));
    }

    fn flush(&self) {}
}

/// Install the logger (once per process; a second call is ignored).
pub fn init(program: &str, level: u8, json: bool) {
    let tag = format!("{program}[{}]: ", std::process::id());
    let _ = TAG.set(tag.clone());
    JSON.store(json, Ordering::Relaxed);
    let logger = SecModLogger {
        text: StderrLogger {
            prefix: Prefix::Text(tag),
            quiet_libraries: false,
        },
    };
    // Leaked once: the logger lives as long as the process (`log` needs a `'static`).
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(level_filter(level));
    }
}

/// The line for an event: `rocserv-sm[PID]: ` and ocserv's text, or a JSON object.
pub fn event_line(level: Level, event: &Event<'_>, json: bool, time: &str) -> String {
    if json {
        let head = JsonHead {
            time,
            process: Process::SecMod,
            pid: std::process::id(),
            level: level_name(level),
        };
        format!("{}\n", logevent::json_event(head, event))
    } else {
        let tag = TAG.get().map_or("rocserv-sm: ", String::as_str);
        format!("{tag}{}\n", event.line())
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
