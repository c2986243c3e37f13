//! A minimal DTLS client for deterministic in-memory tests of [`super::Server`]: it speaks
//! exactly the flights openconnect does (protocol.md §4.2, §4.3), built from the same codec and
//! key schedule but from the client's side, so a mismatch in either direction fails the test.

use std::time::Instant;

use super::cipher::DirectionKey;
use super::handshake::codec::{self, Reader};
use super::handshake::{derive_keys, msg, psk, Keys, Transcript};
use super::record::{self, content, Header};
use super::suite::{LegacySuite, Suite};
use super::{Mode, Received, Server};

pub(crate) struct TestClient {
    mode: Mode,
    session_id: Vec<u8>,
    random: [u8; 32],
    suites: Vec<u16>,
    version: u16,
    seq: [u64; 2],
    msg_seq: u16,
    suite: Option<Suite>,
    master: [u8; 48],
    server_random: [u8; 32],
    transcript: Option<Transcript>,
    keys: Option<Keys>,
    transcript_hello: Option<Vec<u8>>,
    last_flight: Vec<(u8, u16, Vec<u8>)>,
}

impl TestClient {
    pub(crate) fn new(mode: Mode, session_id: &[u8]) -> Self {
        let (suites, version, master) = match &mode {
            Mode::Psk { .. } => (
                vec![0x00a9, 0xccab, 0x008d, 0x00a8],
                record::DTLS1_2,
                [0; 48],
            ),
            Mode::Legacy {
                master_secret,
                suite,
            } => {
                let s = Suite::Legacy(*suite);
                (vec![s.id()], s.version(), *master_secret)
            }
        };
        Self {
            mode,
            session_id: session_id.to_vec(),
            random: [0x42; 32],
            suites,
            version,
            seq: [0, 0],
            msg_seq: 0,
            suite: None,
            master,
            server_random: [0; 32],
            transcript: None,
            keys: None,
            transcript_hello: None,
            last_flight: Vec::new(),
        }
    }

    pub(crate) fn with_suites(mut self, suites: &[u16]) -> Self {
        self.suites = suites.to_vec();
        self
    }

    /// A ClientHello datagram (with `cookie` after a HelloVerifyRequest).
    pub(crate) fn client_hello(&mut self, cookie: &[u8]) -> Vec<u8> {
        let mut body = self.version.to_be_bytes().to_vec();
        body.extend_from_slice(&self.random);
        body.push(self.session_id.len() as u8);
        body.extend_from_slice(&self.session_id);
        body.push(cookie.len() as u8);
        body.extend_from_slice(cookie);
        body.extend_from_slice(&((self.suites.len() * 2) as u16).to_be_bytes());
        for s in &self.suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        // extended_master_secret and renegotiation_info, as gnutls-cli sends.
        body.extend_from_slice(&[0, 9, 0, 0x17, 0, 0, 0xff, 0x01, 0, 1, 0]);
        let m = codec::message(msg::CLIENT_HELLO, self.msg_seq, &body);
        self.msg_seq += 1;
        self.transcript_hello = Some(m.clone());
        self.record(content::HANDSHAKE, 0, &m)
    }

