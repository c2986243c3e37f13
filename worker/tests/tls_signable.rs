//! What the worker's real TLS configuration asks sec-mod to sign, for every TLS version, suite
//! hash and key exchange group it can negotiate, passes sec-mod's structure check
//! (`rocserv_proto::ipc::signable::check`), and the handshake asks exactly once. A rustls
//! upgrade that changes the signed bytes fails here, not in production logins.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failure is the test failing"
)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use rocserv_proto::ipc::main_worker::{TlsSettings, VhostCert};
use rocserv_proto::ipc::signable::{self, Group, Signable};
use rocserv_proto::ipc::worker_secmod::{FromSecMod, ToSecMod};
use rocserv_proto::ipc::{self, KeyKind, MAX_MESSAGE};
use rocserv_worker::ipc::{IpcChannelError, SecModClient};
use rustls::crypto::{ring as provider, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConnection, SupportedCipherSuite,
};

/// One Sign request: scheme, message, whose key.
type Seen = (u16, Vec<u8>, Option<String>);

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

/// A sec-mod stand-in: records every Sign request and answers with a dummy signature, until the
/// worker closes the channel.
fn fake_secmod(fd: OwnedFd) -> std::thread::JoinHandle<Vec<Seen>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
            if n == 0 {
                return seen;
            }
            match ipc::decode::<ToSecMod>(&buf[..n]).unwrap() {
                ToSecMod::Sign {
                    scheme,
                    message,
                    vhost,
                } => seen.push((scheme, message, vhost)),
                other => panic!("unexpected {other:?}"),
            }
            let answer = ipc::encode(&FromSecMod::Signature(vec![1; 64])).unwrap();
            send(fd.as_raw_fd(), &answer, MsgFlags::empty()).unwrap();
        }
    })
}

/// Run the server side of one handshake up to its first flight (where it signs) against a
/// rustls client limited to `version`, `suite` and `group`; returns what was sent to sec-mod.
fn signed_by_server(
    key: KeyKind,
    version: &'static rustls::SupportedProtocolVersion,
    suite: SupportedCipherSuite,
    group: &'static dyn SupportedKxGroup,
) -> Vec<Seen> {
    let tls = TlsSettings {
        // The server never parses its own certificate; the client fails on it after the
        // server's first flight, which is all this test needs.
        cert_chain: vec![vec![0x30, 0x00]],
        key,
        tls12: true,
        tls13: true,
        vhosts: Vec::new(),
    };
    first_flight(&tls, version, suite, group, "vpn.test").0
}

/// The server's first flight for a client that sends `sni` (an IP address: no SNI), and the
/// Sign requests it made.
fn first_flight(
    tls: &TlsSettings,
    version: &'static rustls::SupportedProtocolVersion,
    suite: SupportedCipherSuite,
    group: &'static dyn SupportedKxGroup,
    sni: &str,
) -> (Vec<Seen>, Vec<u8>) {
    first_flight_offering(tls, version, suite, group, sni, None)
}

/// As [`first_flight`], the client offering `schemes` (signature_algorithms) instead of its
/// provider's.
fn first_flight_offering(
    tls: &TlsSettings,
    version: &'static rustls::SupportedProtocolVersion,
    suite: SupportedCipherSuite,
    group: &'static dyn SupportedKxGroup,
    sni: &str,
    schemes: Option<&[rustls::SignatureScheme]>,
) -> (Vec<Seen>, Vec<u8>) {
    let (worker_end, secmod_end) = pair();
    let secmod = fake_secmod(secmod_end);
    let client_secmod = Arc::new(SecModClient::new(worker_end, Duration::from_secs(10)).unwrap());
    let server_config =
        rocserv_worker::tls::server_config(tls, Arc::clone(&client_secmod)).unwrap();
    let mut client_provider = CryptoProvider {
        cipher_suites: vec![suite],
        kx_groups: vec![group],
        ..provider::default_provider()
    };
    if let Some(schemes) = schemes {
        // Offered only: the handshake stops at the server's first flight, nothing verifies.
        let any = &client_provider.signature_verification_algorithms.all[..1];
        let mapping: Vec<_> = schemes.iter().map(|s| (*s, any)).collect();
        client_provider.signature_verification_algorithms.mapping = Box::leak(mapping.into());
    }
    let client_config = ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let mut client = ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from(sni.to_owned()).unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    server.read_tls(&mut &hello[..]).unwrap();
    server.process_new_packets().unwrap();
    let mut flight = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut flight).unwrap();
    }
    client_secmod.close();
    assert!(matches!(
        client_secmod.request(&ToSecMod::Sign {
            scheme: 0x0403,
            message: Vec::new(),
            vhost: None,
        }),
        Err(IpcChannelError::Finished)
    ));
    (secmod.join().unwrap(), flight)
}

