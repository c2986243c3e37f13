//! The data plane of one tunnel: tun device <-> CSTP over TLS (protocol.md §3).
//!
//! rustls is driven directly here (not through tokio-rustls) so that the worker decides when TLS
//! records hit the socket: every CSTP frame goes into rustls with exactly one write, which makes
//! exactly one TLS record (the send buffer is unlimited, so rustls never splits a write; §3.1:
//! one frame per record, never coalesced), and the records of a whole batch of tun packets leave
//! in one `writev`. A tun read may hold a 64 KiB TCP burst, cut into segments here
//! ([`super::tun_io`]); packets for the tun device are joined where they can be. Backpressure: while TLS output is pending the tun device is not read, so at
//! most one batch is buffered. Received records are read in large chunks and frames reassembled
//! from the plaintext stream. Buffers are allocated once per tunnel; nothing of ours is
//! allocated per packet (rustls allocates its record buffers itself).
//!
//! Compression (protocol.md §5), only when negotiated for CSTP: tun packets longer than
//! `no-compress-limit` go out as COMPRESSED frames when that is shorter; COMPRESSED frames from
//! the client are decoded and then handled as DATA. A COMPRESSED frame on a channel without
//! compression, or one that does not decode, ends the tunnel, as in ocserv.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rocserv_proto::compress::{self, Compressor, COMPRESS_ROOM, MAX_DECOMPRESSED};
use rocserv_proto::cstp::{self, Decoded, Frame, PacketType, HEADER_LEN, MAX_PAYLOAD};
use rocserv_proto::ipc::main_worker::{ToMain, ToWorker, TunnelState};
use rocserv_proto::ipc::CloseReason;
use rustls::ServerConnection;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::time::Instant;

use rocserv_proto::offload::segment::Segments;
use rocserv_proto::offload::VnetHdr;

use super::dtls::{Ctx as DtlsCtx, Dtls};
use super::moderation::{Class, Moderation};
use super::sched_slice;
use super::session::{Action, End, Session, SessionTimers};
use super::state_report::Reporter;
use super::tun_io::{AckHold, TunWriter, READ_BUF};
use crate::ipc::MainChannel;
use crate::memory::PageBuf;

/// Packets moved from the tun device per wake-up before the batch is flushed (a read may hold
/// many: see [`super::tun_io`]).
const TUN_BATCH: usize = 64;
/// One socket read; rustls is fed from it without further syscalls.
const NET_READ: usize = 64 * 1024;
/// Room for the partial frame left over plus a whole record of plaintext.
const RX_BUF: usize = 64 * 1024;
/// Event-loop turns a joined packet for the tun device may wait while other events keep the
/// worker busy.
const MAX_HELD_TURNS: u32 = 2;
/// How long the goodbye (DISCONNECT, close_notify) may take to leave.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// How a tunnel ended, for `ToMain::SessionEnd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub reason: CloseReason,
    /// Payload bytes from the client to the tun device, and from the tun device to the client.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Set the tunnel up; [`Pump::run`] runs it. `conn` is the TLS connection that carried the
