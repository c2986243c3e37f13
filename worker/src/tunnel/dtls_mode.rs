//! Which DTLS negotiation one client gets (protocol.md §4.1), decided at CONNECT from its
//! `X-DTLS-*` headers, the configuration and facts about the TLS session. Pure: the caller
//! computes the PSK with the TLS exporter and names the TLS cipher's AES key size.

use rocserv_proto::connect::{DtlsCipher, DtlsOffer};
use rocserv_proto::dtls::{LegacySuite, Mode};
use rocserv_proto::ipc::main_worker::DtlsSettings;

use rustls::{CipherSuite, ServerConnection};

use crate::http::connect::DtlsRequest;

/// The exporter label of the PSK (protocol.md §4.2).
const PSK_LABEL: &[u8] = b"EXPORTER-openconnect-psk";

/// Record overhead of both PSK suites we accept (AES-128/256-GCM): 13-byte header, 8-byte
/// explicit nonce, 16-byte tag (protocol.md §2.4 table). The suite is only known after the
/// handshake; both cost the same.
const PSK_RECORD_OVERHEAD: u16 = 13 + 8 + 16;
/// The payload type byte in front of every DTLS packet (protocol.md §4.4).
const TYPE_BYTE: u16 = 1;
/// `X-DTLS12-CipherSuite` names we serve, with ocserv's priorities (§4.3).
const DTLS12_NAMES: [(&str, LegacySuite, u8); 2] = [
    ("AES256-GCM-SHA384", LegacySuite::Dtls12Aes256Gcm, 90),
    ("AES128-GCM-SHA256", LegacySuite::Dtls12Aes128Gcm, 50),
];
/// `X-DTLS-CipherSuite` legacy names we serve, with ocserv's priorities (§4.3).
const LEGACY_NAMES: [(LegacySuite, u8); 4] = [
    (LegacySuite::Dtls12Aes256Gcm, 90),
    (LegacySuite::Dtls12Aes128Gcm, 80),
    (LegacySuite::Dtls09Aes256Sha, 60),
    (LegacySuite::Dtls09Aes128Sha, 50),
];

/// The TLS session facts the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsFacts {
    /// The `EXPORTER-openconnect-psk` output, if the exporter worked.
    pub psk: Option<[u8; 32]>,
    /// The AES-GCM key size of the TLS cipher in bits (128/256), `None` for ChaCha20.
    pub aes_gcm_bits: Option<u16>,
}

/// The outcome for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub mode: Mode,
    /// What the CONNECT response announces.
    pub cipher: DtlsCipher,
    /// Bytes one DTLS packet adds (record overhead plus type byte), for the MTU.
    pub overhead: u16,
}

/// protocol.md §4.1: PSK-NEGOTIATE when offered and enabled, else the best legacy suite offered
/// (the `X-DTLS12-CipherSuite` list first, as ocserv does), else no DTLS.
pub fn choose(settings: &DtlsSettings, request: &DtlsRequest, tls: TlsFacts) -> Option<Chosen> {
    let psk_offered = tokens(&request.suites)
        .chain(tokens(&request.dtls12_suites))
        .any(|t| t == "PSK-NEGOTIATE");
    if settings.psk && psk_offered {
        if let Some(psk) = tls.psk {
            return Some(Chosen {
                mode: Mode::Psk { psk },
                cipher: DtlsCipher::Psk,
                overhead: PSK_RECORD_OVERHEAD + TYPE_BYTE,
            });
        }
    }
    if !settings.legacy {
        return None;
    }
    let master_secret = request.master_secret?;
    let pick = |offered: &mut dyn Iterator<Item = (&'static str, LegacySuite, u8)>| {
        best(offered, tls.aes_gcm_bits, settings.match_tls_ciphers)
    };
    let dtls12 = pick(
        &mut tokens(&request.dtls12_suites)
            .filter_map(|t| DTLS12_NAMES.iter().find(|(name, _, _)| *name == t).copied()),
    );
    let (name, suite, via_dtls12) = match dtls12 {
        Some((name, suite)) => (name, suite, true),
        None => {
            let (name, suite) = pick(&mut tokens(&request.suites).filter_map(|t| {
                LEGACY_NAMES
                    .iter()
                    .find(|(suite, _)| suite.name() == t)
                    .map(|(suite, prio)| (suite.name(), *suite, *prio))
            }))?;
            (name, suite, false)
        }
    };
    Some(Chosen {
        mode: Mode::Legacy {
            master_secret,
            suite,
        },
        cipher: DtlsCipher::Legacy {
            name,
            dtls12: via_dtls12,
        },
        overhead: suite.record_overhead().saturating_add(TYPE_BYTE),
    })
}

/// The TLS facts of a live connection: the PSK exporter (protocol.md §4.2,
/// dependency-findings.md §4: context `None`, not `Some(b"")`) and the cipher's AES key size.
pub fn tls_facts(conn: &ServerConnection) -> TlsFacts {
    let psk = conn
        .export_keying_material([0u8; 32], PSK_LABEL, None)
        .map_err(|err| log::warn!("TLS exporter failed, no PSK DTLS: {err}"))
        .ok();
    let aes_gcm_bits = conn
        .negotiated_cipher_suite()
        .and_then(|s| match s.suite() {
            CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(128),
            CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(256),
            _ => None,
        });
    TlsFacts { psk, aes_gcm_bits }
}

/// The `X-DTLS-*` block for the CONNECT answer: only when a mode was chosen and main served the
/// id (it does not when no UDP port is bound).
pub fn offer<'a>(
    settings: Option<&DtlsSettings>,
    chosen: Option<&Chosen>,
    id: Option<&'a [u8; 32]>,
) -> Option<DtlsOffer<'a>> {
    Some(DtlsOffer {
        port: settings?.port,
        id: id?,
        cipher: chosen?.cipher,
    })
}

