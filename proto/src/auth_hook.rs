//! The `script` authentication hook's two texts (ours, doc/config.md "The script
//! authentication hook"): the environment main gives the executable, and the answer a deferred
//! hook writes to its control file, which sec-mod parses here (sans-IO; fuzz target
//! `auth_hook_control`). The answer's semantics follow OpenVPN's `auth_control_file` (a `1` or
//! `0` written once, OpenVPN's openvpn-plugin.h documentation); the extra lines are ours.

use std::fmt;

use crate::config::valid_group_name;
use crate::ipc::main_secmod::AuthHookRun;
use crate::policy::file::{self, PolicyFile};

/// Most bytes of a control answer sec-mod accepts (main stops reading one byte later): a
/// verdict, a group and a few per-user options, not a route table.
pub const MAX_CONTROL: usize = 8 * 1024;

/// Exit status by which a hook says "pending: the answer comes through the control file".
pub const EXIT_PENDING: i32 = 2;

/// The variable naming the control file (a FIFO in a directory only the hook's user can enter).
pub const CONTROL_VAR: &str = "ROCSERV_AUTH_CONTROL";

/// A clean `PATH`: the hook inherits nothing from main (root).
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hook's whole environment, in a fixed order. The password is not in it: main writes it
/// to the hook's stdin. Names follow the connect-script's where one exists (protocol.md §8.2).
/// Values are checked by sec-mod (no control characters); an unknown value is empty.
pub fn environment(run: &AuthHookRun, control: &str, timeout_secs: u32) -> Vec<(String, String)> {
    let facts = &run.facts;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (ip, port) = run
        .peer
        .map(|p| (p.ip().to_canonical().to_string(), p.port().to_string()))
        .unwrap_or_default();
    let cert_cn = run.cert_subject.as_deref().and_then(common_name);
    [
        ("PATH", HOOK_PATH.to_owned()),
        ("REASON", "auth".to_owned()),
        ("USERNAME", run.username.clone()),
        ("GROUPNAME", text(&run.group)),
        (
            "VHOST",
            run.vhost.clone().unwrap_or_else(|| "default".to_owned()),
        ),
        ("IP_REAL", ip),
        ("IP_REAL_PORT", port),
        ("USER_AGENT", facts.user_agent.clone()),
        ("DEVICE_ID", text(&facts.device_id)),
        ("DEVICE_PLATFORM", text(&facts.platform)),
        ("REMOTE_HOSTNAME", text(&facts.hostname)),
        ("MAC_ADDRESSES", facts.macs.join(" ")),
        ("CERT_SUBJECT", text(&run.cert_subject)),
        ("CERT_CN", cert_cn.unwrap_or_default()),
        (CONTROL_VAR, control.to_owned()),
        ("ROCSERV_AUTH_TIMEOUT", timeout_secs.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The `CN=` value of a subject written `CN=a,O=b` (RFC 4514 order or not); `None` if absent.
fn common_name(subject: &str) -> Option<String> {
    subject
        .split([',', '/'])
        .filter_map(|rdn| rdn.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("CN"))
        .map(|(_, v)| v.trim().to_owned())
}

/// What a hook answered through its control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `1`: accepted, with an optional group and per-user options (`explicit-ipv4`, routes...).
    Accept {
        group: Option<String>,
        policy: Option<Box<PolicyFile>>,
    },
    /// `0`: refused.
    Refuse,
}

/// Why an answer is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// Nothing was written.
    Empty,
    /// More than [`MAX_CONTROL`] bytes.
    TooLarge,
    /// Not UTF-8.
    NotText,
    /// The first line is not `1` or `0`.
    BadVerdict,
    /// `group=` is not a group name, or given twice.
    BadGroup,
    /// A per-user option line is wrong (the diagnostic).
    Options(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the control file is empty"),
            Self::TooLarge => write!(f, "the control file holds more than {MAX_CONTROL} bytes"),
            Self::NotText => f.write_str("the control file is not UTF-8 text"),
            Self::BadVerdict => f.write_str("the control file's first line is not `1` or `0`"),
            Self::BadGroup => f.write_str("the control file's `group=` is not one group name"),
            Self::Options(why) => write!(f, "the control file's options: {why}"),
        }
    }
}

