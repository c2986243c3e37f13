//! Device binding at login (rocserv only, doc/security/device.md): when the user's or group's
//! file (or the backend's answer) sets `allowed-device-id` / `allowed-mac`, a login whose
//! client facts do not match is a failed login, decided here in sec-mod, not in the worker.
//!
//! The files are read for the account the backend accepted, in the link's own task, bounded
//! by [`POLICY_FILES_TIMEOUT`] (as at CONNECT): a slow disk delays only this login. The
//! CONNECT (`server::open_session`) checks the binding again with the files it reads, so an
//! edit after the login, or a cookie reused after a binding was added, cannot bypass it.

use rocserv_proto::ipc::worker_secmod::ClientFacts;
use rocserv_proto::policy::device::Binding;
use rocserv_proto::policy::file::{Locations, PolicyFile};
use rocserv_rt::policy_files;

use crate::server::POLICY_FILES_TIMEOUT;

/// Why the login may not go on.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The facts do not match the binding: a failed login (ban points).
    #[error("device not allowed: {why} ({seen})")]
    Device {
        why: rocserv_proto::policy::device::Mismatch,
        seen: String,
    },
    /// The files could not be read or are wrong: not the client's fault; the CONNECT refuses
    /// the session while they stay so, and checks the binding again.
    #[error("{0}")]
    Files(String),
}

/// Check the binding of `user` in `group` against `facts`; `granted` is the backend's own
/// policy, if any. Reads the files only when `locations` names some.
pub async fn check(
    locations: &Locations,
    user: &str,
    group: &str,
    granted: Option<&PolicyFile>,
    facts: &ClientFacts,
) -> Result<(), Refused> {
    let loaded = if locations.is_empty() {
        policy_files::Loaded::default()
    } else {
        let (locations, u, g) = (locations.clone(), user.to_owned(), group.to_owned());
        let read = tokio::time::timeout(
            POLICY_FILES_TIMEOUT,
            tokio::task::spawn_blocking(move || policy_files::load(&locations, &u, &g)),
        )
        .await;
        match read {
            Ok(Ok(Ok(loaded))) => loaded,
            Ok(Ok(Err(e))) => return Err(Refused::Files(e.to_string())),
            Ok(Err(e)) => return Err(Refused::Files(format!("reading the files failed: {e}"))),
            Err(_) => {
                return Err(Refused::Files(format!(
                    "reading the per-user/group files took more than {POLICY_FILES_TIMEOUT:?}"
                )))
            }
        }
    };
    let files = [
        granted,
        loaded.overrides.user.as_deref(),
        loaded.overrides.group.as_deref(),
    ];
    let binding = Binding::of(files.into_iter().flatten());
    binding.check(facts).map_err(|why| Refused::Device {
        why,
        seen: seen(facts),
    })
}

/// What the client reported, for the log line (sec-mod checked the shape: no control
/// characters, bounded).
pub fn seen(facts: &ClientFacts) -> String {
    let macs = if facts.macs.is_empty() {
        "none".to_owned()
    } else {
        facts.macs.join(" ")
    };
    format!(
        "device id '{}', platform '{}', MACs {macs}",
        facts.device_id.as_deref().unwrap_or("").escape_debug(),
        facts.platform.as_deref().unwrap_or("").escape_debug(),
    )
}
