//! The RADIUS client sec-mod's `radius` authentication and accounting share: radcli's
//! configuration read at start, and one request/answer exchange over UDP.
//!
//! Each exchange has its own socket, connected to the server (so the kernel drops datagrams
//! from any other address), a fresh random identifier and Request Authenticator, and a bounded
//! wait: `radius_timeout` seconds per send, at most `radius_retries` sends per server, servers in
//! the order given. It runs on the runtime without blocking a thread, so a dead server delays
//! only the login or accounting record that waits for it. Answers that fail the authenticator
//! checks are dropped and the wait goes on (a spoofed datagram cannot end it early).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rocserv_proto::radius::conf::{self, ClientConf, Secret, ServerSpec};
use rocserv_proto::radius::packet::{self, DecodeError, EncodeError, Packet, Sent};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

/// Largest configuration or servers file we read.
const MAX_FILE: u64 = 64 * 1024;
/// Most datagrams looked at while waiting for one answer (bad ones are dropped; the loop ends
/// at the deadline anyway, this bounds the work a flood can cause per send).
const MAX_DATAGRAMS_PER_SEND: usize = 64;

/// One server, resolved.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    /// As written in the configuration, for logs.
    pub name: String,
    secret: Secret,
    /// This server has sent a Message-Authenticator in an answer: from then on every Access
    /// answer of it must carry one, so a forger cannot strip it (BlastRADIUS, CVE-2024-3596)
    /// once the server is known to add it.
    signs_answers: Arc<AtomicBool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What radcli's file configures, ready to use.
#[derive(Debug)]
pub struct Client {
    pub auth: Vec<Server>,
    pub acct: Vec<Server>,
    pub nas_identifier: Option<String>,
    pub default_realm: Option<String>,
    timeout: Duration,
    sends: u32,
    bind: Option<IpAddr>,
    rng: SystemRandom,
}

/// Why an exchange produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("no server configured")]
    NoServer,
    #[error("cannot build the request")]
    Encode(#[from] EncodeError),
    #[error("the system random number generator failed")]
    Random,
    #[error("no server answered (last: {0})")]
    NoAnswer(String),
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("{}: larger than {MAX_FILE} bytes", path.display()));
    }
    Ok(text)
}