/// CONNECT (any bytes it already buffered are kept); `tun` is main's tun fd (already
/// non-blocking). Needs the runtime entered (the tun device is registered with it). A plain
/// function and a box: the future that runs the tunnel holds a pointer to the pump, not also
/// the parts it was made of (that was 13 kB of future per idle worker; doc/performance.md,
/// "session 9: memory per idle worker").
pub fn start(
    tcp: TcpStream,
    mut conn: ServerConnection,
    tun: OwnedFd,
    timers: SessionTimers,
    cstp_compression: Option<Compressor>,
    dtls: Dtls,
    state: TunnelState,
) -> Result<Box<Pump>, Summary> {
    conn.set_buffer_limit(None);
    let tun = match crate::fds::register_tun(tun) {
        Ok(tun) => tun,
        Err(err) => {
            log::error!("cannot register the tun device: {err}");
            return Err(Summary {
                reason: CloseReason::Temporary,
                rx_bytes: 0,
                tx_bytes: 0,
            });
        }
    };
    let mut pump = Pump {
        tcp,
        conn,
        tun,
        session: Session::new(timers, Instant::now().into_std()),
        net_in: vec![0; NET_READ].into_boxed_slice(),
        rx: vec![0; RX_BUF].into_boxed_slice(),
        rx_len: 0,
        tx: PageBuf::zeroed(HEADER_LEN + MAX_PAYLOAD),
        tun_in: vec![0; READ_BUF].into_boxed_slice(),
        tun_out: TunWriter::new(),
        ack_hold: AckHold::new(),
        tun_reads: 0,
        tun_packets: 0,
        ctl: Vec::new(),
        rx_bytes: 0,
        tx_bytes: 0,
        zip: cstp_compression.map(Zip::new),
        dtls,
        state,
        reporter: Reporter::default(),
        moderation: Moderation::new(),
        class_failed: false,
    };
    // A sparse flow's packet should not wait for the CPU: interactive until a flow is bulk.
    pump.set_class(Some(Class::Interactive));
    Ok(Box::new(pump))
}

impl Pump {
    /// Run the tunnel until it ends.
    pub async fn run(
        mut self: Box<Self>,
        main: &mut MainChannel,
        stats_every: Duration,
    ) -> Summary {
        let pump = &mut *self;
        let end = pump.event_loop(main, stats_every).await;
        log::info!("tunnel closed: {}", end.why);
        log::info!(
            "tun device: read {} packets in {} reads, wrote {} packets in {} writes; \
         redundant ACKs dropped: {} read, {} to write",
            pump.tun_packets.saturating_add(pump.ack_hold.dropped),
            pump.tun_reads,
            pump.tun_out.packets,
            pump.tun_out.writes,
            pump.ack_hold.dropped,
            pump.tun_out.acks_dropped
        );
        if let Some(zip) = &pump.zip {
            zip.log_summary();
        }
        pump.finish(end).await;
        Summary {
            reason: end.reason,
            rx_bytes: pump.rx_bytes,
            tx_bytes: pump.tx_bytes,
        }
    }
}

/// One established tunnel's sockets, buffers and state.
pub struct Pump {
    tcp: TcpStream,
    conn: ServerConnection,
    tun: AsyncFd<File>,
    session: Session,
    /// Ciphertext from one socket read.
    net_in: Box<[u8]>,
    /// Plaintext CSTP stream; `rx_len` bytes are valid (a partial frame at most after a pass).
    rx: Box<[u8]>,
    rx_len: usize,
    /// One outgoing DATA frame: the packet is put right after the 8-byte header gap. Its own
    /// mapping: an idle tunnel touches one page of it ([`PageBuf`]).
    tx: PageBuf,
    /// One tun read (header and a packet of up to 64 KiB).
    tun_in: Box<[u8]>,
    /// Packets for the tun device, joined where possible.
    tun_out: TunWriter,
    /// A pure ACK from the tun device waiting for the next read (ACK filtering).
    ack_hold: AckHold,
    /// Reads from the tun device and the packets they held (offloads make the latter larger).
    tun_reads: u64,
    tun_packets: u64,
    /// Outgoing control frames (DPD, DISCONNECT): grows to the largest one sent (DPD answers
    /// are usually a few bytes; 16 KiB reserved up front sat in every idle worker's heap).
    ctl: Vec<u8>,
    rx_bytes: u64,
    tx_bytes: u64,
    /// CSTP compression, when negotiated.
    zip: Option<Zip>,
    /// The DTLS channel (inert when not offered; see [`super::dtls`]).
    dtls: Dtls,
    /// The channel state main shows in occtl: the TLS half fixed at start, the DTLS half
    /// filled in from `dtls` before each report.
    state: TunnelState,
    reporter: Reporter,
    /// Receive moderation and the CPU class ([`super::moderation`]).
    moderation: Moderation,
    /// The CPU class could not be set: not tried again.
    class_failed: bool,
}

