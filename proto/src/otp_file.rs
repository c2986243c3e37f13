//! The one-time password users file of `auth = "plain[...,otp=FILE]"`: oath-toolkit's
//! "UsersFile" format, as ocserv reads and rewrites it through liboath
//! (`oath_authenticate_usersfile`).
//!
//! Facts about the format (liboath usersfile.c behaviour and its manual page; the format's own
//! description is mod_authn_otp's UsersFile wiki page, which ocserv's sample.config cites):
//!
//! - One token per line, fields separated by any run of spaces, tabs or `\r`:
//!   `TYPE USER PIN SECRET [COUNTER [LAST-OTP [LAST-TIME]]]`.
//! - `TYPE` is `HOTP`, `HOTP/E`, `HOTP/E/N` (event based, RFC 4226) or `HOTP/T30`, `HOTP/T60`,
//!   `HOTP/T30/N`, `HOTP/T60/N` (time based with a 30 or 60 s step, RFC 6238), with `N` digits
//!   (6, 7 or 8; default 6).
//! - `PIN` is `-` (none), `+` (checked elsewhere) or a PIN. ocserv calls liboath without a
//!   password, so the PIN is never checked: the password file is the first factor.
//! - `SECRET` is the key in hex.
//! - The last three fields are written back by liboath after each accepted code: the moving
//!   factor (the counter of the code used, for HOTP), the code itself and the local time as
//!   `YYYY-MM-DDTHH:MM:SSL`. liboath then writes the whole line as
//!   `TYPE\tUSER\tPIN\tSECRET\tCOUNTER\tOTP\tTIME` and every other line unchanged.
//! - A user may have several lines (tokens); liboath tries them in order.
//!
//! Differences (we are stricter, so the administrator hears about a mistake at start, `rocserv
//! -t`, instead of a user being silently unknown): liboath skips a line whose type it does not
//! know or that lacks a field, we report it with its line number; blank lines and lines whose
//! first field starts with `#` are comments. A secret may be up to [`MAX_SECRET`] bytes
//! (liboath 2.6: 32).
//!
//! Pure: sec-mod reads the file, [`OtpFile::parse`]s it, verifies, [`OtpFile::record_use`]s and
//! writes [`OtpFile::to_text`] back. The fuzz target is `otp_file`.

use std::fmt;

/// Longest secret accepted, in bytes (a SHA-512 block; RFC 4226 asks for at least 16).
pub const MAX_SECRET: usize = 64;

/// Event or time based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HOTP (RFC 4226): the code is computed from a counter.
    Event,
    /// TOTP (RFC 6238): the counter is the Unix time divided by `step_secs`.
    Time { step_secs: u32 },
}

/// A token type: `HOTP/T30/6` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenType {
    pub kind: Kind,
    /// Digits of a code: 6, 7 or 8.
    pub digits: u8,
}

impl TokenType {
    /// Parse a type field (exact, case-sensitive, as liboath).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        if parts.next() != Some("HOTP") {
            return None;
        }
        let kind = match parts.next() {
            None => {
                return Some(Self {
                    kind: Kind::Event,
                    digits: 6,
                })
            }
            Some("E") => Kind::Event,
            Some("T30") => Kind::Time { step_secs: 30 },
            Some("T60") => Kind::Time { step_secs: 60 },
            Some(_) => return None,
        };
        let digits = match parts.next() {
            None | Some("6") => 6,
            Some("7") => 7,
            Some("8") => 8,
            Some(_) => return None,
        };
        parts.next().is_none().then_some(Self { kind, digits })
    }
}

/// One token line.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// 1-based line number in the file.
    pub line: usize,
    pub token_type: TokenType,
    /// The type field as written (written back unchanged).
    type_text: String,
    pub user: String,
    /// The PIN field as written (`-`, `+` or a PIN); not checked (see the module doc).
    pub pin: String,
    /// The key.
    pub secret: Vec<u8>,
    /// The key field as written.
    secret_text: String,
    /// The moving factor field, if present.
    pub counter: Option<u64>,
    /// The last accepted code, if recorded.
    pub last_otp: Option<String>,
    /// When the last code was accepted (`YYYY-MM-DDTHH:MM:SSL`, local time), if recorded.
    pub last_time: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("line", &self.line)
            .field("token_type", &self.token_type)
            .field("user", &self.user)
            .field("secret", &"<hidden>")
            .field("counter", &self.counter)
            .field("last_otp", &self.last_otp)
            .field("last_time", &self.last_time)
            .finish_non_exhaustive()
    }
}

