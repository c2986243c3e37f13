//! Running under systemd: listening sockets passed by socket activation (`LISTEN_FDS`), the
//! readiness protocol (`NOTIFY_SOCKET`), and `listen-netns`.
//!
//! **Socket activation** (sd_listen_fds(3)): when `LISTEN_PID` is our pid, descriptors 3 to
//! 3+`LISTEN_FDS`-1 are listening sockets opened for us. As ocserv, each is sorted by its type
//! (a listening TCP socket, a UDP socket); unlike ocserv, which takes their ports as they come,
//! they must agree with the configuration: one TCP socket on `tcp-port` (and `listen-host` when
//! set), and a UDP socket on `udp-port` exactly when DTLS is configured. Anything else stops
//! the start with a message naming the descriptor, so a socket unit and a configuration that
//! disagree are found at once rather than by clients. The variables are removed from our
//! environment (children never see them) and the descriptors made close-on-exec.
//!
//! **Readiness** (sd_notify(3)): `READY=1` once sec-mod is up and every listener is open,
//! `STOPPING=1` when shutdown begins, and `STATUS=` lines, each a datagram to the `AF_UNIX`
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Written
//! here directly (a dozen lines) rather than through a crate.
#![allow(unsafe_code)]

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

use rocserv_proto::config::Config;

/// The first descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;
/// More passed sockets than this is a misconfiguration, not something to walk through.
const MAX_LISTEN_FDS: usize = 16;

/// What systemd left in our environment, taken out of it by [`take_environment`].
#[derive(Debug, Default)]
pub struct Environment {
    /// The passed sockets, or why they cannot be used; `None` when none were passed to us.
    pub listen: Option<Result<Vec<OwnedFd>, ListenError>>,
    pub notifier: Notifier,
}

/// `LISTEN_FDS` that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenError {
    #[error("LISTEN_FDS is not a number: {0:?}")]
    NotANumber(String),
    #[error("LISTEN_FDS is {0}; at most {MAX_LISTEN_FDS} sockets are accepted")]
    TooMany(usize),
    #[error("descriptor {0} named by LISTEN_FDS is not open")]
    NotOpen(RawFd),
}

/// How many descriptors `LISTEN_PID` / `LISTEN_FDS` pass to process `me` (0 when they are
/// meant for another process or absent, as sd_listen_fds(3)).
pub fn listen_count(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<usize, ListenError> {
    let for_us = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(me);
    let Some(fds) = fds.filter(|_| for_us) else {
        return Ok(0);
    };
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| ListenError::NotANumber(fds.to_owned()))?;
    if n > MAX_LISTEN_FDS {
        return Err(ListenError::TooMany(n));
    }
    Ok(n)
}

/// Read and remove `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES` and `NOTIFY_SOCKET`, and take
/// the passed descriptors. Call first thing, while the process has one thread (changing the
/// environment is not thread-safe).
pub fn take_environment() -> Environment {
    let var = |name: &str| std::env::var(name).ok();
    let (pid, fds) = (var("LISTEN_PID"), var("LISTEN_FDS"));
    let notify = std::env::var_os("NOTIFY_SOCKET");
    for name in [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
    ] {
        std::env::remove_var(name);
    }
    let listen = match listen_count(pid.as_deref(), fds.as_deref(), std::process::id()) {
        Ok(0) => None,
        Ok(n) => Some(take_fds(n)),
        Err(e) => Some(Err(e)),
    };
    Environment {
        listen,
        notifier: Notifier::new(notify.as_deref()),
    }
}

/// Own descriptors 3..3+n, close-on-exec (systemd passes them inheritable; a worker or a
/// script must never get a listening socket).
fn take_fds(n: usize) -> Result<Vec<OwnedFd>, ListenError> {
    let mut owned = Vec::with_capacity(n);
    for fd in (LISTEN_FDS_START..).take(n) {
        // SAFETY: fcntl on any number is harmless; -1 means it is not an open descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(ListenError::NotOpen(fd));
        }
        // SAFETY: as above, on an open descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        // SAFETY: the descriptor is open and, by the LISTEN_FDS protocol, ours alone: nothing
        // else in this process has taken it (we run before anything else opens a file).
        owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(owned)
}

