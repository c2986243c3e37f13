//! `rocserv-worker`: one per client connection, exec'd by rocserv (main) as root with fd 3 = the
//! client's TCP socket, fd 4 = main, fd 5 = sec-mod. Drops to the configured user and locks
//! itself in with seccomp before reading a byte from the client. See the library for the rest.

use std::process::ExitCode;

fn main() -> ExitCode {
    rocserv_worker::memory::tune();
    let log_level = match parse_args(std::env::args().skip(1)) {
        Ok(level) => level,
        Err(msg) => {
            eprintln!("rocserv-worker: {msg}");
            eprintln!("usage: rocserv-worker [--log-level 0-9]  (started by rocserv only)");
            return ExitCode::from(2);
        }
    };
    match rocserv_worker::run(log_level) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{}", rocserv_worker::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<u8, String> {
    let mut level = 1;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--log-level" => {
                let value = args.next().ok_or("--log-level needs a value")?;
                level = value
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= 9)
                    .ok_or_else(|| format!("bad --log-level {value:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(level)
}