/// A line that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct OtpFileError {
    /// 1-based line number.
    pub line: usize,
    pub kind: OtpFileErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpFileErrorKind {
    #[error("unknown token type {0:?} (expected HOTP, HOTP/E, HOTP/T30 or HOTP/T60, optionally with /6, /7 or /8)")]
    Type(String),
    #[error(
        "expected `TYPE USER PIN SECRET [COUNTER [LAST-OTP [LAST-TIME]]]`, found {0} field(s)"
    )]
    Fields(usize),
    #[error("the secret is not hex of 1 to {MAX_SECRET} bytes")]
    Secret,
    #[error("the counter {0:?} is not a decimal number")]
    Counter(String),
    #[error("the last-use time {0:?} is not of the form YYYY-MM-DDTHH:MM:SSL")]
    Time(String),
    #[error("the file is not UTF-8 text")]
    Encoding,
}

/// What [`OtpFile::record_use`] refuses to write, since the line would not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUse {
    #[error("no token at index {0}")]
    NoToken(usize),
    #[error("the code is empty or holds whitespace")]
    Code,
    #[error("the time is not of the form YYYY-MM-DDTHH:MM:SSL")]
    Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, or a token line not changed since parsing: written back as it
    /// was read, line end included.
    Verbatim(String),
    /// Index into `tokens`; written from the token when `changed`.
    Token { index: usize, text: String },
}

/// A parsed users file that can be written back with only the updated lines changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpFile {
    lines: Vec<Line>,
    tokens: Vec<Token>,
    changed: Vec<bool>,
}

