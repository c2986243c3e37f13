//! The bytes of `server-key` and `server-cert` files, without any cryptography: PEM sections
//! (certtool's `Public Key Info:` text before the block, and OpenSSL's `Proc-Type` headers
//! inside it), the algorithm of a PKCS#8 key, the RSA key inside an id-RSASSA-PSS PKCS#8 key,
//! the PBES2 parameters of an encrypted PKCS#8 key, and a certificate's public key. Pure: the
//! caller reads the files and does the cryptography (keys.rs).

use base64::Engine as _;

/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 8017 appendix C).
pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-RSASSA-PSS, 1.2.840.113549.1.1.10 (RFC 8017 appendix C; RFC 4055 §3.1 for SPKI).
pub(crate) const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
/// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
pub(crate) const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-Ed25519, 1.3.101.112 (RFC 8410 §3).
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// secp256r1, secp384r1, secp521r1 (RFC 5480 §2.1.1.1).
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// id-PBES2, id-PBKDF2 (RFC 8018 appendix A.4, A.2).
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
/// hmacWithSHA1/256/384/512 (RFC 8018 appendix B.1).
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
/// aes128-CBC-PAD, aes192-CBC-PAD, aes256-CBC-PAD (RFC 8018 appendix B.2.5; NIST arc).
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// More PBKDF2 rounds than this is not a key file anyone made (certtool uses 600 000): refuse
/// rather than spin at start.
pub(crate) const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// One PEM section.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pem {
    /// What follows `-----BEGIN ` (e.g. `RSA PRIVATE KEY`).
    pub label: String,
    /// RFC 1421 header lines (`Proc-Type: 4,ENCRYPTED`), present in OpenSSL's legacy
    /// encrypted keys.
    pub encrypted_legacy: bool,
    pub der: Vec<u8>,
}

/// Why a file's bytes are not what they should be.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("no PEM block (-----BEGIN ...-----) found")]
    NoPem,
    #[error("PEM block `{0}` has no END line")]
    Unterminated(String),
    #[error("PEM block `{0}` is not valid base64")]
    Base64(String),
    #[error("malformed DER in {0}")]
    Der(&'static str),
}

/// Every PEM section of `text`, in order; text outside sections (certtool's `Public Key Info:`
/// dump, comments) is skipped, as GnuTLS does.
pub(crate) fn pem_sections(text: &[u8]) -> Result<Vec<Pem>, FormatError> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut encrypted_legacy = false;
        let mut ended = false;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == end {
                ended = true;
                break;
            }
            if line.contains(':') {
                // RFC 1421 §4.6 header; OpenSSL writes `Proc-Type: 4,ENCRYPTED` + `DEK-Info`.
                encrypted_legacy |= line.starts_with("Proc-Type:") && line.contains("ENCRYPTED");
                continue;
            }
            b64.push_str(line);
        }
        if !ended {
            return Err(FormatError::Unterminated(label.to_owned()));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| FormatError::Base64(label.to_owned()))?;
        out.push(Pem {
            label: label.to_owned(),
            encrypted_legacy,
            der,
        });
    }
    if out.is_empty() {
        return Err(FormatError::NoPem);
    }
    Ok(out)
}

/// (algorithm OID, algorithm parameters, key bytes) of a key structure.
pub(crate) type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// A PKCS#8 PrivateKeyInfo's algorithm OID, its parameters (DER, possibly empty) and the
/// private key octets (RFC 5958 §2).
pub(crate) fn pkcs8_parts(der: &[u8]) -> Result<Parts<'_>, FormatError> {
    let bad = || FormatError::Der("PKCS#8 private key");
    let mut outer = Reader::new(seq(der).ok_or_else(bad)?);
    outer.expect(0x02).ok_or_else(bad)?; // version
    let alg = outer.expect(0x30).ok_or_else(bad)?;
    let mut alg = Reader::new(alg);
    let oid = alg.expect(0x06).ok_or_else(bad)?;
    let params = alg.rest();
    let key = outer.expect(0x04).ok_or_else(bad)?;
    Ok((oid, params, key))
}

/// The public key of a certificate: algorithm OID, algorithm parameters (DER TLV, possibly
/// empty) and the subjectPublicKey bits (RFC 5280 §4.1).
pub(crate) fn cert_spki(der: &[u8]) -> Result<Parts<'_>, FormatError> {
    let bad = || FormatError::Der("certificate");
    let mut cert = Reader::new(seq(der).ok_or_else(bad)?);
    let mut tbs = Reader::new(cert.expect(0x30).ok_or_else(bad)?);
    if tbs.peek() == Some(0xa0) {
        tbs.next_tlv().ok_or_else(bad)?; // [0] version
    }
    for _ in 0..5 {
        // serialNumber, signature, issuer, validity, subject
        tbs.next_tlv().ok_or_else(bad)?;
    }
    let mut spki = Reader::new(tbs.expect(0x30).ok_or_else(bad)?);
    let mut alg = Reader::new(spki.expect(0x30).ok_or_else(bad)?);
    let oid = alg.expect(0x06).ok_or_else(bad)?;
    let params = alg.rest();
    let bits = spki.expect(0x03).ok_or_else(bad)?;
    // The unused-bits octet must be 0 for a key.
    match bits.split_first() {
        Some((0, key)) => Ok((oid, params, key)),
        _ => Err(bad()),
    }
}

