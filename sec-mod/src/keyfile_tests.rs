use super::*;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/");

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}{name}")).unwrap()
}

#[test]
fn certtool_text_before_the_block_is_skipped() {
    let text = data("ct-rsa2432.key");
    assert!(text.starts_with(b"Public Key Info:"));
    let sections = pem_sections(&text).unwrap();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0].label, "RSA PRIVATE KEY");
    assert!(!sections[0].encrypted_legacy);
    assert_eq!(sections[0].der[0], 0x30);
}

#[test]
fn pem_errors() {
    assert_eq!(pem_sections(b"nothing here"), Err(FormatError::NoPem));
    assert_eq!(
        pem_sections(b"-----BEGIN PRIVATE KEY-----\nAAAA\n"),
        Err(FormatError::Unterminated("PRIVATE KEY".into()))
    );
    assert_eq!(
        pem_sections(b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n"),
        Err(FormatError::Base64("PRIVATE KEY".into()))
    );
    // Several sections, CRLF line ends.
    let two = b"-----BEGIN A-----\r\nAAEC\r\n-----END A-----\r\nx\r\n-----BEGIN B-----\r\nAw==\r\n-----END B-----\r\n";
    let s = pem_sections(two).unwrap();
    assert_eq!((s[0].label.as_str(), &s[0].der[..]), ("A", &[0, 1, 2][..]));
    assert_eq!((s[1].label.as_str(), &s[1].der[..]), ("B", &[3][..]));
}

#[test]
fn openssl_legacy_encryption_is_recognised() {
    let s = pem_sections(&data("os-rsa2048-legacy-enc.key")).unwrap();
    assert!(s[0].encrypted_legacy);
}

#[test]
fn pkcs8_algorithms() {
    let cases = [
        ("os-rsa2048-p8.key", OID_RSA),
        ("ct-rsa2432-p8.key", OID_RSA),
        ("ct-rsapss.key", OID_RSA_PSS),
        ("os-rsapss.key", OID_RSA_PSS),
        ("ct-ed25519.key", OID_ED25519),
    ];
    for (file, oid) in cases {
        let s = pem_sections(&data(file)).unwrap();
        let (got, _, key) = pkcs8_parts(&s[0].der).unwrap();
        assert_eq!(got, oid, "{file}");
        assert!(!key.is_empty());
    }
    assert!(pkcs8_parts(&[0x30, 0x00]).is_err());
    assert!(pkcs8_parts(&[]).is_err());
}

#[test]
fn certificate_public_keys() {
    let cases = [
        ("ct-rsa2432.crt", OID_RSA, 0),
        ("ct-rsapss.crt", OID_RSA_PSS, 0),
        ("ct-p521.crt", OID_EC, 133),
        ("ct-p384.crt", OID_EC, 97),
        ("os-p521-sec1.crt", OID_EC, 133),
        ("ct-ed25519.crt", OID_ED25519, 32),
    ];
    for (file, oid, len) in cases {
        let s = pem_sections(&data(file)).unwrap();
        let (got, params, key) = cert_spki(&s[0].der).unwrap();
        assert_eq!(got, oid, "{file}");
        if oid == OID_EC {
            assert_eq!(key.len(), len, "{file}");
            assert_eq!(params[0], 0x06);
        }
    }
    assert!(cert_spki(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
}

#[test]
fn pbes2_parameters() {
    let s = pem_sections(&data("ct-p384-enc.key")).unwrap();
    assert_eq!(s[0].label, "ENCRYPTED PRIVATE KEY");
    let p = pbes2(&s[0].der).unwrap();
    assert_eq!(p.rounds, 600_000);
    assert_eq!((p.prf, p.cipher), (Prf::Sha256, Aes::Aes128));
    assert_eq!(p.iv.len(), 16);
    let s = pem_sections(&data("os-p256-enc.key")).unwrap();
    let p = pbes2(&s[0].der).unwrap();
    assert_eq!((p.prf, p.cipher), (Prf::Sha256, Aes::Aes256));
    assert_eq!(pbes2(&[0x30, 0x00]), Err(EncryptionError::Malformed));
}

#[test]
fn integers() {
    assert_eq!(uint(&[0x00]), Some(0));
    assert_eq!(uint(&[0x09, 0x27, 0xc0]), Some(600_000));
    assert_eq!(uint(&[0x80]), None); // negative
    assert_eq!(uint(&[0x00, 0xff]), Some(255));
    assert_eq!(uint(&[1; 9]), None);
}

/// Truncations and bit flips of real files never panic.
#[test]
fn damaged_inputs_do_not_panic() {
    for file in ["ct-p384-enc.key", "ct-rsapss.key", "ct-p521.crt"] {
        let der = pem_sections(&data(file)).unwrap().remove(0).der;
        for cut in 0..der.len() {
            let _ = pbes2(&der[..cut]);
            let _ = pkcs8_parts(&der[..cut]);
            let _ = cert_spki(&der[..cut]);
        }
        for i in 0..der.len().min(200) {
            let mut d = der.clone();
            d[i] ^= 0x5a;
            let _ = pbes2(&d);
            let _ = pkcs8_parts(&d);
            let _ = cert_spki(&d);
        }
    }
}
