//! Bounded parsing and building of the few handshake messages we use (RFC 5246 §7.4, RFC 6347
//! §4.2, RFC 4279 §2). Every length-prefixed field is read through a sub-reader, so a lying length
//! cannot read past its parent.

use super::super::error::DtlsError;
use super::msg;

/// Length of the DTLS handshake header: type(1) length(3) message_seq(2) fragment_offset(3)
/// fragment_length(3).
pub(crate) const HS_HEADER_LEN: usize = 12;

/// Minimal cursor over a byte slice.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes(b.try_into().ok()?))
    }
    pub(crate) fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from_be_bytes([
            0,
            0,
            0,
            0,
            0,
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
        ]))
    }
    /// A `<0..2^8-1>` vector.
    pub(crate) fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// A `<0..2^16-1>` vector.
    pub(crate) fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One handshake message out of a record body.
pub(crate) struct Message<'a> {
    pub(crate) msg_type: u8,
    pub(crate) msg_seq: u16,
    pub(crate) body: &'a [u8],
    /// Header + body: what the DTLS 1.2 transcript hashes.
    pub(crate) whole: &'a [u8],
}

/// Splits the handshake messages of one record body; `Err` on a fragment or bad length.
pub(crate) fn messages(record: &[u8]) -> impl Iterator<Item = Result<Message<'_>, DtlsError>> {
    let mut rest = record;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = parse_message(rest);
        match parsed {
            Some((m, tail)) => {
                rest = tail;
                Some(Ok(m))
            }
            None => {
                rest = &[];
                Some(Err(DtlsError::Malformed("handshake header or fragment")))
            }
        }
    })
}

fn parse_message(bytes: &[u8]) -> Option<(Message<'_>, &[u8])> {
    let mut r = Reader::new(bytes);
    let msg_type = r.u8()?;
    let len = r.u24()?;
    let msg_seq = r.u16()?;
    let frag_off = r.u24()?;
    let frag_len = r.u24()?;
    if frag_off != 0 || frag_len != len {
        return None;
    }
    let body = r.take(len)?;
    let total = HS_HEADER_LEN.checked_add(len)?;
    let (whole, tail) = bytes.split_at_checked(total)?;
    Some((
        Message {
            msg_type,
            msg_seq,
            body,
            whole,
        },
        tail,
    ))
}

/// The fields of a ClientHello we use (RFC 6347 §4.2.1).
pub(crate) struct ClientHello<'a> {
    pub(crate) version: u16,
    pub(crate) random: [u8; 32],
    pub(crate) session_id: &'a [u8],
    pub(crate) cookie: &'a [u8],
    /// Cipher suite ids, two bytes each.
    pub(crate) suites: &'a [u8],
    /// Whether the client asked for secure renegotiation (extension 0xFF01 or SCSV 0x00FF).
    pub(crate) wants_renegotiation_info: bool,
}

impl<'a> ClientHello<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DtlsError> {
        Self::parse_opt(body).ok_or(DtlsError::Malformed("ClientHello"))
    }

    fn parse_opt(body: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(body);
        let version = r.u16()?;
        let random: [u8; 32] = r.take(32)?.try_into().ok()?;
        let session_id = r.vec8()?;
        let cookie = r.vec8()?;
        let suites = r.vec16()?;
        let _compression = r.vec8()?;
        if session_id.len() > 32 || suites.len() % 2 != 0 {
            return None;
        }
        let mut reneg = suite_ids(suites).any(|s| s == 0x00FF);
        if !r.is_empty() {
            let mut ext = Reader::new(r.vec16()?);
            while !ext.is_empty() {
                let ty = ext.u16()?;
                let _data = ext.vec16()?;
                reneg |= ty == 0xFF01;
            }
        }
        Some(Self {
            version,
            random,
            session_id,
            cookie,
            suites,
            wants_renegotiation_info: reneg,
        })
    }

    pub(crate) fn offers(&self, suite: u16) -> bool {
        suite_ids(self.suites).any(|s| s == suite)
    }
}

pub(crate) fn suite_ids(suites: &[u8]) -> impl Iterator<Item = u16> + '_ {
    suites.chunks_exact(2).map(|c| {
        u16::from_be_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    })
}

/// A handshake message with its (unfragmented) DTLS header.
pub(crate) fn message(msg_type: u8, msg_seq: u16, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    let mut out = Vec::with_capacity(HS_HEADER_LEN.saturating_add(body.len()));
    out.push(msg_type);
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&msg_seq.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(body);
    out
}

