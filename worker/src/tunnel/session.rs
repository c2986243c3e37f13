//! The sans-IO tunnel session (protocol.md §3.2-§3.4): what to do with each CSTP frame the client
//! sends and when the server gives up on a silent client. No sockets and no clock: the pump in
//! [`super::pump`] passes `now` in and carries out the returned [`Action`].

use std::time::{Duration, Instant};

use rocserv_proto::cstp::{Frame, PacketType};
use rocserv_proto::ipc::CloseReason;

/// The CSTP DISCONNECT reason byte of a user disconnect (protocol.md §3.3).
const DISCONNECT_USER: u8 = 0xB0;

/// Timer settings of one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimers {
    /// DPD interval told to the client; `None` = no server-side dead-peer detection.
    pub dpd: Option<Duration>,
    /// `idle-timeout`: no DATA in either direction for this long ends the tunnel.
    pub idle: Option<Duration>,
    /// `session-timeout`: the tunnel ends this long after it started.
    pub session: Option<Duration>,
}

/// What the pump must do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Nothing.
    Nothing,
    /// Write this IP packet to the tun device.
    WriteTun(&'a [u8]),
    /// Send one CSTP frame to the client.
    Send { ty: PacketType, payload: &'a [u8] },
    /// A frame type we do not handle arrived; log it and carry on (as ocserv does).
    Ignored(u8),
    /// The tunnel is over.
    End(End),
}

/// How and why the tunnel ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub reason: CloseReason,
    /// Send the client a CSTP DISCONNECT first (server-side endings it should not retry).
    pub notify_client: bool,
    /// One phrase for the log line.
    pub why: &'static str,
}

/// State of one established tunnel.
#[derive(Debug)]
pub struct Session {
    timers: SessionTimers,
    /// Last time any CSTP frame arrived (protocol.md §3.4: any frame counts as alive).
    last_rx: Instant,
    /// Whether a DPD request went out since `last_rx`.
    dpd_sent: bool,
    /// Last time a DATA packet went either way.
    last_data: Instant,
    started: Instant,
}

impl Session {
    pub fn new(timers: SessionTimers, now: Instant) -> Self {
        Self {
            timers,
            last_rx: now,
            dpd_sent: false,
            last_data: now,
            started: now,
        }
    }

    /// One frame from the client.
    pub fn handle_cstp<'a>(&mut self, frame: Frame<'a>, now: Instant) -> Action<'a> {
        self.last_rx = now;
        self.dpd_sent = false;
        match frame.ty {
            PacketType::Data => {
                self.last_data = now;
                if frame.payload.is_empty() {
                    Action::Nothing
                } else {
                    Action::WriteTun(frame.payload)
                }
            }
            // protocol.md §3.2: answer with the identical payload.
            PacketType::DpdReq => Action::Send {
                ty: PacketType::DpdResp,
                payload: frame.payload,
            },
            PacketType::DpdResp | PacketType::Keepalive => Action::Nothing,
            PacketType::Disconnect => Action::End(disconnect(frame.payload)),
            // The pump decodes COMPRESSED frames into DATA when CSTP compression was negotiated,
            // so this one arrived on a channel without it: ocserv errors out too (§3.2).
            PacketType::Compressed => Action::End(End {
                reason: CloseReason::Temporary,
                notify_client: false,
                why: "compressed packet although no compression was negotiated",
            }),
            PacketType::Terminate => Action::End(End {
                reason: CloseReason::Temporary,
                notify_client: false,
                why: "client sent TERMINATE",
            }),
            PacketType::Other(ty) => Action::Ignored(ty),
        }
    }

    /// A packet from the tun device went to the client.
    pub fn handle_tun(&mut self, now: Instant) {
        self.last_data = now;
    }

    /// Called at or after [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Action<'static> {
        if let Some(limit) = self.timers.session {
            if now >= self.started + limit {
                return Action::End(End {
                    reason: CloseReason::ServerTerminated,
                    notify_client: true,
                    why: "session timeout",
                });
            }
        }
        if let Some(idle) = self.timers.idle {
            if now >= self.last_data + idle {
                return Action::End(End {
                    reason: CloseReason::Temporary,
                    notify_client: true,
                    why: "idle timeout",
                });
            }
        }
        if let Some(dpd) = self.timers.dpd {
            // ocserv `periodic_check`: probe after 2·dpd of silence, give up after 3·dpd.
            if now >= self.last_rx + dpd * 3 {
                return Action::End(End {
                    reason: CloseReason::Temporary,
                    notify_client: false,
                    why: "DPD timeout",
                });
            }
            if !self.dpd_sent && now >= self.last_rx + dpd * 2 {
                self.dpd_sent = true;
                return Action::Send {
                    ty: PacketType::DpdReq,
                    payload: &[],
                };
            }
        }
        Action::Nothing
    }

    /// The next instant [`Self::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.timers.session.map(|t| self.started + t);
        let idle = self.timers.idle.map(|t| self.last_data + t);
        let dpd = self.timers.dpd.map(|dpd| {
            if self.dpd_sent {
                self.last_rx + dpd * 3
            } else {
                self.last_rx + dpd * 2
            }
        });
        [session, idle, dpd].into_iter().flatten().min()
    }
}

