//! Running the `occtl` we built against a server's control socket.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::bin;

/// What one occtl run printed and how it exited.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `occtl -s SOCKET ARGS`.
pub fn occtl(socket: &Path, args: &[&str]) -> Ran {
    let out = Command::new(bin("occtl"))
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .expect("run occtl");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `occtl -j ARGS`, which must succeed and print valid JSON.
pub fn json(socket: &Path, args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let ran = occtl(socket, &all);
    assert_eq!(
        ran.code,
        Some(0),
        "occtl {args:?}: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("occtl {args:?} printed invalid JSON ({e}):\n{}", ran.stdout))
}
