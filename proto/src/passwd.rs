//! ocserv's password file (`ocpasswd`): `user:group1,group2:hash`, one user per line.
//!
//! Parsed by sec-mod (on every login attempt) and by the `ocpasswd` tool, from an admin-owned
//! file. Facts about the format, from ocserv src/auth/plain.c and src/ocpasswd/ocpasswd.c:
//!
//! - A line has exactly three `:`-separated fields; ocserv ignores a line with fewer (so a
//!   `user:hash` line never logs anyone in). We report such a line as an error with its number
//!   instead, so the administrator learns about it.
//! - The group field is a comma-separated list (spaces around names are ignored); `*` means
//!   "no group" and is what ocpasswd writes when no `-g` is given.
//! - The hash is a crypt(3) string; ocpasswd writes SHA-256 crypt (`$5$`, 16 salt characters).
//!   A hash starting with `!` is a locked account (`ocpasswd -l` inserts the `!`, `-u` removes it).
//! - Trailing `\r` is tolerated. Empty lines and lines starting with `#` are not entries; this
//!   module keeps them verbatim so a rewritten file differs only in the lines that changed.
//!
//! [`parse`] is the entry point the fuzz target calls; it never panics.

use std::fmt::Write as _;

/// One user of the password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub username: String,
    /// Groups the user may select; empty when the file says `*`.
    pub groups: Vec<String>,
    /// The crypt(3) hash without the lock marker `!`. May be empty (no password set).
    pub hash: String,
    /// The hash field started with `!`: the account may not log in.
    pub locked: bool,
}

/// A line of the file that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PasswdError {
    /// 1-based line number.
    pub line: usize,
    pub kind: PasswdErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswdErrorKind {
    /// Fewer than three `:`-separated fields.
    #[error("expected `user:groups:hash`, found {0} field(s)")]
    MissingFields(usize),
    /// More than three `:`-separated fields.
    #[error("expected `user:groups:hash`, found {0} fields")]
    TooManyFields(usize),
    /// The user name field is empty.
    #[error("empty user name")]
    EmptyUsername,
    /// The same user name appears on an earlier line.
    #[error("user {user:?} already defined on line {first}")]
    DuplicateUser { user: String, first: usize },
}

/// An entry that cannot be written without corrupting the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEntry {
    /// The user name is empty, starts with `#` or whitespace, or holds `:`, `,` or a control
    /// character.
    #[error("invalid user name {0:?}")]
    Username(String),
    /// A group name is empty, `*`, or holds `:`, `,`, whitespace or a control character.
    #[error("invalid group name {0:?}")]
    Group(String),
    /// The hash holds `:` or a control character, or starts with `!`.
    #[error("invalid password hash")]
    Hash,
}

/// Parse a whole password file into its entries.
pub fn parse(text: &str) -> Result<Vec<Entry>, PasswdError> {
    Ok(PasswdFile::parse(text)?.into_entries())
}

/// Format one entry as ocpasswd writes it: `user:g1,g2:hash` (or `*` for no group, `!` before
/// the hash when locked), without the line end.
pub fn format_entry(entry: &Entry) -> Result<String, InvalidEntry> {
    check_username(&entry.username)?;
    for g in &entry.groups {
        check_group(g)?;
    }
    if entry.hash.starts_with('!') || entry.hash.chars().any(|c| c == ':' || c.is_control()) {
        return Err(InvalidEntry::Hash);
    }
    let mut out = String::new();
    out.push_str(&entry.username);
    out.push(':');
    if entry.groups.is_empty() {
        out.push('*');
    } else {
        out.push_str(&entry.groups.join(","));
    }
    out.push(':');
    if entry.locked {
        out.push('!');
    }
    out.push_str(&entry.hash);
    Ok(out)
}

/// Split a `-g` style group list (`a, b,c`) into names, dropping `*` and empty items.
pub fn parse_group_list(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty() && *g != "*")
        .map(str::to_owned)
        .collect()
}

/// A password file with its comments and layout, for editing (the `ocpasswd` tool).
/// Lines that are not changed are written back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PasswdFile {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A parsed entry and the exact text it came from (`None` once modified).
    Entry { entry: Entry, raw: Option<String> },
    /// A comment or blank line, verbatim (without the line end).
    Other(String),
}

