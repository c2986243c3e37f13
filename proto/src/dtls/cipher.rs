//! Record protection, in place, keys prepared once (dependency-findings.md §3 "Record
//! protection"):
//!
//! * AES-GCM (DTLS 1.2): nonce = 4-byte implicit salt || 8-byte explicit nonce carried in the
//!   record; we use epoch||seq as the explicit part, unique per key without any RNG. AAD =
//!   epoch||seq||type||version||plaintext length (RFC 5288 §3, RFC 6347 §4.1.2.1).
//! * AES-CBC + HMAC-SHA1 (DTLS 0.9): random 16-byte explicit IV, then
//!   CBC(plaintext || HMAC || padding); MAC over epoch||seq||type||version||length||plaintext.
//!   The padding and MAC checks run without data-dependent branches (RFC 5246 §6.2.3.2 note on
//!   timing), and the MAC check costs the same number of SHA-1 compressions for every padding
//!   length of a record of a given length (Lucky13; see [`super::mac`]).

use aes::{Aes128, Aes256};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use ring::aead;

use super::error::DtlsError;
use super::mac::{MacKey, MAC_LEN};
use super::record::{self, Header};

/// GCM explicit nonce and tag lengths.
const GCM_EXPLICIT: usize = 8;
const GCM_TAG: usize = 16;
/// CBC explicit IV, block and MAC lengths.
const CBC_IV: usize = 16;
const BLOCK: usize = 16;

/// The two AES key sizes, schedule computed once.
#[derive(Clone)]
pub(crate) enum Aes {
    Aes128(Aes128),
    Aes256(Aes256),
}

impl Aes {
    fn new(key: &[u8]) -> Result<Self, DtlsError> {
        match key.len() {
            16 => Aes128::new_from_slice(key).map(Self::Aes128),
            _ => Aes256::new_from_slice(key).map(Self::Aes256),
        }
        .map_err(|_| DtlsError::Crypto)
    }

    /// CBC-encrypts whole blocks of `data` in place.
    fn cbc_encrypt(&self, iv: &[u8; CBC_IV], data: &mut [u8]) {
        let (blocks, _) = aes::Block::slice_as_chunks_mut(data);
        match self {
            Self::Aes128(c) => {
                cbc::Encryptor::<Aes128>::inner_iv_init(c.clone(), iv.into()).encrypt_blocks(blocks)
            }
            Self::Aes256(c) => {
                cbc::Encryptor::<Aes256>::inner_iv_init(c.clone(), iv.into()).encrypt_blocks(blocks)
            }
        }
    }

    fn cbc_decrypt(&self, iv: &[u8; CBC_IV], data: &mut [u8]) {
        let (blocks, _) = aes::Block::slice_as_chunks_mut(data);
        match self {
            Self::Aes128(c) => {
                cbc::Decryptor::<Aes128>::inner_iv_init(c.clone(), iv.into()).decrypt_blocks(blocks)
            }
            Self::Aes256(c) => {
                cbc::Decryptor::<Aes256>::inner_iv_init(c.clone(), iv.into()).decrypt_blocks(blocks)
            }
        }
    }
}

/// One direction's record protection.
pub(crate) enum DirectionKey {
    Gcm {
        key: aead::LessSafeKey,
        salt: [u8; 4],
    },
    Cbc {
        aes: Aes,
        mac: MacKey,
    },
}

impl DirectionKey {
    /// AES-GCM with a 16- or 32-byte key and the 4-byte implicit IV.
    pub(crate) fn gcm(key: &[u8], salt: &[u8]) -> Result<Self, DtlsError> {
        let alg = if key.len() == 16 {
            &aead::AES_128_GCM
        } else {
            &aead::AES_256_GCM
        };
        let key = aead::UnboundKey::new(alg, key).map_err(|_| DtlsError::Crypto)?;
        Ok(Self::Gcm {
            key: aead::LessSafeKey::new(key),
            salt: salt.try_into().map_err(|_| DtlsError::Crypto)?,
        })
    }

    /// AES-CBC with HMAC-SHA1.
    pub(crate) fn cbc(key: &[u8], mac_key: &[u8]) -> Result<Self, DtlsError> {
        Ok(Self::Cbc {
            aes: Aes::new(key)?,
            mac: MacKey::new(mac_key),
        })
    }

