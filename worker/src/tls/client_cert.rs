//! The client-certificate request (`auth = certificate`). The worker checks only that the
//! client holds the key of the certificate it sent (the handshake's CertificateVerify,
//! RFC 8446 §4.4.3 / RFC 5246 §7.4.8); whether the chain is genuine and whom it names is
//! decided by sec-mod, which is given the chain (a worker is never trusted with identity).

use std::sync::Arc;

use rocserv_proto::ipc::main_worker::ClientCertSettings;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// Asks for a certificate issued by `ca-cert`'s CAs and checks the client's possession of
/// its key; accepts any chain (sec-mod checks it).
#[derive(Debug)]
pub struct ClientCertRequest {
    subjects: Vec<DistinguishedName>,
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertRequest {
    pub fn new(settings: &ClientCertSettings, provider: Arc<CryptoProvider>) -> Self {
        let mut roots = RootCertStore::empty();
        // A CA that does not parse is left out of the hints only; sec-mod refuses its chains.
        let (_added, _ignored) = roots
            .add_parsable_certificates(settings.ca.iter().map(|c| CertificateDer::from(c.clone())));
        Self {
            subjects: roots.subjects(),
            mandatory: settings.mandatory,
            provider,
        }
    }
}

impl ClientCertVerifier for ClientCertRequest {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately no decision here: sec-mod checks the chain against ca-cert and the CRL.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