    fn record(&mut self, ty: u8, epoch: u16, payload: &[u8]) -> Vec<u8> {
        let seq = self.seq[usize::from(epoch)];
        self.seq[usize::from(epoch)] += 1;
        let header = Header {
            ty,
            version: self.version,
            epoch,
            seq,
            len: payload.len() as u16,
        };
        if epoch == 0 {
            let mut out = header.to_bytes().to_vec();
            out.extend_from_slice(payload);
            return out;
        }
        let key = &self.keys.as_ref().unwrap().open; // the client writes with "client" keys
        let start = record::HEADER_LEN + key.explicit_len();
        let mut buf = vec![0u8; start + payload.len() + key.trailer_len()];
        buf[start..start + payload.len()].copy_from_slice(payload);
        let n = key
            .seal(header, &mut buf, payload.len(), &mut |iv| iv.fill(7))
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// The (type, epoch, plaintext) records of a server datagram.
    pub(crate) fn records(&self, datagram: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
        let mut copy = datagram.to_vec();
        let mut rest = &mut copy[..];
        let mut out = Vec::new();
        while let Some((h, body, tail)) = record::split_first(std::mem::take(&mut rest)) {
            let hvr_possible = matches!(self.mode, Mode::Psk { .. }) && self.suite.is_none();
            let ok = h.version == self.version || (hvr_possible && h.version == record::DTLS1_0);
            assert!(ok, "record version {:#x}", h.version);
            if h.epoch == 0 {
                out.push((h.ty, 0, body.to_vec()));
            } else {
                let key: &DirectionKey = &self.keys.as_ref().unwrap().seal;
                let range = key.open(&h, body).expect("server record decrypts");
                out.push((h.ty, h.epoch, body[range].to_vec()));
            }
            rest = tail;
        }
        out
    }

    /// The cookie of a HelloVerifyRequest datagram.
    pub(crate) fn cookie_from(&self, datagram: &[u8]) -> Vec<u8> {
        let recs = self.records(datagram);
        let m = codec::messages(&recs[0].2).next().unwrap().unwrap();
        assert_eq!(m.msg_type, msg::HELLO_VERIFY_REQUEST);
        let mut r = Reader::new(m.body);
        assert_eq!(r.u16(), Some(record::DTLS1_0));
        r.vec8().unwrap().to_vec()
    }

    /// PSK: takes ServerHello + ServerHelloDone, returns ClientKeyExchange + CCS + Finished.
    pub(crate) fn psk_key_exchange(&mut self, datagram: &[u8]) -> Vec<u8> {
        let recs = self.records(datagram);
        let mut hs = Vec::new();
        for (ty, _, payload) in &recs {
            assert_eq!(*ty, content::HANDSHAKE);
            hs.extend_from_slice(payload);
        }
        let msgs: Vec<_> = codec::messages(&hs).map(Result::unwrap).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].msg_type, msg::SERVER_HELLO);
        assert_eq!(msgs[1].msg_type, msg::SERVER_HELLO_DONE);
        let suite = self.take_server_hello(msgs[0].body);
        let mut t = Transcript::new(suite.prf());
        t.add(self.transcript_hello.as_ref().unwrap());
        t.add(msgs[0].whole);
        t.add(msgs[1].whole);
        let Mode::Psk { psk: key } = &self.mode else {
            panic!()
        };
        self.master = psk::master_secret(suite, key, &self.random, &self.server_random);
        self.keys =
            Some(derive_keys(suite, &self.master, &self.random, &self.server_random).unwrap());
        let cke = codec::message(
            msg::CLIENT_KEY_EXCHANGE,
            self.msg_seq,
            &[0, 3, b'p', b's', b'k'],
        );
        self.msg_seq += 1;
        t.add(&cke);
        let verify = t.verify_data(suite.prf(), &self.master, b"client finished");
        let fin = codec::message(msg::FINISHED, self.msg_seq, &verify);
        t.add(&fin);
        self.transcript = Some(t);
        self.last_flight = vec![
            (content::HANDSHAKE, 0, cke),
            (content::CHANGE_CIPHER_SPEC, 0, vec![1]),
            (content::HANDSHAKE, 1, fin),
        ];
        self.resend()
    }

    fn take_server_hello(&mut self, body: &[u8]) -> Suite {
        let mut r = Reader::new(body);
        assert_eq!(r.u16(), Some(self.version));
        self.server_random = r.take(32).unwrap().try_into().unwrap();
        let sid = r.vec8().unwrap().to_vec();
        let id = r.u16().unwrap();
        let suite = match id {
            0x00a8 => Suite::Psk { aes256: false },
            0x00a9 => Suite::Psk { aes256: true },
            _ => {
                assert_eq!(sid, self.session_id, "legacy: the session id is echoed");
                let Mode::Legacy { suite, .. } = self.mode else {
                    panic!("suite {id:#x}")
                };
                assert_eq!(Suite::Legacy(suite).id(), id);
                Suite::Legacy(suite)
            }
        };
        self.suite = Some(suite);
        suite
    }

    /// PSK: checks the server's CCS + Finished.
    pub(crate) fn psk_finish(&mut self, datagram: &[u8]) {
        let recs = self.records(datagram);
        assert_eq!(recs[0], (content::CHANGE_CIPHER_SPEC, 0, vec![1]));
        let (ty, epoch, fin) = &recs[1];
        assert_eq!((*ty, *epoch), (content::HANDSHAKE, 1));
        let m = codec::messages(fin).next().unwrap().unwrap();
        let t = self.transcript.as_ref().unwrap();
        let suite = self.suite.unwrap();
        assert_eq!(
            m.body,
            t.verify_data(suite.prf(), &self.master, b"server finished")
        );
    }

    /// Legacy: takes ServerHello + CCS + Finished, returns CCS + Finished.
    pub(crate) fn legacy_finish(&mut self, datagram: &[u8]) -> Vec<u8> {
        let mut copy = datagram.to_vec();
        let (h, body, rest) = record::split_first(&mut copy).unwrap();
        assert_eq!(h.ty, content::HANDSHAKE);
        let sh_whole = body.to_vec();
        let m = codec::messages(&sh_whole).next().unwrap().unwrap();
        let suite = self.take_server_hello(m.body);
        self.keys =
            Some(derive_keys(suite, &self.master, &self.random, &self.server_random).unwrap());
        let mut t = Transcript::new(suite.prf());
        t.add(self.transcript_hello.as_ref().unwrap());
        t.add(m.whole);
        let recs = self.records(rest);
        let dtls09 = suite.is_dtls09();
        let ccs = if dtls09 { vec![1, 0, 1] } else { vec![1] };
        assert_eq!(recs[0], (content::CHANGE_CIPHER_SPEC, 0, ccs.clone()));
        let fin = codec::messages(&recs[1].2).next().unwrap().unwrap();
        assert_eq!(fin.msg_seq, if dtls09 { 2 } else { 1 });
        assert_eq!(
            fin.body,
            t.verify_data(suite.prf(), &self.master, b"server finished")
        );
        t.add(fin.whole);
        let verify = t.verify_data(suite.prf(), &self.master, b"client finished");
        let seq = if dtls09 { 2 } else { 1 };
        let mine = codec::message(msg::FINISHED, seq, &verify);
        self.last_flight = vec![
            (content::CHANGE_CIPHER_SPEC, 0, ccs),
            (content::HANDSHAKE, 1, mine),
        ];
        self.resend()
    }

    /// The last flight again, with fresh record sequence numbers (RFC 6347 §4.2.4).
    pub(crate) fn resend(&mut self) -> Vec<u8> {
        let flight = self.last_flight.clone();
        let mut out = Vec::new();
        for (ty, epoch, payload) in &flight {
            out.extend(self.record(*ty, *epoch, payload));
        }
        out
    }

    pub(crate) fn seal(&mut self, ty: u8, data: &[u8]) -> Vec<u8> {
        self.record(ty, 1, data)
    }
}

