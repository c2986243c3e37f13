//! The data plane of one tunnel: tun device <-> CSTP over TLS (protocol.md §3).
//!
//! rustls is driven directly here (not through tokio-rustls) so that the worker decides when TLS
//! records hit the socket: every CSTP frame goes into rustls with exactly one write, which makes
//! exactly one TLS record (the send buffer is unlimited, so rustls never splits a write; §3.1:
//! one frame per record, never coalesced), and the records of a whole batch of tun packets leave
//! in one `writev`. Backpressure: while TLS output is pending the tun device is not read, so at
//! most one batch is buffered. Received records are read in large chunks and frames reassembled
//! from the plaintext stream. Buffers are allocated once per tunnel; nothing of ours is
//! allocated per packet (rustls allocates its record buffers itself).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rocserv_proto::cstp::{self, Decoded, PacketType, HEADER_LEN, MAX_PAYLOAD};
use rocserv_proto::ipc::main_worker::ToWorker;
use rocserv_proto::ipc::CloseReason;
use rustls::ServerConnection;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::session::{Action, End, Session, SessionTimers};
use crate::ipc::MainChannel;

/// tun packets moved per wake-up before the batch is flushed.
const TUN_BATCH: usize = 64;
/// One socket read; rustls is fed from it without further syscalls.
const NET_READ: usize = 64 * 1024;
/// Room for the partial frame left over plus a whole record of plaintext.
const RX_BUF: usize = 64 * 1024;
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

/// Run the tunnel until it ends. `conn` is the TLS connection that carried the CONNECT (any
/// bytes it already buffered are kept); `tun` is main's tun fd (already non-blocking).
pub async fn run(
    tcp: TcpStream,
    mut conn: ServerConnection,
    tun: OwnedFd,
    timers: SessionTimers,
    main: &mut MainChannel,
) -> Summary {
    conn.set_buffer_limit(None);
    let tun = match crate::fds::register_tun(tun) {
        Ok(tun) => tun,
        Err(err) => {
            log::error!("cannot register the tun device: {err}");
            return Summary {
                reason: CloseReason::Temporary,
                rx_bytes: 0,
                tx_bytes: 0,
            };
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
        tx: vec![0; HEADER_LEN + MAX_PAYLOAD].into_boxed_slice(),
        ctl: Vec::with_capacity(HEADER_LEN + MAX_PAYLOAD),
        rx_bytes: 0,
        tx_bytes: 0,
    };
    let end = pump.event_loop(main).await;
    log::info!("tunnel closed: {}", end.why);
    pump.finish(end).await;
    Summary {
        reason: end.reason,
        rx_bytes: pump.rx_bytes,
        tx_bytes: pump.tx_bytes,
    }
}

struct Pump {
    tcp: TcpStream,
    conn: ServerConnection,
    tun: AsyncFd<File>,
    session: Session,
    /// Ciphertext from one socket read.
    net_in: Box<[u8]>,
    /// Plaintext CSTP stream; `rx_len` bytes are valid (a partial frame at most after a pass).
    rx: Box<[u8]>,
    rx_len: usize,
    /// One outgoing DATA frame: the tun packet is read right after the 8-byte header gap.
    tx: Box<[u8]>,
    /// Outgoing control frames (DPD, DISCONNECT).
    ctl: Vec<u8>,
    rx_bytes: u64,
    tx_bytes: u64,
}

impl Pump {
    async fn event_loop(&mut self, main: &mut MainChannel) -> End {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            let next = self.session.poll_timeout();
            if next != armed {
                sleep.as_mut().reset(next.map_or(far, Instant::from_std));
                armed = next;
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
                ready = self.tun.readable(), if !want_write => {
                    let mut guard = match ready {
                        Ok(guard) => guard,
                        Err(err) => {
                            log::error!("tun device: {err}");
                            return end_temporary("tun device error");
                        }
                    };
                    for _ in 0..TUN_BATCH {
                        let packet = self.tx.get_mut(HEADER_LEN..).unwrap_or_default();
                        let n = match guard.try_io(|tun| {
                            let mut file: &File = tun.get_ref();
                            file.read(packet)
                        }) {
                            Ok(Ok(0)) => continue,
                            Ok(Ok(n)) => n,
                            Ok(Err(err)) => {
                                log::error!("reading the tun device: {err}");
                                return end_temporary("tun device error");
                            }
                            Err(_would_block) => break,
                        };
                        let frame = self.tx.get_mut(..HEADER_LEN.saturating_add(n)).unwrap_or_default();
                        if let Err(err) = encode_data(frame, n).and_then(|frame| self.conn.writer().write_all(frame)) {
                            log::error!("queueing a packet: {err}");
                            return end_temporary("TLS write error");
                        }
                        self.tx_bytes = self.tx_bytes.saturating_add(n as u64);
                    }
                    self.session.handle_tun(Instant::now().into_std());
                    if let Some(end) = self.flush() {
                        return end;
                    }
                }
                () = &mut sleep, if armed.is_some() => {
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
            }
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
            ctl,
            rx_bytes,
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
            match session.handle_cstp(frame, now) {
                Action::Nothing => {}
                Action::WriteTun(packet) => {
                    *rx_bytes = rx_bytes.saturating_add(packet.len() as u64);
                    if let Err(end) = write_tun(tun.get_ref(), packet) {
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

/// One packet to the tun device. A full queue or a packet the kernel refuses is dropped, as a
/// router drops; other errors end the tunnel.
fn write_tun(mut tun: &File, packet: &[u8]) -> Result<(), End> {
    match tun.write(packet) {
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
            Err(end_temporary("tun device error"))
        }
    }
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
