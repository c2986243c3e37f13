//! Repair of SEC1 EC private keys written by GnuTLS.
//!
//! GnuTLS's `certtool --generate-privkey --key-type=ecdsa` (the tool ocserv's documentation uses)
//! encodes the private scalar as a signed integer, so it often carries a leading zero byte: 33
//! bytes for P-256. RFC 5915 wants exactly the field size, and ring rejects anything else. Keys
//! made for ocserv must load unchanged, so such a key is re-encoded with the scalar at its field
//! size; everything else in the structure is kept byte for byte.

/// DER of the named-curve OIDs we can size: prime256v1 and secp384r1.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The key re-encoded with a correctly sized scalar, or `None` when it needs no repair or is
/// not a SEC1 structure we understand (the caller then reports ring's error for the original).
pub(crate) fn normalise(der: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, rest) = read_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tag, version, after_version) = read_tlv(body)?;
    if tag != 0x02 || version != [1] {
        return None;
    }
    let (tag, scalar, params_and_key) = read_tlv(after_version)?;
    if tag != 0x04 {
        return None;
    }
    let size = if contains(params_and_key, P256_OID) {
        32
    } else if contains(params_and_key, P384_OID) {
        48
    } else {
        return None;
    };
    let trimmed = match scalar.iter().position(|&b| b != 0) {
        Some(first) => scalar.get(first..)?,
        None => return None,
    };
    if scalar.len() == size || trimmed.len() > size {
        return None;
    }
    let mut fixed = vec![0u8; size - trimmed.len()];
    fixed.extend_from_slice(trimmed);

    let mut inner = vec![0x02, 0x01, 0x01];
    write_tlv(&mut inner, 0x04, &fixed);
    inner.extend_from_slice(params_and_key);
    let mut out = Vec::with_capacity(inner.len() + 4);
    write_tlv(&mut out, 0x30, &inner);
    Some(out)
}

/// One DER tag-length-value: (tag, value, what follows).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&b, rest) = rest.split_first()?;
            (usize::from(b), rest)
        }
        0x82 => {
            let bytes = rest.get(..2)?;
            (
                usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
                rest.get(2..)?,
            )
        }
        _ => return None,
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

fn write_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    match value.len() {
        len @ 0..=0x7f => out.push(len as u8),
        len @ 0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        len => {
            let [hi, lo] = (len as u16).to_be_bytes();
            out.extend_from_slice(&[0x82, hi, lo]);
        }
    }
    out.extend_from_slice(value);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key as certtool wrote it (33-byte scalar with a leading zero), from the bench's
    /// throw-away PKI; the repaired form must load with ring and keep the public key.
    const GNUTLS_P256: &str = "-----BEGIN EC PRIVATE KEY-----
MHgCAQEEIQDLru8V5egna9v3GqNt+g6rdsVdwedKJDgxMAN/7WINbaAKBggqhkjO
PQMBB6FEA0IABE2YNTjD6HWVfV3G6AJ29Jf/D4afrdZFdj8FSdQ7oGI1nhJritWM
qOLgmI84OISn+lAFxOovctBpsasYISKSMVA=
-----END EC PRIVATE KEY-----
";

    #[test]
    fn gnutls_key_with_leading_zero_is_repaired() {
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::PrivateSec1KeyDer::from_pem_slice(GNUTLS_P256.as_bytes()).unwrap();
        let original = rustls_pki_types::PrivateKeyDer::Sec1(der.clone_key());
        assert!(rustls::crypto::ring::sign::any_supported_type(&original).is_err());
        let fixed = normalise(der.secret_sec1_der()).expect("needs repair");
        assert_eq!(fixed.len() + 1, der.secret_sec1_der().len());
        let key = rustls_pki_types::PrivateKeyDer::Sec1(fixed.into());
        assert!(rustls::crypto::ring::sign::any_supported_type(&key).is_ok());
    }

    #[test]
    fn well_formed_and_garbage_keys_are_left_alone() {
        assert_eq!(normalise(&[]), None);
        assert_eq!(normalise(&[0x30, 0x03, 0x02, 0x01, 0x01]), None);
        for len in 0..80u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(91)).collect();
            let _ = normalise(&junk);
        }
    }
}
