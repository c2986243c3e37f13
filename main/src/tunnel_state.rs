//! main's check of a worker's `ToMain::TunnelState` reports (what occtl shows about a tunnel's
//! channels). The worker may be compromised, so a report is hostile input:
//!
//! - Rate: its own token bucket; an honest worker sends at most one per
//!   `TUNNEL_STATE_INTERVAL_MS`. A few reports over the budget are ignored (the last accepted
//!   one stays), with one log line per burst; a flood beyond that is a violation of
//!   `crate::worker_guard` (hard bucket) and the worker is killed.
//! - Content: code points only, each checked against the known values and formatted by main
//!   (`rocserv_proto::session_desc`); compression only where this server negotiates it, DTLS
//!   only when it was offered, the UDP flow only one main handed over. A bad report is ignored
//!   with a log line (bounded by the same bucket).
//! - Size: the message is a fixed set of small integers and enums; a longer one does not decode
//!   and the worker is killed like for any undecodable message.
//!
//! Sans-IO: `now` is passed in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rocserv_proto::compress::Algorithm;
use rocserv_proto::ipc::main_worker::{TunnelState, TUNNEL_STATE_INTERVAL_MS};
use rocserv_proto::session_desc::{self, BadState};

use crate::worker_guard::TokenBucket;

/// Reports accepted at once before the refill rate applies (start, DTLS up, a fallback, ...).
const BURST: u32 = 5;
/// UDP hand-overs whose client address main remembers for a later report to name.
const FLOWS_KEPT: usize = 8;

/// What occtl shows, made by main from an accepted report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    /// ocserv's texts (`TLS ciphersuite`, `DTLS cipher`; the latter empty without DTLS).
    pub tls_ciphersuite: String,
    pub dtls_cipher: String,
    /// Compression names as in the protocol headers (`oc-lz4`, `lzs`), empty for none.
    pub cstp_compression: String,
    pub dtls_compression: String,
    pub dtls_in_use: bool,
}

/// Why a report was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many state reports")]
    Rate,
    #[error(transparent)]
    Bad(#[from] BadState),
    #[error("compression reported although this server does not negotiate it")]
    Compression,
    #[error("DTLS reported although none was offered")]
    NoDtls,
    #[error("UDP flow {0} was not handed over by main")]
    Flow(u32),
}

/// What main allows a report of this connection to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// `compression` is on.
    pub compression: bool,
    /// A DTLS id was handed out at CONNECT.
    pub dtls: bool,
}

/// One connection's gate.
#[derive(Debug)]
pub struct StateGate {
    bucket: TokenBucket,
    /// A "too many" line was logged since the last accepted report.
    noted: bool,
    /// The last hand-overs: (number, client address); numbers count from 1 as the worker's do.
    flows: Vec<(u32, SocketAddr)>,
    handed: u32,
}

