//! Tunnel MTU values for the CONNECT response (protocol.md §2.4, after ocserv's
//! `calc_mtu_values` in src/worker-vpn.c).

/// Smallest client `X-CSTP-Base-MTU` we believe (ocserv: 800; 1280 when IPv6 is assigned).
const MIN_BASE_MTU_V4: u16 = 800;
const MIN_BASE_MTU_V6: u16 = 1280;
/// Outer header sizes: IP plus UDP, because the data MTU must also fit a DTLS datagram.
const IPV4_UDP: u16 = 20 + 8;
const IPV6_UDP: u16 = 40 + 8;
/// Worst-case DTLS record overhead (DTLS 1.0 AES-128-CBC-SHA1) plus the payload type byte; used
/// to turn an old client's `X-CSTP-MTU` back into a link MTU.
const WORST_DTLS_OVERHEAD: u16 = 65 + 1;

/// Inputs, all optional except the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuInput {
    /// `mtu` from the configuration; `None` = 1500.
    pub configured: Option<u16>,
    /// The client's `X-CSTP-Base-MTU` and `X-CSTP-MTU`.
    pub client_base_mtu: Option<u16>,
    pub client_mtu: Option<u16>,
    /// The client reached us over IPv6 (bigger outer header).
    pub outer_ipv6: bool,
    /// An IPv6 address is being assigned (raises the minimum believable base MTU).
    pub assigns_ipv6: bool,
    /// Bytes a DTLS record adds (including the 1-byte payload type), or `None` when no DTLS is
    /// offered.
    pub dtls_overhead: Option<u16>,
}

/// Outputs: `X-CSTP-Base-MTU` and `X-CSTP-MTU` (also the tun device's MTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtu {
    pub base: u16,
    pub data: u16,
}

/// Compute the advertised MTUs. Never returns less than 576 for the data MTU, whatever the
/// client claims (a hostile client must not make us configure an unusable tun).
pub fn compute(input: MtuInput) -> Mtu {
    let mut link = input.configured.unwrap_or(1500);
    let min_base = if input.assigns_ipv6 {
        MIN_BASE_MTU_V6
    } else {
        MIN_BASE_MTU_V4
    };
    let outer = if input.outer_ipv6 { IPV6_UDP } else { IPV4_UDP };
    match (input.client_base_mtu, input.client_mtu) {
        (Some(base), _) if base >= min_base => link = link.min(base),
        (_, Some(mtu)) => {
            let implied = mtu
                .saturating_add(outer)
                .saturating_add(WORST_DTLS_OVERHEAD);
            if implied >= min_base {
                link = link.min(implied);
            }
        }
        _ => {}
    }
    let data = link
        .saturating_sub(outer)
        .saturating_sub(input.dtls_overhead.unwrap_or(0))
        .max(576);
    Mtu { base: link, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MtuInput {
        MtuInput {
            configured: None,
            client_base_mtu: None,
            client_mtu: None,
            outer_ipv6: false,
            assigns_ipv6: false,
            dtls_overhead: None,
        }
    }

    #[test]
    fn psk_gcm_on_1500_gives_1434() {
        // [trace] in protocol.md §2.2: base 1500, AES-GCM (37 + 1 type byte) -> 1434.
        let mtu = compute(MtuInput {
            client_base_mtu: Some(1500),
            dtls_overhead: Some(38),
            ..input()
        });
        assert_eq!(
            mtu,
            Mtu {
                base: 1500,
                data: 1434
            }
        );
    }

    #[test]
    fn tls_only_on_1500_gives_1472() {
        // The bench README: TLS-only sessions get a 1472 tun MTU from ocserv.
        assert_eq!(
            compute(MtuInput {
                client_base_mtu: Some(1500),
                ..input()
            })
            .data,
            1472
        );
    }

    #[test]
    fn loopback_base_mtu_is_capped_by_configuration() {
        let mtu = compute(MtuInput {
            client_base_mtu: Some(65535),
            ..input()
        });
        assert_eq!(mtu.base, 1500);
        let mtu = compute(MtuInput {
            configured: Some(1400),
            client_base_mtu: Some(65535),
            ..input()
        });
        assert_eq!(mtu.base, 1400);
    }

    #[test]
    fn absurd_client_values_are_ignored() {
        let mtu = compute(MtuInput {
            client_base_mtu: Some(10),
            client_mtu: Some(1),
            ..input()
        });
        assert_eq!(mtu.base, 1500);
        let mtu = compute(MtuInput {
            configured: Some(100),
            ..input()
        });
        assert_eq!(mtu.data, 576);
    }
}
