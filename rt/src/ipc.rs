//! Thin async adapters over `SOCK_SEQPACKET` socket pairs: one `proto::ipc` message per packet,
//! descriptors beside it as `SCM_RIGHTS`. [`recv`] takes no descriptors (a plain `recv` without
//! a control buffer makes the kernel discard whatever the peer attaches): main, which uses these
//! for every edge, only sends descriptors, never accepts any. The worker, which does receive
//! descriptors from main, has its own receive (worker/src/ipc.rs).

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use rocserv_proto::ipc::{self, IpcError, MAX_MESSAGE};
use serde::{de::DeserializeOwned, Serialize};
use tokio_seqpacket::ancillary::AncillaryMessageWriter;
use tokio_seqpacket::UnixSeqpacket;

/// A message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The socket failed.
    #[error("socket error")]
    Io(#[from] std::io::Error),
    /// Encoding our message or decoding the peer's failed.
    #[error("bad message")]
    Codec(#[from] IpcError),
    /// The peer sent a packet larger than [`MAX_MESSAGE`].
    #[error("oversized message")]
    Truncated,
    /// The descriptors did not fit the control buffer (a bug: we send at most one).
    #[error("too many descriptors for one message")]
    TooManyFds,
}

/// A fresh socket pair: main's end, ready for tokio, and the end for a child (blocking, as the
/// children's blocking request/response code expects; close-on-exec until a child's `pre_exec`
/// moves it into place).
pub fn pair() -> Result<(UnixSeqpacket, OwnedFd), ChannelError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    set_nonblocking(ours.as_fd())?;
    Ok((UnixSeqpacket::try_from(ours)?, theirs))
}

/// A socket pair whose two ends both go to children (worker <-> sec-mod), blocking.
pub fn child_pair() -> Result<(OwnedFd, OwnedFd), ChannelError> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)?)
}

/// Set `O_NONBLOCK` on a descriptor (main's socket ends, the tun device handed to a worker).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let raw = fd.as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(raw, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Send one message, with `fds` attached.
pub async fn send<T: Serialize>(
    sock: &UnixSeqpacket,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ChannelError> {
    let bytes = ipc::encode(msg)?;
    if fds.is_empty() {
        sock.send(&bytes).await?;
        return Ok(());
    }
    let mut control = [0u8; 64];
    let mut ancillary = AncillaryMessageWriter::new(&mut control);
    ancillary
        .add_fds(fds.iter().copied())
        .map_err(|_| ChannelError::TooManyFds)?;
    sock.send_vectored_with_ancillary(&[IoSlice::new(&bytes)], &mut ancillary)
        .await?;
    Ok(())
}

/// Receive one message; `None` at end of stream (the peer closed or exited).
pub async fn recv<T: DeserializeOwned>(
    sock: &UnixSeqpacket,
    buf: &mut [u8; MAX_MESSAGE],
) -> Result<Option<T>, ChannelError> {
    let info = sock.recv(buf).await?;
    if info.truncated() {
        return Err(ChannelError::Truncated);
    }
    // Every message encodes to at least one byte, so an empty packet only comes from EOF.
    let Some(bytes) = buf.get(..info.bytes_read()).filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(ipc::decode(bytes)?))
}