/// Compression state and buffers of the CSTP channel (allocated once per tunnel).
struct Zip {
    compressor: Compressor,
    /// One outgoing COMPRESSED frame: header gap, then the compressed packet. This and
    /// `inflated` are mappings of their own ([`PageBuf`]): an idle tunnel touches none of them.
    out: PageBuf,
    /// One decompressed packet from the client.
    inflated: PageBuf,
    /// Packets sent (all, and compressed) with their sizes before and after, and packets received
    /// compressed with their sizes on the wire and decoded: for the end-of-tunnel log line.
    sent: u64,
    sent_compressed: u64,
    sent_plain_bytes: u64,
    sent_wire_bytes: u64,
    received_compressed: u64,
    received_wire_bytes: u64,
    received_plain_bytes: u64,
}

impl Zip {
    fn new(compressor: Compressor) -> Self {
        Self {
            compressor,
            out: PageBuf::zeroed(HEADER_LEN + COMPRESS_ROOM),
            inflated: PageBuf::zeroed(MAX_DECOMPRESSED),
            sent: 0,
            sent_compressed: 0,
            sent_plain_bytes: 0,
            sent_wire_bytes: 0,
            received_compressed: 0,
            received_wire_bytes: 0,
            received_plain_bytes: 0,
        }
    }

    /// The COMPRESSED frame for `packet`, or `None` when it goes out as DATA.
    fn frame(&mut self, packet: &[u8]) -> Option<&[u8]> {
        self.sent = self.sent.saturating_add(1);
        let room = self.out.get_mut(HEADER_LEN..)?;
        let n = self.compressor.compress(packet, room)?;
        let frame = self.out.get_mut(..HEADER_LEN.saturating_add(n))?;
        let header = frame
            .get_mut(..HEADER_LEN)
            .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())?;
        cstp::encode_header(PacketType::Compressed, n, header).ok()?;
        self.sent_compressed = self.sent_compressed.saturating_add(1);
        self.sent_plain_bytes = self.sent_plain_bytes.saturating_add(packet.len() as u64);
        self.sent_wire_bytes = self.sent_wire_bytes.saturating_add(n as u64);
        Some(frame)
    }

    /// Decode a COMPRESSED payload from the client.
    fn inflate(&mut self, payload: &[u8]) -> Result<&[u8], compress::DecompressError> {
        let n = compress::decompress(self.compressor.algorithm(), payload, &mut self.inflated)?;
        self.received_compressed = self.received_compressed.saturating_add(1);
        self.received_wire_bytes = self
            .received_wire_bytes
            .saturating_add(payload.len() as u64);
        self.received_plain_bytes = self.received_plain_bytes.saturating_add(n as u64);
        Ok(self.inflated.get(..n).unwrap_or_default())
    }

    fn log_summary(&self) {
        log::info!(
            "CSTP compression {}: sent {} of {} packets compressed ({} -> {} bytes), \
             received {} compressed ({} -> {} bytes)",
            self.compressor.algorithm().name(),
            self.sent_compressed,
            self.sent,
            self.sent_plain_bytes,
            self.sent_wire_bytes,
            self.received_compressed,
            self.received_wire_bytes,
            self.received_plain_bytes,
        );
    }
}

/// Where packets from the tun device go: the DTLS channel when active, else CSTP frames.
struct ToClient<'a> {
    dtls: &'a mut Dtls,
    conn: &'a mut ServerConnection,
    tx: &'a mut [u8],
    zip: &'a mut Option<Zip>,
}

