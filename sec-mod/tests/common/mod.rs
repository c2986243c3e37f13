//! Helpers shared by the sec-mod integration tests.
// Each test binary uses a different subset; helpers may unwrap and panic (test failures).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rocserv-sm-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Committed fixture file under tests/data.
pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// A fresh self-signed certificate and its PKCS#8 key, as PEM (cert, key).
pub fn generate(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Verify `sig` over `msg` with the public key of the first certificate in `cert_pem`, using
/// ring directly (not rustls), for TLS signature scheme `scheme`.
pub fn verify_with_cert(cert_pem: &[u8], scheme: u16, msg: &[u8], sig: &[u8]) -> bool {
    let der = first_cert_der(cert_pem);
    let key = public_key_bits(&der);
    let alg: &dyn VerificationAlgorithm = match scheme {
        0x0401 => &signature::RSA_PKCS1_2048_8192_SHA256,
        0x0501 => &signature::RSA_PKCS1_2048_8192_SHA384,
        0x0804 => &signature::RSA_PSS_2048_8192_SHA256,
        0x0805 => &signature::RSA_PSS_2048_8192_SHA384,
        0x0403 => &signature::ECDSA_P256_SHA256_ASN1,
        0x0503 => &signature::ECDSA_P384_SHA384_ASN1,
        0x0807 => &signature::ED25519,
        other => panic!("no verifier for scheme {other:#06x}"),
    };
    UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
}

fn first_cert_der(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .unwrap()
        .to_vec()
}

/// One DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(input[2]), 3),
        0x82 => (usize::from(input[2]) << 8 | usize::from(input[3]), 4),
        other => panic!("unsupported DER length byte {other:#x}"),
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The subjectPublicKey BIT STRING contents of a certificate (what ring's verifiers take).
fn public_key_bits(cert: &[u8]) -> Vec<u8> {
    let (_, certificate, _) = tlv(cert);
    let (_, tbs, _) = tlv(certificate);
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (tag, content, next) = tlv(rest);
        fields.push((tag, content));
        rest = next;
    }
    // Skip the optional [0] version; then serial, signature, issuer, validity, subject, SPKI.
    let start = usize::from(fields[0].0 == 0xa0);
    let (tag, spki) = fields[start + 5];
    assert_eq!(tag, 0x30);
    let (_, _algorithm, rest) = tlv(spki);
    let (tag, bits, _) = tlv(rest);
    assert_eq!(tag, 0x03);
    assert_eq!(bits[0], 0, "unused bits");
    bits[1..].to_vec()
}
