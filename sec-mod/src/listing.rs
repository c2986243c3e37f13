//! The session table as occtl sees it: [`Sessions::list`] rows with their instants turned into
//! unix times (the table itself only knows monotonic time).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocserv_proto::ipc::main_secmod::SessionSummary;

use crate::sessions::Sessions;

/// Every live session, with wall-clock times derived from the current clock.
pub fn summaries(sessions: &Sessions) -> Vec<SessionSummary> {
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let to_unix = |at: Instant| -> u64 {
        if at >= now {
            unix_now.saturating_add(at.duration_since(now).as_secs())
        } else {
            unix_now.saturating_sub(now.duration_since(at).as_secs())
        }
    };
    sessions
        .list(now)
        .into_iter()
        .map(|row| SessionSummary {
            sid: row.sid,
            username: row.username,
            groupname: row.group,
            created: to_unix(row.created),
            expires: row.expires.map(to_unix),
            in_use: row.in_use,
            opened: row.opened,
        })
        .collect()
}