impl ToClient<'_> {
    /// Send what one tun read holds, after the pure ACK held back from an earlier read; a pure
    /// ACK itself is held back until the next read shows whether it is redundant (see
    /// [`AckHold`]). Returns the packets and payload bytes sent.
    fn forward(
        &mut self,
        hold: &mut AckHold,
        read: &[u8],
        over_dtls: bool,
    ) -> Result<(usize, u64), End> {
        let ack = AckHold::holds(read);
        if ack && hold.offer(read) {
            return Ok((0, 0));
        }
        let (mut packets, mut bytes) = self.send_held(hold, over_dtls)?;
        if ack && hold.offer(read) {
            return Ok((packets, bytes));
        }
        let (more, more_bytes) = self.send_read(read, over_dtls)?;
        packets = packets.saturating_add(more);
        bytes = bytes.saturating_add(more_bytes);
        Ok((packets, bytes))
    }

    /// Send the pure ACK held from the tun device, if any.
    fn send_held(&mut self, hold: &mut AckHold, over_dtls: bool) -> Result<(usize, u64), End> {
        let Some(held) = hold.held() else {
            return Ok((0, 0));
        };
        let sent = self.send_read(held, over_dtls)?;
        hold.clear();
        Ok(sent)
    }

    fn send_read(&mut self, read: &[u8], over_dtls: bool) -> Result<(usize, u64), End> {
        let Some((hdr, packet)) = VnetHdr::split(read) else {
            return Ok((0, 0));
        };
        let mut segments = match Segments::new(&hdr, packet) {
            Ok(segments) => segments,
            Err(err) => {
                log::debug!("dropped a packet from the tun device: {err}");
                return Ok((0, 0));
            }
        };
        let (mut packets, mut bytes) = (0usize, 0u64);
        loop {
            let slot = if over_dtls {
                self.dtls.tun_slot()
            } else {
                self.tx.get_mut(HEADER_LEN..).unwrap_or_default()
            };
            let n = match segments.next_into(slot) {
                None => break,
                Some(Ok(n)) => n,
                Some(Err(err)) => {
                    log::debug!("dropped the rest of a packet from the tun device: {err}");
                    break;
                }
            };
            packets = packets.saturating_add(1);
            bytes = bytes.saturating_add(n as u64);
            if over_dtls {
                if self.dtls.send_tun_packet(n) {
                    continue;
                }
                // Larger than the DTLS path takes now (path_mtu.rs): this one goes over TLS.
                let packet = self.dtls.tun_slot().get(..n).unwrap_or_default();
                match self.tx.get_mut(HEADER_LEN..HEADER_LEN.saturating_add(n)) {
                    Some(dst) if packet.len() == n => dst.copy_from_slice(packet),
                    _ => continue,
                }
            }
            let frame = self
                .tx
                .get_mut(..HEADER_LEN.saturating_add(n))
                .unwrap_or_default();
            let packet = frame.get(HEADER_LEN..).unwrap_or_default();
            let queued = match self.zip.as_mut().and_then(|zip| zip.frame(packet)) {
                Some(compressed) => self.conn.writer().write_all(compressed),
                None => encode_data(frame, n).and_then(|frame| self.conn.writer().write_all(frame)),
            };
            if let Err(err) = queued {
                log::error!("queueing a packet: {err}");
                return Err(end_temporary("TLS write error"));
            }
        }
        Ok((packets, bytes))
    }
}

