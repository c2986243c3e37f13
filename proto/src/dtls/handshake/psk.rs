//! PSK-NEGOTIATE: the DTLS 1.2 full PSK handshake (protocol.md §4.2, RFC 4279, RFC 6347):
//!
//! ```text
//! ClientHello            ->
//!                        <- HelloVerifyRequest (stateless cookie)
//! ClientHello + cookie   ->
//!                        <- ServerHello, ServerHelloDone
//! ClientKeyExchange("psk"), ChangeCipherSpec, Finished ->
//!                        <- ChangeCipherSpec, Finished
//! ```
//!
//! No identity hint and no ServerKeyExchange (ocserv sends none either, §4.2 trace). The
//! client's identity is ignored: the key is per session.

use ring::hmac;

use super::super::error::DtlsError;
use super::super::prf::prf;
use super::super::record::{self, content};
use super::super::suite::{Suite, PSK_AES128_GCM, PSK_AES256_GCM};
use super::codec::{self, ClientHello};
use super::{msg, Flight, Transcript};

/// Cookie length we issue (RFC 6347 allows up to 255 in DTLS 1.2).
const COOKIE_LEN: usize = 32;

/// Key of the stateless cookie: bound to the PSK (a secret) and this server's random, so a
/// cookie is good for this session only and reveals nothing.
pub(crate) fn cookie_key(psk: &[u8; 32], server_random: &[u8; 32]) -> hmac::Key {
    let k = hmac::Key::new(hmac::HMAC_SHA256, psk);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"rocserv dtls cookie");
    ctx.update(server_random);
    hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref())
}

/// The cookie for a ClientHello: HMAC over the parameters a retry must repeat (RFC 6347
/// §4.2.1 suggests client IP too; the caller's UDP demux already binds the flow).
pub(crate) fn cookie(key: &hmac::Key, ch: &ClientHello<'_>) -> [u8; COOKIE_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&ch.version.to_be_bytes());
    ctx.update(&ch.random);
    ctx.update(&[u8::try_from(ch.session_id.len()).unwrap_or(0)]);
    ctx.update(ch.session_id);
    ctx.update(ch.suites);
    let mut out = [0u8; COOKIE_LEN];
    out.copy_from_slice(
        ctx.sign()
            .as_ref()
            .get(..COOKIE_LEN)
            .unwrap_or(&[0; COOKIE_LEN]),
    );
    out
}

/// Whether `ch` carries the cookie we would issue (comparison without early exit).
pub(crate) fn cookie_ok(key: &hmac::Key, ch: &ClientHello<'_>) -> bool {
    let expected = cookie(key, ch);
    ch.cookie.len() == COOKIE_LEN
        && expected
            .iter()
            .zip(ch.cookie)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The HelloVerifyRequest datagram's handshake message (message_seq echoes the ClientHello's,
/// as GnuTLS and OpenSSL servers do, so our ServerHello later follows on from it).
pub(crate) fn hello_verify_request(key: &hmac::Key, ch: &ClientHello<'_>, msg_seq: u16) -> Vec<u8> {
    codec::message(
        msg::HELLO_VERIFY_REQUEST,
        msg_seq,
        &codec::hello_verify_request(&cookie(key, ch)),
    )
}

/// The first PSK suite in the client's order that we support.
pub(crate) fn choose_suite(ch: &ClientHello<'_>) -> Option<Suite> {
    codec::suite_ids(ch.suites).find_map(|id| match id {
        PSK_AES128_GCM => Some(Suite::Psk { aes256: false }),
        PSK_AES256_GCM => Some(Suite::Psk { aes256: true }),
        _ => None,
    })
}

/// What the server knows after answering a cookie-carrying ClientHello.
pub(crate) struct Hello {
    pub(crate) suite: Suite,
    pub(crate) client_random: [u8; 32],
    pub(crate) transcript: Transcript,
    /// ServerHello + ServerHelloDone.
    pub(crate) flight: Flight,
    /// message_seq of our Finished.
    pub(crate) finished_seq: u16,
}

/// Answers a ClientHello that carried a valid cookie. `new_session_id` is a fresh id: ocserv
/// sends a new one (§4.2 trace, flight 2), and echoing the client's would tell a GnuTLS client
/// that we resume.
pub(crate) fn answer_hello(
    ch: &ClientHello<'_>,
    whole: &[u8],
    msg_seq: u16,
    server_random: &[u8; 32],
    new_session_id: &[u8; 32],
) -> Result<Hello, DtlsError> {
    // Our suites are TLS 1.2 only; a DTLS 1.0-only client cannot use them.
    if ch.version != record::DTLS1_2 {
        return Err(DtlsError::UnsupportedVersion(ch.version));
    }
    let suite = choose_suite(ch).ok_or(DtlsError::NoSharedSuite)?;
    let mut transcript = Transcript::new(suite.prf());
    transcript.add(whole);
    let sh = codec::message(
        msg::SERVER_HELLO,
        msg_seq,
        &codec::server_hello(
            record::DTLS1_2,
            server_random,
            new_session_id,
            suite.id(),
            ch.wants_renegotiation_info,
        ),
    );
    let done_seq = msg_seq
        .checked_add(1)
        .ok_or(DtlsError::Malformed("message_seq"))?;
    let shd = codec::message(msg::SERVER_HELLO_DONE, done_seq, &[]);
    transcript.add(&sh);
    transcript.add(&shd);
    let mut flight = Flight::default();
    flight.push(content::HANDSHAKE, 0, sh, [0; 16]);
    flight.push(content::HANDSHAKE, 0, shd, [0; 16]);
    Ok(Hello {
        suite,
        client_random: ch.random,
        transcript,
        flight,
        finished_seq: done_seq
            .checked_add(1)
            .ok_or(DtlsError::Malformed("message_seq"))?,
    })
}

/// master_secret from the RFC 4279 §2 premaster `u16(32) || 0*32 || u16(32) || psk`.
pub(crate) fn master_secret(
    suite: Suite,
    psk: &[u8; 32],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> [u8; 48] {
    let mut premaster = [0u8; 2 + 32 + 2 + 32];
    premaster[1] = 32;
    premaster[35] = 32;
    premaster[36..].copy_from_slice(psk);
    let mut master = [0u8; 48];
    prf(
        suite.prf(),
        &premaster,
        b"master secret",
        &[client_random, server_random],
        &mut master,
    );
    master
}
