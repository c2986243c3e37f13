//! `session-timeout` as main enforces it, whatever the worker does: the session ends a fixed
//! time after the user logged in (sec-mod's session age; a cookie reconnect does not restart
//! it, ocserv bug #599). The worker ends the tunnel itself at that moment; main ends the
//! connection a little later (the connection record's session deadline, `conn::Stop::SessionTimeout`:
//! `Terminate`, then SIGKILL after the bounded wait) if the worker did not.

use std::time::Duration;

/// How long after the timeout main waits for the worker to end the tunnel itself.
pub const WORKER_FIRST: Duration = Duration::from_secs(2);

/// What is left of `session-timeout` for a session `age` old (`None` = no timeout).
pub fn remaining(timeout_secs: Option<u32>, age: Duration) -> Option<Duration> {
    timeout_secs.map(|t| Duration::from_secs(t.into()).saturating_sub(age))
}

/// The remainder in whole milliseconds, as the grant carries it.
pub fn as_millis(left: Duration) -> u64 {
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
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
}