    /// Bytes between the record header and the plaintext.
    pub(crate) fn explicit_len(&self) -> usize {
        match self {
            Self::Gcm { .. } => GCM_EXPLICIT,
            Self::Cbc { .. } => CBC_IV,
        }
    }

    /// Bytes the record may need after the plaintext.
    pub(crate) fn trailer_len(&self) -> usize {
        match self {
            Self::Gcm { .. } => GCM_TAG,
            Self::Cbc { .. } => MAC_LEN + BLOCK,
        }
    }

    /// Seals `buf[HEADER_LEN + explicit_len ..][.. len]` into one record starting at `buf[0]`;
    /// returns the record length. `fill_iv` is called only for CBC.
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "lengths are at most MAX_PLAINTEXT (checked first) plus small constants"
    )]
    pub(crate) fn seal(
        &self,
        mut header: Header,
        buf: &mut [u8],
        len: usize,
        fill_iv: &mut dyn FnMut(&mut [u8]),
    ) -> Result<usize, DtlsError> {
        if len > record::MAX_PLAINTEXT {
            return Err(DtlsError::PayloadTooLong(len));
        }
        let start = record::HEADER_LEN + self.explicit_len();
        let plain_len = u16::try_from(len).map_err(|_| DtlsError::PayloadTooLong(len))?;
        let es = record::epoch_seq(header.epoch, header.seq);
        let body_len = match self {
            Self::Gcm { key, salt } => {
                let total = start + len + GCM_TAG;
                let record = buf.get_mut(..total).ok_or(DtlsError::BufferTooSmall)?;
                let (head, rest) = record.split_at_mut(start);
                let (payload, tag_out) = rest.split_at_mut(len);
                let aad = aad(&header, &es, plain_len);
                let tag = key
                    .seal_in_place_separate_tag(nonce(salt, &es), aead::Aad::from(aad), payload)
                    .map_err(|_| DtlsError::Crypto)?;
                tag_out.copy_from_slice(tag.as_ref());
                if let Some(explicit) = head.get_mut(record::HEADER_LEN..) {
                    explicit.copy_from_slice(&es);
                }
                GCM_EXPLICIT + len + GCM_TAG
            }
            Self::Cbc { aes, mac } => {
                // plaintext || MAC || padding, padded to whole blocks with at least one byte.
                let padded = (len + MAC_LEN + 1).div_ceil(BLOCK) * BLOCK;
                let pad = u8::try_from(padded - len - MAC_LEN - 1).unwrap_or(0);
                let record = buf
                    .get_mut(..start + padded)
                    .ok_or(DtlsError::BufferTooSmall)?;
                let (head, enc) = record.split_at_mut(start);
                let (payload, tail) = enc.split_at_mut(len);
                let tag = record_mac(mac, &header, &es, plain_len, payload);
                let (mac_out, padding) = tail.split_at_mut(MAC_LEN);
                mac_out.copy_from_slice(&tag);
                padding.fill(pad);
                let mut iv = [0u8; CBC_IV];
                fill_iv(&mut iv);
                if let Some(iv_out) = head.get_mut(record::HEADER_LEN..) {
                    iv_out.copy_from_slice(&iv);
                }
                aes.cbc_encrypt(&iv, enc);
                CBC_IV + padded
            }
        };
        header.len = u16::try_from(body_len).map_err(|_| DtlsError::PayloadTooLong(len))?;
        let out = buf
            .get_mut(..record::HEADER_LEN)
            .ok_or(DtlsError::BufferTooSmall)?;
        out.copy_from_slice(&header.to_bytes());
        Ok(record::HEADER_LEN + body_len)
    }

    /// Authenticates and decrypts a record body in place; the plaintext's range in `body`, or
    /// `None` when the record is not authentic.
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "offsets are within a body of at most 2^16 bytes, after checked_sub"
    )]
    pub(crate) fn open(&self, header: &Header, body: &mut [u8]) -> Option<std::ops::Range<usize>> {
        let es = record::epoch_seq(header.epoch, header.seq);
        match self {
            Self::Gcm { key, salt } => {
                let plain_len = body.len().checked_sub(GCM_EXPLICIT + GCM_TAG)?;
                let (explicit, sealed) = body.split_at_mut(GCM_EXPLICIT);
                let explicit: [u8; GCM_EXPLICIT] = (&*explicit).try_into().ok()?;
                let aad = aad(header, &es, u16::try_from(plain_len).ok()?);
                let plain = key
                    .open_in_place(nonce(salt, &explicit), aead::Aad::from(aad), sealed)
                    .ok()?;
                Some(GCM_EXPLICIT..GCM_EXPLICIT + plain.len())
            }
            Self::Cbc { aes, mac } => {
                let enc_len = body.len().checked_sub(CBC_IV)?;
                if enc_len < MAC_LEN + 1 || enc_len % BLOCK != 0 {
                    return None;
                }
                let (iv, enc) = body.split_at_mut(CBC_IV);
                let iv: [u8; CBC_IV] = (&*iv).try_into().ok()?;
                aes.cbc_decrypt(&iv, enc);
                let plain_len = cbc_check(mac, header, &es, enc)?;
                Some(CBC_IV..CBC_IV + plain_len)
            }
        }
    }
}

