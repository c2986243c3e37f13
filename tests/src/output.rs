//! What a spawned process prints, captured line by line, with waits on it; and a bounded wait
//! for the process's exit. Shared by the client and server wrappers.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The lines a process wrote to stdout and stderr so far (interleaved as they arrived).
#[derive(Clone)]
pub struct Output(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Output {
    /// Start reader threads for the child's piped stdout and stderr; each line is also echoed
    /// to the test's stderr as `[label] line`.
    pub fn capture(child: &mut Child, label: &'static str) -> Self {
        let out = Self(Arc::new((Mutex::new(Vec::new()), Condvar::new())));
        let streams: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for stream in streams {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("[{label}] {line}");
                    let (lines, cv) = &*out.0;
                    lines.lock().expect("output lock").push(line);
                    cv.notify_all();
                }
            });
        }
        out
    }

    /// Number of lines so far (to wait only for lines that come later).
    pub fn len(&self) -> usize {
        self.0 .0.lock().expect("output lock").len()
    }

    /// True before the first line.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All lines so far, joined.
    pub fn text(&self) -> String {
        self.0 .0.lock().expect("output lock").join("\n")
    }

    /// Wait until a line after the first `skip` contains `needle`; returns that line.
    pub fn wait_for(&self, skip: usize, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let (lines, cv) = &*self.0;
        let mut guard = lines.lock().expect("output lock");
        loop {
            if let Some(line) = guard.iter().skip(skip).find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no line containing {needle:?} within {timeout:?}:\n{}",
                    guard.join("\n")
                ));
            }
            guard = cv
                .wait_timeout(guard, deadline - now)
                .expect("output lock")
                .0;
        }
    }
}

/// Wait at most `timeout` for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // Bounded poll: process exit has no signal we can block on here without a pidfd and
        // another thread; 20 ms granularity is ample.
        std::thread::sleep(Duration::from_millis(20));
    }
}
