//! The DTLS server state machine: one per client UDP conversation.
//!
//! ```text
//! ExpectClientHello --CH (PSK, no/bad cookie)--> ExpectClientHello   (+ HelloVerifyRequest)
//! ExpectClientHello --CH (PSK, good cookie)----> ExpectKeyExchange   (+ ServerHello, ServerHelloDone)
//! ExpectKeyExchange --ClientKeyExchange--------> ExpectFinished
//! ExpectClientHello --CH (legacy)--------------> ExpectFinished      (+ ServerHello, CCS, Finished)
//! ExpectFinished    --CCS, Finished------------> Established         (PSK: + CCS, Finished)
//! Established       --close_notify/fatal alert-> Closed
//! any waiting state --retransmissions exhausted-> Closed
//! ```
//!
//! Transitions consume the old state (`step`). The Established data path is handled in place
//! without allocating.

use std::time::{Duration, Instant};

use ring::hmac;

use super::cipher::DirectionKey;
use super::error::DtlsError;
use super::handshake::codec::{self, ClientHello};
use super::handshake::{legacy, msg, psk, Flight, Keys, Transcript};
use super::record::{self, content, Header, ReplayWindow};
use super::suite::Suite;
use super::Mode;

/// First retransmission timeout (RFC 6347 §4.2.4.1: 1 s, doubling).
const INITIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Retransmissions before giving up (1+2+4+8+16 s: past openconnect's 12 s handshake limit).
const MAX_RETRANSMITS: u8 = 5;

/// What a received datagram turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Handshake progress (maybe datagrams were queued in `transmit`), or a duplicate/replayed/
    /// undecryptable record that was dropped silently as DTLS requires.
    Nothing,
    /// Decrypted application data (the openconnect 1-byte type + payload), decrypted in place in
    /// the caller's buffer.
    Data(&'a [u8]),
    /// The handshake just completed.
    Established,
    /// The peer sent close_notify or a fatal alert.
    Closed,
}

/// One DTLS server session (the whole client's UDP conversation).
pub struct Server {
    mode: Mode,
    session_id: [u8; 32],
    server_random: [u8; 32],
    /// Stateless cookie key (PSK mode only).
    cookie_key: Option<hmac::Key>,
    state: State,
    /// Our next record sequence number in epochs 0 and 1.
    next_seq: [u64; 2],
}

enum State {
    ExpectClientHello,
    ExpectKeyExchange(Box<psk::Hello>, Retransmit),
    ExpectFinished(Box<Keyed>),
    Established(Box<Session>),
    Closed,
}

/// Keys are known; waiting for the client's ChangeCipherSpec and Finished.
struct Keyed {
    suite: Suite,
    master: [u8; 48],
    keys: Keys,
    transcript: Transcript,
    client_random: [u8; 32],
    /// Our last flight, resent on timeout or on a repeated ClientHello.
    flight: Flight,
    retransmit: Retransmit,
    /// PSK: message_seq of the Finished we send last; legacy: already sent (None).
    our_finished_seq: Option<u16>,
}

struct Session {
    suite: Suite,
    keys: Keys,
    window: ReplayWindow,
    /// PSK: our final flight, resent if the client repeats its Finished, until data arrives.
    final_flight: Option<Flight>,
}

#[derive(Clone, Copy)]
struct Retransmit {
    next: Instant,
    interval: Duration,
    left: u8,
}

impl Retransmit {
    fn start(now: Instant) -> Self {
        Self {
            next: now.checked_add(INITIAL_TIMEOUT).unwrap_or(now),
            interval: INITIAL_TIMEOUT,
            left: MAX_RETRANSMITS,
        }
    }
}

/// What one record did.
enum Outcome {
    Nothing,
    Data(std::ops::Range<usize>),
    Established,
    Closed,
}

impl Server {
    /// `session_id` = the X-DTLS-App-ID / X-DTLS-Session-ID we sent; `server_random` from the
    /// caller's RNG.
    pub fn new(mode: Mode, session_id: [u8; 32], server_random: [u8; 32]) -> Self {
        let cookie_key = match &mode {
            Mode::Psk { psk } => Some(psk::cookie_key(psk, &server_random)),
            Mode::Legacy { .. } => None,
        };
        Self {
            mode,
            session_id,
            server_random,
            cookie_key,
            state: State::ExpectClientHello,
            next_seq: [0, 0],
        }
    }

    /// Feeds one datagram (it may hold several records). Datagrams to send are pushed to
    /// `transmit`: at most one per datagram. Records after the first application-data record
    /// of a datagram are dropped (openconnect sends one per datagram, protocol.md §4.4), and so
    /// are records after one that made us answer: a client's flight ends with the record we
    /// answer, so only a forged datagram (say, ClientHellos back to back) carries more, and one
    /// datagram must never draw several answers.
    pub fn handle_datagram<'a>(
        &mut self,
        datagram: &'a mut [u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> Result<Received<'a>, DtlsError> {
        let mut rest: &'a mut [u8] = datagram;
        let mut result = Received::Nothing;
        let answered = transmit.len();
        while let Some((header, body, tail)) = record::split_first(std::mem::take(&mut rest)) {
            rest = tail;
            if transmit.len() > answered {
                break;
            }
            match self.handle_record(header, body, now, rng, transmit)? {
                Outcome::Nothing => {}
                Outcome::Established => result = Received::Established,
                Outcome::Closed => return Ok(Received::Closed),
                Outcome::Data(range) => {
                    let body: &'a [u8] = body;
                    return Ok(body.get(range).map_or(Received::Nothing, Received::Data));
                }
            }
        }
        Ok(result)
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// The IANA code point of the established session's cipher suite (`None` before the
    /// handshake completed): what the worker reports to main (`ToMain::TunnelState`).
    pub fn established_suite(&self) -> Option<u16> {
        match &self.state {
            State::Established(s) => Some(s.suite.id()),
            _ => None,
        }
    }

    /// The handshake failed for good or the channel was closed: drop this server.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Handshake retransmission timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::ExpectKeyExchange(_, rt) => Some(rt.next),
            State::ExpectFinished(k) => Some(k.retransmit.next),
            State::ExpectClientHello | State::Established(_) | State::Closed => None,
        }
    }

    /// Resends our last flight when its timer is due; gives up (Closed) after
    /// `MAX_RETRANSMITS`.
    pub fn handle_timeout(&mut self, now: Instant, transmit: &mut Vec<Vec<u8>>) {
        let version = self.version();
        let (flight, key, rt) = match &mut self.state {
            State::ExpectKeyExchange(hello, rt) => (&hello.flight, None, rt),
            State::ExpectFinished(k) => (&k.flight, Some(&k.keys.seal), &mut k.retransmit),
            State::ExpectClientHello | State::Established(_) | State::Closed => return,
        };
        if now < rt.next {
            return;
        }
        if rt.left == 0 {
            self.state = State::Closed;
            return;
        }
        rt.left = rt.left.saturating_sub(1);
        rt.interval = rt.interval.saturating_mul(2);
        rt.next = now.checked_add(rt.interval).unwrap_or(now);
        if emit(&mut self.next_seq, version, flight, key, transmit).is_err() {
            self.state = State::Closed;
        }
    }

    /// Bytes to reserve in front of a payload for `seal_in_place`.
    pub fn header_room(&self) -> usize {
        // 13-byte header + explicit IV (CBC) or explicit nonce (GCM).
        if self.suite().is_cbc() {
            29
        } else {
            21
        }
    }

    /// Bytes to reserve after a payload for `seal_in_place`.
    pub fn trailer_room(&self) -> usize {
        if self.suite().is_cbc() {
            20 + 16
        } else {
            16
        }
    }

    /// Encrypts `buf[header_room .. header_room + len]` in place into one application-data
    /// record occupying `buf[.. returned length]`. No allocation. `rng` is used only by CBC
    /// (random explicit IV); GCM's explicit nonce is epoch||seq.
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Result<usize, DtlsError> {
        self.seal_record(content::APPLICATION_DATA, buf, len, rng)
    }

    /// A close_notify alert record to send when we shut the channel; the server is Closed
    /// afterwards.
    pub fn close_notify(&mut self) -> Option<Vec<u8>> {
        let room = self.header_room();
        let mut buf = vec![0u8; room.saturating_add(2).saturating_add(self.trailer_room())];
        buf.get_mut(room..room.saturating_add(2))?
            .copy_from_slice(&[1, 0]);
        // The IV of this last record needs no secrecy from the future: derive it from the seq.
        let seq = self.next_seq[1];
        let len = self
            .seal_record(content::ALERT, &mut buf, 2, &mut |iv| {
                iv.iter_mut()
                    .zip(seq.to_be_bytes().iter().cycle())
                    .for_each(|(o, s)| *o = *s);
            })
            .ok()?;
        buf.truncate(len);
        self.state = State::Closed;
        Some(buf)
    }

    /// The negotiated (or, before that, expected) cipher's record overhead, for the MTU.
    pub fn record_overhead(&self) -> u16 {
        self.suite().record_overhead()
    }

    /// Human name of what was negotiated, for logs ("DTLS1.2 PSK AES-256-GCM").
    pub fn describe(&self) -> String {
        match (&self.state, &self.mode) {
            (State::Established(s), _) => s.suite.describe(),
            (_, Mode::Psk { .. }) => "DTLS1.2 PSK (handshaking)".to_string(),
            (_, Mode::Legacy { suite, .. }) => Suite::Legacy(*suite).describe(),
        }
    }

    fn suite(&self) -> Suite {
        match (&self.state, &self.mode) {
            (State::Established(s), _) => s.suite,
            (State::ExpectFinished(k), _) => k.suite,
            (State::ExpectKeyExchange(h, _), _) => h.suite,
            (_, Mode::Legacy { suite, .. }) => Suite::Legacy(*suite),
            // Both PSK suites are AES-GCM: same framing.
            (_, Mode::Psk { .. }) => Suite::Psk { aes256: true },
        }
    }

    /// Record version of what we send.
    fn version(&self) -> u16 {
        self.suite().version()
    }

    fn seal_record(
        &mut self,
        ty: u8,
        buf: &mut [u8],
        len: usize,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Result<usize, DtlsError> {
        let version = self.version();
        let State::Established(session) = &self.state else {
            return Err(DtlsError::NotEstablished);
        };
        let seq = self.next_seq[1];
        if seq > record::MAX_SEQ {
            return Err(DtlsError::SequenceExhausted);
        }
        let header = Header {
            ty,
            version,
            epoch: 1,
            seq,
            len: 0,
        };
        let n = session.keys.seal.seal(header, buf, len, rng)?;
        self.next_seq[1] = seq.saturating_add(1);
        Ok(n)
    }

    fn handle_record(
        &mut self,
        header: Header,
        body: &mut [u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> Result<Outcome, DtlsError> {
        // Fast path: the data channel, in place, no allocation.
        if let State::Established(session) = &mut self.state {
            return Ok(match established_record(session, header, body) {
                Some(Outcome::Closed) => {
                    self.state = State::Closed;
                    Outcome::Closed
                }
                Some(Outcome::Established) => {
                    if let State::Established(s) = &self.state {
                        if let Some(flight) = &s.final_flight {
                            let version = s.suite.version();
                            let seal = Some(&s.keys.seal);
                            emit(&mut self.next_seq, version, flight, seal, transmit)?;
                        }
                    }
                    Outcome::Nothing
                }
                Some(other) => other,
                None => Outcome::Nothing,
            });
        }
        let state = std::mem::replace(&mut self.state, State::Closed);
        let (state, outcome) = self.step(state, header, body, now, rng, transmit);
        self.state = state;
        outcome
    }

    /// One handshake-phase record: consumes the state, returns the next one (the old one on a
    /// rejected record) and what happened.
    fn step(
        &mut self,
        state: State,
        header: Header,
        body: &mut [u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> (State, Result<Outcome, DtlsError>) {
        if header.ty == content::ALERT && header.epoch == 0 {
            // A plaintext alert during the handshake: fatal ends it, warnings are ignored.
            return match body {
                [2, desc, ..] => (State::Closed, Err(DtlsError::PeerAlert(*desc))),
                _ => (state, Ok(Outcome::Nothing)),
            };
        }
        match state {
            State::ExpectClientHello if header.ty == content::HANDSHAKE && header.epoch == 0 => {
                self.on_client_hello(state, body, now, rng, transmit)
            }
            State::ExpectKeyExchange(hello, rt)
                if header.ty == content::HANDSHAKE && header.epoch == 0 =>
            {
                self.on_key_exchange(hello, rt, body, now, rng, transmit)
            }
            State::ExpectFinished(mut keyed) => match (header.ty, header.epoch) {
                (content::CHANGE_CIPHER_SPEC, 0) => {
                    (State::ExpectFinished(keyed), Ok(Outcome::Nothing))
                }
                (content::HANDSHAKE, 0) => {
                    // A repeated ClientHello (legacy: our flight was lost): resend.
                    let repeated = first_client_hello_random(body) == Some(keyed.client_random);
                    let sent = if repeated && keyed.our_finished_seq.is_none() {
                        let version = keyed.suite.version();
                        emit(
                            &mut self.next_seq,
                            version,
                            &keyed.flight,
                            Some(&keyed.keys.seal),
                            transmit,
                        )
                    } else {
                        Ok(())
                    };
                    (
                        State::ExpectFinished(keyed),
                        sent.map(|()| Outcome::Nothing),
                    )
                }
                (content::HANDSHAKE, 1) => {
                    let Some(range) = keyed.keys.open.open(&header, body) else {
                        return (State::ExpectFinished(keyed), Err(DtlsError::BadRecordMac));
                    };
                    let plain = body.get(range).unwrap_or_default();
                    match self.on_client_finished(&mut keyed, plain, transmit) {
                        Ok(final_flight) => {
                            let mut window = ReplayWindow::default();
                            window.mark(header.seq);
                            let Keyed { suite, keys, .. } = *keyed;
                            let session = Session {
                                suite,
                                keys,
                                window,
                                final_flight,
                            };
                            (
                                State::Established(Box::new(session)),
                                Ok(Outcome::Established),
                            )
                        }
                        Err(e @ DtlsError::BadFinished) => (State::Closed, Err(e)),
                        Err(e) => (State::ExpectFinished(keyed), Err(e)),
                    }
                }
                _ => (State::ExpectFinished(keyed), Ok(Outcome::Nothing)),
            },
            other => (other, Ok(Outcome::Nothing)),
        }
    }

    fn on_client_hello(
        &mut self,
        state: State,
        body: &[u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> (State, Result<Outcome, DtlsError>) {
        match self.client_hello(body, now, rng, transmit) {
            Ok(Some(next)) => (next, Ok(Outcome::Nothing)),
            Ok(None) => (state, Ok(Outcome::Nothing)),
            Err(e) => (state, Err(e)),
        }
    }

    /// Answers a ClientHello; `None` = stay (HelloVerifyRequest sent or nothing to do).
    fn client_hello(
        &mut self,
        body: &[u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> Result<Option<State>, DtlsError> {
        let Some(message) = codec::messages(body).next().transpose()? else {
            return Ok(None);
        };
        if message.msg_type != msg::CLIENT_HELLO {
            return Err(DtlsError::Unexpected(codec::name(message.msg_type)));
        }
        let ch = ClientHello::parse(message.body)?;
        match &self.mode {
            Mode::Psk { .. } => {
                let Some(cookie_key) = &self.cookie_key else {
                    return Ok(None);
                };
                if !psk::cookie_ok(cookie_key, &ch) {
                    let hvr = psk::hello_verify_request(cookie_key, &ch, message.msg_seq);
                    let mut flight = Flight::default();
                    flight.push(content::HANDSHAKE, 0, hvr, [0; 16]);
                    emit(&mut self.next_seq, record::DTLS1_0, &flight, None, transmit)?;
                    return Ok(None);
                }
                let mut new_id = [0u8; 32];
                rng(&mut new_id);
                let hello = psk::answer_hello(
                    &ch,
                    message.whole,
                    message.msg_seq,
                    &self.server_random,
                    &new_id,
                )?;
                emit(
                    &mut self.next_seq,
                    record::DTLS1_2,
                    &hello.flight,
                    None,
                    transmit,
                )?;
                Ok(Some(State::ExpectKeyExchange(
                    Box::new(hello),
                    Retransmit::start(now),
                )))
            }
            Mode::Legacy {
                master_secret,
                suite,
            } => {
                let mut iv = [0u8; 16];
                rng(&mut iv);
                let answered = legacy::answer_hello(
                    &ch,
                    message.whole,
                    *suite,
                    master_secret,
                    &self.session_id,
                    &self.server_random,
                    iv,
                )?;
                let version = answered.suite.version();
                emit(
                    &mut self.next_seq,
                    version,
                    &answered.flight,
                    Some(&answered.keys.seal),
                    transmit,
                )?;
                Ok(Some(State::ExpectFinished(Box::new(Keyed {
                    suite: answered.suite,
                    master: *master_secret,
                    keys: answered.keys,
                    transcript: answered.transcript,
                    client_random: answered.client_random,
                    flight: answered.flight,
                    retransmit: Retransmit::start(now),
                    our_finished_seq: None,
                }))))
            }
        }
    }

    fn on_key_exchange(
        &mut self,
        mut hello: Box<psk::Hello>,
        rt: Retransmit,
        body: &[u8],
        now: Instant,
        rng: &mut dyn FnMut(&mut [u8]),
        transmit: &mut Vec<Vec<u8>>,
    ) -> (State, Result<Outcome, DtlsError>) {
        let Some(Ok(message)) = codec::messages(body).next() else {
            return (
                State::ExpectKeyExchange(hello, rt),
                Err(DtlsError::Malformed("handshake header or fragment")),
            );
        };
        match message.msg_type {
            msg::CLIENT_HELLO => {
                if first_client_hello_random(body) == Some(hello.client_random) {
                    // Our ServerHello flight was lost: resend it.
                    let sent = emit(
                        &mut self.next_seq,
                        record::DTLS1_2,
                        &hello.flight,
                        None,
                        transmit,
                    );
                    return (
                        State::ExpectKeyExchange(hello, rt),
                        sent.map(|()| Outcome::Nothing),
                    );
                }
                // A new handshake replaces the pending one.
                let state = State::ExpectKeyExchange(hello, rt);
                self.on_client_hello(state, body, now, rng, transmit)
            }
            msg::CLIENT_KEY_EXCHANGE => {
                if let Err(e) = codec::psk_identity(message.body) {
                    return (State::ExpectKeyExchange(hello, rt), Err(e));
                }
                let Mode::Psk { psk } = &self.mode else {
                    return (
                        State::Closed,
                        Err(DtlsError::Unexpected("ClientKeyExchange")),
                    );
                };
                let master =
                    psk::master_secret(hello.suite, psk, &hello.client_random, &self.server_random);
                let keys = match super::handshake::derive_keys(
                    hello.suite,
                    &master,
                    &hello.client_random,
                    &self.server_random,
                ) {
                    Ok(k) => k,
                    Err(e) => return (State::ExpectKeyExchange(hello, rt), Err(e)),
                };
                hello.transcript.add(message.whole);
                let psk::Hello {
                    suite,
                    client_random,
                    transcript,
                    flight,
                    finished_seq,
                } = *hello;
                let keyed = Keyed {
                    suite,
                    master,
                    keys,
                    transcript,
                    client_random,
                    flight,
                    retransmit: rt,
                    our_finished_seq: Some(finished_seq),
                };
                (State::ExpectFinished(Box::new(keyed)), Ok(Outcome::Nothing))
            }
            other => (
                State::ExpectKeyExchange(hello, rt),
                Err(DtlsError::Unexpected(codec::name(other))),
            ),
        }
    }

    /// Verifies the client's Finished; in PSK mode also sends our CCS + Finished and returns
    /// that flight for retransmission.
    fn on_client_finished(
        &mut self,
        keyed: &mut Keyed,
        plain: &[u8],
        transmit: &mut Vec<Vec<u8>>,
    ) -> Result<Option<Flight>, DtlsError> {
        let message = codec::messages(plain)
            .next()
            .transpose()?
            .ok_or(DtlsError::Malformed("Finished"))?;
        if message.msg_type != msg::FINISHED {
            return Err(DtlsError::Unexpected(codec::name(message.msg_type)));
        }
        let expected =
            keyed
                .transcript
                .verify_data(keyed.suite.prf(), &keyed.master, b"client finished");
        let ok = message.body.len() == expected.len()
            && message
                .body
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !ok {
            return Err(DtlsError::BadFinished);
        }
        let Some(finished_seq) = keyed.our_finished_seq else {
            return Ok(None);
        };
        keyed.transcript.add(message.whole);
        let verify =
            keyed
                .transcript
                .verify_data(keyed.suite.prf(), &keyed.master, b"server finished");
        let mut flight = Flight::default();
        flight.push(content::CHANGE_CIPHER_SPEC, 0, vec![1], [0; 16]);
        flight.push(
            content::HANDSHAKE,
            1,
            codec::message(msg::FINISHED, finished_seq, &verify),
            [0; 16],
        );
        emit(
            &mut self.next_seq,
            record::DTLS1_2,
            &flight,
            Some(&keyed.keys.seal),
            transmit,
        )?;
        Ok(Some(flight))
    }
}

/// An epoch-1 record on an established session; `None` = dropped. `Some(Established)` here
/// means "the client repeated its Finished": resend our final flight.
fn established_record(session: &mut Session, header: Header, body: &mut [u8]) -> Option<Outcome> {
    if header.epoch != 1 || !session.window.is_fresh(header.seq) {
        return None;
    }
    let range = session.keys.open.open(&header, body)?;
    session.window.mark(header.seq);
    match header.ty {
        content::APPLICATION_DATA => {
            session.final_flight = None;
            Some(Outcome::Data(range))
        }
        content::ALERT => match body.get(range)? {
            // close_notify, or any fatal alert (RFC 5246 §7.2).
            [_, 0] | [2, _] => Some(Outcome::Closed),
            _ => None,
        },
        content::HANDSHAKE if session.final_flight.is_some() => Some(Outcome::Established),
        _ => None,
    }
}

/// The client random of a ClientHello record body, if that is what it holds.
fn first_client_hello_random(body: &[u8]) -> Option<[u8; 32]> {
    let message = codec::messages(body).next()?.ok()?;
    if message.msg_type != msg::CLIENT_HELLO {
        return None;
    }
    message.body.get(2..34)?.try_into().ok()
}

/// Serialises `flight` into one datagram with fresh record sequence numbers.
fn emit(
    next_seq: &mut [u64; 2],
    version: u16,
    flight: &Flight,
    seal: Option<&DirectionKey>,
    transmit: &mut Vec<Vec<u8>>,
) -> Result<(), DtlsError> {
    let mut datagram = Vec::with_capacity(256);
    for r in &flight.records {
        let slot = next_seq
            .get_mut(usize::from(r.epoch.min(1)))
            .ok_or(DtlsError::Crypto)?;
        let seq = *slot;
        if seq > record::MAX_SEQ {
            return Err(DtlsError::SequenceExhausted);
        }
        *slot = seq.saturating_add(1);
        let mut header = Header {
            ty: r.ty,
            version,
            epoch: r.epoch,
            seq,
            len: 0,
        };
        match (r.epoch, seal) {
            (0, _) => {
                header.len = u16::try_from(r.payload.len()).map_err(|_| DtlsError::Crypto)?;
                datagram.extend_from_slice(&header.to_bytes());
                datagram.extend_from_slice(&r.payload);
            }
            (_, Some(key)) => {
                let start = record::HEADER_LEN.saturating_add(key.explicit_len());
                let end = start.saturating_add(r.payload.len());
                let mut buf = vec![0u8; end.saturating_add(key.trailer_len())];
                buf.get_mut(start..end)
                    .ok_or(DtlsError::BufferTooSmall)?
                    .copy_from_slice(&r.payload);
                let iv = r.iv;
                let n = key.seal(header, &mut buf, r.payload.len(), &mut |out| {
                    out.iter_mut().zip(iv).for_each(|(o, i)| *o = i);
                })?;
                datagram.extend_from_slice(buf.get(..n).ok_or(DtlsError::BufferTooSmall)?);
            }
            (_, None) => return Err(DtlsError::NotEstablished),
        }
    }
    transmit.push(datagram);
    Ok(())
}