/// What a passed descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// A TCP socket in the listening state, bound to this address.
    TcpListener(SocketAddr),
    /// A TCP socket not listening (e.g. `Accept=yes`: a connection).
    TcpNotListening,
    /// A UDP socket bound to this address.
    Udp(SocketAddr),
    /// Not an IPv4/IPv6 TCP or UDP socket.
    Other,
}

/// The sockets the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub tcp_port: u16,
    pub tcp_host: Option<IpAddr>,
    /// `(udp-port, udp-listen-host or listen-host)` when DTLS is on.
    pub udp: Option<(u16, Option<IpAddr>)>,
}

impl Wanted {
    pub fn from_config(config: &Config) -> Self {
        Self {
            tcp_port: config.tcp_port,
            tcp_host: config.listen_host,
            udp: config
                .udp_port
                .filter(|_| !config.policy.no_udp)
                .map(|p| (p, config.udp_listen_host.or(config.listen_host))),
        }
    }
}

/// The passed sockets disagree with the configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mismatch {
    #[error("descriptor {0} is not an IPv4/IPv6 TCP or UDP socket")]
    NotInternet(RawFd),
    #[error("descriptor {0} is a TCP socket that is not listening (socket units need Accept=no)")]
    NotListening(RawFd),
    #[error("descriptors {0} and {1} are both TCP sockets; rocserv serves one (use one ListenStream=, dual-stack with BindIPv6Only=default)")]
    TwoTcp(RawFd, RawFd),
    #[error("descriptors {0} and {1} are both UDP sockets; rocserv serves one")]
    TwoUdp(RawFd, RawFd),
    #[error("no listening TCP socket was passed")]
    NoTcp,
    #[error("descriptor {fd} listens on {addr} but the configuration says {option} = {want}")]
    Differs {
        fd: RawFd,
        addr: SocketAddr,
        option: &'static str,
        want: String,
    },
    #[error("udp-port is {0} but no UDP socket was passed (add ListenDatagram= to the socket unit, or set udp-port = 0)")]
    NoUdp(u16),
    #[error("descriptor {0} is a UDP socket but DTLS is off (udp-port unset or no-udp); remove ListenDatagram= or set udp-port")]
    UnwantedUdp(RawFd),
}

/// Which passed socket is the TCP listener and which (if any) the DTLS port, as indexes into
/// `passed` (descriptor `3 + index`).
pub fn assign(passed: &[Passed], wanted: &Wanted) -> Result<(usize, Option<usize>), Mismatch> {
    let fd = |i: usize| LISTEN_FDS_START.saturating_add(RawFd::try_from(i).unwrap_or(RawFd::MAX));
    let (mut tcp, mut udp) = (None::<usize>, None::<usize>);
    for (i, p) in passed.iter().enumerate() {
        match p {
            Passed::Other => return Err(Mismatch::NotInternet(fd(i))),
            Passed::TcpNotListening => return Err(Mismatch::NotListening(fd(i))),
            Passed::TcpListener(addr) => {
                if let Some(first) = tcp {
                    return Err(Mismatch::TwoTcp(fd(first), fd(i)));
                }
                check(
                    fd(i),
                    *addr,
                    wanted.tcp_port,
                    wanted.tcp_host,
                    "tcp-port",
                    "listen-host",
                )?;
                tcp = Some(i);
            }
            Passed::Udp(addr) => {
                if let Some(first) = udp {
                    return Err(Mismatch::TwoUdp(fd(first), fd(i)));
                }
                let Some((port, host)) = wanted.udp else {
                    return Err(Mismatch::UnwantedUdp(fd(i)));
                };
                check(fd(i), *addr, port, host, "udp-port", "udp-listen-host")?;
                udp = Some(i);
            }
        }
    }
    let tcp = tcp.ok_or(Mismatch::NoTcp)?;
    if let (Some((port, _)), None) = (wanted.udp, udp) {
        return Err(Mismatch::NoUdp(port));
    }
    Ok((tcp, udp))
}

