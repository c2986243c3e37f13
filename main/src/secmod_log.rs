//! sec-mod's stderr is a pipe main reads: each line is logged through main's own logger
//! (syslog and/or stderr, crate::logger) as `rocserv-sm[SECMOD_PID]: message`. Written to an
//! inherited stderr instead, under systemd the lines would reach the journal inside the
//! service's stream (`rocserv[MAIN_PID]: rocserv-sm[PID]: ...`), a shape fail2ban's filter
//! (doc/fail2ban/ocserv.conf) cannot match, and its failed logins would go unbanned.
//!
//! sec-mod is trusted more than a worker (no pacing: a paced pipe would block sec-mod's loop
//! in `write`), but its lines hold client-chosen user names (escaped by sec-mod already), so
//! main still cuts lines at [`MAX_LINE`] bytes and writes every byte that is not printable
//! ASCII as `\xNN`: no line can end early and start one of its own. Printable ASCII, `\`
//! included, stays as sec-mod wrote it, so its escapes (`\x5d`) are not escaped twice.

use log::Level;
use rocserv_proto::logline::{self, LineSplitter, Severity, MAX_LINE};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read `pipe` (sec-mod's stderr) to its end and log every line as sec-mod `pid`'s.
pub async fn relay(mut pipe: impl AsyncRead + Unpin, pid: u32) {
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buf = [0u8; 4096];
    let mut lines = Vec::new();
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.feed(buf.get(..n).unwrap_or_default(), &mut lines),
        }
        for line in lines.drain(..) {
            emit(pid, &line);
        }
    }
    if let Some(line) = splitter.finish() {
        emit(pid, &line);
    }
}

/// The level (from sec-mod's severity tag) and the safe text of one line.
pub fn format(line: &logline::Line) -> (Level, String) {
    let (severity, message) = logline::split_tag(&line.bytes);
    let level = match severity {
        Severity::Error => Level::Error,
        Severity::Warn => Level::Warn,
        Severity::Info => Level::Info,
        Severity::Debug => Level::Debug,
        Severity::Trace => Level::Trace,
    };
    let mut text = String::with_capacity(message.len());
    for &b in message {
        if (0x20..=0x7e).contains(&b) {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    if line.cut {
        text.push_str(" [line cut]");
    }
    (level, text)
}

fn emit(pid: u32, line: &logline::Line) {
    let (level, text) = format(line);
    crate::logger::secmod_line(level, pid, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(b: &[u8]) -> logline::Line {
        logline::Line {
            bytes: b.to_vec(),
            cut: false,
        }
    }

    #[test]
    fn lines_keep_their_level_and_sec_mods_escapes() {
        assert_eq!(
            format(&line(
                b"<I> worker[x\\x5d]: 10.0.0.2 failed authentication for 'x\\x5d'"
            )),
            (
                Level::Info,
                "worker[x\\x5d]: 10.0.0.2 failed authentication for 'x\\x5d'".to_owned()
            )
        );
        assert_eq!(
            format(&line(b"<E> cannot start: bad key")),
            (Level::Error, "cannot start: bad key".to_owned())
        );
        // Untagged (a panic message): a warning, not filtered out.
        assert_eq!(
            format(&line(b"thread panicked")),
            (Level::Warn, "thread panicked".to_owned())
        );
    }

    #[test]
    fn control_bytes_cannot_start_a_line() {
        let (_, text) = format(&line(
            b"<I> a\rrocserv-sm[1]: worker[y]: 192.0.2.66 failed authentication for 'y'\x00\xc3\xa9",
        ));
        assert_eq!(
            text,
            "a\\x0drocserv-sm[1]: worker[y]: 192.0.2.66 failed authentication for 'y'\\x00\\xc3\\xa9"
        );
        assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    }

    #[test]
    fn an_overlong_line_is_cut() {
        let long = format!("<I> {}\n", "x".repeat(3 * MAX_LINE));
        let mut splitter = LineSplitter::new(MAX_LINE);
        let mut lines = Vec::new();
        splitter.feed(long.as_bytes(), &mut lines);
        let (_, text) = format(&lines[0]);
        assert!(
            text.ends_with(" [line cut]") && text.len() <= MAX_LINE + 11,
            "{text}"
        );
    }
}
