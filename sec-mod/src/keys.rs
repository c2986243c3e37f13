//! The server's private key: load it, check it against the certificate, sign with it.
//! Nothing else in rocserv can reach the key; workers get signatures through
//! `worker_secmod::ToSecMod::Sign`.

use std::path::Path;
use std::sync::Arc;

use rocserv_proto::ipc::KeyKind;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    /// No PEM private key (PKCS#1, PKCS#8 or SEC1) in the key file.
    #[error("no PEM private key (PKCS#1, PKCS#8 or SEC1) found")]
    NoKey(#[source] rustls_pki_types::pem::Error),
    /// The key is not RSA, ECDSA P-256/P-384 or Ed25519, or is malformed.
    #[error("unsupported or malformed private key")]
    Unsupported(#[source] rustls::Error),
    /// The certificate file holds no PEM certificate.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// The certificate file holds a malformed PEM section.
    #[error("malformed PEM certificate")]
    BadCertificate(#[source] rustls_pki_types::pem::Error),
    /// The private key is not the one of the first certificate.
    #[error("the private key does not match the certificate")]
    Mismatch(#[source] rustls::Error),
}

/// The loaded key with its certificate chain.
#[derive(Debug)]
pub struct ServerKey {
    key: Arc<dyn SigningKey>,
    kind: KeyKind,
}

impl ServerKey {
    /// Load the key and certificate files (the files are read here and nowhere else).
    pub fn load_files(key: &Path, cert: &Path) -> Result<Self, KeyError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let mut key_pem = read(key)?;
        let loaded = Self::from_pem(&key_pem, &read(cert)?);
        // The PEM text is a second copy of the key; do not leave it in freed heap memory.
        key_pem.fill(0);
        std::hint::black_box(&key_pem);
        loaded
    }

    /// Parse a PEM key and a PEM certificate chain and check that they belong together.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(KeyError::NoKey)?;
        let key = match any_supported_type(&der) {
            Ok(key) => key,
            // A GnuTLS-made EC key (the kind ocserv's docs create) may need its scalar resized.
            Err(e) => match &der {
                PrivateKeyDer::Sec1(sec1) => match crate::sec1::normalise(sec1.secret_sec1_der()) {
                    Some(fixed) => any_supported_type(&PrivateKeyDer::Sec1(fixed.into()))
                        .map_err(KeyError::Unsupported)?,
                    None => return Err(KeyError::Unsupported(e)),
                },
                _ => return Err(KeyError::Unsupported(e)),
            },
        };
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(KeyError::BadCertificate)?;
        if chain.is_empty() {
            return Err(KeyError::NoCertificate);
        }
        let kind = kind_of(key.as_ref())?;
        CertifiedKey::new(chain, Arc::clone(&key))
            .keys_match()
            .map_err(KeyError::Mismatch)?;
        Ok(Self { key, kind })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Sign `message` with TLS signature scheme `scheme` (its IANA code point). `None` when the
    /// key cannot do that scheme or signing fails.
    pub fn sign(&self, scheme: u16, message: &[u8]) -> Option<Vec<u8>> {
        let scheme = SignatureScheme::from(scheme);
        let signer = self.key.choose_scheme(&[scheme])?;
        signer.sign(message).ok()
    }
}

fn kind_of(key: &dyn SigningKey) -> Result<KeyKind, KeyError> {
    let can = |scheme| key.choose_scheme(&[scheme]).is_some();
    match key.algorithm() {
        SignatureAlgorithm::RSA => Ok(KeyKind::Rsa),
        SignatureAlgorithm::ED25519 => Ok(KeyKind::Ed25519),
        SignatureAlgorithm::ECDSA if can(SignatureScheme::ECDSA_NISTP256_SHA256) => {
            Ok(KeyKind::EcdsaP256)
        }
        SignatureAlgorithm::ECDSA if can(SignatureScheme::ECDSA_NISTP384_SHA384) => {
            Ok(KeyKind::EcdsaP384)
        }
        other => Err(KeyError::Unsupported(rustls::Error::General(format!(
            "key algorithm {other:?}"
        )))),
    }
}
