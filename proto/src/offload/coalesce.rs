//! Joining the client's consecutive TCP segments into one large packet for one tun write, as
//! the kernel's GRO does for a network card: same flow, same headers but the sequence number,
//! each segment starting where the previous ended, all but the last of the first one's size.
//! The joined packet goes to the tun device with a `virtio_net_hdr` that says "TCP GSO, segment
//! size N, checksum partial", so the local stack handles it once (and re-cuts it if it forwards
//! it). Only IPv4 TCP data segments with no flags but ACK (and PSH on the last) are joined;
//! everything else goes through alone, and the pending packet is written before it so that no
//! packet overtakes another.

use super::checksum::{fold, pseudo_header, sum};
use super::segment::{addresses, get16, get32, put16};
use super::{OffloadError, VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, PLAIN, VNET_HDR_LEN};

const PROTO_TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// The IPv4 total-length limit.
const MAX_PACKET: usize = 65_535;

/// The packet being joined, with room for its `virtio_net_hdr` in front.
#[derive(Debug)]
pub struct Coalescer {
    /// `VNET_HDR_LEN` header bytes, then the joined packet.
    buf: Box<[u8]>,
    /// Bytes of the packet in `buf` (after the header); 0 = nothing pending.
    len: usize,
    /// Segments joined.
    count: usize,
    /// IP + TCP header length of the flow.
    headers: usize,
    ip_len: usize,
    /// Payload length of the first segment: the segment size of the joined packet.
    mss: usize,
    next_seq: u32,
    /// A shorter segment or one with PSH ended the run.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    pub fn new() -> Self {
        Self {
            buf: vec![0; VNET_HDR_LEN.saturating_add(MAX_PACKET)].into_boxed_slice(),
            len: 0,
            count: 0,
            headers: 0,
            ip_len: 0,
            mss: 0,
            next_seq: 0,
            closed: false,
        }
    }

    /// Take `packet` into the pending one (or start one with it). `false`: it cannot be joined
    /// now; write [`Self::take`] first, then offer it again; a second `false` means it goes alone.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let Some(seg) = Segment::parse(packet) else {
            return false;
        };
        if self.len == 0 {
            return self.start(packet, &seg);
        }
        if !self.joins(packet, &seg) {
            return false;
        }
        let Some(payload) = packet.get(seg.headers..) else {
            return false;
        };
        let at = VNET_HDR_LEN.saturating_add(self.len);
        let Some(dst) = self.buf.get_mut(at..at.saturating_add(payload.len())) else {
            return false;
        };
        dst.copy_from_slice(payload);
        self.len = self.len.saturating_add(payload.len());
        self.count = self.count.saturating_add(1);
        self.next_seq = seg
            .seq
            .wrapping_add(u32::try_from(payload.len()).unwrap_or(0));
        if payload.len() < self.mss || seg.flags & TCP_PSH != 0 {
            self.closed = true;
            if seg.flags & TCP_PSH != 0 {
                if let Some(flags) = self
                    .buf
                    .get_mut(VNET_HDR_LEN.saturating_add(self.ip_len).saturating_add(13))
                {
                    *flags |= TCP_PSH;
                }
            }
        }
        true
    }

    /// Whether a packet is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pending write (header and packet), ready for the tun device, and nothing pending
    /// afterwards. `None` when nothing is pending.
    pub fn take(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let end = VNET_HDR_LEN.saturating_add(len);
        let hdr = if self.count > 1 {
            self.finish_joined(len).ok()?
        } else {
            PLAIN
        };
        let out = self.buf.get_mut(..end)?;
        out.get_mut(..VNET_HDR_LEN)?.copy_from_slice(&hdr);
        Some(out)
    }

    fn start(&mut self, packet: &[u8], seg: &Segment) -> bool {
        let end = VNET_HDR_LEN.saturating_add(packet.len());
        let Some(dst) = self.buf.get_mut(VNET_HDR_LEN..end) else {
            return false;
        };
        dst.copy_from_slice(packet);
        let payload = packet.len().saturating_sub(seg.headers);
        self.len = packet.len();
        self.count = 1;
        self.headers = seg.headers;
        self.ip_len = seg.ip_len;
        self.mss = payload;
        self.next_seq = seg.seq.wrapping_add(u32::try_from(payload).unwrap_or(0));
        self.closed = seg.flags & TCP_PSH != 0;
        true
    }

    /// Whether `packet` continues the pending run.
    fn joins(&self, packet: &[u8], seg: &Segment) -> bool {
        let payload = packet.len().saturating_sub(seg.headers);
        if self.closed
            || seg.headers != self.headers
            || seg.seq != self.next_seq
            || payload > self.mss
            || self.len.saturating_add(payload) > MAX_PACKET
        {
            return false;
        }
        let Some(first) = self
            .buf
            .get(VNET_HDR_LEN..VNET_HDR_LEN.saturating_add(self.headers))
        else {
            return false;
        };
        let ip = self.ip_len;
        // Everything but IP total length/id/checksum and TCP seq/PSH/checksum must match.
        let same = |range: std::ops::Range<usize>| first.get(range.clone()) == packet.get(range);
        same(0..2)
            && same(6..10)
            && same(12..ip)
            && same(ip..ip.saturating_add(4))
            && same(ip.saturating_add(8)..ip.saturating_add(13))
            && same(ip.saturating_add(14)..ip.saturating_add(16))
            && same(ip.saturating_add(18)..self.headers)
            && first.get(ip.saturating_add(13)).map(|f| f & !TCP_PSH) == Some(TCP_ACK)
    }

    /// Fix the first header for the joined length and build the GSO header.
    fn finish_joined(&mut self, len: usize) -> Result<[u8; VNET_HDR_LEN], OffloadError> {
        let packet = self
            .buf
            .get_mut(VNET_HDR_LEN..VNET_HDR_LEN.saturating_add(len))
            .ok_or(OffloadError::NoRoom)?;
        let ip = self.ip_len;
        put16(packet, 2, len)?;
        put16(packet, 10, 0)?;
        let ip_sum = !fold(sum(packet.get(..ip).ok_or(OffloadError::Malformed)?, 0));
        put16(packet, 10, usize::from(ip_sum))?;
        // A partial checksum holds the pseudo-header sum, uncomplemented (virtio_net.h).
        let tcp_len = len.saturating_sub(ip);
        let (src, dst) = addresses(packet, false)?;
        let pseudo = fold(pseudo_header(
            src,
            dst,
            PROTO_TCP,
            u32::try_from(tcp_len).unwrap_or(0),
        ));
        put16(packet, ip.saturating_add(16), usize::from(pseudo))?;
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: u16::try_from(self.headers).map_err(|_| OffloadError::Malformed)?,
            gso_size: u16::try_from(self.mss).map_err(|_| OffloadError::Malformed)?,
            csum_start: u16::try_from(ip).map_err(|_| OffloadError::Malformed)?,
            csum_offset: 16,
        };
        Ok(hdr.encode())
    }
}

