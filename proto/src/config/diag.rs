//! Diagnostics: what the parser tells the administrator, each tied to a file, a line and
//! (usually) an option. `Display` gives `FILE:LINE: error: OPTION: message`, the shape
//! compilers use, so editors can jump to the line.

use std::fmt;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The server refuses to start (unknown option, bad value, missing mandatory option).
    Error,
    /// Starts, but the administrator should know (option accepted but not supported yet,
    /// a GnuTLS priority keyword rustls cannot express).
    Warning,
}

/// One finding, attached to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File name as given by the caller.
    pub origin: String,
    /// 1-based line; 0 when the finding is about the file as a whole.
    pub line: usize,
    /// The option concerned, if any.
    pub option: Option<String>,
    /// What is wrong and, where we can tell, what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: ", self.origin, self.line)?;
        if let Some(option) = &self.option {
            write!(f, "{option}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Sink {
    origin: String,
    pub(crate) list: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            list: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, line: usize, option: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, line, option, message.into());
    }

    pub(crate) fn warning(
        &mut self,
        line: usize,
        option: Option<&str>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, line, option, message.into());
    }

    fn push(&mut self, severity: Severity, line: usize, option: Option<&str>, message: String) {
        self.list.push(Diagnostic {
            severity,
            origin: self.origin.clone(),
            line,
            option: option.map(str::to_owned),
            message,
        });
    }
}

/// A value quoted for a message, cut short so a huge line cannot flood the log.
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 60;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("`{}...`", value.get(..cut).unwrap_or_default()),
        None => format!("`{value}`"),
    }
}
