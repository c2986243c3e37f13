//! `occtl`: control a running rocserv, with ocserv's occtl commands and output.
//!
//! **Privileges.** Runs as the invoking user and needs nothing but a connection to main's
//! occtl socket (`occtl-socket-file`, mode 0600, and main accepts only uid 0 peers, so in
//! practice root). It reads no configuration file and never talks to the network.
//!
//! Usage: `occtl [-s|--socket-file PATH] [-j|--json] [-n|--no-pager] [--debug] [COMMAND...]`;
//! without a command it is an interactive shell with history and completion of the command
//! words. Exit status as ocserv's occtl: 0 done, 1 error or server unreachable, 2 not found.
//! Printing to stdout is this program's job (the workspace lints do not forbid it here).

mod client;
mod commands;
mod format;
#[cfg(test)]
mod json_tests;
mod localtime;
mod output;
mod render;
#[cfg(test)]
mod sample_tests;

use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::client::Conn;
use crate::commands::{Command, Options, EXIT_ERROR, EXIT_OK};

/// ocserv's default `occtl-socket-file` (ocserv src/occtl/ctl.h).
const DEFAULT_SOCKET: &str = "/var/run/occtl.socket";

fn main() -> ExitCode {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.peek().filter(|a| a.starts_with('-')).cloned() {
        args.next();
        match arg.as_str() {
            "-j" | "--json" => opts.json = true,
            "-n" | "--no-pager" => {}
            "-d" | "--debug" => opts.debug = true,
            "-s" | "--socket-file" => match args.next() {
                Some(path) => socket = PathBuf::from(path),
                None => return usage_error("-s needs a socket file"),
            },
            "-v" | "--version" => {
                print!("{}", version_text());
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown option {other}")),
        }
    }
    let words: Vec<String> = args.collect();
    if words.is_empty() {
        return ExitCode::from(interactive(&socket, opts));
    }
    ExitCode::from(one_command(&socket, &words.join(" "), opts))
}

/// `--version`: the first line in the shape of ocserv's occtl (`OpenConnect server control
/// (occtl) version 1.1.6`), which scripts match with `version (\S+)`; then whose it is.
fn version_text() -> String {
    format!(
        "OpenConnect server control (occtl) version {}\nrocserv's occtl, for rocserv's main process\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn usage() -> String {
    format!(
        "occtl: [OPTIONS...] {{COMMAND}}\n\n\
         \x20 -s --socket-file PATH   the server's occtl socket (default {DEFAULT_SOCKET})\n\
         \x20 -j --json               JSON output\n\
         \x20 -n --no-pager           accepted for compatibility (no pager is used)\n\
         \x20    --debug              more members in some outputs\n\
         \x20 -v --version            print the version\n\
         \x20 -h --help               this help\n\n{}",
        commands::help(false)
    )
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("occtl: {why}\n{}", usage());
    ExitCode::from(EXIT_ERROR)
}

fn one_command(socket: &std::path::Path, line: &str, opts: Options) -> u8 {
    let cmd = match commands::parse(line) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("{why}");
            if why.starts_with("unknown command") {
                eprintln!("use help or '?' to get a list of the available commands");
            }
            return EXIT_ERROR;
        }
    };
    match cmd {
        Command::Help => {
            print!("{}", commands::help(false));
            return EXIT_OK;
        }
        Command::Exit | Command::Reset => return EXIT_OK,
        _ => {}
    }
    let mut conn = match Conn::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "could not connect to {}: {}; possibly insufficient permissions or server is offline.",
                socket.display(),
                commands::error_chain(&e)
            );
            if cmd == Command::Status {
                print!("{}", offline(opts.json));
            }
            return EXIT_ERROR;
        }
    };
    let mut stdout = std::io::stdout().lock();
    commands::run(&mut conn, &cmd, opts, &mut stdout)
}

fn offline(json: bool) -> String {
    if json {
        "  {\n    \"Status\":  \"offline\"\n  }\n".to_owned()
    } else {
        "\tStatus: offline\n".to_owned()
    }
}

/// Completes the command words of [`commands::COMMANDS`].
struct Words;

impl Helper for Words {}
impl Highlighter for Words {}
impl Validator for Words {}
impl Hinter for Words {
    type Hint = String;
}

impl Completer for Words {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let typed = line
            .get(..pos)
            .unwrap_or(line)
            .trim_start()
            .to_ascii_lowercase();
        let start = line.len().saturating_sub(line.trim_start().len());
        let candidates = commands::COMMANDS
            .iter()
            .filter(|c| c.shown && c.name.starts_with(typed.as_str()))
            .map(|c| Pair {
                display: c.name.to_owned(),
                replacement: format!("{} ", c.name),
            })
            .collect();
        Ok((start, candidates))
    }
}

fn interactive(socket: &std::path::Path, opts: Options) -> u8 {
    eprintln!(
        "occtl (rocserv) {}: control of a running server. Type 'help' or '?' for the commands.",
        env!("CARGO_PKG_VERSION")
    );
    let mut editor: Editor<Words, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the line editor: {e}");
            return EXIT_ERROR;
        }
    };
    editor.set_helper(Some(Words));
    let mut last = EXIT_OK;
    loop {
        let line = match editor.readline("occtl> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return last,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_ERROR;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        match commands::parse(&line) {
            Ok(Command::Exit) => return last,
            Ok(Command::Help) => print!("{}", commands::help(true)),
            Ok(_) => last = one_command(socket, &line, opts),
            Err(why) => {
                eprintln!("{why}");
                last = EXIT_ERROR;
            }
        }
    }
}

#[cfg(test)]
mod version_tests {
    /// The first line parses like ocserv's occtl's: `... version X.Y.Z`.
    #[test]
    fn version_line_parses_like_ocserv_occtl() {
        let text = super::version_text();
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with("OpenConnect server control (occtl) version "));
        let version = first.rsplit(' ').next().unwrap_or_default();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
    }
}
