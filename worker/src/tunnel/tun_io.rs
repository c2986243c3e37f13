//! Packets to and from the tun device, which main opened with `IFF_VNET_HDR` and TCP offloads
//! (main/src/tun.rs): every read starts with a `virtio_net_hdr` and may hold a 64 KiB TCP burst,
//! which [`Segments`] cuts for the client; every write needs a header too. Packets for the device
//! go through a [`Coalescer`]: consecutive TCP segments of one flow become one write (the local
//! stack then handles them once, as with GRO). A pure ACK is held back until the next packet: if
//! that is a later ACK of the same connection, the older one is dropped ([`ack_thin`]). The
//! pending packet must be written before the worker waits for anything ([`TunWriter::flush`]),
//! so no packet is held back. The same filter runs on what the local stack sends the client
//! ([`AckHold`]): of the pure ACKs read in one burst, only those that say something new leave.

use std::fs::File;
use std::io::{self, IoSlice, Write as _};

use rocserv_proto::offload::ack_thin::{self, MAX_PURE_ACK};
use rocserv_proto::offload::coalesce::Coalescer;
use rocserv_proto::offload::{VnetHdr, GSO_NONE, PLAIN, VNET_HDR_LEN};

use super::session::End;

/// One tun read: header plus the largest GSO packet.
pub const READ_BUF: usize = VNET_HDR_LEN + 65_535;

/// Writes to the tun device, joining TCP segments where it can.
pub struct TunWriter {
    coalescer: Coalescer,
    /// A pure ACK waiting to see whether the next packet supersedes it (`ack_len` bytes; never
    /// pending together with a joined packet).
    ack: [u8; MAX_PURE_ACK],
    ack_len: usize,
    /// Packets taken, writes made and ACKs dropped as redundant: for the end-of-tunnel log line.
    pub packets: u64,
    pub writes: u64,
    pub acks_dropped: u64,
}

impl Default for TunWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TunWriter {
    pub fn new() -> Self {
        Self {
            coalescer: Coalescer::new(),
            ack: [0; MAX_PURE_ACK],
            ack_len: 0,
            packets: 0,
            writes: 0,
            acks_dropped: 0,
        }
    }

    /// One packet from the client (in order with the ones before it).
    pub fn write(&mut self, tun: &File, packet: &[u8]) -> Result<(), End> {
        self.packets = self.packets.saturating_add(1);
        if ack_thin::is_pure_ack(packet) {
            let held = self.ack.get(..self.ack_len).unwrap_or_default();
            if self.ack_len > 0 && ack_thin::supersedes(held, packet) {
                self.acks_dropped = self.acks_dropped.saturating_add(1);
            } else {
                self.flush(tun)?;
            }
            if let Some(dst) = self.ack.get_mut(..packet.len()) {
                dst.copy_from_slice(packet);
                self.ack_len = packet.len();
                return Ok(());
            }
        }
        self.flush_ack(tun)?;
        if self.coalescer.push(packet) {
            return Ok(());
        }
        self.flush(tun)?;
        if self.coalescer.push(packet) {
            return Ok(());
        }
        self.writes = self.writes.saturating_add(1);
        write_plain(tun, packet)
    }

    /// Write the pending packet (joined, or a held ACK), if any.
    pub fn flush(&mut self, tun: &File) -> Result<(), End> {
        self.flush_ack(tun)?;
        match self.coalescer.take() {
            Some(write) => {
                self.writes = self.writes.saturating_add(1);
                write_raw(tun, &[IoSlice::new(write)])
            }
            None => Ok(()),
        }
    }

    /// Write the held ACK, if any.
    fn flush_ack(&mut self, tun: &File) -> Result<(), End> {
        let len = std::mem::take(&mut self.ack_len);
        match self.ack.get(..len) {
            Some(ack) if len > 0 => {
                self.writes = self.writes.saturating_add(1);
                write_plain(tun, ack)
            }
            _ => Ok(()),
        }
    }

    /// Whether a packet waits for [`Self::flush`].
    pub fn pending(&self) -> bool {
        !self.coalescer.is_empty() || self.ack_len > 0
    }
}

/// A pure ACK read from the tun device (with its `virtio_net_hdr`), held while the rest of the
/// burst is read: a later ACK of the same connection replaces it ([`ack_thin`]). The pump sends
/// the held one before any other read and at the end of the burst, so nothing is reordered or
/// waits.
pub struct AckHold {
    buf: [u8; VNET_HDR_LEN + MAX_PURE_ACK],
    len: usize,
    /// ACKs replaced by a later one: for the end-of-tunnel log line.
    pub dropped: u64,
}

impl Default for AckHold {
    fn default() -> Self {
        Self::new()
    }
}

impl AckHold {
    pub fn new() -> Self {
        Self {
            buf: [0; VNET_HDR_LEN + MAX_PURE_ACK],
            len: 0,
            dropped: 0,
        }
    }

    /// Whether a tun read is one pure ACK that may be held.
    pub fn holds(read: &[u8]) -> bool {
        VnetHdr::split(read)
            .is_some_and(|(hdr, packet)| hdr.gso_type == GSO_NONE && ack_thin::is_pure_ack(packet))
    }

