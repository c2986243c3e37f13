//! One view of the cluster for occtl (doc/cluster.md "One view"), main's side: this node's
//! rows (what its own `show users` and `show sessions` print) go to sec-mod, which stores them
//! for the other nodes, every [`REFRESH`] and soon after a tunnel starts or ends; and the
//! other nodes' `disconnect`/`terminate` orders arrive here. main never talks to the store.

use std::sync::Arc;
use std::time::Duration;

use rocserv_proto::ipc::cluster::ToCluster;
use rocserv_proto::ipc::ctl::{self, SessionFilter, Target};
use tokio::sync::broadcast::error::RecvError;

use crate::state::Shared;

/// How often the rows are sent even when nothing changed (the stored copy lives 10 s).
pub const REFRESH: Duration = Duration::from_secs(3);
/// After a tunnel starts or ends, wait this long for more changes before sending.
const SETTLE: Duration = Duration::from_millis(200);

/// Start sending this node's rows (when `cluster-store` is set).
pub fn spawn(shared: &Arc<Shared>) {
    if shared.cluster.is_none() {
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut changes = shared.conns.tunnels.subscribe();
        let mut every = tokio::time::interval(REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut generation: u64 = 0;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                changed = changes.recv() => {
                    if matches!(changed, Err(RecvError::Closed)) {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                    // Everything up to now is in the rows about to be sent.
                    changes = changes.resubscribe();
                }
            }
            // While the store is down there is nowhere to write them (sec-mod says when it is
            // back; the next tick sends them).
            if !shared.cluster.as_ref().is_some_and(|c| c.store_up()) {
                continue;
            }
            generation = generation.wrapping_add(1);
            send_rows(&shared, generation).await;
        }
    });
}

/// Send this node's rows to sec-mod, in pages under the IPC message size.
async fn send_rows(shared: &Shared, generation: u64) {
    let users = crate::ctl::local_users(shared, &ctl::UserFilter::All);
    let sessions = match crate::ctl::local_sessions(shared, &SessionFilter::All).await {
        Ok(s) => s,
        Err(why) => {
            log::debug!("cluster view: no session list: {why}");
            return;
        }
    };
    let mut pages: Vec<(Vec<ctl::UserInfo>, Vec<ctl::SessionInfo>)> = Vec::new();
    for page in ctl::pages(users, ctl::PAGE_BUDGET) {
        if !page.is_empty() {
            pages.push((page, Vec::new()));
        }
    }
    for page in ctl::pages(sessions, ctl::PAGE_BUDGET) {
        if !page.is_empty() {
            pages.push((Vec::new(), page));
        }
    }
    if pages.is_empty() {
        pages.push((Vec::new(), Vec::new()));
    }
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    for (index, (users, sessions)) in (0u32..).zip(pages) {
        let page = ToCluster::ViewPage {
            generation,
            index,
            count,
            users,
            sessions,
        };
        if let Err(e) = shared.secmod.cluster_notice(page).await {
            log::debug!("cluster view: cannot send rows to sec-mod: {e}");
            return;
        }
    }
}

/// Another node's occtl asked this node to end `target` (already narrowed to this node by
/// sec-mod): done as a local occtl command would, on a task of its own.
pub fn on_end(shared: &Arc<Shared>, target: Target, terminate: bool) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let done = crate::ctl::end_here(&shared, &target, terminate).await;
        log::info!(
            "cluster: {} {target:?} for another node: {done:?}",
            if terminate { "terminate" } else { "disconnect" }
        );
    });
}
