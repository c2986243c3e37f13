//! Which UDP socket each DTLS conversation of a tunnel uses ([`super::dtls`]), as a sans-IO state
//! machine so that randomized tests can check the rules (generic over the socket and the DTLS
//! server; the worker uses `DtlsSocket` and `rocserv_proto::dtls::Server`).
//!
//! Three places hold a socket: the established session ("current": every data packet and DPD
//! probe leaves there), a handshake in progress (first, or a re-handshake while the session keeps
//! working), and a flow main just offered (a new socket with its first datagram, until that
//! datagram is handled). The rules:
//! - A handshake owns the socket its ClientHello came on: an offered socket becomes the
//!   handshake's; a hello on the current socket starts a handshake that shares it (and keeps the
//!   old socket if the session moves meanwhile). Its flights go there and nowhere else.
//! - The current socket changes only when a handshake completes (the client's Finished proves the
//!   key: the PSK, or the legacy master secret), or when an application-data record from an
//!   offered flow authenticates under the session (a NAT rebinding, main/src/udp.rs). A replayed
//!   or spoofed ClientHello proves nothing, so it moves nothing: it only starts a handshake.
//! - Nothing read from a handshake's own socket reaches the session.
//! - A handshake that fails, is closed, is replaced by a newer one or does not complete within
//!   [`HANDSHAKE_LIMIT`] is dropped with its own socket; an offered socket nobody took is dropped.
//!
//! One handshake at a time: a hello from another socket replaces it (the newest attempt wins, as
//! a client that moved again would want). main bounds how often that can happen per session.

use std::time::{Duration, Instant};

/// A different ClientHello this long after a handshake started begins a new one (openconnect
/// retries every 60 s; its cookie-exchange second hello follows the first within a round trip).
pub const RESTART_AFTER: Duration = Duration::from_secs(2);
/// A handshake that has not completed this long after its first hello is dropped with its socket
/// (openconnect gives up after 12 s; our retransmissions end after 31 s, but a PSK handshake
/// waiting for the cookie echo has no timer of its own).
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(32);

/// A DTLS server as far as the slots care.
pub trait Conversation {
    /// The server failed or was closed for good.
    fn is_closed(&self) -> bool;
}

/// Where a datagram was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The established session's socket.
    Current,
    /// The handshake's own socket.
    Handshake,
    /// The socket main just offered (its first datagram).
    Offered,
}

/// What a datagram is, as far as routing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A ClientHello carrying our session id (its bytes tell a retransmission from a new one).
    Hello(&'a [u8]),
    /// Any other record that is not application data (handshake, alert, CCS).
    Handshake,
    /// An application-data record.
    Data,
}

/// Who handles a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Handshake,
    Session,
    Drop,
}

/// A handshake in progress.
struct Handshake<S, H> {
    server: H,
    /// Its own socket; `None` while it shares the current one (its hello came there).
    socket: Option<S>,
    /// The latest ClientHello it got (a different one soon after is the cookie exchange's
    /// second hello; a different one later is a new attempt).
    last_hello: Vec<u8>,
    started: Instant,
}

/// The sockets and servers of one tunnel's DTLS side.
pub struct Slots<S, H> {
    current: Option<S>,
    session: Option<H>,
    handshake: Option<Handshake<S, H>>,
    offered: Option<S>,
}

impl<S, H: Conversation> Default for Slots<S, H> {
    fn default() -> Self {
        Self {
            current: None,
            session: None,
            handshake: None,
            offered: None,
        }
    }
}

impl<S, H: Conversation> Slots<S, H> {
    /// main handed over a new flow; its first datagram follows as [`Source::Offered`], then
    /// [`Self::settle`].
    pub fn offer(&mut self, socket: S) {
        self.offered = Some(socket);
    }

    /// The first datagram of the offered flow was handled: drop the socket if nothing took it.
    /// Returns whether one was dropped.
    pub fn settle(&mut self) -> bool {
        self.offered.take().is_some()
    }

    /// Who handles a datagram of `kind` read from `from`; a ClientHello that starts a new
    /// handshake makes its server with `start`.
    pub fn route(
        &mut self,
        from: Source,
        kind: Kind<'_>,
        now: Instant,
        start: impl FnOnce() -> H,
    ) -> Route {
        let on_current = self.handshake.as_ref().is_some_and(|h| h.socket.is_none());
        match (from, kind) {
            (Source::Offered, Kind::Hello(hello)) => match self.offered.take() {
                Some(socket) => {
                    self.begin(Some(socket), hello, now, start);
                    Route::Handshake
                }
                None => Route::Drop,
            },
            (Source::Offered, Kind::Data) if self.offered.is_some() && self.session.is_some() => {
                Route::Session
            }
            (Source::Offered, _) => Route::Drop,
            (Source::Current, _) if self.current.is_none() => Route::Drop,
            (Source::Current, Kind::Hello(hello)) => {
                if !(on_current && self.continues(hello, now)) {
                    self.begin(None, hello, now, start);
                }
                Route::Handshake
            }
            (Source::Current, Kind::Handshake) if on_current => Route::Handshake,
            (Source::Current, Kind::Data) if self.session.is_none() && on_current => {
                Route::Handshake
            }
            (Source::Current, _) if self.session.is_some() => Route::Session,
            (Source::Current, _) => Route::Drop,
            (Source::Handshake, _) if on_current || self.handshake.is_none() => Route::Drop,
            (Source::Handshake, Kind::Hello(hello)) => {
                if !self.continues(hello, now) {
                    let socket = self.handshake.take().and_then(|h| h.socket);
                    self.begin(socket, hello, now, start);
                }
                Route::Handshake
            }
            (Source::Handshake, Kind::Handshake | Kind::Data) => Route::Handshake,
        }
    }

