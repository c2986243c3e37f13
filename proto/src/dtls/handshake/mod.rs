//! Handshake messages, transcript hash, key schedule and flights shared by both modes
//! (RFC 6347 §4.2, RFC 5246 §7.4). [`psk`] holds the full PSK handshake, [`legacy`] the forced
//! resumption.
//!
//! We only accept unfragmented handshake messages: every client we serve sends hellos far below
//! the path MTU (protocol.md §4.2 trace: 168 bytes), and refusing fragments keeps reassembly
//! state out of a parser that runs before authentication.

pub(crate) mod codec;
pub(crate) mod legacy;
pub(crate) mod psk;

use ring::digest;
use sha1::Digest as _;

use super::cipher::DirectionKey;
use super::error::DtlsError;
use super::prf::prf;
use super::suite::{PrfHash, Suite};

/// Handshake message types (RFC 5246 §7.4, RFC 6347 §4.2.1).
pub(crate) mod msg {
    pub(crate) const CLIENT_HELLO: u8 = 1;
    pub(crate) const SERVER_HELLO: u8 = 2;
    pub(crate) const HELLO_VERIFY_REQUEST: u8 = 3;
    pub(crate) const SERVER_HELLO_DONE: u8 = 14;
    pub(crate) const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub(crate) const FINISHED: u8 = 20;
}

/// Length of verify_data (RFC 5246 §7.4.9).
pub(crate) const VERIFY_LEN: usize = 12;

/// The running handshake hash: SHA-256/384 over whole DTLS 1.2 messages, or MD5 || SHA-1 over
/// bodies only for DTLS 0.9 (protocol.md §4.3 deviations 2 and 4).
#[derive(Clone)]
pub(crate) enum Transcript {
    Ring(digest::Context),
    Md5Sha1(md5::Md5, sha1::Sha1),
}

impl Transcript {
    pub(crate) fn new(hash: PrfHash) -> Self {
        match hash {
            PrfHash::Sha256 => Self::Ring(digest::Context::new(&digest::SHA256)),
            PrfHash::Sha384 => Self::Ring(digest::Context::new(&digest::SHA384)),
            PrfHash::Tls10 => Self::Md5Sha1(md5::Md5::new(), sha1::Sha1::new()),
        }
    }

    /// Adds one handshake message given with its 12-byte header; DTLS 0.9 hashes the body only.
    pub(crate) fn add(&mut self, message: &[u8]) {
        match self {
            Self::Ring(c) => c.update(message),
            Self::Md5Sha1(m, s) => {
                let body = message.get(codec::HS_HEADER_LEN..).unwrap_or_default();
                m.update(body);
                s.update(body);
            }
        }
    }

    /// The hash so far (48 bytes at most), without consuming the transcript.
    pub(crate) fn current(&self) -> ([u8; 48], usize) {
        let mut out = [0u8; 48];
        let len = match self {
            Self::Ring(c) => {
                let d = c.clone().finish();
                let d = d.as_ref();
                out.get_mut(..d.len())
                    .map(|o| o.copy_from_slice(d))
                    .map_or(0, |()| d.len())
            }
            Self::Md5Sha1(m, s) => {
                let (a, b) = (m.clone().finalize(), s.clone().finalize());
                out[..16].copy_from_slice(&a);
                out[16..36].copy_from_slice(&b);
                36
            }
        };
        (out, len)
    }

    /// `PRF(master, label, Hash(transcript))[..12]` (RFC 5246 §7.4.9).
    pub(crate) fn verify_data(
        &self,
        hash: PrfHash,
        master: &[u8; 48],
        label: &[u8],
    ) -> [u8; VERIFY_LEN] {
        let (h, len) = self.current();
        let mut out = [0u8; VERIFY_LEN];
        prf(
            hash,
            master,
            label,
            &[h.get(..len).unwrap_or_default()],
            &mut out,
        );
        out
    }
}

/// Both directions' record protection for epoch 1.
pub(crate) struct Keys {
    /// What we send with (server write keys).
    pub(crate) seal: DirectionKey,
    /// What the client sends with (client write keys).
    pub(crate) open: DirectionKey,
}

/// `key_block = PRF(master, "key expansion", server_random || client_random)` cut into the
/// suite's keys (RFC 5246 §6.3; findings §3 "Key derivation").
pub(crate) fn derive_keys(
    suite: Suite,
    master: &[u8; 48],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> Result<Keys, DtlsError> {
    let key_len = suite.key_len();
    let mut block = [0u8; 2 * 20 + 2 * 32 + 2 * 16];
    prf(
        suite.prf(),
        master,
        b"key expansion",
        &[server_random, client_random],
        &mut block,
    );
    let mut parts = Parts(&block);
    if suite.is_cbc() {
        let (c_mac, s_mac) = (parts.take(20)?, parts.take(20)?);
        let (c_key, s_key) = (parts.take(key_len)?, parts.take(key_len)?);
        Ok(Keys {
            seal: DirectionKey::cbc(s_key, s_mac)?,
            open: DirectionKey::cbc(c_key, c_mac)?,
        })
    } else {
        let (c_key, s_key) = (parts.take(key_len)?, parts.take(key_len)?);
        let (c_iv, s_iv) = (parts.take(4)?, parts.take(4)?);
        Ok(Keys {
            seal: DirectionKey::gcm(s_key, s_iv)?,
            open: DirectionKey::gcm(c_key, c_iv)?,
        })
    }
}

struct Parts<'a>(&'a [u8]);

impl<'a> Parts<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DtlsError> {
        let Some((head, rest)) = self.0.split_at_checked(n) else {
            return Err(DtlsError::Crypto);
        };
        self.0 = rest;
        Ok(head)
    }
}

/// One record of a flight, kept as plaintext so a retransmission can be re-sealed with a fresh
/// record sequence number (peers drop a repeated number as a replay).
pub(crate) struct FlightRecord {
    pub(crate) ty: u8,
    pub(crate) epoch: u16,
    pub(crate) payload: Vec<u8>,
    /// CBC IV for an epoch-1 record, drawn once (`handle_timeout` has no RNG).
    pub(crate) iv: [u8; 16],
}

/// A flight: the datagram we send and may resend (RFC 6347 §4.2.4). All its records go into
/// one datagram (findings §3: "Reply in one datagram").
#[derive(Default)]
pub(crate) struct Flight {
    pub(crate) records: Vec<FlightRecord>,
}

impl Flight {
    pub(crate) fn push(&mut self, ty: u8, epoch: u16, payload: Vec<u8>, iv: [u8; 16]) {
        self.records.push(FlightRecord {
            ty,
            epoch,
            payload,
            iv,
        });
    }
}