impl PasswdFile {
    /// Parse, keeping comments and the original text of each line.
    pub fn parse(text: &str) -> Result<Self, PasswdError> {
        let mut lines = Vec::new();
        // (username, line number) of the entries seen so far, for duplicate detection.
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        // split_terminator keeps a `\r` in `raw`, so CRLF files are written back unchanged.
        for (index, raw) in text.split_terminator('\n').enumerate() {
            let number = index.saturating_add(1);
            let content = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let entry = parse_line(content).map_err(|kind| PasswdError { line: number, kind })?;
            if let Some(&first) = seen.get(&entry.username) {
                return Err(PasswdError {
                    line: number,
                    kind: PasswdErrorKind::DuplicateUser {
                        user: entry.username,
                        first,
                    },
                });
            }
            seen.insert(entry.username.clone(), number);
            lines.push(Line::Entry {
                entry,
                raw: Some(raw.to_owned()),
            });
        }
        Ok(Self { lines })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { entry, .. } => Some(entry),
            Line::Other(_) => None,
        })
    }

    /// The entry of `username`, if any.
    pub fn find(&self, username: &str) -> Option<&Entry> {
        self.entries().find(|e| e.username == username)
    }

    /// Replace the entry with the same user name in place, or append it.
    pub fn upsert(&mut self, new: Entry) -> Result<(), InvalidEntry> {
        format_entry(&new)?;
        match self.entry_mut(&new.username) {
            Some((entry, raw)) => {
                *entry = new;
                *raw = None;
            }
            None => self.lines.push(Line::Entry {
                entry: new,
                raw: None,
            }),
        }
        Ok(())
    }

    /// Remove `username`; returns whether it existed.
    pub fn remove(&mut self, username: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry { entry, .. } if entry.username == username));
        self.lines.len() != before
    }

    /// Lock or unlock `username`; returns whether it existed.
    pub fn set_locked(&mut self, username: &str, locked: bool) -> bool {
        match self.entry_mut(username) {
            Some((entry, raw)) => {
                if entry.locked != locked {
                    entry.locked = locked;
                    *raw = None;
                }
                true
            }
            None => false,
        }
    }

    /// The file text: every line ends with `\n`, as ocpasswd writes it.
    pub fn to_text(&self) -> Result<String, InvalidEntry> {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry { raw: Some(raw), .. } | Line::Other(raw) => out.push_str(raw),
                Line::Entry { entry, raw: None } => out.push_str(&format_entry(entry)?),
            }
            out.push('\n');
        }
        Ok(out)
    }

    /// The entries, dropping comments.
    pub fn into_entries(self) -> Vec<Entry> {
        self.lines
            .into_iter()
            .filter_map(|l| match l {
                Line::Entry { entry, .. } => Some(entry),
                Line::Other(_) => None,
            })
            .collect()
    }

    fn entry_mut(&mut self, username: &str) -> Option<(&mut Entry, &mut Option<String>)> {
        self.lines.iter_mut().find_map(|l| match l {
            Line::Entry { entry, raw } if entry.username == username => Some((entry, raw)),
            Line::Entry { .. } | Line::Other(_) => None,
        })
    }
}

impl std::fmt::Display for Entry {
    /// The entry as a file line; invalid fields are shown as they are (for messages only).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = if self.groups.is_empty() {
            "*".to_owned()
        } else {
            self.groups.join(",")
        };
        let lock = if self.locked { "!" } else { "" };
        f.write_str(&self.username)?;
        f.write_char(':')?;
        f.write_str(&groups)?;
        f.write_char(':')?;
        f.write_str(lock)?;
        f.write_str(&self.hash)
    }
}

fn parse_line(content: &str) -> Result<Entry, PasswdErrorKind> {
    let fields: Vec<&str> = content.split(':').collect();
    let [username, groups, hash] = fields.as_slice() else {
        return Err(if fields.len() < 3 {
            PasswdErrorKind::MissingFields(fields.len())
        } else {
            PasswdErrorKind::TooManyFields(fields.len())
        });
    };
    if username.is_empty() {
        return Err(PasswdErrorKind::EmptyUsername);
    }
    let (locked, hash) = match hash.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, *hash),
    };
    Ok(Entry {
        username: (*username).to_owned(),
        groups: parse_group_list(groups),
        hash: hash.to_owned(),
        locked,
    })
}

fn check_username(name: &str) -> Result<(), InvalidEntry> {
    let bad = name.is_empty()
        || name.starts_with('#')
        || name.starts_with(char::is_whitespace)
        || name.chars().any(|c| c == ':' || c == ',' || c.is_control());
    if bad {
        Err(InvalidEntry::Username(name.to_owned()))
    } else {
        Ok(())
    }
}

