//! Log lines a worker writes to its stderr pipe, as main reads them (sans-IO).
//!
//! A worker may be compromised, and main's log is what fail2ban and administrators act on, so
//! nothing a worker writes may end one of main's lines early or look like a line of main's own.
//! main cuts the pipe's bytes into lines with [`LineSplitter`] (bounded: an overlong line is cut,
//! its rest dropped), takes the optional severity tag the worker's logger puts first
//! ([`split_tag`]), makes every byte that is not printable ASCII visible with [`escape`], and
//! paces lines with [`LineBudget`] (a token bucket; main stops reading while it is empty, so a
//! flooding worker blocks on its own `write`, and main's log grows at a bounded rate).

/// The longest line main logs for a worker, in bytes (before escaping). A worker's longest
/// honest line (an error chain) is well under this. Escaped (at most 4 bytes per byte) and with
/// main's prefix it stays under `PIPE_BUF` (4096), so main writes it to a pipe atomically.
pub const MAX_LINE: usize = 1000;

/// What a worker's line says about itself (trusted no further than its severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Severity {
    /// The tag the worker's logger writes at the start of a line (`<I> message`).
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Error => "<E> ",
            Self::Warn => "<W> ",
            Self::Info => "<I> ",
            Self::Debug => "<D> ",
            Self::Trace => "<T> ",
        }
    }
}

/// Split a line into its severity tag and the rest; a line without a tag (a panic message, or
/// whatever a compromised worker writes) is a warning, so that it is not filtered out.
pub fn split_tag(line: &[u8]) -> (Severity, &[u8]) {
    for severity in [
        Severity::Error,
        Severity::Warn,
        Severity::Info,
        Severity::Debug,
        Severity::Trace,
    ] {
        if let Some(rest) = line.strip_prefix(severity.tag().as_bytes()) {
            return (severity, rest);
        }
    }
    (Severity::Warn, line)
}

/// `bytes` as printable ASCII: printable ASCII except `\` stays, `\` becomes `\\`, tab, CR and
/// LF become `\t`, `\r`, `\n`, every other byte (controls, DEL, all non-ASCII) becomes `\xNN`.
/// The result never holds a control character, so it can never start a new log line, and it
/// maps back to `bytes` without ambiguity.
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let hex =
                    |nibble: u8| char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'?'));
                out.push_str("\\x");
                out.push(hex(b >> 4));
                out.push(hex(b & 0x0f));
            }
        }
    }
    out
}

/// One line out of a [`LineSplitter`] (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    /// The line was longer than the limit; `bytes` is its start, the rest was dropped.
    pub cut: bool,
}

/// Cuts a byte stream into `\n`-terminated lines of at most `max` bytes. Memory is bounded by
/// `max`: the first `max` bytes of an overlong line are returned at once (marked `cut`), and
/// the bytes up to its newline are dropped.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    /// Inside the dropped rest of an overlong line.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(1),
            skipping: false,
        }
    }

    /// Take the next bytes of the stream; complete lines go to `out` in order.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Line>) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let (chunk, rest, ends) = match newline {
                Some(at) => {
                    let (chunk, rest) = data.split_at(at);
                    (chunk, rest.get(1..).unwrap_or_default(), true)
                }
                None => (data, &[][..], false),
            };
            data = rest;
            if self.skipping {
                self.skipping = !ends;
                continue;
            }
            let room = self.max.saturating_sub(self.buf.len());
            if chunk.len() > room {
                let (fits, _) = chunk.split_at(room);
                self.buf.extend_from_slice(fits);
                out.push(Line {
                    bytes: std::mem::take(&mut self.buf),
                    cut: true,
                });
                self.skipping = !ends;
            } else {
                self.buf.extend_from_slice(chunk);
                if ends {
                    out.push(Line {
                        bytes: std::mem::take(&mut self.buf),
                        cut: false,
                    });
                }
            }
        }
    }

    /// The stream ended: a last line without a newline, if any.
    pub fn finish(&mut self) -> Option<Line> {
        self.skipping = false;
        (!self.buf.is_empty()).then(|| Line {
            bytes: std::mem::take(&mut self.buf),
            cut: false,
        })
    }
}

/// A token bucket over lines: `burst` lines at once, then `per_second`. Time is passed in.
#[derive(Debug, Clone)]
pub struct LineBudget<T> {
    burst: u32,
    per_second: u32,
    /// Tokens in thousandths of a line, so that slow refills do not round to nothing.
    milli: u64,
    last: T,
}

/// The clock a [`LineBudget`] runs on (`std::time::Instant` in main, plain numbers in tests).
pub trait Clock: Copy {
    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    fn millis_since(self, earlier: Self) -> u64;
}

impl Clock for std::time::Instant {
    fn millis_since(self, earlier: Self) -> u64 {
        u64::try_from(self.saturating_duration_since(earlier).as_millis()).unwrap_or(u64::MAX)
    }
}

