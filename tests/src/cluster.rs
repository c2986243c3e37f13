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
        assert!(self.redis.is_none(), "the store is already running");
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
        argv.extend_from_slice(args);
        self.store_ns.exec(&argv)
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