fn check(
    fd: RawFd,
    addr: SocketAddr,
    port: u16,
    host: Option<IpAddr>,
    port_option: &'static str,
    host_option: &'static str,
) -> Result<(), Mismatch> {
    if addr.port() != port {
        return Err(Mismatch::Differs {
            fd,
            addr,
            option: port_option,
            want: port.to_string(),
        });
    }
    if let Some(host) = host {
        if addr.ip().to_canonical() != host.to_canonical() {
            return Err(Mismatch::Differs {
                fd,
                addr,
                option: host_option,
                want: host.to_string(),
            });
        }
    }
    Ok(())
}

/// What the kernel says a descriptor is.
pub fn describe(fd: &OwnedFd) -> Passed {
    let sock = socket2::SockRef::from(fd);
    let Ok(addr) = sock.local_addr() else {
        return Passed::Other;
    };
    let Some(addr) = addr.as_socket() else {
        return Passed::Other;
    };
    match sock.r#type() {
        Ok(t) if t == socket2::Type::STREAM => match sock.is_listener() {
            Ok(true) => Passed::TcpListener(addr),
            _ => Passed::TcpNotListening,
        },
        Ok(t) if t == socket2::Type::DGRAM => Passed::Udp(addr),
        _ => Passed::Other,
    }
}

/// The passed sockets as the TCP listener and the DTLS socket (blocking mode off), or why
/// they do not fit the configuration.
pub fn split(
    fds: Vec<OwnedFd>,
    wanted: &Wanted,
) -> Result<(std::net::TcpListener, Option<OwnedFd>), Mismatch> {
    let passed: Vec<Passed> = fds.iter().map(describe).collect();
    let (tcp, udp) = assign(&passed, wanted)?;
    let mut tcp_fd = None;
    let mut udp_fd = None;
    // The others (none, after `assign`) are closed here.
    for (i, fd) in fds.into_iter().enumerate() {
        if i == tcp {
            tcp_fd = Some(fd);
        } else if Some(i) == udp {
            udp_fd = Some(fd);
        }
    }
    let tcp_fd = tcp_fd.ok_or(Mismatch::NoTcp)?;
    Ok((std::net::TcpListener::from(tcp_fd), udp_fd))
}

/// Our end of `NOTIFY_SOCKET`; does nothing when systemd did not ask for notifications.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    fn new(name: Option<&std::ffi::OsStr>) -> Self {
        use std::os::linux::net::SocketAddrExt as _;
        use std::os::unix::ffi::OsStrExt as _;
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Self::default();
        };
        let bytes = name.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            }
            None => std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(name)),
        };
        let target = match (UnixDatagram::unbound(), addr) {
            (Ok(sock), Ok(addr)) => Some((sock, addr)),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("NOTIFY_SOCKET {name:?} unusable: {e}");
                None
            }
        };
        Self { target }
    }

    /// Send `state` (newline-separated `KEY=VALUE` lines); a failure is logged, never fatal
    /// (systemd may have stopped listening).
    pub fn notify(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            log::debug!("sd_notify {:?}: {e}", state.replace('\n', " "));
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }
}

/// A STATUS value must not break the `KEY=VALUE` lines.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `listen-netns`: the namespace to open the listening sockets in and the one to come back to.
/// Namespaces are per thread (setns(2) with CLONE_NEWNET changes the calling thread only).
#[derive(Debug)]
pub struct Netns {
    listen: File,
    home: File,
}

impl Netns {
    /// Open /run/netns/NAME and the calling thread's own namespace.
    pub fn open(name: &str) -> std::io::Result<Self> {
        let path = std::path::Path::new("/run/netns").join(name);
        let listen = File::open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let home = File::open("/proc/thread-self/ns/net")?;
        Ok(Self { listen, home })
    }

    /// Run `f` with the calling thread in the listening namespace, then come back. Coming back
    /// failing is an error too (the caller must not go on in the wrong namespace).
    pub fn within<T>(&self, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        self.enter()?;
        let result = f();
        setns(&self.home)?;
        result
    }

    /// Move the calling thread into the listening namespace for good (the UDP thread, which
    /// opens each client's socket there).
    pub fn enter(&self) -> std::io::Result<()> {
        setns(&self.listen)
    }

