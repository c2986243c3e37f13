//! The DTLS side of one tunnel (protocol.md §4): the UDP socket main hands over
//! (`ToWorker::Udp`), the sans-IO [`Server`] from `rocserv_proto::dtls`, and the rules that decide
//! whether packets for the client leave over DTLS or CSTP.
//!
//! State: no socket until main passes one. Two slots, as in ocserv (§4.5): the established
//! session packets go over, and a handshake in progress, each with its own socket
//! ([`super::dtls_slots`] has the rules and their randomized tests). A ClientHello carrying our id
//! goes to the handshake in progress (retransmissions, the second hello of the cookie exchange)
//! unless there is none, it failed, it came on another socket, or it started more than
//! [`RESTART_AFTER`](super::dtls_slots::RESTART_AFTER) ago with a different hello: then a new
//! handshake starts, on the socket the hello came on. When it completes (the client's Finished
//! proves the key) it replaces the established session and its socket becomes the session's
//! (roaming); until then the session keeps working on its own socket, so a replayed or spoofed
//! hello moves nothing. Application-data records on the session's socket go to the session,
//! other records to the handshake.
//!
//! Packets go over DTLS while a session is established, a DTLS record arrived within
//! `switch-to-tcp-timeout`, and no DATA came over CSTP since the last DTLS record (the client
//! chose TCP: ocserv's ACTIVE -> INACTIVE rules, §4.5); any decrypted record makes DTLS active
//! again. Received records are handled exactly like CSTP frames (same packet types, §4.4) by the
//! tunnel [`Session`], so DPD-REQ is echoed with its whole payload (MTU probes) and any record
//! proves liveness; answers go back over DTLS.
//!
//! Data path: each packet (or segment of a large tun read, [`super::tun_io`]) is written straight
//! into the send batch behind the header room, compressed there when DTLS compression was
//! negotiated and it pays, and sealed in place; a burst leaves with one GSO `sendmsg`
//! ([`super::udp_gso`]). Datagrams arrive in `recvmmsg` bursts ([`super::udp_mmsg`]) and are
//! opened in place. Nothing is allocated per packet (handshakes may allocate).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom as _, SystemRandom};
use rocserv_proto::compress::{self, Algorithm, Compressor, COMPRESS_ROOM, MAX_DECOMPRESSED};
use rocserv_proto::cstp::{Frame, PacketType, MAX_PAYLOAD};
use rocserv_proto::dtls::{peek, Mode, Received, Server};

use super::dtls_dpd::{DtlsDpd, Tick};
use super::dtls_slots::{Conversation, Kind, Route, Slots, Source, HANDSHAKE_LIMIT};
use super::dtls_socket::DtlsSocket;
use super::path_mtu::{Change, PathMtu};
use super::session::{Action, End, Session};
use super::tun_io::TunWriter;
use super::udp_gso::Batch;
use super::udp_mmsg::{self, BURST};
use super::udp_pmtu;
use crate::memory::PageBuf;

/// `recvmmsg` bursts read per wake-up before yielding to the other event sources.
const RX_BURSTS: usize = 4;
/// Room for the record header and trailer around the largest payload we seal.
const RECORD_SLACK: usize = 256;
/// One datagram's slot in the receive buffer: the largest record a client may send us.
const RX_SLOT: usize = MAX_PAYLOAD + RECORD_SLACK;
/// DTLS record content type of application data.
const APPLICATION_DATA: u8 = 23;

/// What the DTLS side needs from the rest of the tunnel to act on a received packet.
pub struct Ctx<'a> {
    pub session: &'a mut Session,
    pub tun: &'a File,
    pub tun_out: &'a mut TunWriter,
    /// Payload bytes written to the tun device.
    pub rx_bytes: &'a mut u64,
}

/// The DTLS parameters fixed at CONNECT.
struct Setup {
    mode: Mode,
    id: [u8; 32],
    switch_to_tcp: Option<Duration>,
    /// `X-DTLS-Content-Encoding` when negotiated (protocol.md §5.1): COMPRESSED records from the
    /// client are decoded into the buffer.
    inflate: Option<(Algorithm, PageBuf)>,
    /// The same algorithm for what we send (packets above `no-compress-limit` that shrink),
    /// with the buffer a packet is compressed into before it goes back into the send slot.
    deflate: Option<(Compressor, PageBuf)>,
    /// Packets sent over DTLS (all, compressed) and compressed ones received: for the
    /// end-of-tunnel line.
    sent: u64,
    sent_compressed: u64,
    received_compressed: u64,
}

