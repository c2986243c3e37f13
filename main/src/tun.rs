//! Creating one session's tun device: point-to-point, our end = the pool's server address,
//! peer = the client's lease, netmask /32, MTU = the session's data MTU, up, non-blocking.
//! Needs CAP_NET_ADMIN (main runs as root). The device disappears when the last descriptor of
//! it closes, i.e. when the worker (which holds the only other copy) exits.
//!
//! `unsafe` here: the tun crate hands its descriptor out only as a `RawFd`, so taking ownership
//! of it needs `OwnedFd::from_raw_fd`.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd as _, FromRawFd as _, IntoRawFd as _, OwnedFd};

/// A created device: its name (as the kernel chose it) and its descriptor.
#[derive(Debug)]
pub struct TunDevice {
    pub name: String,
    pub fd: OwnedFd,
}

/// Creating the device failed.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The tun crate or the kernel refused (no /dev/net/tun, no CAP_NET_ADMIN, bad name).
    #[error("cannot create tun device")]
    Create(#[from] tun::Error),
    /// Setting O_NONBLOCK failed.
    #[error("cannot make the tun device non-blocking")]
    NonBlocking(#[source] std::io::Error),
}

/// Create `<prefix>N` with the lowest free N: the kernel expands `%d` in the name given to
/// TUNSETIFF to the lowest unused number.
pub fn create(
    prefix: &str,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    mtu: u16,
) -> Result<TunDevice, TunError> {
    let mut config = tun::Configuration::default();
    config
        .tun_name(format!("{prefix}%d"))
        .address(local)
        .destination(remote)
        .netmask(Ipv4Addr::BROADCAST)
        .mtu(mtu)
        .up();
    let device = tun::create(&config)?;
    let name = tun::AbstractDevice::tun_name(&device)?;
    let raw = device.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up ownership of this open descriptor (the device is consumed);
    // nothing else closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    crate::ipc::set_nonblocking(fd.as_fd()).map_err(TunError::NonBlocking)?;
    Ok(TunDevice { name, fd })
}
