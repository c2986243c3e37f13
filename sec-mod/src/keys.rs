//! The server's private key: load it, check it against the certificate, sign with it.
//! Nothing else in rocserv can reach the key; workers get signatures through
//! `worker_secmod::ToSecMod::Sign`.
//!
//! Signing uses aws-lc-rs, not ring (the workers' TLS provider): ring signs only with RSA keys
//! whose primes are multiples of 512 bits (so not certtool's 2432-bit keys), has no P-521, and
//! reads no id-RSASSA-PSS key (doc/decisions/0009-signing-provider.md). The key formats are
//! read by the pure `keyfile` module.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rocserv_proto::ipc::KeyKind;

use crate::keyfile::{self, EncryptionError, FormatError, Pem};

/// Why the key could not be loaded or does not fit the certificate.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No PEM private key in the key file.
    #[error("no PEM private key (PKCS#1, PKCS#8 or SEC1) found")]
    NoKey(#[source] Option<FormatError>),
    /// The key is not RSA (2048 to 8192 bits), RSA-PSS, ECDSA P-256/P-384/P-521 or Ed25519,
    /// or is malformed.
    #[error("unsupported or malformed private key ({0})")]
    Unsupported(String),
    /// The key is encrypted and neither `key-pin` nor `pin-file` is set.
    #[error("the key is encrypted: set `key-pin` or `pin-file`")]
    NeedPin,
    /// Decryption failed: the PIN is wrong (or the file is damaged).
    #[error("cannot decrypt the key: wrong `key-pin` / `pin-file`?")]
    WrongPin,
    /// An encryption we cannot open.
    #[error("encrypted key")]
    Encryption(#[source] EncryptionError),
    /// OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM.
    #[error(
        "legacy OpenSSL encrypted PEM (Proc-Type: 4,ENCRYPTED) is not read; convert it with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8`"
    )]
    LegacyEncryption,
    /// The certificate file holds no PEM certificate.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// The certificate file holds a malformed PEM section or certificate.
    #[error("malformed certificate")]
    BadCertificate(#[source] FormatError),
    /// The private key is not the one of the first certificate.
    #[error("the private key does not match the certificate")]
    Mismatch,
}

/// aws-lc seeds its random generator from CPU jitter the first time anything in the process asks
/// for random bytes: ~40 ms of CPU here (doc/decisions/0011-login-path.md), while every other
/// caller waits. Left alone, that is the first handshake signature after each (re)start, on a
/// runtime thread, at the head of a reconnect storm. Done on a thread of its own; if that thread
/// cannot start, the first signature pays as before.
pub fn warm_up_rng() {
    let spawned = std::thread::Builder::new()
        .name("rng-warm-up".into())
        .spawn(|| {
            let mut bytes = [0u8; 16];
            let _ = aws_lc_rs::rand::fill(&mut bytes);
        });
    if let Err(e) = spawned {
        log::debug!("no thread to warm the random generator up: {e}");
    }
}

/// The key material, by algorithm.
enum Signer {
    /// `pss_only`: an id-RSASSA-PSS key (RFC 4055), which TLS may use only with the
    /// rsa_pss_pss_* schemes (RFC 8446 §4.2.3).
    Rsa {
        key: RsaKeyPair,
        pss_only: bool,
    },
    /// The key and its curve (`EcdsaP256`, `EcdsaP384` or `EcdsaP521`).
    Ecdsa(EcdsaKeyPair, KeyKind),
    Ed25519(Ed25519KeyPair),
}

/// The loaded key.
pub struct ServerKey {
    signer: Signer,
    kind: KeyKind,
    rng: SystemRandom,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("kind", &self.kind)
            .finish()
    }
}

