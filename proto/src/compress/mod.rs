//! Packet compression for CSTP and DTLS (protocol.md §5): which algorithm a channel uses
//! ([`negotiate`]), the two codecs ([`lzs`], written here from the §5.3 bitstream, and [`lz4`],
//! on lz4_flex), and the sender's policy in [`Compressor`].
//!
//! Every packet is compressed on its own (no history across packets) and travels as a
//! COMPRESSED (type 0x08) frame instead of DATA. The sender compresses only packets longer than
//! `no-compress-limit` and only uses the result when it is strictly shorter (ocserv
//! src/worker-vpn.c); the receiver decodes into a buffer of [`MAX_DECOMPRESSED`] bytes and treats
//! the result as DATA. Nothing here allocates per packet: buffers are the caller's, codec state
//! is kept in [`Compressor`].

pub mod lz4;
pub mod lzs;
pub mod negotiate;

/// Reproducible test input for the codecs' tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// xorshift bytes: incompressible, reproducible, no dependency.
    pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

pub use negotiate::{choose, Algorithm, Policy};

use crate::cstp::MAX_PAYLOAD;

/// Largest decompressed packet accepted (ocserv's 16 KiB buffer; protocol.md §5.1).
pub const MAX_DECOMPRESSED: usize = 16384;

/// Output room [`Compressor::compress`] needs (LZ4 insists on its worst case up front; the
/// result used is always shorter than the packet).
pub const COMPRESS_ROOM: usize = lz4::max_compressed_len(MAX_PAYLOAD);

/// A COMPRESSED payload that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// Not a valid LZS stream (or too large).
    #[error("LZS")]
    Lzs(#[from] lzs::DecompressError),
    /// Not a valid LZ4 block (or too large).
    #[error("LZ4")]
    Lz4(#[from] lz4::Lz4Error),
}

/// Decode one COMPRESSED payload with the channel's `algorithm` into `out`, of which at most
/// [`MAX_DECOMPRESSED`] bytes are used; returns the packet length.
pub fn decompress(
    algorithm: Algorithm,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, DecompressError> {
    let limit = out.len().min(MAX_DECOMPRESSED);
    let out = out.get_mut(..limit).unwrap_or_default();
    Ok(match algorithm {
        Algorithm::Lzs => lzs::decompress(input, out)?,
        Algorithm::Lz4 => lz4::decompress(input, out)?,
    })
}

/// The sending side of one channel's compression: the negotiated algorithm, its reusable state
/// and `no-compress-limit`.
#[derive(Debug)]
pub struct Compressor {
    codec: Codec,
    /// Packets of at most this many bytes go out uncompressed.
    no_compress_limit: usize,
}

#[derive(Debug)]
enum Codec {
    Lzs(lzs::Compressor),
    Lz4(lz4::Compressor),
}

impl Compressor {
    /// State for `algorithm` (allocated here, once per channel). `no_compress_limit` below
    /// [`negotiate::MIN_NO_COMPRESS_LIMIT`] is raised to it, as ocserv does.
    pub fn new(algorithm: Algorithm, no_compress_limit: u32) -> Self {
        let limit = no_compress_limit.max(negotiate::MIN_NO_COMPRESS_LIMIT);
        Self {
            codec: match algorithm {
                Algorithm::Lzs => Codec::Lzs(lzs::Compressor::new()),
                Algorithm::Lz4 => Codec::Lz4(lz4::Compressor::new()),
            },
            no_compress_limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.codec {
            Codec::Lzs(_) => Algorithm::Lzs,
            Codec::Lz4(_) => Algorithm::Lz4,
        }
    }

    /// Compress `packet` into `out` (give it [`COMPRESS_ROOM`] bytes) when that pays: returns
    /// the compressed length, strictly below `packet.len()`, or `None` when the packet should
    /// go out as DATA (short, incompressible, or larger than a frame).
    pub fn compress(&mut self, packet: &[u8], out: &mut [u8]) -> Option<usize> {
        if packet.len() <= self.no_compress_limit || packet.len() > MAX_PAYLOAD {
            return None;
        }
        let n = match &mut self.codec {
            // LZS stops as soon as it is no shorter than the packet.
            Codec::Lzs(lzs) => {
                let room = packet.len().saturating_sub(1).min(out.len());
                lzs.compress(packet, out.get_mut(..room)?).ok()?
            }
            Codec::Lz4(lz4) => lz4.compress(packet, out).ok()?,
        };
        (n < packet.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize) -> Vec<u8> {
        // An IPv4 header followed by zeros, like `ping -p 00`.
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[9] = 1;
        p
    }

    #[test]
    fn compresses_only_above_the_limit_and_when_shorter() {
        for algorithm in Algorithm::ALL {
            let mut c = Compressor::new(algorithm, 256);
            let mut out = vec![0; COMPRESS_ROOM];
            assert_eq!(c.compress(&packet(256), &mut out), None);
            let n = c.compress(&packet(257), &mut out).unwrap();
            assert!(n < 257);
            let mut back = vec![0; MAX_DECOMPRESSED];
            let k = decompress(algorithm, &out[..n], &mut back).unwrap();
            assert_eq!(&back[..k], packet(257).as_slice());

            let noise = test_data::noise(0x2545_F491_4F6C_DD1D, 1400);
            assert_eq!(c.compress(&noise, &mut out), None, "{algorithm:?}");
            assert_eq!(c.compress(&vec![0; MAX_PAYLOAD + 1], &mut out), None);
        }
    }

    #[test]
    fn limit_has_a_floor() {
        let mut c = Compressor::new(Algorithm::Lzs, 0);
        let mut out = vec![0; COMPRESS_ROOM];
        assert_eq!(c.compress(&packet(64), &mut out), None);
        assert!(c.compress(&packet(65), &mut out).is_some());
    }

    #[test]
    fn decompression_is_capped_at_16k() {
        let mut c = Compressor::new(Algorithm::Lz4, 256);
        let mut out = vec![0; COMPRESS_ROOM];
        let n = c.compress(&packet(MAX_PAYLOAD), &mut out).unwrap();
        let mut big = vec![0; 20_000];
        assert_eq!(
            decompress(Algorithm::Lz4, &out[..n], &mut big),
            Ok(MAX_PAYLOAD)
        );
        let mut lzs = lzs::Compressor::new();
        let n = lzs.compress(&[0; 20_000], &mut out).unwrap();
        assert_eq!(
            decompress(Algorithm::Lzs, &out[..n], &mut big),
            Err(DecompressError::Lzs(lzs::DecompressError::OutputFull(
                MAX_DECOMPRESSED
            )))
        );
        assert_eq!(
            decompress(Algorithm::Lzs, &[0xFF; 10], &mut big),
            Err(DecompressError::Lzs(lzs::DecompressError::OffsetTooFar {
                offset: 127,
                produced: 0
            }))
        );
    }
}
