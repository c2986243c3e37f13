//! Deterministic in-memory handshakes of [`Server`] against the test client, for every mode,
//! with loss (retransmission) and replay.
#![allow(
    clippy::disallowed_methods,
    reason = "a test needs some starting Instant; the code under test never reads the clock"
)]

use std::time::{Duration, Instant};

use super::record::content;
use super::test_client::{handshake, legacy, psk_pair, TestClient};
use super::{DtlsError, LegacySuite, Mode, Received, Server};

const ALL_LEGACY: [LegacySuite; 4] = [
    LegacySuite::Dtls12Aes128Gcm,
    LegacySuite::Dtls12Aes256Gcm,
    LegacySuite::Dtls09Aes128Sha,
    LegacySuite::Dtls09Aes256Sha,
];

fn rng(b: &mut [u8]) {
    b.fill(0x5a);
}

/// Client -> server and server -> client application data, then a replay of the first record.
fn exchange_data(server: &mut Server, client: &mut TestClient, now: Instant) {
    let mut tx = Vec::new();
    let record = client.seal(content::APPLICATION_DATA, b"\x00ping");
    let mut copy = record.clone();
    let got = server.handle_datagram(&mut copy, now, &mut rng, &mut tx);
    assert_eq!(got, Ok(Received::Data(&b"\x00ping"[..])));
    let mut replay = record;
    let got = server.handle_datagram(&mut replay, now, &mut rng, &mut tx);
    assert_eq!(got, Ok(Received::Nothing), "a replayed record is dropped");
    assert!(tx.is_empty());

    let room = server.header_room();
    let mut buf = vec![0u8; room + 1400 + server.trailer_room()];
    buf[room..room + 5].copy_from_slice(b"\x00pong");
    let n = server.seal_in_place(&mut buf, 5, &mut rng).unwrap();
    assert!(n <= 5 + usize::from(server.record_overhead()));
    let recs = client.records(&buf[..n]);
    assert_eq!(
        recs,
        vec![(content::APPLICATION_DATA, 1, b"\x00pong".to_vec())]
    );
}

#[test]
fn psk_handshake_picks_client_preference_and_carries_data() {
    let now = Instant::now();
    let (mut server, mut client) = psk_pair();
    handshake(&mut server, &mut client, now);
    assert_eq!(server.describe(), "DTLS1.2 PSK AES-256-GCM");
    exchange_data(&mut server, &mut client, now);

    let (mut server, client) = psk_pair();
    let mut client = client.with_suites(&[0x008c, 0x00a8, 0x00a9]);
    handshake(&mut server, &mut client, now);
    assert_eq!(server.describe(), "DTLS1.2 PSK AES-128-GCM");
    exchange_data(&mut server, &mut client, now);
}

#[test]
fn legacy_handshake_every_suite() {
    let now = Instant::now();
    for suite in ALL_LEGACY {
        let (mut server, mut client) = legacy(suite);
        handshake(&mut server, &mut client, now);
        assert!(server.describe().contains(suite.name()));
        assert_eq!(server.record_overhead(), suite.record_overhead());
        exchange_data(&mut server, &mut client, now);
    }
}

#[test]
fn psk_retransmits_lost_server_hello_flight() {
    let now = Instant::now();
    let (mut server, mut client) = psk_pair();
    let mut tx = Vec::new();
    let mut ch = client.client_hello(&[]);
    server
        .handle_datagram(&mut ch, now, &mut rng, &mut tx)
        .unwrap();
    let cookie = client.cookie_from(&tx.pop().unwrap());
    let mut ch2 = client.client_hello(&cookie);
    let mut ch2_again = ch2.clone();
    server
        .handle_datagram(&mut ch2, now, &mut rng, &mut tx)
        .unwrap();
    let lost = tx.pop().unwrap();

    // The client repeats its ClientHello: the same flight, with new record numbers.
    server
        .handle_datagram(&mut ch2_again, now, &mut rng, &mut tx)
        .unwrap();
    let again = tx.pop().unwrap();
    assert_eq!(again.len(), lost.len());
    assert_ne!(again, lost, "fresh record sequence numbers");

    // Nobody speaks: the timer resends, doubling.
    let t1 = server.poll_timeout().unwrap();
    assert_eq!(t1, now + Duration::from_secs(1));
    server.handle_timeout(t1 - Duration::from_millis(1), &mut tx);
    assert!(tx.is_empty(), "not yet due");
    server.handle_timeout(t1, &mut tx);
    let third = tx.pop().unwrap();
    assert_eq!(server.poll_timeout(), Some(t1 + Duration::from_secs(2)));

    let mut flight3 = client.psk_key_exchange(&third);
    let got = server.handle_datagram(&mut flight3, t1, &mut rng, &mut tx);
    assert_eq!(got, Ok(Received::Established));
    let final_flight = tx.pop().unwrap();

    // Our CCS + Finished got lost; the client repeats its flight and gets it again.
    let mut repeat = client.resend();
    let got = server.handle_datagram(&mut repeat, t1, &mut rng, &mut tx);
    assert_eq!(got, Ok(Received::Nothing));
    let resent = tx.pop().expect("final flight resent");
    assert_eq!(resent.len(), final_flight.len());
    client.psk_finish(&resent);
    exchange_data(&mut server, &mut client, t1);
}

