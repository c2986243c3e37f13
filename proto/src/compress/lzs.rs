//! Stac LZS (ANSI X3.241 / RFC 1974) as the `lzs` content encoding uses it: one packet per
//! stream, history reset every packet, end marker at the end (protocol.md §5.3). Written from
//! the bitstream description there; checked against the §5.3 vectors.
//!
//! Bits are packed most-significant first. Tokens: literal `0 bbbbbbbb`; match `1 1 ooooooo`
//! (offset 1..=127) or `1 0 ooooooooooo` (offset 1..=2047) followed by a length code; end
//! marker `1 1 0000000`, then zero bits to the byte boundary.
//!
//! [`Compressor`] keeps its hash tables between packets (allocated once, never cleared: entries
//! from earlier packets are recognised by their position and ignored) and writes into the
//! caller's buffer, stopping with [`CompressError::OutputFull`] as soon as the buffer is full;
//! give it `packet.len() - 1` bytes to learn cheaply that compressing does not pay.
//! [`decompress`] never writes past the caller's buffer and refuses malformed streams with a
//! typed error; it does not allocate.

/// Largest offset a match may reach back (11-bit offsets).
pub const WINDOW: usize = 2047;

/// Offsets below this fit the 7-bit short form.
const SHORT_OFFSET_LIMIT: usize = 128;

/// The shortest match worth a token: a 2-byte match costs at most 15 bits, two literals 18.
const MIN_MATCH: usize = 2;

/// Candidates examined per position; bounds the work per byte on repetitive input.
const MAX_CHAIN: usize = 48;

/// A match this long is taken without looking further.
const GOOD_ENOUGH: usize = 64;

const HASH_BITS: u32 = 12;
const HASH_SIZE: usize = 1 << HASH_BITS;
/// The chain ring holds the previous occurrence per position, for positions within the window.
const RING: usize = 2048;

/// Longest input [`Compressor::compress`] takes (far above any packet); keeps the absolute
/// positions stored in the tables within `u32`.
pub const MAX_INPUT: usize = 1 << 24;

/// The compressed form did not fit, or the input is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    /// The output buffer is too small for the compressed form.
    #[error("LZS output buffer full")]
    OutputFull,
    /// The input is longer than [`MAX_INPUT`].
    #[error("LZS input of {0} bytes is too long")]
    InputTooLong(usize),
}

/// The bytes are not a valid LZS stream, or decode to more than the output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The input ended before the end marker.
    #[error("LZS stream ends without an end marker")]
    Truncated,
    /// A long-form match with offset 0.
    #[error("LZS match with offset 0")]
    ZeroOffset,
    /// A match reaching back before the start of the packet.
    #[error("LZS match offset {offset} exceeds the {produced} bytes produced")]
    OffsetTooFar { offset: usize, produced: usize },
    /// The decoded packet is larger than the output buffer.
    #[error("LZS output exceeds {0} bytes")]
    OutputFull(usize),
}

/// Reusable compressor state: hash heads and chains over absolute positions.
pub struct Compressor {
    /// Most recent absolute position whose two bytes hash to each slot.
    head: Box<[u32; HASH_SIZE]>,
    /// For the position `p` (at `p % RING`), the previous position with the same hash.
    prev: Box<[u32; RING]>,
    /// Absolute position of the first byte of the current packet; entries below it are stale.
    base: u32,
    /// Absolute position just past the current packet.
    end: u32,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("lzs::Compressor")
            .field("base", &self.base)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// Tables are allocated here, once; [`Self::compress`] allocates nothing.
    pub fn new() -> Self {
        Self {
            head: Box::new([0; HASH_SIZE]),
            prev: Box::new([0; RING]),
            // Zeroed entries are below the base, hence stale.
            base: FRESH_BASE,
            end: FRESH_BASE,
        }
    }

    /// Compress `input` into `out`; returns the number of bytes written. Fails with
    /// [`CompressError::OutputFull`] as soon as `out` is full.
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, CompressError> {
        let len = input.len();
        if len > MAX_INPUT {
            return Err(CompressError::InputTooLong(len));
        }
        self.start_packet(len);
        let base = self.base as usize;
        let mut w = BitWriter::new(out);
        let mut i = 0usize;
        while i < len {
            let (best_len, best_off) = self.find_match(input, i, base);
            if best_len >= MIN_MATCH {
                write_match(&mut w, best_off, best_len)?;
                let end = i.saturating_add(best_len);
                while i < end {
                    self.insert(input, i, base);
                    i = i.saturating_add(1);
                }
            } else {
                let byte = input.get(i).copied().unwrap_or(0);
                w.put(u32::from(byte), 9)?;
                self.insert(input, i, base);
                i = i.saturating_add(1);
            }
        }
        // End marker, then zero padding to the byte boundary.
        w.put(0b1_1000_0000, 9)?;
        w.finish()
    }

