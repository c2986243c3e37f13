//! The names a client certificate gives (`cert-user-oid`, `cert-group-oid`), read from its DER
//! with `x509-parser` (doc/decisions/0006-client-certificates.md). Sans-IO and fuzzed: the bytes
//! come from the client (through the worker) and are read here before sec-mod trusts them.
//!
//! This only reads names; whether the certificate is genuine (chain to `ca-cert`, dates, CRL,
//! client-auth usage) is checked by sec-mod with rustls-webpki before these names mean anything.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::config::CertField;

/// Longest subject text kept for logs and occtl.
pub const MAX_SUBJECT: usize = 1024;
/// Longest user name taken from a certificate (as sec-mod's `MAX_USERNAME`).
pub const MAX_NAME: usize = 255;

/// What a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    /// The `cert-user-oid` field.
    pub user: String,
    /// The `cert-group-oid` field, when one is configured.
    pub group: Option<String>,
    /// The subject DN (RFC 4514 order as printed by x509-parser), control characters replaced,
    /// at most [`MAX_SUBJECT`] bytes.
    pub subject: String,
}

/// Why no names could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertFieldError {
    /// Not one DER certificate (or bytes after it).
    #[error("not a DER certificate")]
    NotCertificate,
    /// The configured field is absent (or not a string).
    #[error("the certificate has no {0}")]
    Missing(&'static str),
    /// The field is empty, too long or holds a control character.
    #[error("the certificate's {0} is not a usable name")]
    BadName(&'static str),
}

/// Read the user (and group) of the end-entity certificate `der`.
pub fn names(
    der: &[u8],
    user: &CertField,
    group: Option<&CertField>,
) -> Result<CertNames, CertFieldError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|_| CertFieldError::NotCertificate)?;
    if !rest.is_empty() {
        return Err(CertFieldError::NotCertificate);
    }
    let user = field(&cert, user, "user field (cert-user-oid)")?;
    let group = group
        .map(|g| field(&cert, g, "group field (cert-group-oid)"))
        .transpose()?;
    let mut subject: String = cert
        .subject()
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if subject.len() > MAX_SUBJECT {
        let mut end = MAX_SUBJECT;
        while !subject.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        subject.truncate(end);
    }
    Ok(CertNames {
        user,
        group,
        subject,
    })
}

/// The first value of `field` (ocserv takes the first too), checked to be a usable name.
fn field(
    cert: &X509Certificate<'_>,
    field: &CertField,
    what: &'static str,
) -> Result<String, CertFieldError> {
    let value = match field {
        CertField::Oid(oid) => cert
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == *oid)
            .and_then(|a| a.as_str().ok()),
        CertField::SanRfc822Name => {
            cert.subject_alternative_name()
                .ok()
                .flatten()
                .and_then(|san| {
                    san.value.general_names.iter().find_map(|n| match n {
                        GeneralName::RFC822Name(mail) => Some(*mail),
                        _ => None,
                    })
                })
        }
    };
    let value = value.ok_or(CertFieldError::Missing(what))?;
    let usable = !value.is_empty()
        && value.len() <= MAX_NAME
        && !value.chars().any(char::is_control)
        && value.trim() == value;
    if usable {
        Ok(value.to_owned())
    } else {
        Err(CertFieldError::BadName(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};

    const UID: &str = "0.9.2342.19200300.100.1.1";

    fn cert(dn: &[(DnType, &str)], mail: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (ty, value) in dn {
            name.push(ty.clone(), DnValue::Utf8String((*value).to_owned()));
        }
        params.distinguished_name = name;
        if let Some(mail) = mail {
            params.subject_alt_names = vec![SanType::Rfc822Name(mail.try_into().unwrap())];
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uid() -> DnType {
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1])
    }

    #[test]
    fn user_and_group_by_oid() {
        let der = cert(
            &[
                (DnType::CommonName, "Alice Smith"),
                (uid(), "alice"),
                (DnType::OrganizationalUnitName, "eng"),
            ],
            None,
        );
        let oid = |s: &str| CertField::Oid(s.to_owned());
        let n = names(&der, &oid(UID), Some(&oid("2.5.4.11"))).unwrap();
        assert_eq!(n.user, "alice");
        assert_eq!(n.group.as_deref(), Some("eng"));
        assert!(n.subject.contains("CN=Alice Smith"), "{}", n.subject);
        let n = names(&der, &oid("2.5.4.3"), None).unwrap();
        assert_eq!(n.user, "Alice Smith");
        assert_eq!(n.group, None);
        assert_eq!(
            names(&der, &oid("2.5.4.10"), None),
            Err(CertFieldError::Missing("user field (cert-user-oid)"))
        );
        assert_eq!(
            names(&der, &oid(UID), Some(&oid("2.5.4.10"))),
            Err(CertFieldError::Missing("group field (cert-group-oid)"))
        );
    }

    #[test]
    fn user_from_san_rfc822name() {
        let der = cert(&[(DnType::CommonName, "bob")], Some("bob@example.com"));
        let n = names(&der, &CertField::SanRfc822Name, None).unwrap();
        assert_eq!(n.user, "bob@example.com");
        // No SAN: no user (never a fallback to another field).
        let der = cert(&[(DnType::CommonName, "bob")], None);
        assert_eq!(
            names(&der, &CertField::SanRfc822Name, None),
            Err(CertFieldError::Missing("user field (cert-user-oid)"))
        );
    }

    #[test]
    fn unusable_names_and_bytes() {
        let cn = CertField::Oid("2.5.4.3".into());
        for bad in ["", " padded", "line\nfeed"] {
            let der = cert(&[(DnType::CommonName, bad)], None);
            assert_eq!(
                names(&der, &cn, None),
                Err(CertFieldError::BadName("user field (cert-user-oid)")),
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_NAME + 1);
        let der = cert(&[(DnType::CommonName, &long)], None);
        assert!(names(&der, &cn, None).is_err());
        assert_eq!(
            names(b"not a certificate", &cn, None),
            Err(CertFieldError::NotCertificate)
        );
        let mut trailing = cert(&[(DnType::CommonName, "a")], None);
        trailing.push(0);
        assert_eq!(
            names(&trailing, &cn, None),
            Err(CertFieldError::NotCertificate)
        );
        let der = cert(&[(DnType::CommonName, "a")], None);
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(names(&der[..cut], &cn, None).is_err(), "{cut}");
        }
    }
}