impl Conversation for Server {
    fn is_closed(&self) -> bool {
        Server::is_closed(self)
    }
}

/// DTLS state of one tunnel; inert when DTLS was not offered.
pub struct Dtls {
    setup: Option<Setup>,
    /// The established session and its socket, a handshake in progress (first, or a
    /// re-handshake while the session still works) and its socket.
    slots: Slots<DtlsSocket, Server>,
    /// When the last record was decrypted.
    last_rx: Instant,
    /// Server-side DPD of the established session ([`super::dtls_dpd`]).
    dpd: DtlsDpd,
    /// Payload bytes of a DPD probe: the data MTU (ocserv pads its probe to it).
    probe_len: usize,
    /// The path MTU (`try-mtu-discovery`, client probes) and the data MTU main last heard of.
    pmtu: PathMtu,
    reported_mtu: u16,
    /// DATA arrived over CSTP after the last DTLS record: the client sends over TCP.
    cstp_override: bool,
    /// Whether packets went over DTLS at the last decision (for the log lines).
    was_active: bool,
    /// main's hand-overs so far (`ToWorker::Udp`), to number each flow's socket.
    flows: u32,
    rx: Box<[u8]>,
    /// Outgoing control record under construction (its own mapping: [`PageBuf`]).
    tx: PageBuf,
    /// Outgoing tun packets, sealed in place, sent with UDP GSO.
    batch: Batch,
    /// Handshake datagrams the server queued.
    transmit: Vec<Vec<u8>>,
    rng: SystemRandom,
}

impl Dtls {
    /// No DTLS for this tunnel: every `Udp` hand-over is refused.
    pub fn disabled() -> Self {
        Self::build(None)
    }

    /// DTLS was offered in `mode` with `id`; `switch_to_tcp` = `switch-to-tcp-timeout`;
    /// `compression` = what `X-DTLS-Content-Encoding` announced.
    pub fn new(
        mode: Mode,
        id: [u8; 32],
        switch_to_tcp: Option<Duration>,
        compression: Option<Compressor>,
    ) -> Self {
        Self::build(Some(Setup {
            mode,
            id,
            switch_to_tcp,
            inflate: compression
                .as_ref()
                .map(|c| (c.algorithm(), PageBuf::zeroed(MAX_DECOMPRESSED))),
            deflate: compression.map(|c| (c, PageBuf::zeroed(COMPRESS_ROOM))),
            sent: 0,
            sent_compressed: 0,
            received_compressed: 0,
        }))
    }

    fn build(setup: Option<Setup>) -> Self {
        let buffers = setup.is_some();
        let size = |n: usize| if buffers { n } else { 0 };
        Self {
            setup,
            slots: Slots::default(),
            last_rx: Instant::now(),
            dpd: DtlsDpd::new(None, Instant::now()),
            probe_len: 0,
            pmtu: PathMtu::new(false, u16::MAX, 0),
            reported_mtu: u16::MAX,
            cstp_override: false,
            was_active: false,
            flows: 0,
            rx: vec![0; size(RX_SLOT * BURST)].into_boxed_slice(),
            tx: PageBuf::zeroed(size(MAX_PAYLOAD + RECORD_SLACK)),
            batch: Batch::new(size(MAX_PAYLOAD + RECORD_SLACK)),
            transmit: Vec::new(),
            rng: SystemRandom::new(),
        }
    }

    /// Probe a quiet DTLS channel every `dpd` (the client's interval, mobile-aware; `None` = no
    /// probes) with DPD requests of `data_mtu` payload bytes (protocol.md §3.4).
    pub fn with_dpd(mut self, dpd: Option<Duration>, data_mtu: u16) -> Self {
        self.dpd = DtlsDpd::new(dpd, Instant::now());
        self.probe_len = usize::from(data_mtu).min(MAX_PAYLOAD);
        self
    }

