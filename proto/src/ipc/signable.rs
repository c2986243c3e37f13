//! What sec-mod agrees to sign for a worker ([`super::worker_secmod::ToSecMod::Sign`]).
//!
//! A worker may be compromised, so sec-mod signs only the two structures a TLS server signs in
//! its handshake, exactly as rustls (0.23, ring provider) hands them to its `Signer`:
//!
//! - TLS 1.3 `CertificateVerify` content (RFC 8446 §4.4.3): 64 spaces, the context string
//!   `"TLS 1.3, server CertificateVerify"`, a zero byte, then the transcript hash. Its length is
//!   that of the cipher suite's hash (not the signature scheme's): SHA-256 or SHA-384 for the
//!   suites rustls offers. Only schemes TLS 1.3 allows (no PKCS#1 v1.5).
//! - TLS 1.2 `ServerKeyExchange` signed params (RFC 8422 §5.4): client random (32), server random
//!   (32), `ECParameters` (curve type 3 = named_curve, a group id), then the server's ephemeral
//!   point with a one-byte length that must fit the group: x25519 32 bytes, secp256r1 65 and
//!   secp384r1 97 (uncompressed, leading 0x04), the groups rustls' ring provider negotiates. No
//!   finite-field DHE: that provider has none.
//!
//! This narrows what a compromised worker can obtain to a handshake signature (see
//! doc/security/signing-oracle.md for what remains); it cannot prove the transcript is a real one.

/// TLS 1.3 server context string with its terminating zero byte (RFC 8446 §4.4.3).
const SERVER_CONTEXT: &[u8; 34] = b"TLS 1.3, server CertificateVerify\x00";
/// Leading padding of TLS 1.3 CertificateVerify content.
const PAD: [u8; 64] = [0x20; 64];
/// Transcript hash lengths of the TLS 1.3 suites rustls offers (SHA-256, SHA-384).
const TLS13_HASH_LENS: [usize; 2] = [32, 48];
/// `ECCurveType.named_curve` (RFC 8422 §5.4).
const NAMED_CURVE: u8 = 3;
/// Uncompressed point prefix (SEC 1 §2.3.3).
const UNCOMPRESSED: u8 = 0x04;

/// The signature schemes sec-mod signs with (IANA code points), the ones a worker's proxy key
/// may choose (`worker/src/tls/remote_key.rs`).
pub mod scheme {
    pub const RSA_PKCS1_SHA256: u16 = 0x0401;
    pub const RSA_PKCS1_SHA384: u16 = 0x0501;
    pub const RSA_PKCS1_SHA512: u16 = 0x0601;
    pub const ECDSA_NISTP256_SHA256: u16 = 0x0403;
    pub const ECDSA_NISTP384_SHA384: u16 = 0x0503;
    pub const RSA_PSS_SHA256: u16 = 0x0804;
    pub const RSA_PSS_SHA384: u16 = 0x0805;
    pub const RSA_PSS_SHA512: u16 = 0x0806;
    pub const ED25519: u16 = 0x0807;
    pub const ECDSA_NISTP521_SHA512: u16 = 0x0603;
    /// rsa_pss_pss_*: an id-RSASSA-PSS key (RFC 8446 §4.2.3).
    pub const RSA_PSS_PSS_SHA256: u16 = 0x0809;
    pub const RSA_PSS_PSS_SHA384: u16 = 0x080a;
    pub const RSA_PSS_PSS_SHA512: u16 = 0x080b;
}

/// A key exchange group a TLS 1.2 `ServerKeyExchange` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    X25519,
    Secp256r1,
    Secp384r1,
}

impl Group {
    /// The group's `NamedGroup` code point.
    pub fn code(self) -> u16 {
        match self {
            Self::X25519 => 0x001d,
            Self::Secp256r1 => 0x0017,
            Self::Secp384r1 => 0x0018,
        }
    }

