//! Key loading: every supported encoding and algorithm, mismatch detection, and signatures that
//! verify against the certificate's public key.
// Test helpers outside #[test] functions may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{data, generate, verify_with_cert};
use rocserv_proto::ipc::KeyKind;
use rocserv_sec_mod::keys::{KeyError, ServerKey};

const MESSAGE: &[u8] = b"TLS 1.3, server CertificateVerify\0 transcript hash stand-in";

fn sign_and_verify(key: &ServerKey, cert_pem: &[u8], scheme: u16) {
    let sig = key
        .sign(scheme, MESSAGE)
        .unwrap_or_else(|| panic!("sign {scheme:#06x}"));
    assert!(
        verify_with_cert(cert_pem, scheme, MESSAGE, &sig),
        "{scheme:#06x}"
    );
    assert!(!verify_with_cert(
        cert_pem,
        scheme,
        b"another message",
        &sig
    ));
}

#[test]
fn ecdsa_p256_pkcs8() {
    let (cert, key) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let k = ServerKey::from_pem(key.as_bytes(), cert.as_bytes()).unwrap();
    assert_eq!(k.kind(), KeyKind::EcdsaP256);
    sign_and_verify(&k, cert.as_bytes(), 0x0403);
    // A P-256 key cannot do P-384 or RSA schemes.
    assert!(k.sign(0x0503, MESSAGE).is_none());
    assert!(k.sign(0x0804, MESSAGE).is_none());
    assert!(k.sign(0xffff, MESSAGE).is_none());
}

#[test]
fn ecdsa_p384_pkcs8() {
    let (cert, key) = generate(&rcgen::PKCS_ECDSA_P384_SHA384);
    let k = ServerKey::from_pem(key.as_bytes(), cert.as_bytes()).unwrap();
    assert_eq!(k.kind(), KeyKind::EcdsaP384);
    sign_and_verify(&k, cert.as_bytes(), 0x0503);
    assert!(k.sign(0x0403, MESSAGE).is_none());
}

#[test]
fn ed25519_pkcs8() {
    let (cert, key) = generate(&rcgen::PKCS_ED25519);
    let k = ServerKey::from_pem(key.as_bytes(), cert.as_bytes()).unwrap();
    assert_eq!(k.kind(), KeyKind::Ed25519);
    sign_and_verify(&k, cert.as_bytes(), 0x0807);
}

#[test]
fn rsa_pkcs1_from_openssl() {
    let cert = data("rsa.crt");
    let k = ServerKey::from_pem(&data("rsa-pkcs1.key"), &cert).unwrap();
    assert_eq!(k.kind(), KeyKind::Rsa);
    for scheme in [0x0804, 0x0805, 0x0401, 0x0501] {
        sign_and_verify(&k, &cert, scheme);
    }
    assert!(k.sign(0x0403, MESSAGE).is_none());
}

#[test]
fn ec_sec1_from_openssl() {
    let cert = data("ec.crt");
    let k = ServerKey::from_pem(&data("ec-sec1.key"), &cert).unwrap();
    assert_eq!(k.kind(), KeyKind::EcdsaP256);
    sign_and_verify(&k, &cert, 0x0403);
}

#[test]
fn key_not_matching_the_certificate_is_refused() {
    let (cert_a, _) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, key_b) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let err = ServerKey::from_pem(key_b.as_bytes(), cert_a.as_bytes()).unwrap_err();
    assert!(matches!(err, KeyError::Mismatch), "{err:?}");
    // Different algorithms mismatch too.
    let err = ServerKey::from_pem(&data("rsa-pkcs1.key"), &data("ec.crt")).unwrap_err();
    assert!(matches!(err, KeyError::Mismatch), "{err:?}");
}

#[test]
fn unusable_inputs_are_errors() {
    let (cert, key) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    assert!(matches!(
        ServerKey::from_pem(b"not pem", cert.as_bytes()),
        Err(KeyError::NoKey(_))
    ));
    assert!(matches!(
        ServerKey::from_pem(key.as_bytes(), b""),
        Err(KeyError::NoCertificate)
    ));
    // The certificate PEM where the key should be.
    assert!(matches!(
        ServerKey::from_pem(cert.as_bytes(), cert.as_bytes()),
        Err(KeyError::NoKey(_))
    ));
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        ServerKey::from_pem(garbage_key.as_bytes(), cert.as_bytes()),
        Err(KeyError::Unsupported(_))
    ));
}

#[test]
fn missing_files_name_the_path() {
    let err = ServerKey::load_files(
        "/nonexistent/k.pem".as_ref(),
        "/nonexistent/c.pem".as_ref(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/k.pem"), "{err}");
}