/// Constant-time padding and MAC check of a decrypted CBC body; the plaintext length if good.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "n >= MAC_LEN + 1 is checked by the caller; pad <= 255; all within a u16 body"
)]
fn cbc_check(mac: &MacKey, header: &Header, es: &[u8; 8], dec: &[u8]) -> Option<usize> {
    let n = dec.len();
    let pad = usize::from(*dec.last()?);
    // Padding is good when pad + 1 + MAC fit and the last pad + 1 bytes all equal pad; computed
    // over the last 256 bytes whatever `pad` is.
    let mut bad = u8::from(pad + 1 + MAC_LEN > n);
    for (i, b) in dec.iter().rev().enumerate().take(256) {
        let in_pad = u8::from(i <= pad).wrapping_neg(); // 0xff inside the padding
        bad |= in_pad & (b ^ (pad as u8));
    }
    let good = bad == 0;
    // With bad padding, check the MAC as if there were no padding (RFC 5246 §6.2.3.2).
    let plain_len = n - MAC_LEN - 1 - if good { pad } else { 0 };
    let plain = dec.get(..plain_len)?;
    let received = dec.get(plain_len..plain_len + MAC_LEN)?;
    // Hashed as if the plaintext had the longest length this record allows (no padding).
    let aad = aad(header, es, u16::try_from(plain_len).ok()?);
    let expected = mac.mac_hiding_length(&aad, plain, n - MAC_LEN - 1);
    let mac_ok = ct_eq(&expected, received);
    (good & mac_ok).then_some(plain_len)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn record_mac(
    mac: &MacKey,
    header: &Header,
    es: &[u8; 8],
    len: u16,
    plain: &[u8],
) -> [u8; MAC_LEN] {
    mac.mac(&aad(header, es, len), plain)
}

/// epoch||seq(8) || type || version || length: the GCM AAD and the CBC MAC prefix.
fn aad(header: &Header, es: &[u8; 8], len: u16) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..8].copy_from_slice(es);
    out[8] = header.ty;
    out[9..11].copy_from_slice(&header.version.to_be_bytes());
    out[11..].copy_from_slice(&len.to_be_bytes());
    out
}