    /// Track the path MTU from the granted `data_mtu` (`overhead` = bytes between it and the
    /// link MTU); `discovery` = `try-mtu-discovery` ([`super::path_mtu`]).
    pub fn with_path_mtu(mut self, discovery: bool, data_mtu: u16, overhead: u16) -> Self {
        self.pmtu = PathMtu::new(discovery, data_mtu, overhead);
        self.reported_mtu = self.pmtu.data_mtu();
        self
    }

    /// The data MTU main must set on the tun device, when it changed since the last call.
    pub fn take_mtu_change(&mut self) -> Option<u16> {
        let now = self.pmtu.data_mtu();
        (now != self.reported_mtu).then(|| {
            log::info!("DTLS path MTU changed: data MTU now {now}");
            self.reported_mtu = now;
            now
        })
    }

    /// main matched a UDP flow to us: handle the datagram main read with the new socket on
    /// offer. A ClientHello with our id starts a handshake that owns the socket; an
    /// application-data record (a NAT rebinding, main/src/udp.rs) moves the session to it only if
    /// it authenticates; anything else drops the socket. So a spoofed or replayed datagram cannot
    /// redirect the session (protocol.md §4.6, [`super::dtls_slots`]).
    pub fn new_flow(&mut self, fd: OwnedFd, mut first: Vec<u8>, ctx: &mut Ctx<'_>) -> Option<End> {
        // Counted as main counts its hand-overs, used or not.
        self.flows = self.flows.saturating_add(1);
        if self.setup.is_none() {
            log::warn!("main handed over a UDP flow although no DTLS was offered; closing it");
            return None;
        }
        let socket = match DtlsSocket::adopt(fd, self.flows) {
            Ok(s) => s,
            Err(err) => {
                log::error!("cannot use the UDP socket from main: {err}");
                return None;
            }
        };
        // (No peer_addr() here: getpeername is not on the sandbox's list; main logs the flow.)
        log::debug!("new DTLS flow from main");
        // DF as configured (ocserv: DO with try-mtu-discovery, else DONT on the worker's side).
        if let Err(err) = udp_pmtu::set_discovery(socket.as_fd(), self.pmtu.discovery()) {
            log::warn!("cannot set IP_MTU_DISCOVER on the UDP socket: {err}");
        }
        self.slots.offer(socket);
        let len = first.len().min(self.rx.len());
        let end = match (self.rx.get_mut(..len), first.get_mut(..len)) {
            (Some(dst), Some(src)) => {
                dst.copy_from_slice(src);
                self.on_datagram(Source::Offered, 0, len, Instant::now(), ctx)
            }
            _ => None,
        };
        if self.slots.settle() {
            log::info!("a DTLS record from a new client port did not authenticate; ignored");
        }
        end
    }

    /// Resolves when the session's UDP socket has something to read; never without one.
    pub async fn readable(&self) -> io::Result<()> {
        match self.slots.current() {
            Some(socket) => socket.readable().await,
            None => std::future::pending().await,
        }
    }

    /// Resolves when the socket of a handshake in progress (one that arrived on its own flow)
    /// has something to read; never without one.
    pub async fn handshake_readable(&self) -> io::Result<()> {
        match self.slots.handshake_socket() {
            Some(socket) => socket.readable().await,
            None => std::future::pending().await,
        }
    }

    /// A bulk flow: take the socket out of epoll; the pump reads it on its moderation timer
    /// ([`super::dtls_socket`]).
    pub fn rest(&mut self) {
        self.slots.map_current(DtlsSocket::rest);
    }

    /// The flow went sparse: let arrivals wake the worker again.
    pub fn watch(&mut self) {
        self.slots.map_current(|socket| {
            let (socket, err) = socket.watch();
            if let Some(err) = err {
                log::warn!("cannot watch the DTLS socket again (it is read on a timer): {err}");
            }
            socket
        });
    }

    /// Whether the socket is out of epoll (see [`Self::rest`]).
    pub fn is_resting(&self) -> bool {
        self.slots.current().is_some_and(DtlsSocket::is_resting)
    }

