//! `oc-lz4`: one raw LZ4 block per packet, no frame, no size prefix (protocol.md §5.2), through
//! `lz4_flex::block` (interoperates with liblz4's `LZ4_compress_default` /
//! `LZ4_decompress_safe`, dependency-findings.md §9).
//!
//! The block carries no size, so the decoder is given the largest packet accepted as its output
//! buffer and fails cleanly beyond it. [`Compressor`] keeps lz4_flex's hash table between packets
//! so nothing is allocated per packet.

use lz4_flex::block::{self, CompressTable};

/// Output room [`Compressor::compress`] needs for an input of `len` bytes (lz4_flex refuses a
/// smaller buffer up front rather than trying).
pub const fn max_compressed_len(len: usize) -> usize {
    block::get_maximum_output_size(len)
}

/// LZ4 refused to compress or decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Lz4Error {
    /// The output buffer is smaller than [`max_compressed_len`] of the input.
    #[error("LZ4 output buffer too small")]
    OutputTooSmall,
    /// The input is not a valid LZ4 block, or decodes to more than the output holds.
    #[error("bad LZ4 block")]
    BadBlock,
}

/// Reusable LZ4 compressor state (lz4_flex's hash table, allocated once).
pub struct Compressor {
    table: CompressTable,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("lz4::Compressor").finish_non_exhaustive()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    pub fn new() -> Self {
        Self {
            table: CompressTable::default(),
        }
    }

    /// Compress `input` into `out` (at least [`max_compressed_len`] of the input); returns the
    /// block length.
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, Lz4Error> {
        if out.len() < max_compressed_len(input.len()) {
            return Err(Lz4Error::OutputTooSmall);
        }
        block::compress_into_with_table(input, out, &mut self.table)
            .map_err(|_| Lz4Error::OutputTooSmall)
    }
}

/// Decode one block into `out`; returns the decoded length. Never writes past `out.len()`.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<usize, Lz4Error> {
    block::decompress_into(input, out).map_err(|_| Lz4Error::BadBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::test_data::noise;

    fn round_trip(c: &mut Compressor, data: &[u8]) -> usize {
        let mut packed = vec![0; max_compressed_len(data.len())];
        let n = c.compress(data, &mut packed).unwrap();
        let mut out = vec![0; data.len()];
        assert_eq!(decompress(&packed[..n], &mut out), Ok(data.len()));
        assert_eq!(out, data);
        n
    }

    #[test]
    fn round_trips() {
        let mut c = Compressor::new();
        for seed in [1u64, 99] {
            for len in (0..=2000).step_by(7).chain([16384 - 8]) {
                round_trip(&mut c, &noise(seed, len));
                let mut text =
                    b"GET /index.html HTTP/1.1\r\nHost: example\r\n".repeat(len / 40 + 1);
                text.truncate(len);
                round_trip(&mut c, &text);
            }
        }
        assert!(round_trip(&mut c, &[0; 1400]) < 40);
    }

    #[test]
    fn decoder_is_bounded() {
        let mut c = Compressor::new();
        let data = [7u8; 1000];
        let mut packed = vec![0; max_compressed_len(data.len())];
        let n = c.compress(&data, &mut packed).unwrap();
        let mut small = [0u8; 999];
        assert_eq!(
            decompress(&packed[..n], &mut small),
            Err(Lz4Error::BadBlock)
        );
        for cut in 0..n {
            let mut out = [0u8; 1000];
            // Truncated blocks either fail or decode to a prefix; never panic, never overrun.
            if let Ok(k) = decompress(&packed[..cut], &mut out) {
                assert!(k <= 1000);
            }
        }
        assert_eq!(
            decompress(&[0xF0, 0xFF], &mut [0u8; 64]),
            Err(Lz4Error::BadBlock)
        );
    }

    #[test]
    fn small_output_is_refused() {
        let mut c = Compressor::new();
        let data = noise(3, 100);
        let mut out = [0u8; 100];
        assert_eq!(c.compress(&data, &mut out), Err(Lz4Error::OutputTooSmall));
    }
}
