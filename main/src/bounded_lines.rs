//! Reading a child's output (the scripts' stdout and stderr) in lines with bounded memory: a
//! script that prints an endless line, or endless lines, must not grow main (root, one
//! process for every user). A line is cut at `max` bytes, and its cut head is passed on as soon
//! as it is full, so even a line that never ends shows up; the rest of it is read and dropped.
//! After `max_lines` lines the stream is still drained (the child must not block on a full
//! pipe) but nothing more is passed on.

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Read size; with `max` this bounds the memory used per stream.
const CHUNK: usize = 4096;

/// Call `emit` for each line of `stream` until it closes: text lossily decoded, a trailing CR
/// removed, escaped for a log line; then one note when lines were dropped.
pub async fn read_lines<R: AsyncRead + Unpin>(
    mut stream: R,
    max: usize,
    max_lines: usize,
    mut emit: impl FnMut(&str),
) {
    let mut cutter = LineCutter::new(max);
    let mut chunk = [0u8; CHUNK];
    let mut seen = 0usize;
    let mut out = |line: &[u8]| {
        seen = seen.saturating_add(1);
        if seen <= max_lines {
            let text = String::from_utf8_lossy(line);
            emit(&text.trim_end_matches('\r').escape_debug().to_string());
        }
    };
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => cutter.push(chunk.get(..n).unwrap_or_default(), &mut out),
        }
    }
    cutter.finish(&mut out);
    if seen > max_lines {
        emit(&format!("({} more lines not logged)", seen - max_lines));
    }
}

/// Sans-IO: bytes in, lines of at most `max` bytes out; holds at most `max` bytes.
#[derive(Debug)]
pub struct LineCutter {
    max: usize,
    line: Vec<u8>,
    /// The current line was longer than `max`: its head went out, the rest is dropped.
    cut: bool,
}

impl LineCutter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::with_capacity(max),
            cut: false,
        }
    }

    /// Take `data`, passing each completed (or cut) line to `emit`, without its newline.
    pub fn push(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let (body, ends) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            if !self.cut {
                let room = self.max.saturating_sub(self.line.len());
                self.line
                    .extend_from_slice(body.get(..body.len().min(room)).unwrap_or_default());
                if body.len() > room {
                    emit(&self.line);
                    self.line.clear();
                    self.cut = true;
                }
            }
            if ends {
                if !self.cut {
                    emit(&self.line);
                }
                self.line.clear();
                self.cut = false;
            }
        }
    }

    /// The stream ended: pass on a last line without a newline.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.cut && !self.line.is_empty() {
            emit(&self.line);
        }
        self.line.clear();
        self.cut = false;
    }

    /// Bytes held now (never more than `max`).
    pub fn held(&self) -> usize {
        self.line.len()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    fn cut(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut c = LineCutter::new(max);
        let mut lines = Vec::new();
        let mut emit = |l: &[u8]| lines.push(String::from_utf8_lossy(l).into_owned());
        for chunk in chunks {
            c.push(chunk, &mut emit);
            assert!(c.held() <= max);
        }
        c.finish(&mut emit);
        lines
    }

    #[test]
    fn lines_across_chunks_and_cut_at_the_limit() {
        assert_eq!(
            cut(8, &[b"ab", b"c\nde", b"f\n", b"tail"]),
            ["abc", "def", "tail"]
        );
        assert_eq!(cut(4, &[b"abcd\n"]), ["abcd"]);
        assert_eq!(cut(4, &[b"abcd", b"\n"]), ["abcd"]);
        assert_eq!(cut(4, &[b"abcdefgh\nxy\n"]), ["abcd", "xy"]);
        assert_eq!(cut(4, &[b"abcd", b"e", b"fgh\nxy"]), ["abcd", "xy"]);
        assert_eq!(cut(4, &[b"\n\n"]), ["", ""]);
    }

    #[test]
    fn an_endless_line_holds_only_the_limit() {
        let mut c = LineCutter::new(512);
        let mut emitted = 0;
        let mut emit = |l: &[u8]| {
            assert_eq!(l.len(), 512);
            emitted += 1;
        };
        for _ in 0..10_000 {
            c.push(&[b'x'; CHUNK], &mut emit);
            assert!(c.held() <= 512);
        }
        assert_eq!(emitted, 1);
    }

    /// `x` bytes for `left` bytes, then pending forever (a script that printed a lot and keeps
    /// its stdout open without ever ending the line).
    struct Endless {
        left: usize,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.left == 0 {
                return Poll::Pending;
            }
            let n = buf.remaining().min(self.left);
            buf.put_slice(&vec![b'x'; n]);
            self.left -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_endless_line_is_logged_cut_while_it_is_still_being_written() {
        let mut lines = Vec::new();
        let read = read_lines(Endless { left: 16 << 20 }, 512, 100, |l| {
            lines.push(l.to_owned())
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
        assert_eq!(lines, ["x".repeat(512)]);
    }

    #[tokio::test]
    async fn lines_beyond_the_count_are_drained_not_logged() {
        let text = "line\n".repeat(50);
        let mut lines = Vec::new();
        read_lines(text.as_bytes(), 64, 3, |l| lines.push(l.to_owned())).await;
        assert_eq!(
            lines,
            ["line", "line", "line", "(47 more lines not logged)"]
        );
    }
}
