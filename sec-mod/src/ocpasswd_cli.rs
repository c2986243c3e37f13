//! `ocpasswd`'s command line (src/bin/ocpasswd.rs), in the library so that the man page
//! generator (dist/mangen) renders the same definition the program parses.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

/// ocserv's default password file.
pub const DEFAULT_FILE: &str = "/etc/ocserv/ocpasswd";

/// OpenConnect VPN server plain password file handling program.
#[derive(Parser, Debug)]
#[command(
    name = "ocpasswd",
    // `ocpasswd - 0.1.0`, the shape of ocserv's ocpasswd's first line (`ocpasswd - 1.1.6`).
    version = concat!("- ", env!("CARGO_PKG_VERSION")),
    about = "OpenConnect server password utility",
    group(ArgGroup::new("action").args(["delete", "lock", "unlock"]))
)]
pub struct Args {
    /// Password file
    #[arg(short = 'c', long = "passwd", value_name = "FILE", default_value = DEFAULT_FILE)]
    pub passwd: PathBuf,
    /// User's group name(s), comma separated
    #[arg(short = 'g', long = "groupname", value_name = "GROUPS")]
    pub groupname: Option<String>,
    /// Delete user
    #[arg(short = 'd', long)]
    pub delete: bool,
    /// Lock user
    #[arg(short = 'l', long)]
    pub lock: bool,
    /// Unlock user
    #[arg(short = 'u', long)]
    pub unlock: bool,
    /// The user to add, change, lock, unlock or delete
    pub username: String,
}
