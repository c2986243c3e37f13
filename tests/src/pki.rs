//! A throw-away server certificate and its openconnect pin.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Certificate and key files plus the `pin-sha256:` value for `--servercert`.
pub struct Pki {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub pin: String,
}

/// Write a self-signed ECDSA P-256 certificate for `ip` into `dir`.
pub fn make(dir: &Path, ip: &str) -> Pki {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec![ip.to_owned(), "vpn.test".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let cert_path = dir.join("server-cert.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Pki {
        cert: cert_path,
        key: key_path,
        pin: pin_of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key)),
    }
}

/// openconnect's pin: base64 of the SHA-256 of the SubjectPublicKeyInfo (RFC 7469 style).
pub fn pin_of_spki(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}