/// The SNI picks the `[vhost:NAME]` certificate (case and a trailing dot ignored) and the Sign
/// request names that vhost's key; no SNI or an unknown name gets the default section's.
#[test]
fn sni_picks_the_vhost_certificate_and_key() {
    use provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as SUITE;
    // Markers stand in for the DER chains: the TLS 1.2 Certificate message is in clear text.
    let default_chain = b"default-chain-marker".to_vec();
    let vhost_chain = b"vhost-b-chain-marker".to_vec();
    let tls = TlsSettings {
        cert_chain: vec![default_chain.clone()],
        key: KeyKind::EcdsaP256,
        tls12: true,
        tls13: true,
        vhosts: vec![VhostCert {
            name: "b.example.com".into(),
            cert_chain: vec![vhost_chain.clone()],
            key: KeyKind::EcdsaP384,
        }],
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (sni, vhost) in [
        ("b.example.com", Some("b.example.com")),
        ("B.Example.COM", Some("b.example.com")),
        ("a.example.com", None),
        ("192.0.2.1", None),
    ] {
        let (seen, flight) = first_flight(
            &tls,
            &rustls::version::TLS12,
            SUITE,
            provider::kx_group::X25519,
            sni,
        );
        assert_eq!(seen.len(), 1, "{sni}");
        let (scheme, _, asked) = &seen[0];
        assert_eq!(asked.as_deref(), vhost, "{sni}");
        let (chain, other, key_scheme) = match vhost {
            Some(_) => (&vhost_chain, &default_chain, 0x0503),
            None => (&default_chain, &vhost_chain, 0x0403),
        };
        assert_eq!(*scheme, key_scheme, "{sni}: the vhost's key kind");
        assert!(contains(&flight, chain), "{sni}: its certificate is sent");
        assert!(!contains(&flight, other), "{sni}: not the other one");
    }
}

fn one_signable(seen: &[Seen]) -> Signable<'_> {
    assert_eq!(seen.len(), 1, "one signature per handshake");
    let (scheme, message, _) = &seen[0];
    signable::check(*scheme, message).unwrap_or_else(|e| panic!("{e}: {message:02x?}"))
}

#[test]
fn tls13_certificate_verify_for_every_suite() {
    use provider::cipher_suite::*;
    for (suite, hash_len) in [
        (TLS13_AES_128_GCM_SHA256, 32),
        (TLS13_AES_256_GCM_SHA384, 48),
        (TLS13_CHACHA20_POLY1305_SHA256, 32),
    ] {
        for key in [KeyKind::EcdsaP256, KeyKind::Rsa, KeyKind::Ed25519] {
            let seen = signed_by_server(
                key,
                &rustls::version::TLS13,
                suite,
                provider::kx_group::X25519,
            );
            match one_signable(&seen) {
                Signable::Tls13CertificateVerify { transcript_hash } => {
                    assert_eq!(transcript_hash.len(), hash_len, "{suite:?}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn tls12_server_key_exchange_for_every_group() {
    use provider::cipher_suite::*;
    for (key, suite) in [
        (KeyKind::EcdsaP256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        (
            KeyKind::EcdsaP384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (KeyKind::Rsa, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ] {
        for (kx, expected) in [
            (provider::kx_group::X25519, Group::X25519),
            (provider::kx_group::SECP256R1, Group::Secp256r1),
            (provider::kx_group::SECP384R1, Group::Secp384r1),
        ] {
            let seen = signed_by_server(key, &rustls::version::TLS12, suite, kx);
            match one_signable(&seen) {
                Signable::Tls12ServerKeyExchange { group, public, .. } => {
                    assert_eq!(group, expected);
                    assert_eq!(public.len(), expected.point_len());
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Every group the worker's provider offers is one the check knows (a provider change that adds
/// a TLS 1.2 group must extend `signable::Group`).
#[test]
fn provider_groups_are_all_known() {
    for group in provider::default_provider().kx_groups {
        let code = u16::from(group.name());
        assert!(
            [Group::X25519, Group::Secp256r1, Group::Secp384r1]
                .iter()
                .any(|g| g.code() == code),
            "{:?}",
            group.name()
        );
    }
}

/// P-521 (TLS 1.3 and 1.2) and RSA-PSS-only keys (TLS 1.3, rsa_pss_pss_*), which sec-mod signs
/// with aws-lc-rs: the worker asks for their schemes, one signature, a checked structure.
#[test]
fn p521_and_rsa_pss_keys_ask_their_schemes() {
    use provider::cipher_suite::*;
    use rustls::SignatureScheme as S;
    let offered = [
        S::ECDSA_NISTP256_SHA256,
        S::ECDSA_NISTP521_SHA512,
        S::RSA_PSS_SHA256,
        S::Unknown(0x0809),
        S::Unknown(0x080b),
    ];
    let cases: [(
        KeyKind,
        &'static rustls::SupportedProtocolVersion,
        SupportedCipherSuite,
        u16,
    ); 3] = [
        (
            KeyKind::EcdsaP521,
            &rustls::version::TLS13,
            TLS13_AES_256_GCM_SHA384,
            0x0603,
        ),
        (
            KeyKind::EcdsaP521,
            &rustls::version::TLS12,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            0x0603,
        ),
        (
            KeyKind::RsaPss,
            &rustls::version::TLS13,
            TLS13_AES_128_GCM_SHA256,
            0x0809,
        ),
    ];
    for (key, version, suite, scheme) in cases {
        let tls = TlsSettings {
            cert_chain: vec![vec![0x30, 0x00]],
            key,
            tls12: true,
            tls13: true,
            vhosts: Vec::new(),
        };
        let (seen, _) = first_flight_offering(
            &tls,
            version,
            suite,
            provider::kx_group::X25519,
            "vpn.test",
            Some(&offered),
        );
        let _ = one_signable(&seen);
        assert_eq!(seen[0].0, scheme, "{key:?} {version:?}");
    }
}
