//! The cipher suites we speak and what each implies: wire version, suite id, PRF, key lengths
//! and record overhead (protocol.md §4.2, §4.3).

use super::record;

/// Cisco legacy suites (protocol.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySuite {
    /// `OC-DTLS1_2-AES128-GCM` / `AES128-GCM-SHA256`: DTLS 1.2, suite 0x009C.
    Dtls12Aes128Gcm,
    /// `OC-DTLS1_2-AES256-GCM` / `AES256-GCM-SHA384`: DTLS 1.2, suite 0x009D.
    Dtls12Aes256Gcm,
    /// `AES128-SHA`: DTLS 0.9 (`DTLS1_BAD_VER`), suite 0x002F.
    Dtls09Aes128Sha,
    /// `AES256-SHA`: DTLS 0.9, suite 0x0035.
    Dtls09Aes256Sha,
}

impl LegacySuite {
    /// From a name in `X-DTLS-CipherSuite` (`OC-DTLS1_2-AES128-GCM`, `OC-DTLS1_2-AES256-GCM`,
    /// `AES128-SHA`, `AES256-SHA`) or `X-DTLS12-CipherSuite` (`AES128-GCM-SHA256`,
    /// `AES256-GCM-SHA384`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "OC-DTLS1_2-AES128-GCM" | "AES128-GCM-SHA256" => Some(Self::Dtls12Aes128Gcm),
            "OC-DTLS1_2-AES256-GCM" | "AES256-GCM-SHA384" => Some(Self::Dtls12Aes256Gcm),
            "AES128-SHA" => Some(Self::Dtls09Aes128Sha),
            "AES256-SHA" => Some(Self::Dtls09Aes256Sha),
            _ => None,
        }
    }

    /// The name to echo back in the CONNECT response (the `X-DTLS-CipherSuite` spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dtls12Aes128Gcm => "OC-DTLS1_2-AES128-GCM",
            Self::Dtls12Aes256Gcm => "OC-DTLS1_2-AES256-GCM",
            Self::Dtls09Aes128Sha => "AES128-SHA",
            Self::Dtls09Aes256Sha => "AES256-SHA",
        }
    }

    /// Bytes one record adds to a payload (header + explicit nonce/IV + tag/MAC + worst padding).
    pub fn record_overhead(self) -> u16 {
        Suite::Legacy(self).record_overhead()
    }
}

/// Every suite a [`super::Server`] can end up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suite {
    /// TLS_PSK_WITH_AES_128_GCM_SHA256 (0x00A8) or, when `true`, TLS_PSK_WITH_AES_256_GCM_SHA384
    /// (0x00A9).
    Psk { aes256: bool },
    /// One of the legacy suites.
    Legacy(LegacySuite),
}

/// Which PRF (and Finished hash) a suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrfHash {
    /// TLS 1.2 PRF with SHA-256; transcript hash SHA-256.
    Sha256,
    /// TLS 1.2 PRF with SHA-384; transcript hash SHA-384.
    Sha384,
    /// TLS 1.0 PRF (P_MD5 xor P_SHA1); transcript hash MD5 || SHA-1 (DTLS 0.9).
    Tls10,
}

/// PSK suites we accept, in no particular order (the client's order decides).
pub(crate) const PSK_AES128_GCM: u16 = 0x00A8;
pub(crate) const PSK_AES256_GCM: u16 = 0x00A9;

impl Suite {
    pub(crate) fn id(self) -> u16 {
        match self {
            Self::Psk { aes256: false } => PSK_AES128_GCM,
            Self::Psk { aes256: true } => PSK_AES256_GCM,
            Self::Legacy(LegacySuite::Dtls12Aes128Gcm) => 0x009C,
            Self::Legacy(LegacySuite::Dtls12Aes256Gcm) => 0x009D,
            Self::Legacy(LegacySuite::Dtls09Aes128Sha) => 0x002F,
            Self::Legacy(LegacySuite::Dtls09Aes256Sha) => 0x0035,
        }
    }

    /// Version in record headers and hellos.
    pub(crate) fn version(self) -> u16 {
        if self.is_dtls09() {
            record::DTLS_BAD_VER
        } else {
            record::DTLS1_2
        }
    }

    pub(crate) fn is_dtls09(self) -> bool {
        matches!(
            self,
            Self::Legacy(LegacySuite::Dtls09Aes128Sha | LegacySuite::Dtls09Aes256Sha)
        )
    }

    pub(crate) fn is_cbc(self) -> bool {
        self.is_dtls09()
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            Self::Psk { aes256: true }
            | Self::Legacy(LegacySuite::Dtls12Aes256Gcm | LegacySuite::Dtls09Aes256Sha) => 32,
            Self::Psk { aes256: false }
            | Self::Legacy(LegacySuite::Dtls12Aes128Gcm | LegacySuite::Dtls09Aes128Sha) => 16,
        }
    }

    pub(crate) fn prf(self) -> PrfHash {
        match self {
            Self::Psk { aes256: true } | Self::Legacy(LegacySuite::Dtls12Aes256Gcm) => {
                PrfHash::Sha384
            }
            Self::Psk { aes256: false } | Self::Legacy(LegacySuite::Dtls12Aes128Gcm) => {
                PrfHash::Sha256
            }
            Self::Legacy(LegacySuite::Dtls09Aes128Sha | LegacySuite::Dtls09Aes256Sha) => {
                PrfHash::Tls10
            }
        }
    }

    pub(crate) fn record_overhead(self) -> u16 {
        // header 13 + (GCM: explicit nonce 8 + tag 16) / (CBC: IV 16 + MAC 20 + pad 1..=16)
        if self.is_cbc() {
            13 + 16 + 20 + 16
        } else {
            13 + 8 + 16
        }
    }

    pub(crate) fn describe(self) -> String {
        let bits = self.key_len().saturating_mul(8);
        match self {
            Self::Psk { .. } => format!("DTLS1.2 PSK AES-{bits}-GCM"),
            Self::Legacy(s) if self.is_cbc() => {
                format!("DTLS0.9 legacy AES-{bits}-CBC-SHA1 ({})", s.name())
            }
            Self::Legacy(s) => format!("DTLS1.2 legacy AES-{bits}-GCM ({})", s.name()),
        }
    }
}
