//! The rustls `ServerConfig` of a worker (dependency-findings.md §4: ring provider through
//! `builder_with_provider`, so that no process-wide default provider is needed).

use std::sync::Arc;

use rocserv_proto::ipc::main_worker::TlsSettings;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;

use super::remote_key::RemoteKey;
use crate::ipc::SecModClient;

/// The TLS configuration could not be built from main's settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Neither TLS 1.2 nor TLS 1.3 is allowed.
    #[error("no TLS protocol version enabled")]
    NoVersion,
    /// The certificate chain is empty.
    #[error("no server certificate")]
    NoCertificate,
    /// rustls refused the combination.
    #[error("rustls configuration")]
    Rustls(#[from] rustls::Error),
}

/// Build the server configuration: no client certificates, the chain from `tls`, signatures by
/// sec-mod through `secmod`.
pub fn server_config(
    tls: &TlsSettings,
    secmod: Arc<SecModClient>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut versions = Vec::with_capacity(2);
    if tls.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(TlsSetupError::NoVersion);
    }
    if tls.cert_chain.is_empty() {
        return Err(TlsSetupError::NoCertificate);
    }
    let chain = tls
        .cert_chain
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let key = RemoteKey::new(tls.key, secmod);
    let certified = Arc::new(CertifiedKey::new(chain, Arc::new(key)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCert(certified)));
    // One process per connection: a resumption cache or tickets could never be used again, and
    // tickets would only cost a write and randomness per handshake.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Always the one certificate (no SNI-based vhosts yet).
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
