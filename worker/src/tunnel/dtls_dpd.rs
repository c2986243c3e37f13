//! Server-side dead-peer detection of the DTLS channel (protocol.md §3.4, §4.5), sans-IO: the
//! caller reports every decrypted record and passes `now` in; this says when to probe and when
//! to give UDP up.
//!
//! ocserv (src/worker-vpn.c `periodic_check`, every ~30 s): while DTLS is in use and no UDP
//! record arrived for 2·dpd, it sends a DPD request padded with zeros to the data MTU; after
//! 3·dpd without one it stops sending over UDP (data goes over CSTP) until any record arrives
//! again. Here the timers are exact instead of riding a 30 s tick: probes at 2·dpd and 2.5·dpd
//! of silence (UDP loses packets; openconnect too repeats its probe every dpd/2), given up at
//! 3·dpd. Any record counts as an answer (openconnect answers a DTLS DPD request with a 1-byte
//! DPD response, not an echo).

use std::time::{Duration, Instant};

/// Probes per silence (at 2·dpd and 2.5·dpd).
const PROBES: u32 = 2;

/// What the caller must do after [`DtlsDpd::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Nothing,
    /// Send a DPD request over DTLS.
    Probe,
    /// No record for 3·dpd: send over CSTP until a record arrives.
    Dead,
}

/// Liveness of the DTLS channel of one tunnel.
#[derive(Debug)]
pub struct DtlsDpd {
    /// `None`: no server-side DPD (`dpd = 0`).
    dpd: Option<Duration>,
    /// When the last record was decrypted (or the session was established).
    last_rx: Instant,
    /// Probes sent since `last_rx`.
    probes: u32,
    /// [`Tick::Dead`] was returned since `last_rx`.
    dead: bool,
}

impl DtlsDpd {
    pub fn new(dpd: Option<Duration>, now: Instant) -> Self {
        Self {
            dpd: dpd.filter(|d| !d.is_zero()),
            last_rx: now,
            probes: 0,
            dead: false,
        }
    }

    /// A record arrived (or a session was established). Returns whether a probe was
    /// outstanding, i.e. this answered it.
    pub fn on_record(&mut self, now: Instant) -> bool {
        let answered = self.probes > 0;
        self.last_rx = now;
        self.probes = 0;
        self.dead = false;
        answered
    }

    /// Whether the channel is given up: no record for 3·dpd.
    pub fn is_dead(&self, now: Instant) -> bool {
        self.dpd
            .is_some_and(|d| now >= self.last_rx.checked_add(d * 3).unwrap_or(now))
    }

    /// Seconds since the last record, for log lines.
    pub fn silence(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.last_rx).as_secs()
    }

    /// The next instant [`Self::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.dpd?;
        if self.dead {
            None
        } else if self.probes < PROBES {
            self.last_rx.checked_add(d * 2 + d / 2 * self.probes)
        } else {
            self.last_rx.checked_add(d * 3)
        }
    }

    /// Called at or after [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Tick {
        if self.dead || self.dpd.is_none() {
            return Tick::Nothing;
        }
        if self.is_dead(now) {
            self.dead = true;
            return Tick::Dead;
        }
        if self.probes < PROBES && self.poll_timeout().is_some_and(|at| now >= at) {
            self.probes = self.probes.saturating_add(1);
            return Tick::Probe;
        }
        Tick::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPD: Duration = Duration::from_secs(10);

    #[test]
    fn silence_is_probed_twice_then_given_up() {
        let t0 = Instant::now();
        let mut d = DtlsDpd::new(Some(DPD), t0);
        assert_eq!(d.poll_timeout(), Some(t0 + DPD * 2));
        assert_eq!(d.handle_timeout(t0 + DPD), Tick::Nothing);
        assert_eq!(d.handle_timeout(t0 + DPD * 2), Tick::Probe);
        // Not twice for the same deadline.
        assert_eq!(d.handle_timeout(t0 + DPD * 2), Tick::Nothing);
        assert_eq!(d.poll_timeout(), Some(t0 + DPD * 2 + DPD / 2));
        assert_eq!(d.handle_timeout(t0 + DPD * 2 + DPD / 2), Tick::Probe);
        assert_eq!(d.poll_timeout(), Some(t0 + DPD * 3));
        assert!(!d.is_dead(t0 + DPD * 3 - Duration::from_millis(1)));
        assert_eq!(d.handle_timeout(t0 + DPD * 3), Tick::Dead);
        assert!(d.is_dead(t0 + DPD * 3));
        // Nothing more until a record arrives.
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_timeout(t0 + DPD * 10), Tick::Nothing);
    }

    #[test]
    fn any_record_answers_and_restarts_the_clock() {
        let t0 = Instant::now();
        let mut d = DtlsDpd::new(Some(DPD), t0);
        assert!(!d.on_record(t0 + DPD), "nothing was outstanding");
        assert_eq!(d.poll_timeout(), Some(t0 + DPD * 3));
        assert_eq!(d.handle_timeout(t0 + DPD * 3), Tick::Probe);
        assert!(d.on_record(t0 + DPD * 3 + Duration::from_secs(1)));
        assert_eq!(
            d.poll_timeout(),
            Some(t0 + DPD * 5 + Duration::from_secs(1))
        );
        // After being given up, a record revives the channel.
        let t1 = t0 + DPD * 100;
        assert_eq!(d.handle_timeout(t1), Tick::Dead);
        assert!(!d.on_record(t1));
        assert!(!d.is_dead(t1));
        assert_eq!(d.poll_timeout(), Some(t1 + DPD * 2));
    }

    #[test]
    fn a_late_timer_goes_straight_to_dead() {
        let t0 = Instant::now();
        let mut d = DtlsDpd::new(Some(DPD), t0);
        assert_eq!(d.handle_timeout(t0 + DPD * 4), Tick::Dead);
    }

    #[test]
    fn no_dpd_no_timer() {
        let t0 = Instant::now();
        for dpd in [None, Some(Duration::ZERO)] {
            let mut d = DtlsDpd::new(dpd, t0);
            assert_eq!(d.poll_timeout(), None);
            assert_eq!(d.handle_timeout(t0 + DPD * 100), Tick::Nothing);
            assert!(!d.is_dead(t0 + DPD * 100));
        }
    }
}
