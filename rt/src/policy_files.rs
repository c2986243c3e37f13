//! Reading the per-user and per-group files from disk (the parsing and merging are sans-IO in
//! `rocserv_proto::policy::file`). sec-mod reads them at each CONNECT; `rocserv -t` checks
//! whole directories with [`check_dir`].

use std::io::Read as _;
use std::path::{Path, PathBuf};

use rocserv_proto::config::Diagnostic;
use rocserv_proto::policy::file::{self, Candidate, Locations, MAX_FILE_BYTES};
use rocserv_proto::policy::{Overrides, PolicyFile};

/// Why a login's files could not be used; the login is refused (they may restrict the user).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    BadName(#[from] file::BadName),
    #[error("{path}: cannot read: {why}")]
    Unreadable { path: String, why: String },
    /// The first error of the file (`FILE:LINE: error: OPTION: message`).
    #[error("{0}")]
    Invalid(Diagnostic),
}

/// What a login gets: the files' values, and the warnings their parsing produced.
#[derive(Debug, Default)]
pub struct Loaded {
    pub overrides: Overrides,
    pub warnings: Vec<Diagnostic>,
}

/// The group's and the user's files for one login (each, or its default when it does not
/// exist). A missing default file, an unreadable file or a bad line is an error.
pub fn load(locations: &Locations, user: &str, group: &str) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    if let Some(candidate) = locations.group(group)? {
        loaded.overrides.group = load_one(&candidate, &mut loaded.warnings)?;
    }
    if let Some(candidate) = locations.user(user)? {
        loaded.overrides.user = load_one(&candidate, &mut loaded.warnings)?;
    }
    Ok(loaded)
}

fn load_one(
    candidate: &Candidate,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Option<Box<PolicyFile>>, LoadError> {
    let text = match &candidate.file {
        Some(path) => read(path, true)?.map(|t| (t, path)),
        None => None,
    };
    let text = match (text, &candidate.fallback) {
        (Some(found), _) => Some(found),
        (None, Some(fallback)) => read(fallback, false)?.map(|t| (t, fallback)),
        (None, None) => None,
    };
    let Some((text, path)) = text else {
        return Ok(None);
    };
    let parsed = file::parse(&text, &path.display().to_string());
    if let Some(error) = parsed.first_error() {
        return Err(LoadError::Invalid(error.clone()));
    }
    warnings.extend(parsed.diagnostics);
    Ok(Some(Box::new(parsed.file)))
}

/// The text of `path`; `None` when it does not exist and `may_be_missing`. A directory, a
/// file over [`MAX_FILE_BYTES`] or one that is not UTF-8 is an error.
pub fn read(path: &Path, may_be_missing: bool) -> Result<Option<String>, LoadError> {
    let unreadable = |why: String| LoadError::Unreadable {
        path: path.display().to_string(),
        why,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if may_be_missing && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
        return Err(unreadable(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| unreadable("not UTF-8 text".to_owned()))
}

/// `rocserv -t`: every diagnostic of every file in the configured directories and of the
/// default files, plus a line for each one that cannot be read. Files whose names no login
/// could use (hidden files, editor backups ending in `~`) are skipped.
pub fn check_all(locations: &Locations) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [&locations.per_user_dir, &locations.per_group_dir]
        .into_iter()
        .flatten()
    {
        check_dir(dir, &mut out);
    }
    for path in [&locations.default_user, &locations.default_group]
        .into_iter()
        .flatten()
    {
        check_file(path, &mut out);
    }
    out
}

fn check_dir(dir: &Path, out: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            return out.push(format!(
                "{}: error: cannot read directory: {e}",
                dir.display()
            ))
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with('~'))
        })
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            continue;
        }
        check_file(&path, out);
    }
}

fn check_file(path: &Path, out: &mut Vec<String>) {
    match read(path, false) {
        Ok(Some(text)) => {
            let parsed = file::parse(&text, &path.display().to_string());
            out.extend(parsed.diagnostics.iter().map(ToString::to_string));
        }
        Ok(None) => {}
        Err(e) => out.push(format!("{}: error: {e}", path.display())),
    }
}

/// True when a line of [`check_all`]'s output is an error.
pub fn is_error(line: &str) -> bool {
    line.contains(": error: ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("rocserv-rt-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("users")).unwrap();
            std::fs::create_dir_all(p.join("groups")).unwrap();
            Self(p)
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::write(&p, text).unwrap();
            p
        }
        fn locations(&self) -> Locations {
            Locations {
                per_user_dir: Some(self.0.join("users")),
                per_group_dir: Some(self.0.join("groups")),
                default_user: None,
                default_group: None,
            }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_files_are_no_override_and_defaults_stand_in() {
        let d = Dir::new("defaults");
        let mut loc = d.locations();
        let got = load(&loc, "alice", "staff").unwrap();
        assert_eq!(got.overrides, Overrides::default());
        loc.default_user = Some(d.write("user.conf", "dpd = 7\n"));
        loc.default_group = Some(d.write("group.conf", "dpd = 8\n"));
        let got = load(&loc, "alice", "staff").unwrap();
        assert_eq!(got.overrides.user.unwrap().dpd, Some(7));
        assert_eq!(got.overrides.group.unwrap().dpd, Some(8));
        // No group: neither the group file nor default-group-config (as ocserv).
        let got = load(&loc, "alice", "").unwrap();
        assert!(got.overrides.group.is_none());
        // The user's own file wins over the default.
        d.write("users/alice", "dpd = 9\n");
        let got = load(&loc, "alice", "staff").unwrap();
        assert_eq!(got.overrides.user.unwrap().dpd, Some(9));
        // A configured default that is missing refuses (fail closed).
        loc.default_user = Some(d.0.join("nope.conf"));
        assert!(load(&loc, "bob", "staff").is_err());
    }

    #[test]
    fn bad_line_unreadable_or_bad_name_refuse() {
        let d = Dir::new("refuse");
        let loc = d.locations();
        d.write("groups/staff", "dpd = 1\nbogus = 2\n");
        let err = load(&loc, "alice", "staff").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "groups/staff:2: error: bogus: not an option of per-user or per-group files"
            ),
            "{err}"
        );
        std::fs::create_dir_all(d.0.join("users/dir")).unwrap();
        assert!(matches!(
            load(&loc, "dir", ""),
            Err(LoadError::Unreadable { .. })
        ));
        std::fs::write(d.0.join("users/bin"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            load(&loc, "bin", ""),
            Err(LoadError::Unreadable { .. })
        ));
        assert!(matches!(
            load(&loc, "../groups/staff", ""),
            Err(LoadError::BadName(_))
        ));
        assert!(matches!(load(&loc, "ok", ".."), Err(LoadError::BadName(_))));
    }

    #[test]
    fn check_all_reports_every_file() {
        let d = Dir::new("check");
        let mut loc = d.locations();
        d.write("users/alice", "dpd = x\n");
        d.write("users/bob", "dpd = 1\n");
        d.write("users/.hidden", "junk\n");
        d.write("groups/g", "cgroup = a\n");
        loc.default_group = Some(d.0.join("missing.conf"));
        let out = check_all(&loc);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[0].contains("users/alice:1: error: dpd:"), "{out:?}");
        assert!(out[1].contains("groups/g:1: warning: cgroup:"), "{out:?}");
        assert!(out[2].contains("missing.conf: error:"), "{out:?}");
        assert_eq!(out.iter().filter(|l| is_error(l)).count(), 2);
    }
}
