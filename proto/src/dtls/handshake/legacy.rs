//! Legacy Cisco mode: an abbreviated (resumption) handshake for a session that never had a full
//! one; the client chose the master secret (`X-DTLS-Master-Secret`) and we chose the session id
//! (protocol.md §4.3, dependency-findings.md §3):
//!
//! ```text
//! ClientHello(session_id = ours)  ->
//!                                 <- ServerHello(same id), ChangeCipherSpec, Finished   (one datagram)
//! ChangeCipherSpec, Finished      ->
//! ```
//!
//! No extensions in our ServerHello: no extended master secret (it would force a full
//! handshake) and no renegotiation_info (findings §3 prototype, which the real client accepted).
//! DTLS 0.9 (`DTLS1_BAD_VER`): version 0x0100 everywhere, bodies-only MD5||SHA-1 transcript,
//! TLS 1.0 PRF, and a 3-byte ChangeCipherSpec carrying the next message_seq, which therefore
//! consumes one (our Finished is message_seq 2).

use super::super::error::DtlsError;
use super::super::record::content;
use super::super::suite::{LegacySuite, Suite};
use super::codec::{self, ClientHello};
use super::{derive_keys, msg, Flight, Keys, Transcript};

/// Everything the server holds after answering the ClientHello.
pub(crate) struct Answered {
    pub(crate) suite: Suite,
    pub(crate) client_random: [u8; 32],
    pub(crate) keys: Keys,
    /// CH || SH || server Finished: what the client's Finished covers.
    pub(crate) transcript: Transcript,
    /// ServerHello, ChangeCipherSpec, Finished.
    pub(crate) flight: Flight,
}

/// Checks the ClientHello resumes our session with our suite and builds the answer.
pub(crate) fn answer_hello(
    ch: &ClientHello<'_>,
    whole: &[u8],
    legacy: LegacySuite,
    master: &[u8; 48],
    session_id: &[u8; 32],
    server_random: &[u8; 32],
    iv: [u8; 16],
) -> Result<Answered, DtlsError> {
    let suite = Suite::Legacy(legacy);
    if ch.version != suite.version() {
        return Err(DtlsError::UnsupportedVersion(ch.version));
    }
    if ch.session_id != session_id {
        return Err(DtlsError::WrongSessionId);
    }
    if !ch.offers(suite.id()) {
        return Err(DtlsError::NoSharedSuite);
    }
    let keys = derive_keys(suite, master, &ch.random, server_random)?;
    let mut transcript = Transcript::new(suite.prf());
    transcript.add(whole);
    let sh = codec::message(
        msg::SERVER_HELLO,
        0,
        &codec::server_hello(
            suite.version(),
            server_random,
            session_id,
            suite.id(),
            false,
        ),
    );
    transcript.add(&sh);
    let (ccs, finished_seq): (&[u8], u16) = if suite.is_dtls09() {
        (&[1, 0, 1], 2)
    } else {
        (&[1], 1)
    };
    let verify = transcript.verify_data(suite.prf(), master, b"server finished");
    let finished = codec::message(msg::FINISHED, finished_seq, &verify);
    transcript.add(&finished);
    let mut flight = Flight::default();
    flight.push(content::HANDSHAKE, 0, sh, [0; 16]);
    flight.push(content::CHANGE_CIPHER_SPEC, 0, ccs.to_vec(), [0; 16]);
    flight.push(content::HANDSHAKE, 1, finished, iv);
    Ok(Answered {
        suite,
        client_random: ch.random,
        keys,
        transcript,
        flight,
    })
}
