//! `auth = "certificate"`: sec-mod checks the client's certificate chain itself.
//!
//! The chain comes from the worker (`ClientFacts::cert_chain`), which verified the client's
//! handshake signature (CertificateVerify) but is not trusted to say who the client is: here
//! the chain is checked against `ca-cert` and the `crl` with rustls-webpki (through rustls'
//! `WebPkiClientVerifier`: path to a trust anchor, validity dates, the client-auth extended key
//! usage, revocation), and only then are its names read (`rocserv_proto::cert_fields`).
//! doc/security/cert.md says what a compromised worker can still do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rocserv_proto::cert_fields;
use rocserv_proto::config::{CertAuth, CertField};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use super::{Attempt, AuthBackend, Granted, Login, Rejection, Verdict};

/// Largest `ca-cert` / `crl` file read (a CRL of a large CA is a few MB).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The `certificate` method of one section.
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    roots: Arc<RootCertStore>,
    crl: Option<PathBuf>,
    user: CertField,
    group: Option<CertField>,
    /// The verifier with the CRL as last read, and the file's stamp then.
    current: Mutex<Current>,
}

struct Current {
    stamp: Option<Stamp>,
    verifier: Arc<dyn ClientCertVerifier>,
    /// A login is re-reading the CRL (outside the lock): the others fail closed meanwhile
    /// instead of queueing behind a file that may hang (a network mount).
    reading: bool,
}

/// What tells a changed CRL file: modification time and size (checked at each login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Certificate {
    /// Load `ca-cert` and the `crl`; the error says which file and why.
    pub fn load(settings: &CertAuth) -> Result<Self, String> {
        let pem = read(&settings.ca_cert)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("ca-cert {}: {e}", settings.ca_cert.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca-cert {}: {e}", settings.ca_cert.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "ca-cert {}: no certificate in the file",
                settings.ca_cert.display()
            ));
        }
        let roots = Arc::new(roots);
        let (stamp, crls) = match &settings.crl {
            Some(path) => {
                let (stamp, crls) = read_crl(path)?;
                (Some(stamp), crls)
            }
            None => (None, Vec::new()),
        };
        let verifier = build(&roots, crls)?;
        Ok(Self {
            inner: Arc::new(Inner {
                roots,
                crl: settings.crl.clone(),
                user: settings.user.clone(),
                group: settings.group.clone(),
                current: Mutex::new(Current {
                    stamp,
                    verifier,
                    reading: false,
                }),
            }),
        })
    }

    /// The verifier with the CRL as it is now: re-read when its stamp changed. A CRL that has
    /// become unreadable refuses certificate logins (fail closed) until it is fixed.
    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, Rejection> {
        let inner = &self.inner;
        let Some(path) = &inner.crl else {
            return Ok(Arc::clone(&rocserv_rt::lock(&inner.current).verifier));
        };
        // The file is looked at and read without the lock held: a hung file delays only the
        // login that reads it.
        let now = stamp(path).map_err(Rejection::Certificate)?;
        {
            let mut current = rocserv_rt::lock(&inner.current);
            if current.stamp == Some(now) {
                return Ok(Arc::clone(&current.verifier));
            }
            if current.reading {
                return Err(Rejection::Certificate(format!(
                    "crl {} is being re-read; try again",
                    path.display()
                )));
            }
            current.reading = true;
        }
        let read = read_crl(path).and_then(|(stamp, crls)| Ok((stamp, build(&inner.roots, crls)?)));
        let mut current = rocserv_rt::lock(&inner.current);
        current.reading = false;
        let (stamp, verifier) = read.map_err(Rejection::Certificate)?;
        current.verifier = verifier;
        current.stamp = Some(stamp);
        log::info!("crl {}: re-read", path.display());
        Ok(Arc::clone(&current.verifier))
    }

    /// A login is re-reading the CRL now.
    #[cfg(test)]
    pub(crate) fn crl_reading(&self) -> bool {
        rocserv_rt::lock(&self.inner.current).reading
    }

    /// Check the chain and read its names (blocking: may read the CRL).
    pub fn check(&self, login: &Login, now: UnixTime) -> Verdict {
        match self.checked(login, now) {
            Ok(granted) => Verdict::Accepted(granted),
            Err(why) => Verdict::Rejected(why),
        }
    }

    fn checked(&self, login: &Login, now: UnixTime) -> Result<Granted, Rejection> {
        let chain = &login.facts.cert_chain;
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Rejection::Certificate(
                "the client sent no certificate".into(),
            ));
        };
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verifier()?
            .verify_client_cert(&leaf_der, &intermediates, now)
            .map_err(|e| Rejection::Certificate(format!("not accepted: {e}")))?;
        let names = cert_fields::names(leaf, &self.inner.user, self.inner.group.as_ref())
            .map_err(|e| Rejection::Certificate(e.to_string()))?;
        // With `cert-group-oid` the certificate decides the group; a requested one must be it.
        if let (Some(asked), Some(group)) = (&login.group, &names.group) {
            if asked != group {
                return Err(Rejection::GroupNotAllowed(asked.clone()));
            }
        }
        if let Some(group) = &names.group {
            if !rocserv_proto::config::valid_group_name(group) {
                return Err(Rejection::Certificate(
                    "the certificate's group is not a usable group name".into(),
                ));
            }
        }
        Ok(Granted {
            group: names.group.unwrap_or_default(),
            username: Some(names.user),
            policy: None,
            cert_subject: Some(names.subject),
        })
    }

    /// Whether this method reads the group from the certificate (`cert-group-oid`).
    pub fn names_group(&self) -> bool {
        self.inner.group.is_some()
    }
}

impl AuthBackend for Certificate {
    fn name(&self) -> &'static str {
        "certificate"
    }

    fn begin(&self, login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        let this = self.clone();
        // Signature checks and possibly reading the CRL: off the event loop.
        tokio::task::spawn_blocking(move || peer.finish(this.check(&login, UnixTime::now())));
        attempt
    }
}

fn build(
    roots: &Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider);
    if !crls.is_empty() {
        // A CRL covers the certificates of its issuer; those of another CA (an intermediate
        // without a CRL here) have no known status and pass, as with ocserv's one `crl` file.
        builder = builder.with_crls(crls).allow_unknown_revocation_status();
    }
    builder
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "{} is larger than {MAX_FILE} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

fn stamp(path: &Path) -> Result<Stamp, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("crl {}: {e}", path.display()))?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// The CRLs of `path` (PEM, one or more; or one DER), with the stamp they were read at.
fn read_crl(path: &Path) -> Result<(Stamp, Vec<CertificateRevocationListDer<'static>>), String> {
    let before = stamp(path)?;
    let bytes = read(path)?;
    let crls = if bytes.starts_with(b"-----") || bytes.iter().take(64).all(u8::is_ascii) {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("crl {}: {e}", path.display()))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        return Err(format!(
            "crl {}: no revocation list in the file",
            path.display()
        ));
    }
    Ok((before, crls))
}
