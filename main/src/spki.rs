//! The `pin-sha256:` value openconnect accepts for `--servercert`: base64 (standard, padded) of
//! the SHA-256 of the certificate's DER SubjectPublicKeyInfo.
//!
//! The SPKI is found with a minimal bounded DER walk over our own certificate (RFC 5280 §4.1:
//! Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
//! signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }).

use base64::Engine as _;

/// The certificate is not DER of the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("certificate DER is malformed")]
pub struct MalformedCertificate;

/// `pin-sha256:...` of a DER certificate.
pub fn pin_sha256(cert_der: &[u8]) -> Result<String, MalformedCertificate> {
    let spki = subject_public_key_info(cert_der)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    ))
}

/// The complete DER (tag, length and value) of the SubjectPublicKeyInfo of a certificate.
pub fn subject_public_key_info(cert_der: &[u8]) -> Result<&[u8], MalformedCertificate> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT, constructed
    let (cert, _) = Tlv::read(cert_der, SEQUENCE)?;
    let (tbs, _) = Tlv::read(cert.value, SEQUENCE)?;
    let mut rest = tbs.value;
    if rest.first() == Some(&VERSION) {
        rest = Tlv::read(rest, VERSION)?.1;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = Tlv::read_any(rest)?.1;
    }
    let (spki, _) = Tlv::read(rest, SEQUENCE)?;
    Ok(spki.whole)
}

/// One DER element.
struct Tlv<'a> {
    whole: &'a [u8],
    value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Read an element with tag `tag`; returns it and what follows.
    fn read(input: &'a [u8], tag: u8) -> Result<(Self, &'a [u8]), MalformedCertificate> {
        match input.first() {
            Some(t) if *t == tag => Self::read_any(input),
            _ => Err(MalformedCertificate),
        }
    }

    /// Read one element of any single-byte tag; returns it and what follows.
    fn read_any(input: &'a [u8]) -> Result<(Self, &'a [u8]), MalformedCertificate> {
        let first_len = *input.get(1).ok_or(MalformedCertificate)?;
        let (header, len) = if first_len < 0x80 {
            (2, usize::from(first_len))
        } else {
            // Long form: the low bits count the length bytes (at most 4 here).
            let count = usize::from(first_len & 0x7f);
            if count == 0 || count > 4 {
                return Err(MalformedCertificate);
            }
            let bytes = input.get(2..2 + count).ok_or(MalformedCertificate)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, len)
        };
        let end = header.checked_add(len).ok_or(MalformedCertificate)?;
        let whole = input.get(..end).ok_or(MalformedCertificate)?;
        let value = whole.get(header..).ok_or(MalformedCertificate)?;
        let rest = input.get(end..).ok_or(MalformedCertificate)?;
        Ok((Self { whole, value }, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_matches_the_generating_key() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let spki = subject_public_key_info(ck.cert.der()).unwrap();
        // rcgen's own encoding of the key's SPKI is an independent computation.
        use rcgen::PublicKeyData as _;
        assert_eq!(spki, ck.signing_key.subject_public_key_info().as_slice());
    }

    #[test]
    fn pin_matches_openssl_when_available() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let pin = pin_sha256(ck.cert.der()).unwrap();
        assert!(pin.starts_with("pin-sha256:") && pin.ends_with('='));
        let Some(expected) = openssl_pin(&ck.cert.pem()) else {
            eprintln!("openssl not available; cross-check skipped");
            return;
        };
        assert_eq!(pin, format!("pin-sha256:{expected}"));
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = ck.cert.der().to_vec();
        for len in 0..der.len() {
            assert!(subject_public_key_info(&der[..len]).is_err(), "len {len}");
        }
        assert!(subject_public_key_info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(subject_public_key_info(&[0x30, 0x80]).is_err());
    }

    /// `openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary
    /// | base64`, the recipe openconnect's documentation gives.
    fn openssl_pin(cert_pem: &str) -> Option<String> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let run = |args: &[&str], input: &[u8]| -> Option<Vec<u8>> {
            let mut child = Command::new("openssl")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .ok()?;
            child.stdin.take()?.write_all(input).ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then_some(out.stdout)
        };
        let pubkey = run(&["x509", "-noout", "-pubkey"], cert_pem.as_bytes())?;
        let der = run(&["pkey", "-pubin", "-outform", "der"], &pubkey)?;
        let digest = run(&["dgst", "-sha256", "-binary"], &der)?;
        Some(base64::engine::general_purpose::STANDARD.encode(digest))
    }
}
