//! The rustls `ServerConfig` of a worker (dependency-findings.md §4: ring provider through
//! `builder_with_provider`, so that no process-wide default provider is needed).

use std::sync::Arc;

use rocserv_proto::ipc::main_worker::{ClientCertSettings, TlsSettings};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;

use super::client_cert::ClientCertRequest;
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
    server_config_with(tls, secmod, None)
}

/// [`server_config`], asking for a client certificate when `client_cert` says so.
pub fn server_config_with(
    tls: &TlsSettings,
    secmod: Arc<SecModClient>,
    client_cert: Option<&ClientCertSettings>,
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
    let certified = |chain: &[Vec<u8>], kind, vhost| {
        let chain = chain
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let key = RemoteKey::new(kind, Arc::clone(&secmod), vhost);
        Arc::new(CertifiedKey::new(chain, Arc::new(key)))
    };
    let mut vhosts = Vec::with_capacity(tls.vhosts.len());
    for v in &tls.vhosts {
        if v.cert_chain.is_empty() {
            return Err(TlsSetupError::NoCertificate);
        }
        vhosts.push((
            v.name.clone(),
            certified(&v.cert_chain, v.key, Some(v.name.clone())),
        ));
    }
    let resolver = BySni {
        default: certified(&tls.cert_chain, tls.key, None),
        vhosts,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)?;
    let builder = match client_cert {
        Some(settings) => {
            builder.with_client_cert_verifier(Arc::new(ClientCertRequest::new(settings, provider)))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // One process per connection: a resumption cache or tickets could never be used again, and
    // tickets would only cost a write and randomness per handshake.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The certificate of the `[vhost:NAME]` the client's SNI names, else the default section's
/// (no SNI, an IP address, or a name no vhost has), as ocserv does.
#[derive(Debug)]
struct BySni {
    default: Arc<CertifiedKey>,
    vhosts: Vec<(String, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            self.vhosts
                .iter()
                .find(|(name, _)| rocserv_proto::config::same_host(name, sni))
        });
        Some(Arc::clone(chosen.map_or(&self.default, |(_, key)| key)))
    }
}
