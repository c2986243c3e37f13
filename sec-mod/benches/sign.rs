//! Handshake cost of sec-mod's signing provider (doc/decisions/0009-signing-provider.md): one
//! TLS 1.3 CertificateVerify signature per handshake, with aws-lc-rs (what `ServerKey` uses)
//! and, for the keys ring can load, with ring (what sec-mod used before), for every key family.
//! The workers' data path does not sign and stays on ring.
//!
//!     cargo bench -p rocserv-sec-mod --bench sign
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark may panic on setup failure"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rocserv_sec_mod::keys::ServerKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// What sec-mod signs per TLS 1.3 handshake: 64 spaces, the context string, 0, a SHA-256 hash.
fn certificate_verify() -> Vec<u8> {
    let mut m = vec![b' '; 64];
    m.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
    m.extend_from_slice(&[0x5a; 32]);
    m
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// (label, key file, certificate file, scheme)
const KEYS: &[(&str, &str, &str, u16)] = &[
    (
        "rsa2048_pss",
        "os-rsa2048-p8.key",
        "os-rsa2048-p8.crt",
        0x0804,
    ),
    ("rsa2432_pss", "ct-rsa2432.key", "ct-rsa2432.crt", 0x0804),
    ("rsa3072_pss", "ct-rsa3072.key", "ct-rsa3072.crt", 0x0804),
    (
        "rsa4096_pss",
        "os-rsa4096-pkcs1.key",
        "os-rsa4096-pkcs1.crt",
        0x0804,
    ),
    ("rsapss2048", "ct-rsapss.key", "ct-rsapss.crt", 0x0809),
    ("p256", "ct-p256.key", "ct-p256.crt", 0x0403),
    ("p384", "ct-p384.key", "ct-p384.crt", 0x0503),
    ("p521", "ct-p521.key", "ct-p521.crt", 0x0603),
    ("ed25519", "ct-ed25519.key", "ct-ed25519.crt", 0x0807),
];

fn aws_lc(c: &mut Criterion) {
    let message = certificate_verify();
    let mut group = c.benchmark_group("sign_aws_lc_rs");
    for &(label, key, cert, scheme) in KEYS {
        let key = ServerKey::from_pem(&data(key), &data(cert)).unwrap();
        group.bench_function(label, |b| {
            b.iter(|| black_box(key.sign(scheme, black_box(&message)).unwrap()))
        });
    }
    group.finish();
}

fn ring(c: &mut Criterion) {
    let message = certificate_verify();
    let mut group = c.benchmark_group("sign_ring");
    for &(label, key, _, scheme) in KEYS {
        let Ok(der) = PrivateKeyDer::from_pem_slice(&data(key)) else {
            continue;
        };
        // ring refuses 2432-bit RSA, P-521 and id-RSASSA-PSS keys (and some GnuTLS SEC1).
        let Ok(key) = rustls::crypto::ring::sign::any_supported_type(&der) else {
            continue;
        };
        let signer = key
            .choose_scheme(&[rustls::SignatureScheme::from(scheme)])
            .unwrap();
        group.bench_function(label, |b| {
            b.iter(|| black_box(signer.sign(black_box(&message)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, aws_lc, ring);
criterion_main!(benches);
