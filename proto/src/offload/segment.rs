//! Cutting one tun read into the packets that go to the client: a large TCP packet (GSO,
//! `TUN_F_TSO4/6`) into segments of `gso_size` payload bytes with their own IP and TCP headers
//! and checksums, as the kernel's `tcp_gso_segment` would; a packet with a partial checksum
//! (`F_NEEDS_CSUM`, `TUN_F_CSUM`) completed; anything else passed as it is. Each segment is
//! written into a buffer the caller chooses (the DTLS or CSTP send slot), so the payload is copied
//! once, with its checksum computed on the way.

use super::checksum::{finish, pseudo_header, sum};
use super::{OffloadError, VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6};

const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The segments of one tun read, produced one at a time by [`Segments::next_into`].
#[derive(Debug)]
pub struct Segments<'a> {
    packet: &'a [u8],
    kind: Kind,
    /// Payload bytes already emitted (TCP), or whether the single packet was emitted (others).
    emitted: usize,
    index: u16,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Copied as it is.
    Plain,
    /// Copied, then the checksum at `start + offset` completed over `start..`.
    Partial { start: usize, offset: usize },
    /// Cut into TCP segments.
    Tcp(TcpLayout),
}

#[derive(Debug, Clone, Copy)]
struct TcpLayout {
    v6: bool,
    ip_len: usize,
    /// IP plus TCP header length.
    headers: usize,
    mss: usize,
}

impl<'a> Segments<'a> {
    /// Plan the segments of `packet` as described by `hdr`.
    pub fn new(hdr: &VnetHdr, packet: &'a [u8]) -> Result<Self, OffloadError> {
        let kind = match hdr.gso_type & !GSO_ECN {
            GSO_NONE if hdr.flags & F_NEEDS_CSUM != 0 => {
                let start = usize::from(hdr.csum_start);
                let offset = usize::from(hdr.csum_offset);
                let end = start
                    .checked_add(offset)
                    .and_then(|f| f.checked_add(2))
                    .ok_or(OffloadError::ChecksumOutOfRange)?;
                if end > packet.len() {
                    return Err(OffloadError::ChecksumOutOfRange);
                }
                Kind::Partial { start, offset }
            }
            GSO_NONE => Kind::Plain,
            GSO_TCPV4 | GSO_TCPV6 => Kind::Tcp(tcp_layout(packet, hdr.gso_size)?),
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        Ok(Self {
            packet,
            kind,
            emitted: 0,
            index: 0,
            done: false,
        })
    }

    /// Write the next segment to the start of `out` and return its length; `None` when all
    /// were written.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        if self.done {
            return None;
        }
        let result = match self.kind {
            Kind::Plain => {
                self.done = true;
                copy(self.packet, out)
            }
            Kind::Partial { start, offset } => {
                self.done = true;
                copy(self.packet, out).and_then(|n| {
                    complete_partial(out.get_mut(..n).ok_or(OffloadError::NoRoom)?, start, offset)
                        .map(|()| n)
                })
            }
            Kind::Tcp(layout) => self.next_tcp(layout, out),
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }

    fn next_tcp(&mut self, l: TcpLayout, out: &mut [u8]) -> Result<usize, OffloadError> {
        let payload = self
            .packet
            .get(l.headers..)
            .ok_or(OffloadError::Malformed)?;
        let rest = payload.get(self.emitted..).ok_or(OffloadError::Malformed)?;
        let chunk = rest.get(..l.mss.min(rest.len())).unwrap_or(rest);
        let last = chunk.len() == rest.len();
        let total = l
            .headers
            .checked_add(chunk.len())
            .ok_or(OffloadError::NoRoom)?;
        let seg = out.get_mut(..total).ok_or(OffloadError::NoRoom)?;
        let (head, body) = seg.split_at_mut(l.headers);
        head.copy_from_slice(
            self.packet
                .get(..l.headers)
                .ok_or(OffloadError::Malformed)?,
        );
        body.copy_from_slice(chunk);

        let tcp_len = total.checked_sub(l.ip_len).ok_or(OffloadError::Malformed)?;
        if l.v6 {
            put16(seg, 4, tcp_len)?;
        } else {
            put16(seg, 2, total)?;
            let id = get16(seg, 4)?.wrapping_add(self.index);
            put16(seg, 4, usize::from(id))?;
            put16(seg, 10, 0)?;
            let ip_sum = finish(sum(seg.get(..l.ip_len).ok_or(OffloadError::Malformed)?, 0));
            put16(seg, 10, usize::from(ip_sum))?;
        }
        let seq_at = l.ip_len.checked_add(4).ok_or(OffloadError::Malformed)?;
        let seq = get32(seg, seq_at)?.wrapping_add(u32::try_from(self.emitted).unwrap_or(0));
        put32(seg, seq_at, seq)?;
        let flags_at = l.ip_len.checked_add(13).ok_or(OffloadError::Malformed)?;
        let flags = seg.get_mut(flags_at).ok_or(OffloadError::Malformed)?;
        if !last {
            *flags &= !(TCP_FIN | TCP_PSH);
        }
        if self.index > 0 {
            *flags &= !TCP_CWR;
        }
        let csum_at = l.ip_len.checked_add(16).ok_or(OffloadError::Malformed)?;
        put16(seg, csum_at, 0)?;
        let (src, dst) = addresses(seg, l.v6)?;
        let acc = pseudo_header(src, dst, PROTO_TCP, u32::try_from(tcp_len).unwrap_or(0));
        let tcp_sum = finish(sum(
            seg.get(l.ip_len..).ok_or(OffloadError::Malformed)?,
            acc,
        ));
        put16(seg, csum_at, usize::from(tcp_sum))?;

        self.emitted = self.emitted.saturating_add(chunk.len());
        self.index = self.index.wrapping_add(1);
        self.done = last;
        Ok(total)
    }
}