    /// A copy of the listening namespace's descriptor, for another thread.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            listen: self.listen.try_clone()?,
            home: self.home.try_clone()?,
        })
    }
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace descriptor we own; it affects only the calling thread's
    // network namespace and touches no memory.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const BOTH: Wanted = Wanted {
        tcp_port: 443,
        tcp_host: None,
        udp: Some((443, None)),
    };

    #[test]
    fn listen_fds_only_for_our_pid() {
        assert_eq!(listen_count(Some("42"), Some("2"), 42), Ok(2));
        assert_eq!(listen_count(Some("41"), Some("2"), 42), Ok(0));
        assert_eq!(listen_count(None, Some("2"), 42), Ok(0));
        assert_eq!(listen_count(Some("42"), None, 42), Ok(0));
        assert_eq!(
            listen_count(Some("42"), Some("two"), 42),
            Err(ListenError::NotANumber("two".into()))
        );
        assert_eq!(
            listen_count(Some("42"), Some("17"), 42),
            Err(ListenError::TooMany(17))
        );
    }

    #[test]
    fn tcp_and_udp_in_any_order() {
        let tcp = Passed::TcpListener(a("[::]:443"));
        let udp = Passed::Udp(a("[::]:443"));
        assert_eq!(assign(&[tcp, udp], &BOTH), Ok((0, Some(1))));
        assert_eq!(assign(&[udp, tcp], &BOTH), Ok((1, Some(0))));
    }

    #[test]
    fn ports_and_hosts_must_match() {
        let w = Wanted {
            tcp_port: 443,
            tcp_host: Some("10.0.0.1".parse().unwrap()),
            udp: Some((4443, Some("10.0.0.1".parse().unwrap()))),
        };
        let ok = [
            Passed::TcpListener(a("10.0.0.1:443")),
            Passed::Udp(a("[::ffff:10.0.0.1]:4443")),
        ];
        assert_eq!(assign(&ok, &w), Ok((0, Some(1))));
        let wrong_port = [Passed::TcpListener(a("10.0.0.1:8443")), ok[1]];
        assert!(matches!(
            assign(&wrong_port, &w),
            Err(Mismatch::Differs {
                fd: 3,
                option: "tcp-port",
                ..
            })
        ));
        let wrong_host = [ok[0], Passed::Udp(a("10.0.0.2:4443"))];
        assert!(matches!(
            assign(&wrong_host, &w),
            Err(Mismatch::Differs {
                fd: 4,
                option: "udp-listen-host",
                ..
            })
        ));
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let tcp = Passed::TcpListener(a("[::]:443"));
        let udp = Passed::Udp(a("[::]:443"));
        assert_eq!(assign(&[udp], &BOTH), Err(Mismatch::NoTcp));
        assert_eq!(assign(&[tcp], &BOTH), Err(Mismatch::NoUdp(443)));
        assert_eq!(assign(&[tcp, tcp], &BOTH), Err(Mismatch::TwoTcp(3, 4)));
        assert_eq!(assign(&[tcp, udp, udp], &BOTH), Err(Mismatch::TwoUdp(4, 5)));
        assert_eq!(
            assign(&[tcp, Passed::Other], &BOTH),
            Err(Mismatch::NotInternet(4))
        );
        assert_eq!(
            assign(&[Passed::TcpNotListening], &BOTH),
            Err(Mismatch::NotListening(3))
        );
        let tcp_only = Wanted { udp: None, ..BOTH };
        assert_eq!(assign(&[tcp], &tcp_only), Ok((0, None)));
        assert_eq!(
            assign(&[tcp, udp], &tcp_only),
            Err(Mismatch::UnwantedUdp(4))
        );
    }

    #[test]
    fn real_sockets_are_described() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(describe(&OwnedFd::from(l)), Passed::TcpListener(addr));
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = u.local_addr().unwrap();
        assert_eq!(describe(&OwnedFd::from(u)), Passed::Udp(addr));
        let (x, _y) = UnixDatagram::pair().unwrap();
        assert_eq!(describe(&OwnedFd::from(x)), Passed::Other);
    }

    #[test]
    fn notifications_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("rocserv-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.as_os_str()));
        n.ready("ready:\nlistening");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ready: listening");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