/// ServerHello body: version, random, session id, suite, null compression, and the
/// renegotiation_info extension when asked for (RFC 5746 §3.6).
pub(crate) fn server_hello(
    version: u16,
    random: &[u8; 32],
    session_id: &[u8],
    suite: u16,
    renegotiation_info: bool,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(80);
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(random);
    body.push(u8::try_from(session_id.len()).unwrap_or(0));
    body.extend_from_slice(session_id.get(..32).unwrap_or(session_id));
    body.extend_from_slice(&suite.to_be_bytes());
    body.push(0);
    if renegotiation_info {
        body.extend_from_slice(&[0x00, 0x05, 0xFF, 0x01, 0x00, 0x01, 0x00]);
    }
    body
}

/// HelloVerifyRequest body (RFC 6347 §4.2.1: server_version DTLS 1.0 whatever is negotiated).
pub(crate) fn hello_verify_request(cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(cookie.len().saturating_add(3));
    body.extend_from_slice(&super::super::record::DTLS1_0.to_be_bytes());
    body.push(u8::try_from(cookie.len()).unwrap_or(0));
    body.extend_from_slice(cookie);
    body
}

/// The PSK identity of a ClientKeyExchange (RFC 4279 §2).
pub(crate) fn psk_identity(body: &[u8]) -> Result<&[u8], DtlsError> {
    let mut r = Reader::new(body);
    let id = r.vec16();
    match id {
        Some(id) if r.is_empty() => Ok(id),
        _ => Err(DtlsError::Malformed("ClientKeyExchange")),
    }
}

/// The message types whose names appear in errors.
pub(crate) fn name(msg_type: u8) -> &'static str {
    match msg_type {
        msg::CLIENT_HELLO => "ClientHello",
        msg::CLIENT_KEY_EXCHANGE => "ClientKeyExchange",
        msg::FINISHED => "Finished",
        _ => "handshake message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ClientHello body shaped like openconnect 9.01's (protocol.md §4.2 trace).
    pub(crate) fn openconnect_hello() -> Vec<u8> {
        let mut b = vec![0xfe, 0xfd];
        b.extend_from_slice(&[0x26; 32]);
        b.push(32);
        b.extend_from_slice(&[0x06; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 16, 0, 0xa9, 0xcc, 0xab, 0xc0, 0xa5, 0, 0x8d, 0, 0xa8]);
        b.extend_from_slice(&[0xc0, 0xa4, 0, 0x8c, 0, 0xae, 1, 0]);
        b.extend_from_slice(&[0, 15, 0, 0x23, 0, 0, 0xff, 1, 0, 1, 0, 0, 0x1c, 0, 2]);
        b.extend_from_slice(&[0x40, 0]);
        b
    }

    #[test]
    fn parses_openconnect_hello() {
        let body = openconnect_hello();
        let ch = ClientHello::parse(&body).unwrap();
        assert_eq!(ch.version, 0xfefd);
        assert_eq!(ch.session_id, &[0x06; 32]);
        assert!(ch.cookie.is_empty());
        assert!(ch.offers(0x00a8) && ch.offers(0x00a9) && !ch.offers(0x009c));
        assert!(ch.wants_renegotiation_info);
        for n in 0..body.len() - 1 {
            if n == 88 {
                continue; // cut exactly after the compression methods: no extensions, valid
            }
            assert!(ClientHello::parse(&body[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn message_framing_round_trip() {
        let m = message(msg::FINISHED, 3, &[7; 12]);
        assert_eq!(&m[..12], &[20, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 12]);
        let mut two = m.clone();
        two.extend_from_slice(&message(msg::SERVER_HELLO_DONE, 4, &[]));
        let parsed: Vec<_> = messages(&two).map(Result::unwrap).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[0].msg_seq, parsed[0].body), (3, &[7u8; 12][..]));
        assert_eq!(parsed[1].whole.len(), 12);
        let mut fragment = m;
        fragment[11] = 6;
        assert!(messages(&fragment).next().unwrap().is_err());
    }

    #[test]
    fn psk_identity_parse() {
        assert_eq!(psk_identity(&[0, 3, b'p', b's', b'k']).unwrap(), b"psk");
        assert!(psk_identity(&[0, 4, b'p', b's', b'k']).is_err());
        assert!(psk_identity(&[0, 3, b'p', b's', b'k', 0]).is_err());
    }
}