/// TLS SignatureScheme code points (RFC 8446 §4.2.3).
mod scheme {
    pub(super) const RSA_PKCS1_SHA256: u16 = 0x0401;
    pub(super) const RSA_PKCS1_SHA384: u16 = 0x0501;
    pub(super) const RSA_PKCS1_SHA512: u16 = 0x0601;
    pub(super) const ECDSA_P256_SHA256: u16 = 0x0403;
    pub(super) const ECDSA_P384_SHA384: u16 = 0x0503;
    pub(super) const ECDSA_P521_SHA512: u16 = 0x0603;
    pub(super) const RSA_PSS_RSAE_SHA256: u16 = 0x0804;
    pub(super) const RSA_PSS_RSAE_SHA384: u16 = 0x0805;
    pub(super) const RSA_PSS_RSAE_SHA512: u16 = 0x0806;
    pub(super) const ED25519: u16 = 0x0807;
    pub(super) const RSA_PSS_PSS_SHA256: u16 = 0x0809;
    pub(super) const RSA_PSS_PSS_SHA384: u16 = 0x080a;
    pub(super) const RSA_PSS_PSS_SHA512: u16 = 0x080b;
}

impl ServerKey {
    /// Load the key and certificate files (the files are read here and nowhere else); `pin`
    /// opens an encrypted key (`key-pin`, or the first line of `pin-file`).
    pub fn load_files(key: &Path, cert: &Path, pin: Option<&str>) -> Result<Self, KeyError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let mut key_pem = read(key)?;
        let loaded = Self::from_pem_with_pin(&key_pem, &read(cert)?, pin);
        // The PEM text is a second copy of the key; do not leave it in freed heap memory.
        key_pem.fill(0);
        std::hint::black_box(&key_pem);
        loaded
    }

    /// Parse an unencrypted PEM key and a PEM certificate chain and check that they belong
    /// together.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pem_with_pin(key_pem, cert_pem, None)
    }

    /// As [`ServerKey::from_pem`], opening an encrypted PKCS#8 key with `pin`.
    pub fn from_pem_with_pin(
        key_pem: &[u8],
        cert_pem: &[u8],
        pin: Option<&str>,
    ) -> Result<Self, KeyError> {
        let sections = keyfile::pem_sections(key_pem).map_err(|e| KeyError::NoKey(Some(e)))?;
        let mut section = sections
            .into_iter()
            .find(|s| s.label.ends_with("PRIVATE KEY"))
            .ok_or(KeyError::NoKey(None))?;
        let signer = signer_of(&mut section, pin);
        section.der.fill(0);
        std::hint::black_box(&section.der);
        let signer = signer?;

        let certs = keyfile::pem_sections(cert_pem).map_err(|e| match e {
            FormatError::NoPem => KeyError::NoCertificate,
            e => KeyError::BadCertificate(e),
        })?;
        let leaf = certs
            .iter()
            .find(|s| s.label == "CERTIFICATE")
            .ok_or(KeyError::NoCertificate)?;
        let (oid, params, public) =
            keyfile::cert_spki(&leaf.der).map_err(KeyError::BadCertificate)?;
        let mut signer = signer;
        if !matches_certificate(&signer, oid, params, public) {
            return Err(KeyError::Mismatch);
        }
        // An rsaEncryption key behind an id-RSASSA-PSS certificate: the client checks the
        // signature against the certificate, so PSS only (RFC 8446 §4.2.3, rsa_pss_pss_*).
        if let Signer::Rsa { pss_only, .. } = &mut signer {
            *pss_only |= oid == keyfile::OID_RSA_PSS;
        }
        let kind = kind_of(&signer);
        Ok(Self {
            signer,
            kind,
            rng: SystemRandom::new(),
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Sign `message` with TLS signature scheme `scheme` (its IANA code point). `None` when the
    /// key cannot do that scheme or signing fails.
    pub fn sign(&self, scheme: u16, message: &[u8]) -> Option<Vec<u8>> {
        use scheme::*;
        match &self.signer {
            Signer::Rsa { key, pss_only } => {
                let encoding: &'static dyn sig::RsaEncoding = match (scheme, pss_only) {
                    (RSA_PSS_RSAE_SHA256, false) | (RSA_PSS_PSS_SHA256, true) => {
                        &sig::RSA_PSS_SHA256
                    }
                    (RSA_PSS_RSAE_SHA384, false) | (RSA_PSS_PSS_SHA384, true) => {
                        &sig::RSA_PSS_SHA384
                    }
                    (RSA_PSS_RSAE_SHA512, false) | (RSA_PSS_PSS_SHA512, true) => {
                        &sig::RSA_PSS_SHA512
                    }
                    (RSA_PKCS1_SHA256, false) => &sig::RSA_PKCS1_SHA256,
                    (RSA_PKCS1_SHA384, false) => &sig::RSA_PKCS1_SHA384,
                    (RSA_PKCS1_SHA512, false) => &sig::RSA_PKCS1_SHA512,
                    _ => return None,
                };
                let mut out = vec![0u8; key.public_modulus_len()];
                key.sign(encoding, &self.rng, message, &mut out).ok()?;
                Some(out)
            }
            Signer::Ecdsa(key, curve) => {
                let wanted = match curve {
                    KeyKind::EcdsaP256 => ECDSA_P256_SHA256,
                    KeyKind::EcdsaP384 => ECDSA_P384_SHA384,
                    _ => ECDSA_P521_SHA512,
                };
                if scheme != wanted {
                    return None;
                }
                key.sign(&self.rng, message)
                    .ok()
                    .map(|s| s.as_ref().to_vec())
            }
            Signer::Ed25519(key) => {
                (scheme == ED25519).then(|| key.sign(message).as_ref().to_vec())
            }
        }
    }
}

/// The key in `section`, decrypted with `pin` if it is encrypted. Decrypted bytes are
/// written back into `section.der` so that the caller wipes them.
fn signer_of(section: &mut Pem, pin: Option<&str>) -> Result<Signer, KeyError> {
    if section.encrypted_legacy {
        return Err(KeyError::LegacyEncryption);
    }
    match section.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => {
            let pin = pin.ok_or(KeyError::NeedPin)?;
            let plain = decrypt(&section.der, pin)?;
            section.der.fill(0);
            section.der = plain;
            pkcs8_signer(&section.der)
        }
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&section.der)
            .map(|key| Signer::Rsa {
                key,
                pss_only: false,
            })
            .map_err(|e| KeyError::Unsupported(format!("RSA PKCS#1: {e}"))),
        "EC PRIVATE KEY" => ec_signer(&section.der).or_else(|e| {
            // A GnuTLS-made EC key may carry its scalar with a leading zero byte.
            let fixed = crate::sec1::normalise(&section.der).ok_or(e)?;
            ec_signer(&fixed)
        }),
        "PRIVATE KEY" => pkcs8_signer(&section.der),
        other => Err(KeyError::Unsupported(format!("PEM `{other}`"))),
    }
}

