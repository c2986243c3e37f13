//! A worker's stderr is a pipe that only main reads: each line is logged through main's own
//! logger in ocserv's worker shape, `rocserv[WORKER_PID]: worker[USER]: IP message`
//! (`worker: IP message` until the CONNECT is granted; USER is the granted name, escaped),
//! with the message escaped (proto::logline), so a compromised worker can neither write into
//! main's log directly nor make a line that looks like one of main's or sec-mod's (which
//! fail2ban acts on): its text always follows main's `worker...: IP ` prefix, and the IP is the
//! connection's own.
//!
//! Floods: lines are paced by a token bucket ([`BURST`] lines, then [`PER_SECOND`] a second).
//! While the bucket is empty main stops reading the pipe, so a flooding worker blocks in its own
//! `write` (it slows only its own client) and main spends no CPU on it. Nothing is dropped, and
//! the worker is not killed for it; overlong lines are cut at [`MAX_LINE`] bytes.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use log::Level;
use rocserv_proto::logline::{self, LineBudget, LineSplitter, Severity, MAX_LINE};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines a worker may log at once, then [`PER_SECOND`] a second. An honest worker logs a few
/// lines per connection at the normal level; `-d 9` tracing may be paced by this.
pub const BURST: u32 = 200;
pub const PER_SECOND: u32 = 50;

/// Read `pipe` (a worker's stderr) to its end and log every line as the worker `pid` serving
/// `peer`, for `user` once main granted its CONNECT.
pub async fn relay(
    mut pipe: impl AsyncRead + Unpin,
    pid: u32,
    peer: SocketAddr,
    user: Arc<OnceLock<String>>,
) {
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut budget = LineBudget::new(BURST, PER_SECOND, Instant::now());
    let mut buf = [0u8; 4096];
    let mut lines = Vec::new();
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.feed(buf.get(..n).unwrap_or_default(), &mut lines),
        }
        for line in lines.drain(..) {
            while let Err(wait_ms) = budget.take(Instant::now()) {
                tokio::time::sleep(Duration::from_millis(wait_ms.min(1000))).await;
            }
            emit(pid, peer, user.get().map(String::as_str), &line);
        }
    }
    if let Some(line) = splitter.finish() {
        emit(pid, peer, user.get().map(String::as_str), &line);
    }
}

/// The level and escaped message main logs for one worker line (after the `worker...: IP `
/// prefix, crate::logger::worker_line).
pub fn format(line: &logline::Line) -> (Level, String) {
    let (severity, message) = logline::split_tag(&line.bytes);
    let level = match severity {
        Severity::Error => Level::Error,
        Severity::Warn => Level::Warn,
        Severity::Info => Level::Info,
        Severity::Debug => Level::Debug,
        Severity::Trace => Level::Trace,
    };
    let cut = if line.cut { " [line cut]" } else { "" };
    let text = format!("{}{cut}", logline::escape(message));
    (level, text)
}

fn emit(pid: u32, peer: SocketAddr, user: Option<&str>, line: &logline::Line) {
    let (level, text) = format(line);
    crate::logger::worker_line(level, pid, user, peer, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_and_keep_their_level() {
        let line = |b: &[u8]| logline::Line {
            bytes: b.to_vec(),
            cut: false,
        };
        assert_eq!(
            format(&line(b"<I> user 'bob' logged in")),
            (Level::Info, "user 'bob' logged in".to_owned())
        );
        assert_eq!(
            format(&line(b"<D> x\rrocserv[1]: banning 6.6.6.6")),
            (Level::Debug, "x\\rrocserv[1]: banning 6.6.6.6".to_owned())
        );
        let cut = logline::Line {
            bytes: b"thread panicked".to_vec(),
            cut: true,
        };
        assert_eq!(
            format(&cut),
            (Level::Warn, "thread panicked [line cut]".to_owned())
        );
    }
}
