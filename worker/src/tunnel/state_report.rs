//! When the worker tells main its tunnel's channel state (`ToMain::TunnelState`, for occtl):
//! at once when the tunnel starts, then only when something changed, and never more often than
//! [`TUNNEL_STATE_INTERVAL_MS`] (DTLS can flap between in use and not with every CSTP packet
//! of a confused client; main ignores reports beyond its own budget). A change that comes too
//! soon is sent when the interval is over, so the last state always arrives. Sans-IO.

use std::time::{Duration, Instant};

use rocserv_proto::ipc::main_worker::{TunnelState, TUNNEL_STATE_INTERVAL_MS};

const INTERVAL: Duration = Duration::from_millis(TUNNEL_STATE_INTERVAL_MS);

/// The last report sent and when.
#[derive(Debug, Default)]
pub struct Reporter {
    last: Option<TunnelState>,
    sent_at: Option<Instant>,
}

impl Reporter {
    /// The report to send now, if `current` differs from the last one sent and the interval
    /// since that one is over.
    pub fn due(&mut self, current: TunnelState, now: Instant) -> Option<TunnelState> {
        if self.last == Some(current) || self.next_allowed().is_some_and(|t| now < t) {
            return None;
        }
        self.last = Some(current);
        self.sent_at = Some(now);
        Some(current)
    }

    /// When a change held back by the interval may go out (the caller wakes then).
    pub fn wake_at(&self, current: &TunnelState) -> Option<Instant> {
        if self.last.as_ref() == Some(current) {
            return None;
        }
        self.next_allowed()
    }

    fn next_allowed(&self) -> Option<Instant> {
        self.sent_at.map(|t| t + INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(in_use: bool) -> TunnelState {
        TunnelState {
            tls_version: 0x0304,
            tls_suite: 0x1302,
            tls_group: None,
            tls_signature: None,
            dtls_suite: Some(0x00A9),
            dtls_flow: 1,
            dtls_in_use: in_use,
            cstp_compression: None,
            dtls_compression: None,
        }
    }

    #[test]
    fn first_at_once_then_changes_only_and_paced() {
        let t0 = Instant::now();
        let mut r = Reporter::default();
        assert_eq!(r.due(state(false), t0), Some(state(false)));
        assert_eq!(r.due(state(false), t0 + INTERVAL * 5), None);
        let t1 = t0 + INTERVAL * 5;
        assert_eq!(r.due(state(true), t1), Some(state(true)));
        // A flap right after: held back, then the latest state goes out.
        assert_eq!(r.due(state(false), t1 + INTERVAL / 2), None);
        assert_eq!(r.wake_at(&state(false)), Some(t1 + INTERVAL));
        assert_eq!(r.due(state(false), t1 + INTERVAL), Some(state(false)));
        assert_eq!(r.wake_at(&state(false)), None);
        // A thousand flaps within an interval send nothing more.
        let t2 = t1 + INTERVAL;
        let sent = (0..1000)
            .filter(|i| r.due(state(i % 2 == 0), t2).is_some())
            .count();
        assert_eq!(sent, 0);
    }
}