impl Pump {
    async fn event_loop(&mut self, main: &mut MainChannel, stats_every: Duration) -> End {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        // Periodic `ToMain::Stats` (occtl); the first tick is one period after the start.
        let mut stats = tokio::time::interval_at(Instant::now() + stats_every, stats_every);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        let mut armed = None;
        let mut held = 0u32;
        // Receive moderation (super::moderation): while armed, the DTLS socket rests out of epoll
        // and is read when `quiet` fires.
        let quiet = tokio::time::sleep_until(far);
        tokio::pin!(quiet);
        let mut quiet_armed = false;
        // A state change held back by the reporter's pacing goes out when this fires.
        let report = tokio::time::sleep_until(far);
        tokio::pin!(report);
        let mut report_armed = None;
        loop {
            // occtl's view of the channels: at start, then on change (paced).
            let now = Instant::now().into_std();
            let (dtls_suite, dtls_flow, dtls_in_use) = self.dtls.state(now);
            let current = TunnelState {
                dtls_suite,
                dtls_flow,
                dtls_in_use,
                ..self.state
            };
            if let Some(state) = self.reporter.due(current, now) {
                if let Err(err) = main.send(&ToMain::TunnelState(state)).await {
                    log::error!("main channel: {err}");
                    return end_temporary("lost main");
                }
            }
            let wake = self.reporter.wake_at(&current);
            if wake != report_armed {
                report.as_mut().reset(wake.map_or(far, Instant::from_std));
                report_armed = wake;
            }
            let next = [self.session.poll_timeout(), self.dtls.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if next != armed {
                sleep.as_mut().reset(next.map_or(far, Instant::from_std));
                armed = next;
            }
            // The DTLS path MTU changed: main sets it on the tun device (try-mtu-discovery).
            if let Some(mtu) = self.dtls.take_mtu_change() {
                if let Err(err) = main.send(&ToMain::TunMtu { mtu }).await {
                    log::error!("main channel: {err}");
                    return end_temporary("lost main");
                }
            }
            // Joined packets for the tun device go out when the worker is about to sleep (the
            // last select arm), but never wait more than a few turns of a busy loop.
            held = if self.tun_out.pending() {
                held.saturating_add(1)
            } else {
                0
            };
            if held > MAX_HELD_TURNS {
                if let Err(end) = self.tun_out.flush(self.tun.get_ref()) {
                    return end;
                }
                held = 0;
            }
            let want_write = self.conn.wants_write();
            tokio::select! {
                biased;
                msg = main.recv() => match msg {
                    Ok((ToWorker::Terminate, _)) => return End {
                        reason: CloseReason::ServerTerminated,
                        notify_client: true,
                        why: "terminated by main",
                    },
                    Ok((ToWorker::Udp { first }, Some(fd))) => {
                        let mut ctx = DtlsCtx { session: &mut self.session, tun: self.tun.get_ref(), tun_out: &mut self.tun_out, rx_bytes: &mut self.rx_bytes };
                        if let Some(end) = self.dtls.new_flow(fd, first, &mut ctx) {
                            return end;
                        }
                    }
                    Ok((other, _)) => log::warn!("unexpected message from main: {other:?}"),
                    Err(err) => {
                        log::error!("main channel: {err}");
                        return end_temporary("lost main");
                    }
                },
                ready = self.tcp.readable() => {
                    if let Err(err) = ready {
                        log::info!("client socket: {err}");
                        return end_temporary("client socket error");
                    }
                    if let Some(end) = self.on_net_readable() {
                        return end;
                    }
                }
                ready = self.tcp.writable(), if want_write => {
                    if let Err(err) = ready {
                        return log_io(err.to_string());
                    }
                    if let Some(end) = self.flush() {
                        return end;
                    }
                }
                ready = self.dtls.readable() => {
                    if let Err(err) = ready {
                        log::info!("DTLS socket: {err}");
                    }
                    match self.read_dtls() {
                        Ok(Some(pause)) => {
                            quiet.as_mut().reset(Instant::now() + pause);
                            quiet_armed = true;
                        }
                        Ok(None) => {}
                        Err(end) => return end,
                    }
                }
                // A handshake that came on its own flow (roaming, or a replayed hello): read
                // apart from the session's socket, which keeps carrying the data meanwhile.
                ready = self.dtls.handshake_readable() => {
                    if let Err(err) = ready {
                        log::info!("DTLS handshake socket: {err}");
                    }
                    let mut ctx = DtlsCtx { session: &mut self.session, tun: self.tun.get_ref(), tun_out: &mut self.tun_out, rx_bytes: &mut self.rx_bytes };
                    if let Err(end) = self.dtls.on_handshake_readable(&mut ctx) {
                        return end;
                    }
                }
                () = &mut quiet, if quiet_armed => match self.read_dtls() {
                    Ok(Some(pause)) => quiet.as_mut().reset(Instant::now() + pause),
                    Ok(None) => quiet_armed = false,
                    Err(end) => return end,
                },
                ready = self.tun.readable(), if !want_write => {
                    let mut guard = match ready {
                        Ok(guard) => guard,
                        Err(err) => {
                            log::error!("tun device: {err}");
                            return end_temporary("tun device error");
                        }
                    };
                    let over_dtls = self.dtls.active(Instant::now().into_std());
                    let mut out = ToClient { dtls: &mut self.dtls, conn: &mut self.conn, tx: &mut self.tx, zip: &mut self.zip };
                    let mut moved = 0usize;
                    while moved < TUN_BATCH {
                        let tun_in = &mut self.tun_in;
                        let n = match guard.try_io(|tun| {
                            let mut file: &File = tun.get_ref();
                            file.read(tun_in)
                        }) {
                            Ok(Ok(n)) => n,
                            Ok(Err(err)) => {
                                log::error!("reading the tun device: {err}");
                                return end_temporary("tun device error");
                            }
                            Err(_would_block) => break,
                        };
                        self.tun_reads = self.tun_reads.saturating_add(1);
                        let read = self.tun_in.get(..n).unwrap_or_default();
                        match out.forward(&mut self.ack_hold, read, over_dtls) {
                            Ok((packets, bytes)) => {
                                moved = moved.saturating_add(packets.max(1));
                                self.tun_packets = self.tun_packets.saturating_add(packets as u64);
                                self.tx_bytes = self.tx_bytes.saturating_add(bytes);
                            }
                            Err(end) => return end,
                        }
                    }
                    match out.send_held(&mut self.ack_hold, over_dtls) {
                        Ok((packets, bytes)) => {
                            self.tun_packets = self.tun_packets.saturating_add(packets as u64);
                            self.tx_bytes = self.tx_bytes.saturating_add(bytes);
                        }
                        Err(end) => return end,
                    }
                    if over_dtls {
                        self.dtls.flush();
                    }
                    let now = Instant::now().into_std();
                    let class = self.moderation.after_tun_read(moved, now);
                    self.set_class(class);
                    self.session.handle_tun(now);
                    if let Some(end) = self.flush() {
                        return end;
                    }
                }
                () = &mut report, if report_armed.is_some() => report_armed = None,
                _ = stats.tick() => {
                    let report = ToMain::Stats { rx_bytes: self.rx_bytes, tx_bytes: self.tx_bytes };
                    if let Err(err) = main.send(&report).await {
                        log::error!("main channel: {err}");
                        return end_temporary("lost main");
                    }
                }
                () = &mut sleep, if armed.is_some() => {
                    self.dtls.handle_timeout(Instant::now().into_std());
                    match self.session.handle_timeout(Instant::now().into_std()) {
                        Action::End(end) => return end,
                        Action::Send { ty, payload } => {
                            if let Err(err) = send_frame(&mut self.conn, &mut self.ctl, ty, payload) {
                                log::error!("queueing a control frame: {err}");
                                return end_temporary("TLS write error");
                            }
                            if let Some(end) = self.flush() {
                                return end;
                            }
                        }
                        Action::Nothing | Action::WriteTun(_) | Action::Ignored(_) => {}
                    }
                }
                // Last in the biased order: reached only when nothing else is ready, i.e. just
                // before the worker would sleep. Packets for the tun device joined until then go
                // out now (GRO's "flush at the end of the poll"), so nothing waits while we sleep.
                () = std::future::ready(()), if self.tun_out.pending() => {
                    if let Err(end) = self.tun_out.flush(self.tun.get_ref()) {
                        return end;
                    }
                }
            }
        }
    }

    /// Read the DTLS socket and apply receive moderation: while the flow is bulk the socket
    /// rests out of epoll and the returned pause says when to read it again; `None` when it is
    /// watched again (sparse traffic).
    fn read_dtls(&mut self) -> Result<Option<Duration>, End> {
        let mut ctx = DtlsCtx {
            session: &mut self.session,
            tun: self.tun.get_ref(),
            tun_out: &mut self.tun_out,
            rx_bytes: &mut self.rx_bytes,
        };
        let drained = self.dtls.on_readable(&mut ctx)?;
        let (pause, class) = self
            .moderation
            .after_dtls_read(drained, Instant::now().into_std());
        self.set_class(class);
        // Both calls are no-ops in the state asked for (a roaming hand-over may have brought a
        // new, watched socket meanwhile).
        if pause.is_some() {
            self.dtls.rest();
        } else {
            self.dtls.watch();
        }
        Ok(pause)
    }

    /// Apply a change of the CPU class ([`super::moderation`]); after a failure, never again.
    fn set_class(&mut self, change: Option<Class>) {
        let Some(class) = change else { return };
        if self.class_failed {
            return;
        }
        if let Err(err) = sched_slice::apply(class) {
            log::debug!("cannot set the scheduling slice: {err}");
            self.class_failed = true;
        }
    }

    /// One socket read, fed through rustls; complete frames are acted on.
    fn on_net_readable(&mut self) -> Option<End> {
        let n = match self.tcp.try_read(&mut self.net_in) {
            Ok(0) => return Some(end_temporary("client closed the connection")),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
            Err(err) => return Some(log_io(err.to_string())),
        };
        let class = self.moderation.after_tls_read(n, Instant::now().into_std());
        self.set_class(class);
        // Taken out for the loop so that frames can be handled with `&mut self`; put back below
        // (moving a Box, no allocation).
        let net_in = std::mem::take(&mut self.net_in);
        let end = self.feed_tls(net_in.get(..n).unwrap_or_default());
        self.net_in = net_in;
        // DPD answers and TLS housekeeping (key updates) queued while reading.
        end.or_else(|| self.flush())
    }

    /// Pass ciphertext through rustls and handle the plaintext that comes out.
    fn feed_tls(&mut self, mut input: &[u8]) -> Option<End> {
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                Ok(0) => return Some(end_temporary("TLS input stalled")),
                Ok(_) => {}
                Err(err) => return Some(log_io(err.to_string())),
            }
            if let Err(err) = self.conn.process_new_packets() {
                log::info!("TLS error: {err}");
                // Let the alert rustls queued go out.
                let _ = self.flush();
                return Some(end_temporary("TLS error"));
            }
            if let Some(end) = self.drain_plaintext() {
                return Some(end);
            }
        }
        None
    }

    /// Move plaintext out of rustls and handle every complete frame.
    fn drain_plaintext(&mut self) -> Option<End> {
        loop {
            let Some(room) = self.rx.get_mut(self.rx_len..).filter(|r| !r.is_empty()) else {
                // Cannot happen: a pass leaves less than one maximal frame behind.
                return Some(end_temporary("CSTP reassembly overflow"));
            };
            match self.conn.reader().read(room) {
                Ok(0) => return Some(end_temporary("client closed TLS")),
                Ok(k) => self.rx_len = self.rx_len.saturating_add(k),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) => return Some(log_io(err.to_string())),
            }
            if let Some(end) = self.handle_frames() {
                return Some(end);
            }
        }
    }

    /// Decode and act on the complete frames in `rx`, keep the partial rest at the front.
    fn handle_frames(&mut self) -> Option<End> {
        let Self {
            rx,
            rx_len,
            session,
            conn,
            tun,
            tun_out,
            ctl,
            rx_bytes,
            zip,
            dtls,
            ..
        } = self;
        let now = Instant::now().into_std();
        let mut offset = 0usize;
        let mut outcome = None;
        while let Some(input) = rx.get(offset..*rx_len) {
            let (frame, consumed) = match cstp::decode(input) {
                Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
                Ok(Decoded::NeedMore(_)) => break,
                Err(err) => {
                    log::info!("bad CSTP frame from client: {err}");
                    outcome = Some(end_temporary("bad CSTP framing"));
                    break;
                }
            };
            offset = offset.saturating_add(consumed);
            // Decoded COMPRESSED frames are DATA from here on; without negotiated compression
            // the session refuses them.
            let frame = match (frame.ty, zip.as_mut()) {
                (PacketType::Compressed, Some(zip)) => match zip.inflate(frame.payload) {
                    Ok(packet) => Frame {
                        ty: PacketType::Data,
                        payload: packet,
                    },
                    Err(err) => {
                        // ocserv ends the session here too (src/worker-vpn.c `parse_data`).
                        log::info!(
                            "undecodable compressed packet from client: {err}: {}",
                            error_source(&err)
                        );
                        outcome = Some(end_temporary("bad compressed packet"));
                        break;
                    }
                },
                _ => frame,
            };
            match session.handle_cstp(frame, now) {
                Action::Nothing => {}
                Action::WriteTun(packet) => {
                    // protocol.md §4.5: the client sends data over TLS, so do we.
                    dtls.cstp_data();
                    *rx_bytes = rx_bytes.saturating_add(packet.len() as u64);
                    if let Err(end) = tun_out.write(tun.get_ref(), packet) {
                        outcome = Some(end);
                        break;
                    }
                }
                Action::Send { ty, payload } => {
                    if let Err(err) = send_frame(conn, ctl, ty, payload) {
                        log::error!("queueing a control frame: {err}");
                        outcome = Some(end_temporary("TLS write error"));
                        break;
                    }
                }
                Action::Ignored(ty) => log::info!("ignoring CSTP packet of type {ty:#04x}"),
                Action::End(end) => {
                    outcome = Some(end);
                    break;
                }
            }
        }
        rx.copy_within(offset..*rx_len, 0);
        *rx_len = rx_len.saturating_sub(offset);
        outcome
    }

    /// Write queued TLS records until done or the socket is full.
    fn flush(&mut self) -> Option<End> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut TcpWriter(&self.tcp)) {
                Ok(0) => return Some(end_temporary("client socket closed")),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) => return Some(log_io(err.to_string())),
            }
        }
        None
    }

    /// Say goodbye (DISCONNECT when the server ends it, then close_notify), bounded in time.
    async fn finish(&mut self, end: End) {
        if end.notify_client {
            // protocol.md §3.3: the client exits and does not reconnect.
            let _ = send_frame(&mut self.conn, &mut self.ctl, PacketType::Disconnect, &[]);
        }
        self.dtls.close();
        self.conn.send_close_notify();
        let goodbye = async {
            while self.conn.wants_write() {
                if self.flush().is_some() || self.tcp.writable().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH, goodbye).await;
    }
}