fn pkcs8_signer(der: &[u8]) -> Result<Signer, KeyError> {
    let (oid, _params, inner) =
        keyfile::pkcs8_parts(der).map_err(|e| KeyError::Unsupported(e.to_string()))?;
    match oid {
        keyfile::OID_RSA => RsaKeyPair::from_pkcs8(der)
            .map(|key| Signer::Rsa {
                key,
                pss_only: false,
            })
            .map_err(|e| KeyError::Unsupported(format!("RSA: {e}"))),
        // The PrivateKey of an id-RSASSA-PSS PKCS#8 is an ordinary RSAPrivateKey (RFC 8017
        // A.1.2); the OID only restricts its use to PSS.
        keyfile::OID_RSA_PSS => RsaKeyPair::from_der(inner)
            .map(|key| Signer::Rsa {
                key,
                pss_only: true,
            })
            .map_err(|e| KeyError::Unsupported(format!("RSA-PSS: {e}"))),
        keyfile::OID_EC => ec_signer(der),
        keyfile::OID_ED25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Signer::Ed25519)
            .map_err(|e| KeyError::Unsupported(format!("Ed25519: {e}"))),
        _ => Err(KeyError::Unsupported("PKCS#8 key algorithm".into())),
    }
}

/// An EC key (SEC1 or PKCS#8) on any of the three NIST curves TLS uses.
fn ec_signer(der: &[u8]) -> Result<Signer, KeyError> {
    [
        (&sig::ECDSA_P256_SHA256_ASN1_SIGNING, KeyKind::EcdsaP256),
        (&sig::ECDSA_P384_SHA384_ASN1_SIGNING, KeyKind::EcdsaP384),
        (&sig::ECDSA_P521_SHA512_ASN1_SIGNING, KeyKind::EcdsaP521),
    ]
    .into_iter()
    .find_map(|(alg, kind)| {
        EcdsaKeyPair::from_private_key_der(alg, der)
            .ok()
            .map(|key| Signer::Ecdsa(key, kind))
    })
    .ok_or_else(|| KeyError::Unsupported("EC key not on P-256, P-384 or P-521".into()))
}