    /// Move `base` past every position stored so far, so this packet sees none of them; when
    /// the positions would leave `u32`, clear the tables and start over (once per 4 GiB).
    fn start_packet(&mut self, len: usize) {
        let base = (self.end as usize).saturating_add(1);
        let end = base.saturating_add(len);
        match (u32::try_from(base), u32::try_from(end)) {
            (Ok(base), Ok(end)) => (self.base, self.end) = (base, end),
            _ => {
                self.head.fill(0);
                self.prev.fill(0);
                self.base = FRESH_BASE;
                // len <= MAX_INPUT, far below u32::MAX - FRESH_BASE.
                self.end = u32::try_from(len).map_or(u32::MAX, |l| FRESH_BASE.saturating_add(l));
            }
        }
    }

    /// Longest earlier occurrence (length, offset) of the bytes at `i`; (0, 0) when none.
    fn find_match(&self, input: &[u8], i: usize, base: usize) -> (usize, usize) {
        let Some(hash) = hash_at(input, i) else {
            return (0, 0);
        };
        let here = base.saturating_add(i);
        let max_len = input.len().saturating_sub(i);
        let (mut best_len, mut best_off) = (0usize, 0usize);
        let mut candidate = self.head.get(hash).map_or(0, |&c| c as usize);
        for _ in 0..MAX_CHAIN {
            if candidate < base || candidate >= here {
                break;
            }
            let offset = here.saturating_sub(candidate);
            if offset > WINDOW {
                break;
            }
            let start = candidate.saturating_sub(base);
            let len = common_prefix(input, start, i, max_len);
            if len > best_len {
                best_len = len;
                best_off = offset;
                if len >= GOOD_ENOUGH || len == max_len {
                    break;
                }
            }
            candidate = self.prev.get(candidate % RING).map_or(0, |&c| c as usize);
        }
        (best_len, best_off)
    }

    /// Record position `i` under the hash of its two bytes.
    fn insert(&mut self, input: &[u8], i: usize, base: usize) {
        let Some(hash) = hash_at(input, i) else {
            return;
        };
        let abs = u32::try_from(base.saturating_add(i)).unwrap_or(0);
        if let (Some(head), Some(prev)) = (
            self.head.get_mut(hash),
            self.prev.get_mut(abs as usize % RING),
        ) {
            *prev = *head;
            *head = abs;
        }
    }
}

/// The base after a reset: above zero, so a zeroed entry is never mistaken for a position.
const FRESH_BASE: u32 = 1;