    fn from_code(code: u16) -> Option<Self> {
        [Self::X25519, Self::Secp256r1, Self::Secp384r1]
            .into_iter()
            .find(|g| g.code() == code)
    }

    /// Length of the server's public value for this group.
    pub fn point_len(self) -> usize {
        match self {
            Self::X25519 => 32,
            Self::Secp256r1 => 65,
            Self::Secp384r1 => 97,
        }
    }
}

/// A message sec-mod agreed to sign, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signable<'a> {
    /// TLS 1.3 server CertificateVerify content.
    Tls13CertificateVerify { transcript_hash: &'a [u8] },
    /// TLS 1.2 ServerKeyExchange signed params.
    Tls12ServerKeyExchange {
        client_random: &'a [u8; 32],
        server_random: &'a [u8; 32],
        group: Group,
        public: &'a [u8],
    },
}

impl Signable<'_> {
    /// The exact bytes this was parsed from (for tests and the fuzz round trip).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Tls13CertificateVerify { transcript_hash } => {
                out.extend_from_slice(&PAD);
                out.extend_from_slice(SERVER_CONTEXT);
                out.extend_from_slice(transcript_hash);
            }
            Self::Tls12ServerKeyExchange {
                client_random,
                server_random,
                group,
                public,
            } => {
                out.extend_from_slice(*client_random);
                out.extend_from_slice(*server_random);
                out.push(NAMED_CURVE);
                out.extend_from_slice(&group.code().to_be_bytes());
                // The length fits: `check` accepted only the group's own point length (< 256).
                out.push(u8::try_from(public.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(public);
            }
        }
    }
}

/// Why sec-mod refuses to sign a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignableError {
    /// Not one of the signature schemes a worker's proxy key offers.
    #[error("signature scheme {0:#06x} is not one sec-mod signs with")]
    Scheme(u16),
    /// TLS 1.3 CertificateVerify content with a scheme TLS 1.3 forbids (PKCS#1 v1.5).
    #[error("signature scheme {0:#06x} is not allowed in TLS 1.3")]
    SchemeNotTls13(u16),
    /// TLS 1.3 CertificateVerify content whose transcript hash has no suite hash's length.
    #[error("TLS 1.3 transcript hash of {0} bytes")]
    HashLength(usize),
    /// ServerKeyExchange params not of the named-curve type.
    #[error("ServerKeyExchange curve type {0} (only named_curve)")]
    CurveType(u8),
    /// ServerKeyExchange params naming a group rustls does not negotiate here.
    #[error("ServerKeyExchange names group {0:#06x}")]
    Group(u16),
    /// ServerKeyExchange point whose length does not fit its group, or is not uncompressed.
    #[error("ServerKeyExchange point does not fit group {0:?}")]
    Point(Group),
    /// Neither structure: too short, or bytes beyond the end of the point.
    #[error(
        "{0} bytes that are neither a TLS 1.3 CertificateVerify nor a TLS 1.2 ServerKeyExchange"
    )]
    Shape(usize),
}

/// Parse `message` as one of the structures sec-mod signs with `scheme`.
pub fn check(scheme: u16, message: &[u8]) -> Result<Signable<'_>, SignableError> {
    let tls13_scheme = match scheme {
        scheme::RSA_PKCS1_SHA256 | scheme::RSA_PKCS1_SHA384 | scheme::RSA_PKCS1_SHA512 => false,
        scheme::ECDSA_NISTP256_SHA256
        | scheme::ECDSA_NISTP384_SHA384
        | scheme::RSA_PSS_SHA256
        | scheme::RSA_PSS_SHA384
        | scheme::RSA_PSS_SHA512
        | scheme::ED25519
        | scheme::ECDSA_NISTP521_SHA512
        | scheme::RSA_PSS_PSS_SHA256
        | scheme::RSA_PSS_PSS_SHA384
        | scheme::RSA_PSS_PSS_SHA512 => true,
        other => return Err(SignableError::Scheme(other)),
    };
    if let Some(transcript_hash) = tls13_content(message) {
        if !tls13_scheme {
            return Err(SignableError::SchemeNotTls13(scheme));
        }
        if !TLS13_HASH_LENS.contains(&transcript_hash.len()) {
            return Err(SignableError::HashLength(transcript_hash.len()));
        }
        return Ok(Signable::Tls13CertificateVerify { transcript_hash });
    }
    server_key_exchange(message)
}