impl StateGate {
    pub fn new(now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(BURST, Duration::from_millis(TUNNEL_STATE_INTERVAL_MS), now),
            noted: false,
            flows: Vec::with_capacity(FLOWS_KEPT),
            handed: 0,
        }
    }

    /// main handed the worker a UDP flow from `peer` (`ToWorker::Udp` was sent).
    pub fn handed_over(&mut self, peer: SocketAddr) {
        self.handed = self.handed.saturating_add(1);
        if self.flows.len() >= FLOWS_KEPT {
            self.flows.remove(0);
        }
        self.flows.push((self.handed, peer));
    }

    /// Check a report. `Ok` gives what occtl shows and the client's UDP address (from main's
    /// own record of the flow the report names). `Err(Refused::Rate)` is returned once per
    /// burst as `Some`; later refusals of the same burst as `None`, so the caller logs one line.
    pub fn admit(
        &mut self,
        state: &TunnelState,
        allowed: Allowed,
        now: Instant,
    ) -> Result<(ChannelView, Option<SocketAddr>), Option<Refused>> {
        if !self.bucket.take(now) {
            if self.noted {
                return Err(None);
            }
            self.noted = true;
            return Err(Some(Refused::Rate));
        }
        let view = self.check(state, allowed).map_err(Some)?;
        self.noted = false;
        let peer = match state.dtls_flow {
            0 => None,
            n => self.flows.iter().find(|(k, _)| *k == n).map(|(_, a)| *a),
        };
        Ok((view, peer))
    }

    fn check(&self, state: &TunnelState, allowed: Allowed) -> Result<ChannelView, Refused> {
        let described = session_desc::describe(state)?;
        let compressed = state.cstp_compression.is_some() || state.dtls_compression.is_some();
        if compressed && !allowed.compression {
            return Err(Refused::Compression);
        }
        let dtls_said = state.dtls_suite.is_some() || state.dtls_compression.is_some();
        if !allowed.dtls && (dtls_said || state.dtls_flow != 0) {
            return Err(Refused::NoDtls);
        }
        if state.dtls_flow > self.handed {
            return Err(Refused::Flow(state.dtls_flow));
        }
        // ocserv's names (its `comp_methods`: `oc-lz4`, `lzs`, the header tokens).
        let name = |a: Option<Algorithm>| a.map_or_else(String::new, |a| a.name().to_owned());
        Ok(ChannelView {
            tls_ciphersuite: described.tls,
            dtls_cipher: described.dtls.to_owned(),
            cstp_compression: name(state.cstp_compression),
            // As ocserv: DTLS compression is shown once a DTLS session exists.
            dtls_compression: name(
                state
                    .dtls_compression
                    .filter(|_| state.dtls_suite.is_some()),
            ),
            dtls_in_use: state.dtls_in_use,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    const ALL: Allowed = Allowed {
        compression: true,
        dtls: true,
    };

    fn report() -> TunnelState {
        TunnelState {
            tls_version: 0x0304,
            tls_suite: 0x1302,
            tls_group: Some(0x001D),
            tls_signature: Some(0x0804),
            dtls_suite: Some(0x00A9),
            dtls_flow: 1,
            dtls_in_use: true,
            cstp_compression: Some(Algorithm::Lz4),
            dtls_compression: None,
        }
    }

    fn gate(now: Instant) -> StateGate {
        let mut g = StateGate::new(now);
        g.handed_over("10.0.0.2:40000".parse().unwrap());
        g
    }

    #[test]
    fn a_good_report_becomes_ocservs_text_and_mains_peer() {
        let t0 = Instant::now();
        let mut g = gate(t0);
        let (view, peer) = g.admit(&report(), ALL, t0).unwrap();
        assert_eq!(
            view.tls_ciphersuite,
            "(TLS1.3)-(ECDHE-X25519)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)"
        );
        assert_eq!(view.dtls_cipher, "(DTLS1.2)-(PSK)-(AES-256-GCM)");
        assert_eq!(view.cstp_compression, "oc-lz4");
        assert_eq!(view.dtls_compression, "");
        assert!(view.dtls_in_use);
        assert_eq!(peer, Some("10.0.0.2:40000".parse().unwrap()));
        // The client roamed: the report names the second hand-over.
        g.handed_over("10.0.0.3:40001".parse().unwrap());
        let roamed = TunnelState {
            dtls_flow: 2,
            ..report()
        };
        let (_, peer) = g.admit(&roamed, ALL, t0 + SEC).unwrap();
        assert_eq!(peer, Some("10.0.0.3:40001".parse().unwrap()));
        // DTLS compression negotiated at CONNECT shows once the DTLS session is up.
        let lzs = TunnelState {
            dtls_compression: Some(Algorithm::Lzs),
            ..report()
        };
        let (view, _) = g.admit(&lzs, ALL, t0 + SEC * 2).unwrap();
        assert_eq!(view.dtls_compression, "lzs");
        let not_yet = TunnelState {
            dtls_suite: None,
            dtls_in_use: false,
            dtls_flow: 0,
            ..lzs
        };
        let (view, _) = g.admit(&not_yet, ALL, t0 + SEC * 3).unwrap();
        assert_eq!(view.dtls_compression, "");
    }

    #[test]
    fn malformed_reports_are_refused() {
        let t0 = Instant::now();
        let mut g = gate(t0);
        let mut at = t0;
        let mut refuse = |state: TunnelState, allowed: Allowed| {
            at += SEC * 10;
            g.admit(&state, allowed, at).unwrap_err()
        };
        assert_eq!(
            refuse(
                TunnelState {
                    tls_suite: 0xFFFF,
                    ..report()
                },
                ALL
            ),
            Some(Refused::Bad(BadState::TlsSuite(0xFFFF)))
        );
        assert_eq!(
            refuse(
                TunnelState {
                    dtls_suite: Some(0x0001),
                    ..report()
                },
                ALL
            ),
            Some(Refused::Bad(BadState::DtlsSuite(0x0001)))
        );
        assert_eq!(
            refuse(
                report(),
                Allowed {
                    compression: false,
                    ..ALL
                }
            ),
            Some(Refused::Compression)
        );
        assert_eq!(
            refuse(report(), Allowed { dtls: false, ..ALL }),
            Some(Refused::NoDtls)
        );
        // A flow main never handed over: the worker cannot make main show an address.
        assert_eq!(
            refuse(
                TunnelState {
                    dtls_flow: 7,
                    ..report()
                },
                ALL
            ),
            Some(Refused::Flow(7))
        );
    }

    #[test]
    fn a_flood_is_ignored_with_one_refusal_to_log() {
        let t0 = Instant::now();
        let mut g = gate(t0);
        let results: Vec<_> = (0..1000).map(|_| g.admit(&report(), ALL, t0)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), BURST as usize);
        let logged = results
            .iter()
            .filter(|r| matches!(r, Err(Some(Refused::Rate))))
            .count();
        assert_eq!(logged, 1);
        // The refill rate applies again afterwards, and a new burst is logged once more.
        assert!(g.admit(&report(), ALL, t0 + SEC).is_ok());
        assert_eq!(g.admit(&report(), ALL, t0 + SEC), Err(Some(Refused::Rate)));
        // An honest worker (one report per interval) is never refused.
        let mut g = gate(t0);
        for s in 0..3600 {
            assert!(g.admit(&report(), ALL, t0 + SEC * s).is_ok());
        }
    }

    #[test]
    fn only_the_last_flows_are_remembered() {
        let t0 = Instant::now();
        let mut g = StateGate::new(t0);
        for port in 1..=20u16 {
            g.handed_over(SocketAddr::from(([10, 0, 0, 2], port)));
        }
        assert_eq!(g.flows.len(), FLOWS_KEPT);
        let old = TunnelState {
            dtls_flow: 1,
            ..report()
        };
        // Flow 1 is known to have existed but its address is forgotten: no peer, no error.
        assert_eq!(g.admit(&old, ALL, t0).map(|(_, p)| p), Ok(None));
        let new = TunnelState {
            dtls_flow: 20,
            ..report()
        };
        assert_eq!(
            g.admit(&new, ALL, t0).map(|(_, p)| p),
            Ok(Some(SocketAddr::from(([10, 0, 0, 2], 20))))
        );
    }
}
