//! `rocserv-worker`: one per client connection, exec'd by rocserv (main) as root with fd 3 = the
//! client's TCP socket, fd 4 = main, fd 5 = sec-mod. Drops to the configured user and locks
//! itself in with seccomp before reading a byte from the client. See the library for the rest.
//! `--main-pid PID`: main spawns without running code between fork and exec (posix_spawn), so
//! the worker asks for SIGTERM at main's death itself, and ends if main is already gone.

use std::process::ExitCode;

fn main() -> ExitCode {
    rocserv_worker::memory::tune();
    let (log_level, main_pid) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("rocserv-worker: {msg}");
            eprintln!(
                "usage: rocserv-worker [--log-level 0-9] [--main-pid PID]  (started by rocserv only)"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(pid) = main_pid {
        // The death signal follows the thread that spawned us: main spawns from the thread
        // that lives as long as main (main/src/spawn.rs). If main died before this call, the
        // signal will never come and our parent is someone else now: give up.
        let armed = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
        if armed.is_err() || u32::try_from(nix::unistd::getppid().as_raw()).ok() != Some(pid) {
            return ExitCode::FAILURE;
        }
    }
    match rocserv_worker::run(log_level) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{}", rocserv_worker::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u8, Option<u32>), String> {
    let mut level = 1;
    let mut main_pid = None;
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
            "--main-pid" => {
                let value = args.next().ok_or("--main-pid needs a value")?;
                let pid = value
                    .parse::<u32>()
                    .ok()
                    // 1 too: main is PID 1 in a container without an init (our Dockerfile).
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| format!("bad --main-pid {value:?}"))?;
                main_pid = Some(pid);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((level, main_pid))
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn main_pid_one_is_accepted() {
        // main is PID 1 in a container without an init (the Dockerfile's entrypoint).
        assert_eq!(parse_args(args(&["--main-pid", "1"])), Ok((1, Some(1))));
        assert_eq!(
            parse_args(args(&["--log-level", "3", "--main-pid", "4242"])),
            Ok((3, Some(4242)))
        );
        assert!(parse_args(args(&["--main-pid", "0"])).is_err());
        assert!(parse_args(args(&["--main-pid", "x"])).is_err());
        assert!(parse_args(args(&["--main-pid"])).is_err());
    }
}
