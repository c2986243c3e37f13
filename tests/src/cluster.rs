//! A two-node world for the cluster tests (doc/cluster.md): the [`Lab`]'s server namespace is
//! node A, a second namespace is node B, a third runs the `redis-server` the test starts, and
//! the lab's client namespace reaches both nodes.
//!
//! ```text
//!   client ns --10.231.0.0/24-- node A ns --10.233.0.0/24--+
//!       |                                                    store ns (redis-server)
//!       +-----10.232.0.0/24---- node B ns --10.234.0.0/24--+
//! ```
//!
//! Every address exists only inside the namespaces made here. The store listens on its two
//! link addresses only, in its own namespace; the test kills only the redis-server it started,
//! by PID.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::netns::{self, Netns};
use crate::server::Server;

/// Node B's address on the client's second link, and the client's.
pub const NODE_B_IP: Ipv4Addr = Ipv4Addr::new(10, 232, 0, 1);
pub const CLIENT_B_IP: Ipv4Addr = Ipv4Addr::new(10, 232, 0, 2);
/// The store's address as node A reaches it, and node A's on that link.
pub const STORE_A_IP: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 1);
pub const NODE_A_STORE_IP: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 2);
/// The store's address as node B reaches it, and node B's on that link.
pub const STORE_B_IP: Ipv4Addr = Ipv4Addr::new(10, 234, 0, 1);
pub const NODE_B_STORE_IP: Ipv4Addr = Ipv4Addr::new(10, 234, 0, 2);
/// The store's port (inside its namespace).
pub const STORE_PORT: u16 = 6379;

/// Which node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    A,
    B,
}

impl Node {
    /// The `cluster-node` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "node-a",
            Self::B => "node-b",
        }
    }

    /// The address clients connect to.
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Self::A => crate::lab::SERVER_IP,
            Self::B => NODE_B_IP,
        }
    }

    /// The server URL for openconnect.
    pub fn url(self) -> String {
        format!("https://{}/", self.ip())
    }

    fn store_ip(self) -> Ipv4Addr {
        match self {
            Self::A => STORE_A_IP,
            Self::B => STORE_B_IP,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }
}

pub struct ClusterLab {
    /// `lab.srv` is node A's namespace, `lab.cli` the client's.
    pub lab: Lab,
    /// Node B's namespace.
    pub b: Netns,
    /// The store's namespace.
    pub store_ns: Netns,
    redis: Option<Child>,
    /// Extra `redis-cli` arguments (`--tls`, credentials) for a store started with
    /// [`Self::start_store_with`].
    cli_extra: Vec<String>,
}

impl ClusterLab {
    /// The namespaces and links, the store not started yet ([`Self::start_store`]).
    pub fn new() -> Self {
        require_redis();
        let lab = Lab::new();
        let tag = crate::unique_tag();
        let b = Netns::new(format!("rocb{tag}"));
        let store_ns = Netns::new(format!("rocr{tag}"));
        netns::link(&b, NODE_B_IP, &lab.cli, CLIENT_B_IP, &format!("{tag}b"));
        netns::link(
            &store_ns,
            STORE_A_IP,
            &lab.srv,
            NODE_A_STORE_IP,
            &format!("{tag}s"),
        );
        netns::link(
            &store_ns,
            STORE_B_IP,
            &b,
            NODE_B_STORE_IP,
            &format!("{tag}t"),
        );
        Self {
            lab,
            b,
            store_ns,
            redis: None,
            cli_extra: Vec::new(),
        }
    }

    /// The namespace node `node` runs in.
    pub fn ns(&self, node: Node) -> &Netns {
        match node {
            Node::A => &self.lab.srv,
            Node::B => &self.b,
        }
    }

    /// The `cluster-store` URL node `node` uses.
    pub fn store_url(&self, node: Node) -> String {
        format!("redis://{}:{STORE_PORT}/0", node.store_ip())
    }

    /// The occtl socket of node `node` (its configuration enables occtl there).
    pub fn occtl_socket(&self, node: Node) -> PathBuf {
        self.lab.dir.join(format!("occtl-{}.socket", node.tag()))
    }

    /// A configuration for node `node`: the lab's base, in the cluster, with its own device
    /// prefix, occtl socket, pid file and session database; `overrides` as [`Lab::config`].
    pub fn config(&self, node: Node, overrides: &[(&str, &str)]) -> PathBuf {
        let dir = &self.lab.dir;
        let t = node.tag();
        let own: Vec<(String, String)> = vec![
            ("cluster-store".into(), self.store_url(node)),
            ("cluster-node".into(), node.name().into()),
            ("device".into(), format!("vpn{t}")),
            ("use-occtl".into(), "true".into()),
            (
                "occtl-socket-file".into(),
                self.occtl_socket(node).display().to_string(),
            ),
            (
                "pid-file".into(),
                dir.join(format!("rocserv-{t}.pid")).display().to_string(),
            ),
            (
                "socket-file".into(),
                dir.join(format!("rocserv-{t}.socket"))
                    .display()
                    .to_string(),
            ),
            (
                "session-db".into(),
                dir.join(format!("sessions-{t}.db")).display().to_string(),
            ),
        ];
        let mut all: Vec<(&str, &str)> =
            own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(overrides);
        self.lab.config(&all)
    }