/// The client's DISCONNECT (protocol.md §3.3): `0xB0` is a user disconnect that ends the cookie;
/// everything else (empty, `0x91` reconnect, unknown) keeps it, as the draft says.
fn disconnect(payload: &[u8]) -> End {
    match payload.first() {
        Some(&DISCONNECT_USER) => End {
            reason: CloseReason::UserDisconnect,
            notify_client: false,
            why: "client disconnected",
        },
        _ => End {
            reason: CloseReason::Temporary,
            notify_client: false,
            why: "client disconnected temporarily",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPD: Duration = Duration::from_secs(90);

    fn session(now: Instant) -> Session {
        Session::new(
            SessionTimers {
                dpd: Some(DPD),
                idle: None,
                session: None,
            },
            now,
        )
    }

    fn frame(ty: PacketType, payload: &[u8]) -> Frame<'_> {
        Frame { ty, payload }
    }

    #[test]
    fn dpd_request_is_echoed_with_its_payload() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let payload = [1u8, 2, 3, 0, 0];
        assert_eq!(
            s.handle_cstp(frame(PacketType::DpdReq, &payload), t0),
            Action::Send {
                ty: PacketType::DpdResp,
                payload: &payload
            }
        );
    }

    #[test]
    fn data_goes_to_tun_and_keepalive_is_ignored() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let packet = [0x45u8, 0, 0, 20];
        assert_eq!(
            s.handle_cstp(frame(PacketType::Data, &packet), t0),
            Action::WriteTun(&packet)
        );
        assert_eq!(
            s.handle_cstp(frame(PacketType::Keepalive, &[]), t0),
            Action::Nothing
        );
        assert_eq!(
            s.handle_cstp(frame(PacketType::Other(0x42), &[]), t0),
            Action::Ignored(0x42)
        );
    }

    #[test]
    fn disconnect_reasons() {
        let t0 = Instant::now();
        let end = |payload: &[u8]| match session(t0)
            .handle_cstp(frame(PacketType::Disconnect, payload), t0)
        {
            Action::End(end) => end.reason,
            other => panic!("{other:?}"),
        };
        let bye = b"\xb0Aborted by caller";
        assert_eq!(end(bye), CloseReason::UserDisconnect);
        assert_eq!(end(&[0x91]), CloseReason::Temporary);
        assert_eq!(end(&[]), CloseReason::Temporary);
        assert_eq!(end(&[0x70, b'x']), CloseReason::Temporary);
    }

    #[test]
    fn silent_client_is_probed_then_dropped() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + DPD * 2));
        assert_eq!(s.handle_timeout(t0 + DPD), Action::Nothing);
        assert_eq!(
            s.handle_timeout(t0 + DPD * 2),
            Action::Send {
                ty: PacketType::DpdReq,
                payload: &[]
            }
        );
        // Only one probe per silence.
        assert_eq!(s.poll_timeout(), Some(t0 + DPD * 3));
        assert_eq!(s.handle_timeout(t0 + DPD * 2), Action::Nothing);
        match s.handle_timeout(t0 + DPD * 3) {
            Action::End(end) => {
                assert_eq!(end.reason, CloseReason::Temporary);
                assert!(!end.notify_client);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_frame_proves_liveness() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let _ = s.handle_timeout(t0 + DPD * 2);
        let t1 = t0 + DPD * 2 + Duration::from_secs(1);
        assert_eq!(
            s.handle_cstp(frame(PacketType::DpdResp, &[]), t1),
            Action::Nothing
        );
        assert_eq!(s.poll_timeout(), Some(t1 + DPD * 2));
        assert_eq!(s.handle_timeout(t0 + DPD * 3), Action::Nothing);
    }

    #[test]
    fn idle_and_session_timeouts() {
        let t0 = Instant::now();
        let mut s = Session::new(
            SessionTimers {
                dpd: None,
                idle: Some(Duration::from_secs(100)),
                session: Some(Duration::from_secs(1000)),
            },
            t0,
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(100)));
        s.handle_tun(t0 + Duration::from_secs(50));
        assert_eq!(
            s.handle_timeout(t0 + Duration::from_secs(100)),
            Action::Nothing
        );
        match s.handle_timeout(t0 + Duration::from_secs(150)) {
            Action::End(end) => assert_eq!(end.why, "idle timeout"),
            other => panic!("{other:?}"),
        }
        let mut s = Session::new(
            SessionTimers {
                dpd: None,
                idle: None,
                session: Some(Duration::from_secs(1000)),
            },
            t0,
        );
        match s.handle_timeout(t0 + Duration::from_secs(1000)) {
            Action::End(end) => {
                assert_eq!(end.reason, CloseReason::ServerTerminated);
                assert!(end.notify_client);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_timers_no_timeout() {
        let t0 = Instant::now();
        let s = Session::new(
            SessionTimers {
                dpd: None,
                idle: None,
                session: None,
            },
            t0,
        );
        assert_eq!(s.poll_timeout(), None);
    }
}
