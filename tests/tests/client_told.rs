//! What the client is told (issue 10 item 8), checked against the real openconnect: split DNS,
//! NetBIOS servers and the proxy PAC URL as its script sees them, `custom-header` (with `%{U}`)
//! and `included-http-headers` as it received them, Cisco's `X-CSTP-Post-Auth-XML`, and the
//! `user-profile` it downloads with `-x` (from the manifest and the `webvpnc` cookie).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use rocserv_e2e::{bin, Client, ClientOptions, Lab, Server, WAIT};

const PROFILE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<AnyConnectProfile xmlns=\"http://schemas.xmlsoap.org/encoding/\">\n\
<ServerList><HostEntry><HostName>rocserv e2e</HostName>\
<HostAddress>10.231.0.1</HostAddress></HostEntry></ServerList>\n</AnyConnectProfile>\n";

/// The environment openconnect gave the client's script (written by the lab's script).
fn client_env(lab: &Lab, client: &Client, name: &str) -> Option<String> {
    std::fs::read_to_string(lab.dir.join(format!("env-{}", client.device)))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn openconnect_applies_what_it_is_told_and_downloads_the_profile() {
    let lab = Lab::new();
    let profile = lab.dir.join("corp-profile.xml");
    std::fs::write(&profile, PROFILE).unwrap();
    let conf = lab.config(&[
        ("split-dns", "corp.test"),
        ("nbns", "192.168.231.53"),
        ("proxy-url", "http://pac.test/%{U}.pac"),
        ("custom-header", "X-CSTP-Rocserv-Greeting: hi %{U}"),
        ("included-http-headers", "X-Frame-Options: deny"),
        ("dynamic-split-exclude-domains", "zoom.us,*.webex.com"),
        ("user-profile", &profile.display().to_string()),
    ]);
    let server = Server::start(&lab.srv, &conf);
    // openconnect writes the profile it downloads here (it checks the SHA-1 first).
    let downloaded = lab.dir.join("downloaded-profile.xml");
    let mut opts = ClientOptions::password("alice", "alice-pw");
    opts.extra = vec![
        "-v".into(),
        "--dump-http-traffic".into(),
        format!("--xmlconfig={}", downloaded.display()),
    ];
    let mut client = Client::start(&lab, &opts);
    client.wait_up(WAIT).expect("tunnel up");
    let out = client.output();

    // The script environment: what openconnect applied.
    assert_eq!(
        client_env(&lab, &client, "CISCO_SPLIT_DNS").as_deref(),
        Some("corp.test"),
        "{out}"
    );
    assert_eq!(
        client_env(&lab, &client, "INTERNAL_IP4_NBNS").as_deref(),
        Some("192.168.231.53")
    );
    assert_eq!(
        client_env(&lab, &client, "CISCO_PROXY_PAC").as_deref(),
        Some("http://pac.test/alice.pac")
    );
    // What it received (openconnect logs only the X-CSTP-* headers of the CONNECT answer, hence
    // the name): the custom header with the user expanded, the post-auth document
    // (openconnect elides it in its log), and the extra header on the login answers.
    assert!(out.contains("X-CSTP-Rocserv-Greeting: hi alice"), "{out}");
    assert!(out.contains("X-CSTP-Post-Auth-XML"), "{out}");
    assert!(out.contains("X-Frame-Options: deny"), "{out}");
    // The profile: announced, fetched on the login connection, hash checked, written.
    assert!(out.contains("Downloaded new XML profile"), "{out}");
    assert_eq!(std::fs::read_to_string(&downloaded).unwrap(), PROFILE);

    let (ok, ping) = lab.ping_through_tunnel(2);
    assert!(ok, "ping through the tunnel failed:\n{ping}");
    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
}

/// Without a login on the connection the profile is not served.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn the_profile_needs_a_login() {
    let lab = Lab::new();
    let profile = lab.dir.join("corp-profile.xml");
    std::fs::write(&profile, PROFILE).unwrap();
    let conf = lab.config(&[("user-profile", &profile.display().to_string())]);
    let _server = Server::start(&lab.srv, &conf);
    for path in ["profiles/corp-profile.xml", "profiles%2Fcorp-profile.xml"] {
        let url = format!("{}{path}", lab.url());
        let (_, out) = lab
            .cli
            .exec(&["curl", "-k", "-s", "-i", "--max-time", "10", &url]);
        assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
        assert!(!out.contains("AnyConnectProfile"), "{out}");
    }
}

/// A header line that would break the answer, or an unreadable profile, stops the server at
/// the configuration check.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn bad_header_lines_and_missing_profiles_are_refused() {
    let lab = Lab::new();
    for (option, value, needle) in [
        ("custom-header", "Bad Name: x", "custom-header"),
        ("custom-header", "Content-Length: 0", "custom-header"),
        (
            "included-http-headers",
            "no colon here",
            "included-http-headers",
        ),
        ("split-dns", "a b.example", "split-dns"),
        ("user-profile", "/nonexistent/profile.xml", "user-profile"),
    ] {
        let conf = lab.config(&[(option, value)]);
        let out = std::process::Command::new(bin("rocserv"))
            .args(["-t", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{option} = {value} passed:\n{text}");
        assert!(text.contains(needle), "{option} = {value}:\n{text}");
    }
    assert!(!Path::new("/nonexistent/profile.xml").exists());
}

/// `split-dns` and `nbns` from a user's own file replace the global ones for that user only,
/// and an edit applies to the next login without a reload.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn per_user_split_dns_and_nbns() {
    let lab = Lab::new();
    let users = lab.dir.join("users");
    std::fs::create_dir(&users).unwrap();
    std::fs::write(
        users.join("alice"),
        "split-dns = alice.test\nnbns = 192.168.231.77\n",
    )
    .unwrap();
    let users_text = users.display().to_string();
    let conf = lab.config(&[
        ("split-dns", "corp.test"),
        ("nbns", "192.168.231.53"),
        ("config-per-user", &users_text),
    ]);
    let _server = Server::start(&lab.srv, &conf);
    let told = |user: &str, password: &str| {
        let mut client = Client::start(&lab, &ClientOptions::password(user, password));
        client.wait_up(WAIT).expect("tunnel up");
        let got = (
            client_env(&lab, &client, "CISCO_SPLIT_DNS"),
            client_env(&lab, &client, "INTERNAL_IP4_NBNS"),
        );
        drop(client);
        got
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        told("alice", "alice-pw"),
        (some("alice.test"), some("192.168.231.77"))
    );
    assert_eq!(
        told("bob", "bob-pw"),
        (some("corp.test"), some("192.168.231.53"))
    );
    std::fs::write(users.join("alice"), "split-dns = other.test\n").unwrap();
    assert_eq!(
        told("alice", "alice-pw"),
        (some("other.test"), some("192.168.231.53"))
    );
}