/// Drives a handshake to completion between `server` and `client`, returning the time used.
pub(crate) fn handshake(server: &mut Server, client: &mut TestClient, now: Instant) {
    let mut rng = |b: &mut [u8]| b.fill(0x5a);
    let mut tx = Vec::new();
    let mut ch = client.client_hello(&[]);
    let psk_mode = matches!(client.mode, Mode::Psk { .. });
    if psk_mode {
        assert_eq!(
            server.handle_datagram(&mut ch, now, &mut rng, &mut tx),
            Ok(Received::Nothing)
        );
        assert_eq!(tx.len(), 1, "HelloVerifyRequest");
        assert_eq!(server.poll_timeout(), None, "stateless HelloVerifyRequest");
        let cookie = client.cookie_from(&tx.pop().unwrap());
        let mut ch2 = client.client_hello(&cookie);
        assert_eq!(
            server.handle_datagram(&mut ch2, now, &mut rng, &mut tx),
            Ok(Received::Nothing)
        );
        let mut flight3 = client.psk_key_exchange(&tx.pop().unwrap());
        let got = server.handle_datagram(&mut flight3, now, &mut rng, &mut tx);
        assert_eq!(got, Ok(Received::Established));
        client.psk_finish(&tx.pop().unwrap());
    } else {
        assert_eq!(
            server.handle_datagram(&mut ch, now, &mut rng, &mut tx),
            Ok(Received::Nothing)
        );
        assert!(server.poll_timeout().is_some());
        let mut fin = client.legacy_finish(&tx.pop().unwrap());
        let got = server.handle_datagram(&mut fin, now, &mut rng, &mut tx);
        assert_eq!(got, Ok(Received::Established));
        assert!(
            tx.is_empty(),
            "the client has the last word in a resumption"
        );
    }
    assert!(server.is_established());
    assert_eq!(server.poll_timeout(), None);
}

pub(crate) fn legacy(suite: LegacySuite) -> (Server, TestClient) {
    let mode = Mode::Legacy {
        master_secret: [0x33; 48],
        suite,
    };
    let server = Server::new(mode.clone(), [0x44; 32], [0x55; 32]);
    (server, TestClient::new(mode, &[0x44; 32]))
}

pub(crate) fn psk_pair() -> (Server, TestClient) {
    let mode = Mode::Psk { psk: [0x66; 32] };
    let server = Server::new(mode.clone(), [0x44; 32], [0x55; 32]);
    (server, TestClient::new(mode, &[0x44; 32]))
}
