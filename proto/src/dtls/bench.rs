//! Hooks for `proto/benches/dtls_record.rs`. Not an API: hidden from the docs.
//!
//! [`established`] replays a committed `dtls_server` fuzz seed (a recorded handshake) to get a
//! real established [`Server`] for `seal_in_place`; [`RecordKey`] exposes the record
//! protection the server uses on receive, with one key for both directions so sealed records
//! open.

use std::time::Instant;

use super::cipher::DirectionKey;
use super::record::{self, content, Header};
use super::{fuzz, Server};

/// The server after replaying the datagrams of a `dtls_server` seed, if it is established.
pub fn established(seed: &[u8], now: Instant) -> Option<Server> {
    let (selector, mut rest) = seed.split_first()?;
    let mut server = Server::new(fuzz::mode(*selector), fuzz::SESSION_ID, fuzz::SERVER_RANDOM);
    let mut rng = |b: &mut [u8]| b.fill(0x5a);
    while let Some((len, tail)) = rest.split_at_checked(2) {
        let len = usize::from(u16::from_be_bytes(len.try_into().ok()?));
        let (datagram, tail) = tail.split_at_checked(len)?;
        rest = tail;
        let mut buf = datagram.to_vec();
        let _ = server.handle_datagram(&mut buf, now, &mut rng, &mut Vec::new());
        if server.is_established() {
            return Some(server);
        }
    }
    None
}

/// One direction's record protection: 0 = AES-128-GCM, 1 = AES-256-GCM, 2 = AES-128-CBC-SHA1.
pub struct RecordKey {
    key: DirectionKey,
    seq: u64,
    version: u16,
}

impl RecordKey {
    pub fn new(kind: u8) -> Option<Self> {
        let (key, version) = match kind {
            0 => (DirectionKey::gcm(&[7; 16], &[1; 4]).ok()?, record::DTLS1_2),
            1 => (DirectionKey::gcm(&[7; 32], &[1; 4]).ok()?, record::DTLS1_2),
            _ => (
                DirectionKey::cbc(&[7; 16], &[9; 20]).ok()?,
                record::DTLS_BAD_VER,
            ),
        };
        Some(Self {
            key,
            seq: 0,
            version,
        })
    }

    pub fn header_room(&self) -> usize {
        record::HEADER_LEN.saturating_add(self.key.explicit_len())
    }

    pub fn trailer_room(&self) -> usize {
        self.key.trailer_len()
    }

    /// Seals `buf[header_room..][..len]` as the next record; its length.
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let header = Header {
            ty: content::APPLICATION_DATA,
            version: self.version,
            epoch: 1,
            seq: self.seq,
            len: 0,
        };
        self.seq = self.seq.wrapping_add(1) & record::MAX_SEQ;
        self.key.seal(header, buf, len, &mut |iv| iv.fill(3)).ok()
    }

    /// Opens a whole record in place; the plaintext length.
    pub fn open(&self, record: &mut [u8]) -> Option<usize> {
        let (header, body, _) = record::split_first(record)?;
        self.key.open(&header, body).map(|r| r.len())
    }
}
