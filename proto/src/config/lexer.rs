//! ocserv.conf syntax: lines into sections and `name = value` items.
//!
//! ocserv reads its file with the inih library built with these settings (ocserv
//! `src/inih/meson.build`), and we follow them so a file means the same thing to both:
//! - a line whose first non-blank character is `#` or `;` is a comment;
//! - `#` preceded by white space starts a trailing comment, also inside double quotes
//!   (quotes are not syntax to inih; ocserv strips them from the ends of the value later);
//! - the name ends at the first `=` or `:`; spaces around both are ignored;
//! - an indented line that follows an option continues it: it is another value for the same
//!   option (for `route` this adds a route; for a single-valued option the last one wins);
//! - `[name]` starts a section; a UTF-8 byte order mark is skipped; lines longer than the
//!   line buffer make ocserv refuse the file.
//!
//! CRLF line ends are accepted (the `\r` is white space to inih too).

use super::diag::{quote, Sink};

/// ocserv's line buffer is 2048 bytes with room for the newline and the NUL.
pub(crate) const MAX_LINE: usize = 2046;

/// One meaningful line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// `[name]`, with `name` trimmed.
    Section { name: &'a str, line: usize },
    /// `name = value`. `value` is trimmed and cut at a trailing comment, quotes still on.
    Assign {
        name: &'a str,
        value: &'a str,
        line: usize,
    },
}

/// Split `source` into items; syntax problems go to `sink`.
pub(crate) fn lex<'a>(source: &'a str, sink: &mut Sink) -> Vec<Item<'a>> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut items = Vec::new();
    // The option an indented line continues; reset by a section header (as inih does).
    let mut previous: Option<&'a str> = None;
    for (index, raw) in source.split('\n').enumerate() {
        let line = index.saturating_add(1);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > MAX_LINE {
            sink.error(
                line,
                None,
                format!(
                    "line is {} bytes long; ocserv reads at most {MAX_LINE}",
                    raw.len()
                ),
            );
            continue;
        }
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with(';') {
            continue;
        }
        let indented = text.len() != raw.trim_end().len();
        if let (Some(name), true) = (previous, indented) {
            let value = cut_comment(text);
            check_quote_cut(text, value, name, line, sink);
            if !looks_like_option(name, value, line, sink) {
                items.push(Item::Assign { name, value, line });
            }
            continue;
        }
        if let Some(rest) = text.strip_prefix('[') {
            previous = None;
            match cut_comment(rest).split_once(']') {
                Some((name, _)) => items.push(Item::Section {
                    name: name.trim(),
                    line,
                }),
                None => sink.error(line, None, "section header has no closing `]`"),
            }
            continue;
        }
        let body = cut_comment(text);
        match body.find(['=', ':']) {
            Some(at) => {
                let name = body.get(..at).unwrap_or_default().trim_end();
                let value = body.get(at.saturating_add(1)..).unwrap_or_default().trim();
                if name.is_empty() {
                    sink.error(line, None, "line has a value but no option name");
                    continue;
                }
                check_quote_cut(text, value, name, line, sink);
                previous = Some(name);
                items.push(Item::Assign { name, value, line });
            }
            None => sink.error(
                line,
                None,
                format!("expected `option = value`, found {}", quote(text)),
            ),
        }
    }
    items
}

/// The text before a trailing comment (`#` after white space), trimmed at the end.
fn cut_comment(text: &str) -> &str {
    let mut was_space = false;
    for (at, c) in text.char_indices() {
        if was_space && c == '#' {
            return text.get(..at).unwrap_or(text).trim_end();
        }
        was_space = c.is_whitespace();
    }
    text.trim_end()
}

/// `banner = "Hello # world"` is cut at the `#` by ocserv too; say so, since it surprises.
fn check_quote_cut(text: &str, value: &str, name: &str, line: usize, sink: &mut Sink) {
    let opened = value.starts_with('"') && !(value.len() > 1 && value.ends_with('"'));
    if opened && text.trim_end().ends_with('"') {
        sink.warning(
            line,
            Some(name),
            format!(
                "` #` starts a comment even inside quotes (as in ocserv); the value is {}",
                quote(value.trim_matches('"'))
            ),
        );
    }
}

/// An indented `dns = 1.2.3.4` after `route = ...` is a second route to ocserv, which is
/// rarely what was meant: report it (and return true) instead of a confusing bad route.
fn looks_like_option(previous: &str, value: &str, line: usize, sink: &mut Sink) -> bool {
    let Some((name, _)) = value.split_once('=') else {
        return false;
    };
    let name = name.trim();
    let known = super::options::lookup(name).is_some();
    if known {
        sink.error(
            line,
            Some(previous),
            format!(
                "this indented line continues `{previous}` (ocserv reads indented lines as \
                 more values of the option above); remove the indentation to set `{name}`"
            ),
        );
    }
    known
}
