//! End-to-end harness: the real `openconnect` client against rocserv, each test in network
//! namespaces it makes itself.
//!
//! Safety rules this harness keeps (doc/testing in README): traffic goes only to addresses inside
//! the namespaces a test created; every wait is bounded; processes are killed by the PID we
//! started; namespaces are deleted in `Drop`, also when a test fails.
//!
//! The tests need root, `ip`, `/dev/net/tun` and openconnect. They are `#[ignore]`d so that a
//! plain `cargo test` on a developer laptop does not half-run them; `tests/run-all.sh` runs them
//! explicitly with `--ignored`, and fails loudly when a prerequisite is missing.

// Test support code: a failed expectation here is a failed test, so it panics with a message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_in_result
)]

pub mod client;
pub mod cluster;
pub mod lab;
pub mod netns;
pub mod occtl;
pub mod output;
pub mod pki;
pub mod procfs;
pub mod radius;
pub mod server;
pub mod tcp;
pub mod udp;

use std::path::PathBuf;
use std::time::Duration;

pub use client::{Client, ClientOptions};
pub use lab::Lab;
pub use server::Server;

/// Upper bound for anything a test waits for (a login, a log line, a process exit).
pub const WAIT: Duration = Duration::from_secs(30);

/// Where the workspace's binaries are: `$ROCSERV_BIN_DIR`, else the cargo target directory this
/// test executable was built in (`target/<profile>/deps/..`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROCSERV_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    deps.parent().expect("deps has a parent").to_path_buf()
}

/// Path of one of our binaries; panics with a clear message when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Fail (never skip) when this machine cannot run the end-to-end tests.
pub fn require_prerequisites() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests need root (network namespaces, tun)"
    );
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing"
    );
    for tool in ["ip", "openconnect", "ping"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed (.ci/run installs it with apt-get)"
        );
    }
}

/// A name unique to this process and call, short enough for an interface name (15 bytes).
pub fn unique_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}{}", std::process::id() % 100_000, n)
}