/// Parse a control answer: a first line `1` (accept) or `0` (refuse); after a `1`, optionally
/// one `group = NAME` line and per-user file lines (`policy::file::parse`). Anything wrong
/// refuses the login (the caller turns an error into a refusal).
pub fn parse_control(bytes: &[u8]) -> Result<Answer, ControlError> {
    if bytes.len() > MAX_CONTROL {
        return Err(ControlError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ControlError::NotText)?;
    if text.trim().is_empty() {
        return Err(ControlError::Empty);
    }
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    match first.trim() {
        "0" => return Ok(Answer::Refuse),
        "1" => {}
        _ => return Err(ControlError::BadVerdict),
    }
    let mut group = None;
    // The group line is blanked, not removed, so that diagnostics keep their line numbers.
    // The verdict's line too: line numbers are the control file's.
    let mut options = String::with_capacity(rest.len().saturating_add(1));
    options.push('\n');
    for line in rest.split('\n') {
        let name = line.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
        match name {
            Some(("group", value)) => {
                let value = value.trim_matches('"');
                if group.is_some() || !valid_group_name(value) {
                    return Err(ControlError::BadGroup);
                }
                group = Some(value.to_owned());
            }
            _ => options.push_str(line),
        }
        options.push('\n');
    }
    let parsed = file::parse(&options, "auth hook answer");
    if let Some(error) = parsed.first_error() {
        return Err(ControlError::Options(error.to_string()));
    }
    let policy = (parsed.file != PolicyFile::default()).then(|| Box::new(parsed.file));
    Ok(Answer::Accept { group, policy })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::worker_secmod::ClientFacts;

    #[test]
    fn verdicts() {
        assert_eq!(
            parse_control(b"1\n"),
            Ok(Answer::Accept {
                group: None,
                policy: None
            })
        );
        assert_eq!(
            parse_control(b"1"),
            Ok(Answer::Accept {
                group: None,
                policy: None
            })
        );
        assert_eq!(parse_control(b"0\n"), Ok(Answer::Refuse));
        assert_eq!(parse_control(b"0\ngroup = [bad\n"), Ok(Answer::Refuse));
        assert_eq!(parse_control(b""), Err(ControlError::Empty));
        assert_eq!(parse_control(b" \n\n"), Err(ControlError::Empty));
        for bad in [&b"yes\n"[..], b"10\n", b"group=x\n1\n", b"\n1\n", b"1 0\n"] {
            assert_eq!(parse_control(bad), Err(ControlError::BadVerdict), "{bad:?}");
        }
        assert_eq!(parse_control(b"1\n\xff\n"), Err(ControlError::NotText));
        let big = vec![b'#'; MAX_CONTROL + 1];
        assert_eq!(parse_control(&big), Err(ControlError::TooLarge));
    }

    #[test]
    fn group_address_and_options() {
        let answer =
            parse_control(b"1\ngroup = staff\nexplicit-ipv4 = 192.168.77.9\nroute = 10.1.0.0/16\n")
                .unwrap();
        let Answer::Accept { group, policy } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(group.as_deref(), Some("staff"));
        let policy = policy.unwrap();
        assert_eq!(policy.explicit_ipv4, Some("192.168.77.9".parse().unwrap()));
        assert!(!policy.routes.is_empty());
        for bad in [
            &b"1\ngroup = a\ngroup = b\n"[..],
            b"1\ngroup = \n",
            b"1\ngroup = a/b\n",
        ] {
            assert_eq!(parse_control(bad), Err(ControlError::BadGroup), "{bad:?}");
        }
        let bad_option = parse_control(b"1\nno-such-option = 1\n");
        assert!(
            matches!(&bad_option, Err(ControlError::Options(why)) if why.contains("answer:2:")),
            "{bad_option:?}"
        );
        assert!(matches!(
            parse_control(b"1\nexplicit-ipv4 = nope\n"),
            Err(ControlError::Options(_))
        ));
        assert!(matches!(
            parse_control(b"1\n[vhost:x]\n"),
            Err(ControlError::Options(_))
        ));
    }

    #[test]
    fn environment_has_the_facts_and_never_the_password() {
        let run = AuthHookRun {
            id: 1,
            path: "/bin/check".into(),
            username: "alice".into(),
            password: "s3cret".into(),
            group: Some("staff".into()),
            peer: Some("[::ffff:10.0.0.2]:4433".parse().unwrap()),
            vhost: None,
            facts: ClientFacts {
                user_agent: "Open AnyConnect VPN Agent v9.01".into(),
                device_id: Some("linux-64".into()),
                platform: Some("linux".into()),
                hostname: Some("laptop".into()),
                macs: vec!["00:11:22:33:44:55".into(), "66:77:88:99:aa:bb".into()],
                cert_chain: Vec::new(),
            },
            cert_subject: Some("CN=alice,O=Example".into()),
        };
        let env = environment(&run, "/run/x/control", 30);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        for (k, v) in [
            ("REASON", "auth"),
            ("USERNAME", "alice"),
            ("GROUPNAME", "staff"),
            ("VHOST", "default"),
            ("IP_REAL", "10.0.0.2"),
            ("IP_REAL_PORT", "4433"),
            ("USER_AGENT", "Open AnyConnect VPN Agent v9.01"),
            ("DEVICE_ID", "linux-64"),
            ("DEVICE_PLATFORM", "linux"),
            ("REMOTE_HOSTNAME", "laptop"),
            ("MAC_ADDRESSES", "00:11:22:33:44:55 66:77:88:99:aa:bb"),
            ("CERT_SUBJECT", "CN=alice,O=Example"),
            ("CERT_CN", "alice"),
            ("ROCSERV_AUTH_CONTROL", "/run/x/control"),
            ("ROCSERV_AUTH_TIMEOUT", "30"),
        ] {
            assert_eq!(get(k), Some(v), "{k}");
        }
        assert!(env.iter().all(|(_, v)| !v.contains("s3cret")));
        assert_eq!(common_name("/O=x/CN=bob"), Some("bob".into()));
        assert_eq!(common_name("O=x"), None);
    }
}