/// The pseudo-random function of PBKDF2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prf {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// AES-CBC key sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aes {
    Aes128,
    Aes192,
    Aes256,
}

impl Aes {
    pub(crate) fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }
}

/// An EncryptedPrivateKeyInfo with PBES2 (RFC 5958 §3, RFC 8018 §6.2): what to derive the key
/// with and what to decrypt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pbes2<'a> {
    pub salt: &'a [u8],
    pub rounds: u32,
    pub prf: Prf,
    pub cipher: Aes,
    pub iv: &'a [u8],
    pub ciphertext: &'a [u8],
}

/// Why an encrypted key cannot be opened, whatever the PIN.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    #[error("malformed encrypted key")]
    Malformed,
    #[error(
        "unsupported key encryption (only PBES2 with PBKDF2 and AES-CBC; convert with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc` or `certtool --to-p8`)"
    )]
    Unsupported,
    #[error("PBKDF2 iteration count {0} out of range")]
    Rounds(u64),
}

/// Parse an EncryptedPrivateKeyInfo.
pub(crate) fn pbes2(der: &[u8]) -> Result<Pbes2<'_>, EncryptionError> {
    use EncryptionError::{Malformed, Unsupported};
    let mut outer = Reader::new(seq(der).ok_or(Malformed)?);
    let mut alg = Reader::new(outer.expect(0x30).ok_or(Malformed)?);
    let ciphertext = outer.expect(0x04).ok_or(Malformed)?;
    if alg.expect(0x06).ok_or(Malformed)? != OID_PBES2 {
        return Err(Unsupported);
    }
    let mut params = Reader::new(alg.expect(0x30).ok_or(Malformed)?);
    let mut kdf = Reader::new(params.expect(0x30).ok_or(Malformed)?);
    let mut scheme = Reader::new(params.expect(0x30).ok_or(Malformed)?);
    if kdf.expect(0x06).ok_or(Malformed)? != OID_PBKDF2 {
        return Err(Unsupported);
    }
    let mut kdf = Reader::new(kdf.expect(0x30).ok_or(Malformed)?);
    let salt = kdf.expect(0x04).ok_or(Unsupported)?;
    let rounds = uint(kdf.expect(0x02).ok_or(Malformed)?).ok_or(Malformed)?;
    if rounds == 0 || rounds > u64::from(MAX_PBKDF2_ROUNDS) {
        return Err(EncryptionError::Rounds(rounds));
    }
    if kdf.peek() == Some(0x02) {
        kdf.next_tlv().ok_or(Malformed)?; // keyLength: implied by the cipher
    }
    let prf = match kdf.peek() {
        None => Prf::Sha1, // RFC 8018 A.2: the default
        Some(_) => {
            let mut prf = Reader::new(kdf.expect(0x30).ok_or(Malformed)?);
            match prf.expect(0x06).ok_or(Malformed)? {
                OID_HMAC_SHA1 => Prf::Sha1,
                OID_HMAC_SHA256 => Prf::Sha256,
                OID_HMAC_SHA384 => Prf::Sha384,
                OID_HMAC_SHA512 => Prf::Sha512,
                _ => return Err(Unsupported),
            }
        }
    };
    let cipher = match scheme.expect(0x06).ok_or(Malformed)? {
        OID_AES128_CBC => Aes::Aes128,
        OID_AES192_CBC => Aes::Aes192,
        OID_AES256_CBC => Aes::Aes256,
        _ => return Err(Unsupported),
    };
    let iv = scheme.expect(0x04).ok_or(Malformed)?;
    if iv.len() != 16 || ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(Malformed);
    }
    Ok(Pbes2 {
        salt,
        rounds: u32::try_from(rounds).map_err(|_| EncryptionError::Rounds(rounds))?,
        prf,
        cipher,
        iv,
        ciphertext,
    })
}

/// A DER INTEGER's non-negative value, if it fits in u64.
fn uint(bytes: &[u8]) -> Option<u64> {
    let trimmed = match bytes.iter().position(|&b| b != 0) {
        Some(first) => bytes.get(first..)?,
        None => return Some(0),
    };
    if bytes.first().is_some_and(|&b| b & 0x80 != 0) || trimmed.len() > 8 {
        return None;
    }
    Some(trimmed.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// The body of `der` if it is exactly one SEQUENCE.
fn seq(der: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(der);
    let body = r.expect(0x30)?;
    r.rest().is_empty().then_some(body)
}

/// A cursor over DER TLVs (definite lengths up to 4 bytes).
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    fn peek(&self) -> Option<u8> {
        self.input.first().copied()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.input)
    }

    /// The next TLV: (tag, value).
    fn next_tlv(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let bytes = rest.get(..n)?;
                let len = bytes.iter().fold(0usize, |v, &b| (v << 8) | usize::from(b));
                (len, rest.get(n..)?)
            }
            _ => return None,
        };
        let value = rest.get(..len)?;
        self.input = rest.get(len..)?;
        Some((tag, value))
    }

    /// The next TLV's value if its tag is `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next_tlv()? {
            (t, value) if t == tag => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "keyfile_tests.rs"]
mod tests;
