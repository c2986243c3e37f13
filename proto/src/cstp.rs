//! CSTP framing over the TLS stream (protocol.md §3). Parsed by the sandboxed worker from the
//! internet. (Skeleton: the codec is being written; the signatures are the contract.)

/// Length of the CSTP header: `S T F 0x01`, payload length (u16 BE), type, `0x00`.
pub const HEADER_LEN: usize = 8;

/// Largest payload we accept or send (ocserv buffers 16 KiB records).
pub const MAX_PAYLOAD: usize = 16384 - HEADER_LEN;

/// Packet types, the same on CSTP and DTLS (ocserv src/vpn.h; draft "The CSTP Channel Protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Data,
    DpdReq,
    DpdResp,
    Disconnect,
    Keepalive,
    Compressed,
    Terminate,
    /// Any other type byte: logged and ignored, as ocserv does.
    Other(u8),
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
    /// The input is a valid prefix; at least this many more bytes are needed.
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
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let _ = buf;
    Err(DecodeError::BadMagic)
}

/// Write the 8-byte header for a payload of `payload_len` bytes into `out`.
pub fn encode_header(
    ty: PacketType,
    payload_len: usize,
    out: &mut [u8; HEADER_LEN],
) -> Result<(), EncodeError> {
    let _ = (ty, out);
    Err(EncodeError(payload_len))
}