    /// Read and handle the datagrams waiting on the session's socket, a `recvmmsg` burst at a
    /// time. `Ok(Some(n))`: the socket is empty after `n` datagrams; `Ok(None)`: more are waiting
    /// (or there is no socket); `Err`: the tunnel ends.
    pub fn on_readable(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<usize>, End> {
        self.read(Source::Current, ctx)
    }

    /// The same for the socket of a handshake in progress ([`Self::handshake_readable`]).
    pub fn on_handshake_readable(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<usize>, End> {
        self.read(Source::Handshake, ctx)
    }

    fn read(&mut self, from: Source, ctx: &mut Ctx<'_>) -> Result<Option<usize>, End> {
        let mut total = 0usize;
        let mut got = [udp_mmsg::Received {
            slot: 0,
            len: 0,
            truncated: false,
        }; BURST];
        for _ in 0..RX_BURSTS {
            let socket = match from {
                Source::Current => self.slots.current(),
                Source::Handshake => self.slots.handshake_socket(),
                Source::Offered => None,
            };
            let Some(socket) = socket else {
                return Ok(None);
            };
            let rx = &mut self.rx;
            let n = match socket.recv_burst(rx, RX_SLOT, &mut got) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Some(total)),
                Err(err) if from == Source::Current => {
                    // ICMP errors (port unreachable) surface here on a connected socket.
                    log::debug!("DTLS socket: {err}");
                    self.cstp_override = true;
                    return Ok(None);
                }
                Err(err) => {
                    log::info!("DTLS handshake abandoned: its peer is unreachable ({err})");
                    self.slots.drop_handshake();
                    return Ok(None);
                }
            };
            let now = Instant::now();
            total = total.saturating_add(n);
            for datagram in got.iter().take(n) {
                if datagram.truncated {
                    log::debug!(
                        "dropped an oversized datagram ({} bytes kept)",
                        datagram.len
                    );
                    continue;
                }
                let start = datagram.slot.saturating_mul(RX_SLOT);
                if let Some(end) = self.on_datagram(from, start, datagram.len, now, ctx) {
                    return Err(end);
                }
            }
            if n < BURST {
                return Ok(Some(total));
            }
        }
        Ok(None)
    }

