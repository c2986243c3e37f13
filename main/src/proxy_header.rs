//! `listen-proxy-proto`: read the PROXY protocol header a load balancer writes at the start of
//! each TCP connection, before the connection is admitted (bans, caps) and a worker exists.
//!
//! Why main and not the worker (ocserv's worker parses it and reports the address to main
//! after the TLS handshake): the address is what bans, `max-pre-auth-per-ip`, logs, occtl,
//! scripts and `deny-roaming` use, and a worker's word is never an identity. So the accept
//! loop hands each new connection to a task of its own ([`read`], bounded by
//! [`HEADER_TIMEOUT`] and a cap on tasks in flight) and admits it once the header named the
//! client, exactly as a direct connection from that address. The parsing is sans-IO
//! (`rocserv_proto::proxy_proto`, fuzzed); this file only reads the bytes the parser asks for,
//! never more, so the client's first TLS bytes stay in the socket for the worker.

use std::net::SocketAddr;
use std::time::Duration;

use rocserv_proto::proxy_proto::{self, Header, Parsed};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// How long the balancer has to send the whole header (ocserv's socket timeout; the spec asks
/// for at least 3 s, to cover a TCP retransmit).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Header reads in flight when `max-pre-auth-clients` is 0 (no limit); more connections are
/// closed at accept.
pub const DEFAULT_IN_FLIGHT: usize = 1024;

/// Why a connection was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Header(#[from] proxy_proto::Error),
    #[error("no complete PROXY protocol header in time")]
    Timeout,
    #[error("closed before the end of the PROXY protocol header")]
    Closed,
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Who the connection is from and to, once the header was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The client (or, for a `LOCAL` header, the balancer itself).
    pub peer: SocketAddr,
    /// The address the client connected to (the balancer's front end), or ours for `LOCAL`.
    pub local: SocketAddr,
    /// A `LOCAL` header: the balancer's own connection (a health check).
    pub local_command: bool,
}

/// Read the header from `stream` (`socket_peer`/`socket_local`: the TCP connection's own
/// endpoints, the balancer and us), within [`HEADER_TIMEOUT`].
pub async fn read(
    stream: &mut TcpStream,
    socket_peer: SocketAddr,
    socket_local: SocketAddr,
) -> Result<Endpoints, ReadError> {
    read_within(stream, socket_peer, socket_local, HEADER_TIMEOUT).await
}

async fn read_within(
    stream: &mut TcpStream,
    socket_peer: SocketAddr,
    socket_local: SocketAddr,
    limit: Duration,
) -> Result<Endpoints, ReadError> {
    let header = tokio::time::timeout(limit, read_header(stream))
        .await
        .map_err(|_| ReadError::Timeout)??;
    Ok(endpoints(header, socket_peer, socket_local))
}

/// The endpoints a header names (addresses in canonical form: an IPv4-mapped IPv6 address
/// is the IPv4 address, as for direct connections).
pub fn endpoints(header: Header, socket_peer: SocketAddr, socket_local: SocketAddr) -> Endpoints {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    match header {
        Header::Proxied {
            source,
            destination,
            ..
        } => Endpoints {
            peer: canonical(source),
            local: canonical(destination),
            local_command: false,
        },
        Header::Local => Endpoints {
            peer: socket_peer,
            local: socket_local,
            local_command: true,
        },
    }
}

async fn read_header(stream: &mut TcpStream) -> Result<Header, ReadError> {
    let mut buf = vec![0u8; proxy_proto::MAX_HEADER];
    let mut have = 0usize;
    // Each round reads at least one byte and the parser refuses anything past MAX_HEADER, so
    // this ends within MAX_HEADER rounds.
    loop {
        let so_far = buf.get(..have).ok_or(ReadError::Closed)?;
        let want = match proxy_proto::parse(so_far)? {
            Parsed::Complete { header, .. } => return Ok(header),
            Parsed::NeedMore(n) => n,
        };
        let end = have.saturating_add(want).min(buf.len());
        let room = buf
            .get_mut(have..end)
            .filter(|r| !r.is_empty())
            .ok_or(ReadError::Header(proxy_proto::Error::V2TooLong(end)))?;
        match stream.read(room).await? {
            0 => return Err(ReadError::Closed),
            n => have = have.saturating_add(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A v1 line dribbled a few bytes at a time, the client's first bytes right behind it:
    /// the header is read and nothing of what follows.
    #[tokio::test]
    async fn reads_exactly_the_header() {
        let (mut balancer, mut server) = pair().await;
        let (peer, local) = (server.peer_addr().unwrap(), server.local_addr().unwrap());
        let line = b"PROXY TCP4 192.0.2.9 198.51.100.1 40000 443\r\n\x16\x03\x01";
        let writer = tokio::spawn(async move {
            for chunk in line.chunks(7) {
                balancer.write_all(chunk).await.unwrap();
                balancer.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            balancer
        });
        let got = read(&mut server, peer, local).await.unwrap();
        assert_eq!(got.peer, sa("192.0.2.9:40000"));
        assert_eq!(got.local, sa("198.51.100.1:443"));
        assert!(!got.local_command);
        let _balancer = writer.await.unwrap();
        let mut rest = [0u8; 3];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, [0x16, 0x03, 0x01]);
    }

    #[tokio::test]
    async fn v2_mapped_source_is_canonical_and_local_keeps_the_socket() {
        let (mut balancer, mut server) = pair().await;
        let (peer, local) = (server.peer_addr().unwrap(), server.local_addr().unwrap());
        let header = proxy_proto::encode_v2(
            sa("[::ffff:192.0.2.9]:1234"),
            sa("[2001:db8::1]:443"),
            &[0x04, 0, 1, 0],
        )
        .unwrap();
        balancer.write_all(&header).await.unwrap();
        let got = read(&mut server, peer, local).await.unwrap();
        assert_eq!(got.peer, sa("192.0.2.9:1234"));

        let (mut balancer, mut server) = pair().await;
        let (peer, local) = (server.peer_addr().unwrap(), server.local_addr().unwrap());
        let mut check = proxy_proto::V2_SIGNATURE.to_vec();
        check.extend_from_slice(&[0x20, 0, 0, 0]);
        balancer.write_all(&check).await.unwrap();
        let got = read(&mut server, peer, local).await.unwrap();
        assert_eq!(
            (got.peer, got.local, got.local_command),
            (peer, local, true)
        );
    }

    #[tokio::test]
    async fn a_tls_client_or_a_cut_header_is_refused() {
        let (mut client, mut server) = pair().await;
        let (peer, local) = (server.peer_addr().unwrap(), server.local_addr().unwrap());
        client
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .unwrap();
        let err = read(&mut server, peer, local).await.unwrap_err();
        assert!(
            matches!(err, ReadError::Header(proxy_proto::Error::Missing)),
            "{err}"
        );

        let (mut balancer, mut server) = pair().await;
        balancer.write_all(b"PROXY TCP4 192.0.2.9").await.unwrap();
        drop(balancer);
        let err = read(&mut server, peer, local).await.unwrap_err();
        assert!(matches!(err, ReadError::Closed), "{err}");
    }

    #[tokio::test]
    async fn a_silent_connection_times_out() {
        let (_quiet, mut server) = pair().await;
        let (peer, local) = (server.peer_addr().unwrap(), server.local_addr().unwrap());
        let limit = Duration::from_millis(50);
        let err = read_within(&mut server, peer, local, limit)
            .await
            .unwrap_err();
        assert!(matches!(err, ReadError::Timeout), "{err}");
    }
}
