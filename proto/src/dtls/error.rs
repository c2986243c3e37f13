//! Errors of the DTLS server: peer faults (the handshake cannot go on) are kept apart from API
//! misuse by the caller. Dropped records are not errors (RFC 6347 §4.1.2.7).

/// Why a datagram was rejected or a record could not be sealed.
///
/// After an error from [`super::Server::handle_datagram`] the server keeps its state unless
/// [`super::Server::is_closed`] says otherwise, so a forged datagram cannot end a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// A handshake message is truncated or has impossible lengths.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A handshake message that does not fit the current handshake state.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// The ClientHello asks for a protocol version this mode does not speak.
    #[error("unsupported DTLS version {0:#06x}")]
    UnsupportedVersion(u16),
    /// The ClientHello offers no cipher suite this mode accepts.
    #[error("no cipher suite in common")]
    NoSharedSuite,
    /// A legacy ClientHello does not resume the session id we issued in the CONNECT response.
    #[error("ClientHello does not carry the issued session id")]
    WrongSessionId,
    /// The handshake record carrying the peer's Finished does not decrypt: wrong key.
    #[error("peer Finished does not decrypt (key mismatch)")]
    BadRecordMac,
    /// The peer's Finished decrypts but its verify_data is wrong.
    #[error("peer Finished does not verify")]
    BadFinished,
    /// The peer sent a fatal alert during the handshake.
    #[error("peer sent fatal alert {0}")]
    PeerAlert(u8),
    /// `seal_in_place` was called before the handshake completed (API misuse).
    #[error("handshake not complete")]
    NotEstablished,
    /// The buffer given to `seal_in_place` lacks header or trailer room (API misuse).
    #[error("buffer too small for a record")]
    BufferTooSmall,
    /// The payload does not fit in one record (2^14 bytes at most).
    #[error("payload of {0} bytes is too long for one record")]
    PayloadTooLong(usize),
    /// Our 48-bit record sequence number is used up; the session must be re-established.
    #[error("record sequence numbers exhausted")]
    SequenceExhausted,
    /// The crypto library refused a key (cannot happen with our fixed key lengths).
    #[error("crypto library rejected a key")]
    Crypto,
}