    /// One datagram in `self.rx[start..start + len]`, read from `from`.
    fn on_datagram(
        &mut self,
        from: Source,
        start: usize,
        len: usize,
        now: Instant,
        ctx: &mut Ctx<'_>,
    ) -> Option<End> {
        let Self {
            setup,
            slots,
            last_rx,
            dpd,
            cstp_override,
            rx,
            tx,
            transmit,
            rng,
            pmtu,
            probe_len,
            ..
        } = self;
        let setup = setup.as_mut()?;
        let datagram = rx.get_mut(start..start.saturating_add(len))?;
        let kind = if peek::client_hello_session_id(datagram) == Some(&setup.id[..]) {
            Kind::Hello(&*datagram)
        } else if datagram.first() == Some(&APPLICATION_DATA) {
            Kind::Data
        } else {
            Kind::Handshake
        };
        let mode = &setup.mode;
        let id = setup.id;
        let route = slots.route(from, kind, now, || {
            let mut server_random = [0u8; 32];
            fill(rng, &mut server_random);
            log::debug!("DTLS handshake started");
            Server::new(mode.clone(), id, server_random)
        });
        let mut random = |buf: &mut [u8]| fill(rng, buf);
        match route {
            Route::Drop => return None,
            Route::Handshake => {
                let (server, socket) = slots.handshake_parts()?;
                let result = server.handle_datagram(datagram, now, &mut random, transmit);
                send_all(socket, transmit);
                match result {
                    Ok(Received::Established) => {
                        let suite = server.describe();
                        let roamed = slots.session().is_some();
                        if slots.established() && roamed {
                            log::info!("DTLS established on a new path: {suite}");
                        } else {
                            log::info!("DTLS established: {suite}");
                        }
                        // ocserv's wording, which tools watch for; main's relay puts
                        // `worker[USER]: IP ` before it.
                        log::info!(
                            "DTLS handshake completed (link MTU: {}, data MTU: {})",
                            pmtu.link_mtu(),
                            pmtu.data_mtu()
                        );
                        *last_rx = now;
                        dpd.on_record(now);
                        *cstp_override = false;
                    }
                    Ok(Received::Nothing | Received::Data(_)) => {
                        if from == Source::Offered && slots.session().is_some() {
                            log::info!(
                                "DTLS handshake from a new flow; the session keeps its path \
                                 unless it completes"
                            );
                        }
                    }
                    Ok(Received::Closed) => {
                        log::info!("DTLS handshake closed by the client");
                        slots.drop_handshake();
                    }
                    Err(err) => {
                        log::info!("DTLS handshake failed: {err}");
                        slots.drop_handshake();
                    }
                }
                return None;
            }
            Route::Session => {}
        }
        let result = {
            let (srv, socket) = slots.session_parts(from);
            let result = srv?.handle_datagram(datagram, now, &mut random, transmit);
            send_all(socket, transmit);
            result
        };
        if matches!(result, Ok(Received::Data(_))) && slots.authenticated(from) {
            log::info!("DTLS flow moved to a new client port (NAT rebinding)");
        }
        let (Some(srv), socket) = slots.session_parts(Source::Current) else {
            return None;
        };
        match result {
            Ok(Received::Nothing | Received::Established) => None,
            Ok(Received::Data(record)) => {
                *last_rx = now;
                if dpd.on_record(now) {
                    log::info!("DTLS DPD answered");
                }
                *cstp_override = false;
                let (&ty, payload) = record.split_first()?;
                let mut frame = Frame {
                    ty: PacketType::from_u8(ty),
                    payload,
                };
                if let (PacketType::Compressed, Some((algorithm, buf))) =
                    (frame.ty, setup.inflate.as_mut())
                {
                    match compress::decompress(*algorithm, payload, buf) {
                        Ok(len) => {
                            setup.received_compressed = setup.received_compressed.saturating_add(1);
                            frame = Frame {
                                ty: PacketType::Data,
                                payload: buf.get(..len).unwrap_or_default(),
                            }
                        }
                        Err(err) => {
                            // A lost or corrupt packet, not a reason to end the tunnel on UDP.
                            log::debug!("undecodable compressed DTLS packet: {err}");
                            return None;
                        }
                    }
                }
                if frame.ty == PacketType::DpdReq {
                    // A client probing its MTU (protocol.md §3.4; ocserv `data_mtu_set`).
                    let change = pmtu.client_probe(frame.payload.len());
                    note_change(change, pmtu, probe_len, socket);
                }
                match ctx.session.handle_cstp(frame, now) {
                    Action::Nothing => None,
                    Action::WriteTun(packet) => {
                        *ctx.rx_bytes = ctx.rx_bytes.saturating_add(packet.len() as u64);
                        ctx.tun_out.write(ctx.tun, packet).err()
                    }
                    Action::Send { ty, payload } => {
                        let mut random = |buf: &mut [u8]| fill(rng, buf);
                        match seal_and_send(srv, socket, tx, ty, payload, &mut random) {
                            Err(err) if too_big(&err) && pmtu.discovery() => {
                                // The echo of a probe larger than our path: lower the MTU and
                                // answer with an empty one, as ocserv does.
                                let hint = socket.and_then(|s| udp_pmtu::path_mtu(s.as_fd()));
                                note_change(pmtu.too_big(hint), pmtu, probe_len, socket);
                                if let Err(err) =
                                    seal_and_send(srv, socket, tx, ty, &[], &mut random)
                                {
                                    log::debug!("DTLS answer not sent: {err}");
                                }
                            }
                            Err(err) => log::debug!("DTLS answer not sent: {err}"),
                            Ok(()) => {}
                        }
                        None
                    }
                    Action::Ignored(ty) => {
                        log::info!("ignoring DTLS packet of type {ty:#04x}");
                        None
                    }
                    Action::End(end) => Some(end),
                }
            }
            Ok(Received::Closed) => {
                log::info!("client closed DTLS; data goes over TLS");
                slots.session_closed();
                None
            }
            Err(err) => {
                log::info!("DTLS error: {err}");
                None
            }
        }
    }

    /// The next handshake retransmission or DPD step, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self.slots.handshake().and_then(Server::poll_timeout);
        let dpd = self.probing().then(|| self.dpd.poll_timeout()).flatten();
        [handshake, self.slots.deadline(), dpd]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a session is established on a socket.
    fn established(&self) -> bool {
        self.slots.current().is_some() && self.slots.session().is_some_and(Server::is_established)
    }

    /// Whether the server-side DPD runs: a session is established on a socket and the client
    /// has not turned to CSTP (ocserv probes only in its UDP "active" state).
    fn probing(&self) -> bool {
        self.established() && !self.cstp_override
    }