/// Where the IP and TCP headers end, for a GSO TCP packet.
fn tcp_layout(packet: &[u8], gso_size: u16) -> Result<TcpLayout, OffloadError> {
    if gso_size == 0 {
        return Err(OffloadError::ZeroSegmentSize);
    }
    let first = *packet.first().ok_or(OffloadError::Malformed)?;
    let (v6, ip_len) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f).saturating_mul(4);
            if ihl < 20 || packet.get(9) != Some(&PROTO_TCP) {
                return Err(OffloadError::Malformed);
            }
            (false, ihl)
        }
        6 => {
            match packet.get(6) {
                Some(&PROTO_TCP) => {}
                Some(_) => return Err(OffloadError::Ipv6Extensions),
                None => return Err(OffloadError::Malformed),
            }
            (true, 40)
        }
        _ => return Err(OffloadError::Malformed),
    };
    let doff_at = ip_len.checked_add(12).ok_or(OffloadError::Malformed)?;
    let doff =
        usize::from(packet.get(doff_at).ok_or(OffloadError::Malformed)? >> 4).saturating_mul(4);
    let headers = ip_len.checked_add(doff).ok_or(OffloadError::Malformed)?;
    if doff < 20 || headers > packet.len() {
        return Err(OffloadError::Malformed);
    }
    Ok(TcpLayout {
        v6,
        ip_len,
        headers,
        mss: usize::from(gso_size),
    })
}

fn copy(packet: &[u8], out: &mut [u8]) -> Result<usize, OffloadError> {
    out.get_mut(..packet.len())
        .ok_or(OffloadError::NoRoom)?
        .copy_from_slice(packet);
    Ok(packet.len())
}

/// Complete a partial checksum: the field holds the pseudo-header sum; the sum from `start` to
/// the end (field included) gives the real one. A result of 0 is sent as 0xffff, as the kernel's
/// `skb_checksum_help` does (equivalent in ones' complement, and required for UDP).
fn complete_partial(packet: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let field = start
        .checked_add(offset)
        .ok_or(OffloadError::ChecksumOutOfRange)?;
    let covered = packet
        .get(start..)
        .ok_or(OffloadError::ChecksumOutOfRange)?;
    let value = match finish(sum(covered, 0)) {
        0 => 0xffff,
        v => v,
    };
    put16(packet, field, usize::from(value)).map_err(|_| OffloadError::ChecksumOutOfRange)
}

pub(super) fn addresses(packet: &[u8], v6: bool) -> Result<(&[u8], &[u8]), OffloadError> {
    let (src, dst) = if v6 {
        (8..24, 24..40)
    } else {
        (12..16, 16..20)
    };
    Ok((
        packet.get(src).ok_or(OffloadError::Malformed)?,
        packet.get(dst).ok_or(OffloadError::Malformed)?,
    ))
}

pub(super) fn get16(buf: &[u8], at: usize) -> Result<u16, OffloadError> {
    let b = buf
        .get(at..at.checked_add(2).ok_or(OffloadError::Malformed)?)
        .ok_or(OffloadError::Malformed)?;
    Ok(u16::from_be_bytes(
        <[u8; 2]>::try_from(b).map_err(|_| OffloadError::Malformed)?,
    ))
}

pub(super) fn put16(buf: &mut [u8], at: usize, value: usize) -> Result<(), OffloadError> {
    let value = u16::try_from(value).map_err(|_| OffloadError::Malformed)?;
    buf.get_mut(at..at.checked_add(2).ok_or(OffloadError::Malformed)?)
        .ok_or(OffloadError::Malformed)?
        .copy_from_slice(&value.to_be_bytes());
    Ok(())
}

pub(super) fn get32(buf: &[u8], at: usize) -> Result<u32, OffloadError> {
    let b = buf
        .get(at..at.checked_add(4).ok_or(OffloadError::Malformed)?)
        .ok_or(OffloadError::Malformed)?;
    Ok(u32::from_be_bytes(
        <[u8; 4]>::try_from(b).map_err(|_| OffloadError::Malformed)?,
    ))
}

