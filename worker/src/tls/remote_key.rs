//! A rustls `SigningKey` whose private half is in sec-mod (style.md habit 7): the worker knows
//! only the key's kind, picks a scheme the client offered, and asks sec-mod for the signature
//! (`worker_secmod::ToSecMod::Sign`) with a blocking, time-bounded request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rocserv_proto::ipc::worker_secmod::{FromSecMod, ToSecMod};
use rocserv_proto::ipc::KeyKind;
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::ipc::SecModClient;

/// The scheme of the last handshake signature sec-mod made for this process (a worker serves
/// one connection), `0` before any: reported to main for occtl's `TLS ciphersuite`. rustls
/// does not expose the scheme it used.
static SIGNED: AtomicU32 = AtomicU32::new(0);

/// The signature scheme of this connection's handshake, if the server signed one.
pub fn signed_scheme() -> Option<u16> {
    match SIGNED.load(Ordering::Relaxed) {
        0 => None,
        scheme => u16::try_from(scheme).ok(),
    }
}

/// The proxy key.
#[derive(Debug)]
pub struct RemoteKey {
    kind: KeyKind,
    secmod: Arc<SecModClient>,
    /// Whose key: a `[vhost:NAME]`'s, or the default section's (`None`).
    vhost: Option<String>,
}

impl RemoteKey {
    pub fn new(kind: KeyKind, secmod: Arc<SecModClient>, vhost: Option<String>) -> Self {
        Self {
            kind,
            secmod,
            vhost,
        }
    }
}

/// rsa_pss_pss_sha256, _sha384, _sha512.
static RSA_PSS_PSS: [SignatureScheme; 3] = [
    SignatureScheme::Unknown(0x0809),
    SignatureScheme::Unknown(0x080a),
    SignatureScheme::Unknown(0x080b),
];

/// The schemes a key of `kind` can make, best first (RSA: PSS before PKCS#1 v1.5, longer hashes
/// first, as rustls' own `RsaSigningKey` orders them).
pub fn schemes(kind: KeyKind) -> &'static [SignatureScheme] {
    match kind {
        KeyKind::Rsa => &[
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA256,
        ],
        KeyKind::EcdsaP256 => &[SignatureScheme::ECDSA_NISTP256_SHA256],
        KeyKind::EcdsaP384 => &[SignatureScheme::ECDSA_NISTP384_SHA384],
        KeyKind::Ed25519 => &[SignatureScheme::ED25519],
        KeyKind::EcdsaP521 => &[SignatureScheme::ECDSA_NISTP521_SHA512],
        // rsa_pss_pss_* (RFC 8446 §4.2.3), which rustls has no names for. SHA-256 first: a
        // certificate whose PSS parameters name a hash names SHA-256 in practice (certtool).
        KeyKind::RsaPss => &RSA_PSS_PSS,
    }
}

impl SigningKey for RemoteKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = schemes(self.kind)
            .iter()
            .copied()
            .find(|scheme| offered.contains(scheme))?;
        Some(Box::new(RemoteSigner {
            scheme,
            secmod: Arc::clone(&self.secmod),
            vhost: self.vhost.clone(),
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.kind {
            KeyKind::Rsa | KeyKind::RsaPss => SignatureAlgorithm::RSA,
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::EcdsaP521 => {
                SignatureAlgorithm::ECDSA
            }
            KeyKind::Ed25519 => SignatureAlgorithm::ED25519,
        }
    }
}

/// One signature with a chosen scheme.
#[derive(Debug)]
struct RemoteSigner {
    scheme: SignatureScheme,
    secmod: Arc<SecModClient>,
    vhost: Option<String>,
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let request = ToSecMod::Sign {
            scheme: u16::from(self.scheme),
            message: message.to_vec(),
            vhost: self.vhost.clone(),
        };
        match self.secmod.request(&request) {
            Ok(FromSecMod::Signature(signature)) => {
                SIGNED.store(u32::from(u16::from(self.scheme)), Ordering::Relaxed);
                Ok(signature)
            }
            Ok(FromSecMod::SignFailed) => {
                Err(rustls::Error::General("sec-mod refused to sign".into()))
            }
            Ok(FromSecMod::Auth(_)) => Err(rustls::Error::General(
                "sec-mod answered a signature request with a login step".into(),
            )),
            Err(err) => Err(rustls::Error::General(format!(
                "signature request to sec-mod failed: {err}"
            ))),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_preference() {
        let offered = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        let first = |kind| schemes(kind).iter().copied().find(|s| offered.contains(s));
        assert_eq!(first(KeyKind::Rsa), Some(SignatureScheme::RSA_PSS_SHA256));
        assert_eq!(
            first(KeyKind::EcdsaP256),
            Some(SignatureScheme::ECDSA_NISTP256_SHA256)
        );
        assert_eq!(first(KeyKind::EcdsaP384), None);
        assert_eq!(first(KeyKind::Ed25519), None);
        assert_eq!(first(KeyKind::EcdsaP521), None);
        assert_eq!(first(KeyKind::RsaPss), None);
        let pss = [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::Unknown(0x0809),
        ];
        let pick = schemes(KeyKind::RsaPss).iter().find(|s| pss.contains(s));
        assert_eq!(pick, Some(&SignatureScheme::Unknown(0x0809)));
    }
}
