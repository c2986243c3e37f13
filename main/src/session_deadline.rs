//! `session-timeout` as main enforces it, whatever the worker does: the session ends a fixed
//! time after the user logged in (sec-mod's session age; a cookie reconnect does not restart
//! it, ocserv bug #599). The worker ends the tunnel itself at that moment; main sends
//! `Terminate` a little later and kills the worker if it is still there after a bounded wait.
//! Sans-IO (`now` passed in), so the steps are unit-tested.

use std::time::Duration;

use tokio::time::Instant;

/// How long after the timeout main waits for the worker to end the tunnel itself.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How long after `Terminate` a worker may take to exit before it is killed.
pub const KILL_AFTER: Duration = Duration::from_secs(3);

/// What is left of `session-timeout` for a session `age` old (`None` = no timeout).
pub fn remaining(timeout_secs: Option<u32>, age: Duration) -> Option<Duration> {
    timeout_secs.map(|t| Duration::from_secs(t.into()).saturating_sub(age))
}

/// The remainder in whole milliseconds, as the grant carries it.
pub fn as_millis(left: Duration) -> u64 {
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
}

/// What main must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask the worker to end the tunnel (the session ends as server-terminated).
    Terminate,
    /// The worker ignored `Terminate`: kill it.
    Kill,
    Nothing,
}

/// One tunnel's deadline.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    terminate_at: Instant,
    kill_at: Option<Instant>,
}

impl Deadline {
    /// A tunnel granted at `now` with `left` of its session.
    pub fn new(now: Instant, left: Duration) -> Self {
        Self {
            terminate_at: now + left + TERMINATE_GRACE,
            kill_at: None,
        }
    }

    /// When [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        self.kill_at.unwrap_or(self.terminate_at)
    }

    /// Called at or after [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Step {
        match self.kill_at {
            Some(kill_at) if now >= kill_at => Step::Kill,
            Some(_) => Step::Nothing,
            None if now >= self.terminate_at => {
                self.kill_at = Some(now + KILL_AFTER);
                Step::Terminate
            }
            None => Step::Nothing,
        }
    }

    /// Whether the session's time is up (main sent or will send `Terminate`).
    pub fn expired(&self) -> bool {
        self.kill_at.is_some()
    }
}

/// Sleep until `wake` (a [`Deadline::poll_timeout`]), or forever without one (for `select!`).
pub async fn sleep(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainder_counts_from_the_login() {
        assert_eq!(remaining(None, Duration::from_secs(6)), None);
        assert_eq!(
            remaining(Some(10), Duration::from_secs(6)),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            remaining(Some(10), Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
        assert_eq!(as_millis(Duration::from_millis(3_500)), 3_500);
    }

    #[test]
    fn terminate_then_kill() {
        let t0 = Instant::now();
        let mut d = Deadline::new(t0, Duration::from_secs(4));
        let at = t0 + Duration::from_secs(4) + TERMINATE_GRACE;
        assert_eq!(d.poll_timeout(), at);
        assert_eq!(
            d.handle_timeout(at - Duration::from_millis(1)),
            Step::Nothing
        );
        assert!(!d.expired());
        assert_eq!(d.handle_timeout(at), Step::Terminate);
        assert!(d.expired());
        assert_eq!(d.poll_timeout(), at + KILL_AFTER);
        assert_eq!(d.handle_timeout(at + Duration::from_secs(1)), Step::Nothing);
        assert_eq!(d.handle_timeout(at + KILL_AFTER), Step::Kill);
    }
}
