//! Pure protocol code shared by every rocserv process.
//!
//! The contract of this crate: **no I/O, no clock, no secrets**. Everything here turns bytes into
//! types and back; callers pass in time, randomness and buffers. Linking it gives a process no
//! power, which is why every binary may depend on it without blurring a privilege boundary.
//!
//! Who parses what, and from whom (the fuzzing effort follows this order, riskiest first):
//!
//! | module      | parsed by                  | input comes from              |
//! |-------------|----------------------------|-------------------------------|
//! | [`http`]    | worker (sandboxed)         | the internet, inside TLS      |
//! | [`auth_xml`]| worker (sandboxed)         | the internet, inside TLS      |
//! | [`cstp`]    | worker (sandboxed)         | the internet, inside TLS      |
//! | [`dtls`]    | worker (sandboxed); [`dtls::peek`] by main as ROOT | the internet, UDP, before any authentication |
//! | [`compress`]| worker (sandboxed)         | the internet, inside TLS (COMPRESSED payloads) |
//! | [`ipc`]     | main, sec-mod, worker      | the other processes; a worker may be compromised |
//! | [`ipc::signable`] | sec-mod (root, holds the key) | a worker's `Sign` request: what it asks the key to sign |
//! | [`config`]  | main                       | admin-owned files             |
//! | [`passwd`]  | sec-mod, ocpasswd          | admin-owned files             |
//! | [`policy::ports`] | main, sec-mod | admin-owned files; per-user files panels write |
//! | [`mtu`]     | main, worker               | numbers from the CONNECT request |
//! | [`connect`]| worker                     | main's grant and the configuration (emits only) |
//! | [`client_strings`] | worker; main              | CONNECT headers; main: a possibly compromised worker |
//! | [`offload`] | worker (sandboxed)         | the tun device (the kernel), and decrypted client packets |
//! | [`logline`] | main                       | a worker's stderr pipe; the worker may be compromised |
//! | [`proxy_proto`] | main (ROOT)            | the load balancer (`listen-proxy-proto`), before any worker |
#![cfg_attr(
    not(test),
    warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

pub mod auth_hook;
pub mod auth_xml;
pub mod cert_fields;
pub mod client_strings;
pub mod cluster;
pub mod compress;
pub mod config;
pub mod connect;
pub mod crypt_hash;
pub mod cstp;
pub mod dtls;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ipc;
pub mod logevent;
pub mod logline;
pub mod mtu;
pub mod offload;
pub mod otp_file;
pub mod passwd;
pub mod policy;
pub mod proxy_proto;
pub mod radius;
pub mod session_desc;

/// How long one of main's scripts (connect, disconnect, host-update) may run before it is
/// killed (and, for a connect-script, the client is refused). ocserv bounds the connect-script
/// by `auth-timeout`; 30 s keeps a stuck script from holding a tunnel for minutes while leaving
/// room for slow firewall updates. Here because sec-mod's cluster reservation of a CONNECT
/// must outlast it.
pub const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An error and its sources, `outer: inner: innermost`, for one log line (every process logs
/// errors this way).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