    /// Hold `read` (a read for which [`Self::holds`] is true), replacing the held one if `read`
    /// supersedes it. `false`: another ACK is held that must be sent first ([`Self::take`]).
    pub fn offer(&mut self, read: &[u8]) -> bool {
        if let Some(held) = self.held() {
            match (VnetHdr::split(held), VnetHdr::split(read)) {
                (Some((_, older)), Some((_, newer))) if ack_thin::supersedes(older, newer) => {
                    self.dropped = self.dropped.saturating_add(1);
                }
                _ => return false,
            }
        }
        match self.buf.get_mut(..read.len()) {
            Some(dst) => {
                dst.copy_from_slice(read);
                self.len = read.len();
                true
            }
            None => false,
        }
    }

    /// The held read, if any.
    pub fn held(&self) -> Option<&[u8]> {
        self.buf.get(..self.len).filter(|held| !held.is_empty())
    }

    /// Nothing held any more (after the caller sent [`Self::held`]).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// One packet as it is, behind a "plain packet" header.
fn write_plain(tun: &File, packet: &[u8]) -> Result<(), End> {
    write_raw(tun, &[IoSlice::new(&PLAIN), IoSlice::new(packet)])
}

/// One write to the device. A full queue or a packet the kernel refuses is dropped, as a router
/// drops; other errors end the tunnel.
fn write_raw(mut tun: &File, parts: &[IoSlice<'_>]) -> Result<(), End> {
    match tun.write_vectored(parts) {
        Ok(_) => Ok(()),
        Err(err)
            if err.kind() == io::ErrorKind::WouldBlock
                || err.raw_os_error() == Some(libc::EINVAL)
                || err.raw_os_error() == Some(libc::ENOBUFS) =>
        {
            log::debug!("dropped a packet for the tun device: {err}");
            Ok(())
        }
        Err(err) => {
            log::error!("writing to the tun device: {err}");
            Err(End {
                reason: rocserv_proto::ipc::CloseReason::Temporary,
                notify_client: false,
                why: "tun device error",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use rocserv_proto::offload::VNET_HDR_LEN;

    /// A pure IPv4 ACK (no options) of one connection, or a data segment when `data` is set.
    fn tcp(ack: u32, data: &[u8]) -> Vec<u8> {
        let len = 40 + data.len();
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
        p[20..24].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
        p[28..32].copy_from_slice(&ack.to_be_bytes());
        p[32] = 0x50;
        p[33] = if data.is_empty() { 0x10 } else { 0x18 };
        p[40..].copy_from_slice(data);
        p
    }

    /// The writes that reached the "device" (a seqpacket socket keeps their boundaries), without
    /// their virtio headers.
    fn writes_of(packets: &[Vec<u8>]) -> (Vec<Vec<u8>>, TunWriter) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_NONBLOCK,
        )
        .unwrap();
        let tun = File::from(ours);
        let mut writer = TunWriter::new();
        for packet in packets {
            writer.write(&tun, packet).unwrap();
        }
        writer.flush(&tun).unwrap();
        assert!(!writer.pending());
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(&theirs),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            out.push(buf[VNET_HDR_LEN..n].to_vec());
        }
        (out, writer)
    }

    #[test]
    fn of_a_run_of_acks_only_the_newest_is_written() {
        let (writes, writer) = writes_of(&[tcp(1000, b""), tcp(2000, b""), tcp(3000, b"")]);
        assert_eq!(writes, vec![tcp(3000, b"")]);
        assert_eq!(
            (writer.packets, writer.writes, writer.acks_dropped),
            (3, 1, 2)
        );
    }

    /// A tun read: a plain-packet header, then `packet`.
    fn read_of(packet: &[u8]) -> Vec<u8> {
        let mut read = PLAIN.to_vec();
        read.extend_from_slice(packet);
        read
    }

    #[test]
    fn a_held_ack_is_replaced_by_a_later_one_and_refused_for_anything_else() {
        let mut hold = AckHold::new();
        assert!(hold.held().is_none());
        assert!(AckHold::holds(&read_of(&tcp(1000, b""))));
        assert!(!AckHold::holds(&read_of(&tcp(1000, b"data"))));
        assert!(!AckHold::holds(&tcp(1000, b"")[..5]));
        assert!(hold.offer(&read_of(&tcp(1000, b""))));
        assert!(hold.offer(&read_of(&tcp(2000, b""))));
        assert_eq!(hold.held(), Some(&read_of(&tcp(2000, b""))[..]));
        assert_eq!(hold.dropped, 1);
        // A duplicate: the held one must go first.
        assert!(!hold.offer(&read_of(&tcp(2000, b""))));
        hold.clear();
        assert!(hold.held().is_none());
        assert!(hold.offer(&read_of(&tcp(2000, b""))));
        assert_eq!(hold.dropped, 1);
    }

    #[test]
    fn a_packet_between_acks_keeps_both_and_the_order() {
        let packets = [tcp(1000, b""), tcp(1000, b"data"), tcp(2000, b"")];
        let (writes, writer) = writes_of(&packets);
        assert_eq!(writes, packets.to_vec());
        assert_eq!(writer.acks_dropped, 0);
        // Duplicate ACKs all go through.
        let dups = [tcp(1000, b""), tcp(1000, b""), tcp(1000, b"")];
        assert_eq!(writes_of(&dups).0, dups.to_vec());
    }
}
