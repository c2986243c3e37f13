//! A worker's stderr is a pipe that only main reads: each line is logged through main's own
//! logger as `worker[PID] PEER: message`, escaped (proto::logline), so a compromised worker can
//! neither write into main's log directly nor make a line that looks like one of main's (which
//! fail2ban acts on).
//!
//! Floods: lines are paced by a token bucket ([`BURST`] lines, then [`PER_SECOND`] a second).
//! While the bucket is empty main stops reading the pipe, so a flooding worker blocks in its own
//! `write` (it slows only its own client) and main spends no CPU on it. Nothing is dropped, and
//! the worker is not killed for it; overlong lines are cut at [`MAX_LINE`] bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::Level;
use rocserv_proto::logline::{self, LineBudget, LineSplitter, Severity, MAX_LINE};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines a worker may log at once, then [`PER_SECOND`] a second. An honest worker logs a few
/// lines per connection at the normal level; `-d 9` tracing may be paced by this.
pub const BURST: u32 = 200;
pub const PER_SECOND: u32 = 50;

/// Read `pipe` (a worker's stderr) to its end and log every line as the worker `pid` serving
/// `peer`.
pub async fn relay(mut pipe: impl AsyncRead + Unpin, pid: u32, peer: SocketAddr) {
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
            emit(pid, peer, &line);
        }
    }
    if let Some(line) = splitter.finish() {
        emit(pid, peer, &line);
    }
}

/// The text main logs for one worker line: `worker[PID] PEER: escaped message`.
pub fn format(pid: u32, peer: SocketAddr, line: &logline::Line) -> (Level, String) {
    let (severity, message) = logline::split_tag(&line.bytes);
    let level = match severity {
        Severity::Error => Level::Error,
        Severity::Warn => Level::Warn,
        Severity::Info => Level::Info,
        Severity::Debug => Level::Debug,
        Severity::Trace => Level::Trace,
    };
    let cut = if line.cut { " [line cut]" } else { "" };
    let text = format!("worker[{pid}] {peer}: {}{cut}", logline::escape(message));
    (level, text)
}

fn emit(pid: u32, peer: SocketAddr, line: &logline::Line) {
    let (level, text) = format(pid, peer, line);
    log::log!(level, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_escaped_and_keep_their_level() {
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let line = |b: &[u8]| logline::Line {
            bytes: b.to_vec(),
            cut: false,
        };
        assert_eq!(
            format(42, peer, &line(b"<I> user 'bob' logged in")),
            (
                Level::Info,
                "worker[42] 192.0.2.7:40000: user 'bob' logged in".to_owned()
            )
        );
        assert_eq!(
            format(42, peer, &line(b"<D> x\rrocserv[1]: banning 6.6.6.6")),
            (
                Level::Debug,
                "worker[42] 192.0.2.7:40000: x\\rrocserv[1]: banning 6.6.6.6".to_owned()
            )
        );
        let cut = logline::Line {
            bytes: b"thread panicked".to_vec(),
            cut: true,
        };
        assert_eq!(
            format(1, peer, &cut),
            (
                Level::Warn,
                "worker[1] 192.0.2.7:40000: thread panicked [line cut]".to_owned()
            )
        );
    }
}
