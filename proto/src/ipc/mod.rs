//! Messages between the rocserv processes, one module per process edge.
//!
//! Every edge is a `SOCK_SEQPACKET` unix socket pair made by main, so one message is one packet
//! and needs no framing; file descriptors (the tun device, a worker's sec-mod socket) travel
//! beside a message as `SCM_RIGHTS`. Messages are serialised with postcard (compact, bounded by
//! the packet size, safe on hostile input: a length prefix longer than the packet is an error).
//!
//! A worker talks to a client on the internet and may be compromised, so everything main and
//! sec-mod decode from a worker is untrusted input; identity (which worker, which client address)
//! is never taken from a worker's word but from main, which made the socket.
//!
//! | edge                | module            | fds that travel                         |
//! |---------------------|-------------------|-----------------------------------------|
//! | main <-> sec-mod    | [`main_secmod`]   | main -> sec-mod: one end of a worker's sec-mod socket |
//! | main <-> worker     | [`main_worker`]   | main -> worker: the tun device          |
//! | worker <-> sec-mod  | [`worker_secmod`] | none                                    |
//! | occtl <-> main      | [`ctl`]           | none (a listening socket, not a pair)   |

pub mod cluster;
pub mod ctl;
pub mod main_secmod;
pub mod main_worker;
pub mod signable;
pub mod worker_secmod;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Largest message any edge carries, in bytes. Receivers read into a buffer of this size; a
/// certificate chain in [`main_worker::WorkerStart`] is the largest legitimate payload.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Encoding or decoding a message failed.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The bytes are not a valid message of the expected type.
    #[error("malformed IPC message")]
    Malformed(#[source] postcard::Error),
    /// The message would exceed [`MAX_MESSAGE`].
    #[error("IPC message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    /// A message decoded cleanly but left bytes behind: a confused or hostile peer.
    #[error("{0} trailing bytes after an IPC message")]
    TrailingBytes(usize),
}

/// Serialise `msg` into a fresh buffer.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let bytes = postcard::to_stdvec(msg).map_err(IpcError::Malformed)?;
    if bytes.len() > MAX_MESSAGE {
        return Err(IpcError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Parse one whole message; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, IpcError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(IpcError::TooLarge(bytes.len()));
    }
    let (msg, rest) = postcard::take_from_bytes(bytes).map_err(IpcError::Malformed)?;
    if !rest.is_empty() {
        return Err(IpcError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Main's number for one worker process (one client connection). Never reused while main runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

/// sec-mod's number for an authenticated session (what a cookie names). Random, so that it can
/// appear in logs and occtl without revealing anything about the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The kind of the server's private key, as sec-mod found it. The worker needs it to offer the
/// right signature schemes in the TLS handshake without ever seeing the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    /// RSA (PKCS#1 or PKCS#8): RSA-PSS and PKCS#1 v1.5 signatures.
    Rsa,
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// ECDSA on P-521.
    EcdsaP521,
    /// An RSA key for RSASSA-PSS only (an id-RSASSA-PSS key or certificate, RFC 4055): the
    /// rsa_pss_pss_* schemes, which rustls offers in TLS 1.3 only.
    RsaPss,
}

/// Why a tunnel connection ended; decides what happens to the session's cookie
/// (protocol.md §3.3 and §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The client said goodbye (CSTP DISCONNECT `0xB0`): the cookie dies unless
    /// `persistent-cookies` is set.
    UserDisconnect,
    /// Anything the client may come back from: network loss, DPD timeout, TLS error, BYE `0x91`,
    /// a killed worker. The cookie stays valid for `cookie-timeout`.
    Temporary,
    /// The server ended the session (admin, session-timeout): the cookie dies.
    ServerTerminated,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UserDisconnect => "user disconnect",
            Self::Temporary => "temporary",
            Self::ServerTerminated => "server terminated",
        })
    }
}

/// Round-trip helper for tests of every edge.
#[cfg(test)]
pub(crate) fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: &T) {
    let bytes = encode(msg).unwrap();
    let back: T = decode(&bytes).unwrap();
    assert_eq!(&back, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&WorkerId(7)).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<WorkerId>(&bytes),
            Err(IpcError::TrailingBytes(1))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let _ = decode::<main_worker::ToMain>(&bytes);
            let _ = decode::<worker_secmod::ToSecMod>(&bytes);
        }
    }
}
