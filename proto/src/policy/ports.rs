//! `restrict-user-to-ports`: ocserv's syntax `tcp(443), udp(53), icmp()`, or `!(...)` for
//! everything but those. Comes from files panels write: parsed sans-IO and fuzzed (target
//! `ports`).
//!
//! The grammar, as ocserv accepts it (facts from ocserv's `src/config-ports.c`, its
//! `tests/port-parsing.c` and `doc/sample.config`):
//!
//! ```text
//! value  = list | "!" "(" list ")"
//! list   = entry *( "," entry )
//! entry  = proto "(" [ port ] ")"
//! proto  = "tcp" | "udp" | "sctp" | "icmp" | "icmpv6" | "esp"     (any case)
//! ```
//!
//! with blanks allowed around every token. `tcp`, `udp` and `sctp` take a port; `icmp()`,
//! `icmpv6()` and `esp()` stand for the whole protocol. A list is an allow list (the client may
//! send only those); a `!(...)` list is a deny list (the client may send anything but those).
//!
//! rocserv is stricter than ocserv where ocserv reads something else than what was written
//! (it reads the port with `atoi`, so `tcp()`, `tcp(http)` and `tcp(80x)` become ports 0, 0
//! and 80, and it ignores whatever follows a negated list's `)`): those are errors here, so a
//! typo refuses the configuration or the login instead of opening or closing other ports.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most entries in one value: each becomes part of a kernel rule set, and no real list comes
/// near this (ocserv has no limit; panels write a handful).
pub const MAX_RULES: usize = 1024;

/// A parsed `restrict-user-to-ports` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRules {
    /// `!(...)`: the listed ports are the ones denied, everything else is allowed.
    pub negated: bool,
    /// Never empty when parsed; in the order written.
    pub rules: Vec<PortRule>,
}

/// One entry of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortRule {
    /// `tcp(N)`: TCP to destination port N (IPv4 and IPv6).
    Tcp(u16),
    /// `udp(N)`: UDP to destination port N (IPv4 and IPv6).
    Udp(u16),
    /// `sctp(N)`: SCTP to destination port N (IPv4 and IPv6).
    Sctp(u16),
    /// `icmp()`: all of ICMP (IPv4).
    Icmp,
    /// `icmpv6()`: all of ICMPv6.
    Icmpv6,
    /// `esp()`: all of IPsec ESP (IPv4 and IPv6).
    Esp,
}

/// Why a `restrict-user-to-ports` value was refused. `at` is the 1-based column (in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    /// Nothing (or only blanks) where a list was expected.
    #[error("empty list of ports")]
    Empty,
    /// Not one of `tcp`, `udp`, `sctp`, `icmp`, `icmpv6`, `esp`.
    #[error("at column {at}: expected tcp, udp, sctp, icmp, icmpv6 or esp")]
    UnknownProtocol { at: usize },
    /// `!` not followed by `(`.
    #[error("at column {at}: expected `(` after `!`")]
    NegationWithoutParenthesis { at: usize },
    /// A protocol not followed by `(`.
    #[error("at column {at}: expected `(` after the protocol")]
    ExpectedOpen { at: usize },
    /// A port (or, for icmp/icmpv6/esp, nothing) not followed by `)`.
    #[error("at column {at}: expected `)`")]
    ExpectedClose { at: usize },
    /// `tcp`, `udp` or `sctp` without a port, or a port outside 1-65535.
    #[error("at column {at}: expected a port number from 1 to 65535")]
    BadPort { at: usize },
    /// `icmp`, `icmpv6` and `esp` take no port: `icmp()`.
    #[error("at column {at}: this protocol takes no port, write it with empty parentheses")]
    UnexpectedPort { at: usize },
    /// Something else than `,` or the end after an entry (a trailing `,` included).
    #[error("at column {at}: expected `,` or the end of the list")]
    ExpectedComma { at: usize },
    /// A negated list not closed by `)`.
    #[error("at column {at}: expected `)` closing the `!(` list")]
    UnclosedNegation { at: usize },
    /// More than [`MAX_RULES`] entries.
    #[error("more than {MAX_RULES} entries")]
    TooMany,
}

/// The configuration parsers report errors as text; this keeps `ports::parse(v)?` usable there.
impl From<PortsError> for String {
    fn from(e: PortsError) -> Self {
        e.to_string()
    }
}

