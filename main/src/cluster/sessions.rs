//! main's part of the cluster's sessions (doc/cluster.md "Sessions and cookies"): sec-mod
//! keeps the session records and the claims in the store; main only ends a tunnel whose
//! session another node took over.

use rocserv_proto::ipc::SessionId;

use crate::conn::Stop;
use crate::state::Shared;

/// Another node took the claim of `sid`: end its tunnel here as a local takeover would
/// (`EndCause::Takeover`; the session's cookie stays valid, the record stays in the store).
pub fn end_tunnel(shared: &Shared, sid: SessionId) {
    match shared.conns.worker_of_session(sid) {
        Some(worker) if shared.conns.terminate(worker, Stop::Takeover) => {
            log::info!("session {sid}: taken over by another node; ending its tunnel here");
        }
        Some(_) | None => log::debug!("session {sid}: taken over elsewhere; no tunnel here"),
    }
}
