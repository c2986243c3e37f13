//! rocserv's security module, binary `rocserv-sm`.
//!
//! **Privileges and contract.** Runs as root (PAM's `pam_unix` needs to read `/etc/shadow`), as
//! a separate process exec'd by main with its socket to main on fd 3. It is the ONLY rocserv
//! process that opens the server's private key and the password file: workers get their one
//! handshake signature over their sec-mod channel ([`worker_link`]) and never see the key; main
//! never opens it either. It also owns the cookie/session table ([`sessions`]). It reads
//! nothing from the environment; its only argument is `--log-level N`. Its peers are main, the
//! worker channels main hands it (SCM_RIGHTS beside `NewWorker`) and, with `auth`/`acct =
//! radius[...]`, the RADIUS servers radcli's file names: UDP from an ephemeral port, one connected
//! socket per request, every answer checked against the shared secret ([`radius_client`]). It
//! listens on no network socket.
//! Before anything else it locks itself down ([`harden`]): not dumpable, no core files, only
//! `CAP_DAC_READ_SEARCH` and `CAP_AUDIT_WRITE`, a seccomp deny-list. If it dies, main starts a
//! new one; the session table is lost with it.
//!
//! Everything a worker sends is untrusted (a worker parses the internet and may be
//! compromised): a malformed request closes that worker's channel with one log line.
//!
//! Protocol with main (`rocserv_proto::ipc::main_secmod`): `Start` first, answered `Ready` or
//! `StartFailed` (then exit 1; `check_only` exits 0 after `Ready`); then `NewWorker` + fd,
//! `SessionOpen` -> `SessionOpened`, `SessionClose`. EOF on fd 3 => clean exit.
//!
//! The crate is a library plus thin binaries (`rocserv-sm`, `ocpasswd`) so tests reach the
//! logic; only [`server`], [`worker_link`], [`radius_client`] and the backends' threads do I/O.

pub mod accounting;
pub mod auth;
pub mod cluster;
pub mod device;
pub mod fd;
pub mod harden;
pub mod keyfile;
pub mod keys;
pub mod listing;
pub mod logger;
pub mod memory;
pub mod ocpasswd_cli;
pub mod peers;
pub mod radius_acct;
pub mod radius_client;
mod sec1;
pub mod server;
pub mod session_db;
pub mod sessions;
pub mod worker_link;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod link_tests;
#[cfg(test)]
pub(crate) mod testutil;