/// Parse a `restrict-user-to-ports` value (already unquoted). Never panics.
pub fn parse(text: &str) -> Result<PortRules, PortsError> {
    let mut c = Cursor { text, pos: 0 };
    c.blanks();
    if c.at_end() {
        return Err(PortsError::Empty);
    }
    let negated = c.eat(b'!');
    if negated {
        c.blanks();
        if !c.eat(b'(') {
            return Err(PortsError::NegationWithoutParenthesis { at: c.column() });
        }
        c.blanks();
        if c.peek() == Some(b')') {
            return Err(PortsError::Empty);
        }
    }
    let mut rules = Vec::new();
    loop {
        if rules.len() >= MAX_RULES {
            return Err(PortsError::TooMany);
        }
        rules.push(entry(&mut c)?);
        c.blanks();
        if c.eat(b',') {
            continue;
        }
        if negated {
            if !c.eat(b')') {
                return Err(PortsError::UnclosedNegation { at: c.column() });
            }
            c.blanks();
        }
        if !c.at_end() {
            return Err(PortsError::ExpectedComma { at: c.column() });
        }
        return Ok(PortRules { negated, rules });
    }
}

/// One `proto(port)`.
fn entry(c: &mut Cursor<'_>) -> Result<PortRule, PortsError> {
    c.blanks();
    let at = c.column();
    let word = c.word();
    let proto = match word.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        "icmp" => Proto::Icmp,
        "icmpv6" => Proto::Icmpv6,
        "esp" => Proto::Esp,
        _ => return Err(PortsError::UnknownProtocol { at }),
    };
    c.blanks();
    if !c.eat(b'(') {
        return Err(PortsError::ExpectedOpen { at: c.column() });
    }
    c.blanks();
    let port_at = c.column();
    let digits = c.digits();
    c.blanks();
    if c.peek() != Some(b')') {
        // `tcp(80x)`, `tcp(8 0)`, `icmp(any)` or a missing `)`.
        return Err(match c.peek() {
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                if !matches!(proto, Proto::Tcp | Proto::Udp | Proto::Sctp) =>
            {
                PortsError::UnexpectedPort { at: port_at }
            }
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z') => PortsError::BadPort { at: port_at },
            _ => PortsError::ExpectedClose { at: c.column() },
        });
    }
    c.pos = c.pos.saturating_add(1);
    let port = || -> Result<u16, PortsError> {
        digits
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(PortsError::BadPort { at: port_at })
    };
    let no_port = || {
        if digits.is_empty() {
            Ok(())
        } else {
            Err(PortsError::UnexpectedPort { at: port_at })
        }
    };
    Ok(match proto {
        Proto::Tcp => PortRule::Tcp(port()?),
        Proto::Udp => PortRule::Udp(port()?),
        Proto::Sctp => PortRule::Sctp(port()?),
        Proto::Icmp => no_port().map(|()| PortRule::Icmp)?,
        Proto::Icmpv6 => no_port().map(|()| PortRule::Icmpv6)?,
        Proto::Esp => no_port().map(|()| PortRule::Esp)?,
    })
}

#[derive(Clone, Copy)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    Esp,
}

/// A position in the value; every step checks the bounds.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn column(&self) -> usize {
        self.pos.saturating_add(1)
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos = self.pos.saturating_add(1);
            true
        } else {
            false
        }
    }

    /// Spaces and tabs (ocserv skips any blank; a value is one line, so no newlines here).
    fn blanks(&mut self) {
        while matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
        ) {
            self.pos = self.pos.saturating_add(1);
        }
    }

    /// The longest run of bytes matching `f` (all ASCII, so the slice ends on a char boundary).
    fn run(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos = self.pos.saturating_add(1);
        }
        self.text.get(start..self.pos).unwrap_or_default()
    }

    fn word(&mut self) -> &'a str {
        self.run(|b| b.is_ascii_alphanumeric())
    }

    fn digits(&mut self) -> &'a str {
        self.run(|b| b.is_ascii_digit())
    }
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(p) => write!(f, "tcp({p})"),
            Self::Udp(p) => write!(f, "udp({p})"),
            Self::Sctp(p) => write!(f, "sctp({p})"),
            Self::Icmp => f.write_str("icmp()"),
            Self::Icmpv6 => f.write_str("icmpv6()"),
            Self::Esp => f.write_str("esp()"),
        }
    }
}

