//! Our own DTLS server for the openconnect data channel, sans-IO (protocol.md §4).
//!
//! Contract: [`Server`] turns received datagrams into [`Received`] events and pushes the datagrams
//! it wants sent into a caller-owned `Vec`; the caller owns the socket, the clock (`now`) and the
//! randomness (`server_random`, an `rng` callback). Two modes exist, chosen by the CONNECT
//! exchange: a full DTLS 1.2 PSK handshake (§4.2, "PSK-NEGOTIATE") and the legacy Cisco forced
//! resumption with a client-chosen master secret (§4.3), in DTLS 1.2 AES-GCM or DTLS 0.9
//! (`DTLS1_BAD_VER`) AES-CBC-SHA1. Why we wrote it instead of using a crate:
//! doc/decisions/0002-own-dtls.md.
//!
//! The data path ([`Server::seal_in_place`], and application data in
//! [`Server::handle_datagram`]) works in the caller's buffer and never allocates. Malformed,
//! replayed or undecryptable records are dropped as DTLS requires (RFC 6347 §4.1.2.7); only a
//! handshake failure is reported as a [`DtlsError`].
//!
//! Input comes from the internet (UDP, before any authentication) and is parsed by the
//! sandboxed worker; [`peek`] is parsed by root in main, so it is the smallest parser here.

#[doc(hidden)]
pub mod bench;
mod cipher;
mod error;
pub mod filter;
#[doc(hidden)]
pub(crate) mod fuzz;
mod handshake;
mod mac;
pub mod peek;
mod prf;
mod record;
mod server;
mod suite;

#[cfg(test)]
mod test_client;

pub use error::DtlsError;
pub use server::{Received, Server};
pub use suite::LegacySuite;

/// How a [`Server`] runs its handshake, decided by the CONNECT exchange (protocol.md §4.1).
#[derive(Clone, PartialEq, Eq)]
pub enum Mode {
    /// PSK-NEGOTIATE: DTLS 1.2 full PSK handshake, key = TLS exporter
    /// ("EXPORTER-openconnect-psk", no context, 32 bytes), identity "psk" (protocol.md §4.2).
    Psk {
        /// The exporter output of the CSTP TLS session.
        psk: [u8; 32],
    },
    /// Legacy: client-chosen `X-DTLS-Master-Secret`, forced abbreviated handshake (§4.3).
    Legacy {
        /// The 48 bytes of `X-DTLS-Master-Secret`.
        master_secret: [u8; 48],
        /// The suite we named in the CONNECT response.
        suite: LegacySuite,
    },
}

impl std::fmt::Debug for Mode {
    // Never print key material, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Psk { .. } => f.write_str("Psk"),
            Self::Legacy { suite, .. } => write!(f, "Legacy({})", suite.name()),
        }
    }
}

#[cfg(test)]
mod tests;