/// Fill in the DATA header in front of the `len`-byte packet already in `frame[HEADER_LEN..]`.
fn encode_data(frame: &mut [u8], len: usize) -> io::Result<&[u8]> {
    let header = frame
        .get_mut(..HEADER_LEN)
        .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())
        .ok_or_else(|| io::Error::other("frame buffer too small"))?;
    cstp::encode_header(PacketType::Data, len, header).map_err(io::Error::other)?;
    Ok(frame)
}

/// Queue one control frame as one TLS record.
fn send_frame(
    conn: &mut ServerConnection,
    scratch: &mut Vec<u8>,
    ty: PacketType,
    payload: &[u8],
) -> io::Result<()> {
    let mut header = [0u8; HEADER_LEN];
    cstp::encode_header(ty, payload.len(), &mut header).map_err(io::Error::other)?;
    scratch.clear();
    scratch.extend_from_slice(&header);
    scratch.extend_from_slice(payload);
    conn.writer().write_all(scratch)
}

/// The cause under a wrapper error, for one log line.
fn error_source(err: &dyn std::error::Error) -> String {
    err.source().map_or_else(String::new, ToString::to_string)
}

fn end_temporary(why: &'static str) -> End {
    End {
        reason: CloseReason::Temporary,
        notify_client: false,
        why,
    }
}

fn log_io(err: String) -> End {
    log::info!("client connection: {err}");
    end_temporary("client connection error")
}

/// rustls' output side onto the non-blocking socket.
struct TcpWriter<'a>(&'a TcpStream);

impl Write for TcpWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