/// ocserv's rule: a suite with the TLS session's cipher is taken at once; otherwise the one
/// with the highest priority. With `match-tls-dtls-ciphers`, only the former qualify.
fn best(
    offered: &mut dyn Iterator<Item = (&'static str, LegacySuite, u8)>,
    tls_bits: Option<u16>,
    must_match: bool,
) -> Option<(&'static str, LegacySuite)> {
    let mut best: Option<(&'static str, LegacySuite, u8)> = None;
    for (name, suite, prio) in offered {
        if tls_bits.is_some() && gcm_bits(suite) == tls_bits {
            return Some((name, suite));
        }
        if !must_match && best.is_none_or(|(_, _, p)| prio > p) {
            best = Some((name, suite, prio));
        }
    }
    best.map(|(name, suite, _)| (name, suite))
}

/// The AES-GCM key size of a legacy suite (`None` for the CBC ones).
fn gcm_bits(suite: LegacySuite) -> Option<u16> {
    match suite {
        LegacySuite::Dtls12Aes128Gcm => Some(128),
        LegacySuite::Dtls12Aes256Gcm => Some(256),
        LegacySuite::Dtls09Aes128Sha | LegacySuite::Dtls09Aes256Sha => None,
    }
}

fn tokens(list: &str) -> impl Iterator<Item = &str> {
    list.split(':').map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENCONNECT: &str = "PSK-NEGOTIATE:OC-DTLS1_2-AES256-GCM:OC2-DTLS1_2-CHACHA20-POLY1305:\
        OC-DTLS1_2-AES128-GCM:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA";

    fn settings() -> DtlsSettings {
        DtlsSettings {
            port: 443,
            psk: true,
            legacy: true,
            match_tls_ciphers: false,
            switch_to_tcp_secs: 25,
            try_mtu_discovery: false,
        }
    }

    fn request(suites: &str, dtls12: &str) -> DtlsRequest {
        DtlsRequest {
            suites: suites.into(),
            dtls12_suites: dtls12.into(),
            master_secret: Some([9; 48]),
        }
    }

    const TLS: TlsFacts = TlsFacts {
        psk: Some([1; 32]),
        aes_gcm_bits: Some(256),
    };

    fn legacy(c: &Chosen) -> (&'static str, bool, LegacySuite) {
        match (&c.cipher, &c.mode) {
            (DtlsCipher::Legacy { name, dtls12 }, Mode::Legacy { suite, .. }) => {
                (name, *dtls12, *suite)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn openconnect_default_gets_psk() {
        let c = choose(&settings(), &request(OPENCONNECT, ""), TLS).unwrap();
        assert_eq!(c.mode, Mode::Psk { psk: [1; 32] });
        assert_eq!(c.cipher, DtlsCipher::Psk);
        assert_eq!(c.overhead, 38);
    }

    #[test]
    fn psk_disabled_falls_back_to_legacy_by_tls_cipher_then_priority() {
        let s = DtlsSettings {
            psk: false,
            ..settings()
        };
        let c = choose(&s, &request(OPENCONNECT, ""), TLS).unwrap();
        assert_eq!(
            legacy(&c),
            ("OC-DTLS1_2-AES256-GCM", false, LegacySuite::Dtls12Aes256Gcm)
        );
        let chacha = TlsFacts {
            aes_gcm_bits: None,
            ..TLS
        };
        let c = choose(&s, &request("AES128-SHA:AES256-SHA", ""), chacha).unwrap();
        assert_eq!(
            legacy(&c),
            ("AES256-SHA", false, LegacySuite::Dtls09Aes256Sha)
        );
        assert_eq!(
            c.overhead,
            LegacySuite::Dtls09Aes256Sha.record_overhead() + 1
        );
    }

    #[test]
    fn forced_legacy_suites() {
        for name in [
            "OC-DTLS1_2-AES128-GCM",
            "OC-DTLS1_2-AES256-GCM",
            "AES128-SHA",
            "AES256-SHA",
        ] {
            let c = choose(&settings(), &request(name, ""), TLS).unwrap();
            assert_eq!(legacy(&c).0, name);
            assert!(!legacy(&c).1);
        }
    }

    #[test]
    fn dtls12_list_wins_and_echoes_its_own_name() {
        let c = choose(
            &settings(),
            &request(
                "UNKNOWN",
                "ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:AES128-SHA",
            ),
            TLS,
        )
        .unwrap();
        assert_eq!(
            legacy(&c),
            ("AES128-GCM-SHA256", true, LegacySuite::Dtls12Aes128Gcm)
        );
    }

    #[test]
    fn match_tls_ciphers_restricts_legacy() {
        let s = DtlsSettings {
            match_tls_ciphers: true,
            ..settings()
        };
        assert!(choose(&s, &request("AES256-SHA:OC-DTLS1_2-AES128-GCM", ""), TLS).is_none());
        let c = choose(&s, &request("OC-DTLS1_2-AES256-GCM", ""), TLS).unwrap();
        assert_eq!(legacy(&c).2, LegacySuite::Dtls12Aes256Gcm);
    }

    #[test]
    fn nothing_usable_means_no_dtls() {
        let no_legacy = DtlsSettings {
            legacy: false,
            ..settings()
        };
        assert!(choose(&no_legacy, &request("AES128-SHA", ""), TLS).is_none());
        let mut r = request("AES128-SHA", "");
        r.master_secret = None;
        assert!(choose(&settings(), &r, TLS).is_none());
        assert!(choose(&settings(), &request("", ""), TLS).is_none());
        let no_export = TlsFacts { psk: None, ..TLS };
        assert!(choose(&settings(), &request("PSK-NEGOTIATE", ""), no_export).is_none());
    }
}
