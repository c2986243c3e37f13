//! CSTP framing over the TLS stream (protocol.md §3). Parsed by the sandboxed worker from the
//! internet.
//!
//! A frame is an 8-byte header (`S T F 0x01`, payload length as u16 big-endian, packet type,
//! reserved `0x00`) followed by the payload (protocol.md §3.1). TLS is a byte stream to us, so
//! [`decode`] tells "need more bytes" ([`Decoded::NeedMore`]) apart from "these bytes are not
//! CSTP" ([`DecodeError`]), and rejects a bad header as soon as the offending byte has arrived.
//! Decoding borrows from the input and allocates nothing. Sending is the caller's job: one frame
//! per TLS record, never coalesced (protocol.md §3.1).

/// Length of the CSTP header: `S T F 0x01`, payload length (u16 BE), type, `0x00`.
pub const HEADER_LEN: usize = 8;

/// Largest payload we accept or send (ocserv buffers 16 KiB records).
pub const MAX_PAYLOAD: usize = 16384 - HEADER_LEN;

/// The first four header bytes: `STF` and protocol version 1 (protocol.md §3.1).
pub const MAGIC: [u8; 4] = *b"STF\x01";

/// Packet types, the same on CSTP and DTLS (ocserv src/vpn.h; draft "The CSTP Channel Protocol";
/// protocol.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0x00`: one IP packet.
    Data,
    /// `0x03` ("DPD_OUT"): answer with [`PacketType::DpdResp`] carrying the same payload.
    DpdReq,
    /// `0x04`: echo of a DPD request.
    DpdResp,
    /// `0x05`: goodbye; from the client one reason byte plus optional text (§3.3).
    Disconnect,
    /// `0x07`: liveness only, never answered.
    Keepalive,
    /// `0x08`: a packet compressed with the algorithm negotiated for this channel (§5).
    Compressed,
    /// `0x09`: server to client, "quit now".
    Terminate,
    /// Any other type byte: logged and ignored, as ocserv does.
    Other(u8),
}

impl PacketType {
    /// The type for a header's type byte. Never returns `Other` for a byte that has a name.
    pub fn from_u8(byte: u8) -> Self {
        match byte {
            0x00 => Self::Data,
            0x03 => Self::DpdReq,
            0x04 => Self::DpdResp,
            0x05 => Self::Disconnect,
            0x07 => Self::Keepalive,
            0x08 => Self::Compressed,
            0x09 => Self::Terminate,
            other => Self::Other(other),
        }
    }

    /// The type byte written into a header.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Data => 0x00,
            Self::DpdReq => 0x03,
            Self::DpdResp => 0x04,
            Self::Disconnect => 0x05,
            Self::Keepalive => 0x07,
            Self::Compressed => 0x08,
            Self::Terminate => 0x09,
            Self::Other(byte) => byte,
        }
    }
}

/// One decoded frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub ty: PacketType,
    pub payload: &'a [u8],
}

/// Outcome of [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame; `consumed` bytes of the input belong to it.
    Frame { frame: Frame<'a>, consumed: usize },
    /// The input is a valid prefix; at least this many more bytes are needed. Once the length
    /// field has arrived the number is exact (the rest of the frame); before that it is the rest
    /// of the header.
    NeedMore(usize),
}

/// The bytes are not CSTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first four bytes are not `STF\x01`.
    #[error("bad CSTP magic")]
    BadMagic,
    /// Byte 7 is not zero.
    #[error("bad CSTP reserved byte {0:#04x}")]
    BadReserved(u8),
    /// The length exceeds [`MAX_PAYLOAD`].
    #[error("CSTP payload length {0} exceeds the limit")]
    TooLong(usize),
}

/// The payload does not fit a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CSTP payload of {0} bytes is too long for one frame")]
pub struct EncodeError(pub usize);

/// Decode the frame at the start of `buf`.
///
/// Header fields are checked in wire order (magic, length, reserved byte) as soon as they are
/// present, so a peer sending garbage is refused after at most one byte of it, not after 8.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let magic_seen = buf.len().min(MAGIC.len());
    if buf.get(..magic_seen) != MAGIC.get(..magic_seen) {
        return Err(DecodeError::BadMagic);
    }
    let payload_len = match buf.get(4..6) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Ok(Decoded::NeedMore(HEADER_LEN.saturating_sub(buf.len()))),
    };
    if payload_len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong(payload_len));
    }
    if let Some(&reserved) = buf.get(7) {
        if reserved != 0 {
            return Err(DecodeError::BadReserved(reserved));
        }
    }
    // Cannot overflow: payload_len <= MAX_PAYLOAD.
    let frame_len = HEADER_LEN.saturating_add(payload_len);
    let (Some(&ty), Some(payload)) = (buf.get(6), buf.get(HEADER_LEN..frame_len)) else {
        return Ok(Decoded::NeedMore(frame_len.saturating_sub(buf.len())));
    };
    Ok(Decoded::Frame {
        frame: Frame {
            ty: PacketType::from_u8(ty),
            payload,
        },
        consumed: frame_len,
    })
}

/// Write the 8-byte header for a payload of `payload_len` bytes into `out`.
pub fn encode_header(
    ty: PacketType,
    payload_len: usize,
    out: &mut [u8; HEADER_LEN],
) -> Result<(), EncodeError> {
    let [hi, lo] = match u16::try_from(payload_len) {
        Ok(len) if payload_len <= MAX_PAYLOAD => len.to_be_bytes(),
        _ => return Err(EncodeError(payload_len)),
    };
    let [m0, m1, m2, m3] = MAGIC;
    *out = [m0, m1, m2, m3, hi, lo, ty.to_u8(), 0x00];
    Ok(())
}

