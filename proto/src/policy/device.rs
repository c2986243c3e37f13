//! Device binding (rocserv only): `allowed-device-id` and `allowed-mac` in a per-user or
//! per-group file restrict the devices a user may log in from. sec-mod checks it at login
//! (doc/security/device.md); this module is the pure decision.
//!
//! The facts checked are what the client reported (`ClientFacts`, the worker's word): binding
//! stops a stolen password used from another, honestly reporting device; a client that lies
//! about its device id or MAC addresses passes, as with every MAC-binding server.

use super::file::PolicyFile;
use crate::ipc::worker_secmod::ClientFacts;

/// The allow-lists that apply to one login: for each list, the first file that sets it, in
/// the order the backend's answer (RADIUS, script), the user's file, the group's file (the
/// nearer one replaces, lists of different files do not add up). Empty = no restriction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binding<'a> {
    pub device_ids: &'a [String],
    pub macs: &'a [String],
}

/// Why a login does not match its binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the client sent no device id, and allowed-device-id is set")]
    NoDeviceId,
    #[error("device id not in allowed-device-id")]
    DeviceId,
    #[error("the client sent no MAC address, and allowed-mac is set")]
    NoMac,
    #[error("no MAC address in allowed-mac")]
    Mac,
}

impl<'a> Binding<'a> {
    /// The lists of `files`, nearest first (backend's answer, user's file, group's file).
    pub fn of<I>(files: I) -> Self
    where
        I: IntoIterator<Item = &'a PolicyFile> + Clone,
    {
        let first = |pick: fn(&'a PolicyFile) -> &'a [String]| {
            files
                .clone()
                .into_iter()
                .map(pick)
                .find(|list| !list.is_empty())
                .unwrap_or_default()
        };
        Self {
            device_ids: first(|f| &f.allowed_device_ids),
            macs: first(|f| &f.allowed_macs),
        }
    }

    /// Whether anything is restricted.
    pub fn is_set(&self) -> bool {
        !self.device_ids.is_empty() || !self.macs.is_empty()
    }

    /// Whether `facts` match: the device id is one of the list (ASCII case ignored: AnyConnect
    /// writes its hex ids in upper case, panels may not), and at least one reported MAC
    /// address is in the MAC list (a client reports every interface it has). Both lists must
    /// match when both are set.
    pub fn check(&self, facts: &ClientFacts) -> Result<(), Mismatch> {
        if !self.device_ids.is_empty() {
            let id = facts.device_id.as_deref().ok_or(Mismatch::NoDeviceId)?;
            if !self.device_ids.iter().any(|a| a.eq_ignore_ascii_case(id)) {
                return Err(Mismatch::DeviceId);
            }
        }
        if !self.macs.is_empty() {
            if facts.macs.is_empty() {
                return Err(Mismatch::NoMac);
            }
            // Both sides are normalised (lower case), so plain equality.
            if !facts.macs.iter().any(|m| self.macs.contains(m)) {
                return Err(Mismatch::Mac);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::file::parse;

    fn file(text: &str) -> PolicyFile {
        let parsed = parse(text, "t");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.file
    }

    fn facts(id: Option<&str>, macs: &[&str]) -> ClientFacts {
        ClientFacts {
            device_id: id.map(str::to_owned),
            macs: macs.iter().map(|m| (*m).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parsed_from_the_files() {
        let f = file(
            "allowed-device-id = 3B5C0E8F\nallowed-device-id = \"phone 2\"\n\
             allowed-mac = 00-0C-29-5E-1A-9B\nallowed-mac = 0011.2233.4455\n",
        );
        assert_eq!(f.allowed_device_ids, ["3B5C0E8F", "phone 2"]);
        assert_eq!(f.allowed_macs, ["00:0c:29:5e:1a:9b", "00:11:22:33:44:55"]);
        for bad in [
            "allowed-mac = 00:11:22:33:44\n",
            "allowed-mac = 00:00:00:00:00:00\n",
            "allowed-mac =\n",
            "allowed-device-id = \"\"\n",
        ] {
            assert!(parse(bad, "t").has_errors(), "{bad}");
        }
        let long = format!("allowed-device-id = {}\n", "x".repeat(257));
        assert!(parse(&long, "t").has_errors());
    }

    #[test]
    fn nearest_file_wins_per_list() {
        let auth = file("allowed-mac = 02:00:00:00:00:01\n");
        let user = file("allowed-device-id = U1\nallowed-mac = 02:00:00:00:00:02\n");
        let group = file("allowed-device-id = G1\n");
        let none = PolicyFile::default();
        let b = Binding::of([&auth, &user, &group]);
        assert_eq!(b.device_ids, ["U1"]);
        assert_eq!(b.macs, ["02:00:00:00:00:01"]);
        let b = Binding::of([&none, &none, &group]);
        assert_eq!((b.device_ids, b.macs.len()), (&["G1".to_owned()][..], 0));
        assert!(!Binding::of([&none, &none]).is_set());
        assert!(b.is_set());
    }

    #[test]
    fn facts_must_match() {
        let f = file("allowed-device-id = abc\nallowed-mac = 02:00:00:00:00:01\n");
        let b = Binding::of([&f]);
        assert_eq!(b.check(&facts(Some("ABC"), &["02:00:00:00:00:01"])), Ok(()));
        // One matching MAC among several is enough.
        let several = ["0a:00:00:00:00:09", "02:00:00:00:00:01"];
        assert_eq!(b.check(&facts(Some("abc"), &several)), Ok(()));
        assert_eq!(
            b.check(&facts(None, &["02:00:00:00:00:01"])),
            Err(Mismatch::NoDeviceId)
        );
        assert_eq!(
            b.check(&facts(Some("abd"), &["02:00:00:00:00:01"])),
            Err(Mismatch::DeviceId)
        );
        assert_eq!(b.check(&facts(Some("abc"), &[])), Err(Mismatch::NoMac));
        assert_eq!(
            b.check(&facts(Some("abc"), &["02:00:00:00:00:02"])),
            Err(Mismatch::Mac)
        );
        // Unset lists restrict nothing.
        assert_eq!(Binding::default().check(&facts(None, &[])), Ok(()));
    }
}
