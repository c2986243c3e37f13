//! The Internet checksum (RFC 1071) over big-endian 16-bit words, in pieces: [`sum`] adds a
//! slice to a running total (slices must start at even offsets of the checksummed data, except
//! that the last may have odd length), [`finish`] folds and complements it.

/// Add the ones' complement sum of `data` to `acc` (not folded).
///
/// The bulk is summed as little-endian 64-bit words with end-around carry, four independent
/// lanes (a payload of 1400 bytes is the hot case): RFC 1071 §2(B), the sum is byte-order
/// independent up to one final byte swap, which [`swap_fold`] does.
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let w = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
            let (s, carry) = lane.overflowing_add(w);
            *lane = s.wrapping_add(u64::from(carry));
        }
    }
    let mut le = 0u64;
    for lane in lanes {
        le = add_carry(le, lane);
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for word in &mut words {
        le = add_carry(
            le,
            u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default()),
        );
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for pair in &mut pairs {
        le = add_carry(
            le,
            u64::from(u16::from_le_bytes(
                <[u8; 2]>::try_from(pair).unwrap_or_default(),
            )),
        );
    }
    if let Some(&last) = pairs.remainder().first() {
        le = add_carry(le, u64::from(last));
    }
    acc.wrapping_add(u64::from(swap_fold(le)))
}

/// End-around-carry addition.
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u64::from(carry))
}

/// Fold a little-endian-domain sum to 16 bits and swap it into network order.
fn swap_fold(le: u64) -> u16 {
    fold(le).swap_bytes()
}

/// Fold a running total to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff).wrapping_add(acc >> 16);
    }
    u16::try_from(acc).unwrap_or(u16::MAX)
}

/// The checksum to store: the complement of the folded sum.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The pseudo-header sum for TCP/UDP over IPv4 (RFC 793 §3.1) or IPv6 (RFC 8200 §8.1):
/// addresses, protocol and the upper-layer length.
pub fn pseudo_header(src: &[u8], dst: &[u8], protocol: u8, length: u32) -> u64 {
    let acc = sum(dst, sum(src, 0));
    acc.wrapping_add(u64::from(protocol))
        .wrapping_add(u64::from(length >> 16))
        .wrapping_add(u64::from(length & 0xffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn pieces_add_up_and_odd_tails_are_padded() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1501).collect();
        let whole = fold(sum(&data, 0));
        let (a, b) = data.split_at(600);
        assert_eq!(fold(sum(b, sum(a, 0))), whole);
        let mut naive = 0u32;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            naive += hi | lo;
        }
        while naive >> 16 != 0 {
            naive = (naive & 0xffff) + (naive >> 16);
        }
        assert_eq!(u32::from(whole), naive);
    }

    #[test]
    fn every_length_matches_the_word_by_word_sum() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8 ^ 0xa5).collect();
        for len in 0..data.len() {
            let mut naive = 0u64;
            for pair in data[..len].chunks(2) {
                naive += u64::from(pair[0]) << 8 | pair.get(1).map_or(0, |&b| u64::from(b));
            }
            assert_eq!(fold(sum(&data[..len], 0)), fold(naive), "length {len}");
        }
    }

    #[test]
    fn ipv4_header_checksum_vector() {
        // A well-known IPv4 header (Wikipedia's example), checksum b861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&hdr, 0)), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(fold(sum(&hdr, 0)), 0xffff);
    }
}
