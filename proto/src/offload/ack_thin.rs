//! Dropping pure TCP ACKs that the next packet, a later ACK of the same connection, makes
//! redundant: ACK filtering (RFC 3449 §5.2.1), with rules in the spirit of the conservative
//! mode of Linux's CAKE qdisc `ack-filter`.
//!
//! Why: in a bulk download the client's ACKs arrive a dozen per burst of datagrams, and every one
//! written to the tun device runs the sender's whole ACK processing in the worker (measured: over
//! a quarter of its CPU in a DTLS download). Of a run of ACKs only the newest tells the sender
//! anything it uses: TCP counts the bytes an ACK covers, not the ACKs (RFC 3465; Linux handles
//! such "stretch ACKs" in its congestion control), and with SACK its loss detection counts SACKed
//! segments (RFC 6675, RACK), not duplicate ACKs.
//!
//! An ACK is dropped only when the packet right after it (nothing in between: [`supersedes`]'s
//! caller sees to that) is a pure ACK of the same connection, in the same direction, with the
//! same addresses, ports, sequence number and IPv4 TOS / IPv6 traffic class (ECN marks), that
//! says everything the older one said and more: an acknowledgement number at least as high, every
//! SACK block of the older one either acknowledged by it or inside one of its own blocks, and a
//! higher number or different SACK blocks. So duplicate ACKs without SACK (they drive fast
//! retransmit) are never dropped, nor an ACK reporting a duplicate segment (D-SACK, RFC 2883),
//! anything with payload, any flag but ACK (SYN, FIN, RST, PSH, URG, ECE, CWR, AE), TCP options
//! other than timestamps, SACK and padding (so never a window-scale change), IPv4 options or
//! fragments, IPv6 extension headers.

use super::segment::{get16, get32};

const PROTO_TCP: u8 = 6;
/// The TCP flags byte of a pure ACK: ACK alone.
const ONLY_ACK: u8 = 0x10;
/// The largest pure ACK we look at: an IPv6 header and a TCP header with the most options.
pub const MAX_PURE_ACK: usize = 40 + 60;

/// What the rules compare of one pure ACK.
struct PureAck<'a> {
    v6: bool,
    /// Both addresses, as they appear in the header.
    addresses: &'a [u8],
    /// IPv4 TOS byte, IPv6 traffic class.
    class: u8,
    /// Source and destination port.
    ports: &'a [u8],
    seq: u32,
    ack: u32,
    sack: Sack,
}

/// The SACK blocks of an ACK, in the order sent (at most 4 fit in the options).
#[derive(Default, PartialEq, Eq)]
struct Sack {
    blocks: [(u32, u32); 4],
    count: usize,
}

impl Sack {
    fn blocks(&self) -> &[(u32, u32)] {
        self.blocks.get(..self.count).unwrap_or_default()
    }
}

/// `a <= b` in sequence-number arithmetic (within half the space).
fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < 1 << 31
}

impl<'a> PureAck<'a> {
    fn parse(packet: &'a [u8]) -> Option<Self> {
        if packet.len() > MAX_PURE_ACK {
            return None;
        }
        let first = *packet.first()?;
        let (v6, ip_len, class, addresses) = match first >> 4 {
            4 => {
                // No IP options; total length exact; not a fragment (DF alone is fine).
                let frag = get16(packet, 6).ok()?;
                if first != 0x45
                    || usize::from(get16(packet, 2).ok()?) != packet.len()
                    || frag & 0x3fff != 0
                    || *packet.get(9)? != PROTO_TCP
                {
                    return None;
                }
                (false, 20, *packet.get(1)?, packet.get(12..20)?)
            }
            6 => {
                // TCP right after the fixed header (no extension headers); payload length exact.
                if usize::from(get16(packet, 4).ok()?) != packet.len().checked_sub(40)?
                    || *packet.get(6)? != PROTO_TCP
                {
                    return None;
                }
                let class = (first << 4) | (*packet.get(1)? >> 4);
                (true, 40, class, packet.get(8..40)?)
            }
            _ => return None,
        };
        let tcp = packet.get(ip_len..)?;
        let doff = usize::from(*tcp.get(12)? >> 4).saturating_mul(4);
        // No payload; reserved bits and AE clear; ACK and nothing else.
        if doff < 20 || doff != tcp.len() || *tcp.get(12)? & 0x0f != 0 || *tcp.get(13)? != ONLY_ACK
        {
            return None;
        }
        let ack = get32(tcp, 8).ok()?;
        let sack = options(tcp.get(20..)?)?;
        // A duplicate-segment report (D-SACK: the first block below the ACK, or inside the
        // second block) helps the sender undo a spurious retransmission: never dropped.
        if let Some(&(left, right)) = sack.blocks().first() {
            let inside_second = sack
                .blocks()
                .get(1)
                .is_some_and(|&(l, r)| seq_le(l, left) && seq_le(right, r));
            if seq_le(right, ack) || inside_second {
                return None;
            }
        }
        Some(Self {
            v6,
            addresses,
            class,
            ports: tcp.get(..4)?,
            seq: get32(tcp, 4).ok()?,
            ack,
            sack,
        })
    }