impl<T: Clock> LineBudget<T> {
    /// A full bucket at `now`.
    pub fn new(burst: u32, per_second: u32, now: T) -> Self {
        Self {
            burst,
            per_second,
            milli: u64::from(burst).saturating_mul(1000),
            last: now,
        }
    }

    /// Spend one line at `now`: `Ok` if there was a token, else how many milliseconds until
    /// the next one.
    pub fn take(&mut self, now: T) -> Result<(), u64> {
        let elapsed = now.millis_since(self.last);
        self.last = now;
        // per_second lines per 1000 ms = per_second thousandths of a line per ms.
        let refill = elapsed.saturating_mul(u64::from(self.per_second));
        self.milli = self
            .milli
            .saturating_add(refill)
            .min(u64::from(self.burst).saturating_mul(1000));
        if let Some(left) = self.milli.checked_sub(1000) {
            self.milli = left;
            return Ok(());
        }
        if self.per_second == 0 {
            return Err(u64::MAX);
        }
        let missing = 1000u64.saturating_sub(self.milli);
        Err(missing.div_ceil(u64::from(self.per_second)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, chunks: &[&[u8]]) -> (Vec<Line>, Option<Line>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        let last = s.finish();
        (out, last)
    }

    fn line(b: &[u8], cut: bool) -> Line {
        Line {
            bytes: b.to_vec(),
            cut,
        }
    }

    #[test]
    fn escape_keeps_printable_ascii_and_shows_everything_else() {
        assert_eq!(escape(b"user 'bob' logged in"), "user 'bob' logged in");
        assert_eq!(
            escape(b"x\nrocserv[1]: banning 6.6.6.6"),
            "x\\nrocserv[1]: banning 6.6.6.6"
        );
        assert_eq!(escape(b"a\\nb"), "a\\\\nb");
        assert_eq!(escape(b"\t\r\x00\x1b[31m\x7f"), "\\t\\r\\x00\\x1b[31m\\x7f");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
        assert_eq!(escape(&[0xff, 0x80]), "\\xff\\x80");
        // Whatever goes in, nothing that could end or rewrite a line comes out.
        let all: Vec<u8> = (0..=255).collect();
        assert!(escape(&all).bytes().all(|b| (0x20..=0x7e).contains(&b)));
    }

    #[test]
    fn lines_are_split_across_reads() {
        let (out, last) = lines(100, &[b"ab", b"c\nde\n\nf", b"g\n", b"tail"]);
        assert_eq!(
            out,
            [
                line(b"abc", false),
                line(b"de", false),
                line(b"", false),
                line(b"fg", false)
            ]
        );
        assert_eq!(last, Some(line(b"tail", false)));
        assert_eq!(lines(100, &[b"x\n"]).1, None);
    }

    #[test]
    fn an_overlong_line_is_cut_and_its_rest_dropped() {
        let (out, last) = lines(4, &[b"0123456789", b"abc\nok\n012", b"3\n01234"]);
        assert_eq!(
            out,
            [
                line(b"0123", true),
                line(b"ok", false),
                line(b"0123", false),
                line(b"0123", true)
            ]
        );
        assert_eq!(last, None);
        // Memory stays bounded however long the line is.
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.feed(&[b'x'; 1000], &mut out);
            assert!(s.buf.len() <= 8);
        }
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn tags_give_the_severity_and_untagged_lines_are_warnings() {
        assert_eq!(split_tag(b"<I> hello"), (Severity::Info, &b"hello"[..]));
        assert_eq!(split_tag(b"<E> x"), (Severity::Error, &b"x"[..]));
        assert_eq!(split_tag(b"<T> "), (Severity::Trace, &b""[..]));
        assert_eq!(
            split_tag(b"thread 'main' panicked"),
            (Severity::Warn, &b"thread 'main' panicked"[..])
        );
        assert_eq!(split_tag(b"<X> y"), (Severity::Warn, &b"<X> y"[..]));
    }

    #[derive(Clone, Copy)]
    struct Ms(u64);
    impl Clock for Ms {
        fn millis_since(self, earlier: Self) -> u64 {
            self.0.saturating_sub(earlier.0)
        }
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let mut b = LineBudget::new(3, 10, Ms(0));
        for _ in 0..3 {
            assert_eq!(b.take(Ms(0)), Ok(()));
        }
        assert_eq!(b.take(Ms(0)), Err(100));
        assert_eq!(b.take(Ms(50)), Err(50));
        assert_eq!(b.take(Ms(100)), Ok(()));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert_eq!(b.take(Ms(100_000)), Ok(()));
        }
        assert!(b.take(Ms(100_000)).is_err());
        // Over 10 s at most burst + 10/s lines pass.
        let mut b = LineBudget::new(3, 10, Ms(0));
        let passed = (0..10_000).filter(|i| b.take(Ms(*i)).is_ok()).count();
        assert_eq!(passed, 3 + 99);
    }
}
