//! Bodies of the DTLS fuzz targets (called through `crate::fuzzing`), and the seed format they
//! share with the in-memory tests that generate the committed seeds.
//!
//! `dtls_server` input: byte 0 picks the mode (0 = PSK, 1..=4 = the legacy suites), then
//! datagrams as `u16 length || bytes`. The server uses the fixed keys of `test_client`, so seeds
//! recorded from a real handshake replay to `Established` and mutations start from deep states.

use std::time::{Duration, Instant};

use super::{peek, LegacySuite, Mode, Received, Server};

/// Fixed parameters shared with the test client (keys are public test values).
pub(crate) const SESSION_ID: [u8; 32] = [0x44; 32];
pub(crate) const SERVER_RANDOM: [u8; 32] = [0x55; 32];
pub(crate) const PSK: [u8; 32] = [0x66; 32];
pub(crate) const MASTER: [u8; 48] = [0x33; 48];

/// Most datagrams fed from one input.
const MAX_DATAGRAMS: usize = 64;

pub(crate) fn mode(selector: u8) -> Mode {
    let suite = match selector % 5 {
        0 => return Mode::Psk { psk: PSK },
        1 => LegacySuite::Dtls12Aes128Gcm,
        2 => LegacySuite::Dtls12Aes256Gcm,
        3 => LegacySuite::Dtls09Aes128Sha,
        _ => LegacySuite::Dtls09Aes256Sha,
    };
    Mode::Legacy {
        master_secret: MASTER,
        suite,
    }
}

/// The session id `peek` finds is exactly the bytes at offset 60 of a 1..=32 long id.
pub(crate) fn client_hello_peek(data: &[u8]) {
    if let Some(id) = peek::client_hello_session_id(data) {
        assert!((1..=32).contains(&id.len()));
        let len = usize::from(data.get(59).copied().unwrap_or(0));
        assert_eq!(Some(id), data.get(60..60usize.saturating_add(len)));
        assert_eq!(data.get(13), Some(&1));
        assert!(!peek::is_application_data(data));
    }
    if peek::is_application_data(data) {
        assert_eq!(data.first(), Some(&23));
    }
    // The socket filter main attaches never drops what main would route.
    let routed = peek::client_hello_session_id(data).is_some() || peek::is_application_data(data);
    if routed && data.len() <= super::filter::MAX_DATAGRAM as usize {
        assert!(super::filter::accepts(data));
    }
}

/// What feeding one input did (for the seed tests).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) established: bool,
    pub(crate) data_records: usize,
}

/// Feeds the datagrams of `data` to a server, with time advancing and timers fired; every
/// answer must be a sane datagram, and once established every payload seals.
pub(crate) fn server(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    let Some((selector, mut rest)) = data.split_first() else {
        return outcome;
    };
    let mut server = Server::new(mode(*selector), SESSION_ID, SERVER_RANDOM);
    #[allow(
        clippy::disallowed_methods,
        reason = "the harness needs some base instant; only differences from it matter"
    )]
    let mut now = Instant::now();
    let mut rng = |b: &mut [u8]| b.fill(0x5a);
    let mut out = vec![0u8; 2048];
    for _ in 0..MAX_DATAGRAMS {
        let Some((len, tail)) = rest.split_at_checked(2) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
        let Some((datagram, tail)) = tail.split_at_checked(len.min(tail.len())) else {
            break;
        };
        rest = tail;
        let mut buf = datagram.to_vec();
        let mut transmit = Vec::new();
        match server.handle_datagram(&mut buf, now, &mut rng, &mut transmit) {
            Ok(Received::Data(payload)) => {
                assert!(payload.len() <= datagram.len());
                outcome.data_records = outcome.data_records.saturating_add(1);
                let room = server.header_room();
                let n = payload.len().min(1024);
                if let Some(dst) = out.get_mut(room..room.saturating_add(n)) {
                    dst.copy_from_slice(payload.get(..n).unwrap_or_default());
                }
                let sealed = server.seal_in_place(&mut out, n, &mut rng);
                assert!(
                    matches!(sealed, Ok(m) if m <= n.saturating_add(usize::from(server.record_overhead())))
                );
            }
            Ok(Received::Established) => outcome.established = true,
            Ok(Received::Nothing | Received::Closed) | Err(_) => {}
        }
        assert!(transmit.iter().all(|d| !d.is_empty() && d.len() < 1500));
        assert!(transmit.len() <= 1);
        now = now.checked_add(Duration::from_millis(700)).unwrap_or(now);
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now, &mut transmit);
        }
        assert!(!(server.is_established() && server.is_closed()));
    }
    outcome
}
