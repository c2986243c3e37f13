//! `ocpasswd`: edit the plain password file, command-line compatible with ocserv's ocpasswd
//! (src/ocpasswd/ocpasswd-args.def): `ocpasswd [-c FILE] [-g G1,G2] [-d|-l|-u] USERNAME`.
//!
//! Runs as whoever invokes it (normally root, since the file is root's); it needs only read
//! and write access to the file and its directory. Without `-d`/`-l`/`-u` it sets the user's
//! password: with a terminal on stdin it prompts twice without echo; otherwise it reads ONE line
//! from stdin (for scripts: `echo pw | ocpasswd -c file user`). The hash is SHA-256 crypt (`$5$`,
//! 16 random salt characters), what ocserv's ocpasswd writes on glibc systems.
//!
//! The file is rewritten atomically: the new text goes to `FILE.tmp` (created exclusively, so
//! two concurrent runs cannot interleave; ocpasswd uses the same name as its lock), keeps the
//! old file's mode and owner (0600 for a new file), is synced, then renamed over `FILE`.
//! Differences from ocserv: setting a password without `-g` keeps the user's groups (ocserv
//! resets them to `*`); locking, unlocking or deleting a user who does not exist is an error;
//! comment lines are kept. Exit status 0 on success, 1 on any error.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ring::rand::{SecureRandom, SystemRandom};
use rocserv_proto::passwd::{parse_group_list, Entry, PasswdFile};
use rocserv_sec_mod::auth::crypt::{hash_sha256, SALT_LEN};
use rocserv_sec_mod::ocpasswd_cli::Args;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "ocpasswd: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let path = &args.passwd;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read '{}': {e}", path.display())),
    };
    let editing = args.delete || args.lock || args.unlock;
    if editing && existing.is_none() {
        return Err(format!("cannot open '{}' for reading", path.display()));
    }
    let mut file = PasswdFile::parse(existing.as_deref().unwrap_or(""))
        .map_err(|e| format!("'{}': {e}", path.display()))?;
    let user = &args.username;

    let found = if args.delete {
        file.remove(user)
    } else if args.lock || args.unlock {
        file.set_locked(user, args.lock)
    } else {
        let password = read_password()?;
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "the system random number generator failed".to_owned())?;
        let groups = match &args.groupname {
            Some(g) => parse_group_list(g),
            None => file
                .find(user)
                .map(|e| e.groups.clone())
                .unwrap_or_default(),
        };
        file.upsert(Entry {
            username: user.clone(),
            groups,
            hash: hash_sha256(&password, &salt),
            locked: false,
        })
        .map_err(|e| e.to_string())?;
        true
    };
    if !found {
        return Err(format!("user '{user}' not found in '{}'", path.display()));
    }
    let text = file.to_text().map_err(|e| e.to_string())?;
    write_atomically(path, &text)
}

/// Two prompts without echo on a terminal; otherwise one line from stdin.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = prompt_hidden("Enter password: ")?;
        let second = prompt_hidden("Re-enter password: ")?;
        if first != second {
            return Err("Passwords do not match".into());
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    if password.is_empty() {
        return Err("Please specify a password".into());
    }
    Ok(password)
}

fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};

    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let saved = tcgetattr(&stdin).map_err(|e| format!("terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| format!("terminal: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Restore echo before reporting anything.
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    let _ = writeln!(stderr);
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Write `text` to `path.tmp` with the old file's mode and owner, then rename it over `path`.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
    let mut out = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!(
                "file '{}' is locked ('{}' exists)",
                path.display(),
                tmp.display()
            ))
        }
        Err(e) => return Err(format!("cannot open '{}' for writing: {e}", tmp.display())),
    };
    let result = fill(&mut out, old.as_ref(), mode, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write to '{}': {e}", path.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn fill(
    out: &mut File,
    old: Option<&std::fs::Metadata>,
    mode: u32,
    text: &str,
) -> std::io::Result<()> {
    // The umask may have narrowed the mode given to open(); set it exactly.
    out.set_permissions(Permissions::from_mode(mode))?;
    if let Some(m) = old {
        std::os::unix::fs::fchown(&*out, Some(m.uid()), Some(m.gid()))?;
    }
    out.write_all(text.as_bytes())?;
    out.sync_all()
}