fn hash_at(input: &[u8], i: usize) -> Option<usize> {
    let pair = input.get(i..i.checked_add(2)?)?;
    let [a, b] = <[u8; 2]>::try_from(pair).ok()?;
    let key = u32::from(u16::from_be_bytes([a, b]));
    Some((key.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize)
}

/// How many bytes from `a` and `b` agree (`a < b`), up to `max`. Overlap is fine: the decoder
/// copies byte by byte, so a match may run into the bytes it produces.
fn common_prefix(input: &[u8], a: usize, b: usize, max: usize) -> usize {
    let (Some(x), Some(y)) = (input.get(a..), input.get(b..)) else {
        return 0;
    };
    x.iter()
        .zip(y)
        .take(max)
        .take_while(|(p, q)| p == q)
        .count()
}

/// A match token: offset form, then the length code (protocol.md §5.3 tables).
fn write_match(w: &mut BitWriter<'_>, offset: usize, len: usize) -> Result<(), CompressError> {
    let offset = u32::try_from(offset).unwrap_or(0);
    if (offset as usize) < SHORT_OFFSET_LIMIT {
        w.put((0b11 << 7) | offset, 9)?;
    } else {
        w.put((0b10 << 11) | offset, 13)?;
    }
    match len {
        2 => w.put(0b00, 2),
        3 => w.put(0b01, 2),
        4 => w.put(0b10, 2),
        5..=7 => w.put(0b1100 | (len.saturating_sub(5) as u32), 4),
        _ => {
            w.put(0b1111, 4)?;
            let mut rest = len.saturating_sub(8);
            while rest >= 15 {
                w.put(0b1111, 4)?;
                rest = rest.saturating_sub(15);
            }
            w.put(rest as u32, 4)
        }
    }
}

/// Writes bit fields most-significant first into a borrowed buffer.
struct BitWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u32,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Self {
            out,
            pos: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// Append the low `n` bits of `value` (`n <= 16`).
    fn put(&mut self, value: u32, n: u32) -> Result<(), CompressError> {
        let mask = (1u32 << n).wrapping_sub(1);
        self.acc = (self.acc << n) | (value & mask);
        self.bits = self.bits.saturating_add(n);
        while self.bits >= 8 {
            self.bits = self.bits.saturating_sub(8);
            let byte = (self.acc >> self.bits) as u8;
            self.push(byte)?;
        }
        // Keep only the pending bits so the shift above never overflows.
        self.acc &= (1u32 << self.bits).wrapping_sub(1);
        Ok(())
    }

    fn push(&mut self, byte: u8) -> Result<(), CompressError> {
        let slot = self
            .out
            .get_mut(self.pos)
            .ok_or(CompressError::OutputFull)?;
        *slot = byte;
        self.pos = self.pos.saturating_add(1);
        Ok(())
    }

    /// Flush the last partial byte (zero-padded); the length written.
    fn finish(mut self) -> Result<usize, CompressError> {
        if self.bits > 0 {
            let byte = (self.acc << 8u32.saturating_sub(self.bits)) as u8;
            self.push(byte)?;
        }
        Ok(self.pos)
    }
}

/// Reads bit fields most-significant first.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    acc: u64,
    bits: u32,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// The next `n` bits (`n <= 16`) as a number.
    fn take(&mut self, n: u32) -> Result<u32, DecompressError> {
        while self.bits < n {
            let &byte = self.input.get(self.pos).ok_or(DecompressError::Truncated)?;
            self.pos = self.pos.saturating_add(1);
            self.acc = (self.acc << 8) | u64::from(byte);
            self.bits = self.bits.saturating_add(8);
        }
        self.bits = self.bits.saturating_sub(n);
        let value = (self.acc >> self.bits) as u32 & ((1u32 << n).wrapping_sub(1));
        self.acc &= (1u64 << self.bits).wrapping_sub(1);
        Ok(value)
    }
}

/// Decode one LZS packet from `input` into `out`; returns the decoded length. Bytes after the
/// end marker's padding are ignored. Never writes past `out.len()`.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError> {
    let limit = out.len();
    let mut r = BitReader::new(input);
    let mut produced = 0usize;
    loop {
        if r.take(1)? == 0 {
            let byte = r.take(8)? as u8;
            let slot = out
                .get_mut(produced)
                .ok_or(DecompressError::OutputFull(limit))?;
            *slot = byte;
            produced = produced.saturating_add(1);
            continue;
        }
        let offset = if r.take(1)? == 1 {
            match r.take(7)? {
                0 => return Ok(produced),
                short => short as usize,
            }
        } else {
            match r.take(11)? {
                0 => return Err(DecompressError::ZeroOffset),
                long => long as usize,
            }
        };
        if offset > produced {
            return Err(DecompressError::OffsetTooFar { offset, produced });
        }
        let len = read_length(&mut r, limit.saturating_sub(produced))
            .ok_or(DecompressError::OutputFull(limit))??;
        let end = produced.saturating_add(len);
        if end > limit {
            return Err(DecompressError::OutputFull(limit));
        }
        copy_match(out, produced, offset, len);
        produced = end;
    }
}

/// Append `len` bytes that start `offset` back from `at` (`offset <= at`, `at + len <=
/// out.len()`, checked by the caller). A match may overlap the bytes it produces (offset <
/// length: the pattern repeats), so it is copied in chunks that never read unwritten bytes:
/// `offset` bytes, then twice as many, and so on, always from the pattern's start.
fn copy_match(out: &mut [u8], at: usize, offset: usize, len: usize) {
    let src = at.saturating_sub(offset);
    let mut done = 0usize;
    while done < len {
        let chunk = (len.saturating_sub(done)).min(offset.saturating_add(done));
        let dst = at.saturating_add(done);
        if src.saturating_add(chunk) > dst || dst.saturating_add(chunk) > out.len() || chunk == 0 {
            return;
        }
        out.copy_within(src..src.saturating_add(chunk), dst);
        done = done.saturating_add(chunk);
    }
}

