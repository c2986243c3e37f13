//! The worker's two IPC sockets (both SOCK_SEQPACKET, one message per packet, postcard via
//! `rocserv_proto::ipc`): the blocking request/response client for sec-mod (fd 5) and the
//! async channel to main (fd 4), which also brings the tun fd as SCM_RIGHTS.

use std::os::fd::{AsFd as _, AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{recv, send, setsockopt, sockopt, MsgFlags};
use nix::sys::time::{TimeVal, TimeValLike};
use rocserv_proto::ipc::main_worker::{ToMain, ToWorker, WorkerStart};
use rocserv_proto::ipc::worker_secmod::{AuthStep, FromSecMod, ToSecMod};
use rocserv_proto::ipc::{self, IpcError, MAX_MESSAGE};
use tokio_seqpacket::ancillary::OwnedAncillaryMessage;
use tokio_seqpacket::UnixSeqpacket;

/// A message exchange with main or sec-mod failed.
#[derive(Debug, thiserror::Error)]
pub enum IpcChannelError {
    /// The socket call failed (including a sec-mod answer that did not come in time).
    #[error("IPC socket error")]
    Io(#[from] std::io::Error),
    /// The peer closed the socket.
    #[error("IPC peer closed the connection")]
    Closed,
    /// A message did not fit the receive buffer.
    #[error("IPC message truncated")]
    Truncated,
    /// The message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] IpcError),
    /// A well-formed message that makes no sense at this point.
    #[error("unexpected IPC message: {0}")]
    Unexpected(&'static str),
    /// This worker closed the channel already ([`SecModClient::close`]).
    #[error("the sec-mod channel is closed (login phase over)")]
    Finished,
}

impl From<nix::Error> for IpcChannelError {
    fn from(err: nix::Error) -> Self {
        Self::Io(err.into())
    }
}

/// Read main's Start message from fd 4 (blocking: nothing else can happen before it).
pub fn recv_start(main: &OwnedFd) -> Result<WorkerStart, IpcChannelError> {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let n = recv(main.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    let bytes = message(&buf, n)?;
    match ipc::decode::<ToWorker>(bytes)? {
        ToWorker::Start(start) => Ok(*start),
        ToWorker::ConnectGranted(_)
        | ToWorker::ConnectRefused(_)
        | ToWorker::Terminate
        | ToWorker::Udp { .. } => Err(IpcChannelError::Unexpected("expected Start first")),
    }
}

/// The client side of `worker_secmod`: strictly one request, then one answer, blocking with a
/// receive timeout. One client per worker process, so blocking delays only this client, and
/// rustls' `Signer::sign` is synchronous anyway (the brief's design).
///
/// Used only before CONNECT: the handshake's one signature and the login. [`Self::close`] ends
/// the channel before the worker asks main for the tunnel, so the tunnel phase, where most
/// client bytes are parsed, holds no channel to the process with the key (doc/security/signing-oracle.md).
pub struct SecModClient {
    /// `None` once closed.
    fd: Mutex<Option<OwnedFd>>,
}

impl std::fmt::Debug for SecModClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecModClient")
    }
}

impl SecModClient {
    /// Wrap the (blocking) sec-mod socket; answers slower than `timeout` are errors.
    pub fn new(fd: OwnedFd, timeout: Duration) -> Result<Self, IpcChannelError> {
        let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::milliseconds(millis))?;
        Ok(Self {
            fd: Mutex::new(Some(fd)),
        })
    }

    /// Close the channel for good: every later request fails with
    /// [`IpcChannelError::Finished`], and sec-mod sees end-of-file.
    pub fn close(&self) {
        drop(self.lock().take());
    }

    /// A poisoned lock only means another request panicked; the socket itself is fine.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedFd>> {
        rocserv_rt::lock(&self.fd)
    }

    /// Send `request`, wait for the answer.
    pub fn request(&self, request: &ToSecMod) -> Result<FromSecMod, IpcChannelError> {
        let bytes = ipc::encode(request)?;
        let guard = self.lock();
        let fd = guard.as_ref().ok_or(IpcChannelError::Finished)?;
        send(fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)?;
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        Ok(ipc::decode(message(&buf, n)?)?)
    }
}

/// The login calls of the HTTP phase, behind a trait so that tests can script sec-mod.
pub trait AuthService {
    fn auth(&self, request: ToSecMod) -> Result<AuthStep, IpcChannelError>;
}

impl AuthService for SecModClient {
    fn auth(&self, request: ToSecMod) -> Result<AuthStep, IpcChannelError> {
        match self.request(&request)? {
            FromSecMod::Auth(step) => Ok(step),
            FromSecMod::Signature(_) | FromSecMod::SignFailed => Err(IpcChannelError::Unexpected(
                "signature answer to a login request",
            )),
        }
    }
}

/// The async channel to main (fd 4).
#[derive(Debug)]
pub struct MainChannel {
    socket: UnixSeqpacket,
    buf: Vec<u8>,
}

impl MainChannel {
    /// Wrap fd 4. Must run inside the tokio runtime; sets the socket non-blocking.
    pub fn new(fd: OwnedFd) -> Result<Self, IpcChannelError> {
        rocserv_rt::ipc::set_nonblocking(fd.as_fd())?;
        Ok(Self {
            socket: UnixSeqpacket::try_from(fd)?,
            buf: vec![0u8; MAX_MESSAGE + 1],
        })
    }

    pub async fn send(&self, msg: &ToMain) -> Result<(), IpcChannelError> {
        let bytes = ipc::encode(msg)?;
        self.socket.send(&bytes).await?;
        Ok(())
    }

    /// The next message, with the first file descriptor that came beside it (extra ones are
    /// closed). Cancel-safe: a message is only consumed when this returns.
    pub async fn recv(&mut self) -> Result<(ToWorker, Option<OwnedFd>), IpcChannelError> {
        let mut ancillary = [0u8; 64];
        let (info, reader) = self
            .socket
            .recv_with_ancillary(&mut self.buf, &mut ancillary)
            .await?;
        let mut fd = None;
        for msg in reader.into_messages() {
            if let OwnedAncillaryMessage::FileDescriptors(fds) = msg {
                for received in fds {
                    if fd.is_none() {
                        fd = Some(received);
                    }
                }
            }
        }
        if info.truncated() || info.ancillary_truncated() {
            return Err(IpcChannelError::Truncated);
        }
        let bytes = message(&self.buf, info.bytes_read())?;
        Ok((ipc::decode(bytes)?, fd))
    }
}

/// The received bytes of one packet, or why there are none.
fn message(buf: &[u8], n: usize) -> Result<&[u8], IpcChannelError> {
    if n == 0 {
        return Err(IpcChannelError::Closed);
    }
    if n > MAX_MESSAGE {
        return Err(IpcChannelError::Truncated);
    }
    buf.get(..n).ok_or(IpcChannelError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    #[test]
    fn close_ends_the_secmod_channel() {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let client = SecModClient::new(ours, Duration::from_secs(5)).unwrap();
        client.close();
        let request = ToSecMod::AuthContinue { answer: "x".into() };
        assert!(matches!(
            client.request(&request),
            Err(IpcChannelError::Finished)
        ));
        // sec-mod's end sees end-of-file, not a request.
        let mut buf = [0u8; 16];
        assert_eq!(
            recv(theirs.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap(),
            0
        );
    }
}
