//! Every key family ocserv users have, as certtool and openssl write them: load, sign with
//! each scheme the worker may ask for, verify against the certificate's public key.

use aws_lc_rs::signature::{self as v, UnparsedPublicKey};

use rocserv_proto::ipc::main_secmod::KeyPin;

use super::*;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/");
const MESSAGE: &[u8] = b"TLS 1.3, server CertificateVerify\0 transcript stand-in";

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}{name}")).unwrap()
}

/// Verify `sig` over MESSAGE with the public key of `cert` for `scheme`.
fn verifies(cert: &[u8], scheme: u16, sig: &[u8]) -> bool {
    let der = keyfile::pem_sections(cert).unwrap().remove(0).der;
    let (_, _, public) = keyfile::cert_spki(&der).unwrap();
    let alg: &dyn v::VerificationAlgorithm = match scheme {
        0x0401 => &v::RSA_PKCS1_2048_8192_SHA256,
        0x0501 => &v::RSA_PKCS1_2048_8192_SHA384,
        0x0601 => &v::RSA_PKCS1_2048_8192_SHA512,
        0x0804 | 0x0809 => &v::RSA_PSS_2048_8192_SHA256,
        0x0805 | 0x080a => &v::RSA_PSS_2048_8192_SHA384,
        0x0806 | 0x080b => &v::RSA_PSS_2048_8192_SHA512,
        0x0403 => &v::ECDSA_P256_SHA256_ASN1,
        0x0503 => &v::ECDSA_P384_SHA384_ASN1,
        0x0603 => &v::ECDSA_P521_SHA512_ASN1,
        0x0807 => &v::ED25519,
        _ => panic!("scheme {scheme:#06x}"),
    };
    UnparsedPublicKey::new(alg, public)
        .verify(MESSAGE, sig)
        .is_ok()
}

fn schemes(kind: KeyKind) -> &'static [u16] {
    match kind {
        KeyKind::Rsa => &[0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601],
        KeyKind::RsaPss => &[0x0809, 0x080a, 0x080b],
        KeyKind::EcdsaP256 => &[0x0403],
        KeyKind::EcdsaP384 => &[0x0503],
        KeyKind::EcdsaP521 => &[0x0603],
        KeyKind::Ed25519 => &[0x0807],
    }
}

fn check(key_file: &str, cert_file: &str, pin: Option<&str>, kind: KeyKind) {
    let cert = data(cert_file);
    let key = ServerKey::from_pem_with_pin(&data(key_file), &cert, pin)
        .unwrap_or_else(|e| panic!("{key_file}: {e:?}"));
    assert_eq!(key.kind(), kind, "{key_file}");
    for &scheme in schemes(kind) {
        let sig = key
            .sign(scheme, MESSAGE)
            .unwrap_or_else(|| panic!("{key_file} {scheme:#06x}"));
        assert!(verifies(&cert, scheme, &sig), "{key_file} {scheme:#06x}");
    }
    // Nothing outside the kind's schemes (a PSS-only key never signs PKCS#1 or rsae).
    for scheme in [
        0x0401, 0x0403, 0x0503, 0x0603, 0x0804, 0x0807, 0x0809, 0x0201,
    ] {
        if !schemes(kind).contains(&scheme) {
            assert!(
                key.sign(scheme, MESSAGE).is_none(),
                "{key_file} {scheme:#06x}"
            );
        }
    }
}

#[test]
fn certtool_keys() {
    check("ct-rsa2432.key", "ct-rsa2432.crt", None, KeyKind::Rsa);
    check("ct-rsa2432-p8.key", "ct-rsa2432.crt", None, KeyKind::Rsa);
    check("ct-rsa3072.key", "ct-rsa3072.crt", None, KeyKind::Rsa);
    check("ct-p256.key", "ct-p256.crt", None, KeyKind::EcdsaP256);
    check("ct-p384.key", "ct-p384.crt", None, KeyKind::EcdsaP384);
    check("ct-p521.key", "ct-p521.crt", None, KeyKind::EcdsaP521);
    check("ct-rsapss.key", "ct-rsapss.crt", None, KeyKind::RsaPss);
    check("ct-ed25519.key", "ct-ed25519.crt", None, KeyKind::Ed25519);
    check(
        "ct-p384-enc.key",
        "ct-p384.crt",
        Some("secret-pin"),
        KeyKind::EcdsaP384,
    );
}

