//! The group lists `auto-select-group` offers (ocserv `group_list` of its auth modules): the
//! groups of the password file, or the system's groups from `gid-min` up. Made once, when
//! sec-mod starts (ocserv makes it when it loads its configuration).

#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::path::Path;

use rocserv_proto::config::valid_group_name;

/// Most groups offered: the list travels in every worker's start message (64 KiB at most).
pub const MAX_GROUPS: usize = 128;

/// Every group named in the password file at `passwd`, sorted, without duplicates.
pub fn from_passwd(path: &Path) -> Result<Vec<String>, String> {
    let entries = super::plain::read_entries(path)?;
    Ok(bounded(entries.into_iter().flat_map(|e| e.groups)))
}

/// The system's groups (`getgrent`: /etc/group and any NSS source that enumerates) with a gid
/// of at least `gid_min`, sorted, without duplicates.
///
/// Call it only where nothing else walks the group database at the same time (sec-mod's start,
/// before any login runs): `getgrent` keeps its position in process-wide state.
pub fn from_system(gid_min: u32) -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: setgrent/getgrent/endgrent have no preconditions; the returned record and its
    // name stay valid until the next getgrent call, and we copy the name out before that. No
    // other code of sec-mod enumerates groups (see above), so the shared cursor is ours.
    unsafe {
        libc::setgrent();
        // Bounded: a directory with millions of groups must not stall the start.
        for _ in 0..65_536 {
            let entry = libc::getgrent();
            if entry.is_null() {
                break;
            }
            let (gid, name) = ((*entry).gr_gid, (*entry).gr_name);
            if gid >= gid_min && !name.is_null() {
                if let Ok(name) = CStr::from_ptr(name).to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        libc::endgrent();
    }
    bounded(names)
}

/// Sorted, unique, only names a client may ask for, at most [`MAX_GROUPS`] (with a warning).
fn bounded(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let all: BTreeSet<String> = names.into_iter().filter(|n| valid_group_name(n)).collect();
    if all.len() > MAX_GROUPS {
        log::warn!(
            "auto-select-group: {} groups found; offering the first {MAX_GROUPS} (sorted by name)",
            all.len()
        );
    }
    all.into_iter().take(MAX_GROUPS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn password_file_groups_are_listed_once_and_sorted() {
        let dir = TempDir::new();
        let path = dir.write(
            "ocpasswd",
            "a:staff,admins:$5$x$y\nb:*:$5$x$y\nc:admins, ops :$5$x$y\n",
        );
        assert_eq!(from_passwd(&path).unwrap(), ["admins", "ops", "staff"]);
        assert!(from_passwd(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn system_groups_respect_gid_min() {
        // root (gid 0) exists everywhere; no system has a group at u32::MAX.
        assert!(from_system(0).iter().any(|g| g == "root"));
        assert!(!from_system(1).iter().any(|g| g == "root"));
        assert!(from_system(u32::MAX).is_empty());
    }

    /// ocserv `unix_group_list`: a group is offered when its gid is at least `gid-min`.
    #[test]
    fn gid_min_is_inclusive() {
        let Ok(Some(group)) = nix::unistd::Group::from_name("nogroup")
            .or_else(|_| nix::unistd::Group::from_name("daemon"))
        else {
            return; // neither group on this system: root's case above covers 0
        };
        let gid = group.gid.as_raw();
        assert!(from_system(gid).contains(&group.name));
        assert!(!from_system(gid.saturating_add(1)).contains(&group.name));
    }

    #[test]
    fn the_list_is_bounded() {
        let many = (0..MAX_GROUPS + 5).map(|i| format!("g{i:04}"));
        let list = bounded(many.chain(["bad/name".to_owned(), String::new()]));
        assert_eq!(list.len(), MAX_GROUPS);
        assert_eq!(list.first().map(String::as_str), Some("g0000"));
    }
}