/// What joining needs to know of one packet: IPv4, not a fragment, TCP with data, flags ACK
/// (+PSH) only.
struct Segment {
    ip_len: usize,
    headers: usize,
    seq: u32,
    flags: u8,
}

impl Segment {
    fn parse(packet: &[u8]) -> Option<Self> {
        let first = *packet.first()?;
        if first >> 4 != 4 || packet.get(9) != Some(&PROTO_TCP) {
            return None;
        }
        let ip_len = usize::from(first & 0x0f).saturating_mul(4);
        let total = usize::from(get16(packet, 2).ok()?);
        // More-fragments flag or a fragment offset: not a whole segment.
        let frag = get16(packet, 6).ok()?;
        if ip_len < 20 || total != packet.len() || frag & 0x3fff != 0 {
            return None;
        }
        let doff = usize::from(packet.get(ip_len.checked_add(12)?)? >> 4).saturating_mul(4);
        let headers = ip_len.checked_add(doff)?;
        let flags = *packet.get(ip_len.checked_add(13)?)?;
        if doff < 20 || headers >= packet.len() || flags & !TCP_PSH != TCP_ACK {
            return None;
        }
        let seq = get32(packet, ip_len.checked_add(4)?).ok()?;
        Some(Self {
            ip_len,
            headers,
            seq,
            flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::checksum::finish;
    use super::super::segment::Segments;
    use super::*;

    fn tcp4(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut p = super::super::segment::tests::tcp4(payload, flags);
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[36..38].fill(0);
        let acc = pseudo_header(&p[12..16], &p[16..20], 6, (p.len() - 20) as u32);
        let tcp = finish(sum(&p[20..], acc));
        p[36..38].copy_from_slice(&tcp.to_be_bytes());
        p
    }

    #[test]
    fn a_run_of_segments_becomes_one_gso_write_that_cuts_back_into_them() {
        let mut c = Coalescer::new();
        let originals: Vec<Vec<u8>> = (0..5u32)
            .map(|i| {
                let len = if i == 4 { 300 } else { 1000 };
                tcp4(1000 + 1000 * i, &vec![i as u8; len], 0x10)
            })
            .collect();
        for p in &originals {
            assert!(c.push(p));
        }
        // The short one closed the run.
        assert!(!c.push(&tcp4(5300, &[9; 1000], 0x10)));
        let write = c.take().unwrap().to_vec();
        assert!(c.is_empty());
        let (hdr, packet) = VnetHdr::split(&write).unwrap();
        assert_eq!(hdr.gso_type, GSO_TCPV4);
        assert_eq!(hdr.flags, F_NEEDS_CSUM);
        assert_eq!(
            (hdr.gso_size, hdr.hdr_len, hdr.csum_start, hdr.csum_offset),
            (1000, 40, 20, 16)
        );
        assert_eq!(packet.len(), 40 + 4300);
        assert_eq!(fold(sum(&packet[..20], 0)), 0xffff);
        // Cut it again as the kernel would: the original segments come back (IP id aside).
        let mut segs = Segments::new(&hdr, packet).unwrap();
        let mut buf = vec![0u8; 2000];
        for orig in &originals {
            let n = segs.next_into(&mut buf).unwrap().unwrap();
            let mut got = buf[..n].to_vec();
            got[4..6].copy_from_slice(&orig[4..6]);
            got[10..12].copy_from_slice(&orig[10..12]);
            assert_eq!(&got[20..], &orig[20..]);
        }
    }

    #[test]
    fn a_lone_segment_is_written_plain_and_unchanged() {
        let mut c = Coalescer::new();
        let p = tcp4(1, &[1; 500], 0x18);
        assert!(c.push(&p));
        let write = c.take().unwrap();
        assert_eq!(&write[..VNET_HDR_LEN], &PLAIN);
        assert_eq!(&write[VNET_HDR_LEN..], &p[..]);
        assert!(c.take().is_none());
    }

    #[test]
    fn gaps_other_flows_and_other_flags_are_not_joined() {
        let mut c = Coalescer::new();
        assert!(c.push(&tcp4(0, &[1; 100], 0x10)));
        assert!(!c.push(&tcp4(101, &[1; 100], 0x10)), "gap in sequence");
        assert!(
            !c.push(&tcp4(100, &[1; 101], 0x10)),
            "longer than the first"
        );
        assert!(!c.push(&tcp4(100, &[1; 100], 0x11)), "FIN");
        let mut other = tcp4(100, &[1; 100], 0x10);
        other[22] ^= 1;
        assert!(!c.push(&other), "other port");
        let mut window = tcp4(100, &[1; 100], 0x10);
        window[34] ^= 1;
        assert!(!c.push(&window), "other window");
        assert!(c.push(&tcp4(100, &[1; 100], 0x18)), "PSH ends the run");
        assert!(!c.push(&tcp4(200, &[1; 100], 0x10)));
        let write = c.take().unwrap();
        assert_eq!(
            write[VNET_HDR_LEN + 33],
            0x18,
            "PSH carried to the joined header"
        );
        assert!(!c.push(&[0x60; 60]), "IPv6 goes alone");
        assert!(!c.push(&tcp4(0, &[], 0x10)), "pure ACK goes alone");
        assert!(!c.push(&[]));
    }
}