    /// Called at or after [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.probing() && self.dpd.poll_timeout().is_some_and(|t| t <= now) {
            match self.dpd.handle_timeout(now) {
                Tick::Nothing => {}
                Tick::Probe => self.send_probe(now),
                Tick::Dead => log::info!(
                    "no DTLS packet for {} s despite DPD requests: data goes over TLS",
                    self.dpd.silence(now)
                ),
            }
        }
        if let Some((server, socket)) = self.slots.handshake_parts() {
            if server.poll_timeout().is_some_and(|t| t <= now) {
                server.handle_timeout(now, &mut self.transmit);
                send_all(socket, &mut self.transmit);
                if server.is_closed() {
                    log::info!("DTLS handshake timed out");
                    self.slots.drop_handshake();
                }
            }
        }
        if self.slots.expire(now) {
            log::info!(
                "DTLS handshake not complete after {} s; dropped",
                HANDSHAKE_LIMIT.as_secs()
            );
        }
    }

    /// One DPD request padded with zeros to the data MTU, as ocserv sends it: it checks that
    /// full-size packets still get through. openconnect answers with a 1-byte DPD response.
    fn send_probe(&mut self, now: Instant) {
        let Self {
            slots,
            tx,
            rng,
            probe_len,
            dpd,
            ..
        } = self;
        let (Some(srv), socket) = slots.session_parts(Source::Current) else {
            return;
        };
        log::info!(
            "no DTLS packet for {} s: sending a DTLS DPD request",
            dpd.silence(now)
        );
        let start = srv.header_room().saturating_add(1);
        if let Some(payload) = tx.get_mut(start..start.saturating_add(*probe_len)) {
            payload.fill(0);
        }
        let mut random = |buf: &mut [u8]| fill(rng, buf);
        let sent = seal_slot(srv, tx, PacketType::DpdReq, *probe_len, &mut random)
            .and_then(|record| send(socket, record));
        if let Err(err) = sent {
            log::debug!("DTLS DPD request not sent: {err}");
        }
    }

    /// Whether packets for the client go over DTLS now (protocol.md §4.5).
    pub fn active(&mut self, now: Instant) -> bool {
        let established = self.established();
        let fresh = self
            .setup
            .as_ref()
            .and_then(|s| s.switch_to_tcp)
            .is_none_or(|limit| now.saturating_duration_since(self.last_rx) < limit);
        let dead = self.dpd.is_dead(now);
        let active = established && fresh && !self.cstp_override && !dead;
        if active != self.was_active {
            if active {
                log::debug!("sending over DTLS");
            } else if established {
                log::info!(
                    "sending over TLS: {}",
                    if self.cstp_override {
                        "the client sends over TLS"
                    } else if dead {
                        "no answer to DTLS DPD requests"
                    } else {
                        "no DTLS packet within switch-to-tcp-timeout"
                    }
                );
            }
            self.was_active = active;
        }
        active
    }

    /// For main's view of the tunnel (`ToMain::TunnelState`): the established session's IANA
    /// suite, which of main's hand-overs its socket came with (0: none), and whether packets
    /// go over DTLS now.
    pub fn state(&mut self, now: Instant) -> (Option<u16>, u32, bool) {
        let suite = self
            .slots
            .session()
            .filter(|_| self.established())
            .and_then(Server::established_suite);
        let flow = self
            .slots
            .current()
            .filter(|_| suite.is_some())
            .map_or(0, DtlsSocket::flow);
        (suite, flow, self.active(now))
    }

    /// DATA arrived over CSTP: the client is not using DTLS right now.
    pub fn cstp_data(&mut self) {
        self.cstp_override = true;
    }

    /// Where to read the next tun packet when [`Self::active`]: behind the record header room
    /// and the type byte, in the send batch.
    pub fn tun_slot(&mut self) -> &mut [u8] {
        let head = self
            .slots
            .session()
            .map_or(0, |s| s.header_room().saturating_add(1));
        let slot = self.batch.next_slot();
        let end = head.saturating_add(MAX_PAYLOAD).min(slot.len());
        slot.get_mut(head..end).unwrap_or_default()
    }

    /// Seal the `len`-byte packet just put into [`Self::tun_slot`] (compressed first when DTLS
    /// compression was negotiated and it pays) and add it to the send batch ([`Self::flush`]
    /// sends the rest). A packet the socket cannot take is dropped (UDP semantics); a socket
    /// error sends data back to TLS. Returns `false`, sending nothing, when the packet is larger
    /// than the path MTU now allows ([`super::path_mtu`]): the caller sends it over TLS.
    pub fn send_tun_packet(&mut self, len: usize) -> bool {
        if len > usize::from(self.pmtu.data_mtu()) {
            return false;
        }
        let Self {
            setup,
            slots,
            batch,
            rng,
            cstp_override,
            pmtu,
            probe_len,
            ..
        } = self;
        let (Some(srv), Some(socket)) = slots.session_parts(Source::Current) else {
            return true;
        };
        let head = srv.header_room().saturating_add(1);
        let slot = batch.next_slot();
        let (ty, len) = match setup.as_mut() {
            Some(Setup {
                deflate: Some((compressor, buf)),
                sent,
                sent_compressed,
                ..
            }) => {
                let (ty, len) = compress_in_slot(compressor, buf, slot, head, len);
                *sent = sent.saturating_add(1);
                if ty == PacketType::Compressed {
                    *sent_compressed = sent_compressed.saturating_add(1);
                }
                (ty, len)
            }
            _ => (PacketType::Data, len),
        };
        let mut random = |buf: &mut [u8]| fill(rng, buf);
        let result = seal_slot(srv, batch.next_slot(), ty, len, &mut random)
            .map(<[u8]>::len)
            .and_then(|record| batch.push(socket.as_fd(), record));
        let sent = result.is_ok();
        note_send_error(result, cstp_override, pmtu, probe_len, socket);
        if sent {
            note_change(pmtu.sent(len), pmtu, probe_len, Some(socket));
        }
        true
    }

    /// Send the batched records (end of a burst of tun packets).
    pub fn flush(&mut self) {
        if let Some(socket) = self.slots.current() {
            let result = self.batch.flush(socket.as_fd());
            note_send_error(
                result,
                &mut self.cstp_override,
                &mut self.pmtu,
                &mut self.probe_len,
                socket,
            );
        }
    }

    /// At the end of the tunnel: tell the client's DTLS side (best effort).
    pub fn close(&mut self) {
        let (srv, socket) = self.slots.session_parts(Source::Current);
        if let Some(record) = srv.and_then(Server::close_notify) {
            let _ = send(socket, &record);
        }
        if let Some(
            setup @ Setup {
                deflate: Some((compressor, _)),
                ..
            },
        ) = &self.setup
        {
            log::info!(
                "DTLS compression {}: sent {} of {} packets compressed, received {} compressed",
                compressor.algorithm().name(),
                setup.sent_compressed,
                setup.sent,
                setup.received_compressed
            );
        }
    }
}

