//! Packets to and from the tun device, which main opened with `IFF_VNET_HDR` and TCP offloads
//! (main/src/tun.rs): every read starts with a `virtio_net_hdr` and may hold a 64 KiB TCP burst,
//! which [`Segments`] cuts for the client; every write needs a header too. Packets for the device
//! go through a [`Coalescer`]: consecutive TCP segments of one flow become one write (the local
//! stack then handles them once, as with GRO). The pending packet must be written before the
//! worker waits for anything ([`TunWriter::flush`]), so no packet is held back.

use std::fs::File;
use std::io::{self, IoSlice, Write as _};

use rocserv_proto::offload::coalesce::Coalescer;
use rocserv_proto::offload::PLAIN;

use super::session::End;

/// One tun read: header plus the largest GSO packet.
pub const READ_BUF: usize = rocserv_proto::offload::VNET_HDR_LEN + 65_535;

/// Writes to the tun device, joining TCP segments where it can.
pub struct TunWriter {
    coalescer: Coalescer,
    /// Packets taken, and writes made: for the end-of-tunnel log line.
    pub packets: u64,
    pub writes: u64,
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
            packets: 0,
            writes: 0,
        }
    }

    /// One packet from the client (in order with the ones before it).
    pub fn write(&mut self, tun: &File, packet: &[u8]) -> Result<(), End> {
        self.packets = self.packets.saturating_add(1);
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

    /// Write the pending joined packet, if any.
    pub fn flush(&mut self, tun: &File) -> Result<(), End> {
        match self.coalescer.take() {
            Some(write) => {
                self.writes = self.writes.saturating_add(1);
                write_raw(tun, &[IoSlice::new(write)])
            }
            None => Ok(()),
        }
    }

    /// Whether a packet waits for [`Self::flush`].
    pub fn pending(&self) -> bool {
        !self.coalescer.is_empty()
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