/// The transcript hash of TLS 1.3 server CertificateVerify content, if `message` starts like one.
fn tls13_content(message: &[u8]) -> Option<&[u8]> {
    let (pad, rest) = message.split_first_chunk::<64>()?;
    let (context, hash) = rest.split_first_chunk::<34>()?;
    (pad == &PAD && context == SERVER_CONTEXT).then_some(hash)
}

fn server_key_exchange(message: &[u8]) -> Result<Signable<'_>, SignableError> {
    let shape = SignableError::Shape(message.len());
    let (client_random, rest) = message.split_first_chunk::<32>().ok_or(shape)?;
    let (server_random, rest) = rest.split_first_chunk::<32>().ok_or(shape)?;
    let (&[curve_type, g0, g1, len], public) = rest.split_first_chunk::<4>().ok_or(shape)?;
    if curve_type != NAMED_CURVE {
        return Err(SignableError::CurveType(curve_type));
    }
    let code = u16::from_be_bytes([g0, g1]);
    let group = Group::from_code(code).ok_or(SignableError::Group(code))?;
    if usize::from(len) != group.point_len() {
        return Err(SignableError::Point(group));
    }
    if public.len() != group.point_len() {
        return Err(shape);
    }
    if group != Group::X25519 && public.first() != Some(&UNCOMPRESSED) {
        return Err(SignableError::Point(group));
    }
    Ok(Signable::Tls12ServerKeyExchange {
        client_random,
        server_random,
        group,
        public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cv(hash_len: usize) -> Vec<u8> {
        let mut m = vec![0x20; 64];
        m.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        m.extend((0..hash_len).map(|i| i as u8));
        m
    }

    fn ske(group: u16, point: &[u8]) -> Vec<u8> {
        let mut m = vec![0xaa; 32];
        m.extend([0xbb; 32]);
        m.push(3);
        m.extend(group.to_be_bytes());
        m.push(point.len() as u8);
        m.extend(point);
        m
    }

    fn p256_point() -> Vec<u8> {
        let mut p = vec![0x04];
        p.extend([7; 64]);
        p
    }

    fn roundtrips(scheme: u16, m: &[u8]) {
        let parsed = check(scheme, m).unwrap();
        let mut out = Vec::new();
        parsed.encode(&mut out);
        assert_eq!(out, m);
    }

    #[test]
    fn tls13_certificate_verify() {
        for (scheme, len) in [
            (scheme::ECDSA_NISTP521_SHA512, 48),
            (scheme::RSA_PSS_PSS_SHA256, 32),
            (scheme::ECDSA_NISTP256_SHA256, 32),
            (scheme::RSA_PSS_SHA256, 48),
            (scheme::ED25519, 32),
            (scheme::ECDSA_NISTP384_SHA384, 48),
        ] {
            roundtrips(scheme, &cv(len));
        }
        assert!(matches!(
            check(0x0403, &cv(48)),
            Ok(Signable::Tls13CertificateVerify { transcript_hash }) if transcript_hash.len() == 48
        ));
        for len in [0, 20, 31, 33, 47, 49, 64, 200] {
            assert_eq!(check(0x0403, &cv(len)), Err(SignableError::HashLength(len)));
        }
        // PKCS#1 v1.5 is TLS 1.2 only (RFC 8446 §4.2.3).
        assert_eq!(
            check(scheme::RSA_PKCS1_SHA256, &cv(32)),
            Err(SignableError::SchemeNotTls13(0x0401))
        );
        // The client's context string is not ours to sign.
        let mut client = cv(32);
        client[64 + 9] = b'c';
        assert!(check(0x0403, &client).is_err());
        let mut pad = cv(32);
        pad[3] = 0x21;
        assert!(check(0x0403, &pad).is_err());
    }

    #[test]
    fn tls12_server_key_exchange() {
        roundtrips(scheme::RSA_PKCS1_SHA256, &ske(0x001d, &[9; 32]));
        roundtrips(scheme::RSA_PSS_SHA512, &ske(0x0017, &p256_point()));
        let mut p384 = vec![4];
        p384.extend([1; 96]);
        roundtrips(scheme::ECDSA_NISTP384_SHA384, &ske(0x0018, &p384));
        let p256 = ske(0x0017, &p256_point());
        let parsed = check(0x0403, &p256).unwrap();
        assert!(matches!(
            parsed,
            Signable::Tls12ServerKeyExchange {
                group: Group::Secp256r1,
                client_random: &[0xaa, ..],
                server_random: &[0xbb, ..],
                ..
            }
        ));
    }

    #[test]
    fn tls12_server_key_exchange_refusals() {
        // x25519 with a P-256-sized point, and the reverse.
        assert_eq!(
            check(0x0403, &ske(0x001d, &p256_point())),
            Err(SignableError::Point(Group::X25519))
        );
        assert_eq!(
            check(0x0403, &ske(0x0017, &[4; 32])),
            Err(SignableError::Point(Group::Secp256r1))
        );
        // A compressed P-256 point (33 bytes) and an uncompressed length with a wrong prefix.
        let mut compressed = vec![2];
        compressed.extend([1; 32]);
        assert_eq!(
            check(0x0403, &ske(0x0017, &compressed)),
            Err(SignableError::Point(Group::Secp256r1))
        );
        let mut hybrid = p256_point();
        hybrid[0] = 6;
        assert_eq!(
            check(0x0403, &ske(0x0017, &hybrid)),
            Err(SignableError::Point(Group::Secp256r1))
        );
        // secp521r1, x448, an FFDHE group: not negotiated here.
        assert_eq!(
            check(0x0403, &ske(0x0019, &[4; 133])),
            Err(SignableError::Group(0x0019))
        );
        assert_eq!(
            check(0x0403, &ske(0x001e, &[4; 56])),
            Err(SignableError::Group(0x001e))
        );
        assert_eq!(
            check(0x0403, &ske(0x0100, &[4; 32])),
            Err(SignableError::Group(0x0100))
        );
        let mut explicit = ske(0x001d, &[9; 32]);
        explicit[64] = 1;
        assert_eq!(check(0x0403, &explicit), Err(SignableError::CurveType(1)));
        // A byte more or less than the point's declared length.
        let mut long = ske(0x001d, &[9; 32]);
        long.push(0);
        assert_eq!(check(0x0403, &long), Err(SignableError::Shape(101)));
        let mut short = ske(0x001d, &[9; 32]);
        short.pop();
        assert_eq!(check(0x0403, &short), Err(SignableError::Shape(99)));
    }

    #[test]
    fn arbitrary_bytes_and_schemes_are_refused() {
        for m in [&b""[..], b"transcript", &[0; 64], &[0x20; 200], &[0; 4096]] {
            assert!(check(0x0403, m).is_err(), "{m:?}");
        }
        // SHA-1 and unknown schemes are refused even for well-formed content (0x080c: the
        // next rsa_pss_pss code point after those P-521/RSA-PSS keys use).
        for scheme in [0x0201, 0x0203, 0x0808, 0x080c, 0xffff] {
            assert_eq!(check(scheme, &cv(32)), Err(SignableError::Scheme(scheme)));
            assert_eq!(
                check(scheme, &ske(0x001d, &[9; 32])),
                Err(SignableError::Scheme(scheme))
            );
        }
    }
}