/// Compress the `len`-byte packet at `slot[head..]` in place when that pays (via `buf`): the
/// record's type and payload length. protocol.md §5.1: a COMPRESSED record only on a channel
/// where `X-DTLS-Content-Encoding` was announced.
fn compress_in_slot(
    compressor: &mut Compressor,
    buf: &mut [u8],
    slot: &mut [u8],
    head: usize,
    len: usize,
) -> (PacketType, usize) {
    let Some(packet) = slot.get(head..head.saturating_add(len)) else {
        return (PacketType::Data, len);
    };
    let Some(n) = compressor.compress(packet, buf) else {
        return (PacketType::Data, len);
    };
    match (slot.get_mut(head..head.saturating_add(n)), buf.get(..n)) {
        (Some(dst), Some(src)) => {
            dst.copy_from_slice(src);
            (PacketType::Compressed, n)
        }
        _ => (PacketType::Data, len),
    }
}

/// A failed DTLS send: a full socket drops the packets (UDP semantics); with
/// `try-mtu-discovery`, datagrams too large for the path lower the MTU (the packets are
/// dropped; their senders resend them smaller); anything else (ICMP unreachable reported on
/// the connected socket) sends data back to TLS.
fn note_send_error(
    result: io::Result<()>,
    cstp_override: &mut bool,
    pmtu: &mut PathMtu,
    probe_len: &mut usize,
    socket: &DtlsSocket,
) {
    match result {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        Err(err) if too_big(&err) && pmtu.discovery() => {
            let hint = udp_pmtu::path_mtu(socket.as_fd());
            log::debug!("DTLS datagram too large for the path (kernel's path MTU {hint:?})");
            note_change(pmtu.too_big(hint), pmtu, probe_len, Some(socket));
        }
        Err(err) => {
            log::debug!("DTLS send failed: {err}");
            *cstp_override = true;
        }
    }
}