/// Decrypt a PBES2 EncryptedPrivateKeyInfo (RFC 8018 §6.2.2) into a PrivateKeyInfo.
fn decrypt(der: &[u8], pin: &str) -> Result<Vec<u8>, KeyError> {
    use aws_lc_rs::cipher::{DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
    use aws_lc_rs::iv::FixedLength;
    use keyfile::{Aes, Prf};
    let p = keyfile::pbes2(der).map_err(KeyError::Encryption)?;
    let prf = match p.prf {
        Prf::Sha1 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1,
        Prf::Sha256 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        Prf::Sha384 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA384,
        Prf::Sha512 => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
    };
    let rounds = std::num::NonZeroU32::new(p.rounds)
        .ok_or(KeyError::Encryption(EncryptionError::Rounds(0)))?;
    let mut key = [0u8; 32];
    let key = key
        .get_mut(..p.cipher.key_len())
        .ok_or(KeyError::Encryption(EncryptionError::Malformed))?;
    aws_lc_rs::pbkdf2::derive(prf, rounds, p.salt, pin.as_bytes(), key);
    let alg = match p.cipher {
        Aes::Aes128 => &aws_lc_rs::cipher::AES_128,
        Aes::Aes192 => &aws_lc_rs::cipher::AES_192,
        Aes::Aes256 => &aws_lc_rs::cipher::AES_256,
    };
    let iv: [u8; 16] =
        p.iv.try_into()
            .map_err(|_| KeyError::Encryption(EncryptionError::Malformed))?;
    let cipher = UnboundCipherKey::new(alg, key)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| KeyError::Encryption(EncryptionError::Unsupported));
    key.fill(0);
    let mut buf = p.ciphertext.to_vec();
    // A wrong PIN shows as bad padding, or (1 in 256) as good padding over garbage, which
    // does not parse as a PrivateKeyInfo.
    let plain_len = cipher?
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map(|plain| plain.len())
        .map_err(|_| KeyError::WrongPin);
    let plain_len = match plain_len {
        Ok(len) => len,
        Err(e) => {
            buf.fill(0);
            return Err(e);
        }
    };
    buf.truncate(plain_len);
    if keyfile::pkcs8_parts(&buf).is_err() {
        buf.fill(0);
        return Err(KeyError::WrongPin);
    }
    Ok(buf)
}

fn kind_of(signer: &Signer) -> KeyKind {
    match signer {
        Signer::Rsa {
            pss_only: false, ..
        } => KeyKind::Rsa,
        Signer::Rsa { pss_only: true, .. } => KeyKind::RsaPss,
        Signer::Ecdsa(_, curve) => *curve,
        Signer::Ed25519(_) => KeyKind::Ed25519,
    }
}

/// Whether the certificate's public key (algorithm `oid` with `params`, key bits `public`) is
/// the key's. An RSA key fits an rsaEncryption or id-RSASSA-PSS certificate (a PSS-only key
/// only the latter); an EC key must be on the certificate's named curve.
fn matches_certificate(signer: &Signer, oid: &[u8], params: &[u8], public: &[u8]) -> bool {
    match signer {
        Signer::Rsa { key, pss_only } => {
            let alg_fits = oid == keyfile::OID_RSA_PSS || (oid == keyfile::OID_RSA && !pss_only);
            alg_fits && key.public_key().as_ref() == public
        }
        Signer::Ecdsa(key, kind) => {
            let curve = match kind {
                KeyKind::EcdsaP256 => keyfile::OID_P256,
                KeyKind::EcdsaP384 => keyfile::OID_P384,
                _ => keyfile::OID_P521,
            };
            let params_fit = params.get(2..) == Some(curve) && params.first() == Some(&0x06);
            oid == keyfile::OID_EC && params_fit && key.public_key().as_ref() == public
        }
        Signer::Ed25519(key) => oid == keyfile::OID_ED25519 && key.public_key().as_ref() == public,
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
