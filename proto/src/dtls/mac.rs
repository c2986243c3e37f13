//! HMAC-SHA1 (RFC 2104) for the DTLS 0.9 CBC suites, written over SHA-1's compression function
//! so that the receive check can hash the same number of blocks whatever the padding length
//! (Lucky13, AlFardan and Paterson 2013): the MAC of a CBC record covers only the plaintext,
//! whose length depends on the padding, and each 64-byte block more is a measurable SHA-1
//! compression. [`MacKey::mac_hiding_length`] pads the work to the longest plaintext the record
//! could hold, with dummy compressions, as s2n and OpenSSL do.

use sha1::block_api::compress as sha1_compress;
use sha1::Digest as _;

/// SHA-1 block and output sizes.
const BLOCK: usize = 64;
pub(crate) const MAC_LEN: usize = 20;
/// SHA-1 initial state (FIPS 180-4 §5.3.1).
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];
/// The 0x80 terminator and the 64-bit message length that SHA-1's padding adds.
const PADDING_MIN: usize = 9;
/// Where the 64-bit message length goes in the last block.
const LENGTH_AT: usize = BLOCK - 8;

/// An HMAC-SHA1 key as the two states after its inner (ipad) and outer (opad) block.
#[derive(Clone)]
pub(crate) struct MacKey {
    inner: [u32; 5],
    outer: [u32; 5],
}

impl MacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        // RFC 2104 §2: a key longer than the block is replaced by its hash.
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            let digest = sha1::Sha1::digest(key);
            for (b, k) in block.iter_mut().zip(digest.iter()) {
                *b = *k;
            }
        } else {
            for (b, k) in block.iter_mut().zip(key) {
                *b = *k;
            }
        }
        let keyed = |pad: u8| {
            let mut state = H0;
            let mut padded = block;
            padded.iter_mut().for_each(|b| *b ^= pad);
            compress(&mut state, &[padded]);
            state
        };
        Self {
            inner: keyed(0x36),
            outer: keyed(0x5c),
        }
    }

    /// HMAC over `prefix || data`.
    pub(crate) fn mac(&self, prefix: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
        let mut inner = Hasher::after_one_block(self.inner);
        inner.update(prefix);
        inner.update(data);
        let inner = inner.finish();
        let mut outer = Hasher::after_one_block(self.outer);
        outer.update(&inner);
        outer.finish()
    }

    /// [`Self::mac`], then as many dummy compressions as a `data` of `max_data` bytes would have
    /// needed more: the work is that of the longest `data`, whatever `data.len()` is.
    pub(crate) fn mac_hiding_length(
        &self,
        prefix: &[u8],
        data: &[u8],
        max_data: usize,
    ) -> [u8; MAC_LEN] {
        let out = self.mac(prefix, data);
        let needed = |len: usize| inner_compressions(prefix.len().saturating_add(len));
        let extra = needed(max_data).saturating_sub(needed(data.len()));
        let mut scratch = self.inner;
        let dummy = [[0u8; BLOCK]];
        for _ in 0..extra {
            compress(&mut scratch, &dummy);
        }
        // The scratch state is never used: keep the compiler from removing the work.
        std::hint::black_box(scratch);
        out
    }
}

/// Compressions of the inner hash after its keyed first block, for a message of `len` bytes.
fn inner_compressions(len: usize) -> usize {
    len.saturating_add(PADDING_MIN).div_ceil(BLOCK)
}

/// A SHA-1 computation that starts after one block (the HMAC key block) was compressed.
struct Hasher {
    state: [u32; 5],
    buf: [u8; BLOCK],
    buffered: usize,
    /// Bytes hashed, the key block included.
    total: u64,
}

impl Hasher {
    fn after_one_block(state: [u32; 5]) -> Self {
        Self {
            state,
            buf: [0; BLOCK],
            buffered: 0,
            total: BLOCK as u64,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = data.len().min(BLOCK.saturating_sub(self.buffered));
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self
                .buf
                .get_mut(self.buffered..self.buffered.saturating_add(take))
            {
                dst.copy_from_slice(head);
            }
            self.buffered = self.buffered.saturating_add(take);
            data = rest;
            if self.buffered < BLOCK {
                return;
            }
            compress(&mut self.state, &[self.buf]);
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        if !blocks.is_empty() {
            compress(&mut self.state, blocks);
        }
        if let Some(dst) = self.buf.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.buffered = rest.len();
    }

    fn finish(mut self) -> [u8; MAC_LEN] {
        let bits = self.total.wrapping_mul(8).to_be_bytes();
        // The terminator always fits: `buffered` < BLOCK.
        if let Some(b) = self.buf.get_mut(self.buffered) {
            *b = 0x80;
        }
        let tail = self.buffered.saturating_add(1);
        if let Some(rest) = self.buf.get_mut(tail..) {
            rest.fill(0);
        }
        if tail > LENGTH_AT {
            compress(&mut self.state, &[self.buf]);
            self.buf = [0; BLOCK];
        }
        if let Some(len) = self.buf.get_mut(LENGTH_AT..) {
            len.copy_from_slice(&bits);
        }
        compress(&mut self.state, &[self.buf]);
        let mut out = [0u8; MAC_LEN];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// SHA-1's compression function; counted in tests.
fn compress(state: &mut [u32; 5], blocks: &[[u8; BLOCK]]) {
    #[cfg(test)]
    counter::add(blocks.len());
    sha1_compress(state, blocks);
}

#[cfg(test)]
pub(crate) mod counter {
    use std::cell::Cell;

    thread_local! {
        static COMPRESSIONS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn add(n: usize) {
        COMPRESSIONS.with(|c| c.set(c.get().saturating_add(n)));
    }

    /// SHA-1 compressions this thread ran so far.
    pub(crate) fn compressions() -> usize {
        COMPRESSIONS.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    fn reference(key: &[u8], prefix: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).unwrap();
        m.update(prefix);
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// RFC 2202 §3 test cases 1 and 6 (key longer than a block).
    #[test]
    fn rfc2202_vectors() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let one = MacKey::new(&[0x0b; 20]).mac(b"Hi ", b"There");
        assert_eq!(hex(one), "b617318655057264e28bc0b6fb378c8ef146be00");
        let six = MacKey::new(&[0xaa; 80]).mac(
            b"Test Using Larger Than Block-Size Key - ",
            b"Hash Key First",
        );
        assert_eq!(hex(six), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    #[test]
    fn equals_the_hmac_crate_for_every_split_and_length() {
        let key = MacKey::new(&[0x44; 20]);
        let data: Vec<u8> = (0..300u16).map(|i| (i * 7) as u8).collect();
        for len in 0..data.len() {
            for prefix in [0, 13, 64, 70] {
                let (p, d) = data[..len].split_at(prefix.min(len));
                assert_eq!(
                    key.mac(p, d),
                    reference(&[0x44; 20], p, d),
                    "{len}/{prefix}"
                );
                assert_eq!(key.mac_hiding_length(p, d, 400), key.mac(p, d));
            }
        }
    }

    #[test]
    fn hiding_the_length_costs_the_longest_message() {
        let key = MacKey::new(&[1; 20]);
        let data = [0u8; 400];
        let cost = |len: usize| {
            let before = counter::compressions();
            key.mac_hiding_length(&[0; 13], &data[..len], 400);
            counter::compressions() - before
        };
        let longest = cost(400);
        // Inner: 13 + 400 + 9 bytes in 7 blocks; outer: one block after the opad block.
        assert_eq!(longest, 7 + 1);
        for len in 0..=400 {
            assert_eq!(cost(len), longest, "{len}-byte message");
        }
    }
}