    /// Whether this ACK says all `older` said (see the module comment).
    fn covers(&self, older: &Self) -> bool {
        older.sack.blocks().iter().all(|&(left, right)| {
            seq_le(right, self.ack)
                || self
                    .sack
                    .blocks()
                    .iter()
                    .any(|&(l, r)| seq_le(l, left) && seq_le(right, r))
        })
    }
}

/// The SACK blocks, when the TCP options hold nothing but timestamps, SACK, NOP and
/// end-of-list padding; `None` otherwise.
fn options(mut options: &[u8]) -> Option<Sack> {
    const EOL: u8 = 0;
    const NOP: u8 = 1;
    const SACK: u8 = 5;
    const TIMESTAMPS: u8 = 8;
    let mut sack = Sack::default();
    while let Some((&kind, rest)) = options.split_first() {
        match kind {
            EOL => return rest.iter().all(|&b| b == 0).then_some(sack),
            NOP => options = rest,
            TIMESTAMPS if rest.first() == Some(&10) => options = options.get(10..)?,
            SACK if sack.count == 0 => {
                let len = usize::from(*rest.first()?);
                let blocks = options.get(2..len)?;
                if len < 10 || len.saturating_sub(2) % 8 != 0 {
                    return None;
                }
                for block in blocks.chunks_exact(8) {
                    let left = get32(block, 0).ok()?;
                    let right = get32(block, 4).ok()?;
                    *sack.blocks.get_mut(sack.count)? = (left, right);
                    sack.count = sack.count.saturating_add(1);
                }
                options = options.get(len..)?;
            }
            _ => return None,
        }
    }
    Some(sack)
}

/// Whether `packet` is a pure ACK these rules may ever drop (worth holding back to see whether
/// the next packet supersedes it).
pub fn is_pure_ack(packet: &[u8]) -> bool {
    PureAck::parse(packet).is_some()
}

