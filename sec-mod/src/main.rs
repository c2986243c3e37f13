//! `rocserv-sm`: the security module process. Runs as root; the only process that opens the
//! server key and the password file (see the library's crate documentation for the contract).
//! Usage: `rocserv-sm [--log-level N] [--log-json]`, with its socket to main on fd 3.

use std::process::ExitCode;

use rocserv_sec_mod::{fd, harden, logger, memory, server};
use tokio_seqpacket::UnixSeqpacket;

const PROGRAM: &str = "rocserv-sm";
/// Threads for password hashing (`spawn_blocking`): a login storm queues instead of starting
/// hundreds of threads (tokio's default allows 512). PAM has its own bound (`auth::pam`).
const MAX_BLOCKING_THREADS: usize = 16;
/// How long an idle hashing thread stays (tokio's default: 10 s). A burst's threads keep their
/// stacks' touched pages (~12-24 kB each, up to 16 threads) while they live; after 1 s idle
/// they exit and glibc releases their stacks. The cost: a thread start (tens of microseconds)
/// for a login that comes after such a gap, next to the ~2 ms of a password hash.
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    memory::tune();
    let (level, json) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            logger::init(1, false);
            log::error!("{msg}; usage: {PROGRAM} [--log-level N] [--log-json]");
            return ExitCode::FAILURE;
        }
    };
    logger::init(level, json);
    // Before the runtime starts its threads and before the key is read.
    if let Err(e) = harden::apply() {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        log::error!("cannot lock sec-mod down: {e}{cause}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(server::Outcome::Done) => ExitCode::SUCCESS,
        Ok(server::Outcome::StartFailed) => ExitCode::FAILURE,
        Err(msg) => {
            log::error!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<server::Outcome, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let outcome = runtime.block_on(async {
        let owned = fd::adopt_seqpacket(fd::MAIN_SOCKET_FD)
            .map_err(|e| format!("fd {} (socket to main): {e}", fd::MAIN_SOCKET_FD))?;
        let sock = UnixSeqpacket::try_from(owned)
            .map_err(|e| format!("fd {}: {e}", fd::MAIN_SOCKET_FD))?;
        server::run(sock).await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{e}{cause}")
        })
    });
    // Do not wait for PAM or hashing threads still running for workers that are gone.
    runtime.shutdown_background();
    outcome
}

/// `--log-level N` or `--log-level=N` (0..=9), and `--log-json` (main's `log-format = json`);
/// nothing else.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u8, bool), String> {
    let mut level = 1;
    let mut json = false;
    while let Some(arg) = args.next() {
        if arg == "--log-json" {
            json = true;
            continue;
        }
        let value = match arg.strip_prefix("--log-level") {
            Some("") => args.next().ok_or("--log-level needs a value")?,
            Some(rest) if rest.starts_with('=') => rest.trim_start_matches('=').to_owned(),
            Some(_) | None => return Err(format!("unknown argument {arg:?}")),
        };
        level = value
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= 9)
            .ok_or_else(|| format!("--log-level must be 0..=9, not {value:?}"))?;
    }
    Ok((level, json))
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn args(a: &[&str]) -> Result<(u8, bool), String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn log_level_argument() {
        assert_eq!(args(&[]), Ok((1, false)));
        assert_eq!(args(&["--log-level", "3"]), Ok((3, false)));
        assert_eq!(args(&["--log-level=9", "--log-json"]), Ok((9, true)));
        assert!(args(&["--log-level", "10"]).is_err());
        assert!(args(&["--log-level"]).is_err());
        assert!(args(&["-d", "3"]).is_err());
        assert!(args(&["--log-levelx"]).is_err());
        assert!(args(&["--log-jsonx"]).is_err());
    }
}
