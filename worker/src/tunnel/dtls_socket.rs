//! main's connected UDP socket for one tunnel's DTLS channel, watched by the reactor only while
//! traffic is sparse.
//!
//! Why it can rest: epoll wakes a sleeping worker for every datagram that lands on a registered
//! socket, edge-triggered or not, whether or not a task waits for it (each arrival is a new
//! edge). In a bulk upload that was ~11,000 wake-ups per second even while receive moderation
//! (pump.rs) left the socket unread for a millisecond at a time: each one a context switch that
//! did nothing. So a bulk flow takes the socket out of epoll altogether ([`DtlsSocket::rest`]);
//! the pump then reads it on its moderation timer and puts it back ([`DtlsSocket::watch`]) as
//! soon as a read finds the flow sparse again, so pings and interactive traffic still wake the
//! worker at once. A datagram that arrives while the socket goes back into epoll is not missed:
//! registering reports a socket that is already readable.
//!
//! Only reads depend on the state; sends always go straight to the descriptor.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::udp_mmsg::{self, Received, BURST};

/// The socket and whether the reactor watches it.
pub struct DtlsSocket {
    state: State,
    /// Which of main's hand-overs this socket came with (1 = the first `ToWorker::Udp`): the
    /// worker's state report names the session's, and main knows each one's client address.
    flow: u32,
}

enum State {
    /// In epoll (readable interest only: write-space events would be wake-ups for nothing,
    /// sends never wait).
    Watched(AsyncFd<UdpSocket>),
    /// Out of epoll: read when the pump says so.
    Resting(UdpSocket),
}

impl DtlsSocket {
    /// Take main's socket, make it non-blocking (fcntl, not ioctl: the sandbox allows only the
    /// former) and register it with the reactor.
    pub fn adopt(fd: OwnedFd, flow: u32) -> io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
        let socket = UdpSocket::from(fd);
        let state = crate::fds::register_readable(socket)
            .map(State::Watched)
            .map_err(|err| err.into_parts().1)?;
        Ok(Self { state, flow })
    }

    /// Which hand-over of main's this socket came with.
    pub fn flow(&self) -> u32 {
        self.flow
    }

    /// Whether the socket is out of epoll.
    pub fn is_resting(&self) -> bool {
        matches!(self.state, State::Resting(_))
    }

    /// Resolves when the watched socket has something to read; never while it rests.
    pub async fn readable(&self) -> io::Result<()> {
        match &self.state {
            State::Watched(fd) => fd.readable().await.map(drop),
            State::Resting(_) => std::future::pending().await,
        }
    }

    /// Read up to [`BURST`] datagrams into the slots of `buf`; `WouldBlock` when none waits
    /// (which also tells the reactor to wait for the next edge).
    pub fn recv_burst(
        &self,
        buf: &mut [u8],
        slot_len: usize,
        out: &mut [Received; BURST],
    ) -> io::Result<usize> {
        match &self.state {
            State::Watched(fd) => fd.try_io(Interest::READABLE, |socket| {
                udp_mmsg::recv_burst(socket.as_fd(), buf, slot_len, out)
            }),
            State::Resting(socket) => udp_mmsg::recv_burst(socket.as_fd(), buf, slot_len, out),
        }
    }

    /// Take the socket out of epoll (a bulk flow: the pump reads it on a timer).
    pub fn rest(self) -> Self {
        let flow = self.flow;
        match self.state {
            State::Watched(fd) => Self {
                state: State::Resting(fd.into_inner()),
                flow,
            },
            resting @ State::Resting(_) => Self {
                state: resting,
                flow,
            },
        }
    }

    /// Put the socket back into epoll (the flow went sparse). If the reactor refuses it, the
    /// socket stays resting (and is still read on the pump's timer) and the error is returned for
    /// the log.
    pub fn watch(self) -> (Self, Option<io::Error>) {
        let flow = self.flow;
        match self.state {
            State::Resting(socket) => match crate::fds::register_readable(socket) {
                Ok(fd) => (
                    Self {
                        state: State::Watched(fd),
                        flow,
                    },
                    None,
                ),
                Err(err) => {
                    let (socket, err) = err.into_parts();
                    (
                        Self {
                            state: State::Resting(socket),
                            flow,
                        },
                        Some(err),
                    )
                }
            },
            watched @ State::Watched(_) => (
                Self {
                    state: watched,
                    flow,
                },
                None,
            ),
        }
    }
}

impl AsFd for DtlsSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.state {
            State::Watched(fd) => fd.get_ref().as_fd(),
            State::Resting(socket) => socket.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (DtlsSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        (DtlsSocket::adopt(OwnedFd::from(a), 1).unwrap(), b)
    }

    fn read(socket: &DtlsSocket) -> io::Result<usize> {
        let mut buf = vec![0u8; 4 * 2048];
        let mut got = [Received {
            slot: 0,
            len: 0,
            truncated: false,
        }; BURST];
        socket.recv_burst(&mut buf, 2048, &mut got)
    }

    #[tokio::test]
    async fn a_resting_socket_is_read_without_the_reactor_and_watched_again_sees_what_waits() {
        let (socket, peer) = pair();
        peer.send(b"one").unwrap();
        tokio::time::timeout(Duration::from_secs(5), socket.readable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read(&socket).unwrap(), 1);

        let socket = socket.rest();
        assert!(socket.is_resting());
        // Never ready while resting, though a datagram waits; a direct read still gets it.
        peer.send(b"two").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), socket.readable())
                .await
                .is_err()
        );
        assert_eq!(read(&socket).unwrap(), 1);
        assert_eq!(read(&socket).unwrap_err().kind(), io::ErrorKind::WouldBlock);

        // A datagram that arrived while resting wakes the watched socket at once.
        peer.send(b"three").unwrap();
        let (socket, err) = socket.watch();
        assert!(err.is_none());
        assert!(!socket.is_resting());
        tokio::time::timeout(Duration::from_secs(5), socket.readable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read(&socket).unwrap(), 1);
    }
}