/// The length code after a match (protocol.md §5.3). `None` when the length already exceeds
/// `room`, checked while reading so a long run of extension groups stops early.
fn read_length(r: &mut BitReader<'_>, room: usize) -> Option<Result<usize, DecompressError>> {
    let len = match r.take(2) {
        Err(e) => return Some(Err(e)),
        Ok(0b00) => 2,
        Ok(0b01) => 3,
        Ok(0b10) => 4,
        Ok(_) => match r.take(2) {
            Err(e) => return Some(Err(e)),
            Ok(0b11) => {
                let mut len = 8usize;
                loop {
                    if len > room {
                        return None;
                    }
                    match r.take(4) {
                        Err(e) => return Some(Err(e)),
                        Ok(15) => len = len.saturating_add(15),
                        Ok(n) => break len.saturating_add(n as usize),
                    }
                }
            }
            Ok(n) => 5usize.saturating_add(n as usize),
        },
    };
    (len <= room).then_some(Ok(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::test_data::noise;

    /// protocol.md §5.3 vectors (produced with ocserv's lzs.c).
    fn vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
        let az: Vec<u8> = (b'A'..=b'Z').chain(b'A'..=b'Z').collect();
        vec![
            (b"a".to_vec(), vec![0x30, 0xE0, 0x00]),
            (vec![b'a'; 10], vec![0x30, 0xE0, 0x7C, 0x70, 0x00]),
            (
                b"abcabcabcabc".to_vec(),
                vec![0x30, 0x98, 0x8C, 0x78, 0x3F, 0x1C, 0x00],
            ),
            (
                vec![b'x'; 100],
                vec![0x3C, 0x60, 0x7F, 0xFF, 0xFF, 0xFC, 0x70, 0x00],
            ),
            (
                az,
                vec![
                    0x20, 0x90, 0x88, 0x64, 0x42, 0x29, 0x18, 0x8E, 0x48, 0x24, 0x92, 0x89, 0x64,
                    0xC2, 0x69, 0x38, 0x9E, 0x50, 0x28, 0x94, 0x8A, 0x65, 0x42, 0xA9, 0x58, 0xAE,
                    0x58, 0x2C, 0x96, 0xB3, 0x5F, 0xE7, 0x80,
                ],
            ),
        ]
    }

    fn compress_vec(c: &mut Compressor, input: &[u8]) -> Vec<u8> {
        let mut out = vec![0; input.len() * 9 / 8 + 4];
        let n = c.compress(input, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn decompress_vec(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
        let mut out = vec![0; limit];
        let n = decompress(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    #[test]
    fn vectors_decode() {
        for (plain, packed) in vectors() {
            assert_eq!(decompress_vec(&packed, 16384).unwrap(), plain);
        }
    }

    #[test]
    fn vectors_encode_byte_exactly() {
        let mut c = Compressor::new();
        for (plain, packed) in vectors() {
            assert_eq!(compress_vec(&mut c, &plain), packed, "input {plain:?}");
        }
    }

    #[test]
    fn empty_input_is_just_the_end_marker() {
        let mut c = Compressor::new();
        let packed = compress_vec(&mut c, b"");
        assert_eq!(packed, [0xC0, 0x00]);
        assert_eq!(decompress_vec(&packed, 10).unwrap(), b"");
    }

    /// Mostly repeats of a few earlier snippets, like headers and zero padding in packets.
    fn compressible(seed: u64, len: usize) -> Vec<u8> {
        let noise = noise(seed, len + 64);
        let mut out = Vec::with_capacity(len);
        let mut k = 0;
        while out.len() < len {
            let pick = noise[k % noise.len()];
            k += 1;
            if pick < 80 || out.len() < 4 {
                out.push(pick % 7);
            } else {
                let back = 1 + (pick as usize * 13) % out.len().min(3000);
                let run = 2 + (pick as usize % 40);
                for _ in 0..run {
                    let b = out[out.len() - back];
                    out.push(b);
                }
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn round_trips_every_length() {
        let mut c = Compressor::new();
        for seed in [1u64, 7, 0xDEAD_BEEF] {
            for len in 0..=2000 {
                for data in [noise(seed, len), compressible(seed, len)] {
                    let packed = compress_vec(&mut c, &data);
                    assert_eq!(
                        decompress_vec(&packed, len).unwrap(),
                        data,
                        "seed {seed} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_offsets_and_long_runs() {
        // A repeat 1400 bytes back (long offset form), then a run far longer than 15 × 15.
        let mut data = noise(3, 1500);
        data.extend_from_slice(&data.clone()[100..1400]);
        data.extend(std::iter::repeat_n(0u8, 5000));
        let mut c = Compressor::new();
        let packed = compress_vec(&mut c, &data);
        assert!(packed.len() < data.len() / 2);
        assert_eq!(decompress_vec(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn compressible_data_shrinks() {
        let mut c = Compressor::new();
        let zeros = [0u8; 1400];
        let packed = compress_vec(&mut c, &zeros);
        assert!(packed.len() < 200, "{} bytes", packed.len());
    }

    #[test]
    fn output_full_is_an_error() {
        let mut c = Compressor::new();
        let data = noise(5, 500);
        let mut out = [0u8; 499];
        assert_eq!(c.compress(&data, &mut out), Err(CompressError::OutputFull));
        // The state stays usable after a failed packet.
        assert_eq!(compress_vec(&mut c, b"a"), [0x30, 0xE0, 0x00]);
    }

    #[test]
    fn decoder_limits() {
        // Output limit: 10 × 'a' does not fit 9 bytes, exactly fits 10.
        let ten = [0x30, 0xE0, 0x7C, 0x70, 0x00];
        assert_eq!(decompress_vec(&ten, 9), Err(DecompressError::OutputFull(9)));
        assert_eq!(decompress_vec(&ten, 10).unwrap(), [b'a'; 10]);
        assert_eq!(decompress_vec(&ten, 0), Err(DecompressError::OutputFull(0)));
        // Every truncation of a valid stream is refused (the last byte is padding only).
        let az = &vectors()[4].1;
        for cut in 0..az.len() {
            assert_eq!(
                decompress_vec(&az[..cut], 100),
                Err(DecompressError::Truncated),
                "cut {cut}"
            );
        }
        // Match before anything was produced: `1 1 0000001` + length.
        assert_eq!(
            decompress_vec(&[0xC0, 0x80, 0x00], 100),
            Err(DecompressError::OffsetTooFar {
                offset: 1,
                produced: 0
            })
        );
        // Long form with offset 0: `1 0 00000000000`.
        assert_eq!(
            decompress_vec(&[0x80, 0x00, 0x00], 100),
            Err(DecompressError::ZeroOffset)
        );
        // Literal 'a', then a long offset of 2 with only 1 byte produced.
        // bits: 0 01100001 | 1 0 00000000010 | 00 | 1 1 0000000
        assert_eq!(
            decompress_vec(&[0x30, 0xC0, 0x08, 0xC0, 0x00], 100),
            Err(DecompressError::OffsetTooFar {
                offset: 2,
                produced: 1
            })
        );
        // An endless length (all ones) stops at the output limit, not at the end of input.
        let mut endless = vec![0x30, 0xE0, 0x7F];
        endless.extend(std::iter::repeat_n(0xFF, 10_000));
        assert_eq!(
            decompress_vec(&endless, 16384),
            Err(DecompressError::OutputFull(16384))
        );
        assert_eq!(decompress_vec(&[], 100), Err(DecompressError::Truncated));
    }

    #[test]
    fn trailing_bytes_after_the_end_marker_are_ignored() {
        assert_eq!(
            decompress_vec(&[0x30, 0xE0, 0x00, 0xFF, 0xFF], 10).unwrap(),
            b"a"
        );
    }

    #[test]
    fn state_survives_many_packets() {
        let mut c = Compressor::new();
        // Force the reset path by pretending 4 GiB of packets went by.
        c.end = u32::MAX - 1000;
        for seed in 0..8 {
            let data = compressible(seed, 1400);
            let packed = compress_vec(&mut c, &data);
            assert_eq!(decompress_vec(&packed, 1400).unwrap(), data);
        }
        assert!(c.base < 1 << 20, "base was reset");
    }
}
