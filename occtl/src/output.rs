//! One printable object as an ordered list of members, and its two renderings: ocserv's
//! hand-laid-out JSON (protocol.md §7.2: `    "Key":  value`, lists after a TAB, string members
//! with empty values omitted) and the `\tKey: value` text blocks. Keys are unique per record by
//! construction (the builders in `render.rs` never repeat one), so the JSON is always valid.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Num(u64),
    List(Vec<String>),
    /// A value with a human companion: JSON gets `Key` and `_Key`, text `Key: v (extra)`.
    WithHuman(String, String),
}

/// Where a member appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    Both,
    JsonOnly,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Record {
    members: Vec<(&'static str, Value, Shown)>,
}

impl Record {
    /// A string member; omitted when empty (as ocserv does).
    pub(crate) fn str(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.members.push((key, Value::Str(value), Shown::Both));
        }
        self
    }

    pub(crate) fn num(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.members.push((key, Value::Num(value), Shown::Both));
        self
    }

    /// A number only JSON consumers see (`raw_*` members).
    pub(crate) fn raw(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.members.push((key, Value::Num(value), Shown::JsonOnly));
        self
    }

    pub(crate) fn list(&mut self, key: &'static str, value: Vec<String>) -> &mut Self {
        self.members.push((key, Value::List(value), Shown::Both));
        self
    }

    pub(crate) fn with_human(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
        human: impl Into<String>,
    ) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.members
                .push((key, Value::WithHuman(value, human.into()), Shown::Both));
        }
        self
    }

    pub(crate) fn json_only_str(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
    ) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.members.push((key, Value::Str(value), Shown::JsonOnly));
        }
        self
    }

    /// The JSON object, indented like ocserv (two spaces before the braces).
    pub(crate) fn json(&self) -> String {
        let mut lines: Vec<String> = Vec::with_capacity(self.members.len());
        for (key, value, _) in &self.members {
            match value {
                Value::Str(s) => lines.push(format!("    {}:  {}", quote(key), quote(s))),
                Value::Num(n) => lines.push(format!("    {}:  {n}", quote(key))),
                Value::List(items) => {
                    let items: Vec<String> = items.iter().map(|i| quote(i)).collect();
                    lines.push(format!("    {}:\t[{}]", quote(key), items.join(", ")));
                }
                Value::WithHuman(v, h) => {
                    lines.push(format!("    {}:  {}", quote(key), quote(v)));
                    lines.push(format!("    {}:  {}", quote(&format!("_{key}")), quote(h)));
                }
            }
        }
        format!("  {{\n{}\n  }}", lines.join(",\n"))
    }

    /// The text block: one `\tKey: value` line per member, lists one item per line.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for (key, value, shown) in &self.members {
            if *shown == Shown::JsonOnly {
                continue;
            }
            match value {
                Value::Str(s) => {
                    let _ = writeln!(out, "\t{key}: {}", printable(s));
                }
                Value::Num(n) => {
                    let _ = writeln!(out, "\t{key}: {n}");
                }
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let item = printable(item);
                        if i == 0 {
                            let _ = writeln!(out, "\t{key}: {item}");
                        } else {
                            let _ = writeln!(out, "\t\t{item}");
                        }
                    }
                }
                Value::WithHuman(v, h) => {
                    let _ = writeln!(out, "\t{key}: {} ({})", printable(v), printable(h));
                }
            }
        }
        out
    }
}

/// A JSON array of records in ocserv's layout; `blank_lines` puts an empty line between
/// objects (user and session lists do, ban lists do not). Empty: `[\n]\n`.
pub(crate) fn json_array(records: &[Record], blank_lines: bool) -> String {
    let sep = if blank_lines { ",\n\n" } else { ",\n" };
    let body: Vec<String> = records.iter().map(Record::json).collect();
    if body.is_empty() {
        "[\n]\n".to_owned()
    } else {
        format!("[\n{}\n]\n", body.join(sep))
    }
}

/// `s` safe to print on a terminal: control characters (a worker could put an escape sequence
/// or a newline into a user agent or host name), line separators and bidirectional overrides
/// become `\xNN` / `\u{NNNN}`, and `\` becomes `\\` so an escape is never ambiguous.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c.is_control() || is_invisible_format(c);
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().saturating_add(8));
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if !needs(c) {
            out.push(c);
        } else if u32::from(c) < 0x100 {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

/// Line and paragraph separators and the bidirectional controls, which reorder or break what
/// follows them on a terminal.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn quote(s: &str) -> String {
    // serde_json escapes `"`, `\` and control characters; it cannot fail on a &str.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_layout_and_escaping() {
        let mut r = Record::default();
        r.num("ID", 7)
            .str("Username", "a\"b\\c\u{1}")
            .str("Empty", "")
            .with_human("Up since", "2024-01-01 10:00", "  6s")
            .list("DNS", vec!["1.2.3.4".into(), "5.6.7.8".into()])
            .list("NBNS", vec![]);
        let text = json_array(&[r.clone(), r], true);
        assert!(text.starts_with("[\n  {\n    \"ID\":  7,\n"), "{text}");
        assert!(
            text.contains("\"DNS\":\t[\"1.2.3.4\", \"5.6.7.8\"],"),
            "{text}"
        );
        assert!(text.contains("  },\n\n  {"), "{text}");
        assert!(!text.contains("Empty"));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed[0]["Username"], "a\"b\\c\u{1}");
        assert_eq!(parsed[1]["_Up since"], "  6s");
        assert_eq!(json_array(&[], true), "[\n]\n");
    }

    #[test]
    fn text_escapes_what_a_terminal_would_obey() {
        let mut r = Record::default();
        r.str("Hostname", "vm\nUsername: root")
            .str("User-Agent", "a\u{1b}[2Jb\\x\u{202e}c\u{85}")
            .list("DNS", vec!["1.1.1.1\r".into()]);
        assert_eq!(
            r.text(),
            "\tHostname: vm\\x0aUsername: root\n\
             \tUser-Agent: a\\x1b[2Jb\\\\x\\u{202e}c\\x85\n\
             \tDNS: 1.1.1.1\\x0d\n"
        );
        assert!(matches!(printable("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn text_layout() {
        let mut r = Record::default();
        r.num("ID", 7)
            .raw("raw_x", 1)
            .list("Routes", vec!["a".into(), "b".into()])
            .with_human("Up since", "d", "h");
        assert_eq!(r.text(), "\tID: 7\n\tRoutes: a\n\t\tb\n\tUp since: d (h)\n");
    }
}
