//! Creating one session's tun device: point-to-point, our end = the pool's server address,
//! peer = the client's lease, netmask /32, MTU = the session's data MTU, up, non-blocking; with
//! IPv6, also our IPv6 end and a route to the client's subnet (`crate::tun_ip6`).
//! Needs CAP_NET_ADMIN (main runs as root). The device disappears when the last descriptor of
//! it closes, i.e. when the worker (which holds the only other copy) exits.
//!
//! The device is opened with `IFF_VNET_HDR` and asked for TCP segmentation and checksum
//! offloads (`TUNSETOFFLOAD`), so every packet read or written carries a `virtio_net_hdr`
//! (`rocserv_proto::offload`): a TCP sender's 64 KiB burst is one read, and the worker cuts it
//! into segments itself. A kernel that refuses the offloads still gives plain packets behind the
//! header, which the worker handles the same way.
//!
//! `unsafe` here: the tun crate hands its descriptor out only as a `RawFd`, so taking ownership
//! of it needs `OwnedFd::from_raw_fd`; `TUNSETOFFLOAD` is an ioctl the crate does not wrap.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd as _, FromRawFd as _, IntoRawFd as _, OwnedFd};

use rocserv_proto::ipc::main_worker::Ipv6Link;

/// A created device: its name (as the kernel chose it), its interface index (what later
/// changes address it by: names are reused, see [`crate::tun_mtu`]) and its descriptor.
#[derive(Debug)]
pub struct TunDevice {
    pub name: String,
    pub ifindex: u32,
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
    /// The new device has no interface index (it vanished at once).
    #[error("cannot read the tun device's interface index")]
    Index(#[source] nix::Error),
    /// The kernel refused the IPv6 address or route (IPv6 disabled on the host?).
    #[error("cannot set the tun device's IPv6 address or route")]
    Ipv6(#[source] std::io::Error),
}

/// Create `<prefix>N` with the lowest free N: the kernel expands `%d` in the name given to
/// TUNSETIFF to the lowest unused number. `ipv4` is (our end, the client's), absent with an
/// IPv6-only pool.
pub fn create(
    prefix: &str,
    ipv4: Option<(Ipv4Addr, Ipv4Addr)>,
    ipv6: Option<Ipv6Link>,
    mtu: u16,
) -> Result<TunDevice, TunError> {
    let mut config = tun::Configuration::default();
    config.tun_name(format!("{prefix}%d"));
    if let Some((local, remote)) = ipv4 {
        config
            .address(local)
            .destination(remote)
            .netmask(Ipv4Addr::BROADCAST);
    }
    config
        .mtu(mtu)
        .platform_config(|p| {
            p.vnet_hdr(true);
        })
        .up();
    let device = tun::create(&config)?;
    let name = tun::AbstractDevice::tun_name(&device)?;
    let raw = device.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up ownership of this open descriptor (the device is consumed);
    // nothing else closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    crate::ipc::set_nonblocking(fd.as_fd()).map_err(TunError::NonBlocking)?;
    enable_offloads(&fd, &name);
    // We hold the device's descriptor, so the name still means this device here.
    let ifindex = nix::net::if_::if_nametoindex(name.as_str()).map_err(TunError::Index)?;
    if let Some(link) = ipv6 {
        crate::tun_ip6::configure(ifindex, &link).map_err(TunError::Ipv6)?;
    }
    Ok(TunDevice { name, ifindex, fd })
}

/// What the worker can take from the kernel: partial checksums and TCP segmentation (IPv4,
/// IPv6, with ECN). Not UDP segmentation: the worker does not cut UDP.
const OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// Ask for the offloads; without them the device still works, one packet per read.
fn enable_offloads(fd: &OwnedFd, name: &str) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int of flags); the
    // descriptor is an open tun device we own.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(OFFLOADS),
        )
    };
    if rc != 0 {
        log::warn!(
            "{name}: no TCP offloads from the kernel ({}); packets are moved one by one",
            std::io::Error::last_os_error()
        );
    }
}
