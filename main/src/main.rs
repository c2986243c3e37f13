//! `rocserv`: the privileged master process. See the library's crate documentation for the
//! privilege contract and the startup sequence.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    rocserv_main::run(rocserv_main::cli::Cli::parse())
}
