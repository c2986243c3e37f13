//! The only unsafe code of sec-mod: adopting the socket main left on fd 3.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{getsockopt, sockopt, SockType};

/// The fd main puts sec-mod's socket on.
pub const MAIN_SOCKET_FD: RawFd = 3;

/// Take ownership of inherited `fd` after checking it is an open `SOCK_SEQPACKET` socket; it is
/// made close-on-exec and non-blocking (tokio needs the latter).
pub fn adopt_seqpacket(fd: RawFd) -> io::Result<OwnedFd> {
    // F_GETFD fails with EBADF when nothing is open there; check before claiming ownership.
    fcntl(fd, FcntlArg::F_GETFD).map_err(io::Error::from)?;
    // SAFETY: fd is open (checked above) and main hands it to this process alone; nothing else
    // in sec-mod refers to it, so this OwnedFd is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind = getsockopt(&owned, sockopt::SockType).map_err(io::Error::from)?;
    if kind != SockType::SeqPacket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is a {kind:?} socket, expected SOCK_SEQPACKET"),
        ));
    }
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    set_nonblocking(&owned)?;
    Ok(owned)
}

/// Set O_NONBLOCK on a socket received from main (tokio-seqpacket expects it).
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(raw, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}
