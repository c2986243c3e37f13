//! A throw-away server certificate and its openconnect pin.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Certificate and key files plus the `pin-sha256:` value for `--servercert`.
pub struct Pki {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub pin: String,
}

/// Write a self-signed ECDSA P-256 certificate for `ip` into `dir`.
pub fn make(dir: &Path, ip: &str) -> Pki {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec![ip.to_owned(), "vpn.test".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let cert_path = dir.join("server-cert.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Pki {
        cert: cert_path,
        key: key_path,
        pin: pin_of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key)),
    }
}

/// openconnect's pin: base64 of the SHA-256 of the SubjectPublicKeyInfo (RFC 7469 style).
pub fn pin_of_spki(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// A client-certificate CA for `auth = certificate` tests: its certificate file, and client
/// certificates and CRLs it signs.
pub struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// `ca-cert`.
    pub cert: PathBuf,
    dir: PathBuf,
}

/// A client certificate and key file (openconnect `-c` / `-k`).
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientCert {
    /// openconnect's arguments for this certificate.
    pub fn args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            self.cert.display().to_string(),
            "-k".into(),
            self.key.display().to_string(),
        ]
    }
}

impl ClientCa {
    /// A CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        let path = dir.join(format!("{name}-ca.pem").replace(' ', "-"));
        std::fs::write(&path, cert.pem()).expect("write CA");
        Self {
            issuer: rcgen::Issuer::new(params, key),
            cert: path,
            dir: dir.to_owned(),
        }
    }

    /// A client certificate for user `uid` (in the DN's UID, OID 0.9.2342.19200300.100.1.1,
    /// and CN) with serial number `serial`, usable for TLS client authentication.
    pub fn client(&self, uid: &str, serial: u64) -> ClientCert {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, uid);
        dn.push(
            rcgen::DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
            rcgen::DnValue::Utf8String(uid.to_owned()),
        );
        params.distinguished_name = dn;
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        let stem = self.dir.join(format!("client-{uid}-{serial}"));
        let (cert_path, key_path) = (stem.with_extension("crt"), stem.with_extension("key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        ClientCert {
            cert: cert_path,
            key: key_path,
        }
    }

    /// Write a CRL revoking `serials` to `path`.
    pub fn write_crl(&self, path: &Path, serials: &[u64]) {
        let now = time::OffsetDateTime::now_utc();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("CRL");
        std::fs::write(path, crl.pem().expect("PEM")).expect("write CRL");
    }
}
