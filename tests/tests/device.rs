//! Device binding (issue 11 item 5): what the client says about its device at login (device
//! id, platform, MAC addresses) reaches the connect-script's environment and occtl; with
//! `allowed-device-id` / `allowed-mac` in the user's file a login from another device fails.
//! With the real openconnect (`--os`, `--local-hostname`) and with Cisco aggregate-auth XML
//! posted directly by curl (openconnect sends no `<mac-address-list>`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;

use rocserv_e2e::lab;
use rocserv_e2e::occtl::json;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};
use serde_json::Value;

/// What openconnect 9.01 sends as `unique-id` with `--os=android` (fixed in the client).
const ANDROID_ID: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const BOUND_MAC: &str = "00:0c:29:5e:1a:9b";

struct Setup {
    server: Server,
    socket: PathBuf,
    users: PathBuf,
    /// Where the connect-script writes each login's device variables.
    markers: PathBuf,
}

/// A server with a per-user directory, occtl, and a connect-script that records the device
/// variables of each tunnel, one line per tunnel.
fn setup(lab: &Lab) -> Setup {
    let users = lab.dir.join("users");
    std::fs::create_dir_all(&users).unwrap();
    let socket = lab.dir.join("occtl.socket");
    let markers = lab.dir.join("markers");
    let script = lab.dir.join("up.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$USERNAME|$DEVICE_ID|$DEVICE_PLATFORM|$MAC_ADDRESSES|$HOSTNAME\" \
             >> {}\nexit 0\n",
            markers.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = lab.config(&[
        ("use-occtl", "true"),
        ("occtl-socket-file", socket.to_str().unwrap()),
        ("config-per-user", users.to_str().unwrap()),
        ("connect-script", script.to_str().unwrap()),
        // Many logins, some refused on purpose, from one address.
        ("max-ban-score", "0"),
    ]);
    Setup {
        server: Server::start(&lab.srv, &conf),
        socket,
        users,
        markers,
    }
}

/// The connect-script's line for `user` (the last one).
fn marker(s: &Setup, user: &str) -> Vec<String> {
    let text = std::fs::read_to_string(&s.markers).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.starts_with(&format!("{user}|")))
        .unwrap_or_else(|| panic!("no connect-script line for {user}: {text}"))
        .split('|')
        .map(str::to_owned)
        .collect()
}

/// occtl's record of the one connected `user`.
fn record(s: &Setup, user: &str) -> Value {
    let users = json(&s.socket, &["show", "user", user]);
    users
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("occtl has no {user}: {users}"))
}

fn logout(mut client: Client) {
    client.signal(nix::sys::signal::Signal::SIGINT);
    assert!(client.wait_exit(WAIT).is_some(), "openconnect did not exit");
}

