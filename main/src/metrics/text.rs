//! The Prometheus text exposition format, version 0.0.4 (prometheus.io/docs/instrumenting/
//! exposition_formats, "Text format details"): `# HELP` and `# TYPE` lines, then one sample per
//! line, `name{label="value",...} number`. Pure: the caller passes the values in.
//!
//! Label values come from clients (user names, device names, hostnames), so every one goes
//! through [`escape_label`]: the spec escapes exactly backslash, double quote and line feed
//! there; HELP text escapes backslash and line feed. Label *names* and metric names are ours
//! (`&'static str`), checked by a test to match `[a-zA-Z_][a-zA-Z0-9_]*`.

use std::fmt::Write as _;

/// The `Content-Type` of a scrape answer in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type (the `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A sample value: integers print exactly, fractions as decimals (never an exponent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

/// Writes one exposition document into a `String`.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a family: its `# HELP` and `# TYPE` lines. Every sample of the family must follow
    /// before the next family starts (the format requires a family's lines to be together).
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(help, &mut self.out);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&'static str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            // Writing into a String cannot fail.
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(v, &mut self.out),
        }
        self.out.push('\n');
    }

    /// A whole histogram family from cumulative bucket counts (`le` upper bounds, ascending;
    /// the `+Inf` bucket is `count`), with `labels` on every line.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[(&'static str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        self.family(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        for (le, n) in buckets {
            let mut bound = String::new();
            write_float(*le, &mut bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &bound));
            self.sample(&bucket, &with_le, *n);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value as the text format wants it between double quotes: `\` -> `\\`, `"` -> `\"`,
/// line feed -> `\n`. Everything else (any UTF-8, CR and other controls too) is written as is,
/// which the format allows; the value cannot end the quoted string or the line.
pub fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: `\` -> `\\`, line feed -> `\n`.
fn escape_help(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Go's ParseFloat spellings for the special values; finite ones in plain decimal.
fn write_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(v: &str) -> String {
        let mut out = String::new();
        escape_label(v, &mut out);
        out
    }

    #[test]
    fn label_values_are_escaped_per_the_spec() {
        assert_eq!(escaped("alice"), "alice");
        assert_eq!(escaped(r#"a"b"#), r#"a\"b"#);
        assert_eq!(escaped(r"a\b"), r"a\\b");
        assert_eq!(escaped("a\nb"), r"a\nb");
        // An escaped backslash before a quote must not re-open the string: `\"` -> `\\\"`.
        assert_eq!(escaped("\\\""), r#"\\\""#);
        // UTF-8 and other control characters pass unchanged.
        assert_eq!(escaped("jürgen\r\t"), "jürgen\r\t");
    }

    /// A hostile user name cannot add a sample, a label or a line: the whole document still
    /// has one line per sample and the name reads back unchanged.
    #[test]
    fn a_hostile_label_value_stays_inside_its_quotes() {
        let evil = "x\"} 1\nvpn_active_sessions 999\n# TYPE \\";
        let mut e = Encoder::new();
        e.family("vpn_user_rx_bytes", Kind::Gauge, "Bytes.");
        e.sample(
            "vpn_user_rx_bytes",
            &[("username", evil), ("device", "vpns0")],
            5u64,
        );
        let doc = e.finish();
        let lines: Vec<&str> = doc.lines().collect();
        assert_eq!(lines.len(), 3, "{doc}");
        assert_eq!(
            lines[2],
            r#"vpn_user_rx_bytes{username="x\"} 1\nvpn_active_sessions 999\n# TYPE \\",device="vpns0"} 5"#
        );
        let start = lines[2].find("username=\"").unwrap() + "username=\"".len();
        let end = lines[2].find("\",device").unwrap();
        assert_eq!(unescape(&lines[2][start..end]), evil);
    }

    /// The reader side of the spec, for the round trip above.
    fn unescape(v: &str) -> String {
        let mut out = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => panic!("dangling backslash"),
                },
                (c, false) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn families_and_samples() {
        let mut e = Encoder::new();
        e.family(
            "vpn_active_sessions",
            Kind::Gauge,
            "Current number of users connected.",
        );
        e.sample("vpn_active_sessions", &[], 3u32);
        e.family("rocserv_x", Kind::Counter, "Line one\nback\\slash");
        e.sample("rocserv_x_total", &[("a", "1"), ("b", "")], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP vpn_active_sessions Current number of users connected.\n\
             # TYPE vpn_active_sessions gauge\n\
             vpn_active_sessions 3\n\
             # HELP rocserv_x Line one\\nback\\\\slash\n\
             # TYPE rocserv_x counter\n\
             rocserv_x_total{a=\"1\",b=\"\"} 0.25\n"
        );
    }

    #[test]
    fn histogram_lines() {
        let mut e = Encoder::new();
        e.histogram("h_seconds", "H.", &[], &[(0.005, 1), (0.5, 3)], 0.75, 4);
        assert_eq!(
            e.finish(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{le=\"0.005\"} 1\n\
             h_seconds_bucket{le=\"0.5\"} 3\n\
             h_seconds_bucket{le=\"+Inf\"} 4\n\
             h_seconds_sum 0.75\n\
             h_seconds_count 4\n"
        );
    }

    #[test]
    fn floats_never_use_an_exponent() {
        let mut s = String::new();
        write_float(1e-7, &mut s);
        s.push(' ');
        write_float(1e21, &mut s);
        s.push(' ');
        write_float(f64::INFINITY, &mut s);
        s.push(' ');
        write_float(f64::NAN, &mut s);
        assert_eq!(s, "0.0000001 1000000000000000000000 +Inf NaN");
    }
}
