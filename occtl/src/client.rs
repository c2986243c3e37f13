//! The blocking connection to main's occtl socket: one `SOCK_SEQPACKET` message per request or
//! answer (rocserv_proto::ipc::ctl), lists collected from their pages.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;
use rocserv_proto::ipc::ctl::{
    BanInfo, CtlRequest, CtlResponse, Outcome, ServerStatus, SessionInfo, UserInfo,
};
use rocserv_proto::ipc::main_secmod::SessionRecord;
use rocserv_proto::ipc::{self, IpcError, MAX_MESSAGE};

/// How long a request may wait for its answer (not `show events`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The socket could not be reached or failed.
    #[error("socket error")]
    Io(#[from] nix::Error),
    /// A message could not be encoded or decoded.
    #[error("bad message")]
    Codec(#[from] IpcError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server answered with something that does not fit the request.
    #[error("unexpected answer from the server")]
    Unexpected,
    /// The server could not do it; its reason.
    #[error("{0}")]
    Refused(String),
}

pub(crate) struct Conn {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) fn connect(path: &Path) -> Result<Self, ClientError> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let addr = UnixAddr::new(path)?;
        connect(fd.as_raw_fd(), &addr)?;
        let timeout = TimeVal::new(i64::try_from(ANSWER_TIMEOUT.as_secs()).unwrap_or(30), 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        Ok(Self {
            fd,
            // One byte more than any message, to notice an oversized one.
            buf: vec![0; MAX_MESSAGE + 1],
        })
    }

    pub(crate) fn send(&mut self, request: &CtlRequest) -> Result<(), ClientError> {
        let bytes = ipc::encode(request)?;
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Wait without a time limit from now on (`show events`).
    pub(crate) fn no_timeout(&self) -> Result<(), ClientError> {
        setsockopt(&self.fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 0))?;
        Ok(())
    }

    pub(crate) fn recv(&mut self) -> Result<CtlResponse, ClientError> {
        let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        let bytes = self.buf.get(..n).ok_or(IpcError::TooLarge(n))?;
        let answer = ipc::decode(bytes)?;
        match answer {
            CtlResponse::Done(Outcome::Failed(why)) => Err(ClientError::Refused(why)),
            other => Ok(other),
        }
    }

    pub(crate) fn status(&mut self) -> Result<ServerStatus, ClientError> {
        self.send(&CtlRequest::Status)?;
        match self.recv()? {
            CtlResponse::Status(s) => Ok(*s),
            _ => Err(ClientError::Unexpected),
        }
    }

    pub(crate) fn users(&mut self, request: CtlRequest) -> Result<Vec<UserInfo>, ClientError> {
        self.send(&request)?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                CtlResponse::Users { users, more } => {
                    all.extend(users);
                    if !more {
                        return Ok(all);
                    }
                }
                _ => return Err(ClientError::Unexpected),
            }
        }
    }

    pub(crate) fn sessions(
        &mut self,
        request: CtlRequest,
    ) -> Result<Vec<SessionInfo>, ClientError> {
        self.send(&request)?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                CtlResponse::Sessions { sessions, more } => {
                    all.extend(sessions);
                    if !more {
                        return Ok(all);
                    }
                }
                _ => return Err(ClientError::Unexpected),
            }
        }
    }

    pub(crate) fn bans(&mut self, request: CtlRequest) -> Result<Vec<BanInfo>, ClientError> {
        self.send(&request)?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                CtlResponse::Bans { bans, more } => {
                    all.extend(bans);
                    if !more {
                        return Ok(all);
                    }
                }
                _ => return Err(ClientError::Unexpected),
            }
        }
    }

    pub(crate) fn history(
        &mut self,
        request: CtlRequest,
    ) -> Result<Vec<SessionRecord>, ClientError> {
        self.send(&request)?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                CtlResponse::History { records, more } => {
                    all.extend(records);
                    if !more {
                        return Ok(all);
                    }
                }
                _ => return Err(ClientError::Unexpected),
            }
        }
    }

    /// An action; `Ok(true)` = done, `Ok(false)` = nothing matched.
    pub(crate) fn action(&mut self, request: CtlRequest) -> Result<bool, ClientError> {
        self.action_nodes(request).map(|(done, _)| done)
    }

    /// [`Self::action`], and the other cluster nodes that were told to act (none on a single
    /// node).
    pub(crate) fn action_nodes(
        &mut self,
        request: CtlRequest,
    ) -> Result<(bool, Vec<String>), ClientError> {
        self.send(&request)?;
        match self.recv()? {
            CtlResponse::Done(Outcome::Ok(_)) => Ok((true, Vec::new())),
            CtlResponse::Done(Outcome::NotFound) => Ok((false, Vec::new())),
            CtlResponse::Done(Outcome::Cluster { nodes, .. }) => Ok((true, nodes)),
            _ => Err(ClientError::Unexpected),
        }
    }
}
