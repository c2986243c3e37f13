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
    /// Text only: a line printed as it is (ocserv's `General info:` headings), or an empty
    /// line when empty (ocserv's separators).
    Line(String),
}

/// How a member appears in the text block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// On its own `\tKey: value` line.
    Line,
    /// After the previous member on the same line, three blanks apart, as ocserv prints its
    /// pairs (`Username: u   Groupname: g`).
    SameLine,
    Hidden,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: &'static str,
    value: Value,
    json: bool,
    text: Text,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Record {
    members: Vec<Member>,
}

impl Record {
    fn push(&mut self, key: &'static str, value: Value, json: bool, text: Text) -> &mut Self {
        self.members.push(Member {
            key,
            value,
            json,
            text,
        });
        self
    }

    /// A string member; omitted when empty (as ocserv does).
    pub(crate) fn str(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if value.is_empty() {
            return self;
        }
        self.push(key, Value::Str(value), true, Text::Line)
    }

    /// A string member that ocserv's text prints on the line of the previous member.
    pub(crate) fn pair(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if value.is_empty() {
            return self;
        }
        self.push(key, Value::Str(value), true, Text::SameLine)
    }

    pub(crate) fn num(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.push(key, Value::Num(value), true, Text::Line)
    }

    /// A number only JSON consumers see (`raw_*` members).
    pub(crate) fn raw(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.push(key, Value::Num(value), true, Text::Hidden)
    }

    pub(crate) fn list(&mut self, key: &'static str, value: Vec<String>) -> &mut Self {
        self.push(key, Value::List(value), true, Text::Line)
    }

    /// A list only JSON consumers see (the text prints it its own way).
    pub(crate) fn json_only_list(&mut self, key: &'static str, value: Vec<String>) -> &mut Self {
        self.push(key, Value::List(value), true, Text::Hidden)
    }

    pub(crate) fn with_human(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
        human: impl Into<String>,
    ) -> &mut Self {
        let value = value.into();
        if value.is_empty() {
            return self;
        }
        self.push(key, Value::WithHuman(value, human.into()), true, Text::Line)
    }

    pub(crate) fn json_only_str(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
    ) -> &mut Self {
        let value = value.into();
        if value.is_empty() {
            return self;
        }
        self.push(key, Value::Str(value), true, Text::Hidden)
    }

    /// A `\tKey: value` line only the text shows; `same_line` appends it to the previous one.
    pub(crate) fn text_only(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
        same_line: bool,
    ) -> &mut Self {
        let text = if same_line {
            Text::SameLine
        } else {
            Text::Line
        };
        self.push(key, Value::Str(value.into()), false, text)
    }

    /// A text-only line printed as it is; empty: an empty line.
    pub(crate) fn text_line(&mut self, line: impl Into<String>) -> &mut Self {
        self.push("", Value::Line(line.into()), false, Text::Line)
    }

    /// The JSON object, indented like ocserv (two spaces before the braces).
    pub(crate) fn json(&self) -> String {
        let mut lines: Vec<String> = Vec::with_capacity(self.members.len());
        for Member {
            key, value, json, ..
        } in &self.members
        {
            if !json {
                continue;
            }
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
                Value::Line(_) => {}
            }
        }
        format!("  {{\n{}\n  }}", lines.join(",\n"))
    }

    /// The text block: one `\tKey: value` line per member (pairs on one line), lists one
    /// item per line.
    pub(crate) fn text(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        // Whether the last line is a member line a pair may be appended to.
        let mut open = false;
        for Member {
            key, value, text, ..
        } in &self.members
        {
            if *text == Text::Hidden {
                continue;
            }
            let shown = match value {
                Value::Str(s) => printable(s).into_owned(),
                Value::Num(n) => n.to_string(),
                Value::WithHuman(v, h) => format!("{} ({})", printable(v), printable(h)),
                Value::Line(l) => {
                    lines.push(printable(l).into_owned());
                    open = false;
                    continue;
                }
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let item = printable(item);
                        if i == 0 {
                            lines.push(format!("\t{key}: {item}"));
                        } else {
                            lines.push(format!("\t\t{item}"));
                        }
                    }
                    open = false;
                    continue;
                }
            };
            match lines.last_mut() {
                Some(last) if open && *text == Text::SameLine => {
                    let _ = write!(last, "   {key}: {shown}");
                }
                _ => lines.push(format!("\t{key}: {shown}")),
            }
            open = true;
        }
        let mut out = lines.join("\n");
        if !lines.is_empty() {
            out.push('\n');
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
            .with_human("Up since", "d", "h")
            .str("Username", "u")
            .pair("Groupname", "g")
            .text_line("")
            .pair("Alone", "a")
            .text_only(
                "Average bandwidth RX",
                "1 bytes/sec  TX: 2 bytes/sec",
                false,
            );
        assert_eq!(
            r.text(),
            "\tID: 7\n\tRoutes: a\n\t\tb\n\tUp since: d (h)\n\tUsername: u   Groupname: g\n\n\
             \tAlone: a\n\tAverage bandwidth RX: 1 bytes/sec  TX: 2 bytes/sec\n"
        );
        assert!(!r.json().contains("Average bandwidth"));
    }
}