/// Whether `newer`, the packet right after the pure ACK `older`, makes `older` redundant.
pub fn supersedes(older: &[u8], newer: &[u8]) -> bool {
    let (Some(old), Some(new)) = (PureAck::parse(older), PureAck::parse(newer)) else {
        return false;
    };
    old.v6 == new.v6
        && old.addresses == new.addresses
        && old.ports == new.ports
        && old.class == new.class
        && old.seq == new.seq
        && seq_le(old.ack, new.ack)
        && new.covers(&old)
        && (new.ack != old.ack || new.sack != old.sack)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pure IPv4 ACK with the timestamps option (what Linux sends), `ack` as given.
    fn ack4(ack: u32) -> Vec<u8> {
        let mut p = vec![0u8; 52];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&52u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 168, 99, 137]);
        p[16..20].copy_from_slice(&[192, 168, 99, 1]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        p[24..28].copy_from_slice(&7u32.to_be_bytes());
        p[28..32].copy_from_slice(&ack.to_be_bytes());
        p[32] = 0x80;
        p[33] = ONLY_ACK;
        p[34..36].copy_from_slice(&500u16.to_be_bytes());
        p[40..52].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        p
    }

    fn ack6(ack: u32) -> Vec<u8> {
        let v4 = ack4(ack);
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&32u16.to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&v4[20..]);
        p
    }

    #[test]
    fn a_later_cumulative_ack_of_the_same_connection_supersedes() {
        assert!(is_pure_ack(&ack4(1000)));
        assert!(supersedes(&ack4(1000), &ack4(2448)));
        assert!(supersedes(&ack6(1000), &ack6(2448)));
        // Across the wrap of the sequence space.
        assert!(supersedes(&ack4(u32::MAX - 10), &ack4(20)));
        // A window update alone (same number, new window) is a duplicate: kept.
        let mut wider = ack4(1000);
        wider[34..36].copy_from_slice(&900u16.to_be_bytes());
        assert!(!supersedes(&ack4(1000), &wider));
    }

    #[test]
    fn duplicates_older_numbers_and_other_connections_are_kept() {
        assert!(!supersedes(&ack4(1000), &ack4(1000)));
        assert!(!supersedes(&ack4(2000), &ack4(1000)));
        assert!(!supersedes(&ack4(1000), &ack6(2000)));
        let mut other_port = ack4(2000);
        other_port[20..22].copy_from_slice(&40001u16.to_be_bytes());
        assert!(!supersedes(&ack4(1000), &other_port));
        let mut other_host = ack4(2000);
        other_host[15] = 138;
        assert!(!supersedes(&ack4(1000), &other_host));
        let mut reverse = ack4(2000);
        reverse[20..24].copy_from_slice(&[0x14, 0x51, 0x9c, 0x40]);
        assert!(!supersedes(&ack4(1000), &reverse));
        // The receiver sent data in between (its sequence number moved).
        let mut moved = ack4(2000);
        moved[24..28].copy_from_slice(&8u32.to_be_bytes());
        assert!(!supersedes(&ack4(1000), &moved));
        // An ECN mark on either one.
        let mut marked = ack4(2000);
        marked[1] = 0x03;
        assert!(!supersedes(&ack4(1000), &marked));
    }

    #[test]
    fn only_pure_acks_with_timestamps_sack_and_padding_qualify() {
        for flags in [0x11, 0x18, 0x12, 0x14, 0x30, 0x50, 0x90] {
            let mut p = ack4(1000);
            p[33] = flags;
            assert!(!is_pure_ack(&p), "flags {flags:#x}");
        }
        let mut ae = ack4(1000);
        ae[32] |= 0x01;
        assert!(!is_pure_ack(&ae));
        // A window-scale option (kind 3) instead of the timestamps.
        let mut scale = ack4(1000);
        scale[40..52].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 7]);
        assert!(!is_pure_ack(&scale));
        assert!(!supersedes(&ack4(500), &scale));
        // No options at all, and NOP/EOL padding only, are fine.
        let mut bare = ack4(1000);
        bare.truncate(40);
        bare[2..4].copy_from_slice(&40u16.to_be_bytes());
        bare[32] = 0x50;
        assert!(is_pure_ack(&bare));
        let mut padded = ack4(1000);
        padded[40..52].copy_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(is_pure_ack(&padded));
        let mut junk_after_eol = padded.clone();
        junk_after_eol[51] = 5;
        assert!(!is_pure_ack(&junk_after_eol));
        // A truncated timestamps option.
        let mut short = ack4(1000);
        short[40..52].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 8, 10]);
        assert!(!is_pure_ack(&short));
        // Payload, IP options, a fragment, a wrong length.
        let mut data = ack4(1000);
        data.push(0);
        data[2..4].copy_from_slice(&53u16.to_be_bytes());
        assert!(!is_pure_ack(&data));
        let mut options = ack4(1000);
        options[0] = 0x46;
        assert!(!is_pure_ack(&options));
        let mut fragment = ack4(1000);
        fragment[6] = 0x20;
        assert!(!is_pure_ack(&fragment));
        let mut wrong_len = ack4(1000);
        wrong_len[3] = 60;
        assert!(!is_pure_ack(&wrong_len));
        let mut ext = ack6(1000);
        ext[6] = 0;
        assert!(!is_pure_ack(&ext));
        assert!(!is_pure_ack(&[]));
        assert!(!is_pure_ack(&[0x45]));
    }

    /// A pure IPv4 ACK with timestamps and the given SACK blocks.
    fn sack4(ack: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut p = ack4(ack);
        p.extend_from_slice(&[1, 1, 5, (2 + 8 * blocks.len()) as u8]);
        for (left, right) in blocks {
            p.extend_from_slice(&left.to_be_bytes());
            p.extend_from_slice(&right.to_be_bytes());
        }
        let len = p.len();
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[32] = (((len - 20) / 4) << 4) as u8;
        p
    }

    #[test]
    fn a_sack_is_dropped_only_when_the_next_ack_says_all_it_said_and_more() {
        let older = sack4(1000, &[(3000, 4000)]);
        assert!(is_pure_ack(&older));
        // The hole filled: the number passes the block.
        assert!(supersedes(&older, &ack4(4000)));
        // A duplicate ACK whose block grew, or that adds a block.
        assert!(supersedes(&older, &sack4(1000, &[(3000, 5448)])));
        assert!(supersedes(
            &older,
            &sack4(1000, &[(6000, 7000), (3000, 4000)])
        ));
        // The first hole filled, a block above stays.
        assert!(supersedes(&older, &sack4(2000, &[(3000, 4000)])));
        // Not said again: the block is gone though the number is below it, or it shrank.
        assert!(!supersedes(&older, &ack4(2000)));
        assert!(!supersedes(&older, &sack4(1000, &[(3000, 3500)])));
        assert!(!supersedes(&older, &sack4(1000, &[(6000, 7000)])));
        // Nothing new: the very same report again.
        assert!(!supersedes(&older, &sack4(1000, &[(3000, 4000)])));
        // Plain duplicate ACKs are never dropped; a SACK after one may drop it.
        assert!(!supersedes(&ack4(1000), &ack4(1000)));
        assert!(supersedes(&ack4(1000), &sack4(1000, &[(3000, 4000)])));
    }

    #[test]
    fn duplicate_segment_reports_are_kept() {
        // D-SACK below the number, and inside the second block (RFC 2883 examples).
        let below = sack4(4000, &[(3000, 3500)]);
        let inside = sack4(1000, &[(3000, 3500), (3000, 4000)]);
        assert!(!is_pure_ack(&below));
        assert!(!is_pure_ack(&inside));
        assert!(!supersedes(&below, &ack4(9000)));
        assert!(!supersedes(&inside, &sack4(1000, &[(3000, 5000)])));
        // Malformed SACK options.
        let mut odd = sack4(1000, &[(3000, 4000)]);
        odd[55] = 9;
        assert!(!is_pure_ack(&odd));
        let mut long = sack4(1000, &[(3000, 4000)]);
        long[55] = 18;
        assert!(!is_pure_ack(&long));
    }
}