pub(super) fn put32(buf: &mut [u8], at: usize, value: u32) -> Result<(), OffloadError> {
    buf.get_mut(at..at.checked_add(4).ok_or(OffloadError::Malformed)?)
        .ok_or(OffloadError::Malformed)?
        .copy_from_slice(&value.to_be_bytes());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::checksum::fold;
    use super::*;

    /// An IPv4/TCP packet with `payload`, seq 1000, flags ACK|PSH|FIN, valid checksums.
    pub(crate) fn tcp4(payload: &[u8], flags: u8) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 168, 231, 1]);
        p[16..20].copy_from_slice(&[192, 168, 231, 77]);
        p[20..22].copy_from_slice(&5201u16.to_be_bytes());
        p[22..24].copy_from_slice(&40000u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[28..32].copy_from_slice(&77u32.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        p[34..36].copy_from_slice(&512u16.to_be_bytes());
        p[40..].copy_from_slice(payload);
        let ip = finish(sum(&p[..20], 0));
        p[10..12].copy_from_slice(&ip.to_be_bytes());
        let acc = pseudo_header(&p[12..16], &p[16..20], 6, (total - 20) as u32);
        let tcp = finish(sum(&p[20..], acc));
        p[36..38].copy_from_slice(&tcp.to_be_bytes());
        p
    }

    fn valid_ip4(p: &[u8]) -> bool {
        fold(sum(&p[..20], 0)) == 0xffff
    }

    fn valid_tcp4(p: &[u8]) -> bool {
        let acc = pseudo_header(&p[12..16], &p[16..20], 6, (p.len() - 20) as u32);
        fold(sum(&p[20..], acc)) == 0xffff
    }

    fn all(hdr: &VnetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
        let mut segs = Segments::new(hdr, packet).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2000];
        while let Some(r) = segs.next_into(&mut buf) {
            out.push(buf[..r.unwrap()].to_vec());
        }
        out
    }

    #[test]
    fn plain_packet_passes_unchanged() {
        let p = tcp4(b"hello", 0x18);
        assert_eq!(all(&VnetHdr::default(), &p), vec![p]);
    }

    #[test]
    fn gso_packet_is_cut_like_the_kernel_does() {
        let payload: Vec<u8> = (0..3500u32).map(|i| (i % 251) as u8).collect();
        let mut big = tcp4(&payload, 0x19); // ACK|PSH|FIN
                                            // The kernel hands GSO packets with a partial checksum; ours must not depend on it.
        big[36..38].copy_from_slice(&[0xde, 0xad]);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1400,
            csum_start: 20,
            csum_offset: 16,
        };
        let segs = all(&hdr, &big);
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(valid_ip4(s), "ip checksum of segment {i}");
            assert!(valid_tcp4(s), "tcp checksum of segment {i}");
            assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, 1000 + 1400 * i as u32);
            let last = i == 2;
            assert_eq!(s[33], if last { 0x19 } else { 0x10 });
            joined.extend_from_slice(&s[40..]);
        }
        assert_eq!(segs[0].len(), 1440);
        assert_eq!(segs[2].len(), 40 + 700);
        assert_eq!(joined, payload);
    }

    #[test]
    fn partial_checksum_is_completed() {
        let p = tcp4(b"some udp-like payload!", 0x18);
        let mut partial = p.clone();
        // What the kernel leaves: the pseudo-header sum, uncomplemented.
        let acc = pseudo_header(&p[12..16], &p[16..20], 6, (p.len() - 20) as u32);
        partial[36..38].copy_from_slice(&fold(acc).to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert_eq!(all(&hdr, &partial), vec![p]);
    }

    #[test]
    fn bad_input_is_refused_not_panicked() {
        let p = tcp4(&[7; 3000], 0x10);
        let gso = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1000,
            ..VnetHdr::default()
        };
        for cut in 0..60 {
            let _ = Segments::new(&gso, &p[..cut]).map(|mut s| {
                let mut buf = [0u8; 1100];
                while let Some(r) = s.next_into(&mut buf) {
                    if r.is_err() {
                        break;
                    }
                }
            });
        }
        let zero = VnetHdr { gso_size: 0, ..gso };
        assert_eq!(
            Segments::new(&zero, &p).unwrap_err(),
            OffloadError::ZeroSegmentSize
        );
        let ufo = VnetHdr {
            gso_type: super::super::GSO_UDP,
            ..gso
        };
        assert!(Segments::new(&ufo, &p).is_err());
        let far = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 3030,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert!(Segments::new(&far, &p).is_err());
        let mut small = Segments::new(&gso, &p).unwrap();
        assert_eq!(
            small.next_into(&mut [0u8; 100]),
            Some(Err(OffloadError::NoRoom))
        );
        assert_eq!(small.next_into(&mut [0u8; 2000]), None);
    }
}