    /// Whether `hello` belongs to the handshake in progress (a retransmission, or the cookie
    /// exchange's second hello); remembers it if so.
    fn continues(&mut self, hello: &[u8], now: Instant) -> bool {
        let Some(h) = self.handshake.as_mut() else {
            return false;
        };
        let same = h.last_hello.as_slice() == hello;
        let soon = now.saturating_duration_since(h.started) < RESTART_AFTER;
        if h.server.is_closed() || !(same || soon) {
            return false;
        }
        if !same {
            h.last_hello.clear();
            h.last_hello.extend_from_slice(hello);
        }
        true
    }

    /// A new handshake on `socket` (`None`: the current one), replacing any other.
    fn begin(&mut self, socket: Option<S>, hello: &[u8], now: Instant, start: impl FnOnce() -> H) {
        self.handshake = Some(Handshake {
            server: start(),
            socket,
            last_hello: hello.to_vec(),
            started: now,
        });
    }

    /// The handshake completed (the client's Finished verified): its server becomes the session
    /// and its socket the current one. Returns whether the current socket changed.
    pub fn established(&mut self) -> bool {
        let Some(h) = self.handshake.take() else {
            return false;
        };
        self.session = Some(h.server);
        match h.socket {
            Some(socket) => {
                self.current = Some(socket);
                true
            }
            None => false,
        }
    }

    /// The handshake failed, was closed or timed out: drop it with its own socket.
    pub fn drop_handshake(&mut self) {
        self.handshake = None;
    }

    /// The session authenticated a record read from `from`. From an offered flow (a NAT
    /// rebinding) that socket becomes the current one; a handshake that shared the old one keeps
    /// it. Returns whether the current socket changed.
    pub fn authenticated(&mut self, from: Source) -> bool {
        if from != Source::Offered || self.session.is_none() {
            return false;
        }
        let Some(socket) = self.offered.take() else {
            return false;
        };
        let old = self.current.replace(socket);
        if let Some(h) = self.handshake.as_mut().filter(|h| h.socket.is_none()) {
            h.socket = old;
        }
        true
    }

    /// The client closed the session (its socket stays: a new hello may come there).
    pub fn session_closed(&mut self) {
        self.session = None;
    }

    /// When the handshake in progress expires.
    pub fn deadline(&self) -> Option<Instant> {
        self.handshake
            .as_ref()
            .map(|h| h.started.checked_add(HANDSHAKE_LIMIT).unwrap_or(h.started))
    }

    /// Drop a handshake past [`Self::deadline`]; returns whether one was dropped.
    pub fn expire(&mut self, now: Instant) -> bool {
        let expired = self.deadline().is_some_and(|d| d <= now);
        if expired {
            self.handshake = None;
        }
        expired
    }

    /// The established session's socket.
    pub fn current(&self) -> Option<&S> {
        self.current.as_ref()
    }

    /// Replace the current socket by what `f` makes of it (the same socket in or out of epoll).
    pub fn map_current(&mut self, f: impl FnOnce(S) -> S) {
        self.current = self.current.take().map(f);
    }

    /// The established session.
    pub fn session(&self) -> Option<&H> {
        self.session.as_ref()
    }

    /// The handshake in progress.
    pub fn handshake(&self) -> Option<&H> {
        self.handshake.as_ref().map(|h| &h.server)
    }

    /// The established session and the socket its answers to a datagram read from `from` go
    /// to: the current one, or for an offered flow that flow's (it becomes current if the record
    /// authenticates; if not, there is nothing to answer).
    pub fn session_parts(&mut self, from: Source) -> (Option<&mut H>, Option<&S>) {
        let socket = match from {
            Source::Offered => self.offered.as_ref(),
            Source::Current | Source::Handshake => self.current.as_ref(),
        };
        (self.session.as_mut(), socket)
    }

    /// The handshake in progress and the socket its flights go to.
    pub fn handshake_parts(&mut self) -> Option<(&mut H, Option<&S>)> {
        let h = self.handshake.as_mut()?;
        let socket = h.socket.as_ref().or(self.current.as_ref());
        Some((&mut h.server, socket))
    }

    /// The handshake's own socket (to read), if it has one.
    pub fn handshake_socket(&self) -> Option<&S> {
        self.handshake.as_ref()?.socket.as_ref()
    }
}

#[cfg(test)]
mod tests;
