//! rocserv started inside the server namespace, with its log captured.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::netns::Netns;
use crate::output::Output;

/// The main process of a running server (`ip netns exec` execs, so the child *is* rocserv).
pub struct Server {
    child: Child,
    log: Output,
}

impl Server {
    /// Start `rocserv -f -d 2 -c conf` in `ns` and wait for its readiness line.
    pub fn start(ns: &Netns, conf: &Path) -> Self {
        let server = Self::spawn(ns, conf);
        if let Err(e) = server.wait_for_log("ready: listening on", crate::WAIT) {
            panic!("server did not become ready: {e}");
        }
        server
    }

    /// Start the `rocserv` at `binary` (its siblings are the `rocserv-sm` and `rocserv-worker`
    /// it runs) and wait for its readiness line.
    pub fn start_binary(ns: &Netns, conf: &Path, binary: &Path) -> Self {
        let server = Self::spawn_binary(ns, conf, binary);
        if let Err(e) = server.wait_for_log("ready: listening on", crate::WAIT) {
            panic!("server did not become ready: {e}");
        }
        server
    }

    /// Start without waiting (for tests of start-up failures).
    pub fn spawn(ns: &Netns, conf: &Path) -> Self {
        Self::spawn_binary(ns, conf, &crate::bin("rocserv"))
    }

    /// Start `cmd` (which must end up exec'ing rocserv, so that its pid is main's: e.g.
    /// `ip netns exec` + `systemd-socket-activate`), capturing its output, without waiting.
    pub fn spawn_command(mut cmd: std::process::Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rocserv");
        let log = Output::capture(&mut child, "server");
        Self { child, log }
    }

    fn spawn_binary(ns: &Netns, conf: &Path, binary: &Path) -> Self {
        let mut child = ns
            .command(binary.to_str().expect("utf-8 path"))
            .args(["-f", "-d", "2", "-c"])
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rocserv");
        let log = Output::capture(&mut child, "server");
        Self { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until a log line contains `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_for_log_after(0, needle, timeout)
    }

    /// Number of log lines so far (to wait only for lines that come later).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Like [`Self::wait_for_log`], ignoring the first `skip` lines.
    pub fn wait_for_log_after(
        &self,
        skip: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        self.log.wait_for(skip, needle, timeout)
    }

    /// All log lines so far, joined.
    /// The worker's last "tun device: read R packets in N reads, wrote W packets in M writes"
    /// line (logged when a tunnel closes), as (R, N, W, M).
    pub fn tun_counts(&self) -> Option<(u64, u64, u64, u64)> {
        let line = self.tun_line()?;
        let rest = line.split("tun device: read ").nth(1)?;
        let numbers: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        match numbers[..] {
            [r, n, w, m, ..] => Some((r, n, w, m)),
            _ => None,
        }
    }

    /// The worker's last end-of-tunnel "tun device: read ..." line.
    fn tun_line(&self) -> Option<String> {
        let text = self.log_text();
        text.lines()
            .rev()
            .find(|l| l.contains("tun device: read "))
            .map(str::to_owned)
    }

    /// After a tunnel that carried 4 MiB each way (its data checked end to end): redundant pure
    /// ACKs were dropped in both directions (ACK filtering; ~1000 towards the tun device and
    /// dozens to hundreds from it in the runs here).
    pub fn assert_acks_filtered(&self) {
        let (read, written) = self.acks_dropped().expect("ACK counts logged");
        assert!(
            read > 0 && written > 0,
            "no redundant ACK dropped: {read} read, {written} to write"
        );
    }

    /// From the same line: the redundant pure ACKs dropped (read from the tun device, and on
    /// their way to it), as (J, K).
    pub fn acks_dropped(&self) -> Option<(u64, u64)> {
        let line = self.tun_line()?;
        let rest = line.split("redundant ACKs dropped: ").nth(1)?;
        let mut numbers = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok());
        Some((numbers.next()?, numbers.next()?))
    }

    /// After a tunnel that carried 4 MiB each way: the tun device's offloads were used, i.e.
    /// reads held many segments (~11 of 64 KiB each) and writes joined some.
    pub fn assert_tun_offloads_used(&self) {
        let (read, reads, wrote, writes) = self.tun_counts().expect("tun counts logged");
        assert!(
            read > 2000 && reads * 2 < read,
            "no large reads: {read} packets in {reads} reads"
        );
        // How many segments join depends on how many wait per wake-up: any join proves it.
        assert!(
            wrote > 2000 && writes < wrote,
            "no joined writes: {wrote} packets in {writes} writes"
        );
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Wait for the process to exit (for start-up failure tests).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        crate::output::wait_exit(&mut self.child, timeout)
    }

    /// The worker processes (children of main named rocserv-worker).
    pub fn workers(&self) -> Vec<u32> {
        crate::procfs::children(self.pid())
            .into_iter()
            .filter(|pid| crate::procfs::comm(*pid).as_deref() == Some("rocserv-worker"))
            .collect()
    }

    /// Every process of ours: main and its children.
    pub fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.pid()];
        all.extend(crate::procfs::children(self.pid()));
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
