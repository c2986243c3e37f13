//! tun offloads (sans-IO): the `virtio_net_hdr` that a tun device opened with `IFF_VNET_HDR`
//! puts in front of every packet, cutting the large TCP packets the kernel hands us with
//! `TUN_F_TSO4/6` into wire-size segments ([`segment`]), and joining consecutive TCP segments
//! from the client into one large packet for a single tun write ([`coalesce`]), and dropping the
//! client's pure ACKs that the next one makes redundant ([`ack_thin`]).
//!
//! Why: a tunnel costs mostly per-packet kernel work (one tun read or write and one trip through
//! the TCP/IP stack per packet). With offloads a 64 KiB burst from a TCP sender is one tun read,
//! and a run of segments from the client is one tun write that the local stack handles once, as
//! it handles GRO. The header layout is the kernel's `include/uapi/linux/virtio_net.h` (legacy
//! header, 10 bytes, native byte order: tun's default without `TUNSETVNETLE/BE`).

pub mod ack_thin;
pub mod checksum;
pub mod coalesce;
pub mod segment;

/// Size of the legacy `virtio_net_hdr` (tun's default `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` is partial (pseudo-header sum only).
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum is already known good.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// Or'ed into `gso_type`: the TCP segments carry ECN (CWR only on the first).
pub const GSO_ECN: u8 = 0x80;

/// One `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

/// A header that says "a plain packet with a complete checksum": what we write in front of
/// every packet that is not coalesced.
pub const PLAIN: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

impl VnetHdr {
    /// Split a tun read into its header and the packet behind it; `None` when shorter than
    /// the header.
    pub fn split(read: &[u8]) -> Option<(Self, &[u8])> {
        let (head, packet) = read.split_at_checked(VNET_HDR_LEN)?;
        let u16_at = |i: usize| -> Option<u16> {
            let b = head.get(i..i.checked_add(2)?)?;
            Some(u16::from_ne_bytes([*b.first()?, *b.get(1)?]))
        };
        let hdr = Self {
            flags: *head.first()?,
            gso_type: *head.get(1)?,
            hdr_len: u16_at(2)?,
            gso_size: u16_at(4)?,
            csum_start: u16_at(6)?,
            csum_offset: u16_at(8)?,
        };
        Some((hdr, packet))
    }

    /// The 10 header bytes.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let [a, b] = self.hdr_len.to_ne_bytes();
        let [c, d] = self.gso_size.to_ne_bytes();
        let [e, f] = self.csum_start.to_ne_bytes();
        let [g, h] = self.csum_offset.to_ne_bytes();
        [self.flags, self.gso_type, a, b, c, d, e, f, g, h]
    }
}

/// Why a packet from the tun device cannot be cut into segments. The packet is dropped (a router
/// would drop it too); none of these happen with packets the kernel made itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The IP or TCP header is cut short or inconsistent with the packet length.
    #[error("truncated or malformed IP/TCP header")]
    Malformed,
    /// A GSO type we did not ask the kernel for (UDP fragmentation/segmentation).
    #[error("unsupported GSO type {0:#04x}")]
    UnsupportedGso(u8),
    /// IPv6 extension headers in front of TCP: never produced by the local TCP stack.
    #[error("IPv6 extension headers in a GSO packet")]
    Ipv6Extensions,
    /// `gso_size` is zero.
    #[error("GSO packet with segment size 0")]
    ZeroSegmentSize,
    /// The checksum position lies outside the packet.
    #[error("checksum offset outside the packet")]
    ChecksumOutOfRange,
    /// The output buffer cannot hold the segment.
    #[error("segment larger than its output buffer")]
    NoRoom,
}