/// EMSGSIZE: the datagram does not fit the path MTU the kernel knows (DF set).
fn too_big(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EMSGSIZE)
}

/// Act on a path MTU change: DPD probes follow the data MTU; giving up lets the kernel
/// fragment again. main hears of it through [`Dtls::take_mtu_change`].
fn note_change(change: Change, pmtu: &PathMtu, probe_len: &mut usize, socket: Option<&DtlsSocket>) {
    let data = match change {
        Change::None => return,
        // Logged when main hears of it: a client probe above the path raises the MTU, its echo
        // fails and lowers it again within one datagram.
        Change::Data(data) => {
            log::debug!("DTLS path MTU: data MTU {data}");
            data
        }
        Change::GaveUp(data) => {
            log::info!("no workable DTLS path MTU found: data MTU {data}, MTU discovery off");
            if let Some(socket) = socket {
                if let Err(err) = udp_pmtu::set_discovery(socket.as_fd(), false) {
                    log::warn!("cannot clear IP_MTU_DISCOVER on the UDP socket: {err}");
                }
            }
            data
        }
    };
    debug_assert_eq!(data, pmtu.data_mtu());
    *probe_len = usize::from(data).min(MAX_PAYLOAD);
}

/// Put `ty` and `payload` behind the header room of `buf` and seal them into one record.
fn seal_and_send(
    server: &mut Server,
    socket: Option<&DtlsSocket>,
    buf: &mut [u8],
    ty: PacketType,
    payload: &[u8],
    rng: &mut dyn FnMut(&mut [u8]),
) -> io::Result<()> {
    let start = server.header_room().saturating_add(1);
    let end = start.saturating_add(payload.len());
    buf.get_mut(start..end)
        .ok_or_else(|| io::Error::other("packet too large for the record buffer"))?
        .copy_from_slice(payload);
    let record = seal_slot(server, buf, ty, payload.len(), rng)?;
    send(socket, record)
}

/// Seal the `len` payload bytes already behind the header room and type byte of `buf`.
fn seal_slot<'b>(
    server: &mut Server,
    buf: &'b mut [u8],
    ty: PacketType,
    len: usize,
    rng: &mut dyn FnMut(&mut [u8]),
) -> io::Result<&'b [u8]> {
    let head = server.header_room();
    let plain = len.saturating_add(1);
    let need = head
        .saturating_add(plain)
        .saturating_add(server.trailer_room());
    let slot = buf
        .get_mut(..need)
        .ok_or_else(|| io::Error::other("packet too large for the record buffer"))?;
    *slot
        .get_mut(head)
        .ok_or_else(|| io::Error::other("record buffer too small"))? = ty.to_u8();
    let sealed = server
        .seal_in_place(slot, plain, rng)
        .map_err(io::Error::other)?;
    slot.get(..sealed)
        .ok_or_else(|| io::Error::other("sealed record larger than its buffer"))
}

/// One datagram, straight to the socket: tokio's `try_send` would refuse (WouldBlock) until the
/// reactor has seen the new socket writable, which loses the first handshake flight.
fn send(socket: Option<&DtlsSocket>, datagram: &[u8]) -> io::Result<()> {
    let socket = socket.ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
    nix::sys::socket::send(
        socket.as_fd().as_raw_fd(),
        datagram,
        nix::sys::socket::MsgFlags::empty(),
    )?;
    Ok(())
}

/// Send the queued handshake datagrams; losses are covered by the retransmission timer.
fn send_all(socket: Option<&DtlsSocket>, transmit: &mut Vec<Vec<u8>>) {
    for datagram in transmit.drain(..) {
        if let Err(err) = send(socket, &datagram) {
            log::debug!("DTLS handshake datagram not sent: {err}");
        }
    }
}

/// Randomness for the DTLS server. `SystemRandom` only fails if the kernel's getrandom does,
/// which it does not once the pool is initialised (long before any client connects).
fn fill(rng: &SystemRandom, buf: &mut [u8]) {
    if rng.fill(buf).is_err() {
        log::error!("getrandom failed");
    }
}