#[test]
fn legacy_retransmits_then_gives_up() {
    let now = Instant::now();
    let (mut server, mut client) = legacy(LegacySuite::Dtls09Aes128Sha);
    let mut tx = Vec::new();
    let mut ch = client.client_hello(&[]);
    let mut ch_again = ch.clone();
    server
        .handle_datagram(&mut ch, now, &mut rng, &mut tx)
        .unwrap();
    let first = tx.pop().unwrap();
    server
        .handle_datagram(&mut ch_again, now, &mut rng, &mut tx)
        .unwrap();
    assert_eq!(
        tx.pop().unwrap().len(),
        first.len(),
        "repeated hello, repeated flight"
    );

    let mut t = now;
    for _ in 0..5 {
        t = server.poll_timeout().unwrap();
        server.handle_timeout(t, &mut tx);
        assert_eq!(tx.len(), 1);
        let resent = tx.pop().unwrap();
        // Each retransmission is a complete, verifiable flight.
        let mut probe = legacy(LegacySuite::Dtls09Aes128Sha).1;
        let _ = probe.client_hello(&[]);
        let _ = probe.legacy_finish(&resent);
    }
    assert!(!server.is_closed());
    server.handle_timeout(server.poll_timeout().unwrap(), &mut tx);
    assert!(tx.is_empty());
    assert!(server.is_closed(), "gave up after {:?}", t - now);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn legacy_survives_a_lost_client_finished() {
    let now = Instant::now();
    let (mut server, mut client) = legacy(LegacySuite::Dtls12Aes128Gcm);
    let mut tx = Vec::new();
    let mut ch = client.client_hello(&[]);
    server
        .handle_datagram(&mut ch, now, &mut rng, &mut tx)
        .unwrap();
    let _lost_finish = client.legacy_finish(&tx.pop().unwrap());
    server.handle_timeout(now + Duration::from_secs(1), &mut tx);
    assert_eq!(tx.len(), 1);
    let mut again = client.resend();
    let got = server.handle_datagram(&mut again, now, &mut rng, &mut tx);
    assert_eq!(got, Ok(Received::Established));
}

#[test]
fn wrong_keys_and_ids_are_rejected_without_killing_the_handshake() {
    let now = Instant::now();
    let mut tx = Vec::new();

    // Legacy: a ClientHello for another session id.
    let (mut server, _) = legacy(LegacySuite::Dtls12Aes128Gcm);
    let mode = Mode::Legacy {
        master_secret: [0x33; 48],
        suite: LegacySuite::Dtls12Aes128Gcm,
    };
    let mut stranger = TestClient::new(mode, &[0x45; 32]);
    let mut ch = stranger.client_hello(&[]);
    let got = server.handle_datagram(&mut ch, now, &mut rng, &mut tx);
    assert_eq!(got, Err(DtlsError::WrongSessionId));
    assert!(tx.is_empty() && !server.is_closed());

    // Legacy: a ClientHello without our suite.
    let (mut server, client) = legacy(LegacySuite::Dtls12Aes256Gcm);
    let mut client = client.with_suites(&[0x009c]);
    let mut ch = client.client_hello(&[]);
    let got = server.handle_datagram(&mut ch, now, &mut rng, &mut tx);
    assert_eq!(got, Err(DtlsError::NoSharedSuite));

    // PSK: the client has another key; its Finished does not decrypt.
    let server_mode = Mode::Psk { psk: [1; 32] };
    let mut server = Server::new(server_mode, [0x44; 32], [0x55; 32]);
    let mut client = TestClient::new(Mode::Psk { psk: [2; 32] }, &[0x44; 32]);
    let mut ch = client.client_hello(&[]);
    server
        .handle_datagram(&mut ch, now, &mut rng, &mut tx)
        .unwrap();
    let cookie = client.cookie_from(&tx.pop().unwrap());
    let mut ch2 = client.client_hello(&cookie);
    server
        .handle_datagram(&mut ch2, now, &mut rng, &mut tx)
        .unwrap();
    let mut flight3 = client.psk_key_exchange(&tx.pop().unwrap());
    let got = server.handle_datagram(&mut flight3, now, &mut rng, &mut tx);
    assert_eq!(got, Err(DtlsError::BadRecordMac));
    assert!(!server.is_closed() && !server.is_established());

    // PSK: a forged cookie only earns another HelloVerifyRequest.
    let (mut server, mut client) = psk_pair();
    let mut ch = client.client_hello(&[9; 32]);
    assert_eq!(
        server.handle_datagram(&mut ch, now, &mut rng, &mut tx),
        Ok(Received::Nothing)
    );
    assert_eq!(client.cookie_from(&tx.pop().unwrap()).len(), 32);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn close_notify_both_ways_and_garbage_is_dropped() {
    let now = Instant::now();
    let (mut server, mut client) = psk_pair();
    handshake(&mut server, &mut client, now);
    let mut tx = Vec::new();
    for garbage in [
        &[][..],
        &[23, 0xfe, 0xfd, 0, 1][..],
        &[23; 40][..],
        &[0xff; 13][..],
    ] {
        let mut g = garbage.to_vec();
        assert_eq!(
            server.handle_datagram(&mut g, now, &mut rng, &mut tx),
            Ok(Received::Nothing)
        );
    }
    let mut bad = client.seal(content::APPLICATION_DATA, b"\x00x");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        server.handle_datagram(&mut bad, now, &mut rng, &mut tx),
        Ok(Received::Nothing)
    );
    assert!(server.is_established());

    let mut alert = client.seal(content::ALERT, &[1, 0]);
    assert_eq!(
        server.handle_datagram(&mut alert, now, &mut rng, &mut tx),
        Ok(Received::Closed)
    );
    assert!(server.is_closed());

    let (mut server, mut client) = legacy(LegacySuite::Dtls09Aes256Sha);
    handshake(&mut server, &mut client, now);
    let notify = server.close_notify().unwrap();
    assert_eq!(
        client.records(&notify),
        vec![(content::ALERT, 1, vec![1, 0])]
    );
    assert!(server.is_closed());
    assert_eq!(server.close_notify(), None);
    let mut buf = [0u8; 64];
    assert_eq!(
        server.seal_in_place(&mut buf, 1, &mut rng),
        Err(DtlsError::NotEstablished)
    );
}

#[test]
fn seal_checks_buffer_room() {
    let now = Instant::now();
    let (mut server, mut client) = legacy(LegacySuite::Dtls12Aes128Gcm);
    handshake(&mut server, &mut client, now);
    let mut small = vec![0u8; server.header_room() + 10];
    assert_eq!(
        server.seal_in_place(&mut small, 10, &mut rng),
        Err(DtlsError::BufferTooSmall)
    );
    let mut big = vec![0u8; 20_000];
    assert_eq!(
        server.seal_in_place(&mut big, 16_385, &mut rng),
        Err(DtlsError::PayloadTooLong(16_385))
    );
}

/// Seeds for the `dtls_server` fuzz target (format in `fuzz.rs`): a whole handshake plus data
/// for every mode. They must replay to Established with data; with
/// `ROCSERV_WRITE_DTLS_SEEDS=<dir>` they are written there (how the committed corpus was made).
#[test]
fn fuzz_seeds_reach_established() {
    let now = Instant::now();
    let mut seeds = Vec::new();
    for selector in 0u8..5 {
        let mode = super::fuzz::mode(selector);
        let mut server = Server::new(
            mode.clone(),
            super::fuzz::SESSION_ID,
            super::fuzz::SERVER_RANDOM,
        );
        let mut client = TestClient::new(mode.clone(), &super::fuzz::SESSION_ID);
        let mut tx = Vec::new();
        let mut datagrams = Vec::new();
        let mut feed = |server: &mut Server, d: Vec<u8>, tx: &mut Vec<Vec<u8>>| {
            let mut copy = d.clone();
            datagrams.push(d);
            let _ = server.handle_datagram(&mut copy, now, &mut rng, tx);
            tx.pop()
        };
        let ch = client.client_hello(&[]);
        let answer = feed(&mut server, ch, &mut tx).unwrap();
        if matches!(mode, Mode::Psk { .. }) {
            let cookie = client.cookie_from(&answer);
            let ch2 = client.client_hello(&cookie);
            let flight = feed(&mut server, ch2, &mut tx).unwrap();
            let third = client.psk_key_exchange(&flight);
            let _ = feed(&mut server, third, &mut tx);
        } else {
            let fin = client.legacy_finish(&answer);
            let _ = feed(&mut server, fin, &mut tx);
        }
        for payload in [&b"\x00\x45\x00\x00\x1c"[..], b"\x03", b"\x07"] {
            let d = client.seal(content::APPLICATION_DATA, payload);
            let _ = feed(&mut server, d, &mut tx);
        }
        let alert = client.seal(content::ALERT, &[1, 0]);
        let _ = feed(&mut server, alert, &mut tx);
        let mut seed = vec![selector];
        for d in &datagrams {
            seed.extend_from_slice(&(d.len() as u16).to_be_bytes());
            seed.extend_from_slice(d);
        }
        let outcome = super::fuzz::server(&seed);
        assert!(outcome.established, "mode {selector}");
        assert_eq!(outcome.data_records, 3, "mode {selector}");
        seeds.push((selector, seed, datagrams[0].clone()));
    }
    if let Ok(dir) = std::env::var("ROCSERV_WRITE_DTLS_SEEDS") {
        let dir = std::path::Path::new(&dir);
        for (selector, seed, hello) in &seeds {
            std::fs::create_dir_all(dir.join("dtls_server")).unwrap();
            std::fs::create_dir_all(dir.join("dtls_client_hello_peek")).unwrap();
            std::fs::write(
                dir.join(format!("dtls_server/handshake_mode{selector}")),
                seed,
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("dtls_client_hello_peek/hello_mode{selector}")),
                hello,
            )
            .unwrap();
        }
    }
}