/// Append a whole frame (header and payload) to `out`. Meant for control frames and tests; the
/// data path writes the header in front of a payload already in its buffer with
/// [`encode_header`].
pub fn encode_frame(ty: PacketType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut header = [0; HEADER_LEN];
    encode_header(ty, payload.len(), &mut header)?;
    out.reserve(HEADER_LEN.saturating_add(payload.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol.md §3.2 examples, also the committed vectors.
    const DPD_REQ: &[u8] = include_bytes!("../tests/vectors/cstp/dpd_req.bin");
    const KEEPALIVE: &[u8] = include_bytes!("../tests/vectors/cstp/keepalive.bin");
    const BYE: &[u8] = include_bytes!("../tests/vectors/cstp/bye_aborted_by_caller.bin");

    #[test]
    fn vectors_match_protocol_md() {
        assert_eq!(DPD_REQ, [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x03, 0x00]);
        assert_eq!(KEEPALIVE, [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x07, 0x00]);
        assert_eq!(
            BYE,
            b"\x53\x54\x46\x01\x00\x12\x05\x00\xb0Aborted by caller"
        );
    }

    #[test]
    fn decodes_dpd_keepalive_and_bye() {
        let cases: [(&[u8], PacketType, &[u8]); 3] = [
            (DPD_REQ, PacketType::DpdReq, b""),
            (KEEPALIVE, PacketType::Keepalive, b""),
            (BYE, PacketType::Disconnect, b"\xb0Aborted by caller"),
        ];
        for (bytes, ty, payload) in cases {
            let expected = Decoded::Frame {
                frame: Frame { ty, payload },
                consumed: bytes.len(),
            };
            assert_eq!(decode(bytes), Ok(expected));
        }
    }

    #[test]
    fn encodes_the_vectors_byte_exactly() {
        let mut out = Vec::new();
        encode_frame(PacketType::DpdReq, b"", &mut out).unwrap();
        encode_frame(PacketType::Keepalive, b"", &mut out).unwrap();
        encode_frame(PacketType::Disconnect, b"\xb0Aborted by caller", &mut out).unwrap();
        assert_eq!(out, [DPD_REQ, KEEPALIVE, BYE].concat());
    }

    #[test]
    fn consumes_only_its_frame() {
        let stream = [BYE, DPD_REQ, &BYE[..3]].concat();
        let Ok(Decoded::Frame { consumed, .. }) = decode(&stream) else {
            panic!("first frame");
        };
        assert_eq!(consumed, BYE.len());
        let rest = &stream[consumed..];
        assert!(matches!(
            decode(rest),
            Ok(Decoded::Frame {
                frame: Frame {
                    ty: PacketType::DpdReq,
                    ..
                },
                consumed: 8
            })
        ));
        assert_eq!(decode(&rest[8..]), Ok(Decoded::NeedMore(5)));
    }

    #[test]
    fn need_more_is_exact_for_every_prefix() {
        for cut in 0..BYE.len() {
            let expected = if cut < 6 {
                HEADER_LEN - cut
            } else {
                BYE.len() - cut
            };
            assert_eq!(
                decode(&BYE[..cut]),
                Ok(Decoded::NeedMore(expected)),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn bad_bytes_are_refused_as_soon_as_seen() {
        assert_eq!(decode(b"G"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b"STF\x02"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(DecodeError::BadMagic));
        assert_eq!(
            decode(b"STF\x01\x40\x00"),
            Err(DecodeError::TooLong(0x4000))
        );
        assert_eq!(
            decode(b"STF\x01\x00\x00\x03\x01"),
            Err(DecodeError::BadReserved(1))
        );
        assert_eq!(
            decode(b"STF\x01\xff\xff\x00\x00"),
            Err(DecodeError::TooLong(0xffff))
        );
    }

    #[test]
    fn length_limit_is_inclusive() {
        let mut frame = Vec::new();
        encode_frame(PacketType::Data, &[0xaa; MAX_PAYLOAD], &mut frame).unwrap();
        assert!(matches!(
            decode(&frame),
            Ok(Decoded::Frame { consumed, .. }) if consumed == HEADER_LEN + MAX_PAYLOAD
        ));
        let mut header = [0; HEADER_LEN];
        assert_eq!(
            encode_header(PacketType::Data, MAX_PAYLOAD + 1, &mut header),
            Err(EncodeError(MAX_PAYLOAD + 1))
        );
        assert_eq!(
            encode_frame(PacketType::Data, &[0; MAX_PAYLOAD + 1], &mut frame),
            Err(EncodeError(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn type_bytes_round_trip() {
        for byte in 0..=u8::MAX {
            let ty = PacketType::from_u8(byte);
            assert_eq!(ty.to_u8(), byte);
            let named = [0x00, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09].contains(&byte);
            assert_eq!(
                matches!(ty, PacketType::Other(_)),
                !named,
                "byte {byte:#04x}"
            );
        }
        let frame = b"STF\x01\x00\x00\x06\x00";
        assert!(matches!(
            decode(frame),
            Ok(Decoded::Frame {
                frame: Frame {
                    ty: PacketType::Other(6),
                    ..
                },
                ..
            })
        ));
    }
}