impl Client {
    /// Read and check radcli's file at `path` (and its `servers` file); host names are
    /// resolved now, once. `need_auth`/`need_acct`: which server list must not be empty.
    pub fn load(path: &Path, need_auth: bool, need_acct: bool) -> Result<Self, String> {
        let origin = path.display().to_string();
        let text = read_bounded(path)?;
        let c: ClientConf = conf::parse_conf(&text, &origin).map_err(|e| e.to_string())?;
        let servers = match &c.servers_file {
            Some(file) => {
                let text = read_bounded(file)?;
                conf::parse_servers(&text, &file.display().to_string())
                    .map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        };
        let resolve = |list: &[ServerSpec], port: u16, what: &str| -> Result<Vec<Server>, String> {
            list.iter()
                .map(|s| {
                    let secret = s
                        .secret
                        .clone()
                        .or_else(|| conf::secret_for(&servers, &s.host, s.port).cloned())
                        .ok_or_else(|| {
                            format!(
                                "{origin}: {what} {} has no shared secret (none given and none in \
                                 the servers file)",
                                s.host
                            )
                        })?;
                    let port = s.port.unwrap_or(port);
                    let addr = (s.host.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| format!("{origin}: {what} {}: {e}", s.host))?
                        .next()
                        .ok_or_else(|| format!("{origin}: {what} {} has no address", s.host))?;
                    Ok(Server {
                        addr,
                        name: format!("{}:{port}", s.host),
                        secret,
                        signs_answers: Arc::default(),
                    })
                })
                .collect()
        };
        let auth = resolve(&c.auth_servers, conf::AUTH_PORT, "authserver")?;
        let acct = resolve(&c.acct_servers, conf::ACCT_PORT, "acctserver")?;
        if need_auth && auth.is_empty() {
            return Err(format!("{origin}: no `authserver`"));
        }
        if need_acct && acct.is_empty() {
            return Err(format!("{origin}: no `acctserver`"));
        }
        Ok(Self {
            auth,
            acct,
            nas_identifier: c.nas_identifier,
            default_realm: c.default_realm,
            timeout: Duration::from_secs(u64::from(c.timeout_secs)),
            sends: c.retries.max(1),
            bind: c.bindaddr,
            rng: SystemRandom::new(),
        })
    }

    /// A client of `servers` (address, secret) for tests elsewhere in the crate.
    #[cfg(test)]
    pub fn for_tests(servers: &[(SocketAddr, &str)], timeout: Duration, sends: u32) -> Self {
        Self {
            auth: servers
                .iter()
                .map(|(addr, secret)| Server {
                    addr: *addr,
                    name: addr.to_string(),
                    secret: Secret((*secret).to_owned()),
                    signs_answers: Arc::default(),
                })
                .collect(),
            acct: Vec::new(),
            nas_identifier: None,
            default_realm: None,
            timeout,
            sends,
            bind: None,
            rng: SystemRandom::new(),
        }
    }

    /// Random bytes for identifiers and Request Authenticators (RFC 2865 §3: unpredictable).
    pub fn random<const N: usize>(&self) -> Result<[u8; N], ExchangeError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| ExchangeError::Random)?;
        Ok(out)
    }

    /// Send a request to each of `servers` in turn until one answers with a packet that passes
    /// the checks. `build(secret, id, authenticator)` makes the request for one server.
    pub async fn exchange(
        &self,
        servers: &[Server],
        build: impl Fn(&[u8], u8, [u8; 16]) -> Result<(Vec<u8>, Sent), EncodeError>,
        require_message_authenticator: bool,
    ) -> Result<Packet, ExchangeError> {
        let mut last = String::from("none tried");
        for server in servers {
            let [id] = self.random::<1>()?;
            let auth = self.random::<16>()?;
            let secret = server.secret.0.as_bytes();
            let (bytes, sent) = build(secret, id, auth)?;
            match self
                .one_server(server, &bytes, &sent, require_message_authenticator)
                .await
            {
                Ok(p) => return Ok(p),
                Err(e) => {
                    log::warn!("RADIUS server {} ({}): {e}", server.name, server.addr);
                    last = format!("{}: {e}", server.name);
                }
            }
        }
        if servers.is_empty() {
            return Err(ExchangeError::NoServer);
        }
        Err(ExchangeError::NoAnswer(last))
    }

    async fn one_server(
        &self,
        server: &Server,
        bytes: &[u8],
        sent: &Sent,
        require_ma: bool,
    ) -> Result<Packet, String> {
        let local = match (self.bind, server.addr) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            (None, SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| format!("cannot bind {local}: {e}"))?;
        sock.connect(server.addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let secret = server.secret.0.as_bytes();
        let require_ma = require_ma || server.signs_answers.load(Ordering::Relaxed);
        let mut buf = vec![0u8; packet::MAX_PACKET];
        let mut why = String::from("no answer");
        // Retransmissions keep the identifier and authenticator (RFC 5080 §2.2.1).
        for _ in 0..self.sends {
            if let Err(e) = sock.send(bytes).await {
                why = format!("send: {e}");
                continue;
            }
            let deadline = Instant::now() + self.timeout;
            for _ in 0..MAX_DATAGRAMS_PER_SEND {
                match timeout_at(deadline, sock.recv(&mut buf)).await {
                    Err(_elapsed) => {
                        why = format!("no answer within {}s", self.timeout.as_secs());
                        break;
                    }
                    Ok(Err(e)) => {
                        // ECONNREFUSED after an ICMP port unreachable: nobody listens there.
                        why = format!("receive: {e}");
                        break;
                    }
                    Ok(Ok(n)) => {
                        let datagram = buf.get(..n).unwrap_or_default();
                        match packet::decode_response(datagram, sent, secret, require_ma) {
                            Ok(p) => {
                                if p.first(packet::attr::MESSAGE_AUTHENTICATOR).is_some() {
                                    server.signs_answers.store(true, Ordering::Relaxed);
                                }
                                return Ok(p);
                            }
                            Err(
                                e
                                @ (DecodeError::Authenticator | DecodeError::MessageAuthenticator),
                            ) => {
                                log::warn!(
                                    "RADIUS server {}: dropped an answer: {e} (wrong shared \
                                     secret, or forged)",
                                    server.name
                                );
                            }
                            Err(e) => log::info!("RADIUS server {}: dropped: {e}", server.name),
                        }
                    }
                }
            }
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::radius::packet::{attr, Attribute, Code};

    fn client(servers: Vec<Server>, timeout_ms: u64, sends: u32) -> Client {
        Client {
            auth: servers,
            acct: Vec::new(),
            nas_identifier: None,
            default_realm: None,
            timeout: Duration::from_millis(timeout_ms),
            sends,
            bind: None,
            rng: SystemRandom::new(),
        }
    }

    fn server(addr: SocketAddr, secret: &str) -> Server {
        Server {
            addr,
            name: addr.to_string(),
            secret: Secret(secret.to_owned()),
            signs_answers: Arc::default(),
        }
    }

    fn request(secret: &[u8], id: u8, auth: [u8; 16]) -> Result<(Vec<u8>, Sent), EncodeError> {
        let attrs = [Attribute::text(attr::USER_NAME, "u")];
        let bytes = packet::access_request(id, &auth, &attrs, Some(b"pw"), secret, true)?;
        Ok((
            bytes,
            Sent {
                code: Code::AccessRequest,
                id,
                authenticator: auth,
            },
        ))
    }

    /// An Access-Accept for `req` signed with `secret` (RFC 2865 §3), carrying `marker` as
    /// Reply-Message.
    fn accept(req: &[u8], secret: &[u8], marker: &str) -> Vec<u8> {
        let request_authenticator: [u8; 16] = req[4..20].try_into().unwrap();
        packet::response(
            Code::AccessAccept,
            req[1],
            &request_authenticator,
            &[Attribute::text(attr::REPLY_MESSAGE, marker)],
            secret,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_forged_answer_is_dropped_and_the_real_one_taken() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            // First a forgery (signed with a guessed secret), then the server's answer.
            srv.send_to(&accept(&buf[..n], b"guess", "forged"), from)
                .await
                .unwrap();
            srv.send_to(&accept(&buf[..n], b"k", "real"), from)
                .await
                .unwrap();
        });
        let c = client(vec![server(addr, "k")], 2000, 1);
        let p = c.exchange(&c.auth, request, false).await.unwrap();
        assert_eq!(p.first(attr::REPLY_MESSAGE), Some(&b"real"[..]));
    }

    /// `accept` with a Message-Authenticator (RFC 3579 §3.2) before the Reply-Message.
    fn signed_accept(req: &[u8], secret: &[u8], marker: &str) -> Vec<u8> {
        use hmac::{Hmac, KeyInit, Mac};
        use md5::{Digest, Md5};
        let mut out = vec![2, req[1], 0, 0];
        out.extend_from_slice(&req[4..20]);
        out.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
        out.extend_from_slice(&[0; 16]);
        out.push(attr::REPLY_MESSAGE);
        out.push(u8::try_from(marker.len() + 2).unwrap());
        out.extend_from_slice(marker.as_bytes());
        let len = u16::try_from(out.len()).unwrap().to_be_bytes();
        out[2..4].copy_from_slice(&len);
        let mut mac = Hmac::<Md5>::new_from_slice(secret).unwrap();
        mac.update(&out);
        let mac: [u8; 16] = mac.finalize().into_bytes().into();
        out[22..38].copy_from_slice(&mac);
        let auth: [u8; 16] = Md5::new()
            .chain_update(&out)
            .chain_update(secret)
            .finalize()
            .into();
        out[4..20].copy_from_slice(&auth);
        out
    }

    /// Once a server signed an answer, an answer of it without a Message-Authenticator is
    /// dropped (here the unsigned one comes first and the signed one is taken).
    #[tokio::test]
    async fn a_server_that_signed_once_must_always_sign() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // First exchange: signed. Second: unsigned, then signed.
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            srv.send_to(&signed_accept(&buf[..n], b"k", "one"), from)
                .await
                .unwrap();
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            srv.send_to(&accept(&buf[..n], b"k", "unsigned"), from)
                .await
                .unwrap();
            srv.send_to(&signed_accept(&buf[..n], b"k", "signed"), from)
                .await
                .unwrap();
        });
        let c = client(vec![server(addr, "k")], 2000, 1);
        let p = c.exchange(&c.auth, request, false).await.unwrap();
        assert_eq!(p.first(attr::REPLY_MESSAGE), Some(&b"one"[..]));
        let p = c.exchange(&c.auth, request, false).await.unwrap();
        assert_eq!(p.first(attr::REPLY_MESSAGE), Some(&b"signed"[..]));
    }

    #[tokio::test]
    async fn a_silent_server_costs_timeout_times_sends_and_delays_no_one_else() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let live = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (silent_addr, live_addr) = (silent.local_addr().unwrap(), live.local_addr().unwrap());
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // Never answers; counts what it got.
            let mut got = 0;
            while let Ok((_, _)) = silent.recv_from(&mut buf).await {
                got += 1;
                assert!(got <= 2, "more sends than radius_retries");
            }
        });
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = live.recv_from(&mut buf).await {
                let _ = live.send_to(&accept(&buf[..n], b"k", "ok"), from).await;
            }
        });
        let dead = client(vec![server(silent_addr, "k")], 400, 2);
        let alive = client(vec![server(live_addr, "k")], 400, 2);
        let started = Instant::now();
        let (a, b) = tokio::join!(dead.exchange(&dead.auth, request, false), async {
            let r = alive.exchange(&alive.auth, request, false).await;
            (r, started.elapsed())
        });
        let waited = started.elapsed();
        assert!(matches!(a, Err(ExchangeError::NoAnswer(_))), "{a:?}");
        assert!(waited >= Duration::from_millis(800), "{waited:?}");
        assert!(waited < Duration::from_millis(2000), "{waited:?}");
        let (b, b_took) = b;
        assert!(b.is_ok());
        assert!(b_took < Duration::from_millis(300), "{b_took:?}");
    }
}
