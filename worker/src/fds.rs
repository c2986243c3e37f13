//! Taking ownership of the descriptors main leaves us (protocol of the brief: fd 3 = the client's
//! TCP socket, fd 4 = seqpacket to main, fd 5 = seqpacket to sec-mod). The only unsafe code of
//! the worker: claiming a raw descriptor number as an owned one, and registering an owned one with
//! the reactor.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

const CLIENT_FD: RawFd = 3;
const MAIN_FD: RawFd = 4;
const SECMOD_FD: RawFd = 5;

/// The three inherited descriptors.
#[derive(Debug)]
pub struct Inherited {
    pub client: OwnedFd,
    pub main: OwnedFd,
    pub secmod: OwnedFd,
}

/// Claim fds 3, 4 and 5. Fails if one is not open (the worker was not started by main).
pub fn take_inherited() -> Result<Inherited, nix::Error> {
    Ok(Inherited {
        client: claim(CLIENT_FD)?,
        main: claim(MAIN_FD)?,
        secmod: claim(SECMOD_FD)?,
    })
}

fn claim(fd: RawFd) -> Result<OwnedFd, nix::Error> {
    // Also proves the descriptor is open before we claim it.
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    // SAFETY: `fd` is open (checked just above) and nothing else in this process refers to it:
    // main dup2'ed it onto this number for us, and `take_inherited` claims each number once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Register main's tun fd with the tokio reactor (must run inside the runtime).
pub fn register_tun(tun: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    let file = std::fs::File::from(tun);
    // SAFETY: the `File` owns the descriptor, and the `AsyncFd` owns the `File` until it is
    // dropped (which deregisters before closing); nothing else holds or closes that number.
    Ok(unsafe { tokio::io::unix::AsyncFd::register(file) }?)
}

/// Register a UDP socket with the reactor for read readiness only (must run inside the runtime).
/// On failure the error gives the socket back (`into_parts`).
pub fn register_readable(
    socket: std::net::UdpSocket,
) -> Result<
    tokio::io::unix::AsyncFd<std::net::UdpSocket>,
    tokio::io::unix::AsyncFdRegisterError<std::net::UdpSocket>,
> {
    // SAFETY: as for `register_tun`: the `AsyncFd` owns the socket until it is dropped or taken
    // back with `into_inner` (both deregister first); nothing else closes that number.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE)
    }
}