#[test]
fn openssl_keys() {
    check("os-rsa2048-p8.key", "os-rsa2048-p8.crt", None, KeyKind::Rsa);
    check(
        "os-rsa4096-pkcs1.key",
        "os-rsa4096-pkcs1.crt",
        None,
        KeyKind::Rsa,
    );
    check(
        "os-p521-sec1.key",
        "os-p521-sec1.crt",
        None,
        KeyKind::EcdsaP521,
    );
    check("os-rsapss.key", "os-rsapss.crt", None, KeyKind::RsaPss);
    check(
        "os-p256-enc.key",
        "os-p256-enc.crt",
        Some("secret-pin"),
        KeyKind::EcdsaP256,
    );
}

#[test]
fn encrypted_keys_need_the_right_pin() {
    let cert = data("os-p256-enc.crt");
    let key = data("os-p256-enc.key");
    let err = ServerKey::from_pem_with_pin(&key, &cert, None).unwrap_err();
    assert!(matches!(err, KeyError::NeedPin), "{err:?}");
    for wrong in ["", "secret-pim", "secret-pin "] {
        let err = ServerKey::from_pem_with_pin(&key, &cert, Some(wrong)).unwrap_err();
        assert!(matches!(err, KeyError::WrongPin), "{wrong}: {err:?}");
    }
    let err = ServerKey::from_pem_with_pin(
        &data("os-rsa2048-legacy-enc.key"),
        &data("os-rsa2048-p8.crt"),
        Some("secret-pin"),
    )
    .unwrap_err();
    assert!(matches!(err, KeyError::LegacyEncryption), "{err:?}");
    assert!(err.to_string().contains("openssl pkcs8 -topk8"));
}

/// The error names the key file (what an administrator reads in the log / `rocserv -t`).
#[test]
fn wrong_pin_error_names_the_file() {
    let dir = std::env::temp_dir().join(format!("rocserv-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("server-key.pem");
    std::fs::write(&key, data("os-p256-enc.key")).unwrap();
    let cert = format!("{KEYS}os-p256-enc.crt");
    let pin = KeyPin {
        pin: Some(rocserv_proto::config::Secret("nope".into())),
        file: None,
    };
    let rng = ring::rand::SystemRandom::new();
    let plan = rocserv_proto::config::AuthPlan::default();
    let Err(errors) = crate::server::load_section(&key, cert.as_ref(), &pin, &plan, &rng, "")
    else {
        panic!("a wrong PIN loaded");
    };
    let all = errors.join("\n");
    assert!(all.contains(&*key.to_string_lossy()), "{all}");
    assert!(all.contains("wrong `key-pin`"), "{all}");
    // pin-file: its first line.
    std::fs::write(dir.join("pin"), "secret-pin\nignored\n").unwrap();
    let pin = KeyPin {
        pin: None,
        file: Some(dir.join("pin")),
    };
    let Err(errors) = crate::server::load_section(&key, cert.as_ref(), &pin, &plan, &rng, "")
    else {
        panic!("no auth method, yet loaded");
    };
    let errors = errors.join("\n");
    assert!(!errors.contains("server key"), "{errors}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatches() {
    // Another key of the same family.
    let err = ServerKey::from_pem(&data("ct-p521.key"), &data("os-p521-sec1.crt")).unwrap_err();
    assert!(matches!(err, KeyError::Mismatch), "{err:?}");
    // Another family.
    let err = ServerKey::from_pem(&data("ct-p384.key"), &data("ct-rsa3072.crt")).unwrap_err();
    assert!(matches!(err, KeyError::Mismatch), "{err:?}");
    // A PSS-only key behind an rsaEncryption certificate of another key.
    let err = ServerKey::from_pem(&data("ct-rsapss.key"), &data("os-rsa2048-p8.crt")).unwrap_err();
    assert!(matches!(err, KeyError::Mismatch), "{err:?}");
}

#[test]
fn garbage_is_refused() {
    let cert = data("ct-p256.crt");
    assert!(matches!(
        ServerKey::from_pem(b"not pem", &cert),
        Err(KeyError::NoKey(_))
    ));
    assert!(matches!(
        ServerKey::from_pem(&cert, &cert),
        Err(KeyError::NoKey(_))
    ));
    let garbage = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        ServerKey::from_pem(garbage, &cert),
        Err(KeyError::Unsupported(_))
    ));
    assert!(matches!(
        ServerKey::from_pem(&data("ct-p256.key"), b""),
        Err(KeyError::NoCertificate)
    ));
}