/// liboath's field separators (usersfile.c `whitespace`, without `\n`: lines are split first).
fn fields(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t', '\r']).filter(|f| !f.is_empty())
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) || bytes.len() / 2 > MAX_SECRET {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSL` (liboath's `%Y-%m-%dT%H:%M:%SL`), shape and field ranges only.
pub fn valid_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 20 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'L',
        _ => c.is_ascii_digit(),
    });
    let num = |r: std::ops::Range<usize>| {
        text.get(r)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    shape_ok
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) <= 23
        && num(14..16) <= 59
        && num(17..19) <= 60
}

fn parse_token(line: usize, text: &str) -> Result<Option<Token>, OtpFileErrorKind> {
    let f: Vec<&str> = fields(text).collect();
    let Some(first) = f.first() else {
        return Ok(None);
    };
    if first.starts_with('#') {
        return Ok(None);
    }
    let token_type =
        TokenType::parse(first).ok_or_else(|| OtpFileErrorKind::Type((*first).into()))?;
    let (user, pin, secret_text, rest) = match f.as_slice() {
        [_, user, pin, secret, rest @ ..] if rest.len() <= 3 => (*user, *pin, *secret, rest),
        _ => return Err(OtpFileErrorKind::Fields(f.len())),
    };
    let secret = hex_decode(secret_text).ok_or(OtpFileErrorKind::Secret)?;
    let counter = match rest.first() {
        None => None,
        Some(c) => Some(
            c.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| c.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| OtpFileErrorKind::Counter((*c).into()))?,
        ),
    };
    let last_time = match rest.get(2) {
        Some(t) if !valid_time(t) => return Err(OtpFileErrorKind::Time((*t).into())),
        t => t.map(|t| (*t).to_owned()),
    };
    Ok(Some(Token {
        line,
        token_type,
        type_text: (*first).to_owned(),
        user: user.to_owned(),
        pin: pin.to_owned(),
        secret,
        secret_text: secret_text.to_owned(),
        counter,
        last_otp: rest.get(1).map(|o| (*o).to_owned()),
        last_time,
    }))
}

impl OtpFile {
    /// Parse a whole users file.
    pub fn parse(text: &str) -> Result<Self, OtpFileError> {
        let mut lines = Vec::new();
        let mut tokens = Vec::new();
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let line = i.saturating_add(1);
            let content = raw.strip_suffix('\n').unwrap_or(raw);
            match parse_token(line, content).map_err(|kind| OtpFileError { line, kind })? {
                None => lines.push(Line::Verbatim(raw.to_owned())),
                Some(token) => {
                    lines.push(Line::Token {
                        index: tokens.len(),
                        text: raw.to_owned(),
                    });
                    tokens.push(token);
                }
            }
        }
        let changed = vec![false; tokens.len()];
        Ok(Self {
            lines,
            tokens,
            changed,
        })
    }

    /// Parse raw bytes (the file as read).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, OtpFileError> {
        let text = std::str::from_utf8(bytes).map_err(|_| OtpFileError {
            line: bytes
                .iter()
                .take(bytes.utf8_chunks().next().map_or(0, |c| c.valid().len()))
                .filter(|&&b| b == b'\n')
                .count()
                .saturating_add(1),
            kind: OtpFileErrorKind::Encoding,
        })?;
        Self::parse(text)
    }

    /// Every token, in file order.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The indices (into [`Self::tokens`]) of `user`'s tokens, in file order.
    pub fn tokens_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.tokens
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.user == user)
            .map(|(i, _)| i)
    }

    /// Record that token `index` accepted `code` with moving factor `counter` at local time
    /// `time` (`YYYY-MM-DDTHH:MM:SSL`): its line is rewritten as liboath writes it.
    pub fn record_use(
        &mut self,
        index: usize,
        counter: u64,
        code: &str,
        time: &str,
    ) -> Result<(), InvalidUse> {
        if code.is_empty() || fields(code).ne(std::iter::once(code)) || code.contains('\n') {
            return Err(InvalidUse::Code);
        }
        if !valid_time(time) {
            return Err(InvalidUse::Time);
        }
        let token = self
            .tokens
            .get_mut(index)
            .ok_or(InvalidUse::NoToken(index))?;
        token.counter = Some(counter);
        token.last_otp = Some(code.to_owned());
        token.last_time = Some(time.to_owned());
        if let Some(changed) = self.changed.get_mut(index) {
            *changed = true;
        }
        Ok(())
    }

    /// The file as text: unchanged lines as they were read, recorded ones in liboath's layout.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Verbatim(text) => out.push_str(text),
                Line::Token { index, text } => {
                    match (self.changed.get(*index), self.tokens.get(*index)) {
                        (Some(true), Some(t)) => {
                            out.push_str(&t.type_text);
                            for field in [&t.user, &t.pin, &t.secret_text] {
                                out.push('\t');
                                out.push_str(field);
                            }
                            out.push('\t');
                            out.push_str(&t.counter.unwrap_or(0).to_string());
                            for field in [&t.last_otp, &t.last_time] {
                                out.push('\t');
                                out.push_str(field.as_deref().unwrap_or("-"));
                            }
                            out.push('\n');
                        }
                        _ => out.push_str(text),
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2006-12-30T00:00:00L";

    fn one(text: &str) -> Token {
        let file = OtpFile::parse(text).unwrap();
        assert_eq!(file.tokens().len(), 1, "{text:?}");
        file.tokens()[0].clone()
    }

    #[test]
    fn types() {
        let ev = |d| TokenType {
            kind: Kind::Event,
            digits: d,
        };
        let time = |s, d| TokenType {
            kind: Kind::Time { step_secs: s },
            digits: d,
        };
        for (text, want) in [
            ("HOTP", Some(ev(6))),
            ("HOTP/E", Some(ev(6))),
            ("HOTP/E/6", Some(ev(6))),
            ("HOTP/E/7", Some(ev(7))),
            ("HOTP/E/8", Some(ev(8))),
            ("HOTP/T30", Some(time(30, 6))),
            ("HOTP/T30/6", Some(time(30, 6))),
            ("HOTP/T30/8", Some(time(30, 8))),
            ("HOTP/T60", Some(time(60, 6))),
            ("HOTP/T60/7", Some(time(60, 7))),
            ("HOTP/T60/9", None),
            ("HOTP/T45", None),
            ("HOTP/E/8/x", None),
            ("HOTP/", None),
            ("hotp", None),
            ("MOTP", None),
            ("TOTP", None),
        ] {
            assert_eq!(TokenType::parse(text), want, "{text}");
        }
    }

    /// The lines of the format's documentation, ocserv's doc/sample.otp and its test file.
    #[test]
    fn documented_lines() {
        let t = one("HOTP/T30 user - 3132333435363738393031323334353637383930\n");
        assert_eq!(t.user, "user");
        assert_eq!(t.pin, "-");
        assert_eq!(t.secret, b"12345678901234567890");
        assert_eq!(t.token_type.kind, Kind::Time { step_secs: 30 });
        assert_eq!((t.counter, t.last_otp, t.last_time), (None, None, None));

        let t = one("HOTP/T30\ttest\t-\t8a2d55707a9084982649dadc04b426a06df19ab2\t1\t691245\t2015-09-25T13:18:42L");
        assert_eq!(t.counter, Some(1));
        assert_eq!(t.last_otp.as_deref(), Some("691245"));
        assert_eq!(t.last_time.as_deref(), Some("2015-09-25T13:18:42L"));

        let t = one("HOTP testuser - 00\n");
        assert_eq!(t.secret, [0]);
        assert_eq!(t.token_type.kind, Kind::Event);

        let t = one("HOTP/E/8 bob 1234 ABCDEF 12 755224 2006-12-30T00:00:00L\r\n");
        assert_eq!(
            (t.pin.as_str(), t.secret.as_slice()),
            ("1234", &[0xab, 0xcd, 0xef][..])
        );
        assert_eq!(t.counter, Some(12));
    }

    #[test]
    fn comments_blank_lines_and_several_tokens() {
        let text =
            "# users\n\n   \nHOTP a - 00\n  # indented comment\nHOTP/T30 a - 01\nHOTP b - 02";
        let file = OtpFile::parse(text).unwrap();
        assert_eq!(file.tokens().len(), 3);
        assert_eq!(file.tokens_of("a").collect::<Vec<_>>(), [0, 1]);
        assert_eq!(file.tokens_of("b").collect::<Vec<_>>(), [2]);
        assert_eq!(file.tokens_of("c").count(), 0);
        assert_eq!(file.tokens()[2].line, 7);
        assert_eq!(file.to_text(), text);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = |text: &str| OtpFile::parse(text).unwrap_err();
        use OtpFileErrorKind as K;
        let cases = [
            ("HOTP a - 00\nMOTP b - 00\n", 2, K::Type("MOTP".into())),
            ("HOTP a -\n", 1, K::Fields(3)),
            ("HOTP\n", 1, K::Fields(1)),
            ("HOTP a - 00 1 2 3 4\n", 1, K::Fields(8)),
            ("HOTP a - 0\n", 1, K::Secret),
            ("HOTP a - 0g\n", 1, K::Secret),
            ("HOTP a - -\n", 1, K::Secret),
            ("\nHOTP a - 00 -1\n", 2, K::Counter("-1".into())),
            ("HOTP a - 00 +1\n", 1, K::Counter("+1".into())),
            (
                "HOTP a - 00 18446744073709551616\n",
                1,
                K::Counter("18446744073709551616".into()),
            ),
            (
                "HOTP a - 00 1 123456 2006-12-30\n",
                1,
                K::Time("2006-12-30".into()),
            ),
            (
                "HOTP a - 00 1 123456 2006-13-30T00:00:00L\n",
                1,
                K::Time("2006-13-30T00:00:00L".into()),
            ),
        ];
        for (text, line, kind) in cases {
            assert_eq!(err(text), OtpFileError { line, kind }, "{text:?}");
        }
        let long = format!("HOTP a - {}\n", "00".repeat(MAX_SECRET + 1));
        assert_eq!(err(&long).kind, K::Secret);
        let max = format!("HOTP a - {}\n", "00".repeat(MAX_SECRET));
        assert_eq!(one(&max).secret.len(), MAX_SECRET);
        assert_eq!(
            OtpFile::parse_bytes(b"HOTP a - 00\nHOTP b - \xff\n").unwrap_err(),
            OtpFileError {
                line: 2,
                kind: K::Encoding
            }
        );
    }

    #[test]
    fn recorded_use_rewrites_only_that_line_as_liboath_does() {
        let text = "# c\nHOTP a - 00\nHOTP/T30  b  1234  3132  7  111111  2006-12-30T00:00:00L\r\nHOTP c - 01";
        let mut file = OtpFile::parse(text).unwrap();
        let b = file.tokens_of("b").next().unwrap();
        file.record_use(b, 42, "755224", T).unwrap();
        let c = file.tokens_of("c").next().unwrap();
        file.record_use(c, 0, "000001", T).unwrap();
        assert_eq!(
            file.to_text(),
            format!("# c\nHOTP a - 00\nHOTP/T30\tb\t1234\t3132\t42\t755224\t{T}\nHOTP\tc\t-\t01\t0\t000001\t{T}\n")
        );
        let again = OtpFile::parse(&file.to_text()).unwrap();
        assert_eq!(again.tokens()[1].counter, Some(42));
        assert_eq!(again.tokens()[1].last_otp.as_deref(), Some("755224"));
        assert_eq!(again.tokens()[1].last_time.as_deref(), Some(T));
        assert_eq!(again.tokens()[1].secret, b"12");
    }

    #[test]
    fn record_use_refuses_what_would_not_read_back() {
        let mut file = OtpFile::parse("HOTP a - 00\n").unwrap();
        assert_eq!(file.record_use(0, 1, "12 34", T), Err(InvalidUse::Code));
        assert_eq!(file.record_use(0, 1, "", T), Err(InvalidUse::Code));
        assert_eq!(file.record_use(0, 1, "12\n34", T), Err(InvalidUse::Code));
        assert_eq!(file.record_use(0, 1, "1234", "now"), Err(InvalidUse::Time));
        assert_eq!(
            file.record_use(1, 1, "1234", T),
            Err(InvalidUse::NoToken(1))
        );
        assert_eq!(file.to_text(), "HOTP a - 00\n");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let t = one("HOTP a - 3132333435\n");
        assert!(!format!("{t:?}").contains("3132"), "{t:?}");
    }
}