    /// Start the store (`redis-server`, no persistence) and wait until it answers.
    pub fn start_store(&mut self) {
        self.start_store_with(&[], &[]);
    }

    /// [`Self::start_store`] with extra `redis-server` arguments (TLS, `--requirepass`,
    /// `--user`) and the `redis-cli` arguments that reach it then.
    pub fn start_store_with(&mut self, server_args: &[String], cli_args: &[String]) {
        assert!(self.redis.is_none(), "the store is already running");
        self.cli_extra = cli_args.to_vec();
        let bind = format!("{STORE_A_IP} {STORE_B_IP}");
        let child = self
            .store_ns
            .command("redis-server")
            .args([
                "--bind",
                &bind,
                "--port",
                &STORE_PORT.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(&self.lab.dir)
            .args(server_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.redis = Some(child);
        let deadline = Instant::now() + crate::WAIT;
        loop {
            let (ok, out) = self.redis_cli(&["PING"]);
            if ok && out.contains("PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer: {out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the store this lab started (SIGKILL to its PID: a crash, as far as the nodes see).
    pub fn stop_store(&mut self) {
        if let Some(mut child) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli ARGS` against the store, from its namespace: (success, output).
    pub fn redis_cli(&self, args: &[&str]) -> (bool, String) {
        let host = STORE_A_IP.to_string();
        let port = STORE_PORT.to_string();
        let mut argv = vec!["redis-cli", "-h", &host, "-p", &port, "--no-raw"];
        argv.extend(self.cli_extra.iter().map(String::as_str));
        argv.extend_from_slice(args);
        self.store_ns.exec(&argv)
    }
}

impl ClusterLab {
    /// The store's PID (the redis-server this lab started).
    pub fn store_pid(&self) -> u32 {
        self.redis.as_ref().expect("the store runs").id()
    }

    /// Freeze the store (SIGSTOP): its sockets stay open, nothing answers.
    pub fn pause_store(&self) {
        self.signal_store("-STOP");
    }

    /// Thaw it (SIGCONT).
    pub fn resume_store(&self) {
        self.signal_store("-CONT");
    }

    fn signal_store(&self, signal: &str) {
        let pid = self.store_pid().to_string();
        let ok = Command::new("kill")
            .args([signal, &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {signal} {pid}");
    }

    /// Wait until the heartbeat key of `node` exists in the store.
    pub fn wait_heartbeat(&self, node: Node, timeout: Duration) -> Result<(), String> {
        let key = format!("rocserv:node:{}", node.name());
        let deadline = Instant::now() + timeout;
        loop {
            let (_, out) = self.redis_cli(&["EXISTS", &key]);
            if out.contains("(integer) 1") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{key} missing: {out}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A TLS store: a CA and a certificate for the store's two addresses, written to the lab
    /// directory. Returns the CA file and the server arguments for a `--tls-port` of
    /// [`STORE_PORT`] + 1 beside the plain port (which [`Self::redis_cli`] keeps using).
    pub fn store_tls(&self) -> (PathBuf, Vec<String>) {
        let dir = &self.lab.dir;
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "store test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let params =
            rcgen::CertificateParams::new(vec![STORE_A_IP.to_string(), STORE_B_IP.to_string()])
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("store cert");
        let (ca_path, cert_path, key_path) = (
            dir.join("store-ca.pem"),
            dir.join("store-cert.pem"),
            dir.join("store-key.pem"),
        );
        std::fs::write(&ca_path, ca_cert.pem()).expect("write CA");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        let server = vec![
            "--tls-port".to_owned(),
            (STORE_PORT + 1).to_string(),
            "--tls-cert-file".to_owned(),
            cert_path.display().to_string(),
            "--tls-key-file".to_owned(),
            key_path.display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            ca_path.display().to_string(),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        (ca_path, server)
    }

    /// The `rediss://` URL of the TLS port of [`Self::store_tls`] for node `node`.
    pub fn store_tls_url(&self, node: Node) -> String {
        format!("rediss://{}:{}/0", node.store_ip(), STORE_PORT + 1)
    }

    /// Start node A and node B with `overrides` (the store must be running) and wait until both
    /// report the store reachable.
    pub fn start_nodes(&self, overrides: &[(&str, &str)]) -> (Server, Server) {
        let (a, b) = self.start_nodes_alone(overrides);
        wait_joined(&a);
        wait_joined(&b);
        (a, b)
    }

    /// Start node A and node B with `overrides`, ready to serve, whether or not they reach the
    /// store.
    pub fn start_nodes_alone(&self, overrides: &[(&str, &str)]) -> (Server, Server) {
        let a = Server::start(self.ns(Node::A), &self.config(Node::A, overrides));
        let b = Server::start(self.ns(Node::B), &self.config(Node::B, overrides));
        (a, b)
    }

    /// Wait until at least `n` connections listen on the bus channel (pub/sub is
    /// fire-and-forget: a message published before a node subscribed never reaches it).
    pub fn wait_bus_subscribers(&self, n: usize) {
        eventually(&format!("{n} bus subscribers"), || {
            let (_, out) = self.redis_cli(&["PUBSUB", "NUMSUB", "rocserv:bus"]);
            out.lines()
                .filter_map(|l| l.trim().strip_prefix("2) (integer) "))
                .any(|count| count.parse::<usize>().is_ok_and(|c| c >= n))
        });
    }
}

/// Wait until `server` logs that it reached the store.
pub fn wait_joined(server: &Server) {
    server
        .wait_for_log(
            "reachable: sessions, bans and leases are shared",
            crate::WAIT,
        )
        .expect("the node reached the store");
}

/// Poll `check` every 100 ms until it holds; fail naming `what` after [`crate::WAIT`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + crate::WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Default for ClusterLab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ClusterLab {
    fn drop(&mut self) {
        self.stop_store();
    }
}

/// The cluster tests need `redis-server` and `redis-cli` (Debian's `redis-server` package;
/// `.ci/run` installs it).
pub fn require_redis() {
    for tool in ["redis-server", "redis-cli"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed (.ci/run installs redis-server with apt-get)"
        );
    }
}

/// Port of a [`SlowLink`] (beside [`STORE_PORT`], in the store's namespace).
pub const SLOW_PORT: u16 = 6380;

/// A TCP relay in the store's namespace in front of the store, for one node: every byte the
/// node sends reaches the store [`SlowLink::set_delay`] later (each chunk keeps its own
/// deadline, so commands in flight overlap as on a long link: a store slow to answer but
/// answering). netem would do this, but the kernel here may not have it.
pub struct SlowLink {
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    url: String,
}

impl SlowLink {
    /// The `cluster-store` URL that goes through the relay.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Delay from now on (0: none).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ClusterLab {
    /// A [`SlowLink`] for node `node` (no delay until [`SlowLink::set_delay`]); its threads
    /// end with the connections (the store's death, the namespace's removal).
    pub fn slow_link(&self, node: Node) -> SlowLink {
        use std::io::{Read as _, Write as _};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{mpsc, Arc};

        let delay_ms = Arc::new(AtomicU64::new(0));
        let ip = node.store_ip();
        let path = self.store_ns.path();
        let (ready_tx, ready_rx) = mpsc::channel();
        let delay = Arc::clone(&delay_ms);
        std::thread::spawn(move || {
            // This thread and the ones it starts live in the store's namespace.
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let listener = TcpListener::bind((ip, SLOW_PORT)).expect("bind the slow link");
            let _ = ready_tx.send(());
            for node_side in listener.incoming() {
                let Ok(node_side) = node_side else { return };
                let Ok(store_side) = TcpStream::connect((ip, STORE_PORT)) else {
                    continue;
                };
                let _ = node_side.set_nodelay(true);
                let _ = store_side.set_nodelay(true);
                let (chunks_tx, chunks_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
                // Node -> relay: stamp each chunk with when it may go on.
                let mut from_node = node_side.try_clone().expect("clone");
                let delay = Arc::clone(&delay);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from_node.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let due =
                            Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
                        if chunks_tx.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                });
                // Relay -> store, each chunk at its time.
                let mut to_store = store_side.try_clone().expect("clone");
                std::thread::spawn(move || {
                    while let Ok((due, bytes)) = chunks_rx.recv() {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        if to_store.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    let _ = to_store.shutdown(Shutdown::Write);
                });
                // Store -> node, at once.
                let (mut from_store, mut to_node) = (store_side, node_side);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_store, &mut to_node);
                    let _ = to_node.shutdown(Shutdown::Both);
                });
            }
        });
        ready_rx
            .recv_timeout(crate::WAIT)
            .expect("the slow link listens");
        SlowLink {
            delay_ms,
            url: format!("redis://{ip}:{SLOW_PORT}/0"),
        }
    }
}