/// ocserv's syntax, normalised (`tcp(80), udp(53)` or `!(tcp(22))`); [`parse`] reads it back
/// to the same value.
impl fmt::Display for PortRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!(")?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{rule}")?;
        }
        if self.negated {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PortRule::*;
    use super::*;

    fn ok(text: &str) -> PortRules {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// ocserv's own vectors (tests/port-parsing.c): the list, the same with odd spacing, and
    /// negated.
    #[test]
    fn ocserv_vectors() {
        let want = vec![Icmp, Tcp(88), Udp(90), Sctp(70), Tcp(443), Udp(80), Icmpv6];
        let plain = ok("icmp(), tcp(88), udp(90), sctp(70), tcp(443), udp(80), icmpv6()");
        assert_eq!(
            plain,
            PortRules {
                negated: false,
                rules: want.clone()
            }
        );
        let spaced = ok("icmp (  ), tcp\t (  88 ), udp  (  90  ), sctp  (  70   )   ,   tcp   (  443   )    ,  \t udp(80)  \t, icmpv6 ( )   \t");
        assert_eq!(spaced, plain);
        let negated = ok("!(icmp(), tcp(88), udp(90), sctp(70), tcp(443), udp(80), icmpv6())");
        assert_eq!(
            negated,
            PortRules {
                negated: true,
                rules: want
            }
        );
        assert_eq!(
            parse("tcp(88), tcp(90),"),
            Err(PortsError::UnknownProtocol { at: 18 })
        );
        assert_eq!(
            parse("tcp(88), tcp"),
            Err(PortsError::ExpectedOpen { at: 13 })
        );
    }

    /// The sample configuration's examples, any case, esp, blanks around `!(`.
    #[test]
    fn sample_config_and_variants() {
        assert_eq!(
            ok("tcp(443), tcp(80), udp(443), sctp(99), tcp(583), icmp(), icmpv6()").rules,
            vec![
                Tcp(443),
                Tcp(80),
                Udp(443),
                Sctp(99),
                Tcp(583),
                Icmp,
                Icmpv6
            ]
        );
        assert_eq!(
            ok("!(tcp(443), tcp(80))"),
            PortRules {
                negated: true,
                rules: vec![Tcp(443), Tcp(80)]
            }
        );
        assert_eq!(ok("  ! ( TCP(22) , Esp() )  ").rules, vec![Tcp(22), Esp]);
        assert_eq!(ok("Udp(65535)").rules, vec![Udp(65535)]);
        assert_eq!(ok("tcp(0080)").rules, vec![Tcp(80)]);
    }

    #[test]
    fn refusals() {
        use PortsError::*;
        let cases: &[(&str, PortsError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("!()", Empty),
            ("! ( ) ", Empty),
            ("!tcp(22)", NegationWithoutParenthesis { at: 2 }),
            ("http(80)", UnknownProtocol { at: 1 }),
            ("tcp(80), ", UnknownProtocol { at: 10 }),
            ("icmp6()", UnknownProtocol { at: 1 }),
            ("tcp 80", ExpectedOpen { at: 5 }),
            ("tcp()", BadPort { at: 5 }),
            ("tcp(0)", BadPort { at: 5 }),
            ("tcp(65536)", BadPort { at: 5 }),
            ("tcp(99999999999999999999)", BadPort { at: 5 }),
            ("tcp(http)", BadPort { at: 5 }),
            ("tcp(80x)", BadPort { at: 5 }),
            ("tcp(8 0)", BadPort { at: 5 }),
            ("tcp(-1)", ExpectedClose { at: 5 }),
            ("tcp(80:90)", ExpectedClose { at: 7 }),
            ("tcp(80", ExpectedClose { at: 7 }),
            ("icmp(8)", UnexpectedPort { at: 6 }),
            ("esp(50)", UnexpectedPort { at: 5 }),
            ("tcp(80) udp(53)", ExpectedComma { at: 9 }),
            ("tcp(80);", ExpectedComma { at: 8 }),
            ("tcp(80))", ExpectedComma { at: 8 }),
            ("!(tcp(80)", UnclosedNegation { at: 10 }),
            ("!(tcp(80)) x", ExpectedComma { at: 12 }),
            ("!(tcp(80)))", ExpectedComma { at: 11 }),
            ("!!(tcp(80))", NegationWithoutParenthesis { at: 2 }),
            ("tcp(80), !(udp(53))", UnknownProtocol { at: 10 }),
            ("tcp(8é0)", ExpectedClose { at: 6 }),
            ("é", UnknownProtocol { at: 1 }),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(*want), "{text:?}");
        }
    }

    #[test]
    fn at_most_max_rules() {
        let list = vec!["udp(53)"; MAX_RULES].join(",");
        assert_eq!(ok(&list).rules.len(), MAX_RULES);
        assert_eq!(parse(&format!("{list},udp(53)")), Err(PortsError::TooMany));
    }

    #[test]
    fn display_reads_back() {
        for text in ["tcp(80), udp(53), icmp()", "!(sctp(9), icmpv6(), esp())"] {
            let rules = ok(text);
            assert_eq!(rules.to_string(), text);
            assert_eq!(ok(&rules.to_string()), rules);
        }
        assert_eq!(ok(" TCP ( 80 ) ").to_string(), "tcp(80)");
    }

    #[test]
    fn errors_read_as_text_for_the_config_parsers() {
        let e: String = parse("tcp()").unwrap_err().into();
        assert_eq!(e, "at column 5: expected a port number from 1 to 65535");
    }
}