fn nonce(salt: &[u8; 4], explicit: &[u8; 8]) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(explicit);
    aead::Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtls::record::content;

    fn header(ty: u8, version: u16, seq: u64) -> Header {
        Header {
            ty,
            version,
            epoch: 1,
            seq,
            len: 0,
        }
    }

    /// AES-128-GCM record: the layout of findings §3 and a known-answer check of the sealed
    /// bytes (computed independently with Python `cryptography`'s AESGCM over the same
    /// key/nonce/AAD).
    #[test]
    fn gcm_vector_and_round_trip() {
        let key = DirectionKey::gcm(&[0x11; 16], &[1, 2, 3, 4]).unwrap();
        let mut buf = [0u8; 64];
        buf[21..26].copy_from_slice(b"hello");
        let h = header(content::APPLICATION_DATA, record::DTLS1_2, 7);
        let n = key.seal(h, &mut buf, 5, &mut |_| panic!("no rng")).unwrap();
        assert_eq!(n, 13 + 8 + 5 + 16);
        assert_eq!(&buf[..13], &[23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 29]);
        assert_eq!(
            &buf[13..21],
            &[0, 1, 0, 0, 0, 0, 0, 7],
            "explicit = epoch||seq"
        );
        assert_eq!(hex(&buf[21..n]), GCM_EXPECTED);
        let parsed = Header::parse(&buf).unwrap();
        let range = key.open(&parsed, &mut buf[13..n]).unwrap();
        assert_eq!(&buf[13..n][range], b"hello");
    }

    const GCM_EXPECTED: &str = "194748f1d6c971687043e26687950d8d2e2fab2faa";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn gcm_rejects_tampering() {
        let key = DirectionKey::gcm(&[0x22; 32], &[9; 4]).unwrap();
        let mut buf = [0u8; 80];
        let n = key
            .seal(header(23, record::DTLS1_2, 1), &mut buf, 20, &mut |_| {})
            .unwrap();
        for i in [13, 25, n - 1] {
            let mut copy = buf;
            copy[i] ^= 1;
            let h = Header::parse(&copy).unwrap();
            assert!(key.open(&h, &mut copy[13..n]).is_none(), "flip at {i}");
        }
        let mut other_seq = buf;
        other_seq[10] ^= 1;
        let h = Header::parse(&other_seq).unwrap();
        assert!(
            key.open(&h, &mut other_seq[13..n]).is_none(),
            "AAD covers seq"
        );
    }

    #[test]
    fn cbc_round_trip_every_length_and_rejects_tampering() {
        let key = DirectionKey::cbc(&[0x33; 16], &[0x44; 20]).unwrap();
        for len in 0..50 {
            let mut buf = vec![0u8; 29 + len + 36];
            for (i, b) in buf[29..29 + len].iter_mut().enumerate() {
                *b = i as u8;
            }
            let h = header(23, record::DTLS_BAD_VER, len as u64);
            let n = key.seal(h, &mut buf, len, &mut |iv| iv.fill(0xab)).unwrap();
            assert_eq!((n - 29) % 16, 0);
            assert_eq!(&buf[1..3], &[1, 0]);
            let mut good = buf.clone();
            let parsed = Header::parse(&good).unwrap();
            let range = key.open(&parsed, &mut good[13..n]).unwrap();
            let expect: Vec<u8> = (0..len as u8).collect();
            assert_eq!(&good[13..n][range], &expect[..]);
            let mut bad = buf.clone();
            bad[n - 1] ^= 0x80;
            let parsed = Header::parse(&bad).unwrap();
            assert!(key.open(&parsed, &mut bad[13..n]).is_none());
        }
    }

    /// Lucky13: for a decrypted record of a given length, checking it costs the same number of
    /// SHA-1 compressions whatever its padding length, good or bad padding, good or bad MAC.
    #[test]
    fn cbc_check_costs_the_same_for_every_padding() {
        let mac = MacKey::new(&[0x44; 20]);
        let h = header(23, record::DTLS_BAD_VER, 9);
        let es = record::epoch_seq(h.epoch, h.seq);
        for n in (32..=512).step_by(16) {
            let mut costs = std::collections::BTreeSet::new();
            let max_pad = (n - MAC_LEN - 1).min(255);
            for pad in 0..=max_pad {
                let plain_len = n - MAC_LEN - 1 - pad;
                let mut dec: Vec<u8> = (0..n).map(|i| i as u8).collect();
                let tag = record_mac(&mac, &h, &es, plain_len as u16, &dec[..plain_len]);
                dec[plain_len..plain_len + MAC_LEN].copy_from_slice(&tag);
                dec[plain_len + MAC_LEN..].fill(pad as u8);
                let mut bad_mac = dec.clone();
                bad_mac[plain_len + 3] ^= 1;
                let mut bad_pad = dec.clone();
                bad_pad[n - 1 - pad / 2] ^= 1;
                for (what, record, expect) in [
                    ("good", &dec, Some(plain_len)),
                    ("bad MAC", &bad_mac, None),
                    ("bad padding", &bad_pad, None),
                ] {
                    if what == "bad padding" && pad == 0 {
                        continue; // flipping the only padding byte makes another valid length
                    }
                    let before = super::super::mac::counter::compressions();
                    assert_eq!(cbc_check(&mac, &h, &es, record), expect, "{n}/{pad} {what}");
                    costs.insert(super::super::mac::counter::compressions() - before);
                }
            }
            assert_eq!(
                costs.len(),
                1,
                "record of {n} bytes: compressions {costs:?}"
            );
        }
    }
}
