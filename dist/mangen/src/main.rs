//! `rocserv-mangen OUTDIR OCCTL`: write `rocserv.8`, `ocpasswd.8` and `occtl.8` into OUTDIR.
//!
//! rocserv and ocpasswd parse their command lines with clap, so their pages are rendered from
//! the same `Parser` definitions (clap_mangen). occtl parses its own arguments and command
//! table; its page is rendered from what the built `occtl --help` prints (the option list and
//! the command table, `commands::help`), so the page cannot drift from the program either.
//! Section 8 as ocserv's pages: all three are administrator tools.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::CommandFactory;

const SECTION: &str = "8";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [outdir, occtl] = args.as_slice() else {
        eprintln!("usage: rocserv-mangen OUTDIR OCCTL-BINARY");
        return ExitCode::FAILURE;
    };
    match run(Path::new(outdir), Path::new(occtl)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocserv-mangen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(outdir: &Path, occtl: &Path) -> Result<(), String> {
    std::fs::create_dir_all(outdir).map_err(|e| format!("{}: {e}", outdir.display()))?;
    let rocserv = clap_page(
        rocserv_main::cli::Cli::command(),
        &format!(
            ".SH FILES\n.TP\n{}\nThe configuration file (ocserv's format; see /usr/share/doc/rocserv).\n\
             .TP\n/usr/libexec/rocserv/\nrocserv-sm and rocserv-worker, which rocserv starts from the directory it runs from.\n\
             .SH SEE ALSO\n.BR occtl (8),\n.BR ocpasswd (8)\n",
            rocserv_main::cli::DEFAULT_CONFIG
        ),
    )?;
    write(outdir, "rocserv.8", &rocserv)?;
    let ocpasswd = clap_page(
        rocserv_sec_mod::ocpasswd_cli::Args::command(),
        &format!(
            ".SH NOTES\nWithout \\-d, \\-l or \\-u, sets USERNAME's password: prompted twice on a terminal, \
             otherwise read as one line from standard input.\n\
             .SH FILES\n.TP\n{}\nThe default password file (auth = \"plain[passwd=...]\").\n\
             .SH SEE ALSO\n.BR rocserv (8),\n.BR occtl (8)\n",
            rocserv_sec_mod::ocpasswd_cli::DEFAULT_FILE
        ),
    )?;
    write(outdir, "ocpasswd.8", &ocpasswd)?;
    let help = Command::new(occtl)
        .arg("--help")
        .output()
        .map_err(|e| format!("{}: {e}", occtl.display()))?;
    if !help.status.success() {
        return Err(format!("{} --help failed", occtl.display()));
    }
    let help = String::from_utf8(help.stdout).map_err(|_| "occtl --help: not UTF-8")?;
    let version = env!("CARGO_PKG_VERSION");
    write(outdir, "occtl.8", &occtl_page(&help, version)?)
}

/// The clap page, with `extra` (roff) appended.
fn clap_page(cmd: clap::Command, extra: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(SECTION)
        .manual("System Administration")
        .source(format!("rocserv {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(extra.as_bytes());
    Ok(out)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path: PathBuf = dir.join(name);
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Text for a roff line: backslashes and hyphens escaped, a leading `.` or `'` neutralised.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Split a help row `  NAME   DESCRIPTION` (two or more spaces between; a name as wide as the
/// column is followed by one space, and every description starts with a capital letter).
fn split_row(row: &str) -> Option<(String, String)> {
    let row = row.trim();
    if let Some((name, rest)) = row.split_once("  ") {
        return Some((name.trim().to_owned(), rest.trim().to_owned()));
    }
    let at = row.find(|c: char| c.is_ascii_uppercase())?;
    let (name, rest) = row.split_at(at);
    (!name.trim().is_empty()).then(|| (name.trim().to_owned(), rest.trim().to_owned()))
}

/// occtl's page from its `--help` text: the options, then "Available Commands".
fn occtl_page(help: &str, version: &str) -> Result<Vec<u8>, String> {
    let mut options = Vec::new();
    let mut commands = Vec::new();
    let mut in_commands = false;
    for line in help.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim() == "Available Commands" {
            in_commands = true;
            continue;
        }
        let row = split_row(line).ok_or_else(|| format!("occtl --help: cannot read {line:?}"))?;
        if in_commands {
            commands.push(row);
        } else {
            options.push(row);
        }
    }
    if options.is_empty() || commands.is_empty() {
        return Err("occtl --help: no options or no commands found".into());
    }
    let mut out = format!(
        ".TH occtl {SECTION} \"\" \"rocserv {version}\" \"System Administration\"\n\
         .SH NAME\nocctl \\- control a running rocserv (ocserv's occtl commands and output)\n\
         .SH SYNOPSIS\n\\fBocctl\\fR [\\fIOPTIONS\\fR] [\\fICOMMAND\\fR]\n\
         .SH DESCRIPTION\nWithout a command, occtl is an interactive shell with history and \
         completion. Commands may be abbreviated to a unique prefix, as with ocserv's occtl. \
         It talks only to the server's occtl socket (occtl\\-socket\\-file, which requires \
         use\\-occtl = true), which only root may use.\n\
         Exit status: 0 done, 1 error or server unreachable, 2 not found.\n.SH OPTIONS\n"
    );
    for (flags, text) in &options {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(flags), roff(text)));
    }
    out.push_str(".SH COMMANDS\n");
    for (name, text) in &commands {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(name), roff(text)));
    }
    out.push_str(".SH SEE ALSO\n.BR rocserv (8),\n.BR ocpasswd (8)\n");
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn help_rows_split_at_the_column() {
        assert_eq!(
            split_row(" show users               Print the connected users"),
            Some(("show users".into(), "Print the connected users".into()))
        );
        assert_eq!(
            split_row(" show iroutes-and-more-xx Print something"),
            Some(("show iroutes-and-more-xx".into(), "Print something".into()))
        );
        assert_eq!(split_row(" lowercase only"), None);
    }

    #[test]
    fn occtl_page_has_options_and_commands() {
        let help = "occtl: [OPTIONS...] {COMMAND}\n\n  -j --json               JSON output\n\n\
                    Available Commands\n show status              Print the server's status\n";
        let page = String::from_utf8(occtl_page(help, "0.1.0").unwrap()).unwrap();
        assert!(page.starts_with(".TH occtl 8 "), "{page}");
        assert!(
            page.contains("\\fB\\-j \\-\\-json\\fR\nJSON output\n"),
            "{page}"
        );
        assert!(
            page.contains("\\fBshow status\\fR\nPrint the server's status\n"),
            "{page}"
        );
        assert!(occtl_page("occtl\n\nAvailable Commands\n", "0").is_err());
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(roff(".x a-b \\"), "\\&.x a\\-b \\e");
    }

    #[test]
    fn clap_pages_are_section_8() {
        let page = clap_page(rocserv_main::cli::Cli::command(), "").unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH rocserv 8"), "{page}");
        assert!(page.contains("test\\-config"), "{page}");
    }
}