fn openconnect(lab: &Lab, user: &str, extra: &[&str]) -> Client {
    let mut opts = ClientOptions::password(user, &format!("{user}-pw"));
    opts.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    Client::start(lab, &opts)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn openconnects_device_reaches_scripts_and_occtl_and_binds() {
    let lab = Lab::new();
    let s = setup(&lab);

    // --os=android: openconnect sends a device id (`unique-id`) at login and the platform in
    // `X-AnyConnect-Identifier-Platform`; --local-hostname goes in X-CSTP-Hostname.
    let mut client = openconnect(
        &lab,
        "alice",
        &["--os=android", "--local-hostname=devbox-1"],
    );
    client.wait_up(WAIT).expect("alice with --os=android");
    assert_eq!(
        marker(&s, "alice"),
        ["alice", ANDROID_ID, "android", "", "devbox-1"]
    );
    let r = record(&s, "alice");
    assert_eq!(r["Device ID"], ANDROID_ID, "{r}");
    assert_eq!(r["Device platform"], "android", "{r}");
    assert_eq!(r["Hostname"], "devbox-1", "{r}");
    assert_eq!(r["MAC addresses"], serde_json::json!([]), "{r}");
    logout(client);

    // The default --os: no device id; the platform comes from the login's <device-id>.
    let mut client = openconnect(&lab, "bob", &[]);
    client.wait_up(WAIT).expect("bob");
    let line = marker(&s, "bob");
    assert_eq!(line[1..4], ["", "linux-64", ""], "{line:?}");
    let r = record(&s, "bob");
    assert_eq!(r["Device platform"], "linux-64", "{r}");
    assert!(r.get("Device ID").is_none(), "{r}");
    logout(client);

    // carol is bound to the android id: the android client gets in, the desktop one (no
    // device id) fails like a wrong password, and the log says why.
    std::fs::write(
        s.users.join("carol"),
        format!("allowed-device-id = {}\n", ANDROID_ID.to_lowercase()),
    )
    .unwrap();
    let mut client = openconnect(&lab, "carol", &["--os=android"]);
    client.wait_up(WAIT).expect("carol from her device");
    logout(client);
    let skip = s.server.log_len();
    let mut client = openconnect(&lab, "carol", &[]);
    let status = client.wait_exit(WAIT).expect("openconnect gave up");
    assert!(!status.success(), "carol got in:\n{}", client.output());
    s.server
        .wait_for_log_after(
            skip,
            "login failed for user 'carol' via plain: device not allowed: the client sent no \
             device id, and allowed-device-id is set (device id '', platform 'linux-64', MACs \
             none)",
            WAIT,
        )
        .unwrap();
}

/// POST an aggregate-auth `auth-reply` for `user` with `macs` in its `<mac-address-list>`,
/// with curl from the client namespace; (status line + headers, body).
fn cisco_login(lab: &Lab, user: &str, macs: &[&str]) -> (String, String) {
    let list: String = macs
        .iter()
        .map(|m| format!("<mac-address public-interface=\"true\">{m}</mac-address>"))
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
         type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">4.10.07061\
         </version><device-id computer-name=\"LAPTOP-7\" device-type=\"LENOVO\" \
         platform-version=\"10.0.19045\" unique-id=\"3B5C0E8F\">win</device-id>\
         <mac-address-list>{list}</mac-address-list><auth><username>{user}</username>\
         <password>{user}-pw</password></auth></config-auth>"
    );
    let mut child = lab
        .cli
        .command("curl")
        .args(["-sk", "-i", "--max-time", "10", "-H"])
        .arg("X-Aggregate-Auth: 1")
        .args(["-A", "AnyConnect Windows 4.10.07061", "--data-binary", "@-"])
        .arg(format!("https://{}/", lab::SERVER_IP))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

fn cookie(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.strip_prefix("Set-Cookie: webvpn=")
            .and_then(|v| v.split(';').next())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn cisco_mac_list_binds_the_login() {
    let lab = Lab::new();
    let s = setup(&lab);
    // Written as AnyConnect on Windows writes MACs: upper case with dashes.
    std::fs::write(s.users.join("alice"), "allowed-mac = 00-0C-29-5E-1A-9B\n").unwrap();

    // Another device: no cookie, the form again, and the log names user, address and MACs.
    let skip = s.server.log_len();
    let (head, body) = cisco_login(&lab, "alice", &["02-00-00-00-00-01"]);
    assert_eq!(cookie(&head), None, "{head}");
    assert!(body.contains("Login failed."), "{body}");
    let line = s
        .server
        .wait_for_log_after(
            skip,
            "login failed for user 'alice' via plain: device not allowed: no MAC address in \
             allowed-mac (device id '3B5C0E8F', platform 'win', MACs 02:00:00:00:00:01)",
            WAIT,
        )
        .unwrap();
    assert!(line.contains(&lab::CLIENT_IP.to_string()), "{line}");

    // No MAC list at all (junk only): refused too, not an error.
    let (head, body) = cisco_login(&lab, "alice", &["not-a-mac", "00:00:00:00:00:00"]);
    assert_eq!(cookie(&head), None, "{head}");
    assert!(body.contains("Login failed."), "{body}");

    // The bound MAC among others: a cookie; the tunnel it opens shows the facts to the
    // connect-script and occtl.
    let (head, body) = cisco_login(&lab, "alice", &["02-00-00-00-00-01", "00-0C-29-5E-1A-9B"]);
    let webvpn = cookie(&head).unwrap_or_else(|| panic!("no cookie: {head}\n{body}"));
    let mut client = Client::start(&lab, &ClientOptions::cookie(&webvpn));
    client.wait_up(WAIT).expect("tunnel with the cookie");
    let line = marker(&s, "alice");
    assert_eq!(
        line[1..4],
        [
            "3B5C0E8F",
            "win",
            &format!("02:00:00:00:00:01 {BOUND_MAC}") as &str
        ],
        "{line:?}"
    );
    let r = record(&s, "alice");
    assert_eq!(r["Device ID"], "3B5C0E8F", "{r}");
    assert_eq!(
        r["MAC addresses"],
        serde_json::json!(["02:00:00:00:00:01", BOUND_MAC]),
        "{r}"
    );
    logout(client);
    // The session record (`occtl show history`) keeps them too; written off the data path,
    // so polled (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let records = json(&s.socket, &["show", "history", "alice"]);
        let newest = records.get(0).cloned().unwrap_or_default();
        if newest["Device ID"] == "3B5C0E8F" {
            assert_eq!(
                newest["MAC addresses"],
                serde_json::json!(["02:00:00:00:00:01", BOUND_MAC]),
                "{newest}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no history record with the device: {records}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // bob has no file: not bound, whatever he reports.
    let (head, _) = cisco_login(&lab, "bob", &[]);
    assert!(cookie(&head).is_some(), "{head}");
}
