//! The real openconnect client, run inside the client namespace.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::lab::Lab;
use crate::output::Output;

/// How to log in.
#[derive(Default, Clone)]
pub struct ClientOptions {
    pub user: Option<String>,
    /// Fed with `--passwd-on-stdin` (one line per prompt).
    pub password: Option<String>,
    /// Fed with `--cookie-on-stdin` instead of a password.
    pub cookie: Option<String>,
    pub extra: Vec<String>,
    /// The server URL instead of [`Lab::url`] (e.g. a vhost name with `--resolve` in `extra`).
    pub url: Option<String>,
    /// The `--servercert` pin instead of the lab's certificate's.
    pub servercert: Option<String>,
}

impl ClientOptions {
    pub fn password(user: &str, password: &str) -> Self {
        Self {
            user: Some(user.to_owned()),
            password: Some(password.to_owned()),
            ..Self::default()
        }
    }

    pub fn cookie(cookie: &str) -> Self {
        Self {
            cookie: Some(cookie.to_owned()),
            ..Self::default()
        }
    }
}

/// What the client's script reported when the tunnel came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Up {
    pub reason: String,
    pub address: String,
    pub device: String,
    pub mtu: u32,
}

/// A running openconnect.
pub struct Client {
    child: Child,
    events: OwnedFd,
    pending: String,
    output: Output,
    pub device: String,
}

impl Client {
    pub fn start(lab: &Lab, opts: &ClientOptions) -> Self {
        Self::start_in(lab, &lab.cli, opts)
    }

    /// Start openconnect in namespace `ns` (a second client namespace a test made; it must
    /// reach the lab's server address).
    pub fn start_in(lab: &Lab, ns: &crate::netns::Netns, opts: &ClientOptions) -> Self {
        let tag = crate::unique_tag();
        let device = format!("oc{tag}");
        let fifo = lab.dir.join(format!("events-{tag}"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Read-write so that open never blocks and we never see EOF between script runs.
        let events: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&fifo)
            .expect("open fifo")
            .into();
        let mut cmd = ns.command("env");
        cmd.arg(format!("E2E_FIFO={}", fifo.display()))
            .arg(format!("E2E_ROUTE={}", lab.vpn_server_ip))
            .arg(format!("E2E_ROUTE6={}", crate::lab::VPN_SERVER_IP6))
            .arg("openconnect")
            .args([
                "--protocol=anyconnect",
                "--non-inter",
                "--servercert",
                opts.servercert.as_deref().unwrap_or(&lab.pki.pin),
            ])
            .arg(format!("--script={}", lab.script.display()))
            .arg(format!("--interface={device}"));
        if let Some(user) = &opts.user {
            cmd.arg(format!("--user={user}"));
        }
        if opts.password.is_some() {
            cmd.arg("--passwd-on-stdin");
        }
        if opts.cookie.is_some() {
            cmd.arg("--cookie-on-stdin");
        }
        cmd.args(&opts.extra)
            .arg(opts.url.clone().unwrap_or_else(|| lab.url()));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openconnect");
        if let Some(mut stdin) = child.stdin.take() {
            let line = opts
                .password
                .as_deref()
                .or(opts.cookie.as_deref())
                .unwrap_or("");
            let _ = writeln!(stdin, "{line}");
        }
        let output = Output::capture(&mut child, "client");
        Self {
            child,
            events,
            pending: String::new(),
            output,
            device,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the script reports the tunnel configured (`connect` or `reconnect`).
    pub fn wait_up(&mut self, timeout: Duration) -> Result<Up, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=pos).collect();
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [reason, address, device, mtu] = f.as_slice() {
                    return Ok(Up {
                        reason: (*reason).to_owned(),
                        address: (*address).to_owned(),
                        device: (*device).to_owned(),
                        mtu: mtu.parse().unwrap_or(0),
                    });
                }
                continue;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "openconnect exited ({status}) before the tunnel came up:\n{}",
                    self.output()
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "tunnel not up within {timeout:?}:\n{}",
                    self.output()
                ));
            }
            // Wake at least every 200 ms to notice a client that exited.
            let ms = u16::try_from(left.as_millis().min(200)).unwrap_or(200);
            let mut fds = [PollFd::new(self.events.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
                let mut buf = [0u8; 512];
                let mut file = std::fs::File::from(self.events.try_clone().expect("dup"));
                if let Ok(n) = file.read(&mut buf) {
                    self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }
    }

    /// Everything openconnect printed so far.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Wait until openconnect printed `needle`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        self.output.wait_for(0, needle, timeout).map(|_| ())
    }

    /// Number of output lines so far (to wait only for lines that come later).
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Like [`Self::wait_for_output`], ignoring the first `skip` lines; returns the line.
    pub fn wait_for_output_after(
        &self,
        skip: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        self.output.wait_for(skip, needle, timeout)
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid() as i32), signal);
    }

    /// Wait for openconnect to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        crate::output::wait_exit(&mut self.child, timeout)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(Signal::SIGINT);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Run openconnect `--authenticate` and return the cookie it printed.
pub fn authenticate(lab: &Lab, user: &str, password: &str) -> Result<String, String> {
    authenticate_at(lab, &lab.url(), user, password)
}

/// [`authenticate`] against the server at `url` (e.g. a cluster node's).
pub fn authenticate_at(lab: &Lab, url: &str, user: &str, password: &str) -> Result<String, String> {
    let mut cmd = lab.cli.command("openconnect");
    cmd.args([
        "--protocol=anyconnect",
        "--non-inter",
        "--servercert",
        &lab.pki.pin,
        "--passwd-on-stdin",
        "--authenticate",
    ])
    .arg(format!("--user={user}"))
    .arg(url);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openconnect");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{password}");
    }
    let out = child
        .wait_with_output()
        .expect("openconnect --authenticate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "--authenticate failed ({}):\n{stdout}\n{stderr}",
            out.status
        ));
    }
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("COOKIE=")
                .map(|v| v.trim_matches('\'').to_owned())
        })
        .ok_or_else(|| format!("no COOKIE= in output:\n{stdout}\n{stderr}"))
}

/// Run openconnect to completion with a password and return (exit status, output).
pub fn run_to_exit(
    lab: &Lab,
    user: &str,
    password: &str,
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    let mut client = Client::start(lab, &ClientOptions::password(user, password));
    let status = client.wait_exit(timeout);
    (status, client.output())
}