fn check_group(name: &str) -> Result<(), InvalidEntry> {
    let bad = name.is_empty()
        || name == "*"
        || name
            .chars()
            .any(|c| c == ':' || c == ',' || c.is_whitespace() || c.is_control());
    if bad {
        Err(InvalidEntry::Group(name.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as ocserv's ocpasswd writes it (hashes are real `$5$` / `$6$` crypt strings).
    const OCPASSWD: &str = include_str!("../tests/vectors/passwd/ocpasswd.txt");

    #[test]
    fn parses_ocpasswd_output() {
        let entries = parse(OCPASSWD).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol", "dave"]);
        assert!(entries[0].groups.is_empty());
        assert!(!entries[0].locked);
        assert!(entries[0].hash.starts_with("$5$"));
        assert_eq!(entries[1].groups, ["staff", "admins"]);
        assert!(entries[1].hash.starts_with("$6$"));
        assert!(entries[2].locked);
        assert!(entries[2].hash.starts_with("$5$"));
        assert_eq!(entries[3].groups, ["ops"]);
        assert_eq!(entries[3].hash, "");
    }

    #[test]
    fn file_roundtrips_byte_for_byte() {
        let file = PasswdFile::parse(OCPASSWD).unwrap();
        assert_eq!(file.to_text().unwrap(), OCPASSWD);
    }

    #[test]
    fn format_matches_ocpasswd() {
        let mut e = Entry {
            username: "u".into(),
            groups: vec![],
            hash: "$5$salt$h".into(),
            locked: false,
        };
        assert_eq!(format_entry(&e).unwrap(), "u:*:$5$salt$h");
        e.groups = vec!["a".into(), "b".into()];
        e.locked = true;
        assert_eq!(format_entry(&e).unwrap(), "u:a,b:!$5$salt$h");
        assert_eq!(e.to_string(), "u:a,b:!$5$salt$h");
        // Formatting then parsing gives the entry back.
        assert_eq!(parse(&format_entry(&e).unwrap()).unwrap(), [e]);
    }

    #[test]
    fn groups_are_trimmed_and_star_dropped() {
        let e = &parse("u: a , b,*,, c :h\n").unwrap()[0];
        assert_eq!(e.groups, ["a", "b", "c"]);
    }

    #[test]
    fn crlf_comments_and_blank_lines() {
        let text = "# users\r\n\r\n   \nu:*:$5$x$y\r\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].hash, "$5$x$y");
        assert_eq!(PasswdFile::parse(text).unwrap().to_text().unwrap(), text);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let err = parse("# c\nu:*:h\nv:$5$x$y\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.kind, PasswdErrorKind::MissingFields(2));
        assert_eq!(
            err.to_string(),
            "line 3: expected `user:groups:hash`, found 2 field(s)"
        );
        let err = parse("u:*:h:x").unwrap_err();
        assert_eq!(err.kind, PasswdErrorKind::TooManyFields(4));
        let err = parse(":*:h").unwrap_err();
        assert_eq!(err.kind, PasswdErrorKind::EmptyUsername);
        let err = parse("u:*:h\n\nu:g:h2\n").unwrap_err();
        assert_eq!(
            err,
            PasswdError {
                line: 3,
                kind: PasswdErrorKind::DuplicateUser {
                    user: "u".into(),
                    first: 1
                }
            }
        );
    }

    #[test]
    fn editing_keeps_other_lines() {
        let mut file = PasswdFile::parse("# top\na:*:h1\nb:g:h2\n").unwrap();
        assert!(file.set_locked("a", true));
        assert!(!file.set_locked("zz", true));
        file.upsert(Entry {
            username: "c".into(),
            groups: vec!["x".into()],
            hash: "h3".into(),
            locked: false,
        })
        .unwrap();
        assert!(file.remove("b"));
        assert!(!file.remove("b"));
        assert_eq!(file.to_text().unwrap(), "# top\na:*:!h1\nc:x:h3\n");
        assert!(file.set_locked("a", false));
        assert_eq!(file.find("a").unwrap().hash, "h1");
        assert_eq!(file.to_text().unwrap(), "# top\na:*:h1\nc:x:h3\n");
    }

    #[test]
    fn writer_refuses_entries_that_would_corrupt_the_file() {
        let ok = Entry {
            username: "u".into(),
            groups: vec![],
            hash: "h".into(),
            locked: false,
        };
        for name in ["", "a:b", "a,b", "#u", " u", "u\nv"] {
            let e = Entry {
                username: name.into(),
                ..ok.clone()
            };
            assert!(matches!(format_entry(&e), Err(InvalidEntry::Username(_))));
        }
        for group in ["", "*", "a b", "a:b", "a,b"] {
            let e = Entry {
                groups: vec![group.into()],
                ..ok.clone()
            };
            assert!(matches!(format_entry(&e), Err(InvalidEntry::Group(_))));
        }
        for hash in ["!h", "a:b", "a\nb"] {
            let e = Entry {
                hash: hash.into(),
                ..ok.clone()
            };
            assert_eq!(format_entry(&e), Err(InvalidEntry::Hash));
        }
        let mut file = PasswdFile::default();
        assert!(file
            .upsert(Entry {
                username: "a:b".into(),
                ..ok
            })
            .is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "",
            ":",
            "::",
            ":::",
            "\n\n",
            "\r",
            "!",
            "a:b:!",
            "a:b:c:d:e",
            "\u{0}:\u{0}:\u{0}",
            "é:ü:ß",
            "#",
            "   #x",
            "a::",
            "a:,,,:",
            "\r\n\r\n:",
        ];
        for s in samples {
            let _ = parse(s);
            if let Ok(file) = PasswdFile::parse(s) {
                let _ = file.to_text();
            }
        }
        // Pseudo-random bytes (deterministic).
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.push(match x % 7 {
                    0 => ':',
                    1 => '\n',
                    2 => ',',
                    3 => '!',
                    4 => '#',
                    5 => '\r',
                    _ => 'a',
                });
            }
            if let Ok(entries) = parse(&s) {
                for e in entries {
                    let _ = format_entry(&e);
                }
            }
        }
    }
}
