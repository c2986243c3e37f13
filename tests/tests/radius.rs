//! `auth = "radius[...]"` and `acct = "radius[...]"` against a real FreeRADIUS started by the
//! test inside the lab's server namespace (tests/src/radius.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::radius::{self, FreeRadius};
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// FreeRADIUS users: `ruth` gets a fixed address and a Class naming her group; `sam` only a
/// password.
const USERS: &str = r#"ruth Cleartext-Password := "ruth-pw"
    Framed-IP-Address = 192.168.231.77,
    Class = "engineers",
    Acct-Interim-Interval = 1

sam Cleartext-Password := "sam-pw"

vera Cleartext-Password := "vera-pw"
    Framed-IPv6-Address = fd00:231:1::78,
    Framed-Route = "10.77.0.0/16 0.0.0.0 1",
    MS-Primary-DNS-Server = 10.231.9.9
"#;

fn config(lab: &Lab, radius: &FreeRadius, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let auth = format!(
        "\"radius[config={},groupconfig=true,nas-identifier=e2e-nas]\"",
        radius.radcli_conf.display()
    );
    let acct = format!(
        "\"radius[config={},nas-identifier=e2e-acct]\"",
        radius.radcli_conf.display()
    );
    let mut o: Vec<(&str, &str)> = vec![
        ("auth", &auth),
        ("acct", &acct),
        ("max-ban-score", "0"),
        // Long: the 1 s Interim-Updates below come from ruth's Acct-Interim-Interval.
        ("stats-report-time", "600"),
    ];
    o.extend_from_slice(extra);
    lab.config(&o)
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and freeradius: run by tests/run-all.sh"]
fn radius_login_attributes_and_accounting() {
    let lab = Lab::new();
    let radius = FreeRadius::start(&lab, USERS);
    let server = Server::start(&lab.srv, &config(&lab, &radius, &[]));

    // A wrong password is refused by the server (Access-Reject).
    let (status, output) = run_to_exit(&lab, "sam", "not-sams", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    assert!(!output.contains("CSTP connected"), "{output}");
    assert!(
        radius.log_text().contains("Sent Access-Reject"),
        "{}",
        radius.log_text()
    );

    // Framed-IP-Address is the client's address; Class is the group.
    let mut client = Client::start(&lab, &ClientOptions::password("ruth", "ruth-pw"));
    let up = client.wait_up(WAIT).expect("RADIUS login");
    assert_eq!(up.address, "192.168.231.77");
    let (ok, out) = lab.ping_through_tunnel(3);
    assert!(ok, "{out}");
    assert!(
        server
            .log_text()
            .contains("user 'ruth' logged in via radius (group 'engineers'"),
        "{}",
        server.log_text()
    );
    // Accounting: Start, then Interim-Update (Acct-Interim-Interval 1 s beats the 600 s
    // stats-report-time).
    radius
        .wait_for_detail("Acct-Status-Type = Start", WAIT)
        .unwrap();
    radius
        .wait_for_detail("Acct-Status-Type = Interim-Update", WAIT)
        .unwrap();
    drop(client);
    let detail = radius
        .wait_for_detail("Acct-Status-Type = Stop", WAIT)
        .unwrap();
    let stop = detail
        .split("Acct-Status-Type = Stop")
        .nth(1)
        .expect("stop record");
    let octets = |name: &str| -> u64 {
        stop.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{stop}"))
            .parse()
            .unwrap()
    };
    // Three pings each way and the tunnel's own traffic at least.
    assert!(octets("Acct-Input-Octets") >= 3 * 84, "{stop}");
    assert!(octets("Acct-Output-Octets") >= 3 * 84, "{stop}");
    assert!(stop.contains("User-Name = \"ruth\""), "{stop}");
    assert!(
        stop.contains("Framed-IP-Address = 192.168.231.77"),
        "{stop}"
    );
    assert!(
        stop.contains("Acct-Terminate-Cause = User-Request"),
        "{stop}"
    );
    assert!(stop.contains("NAS-Identifier = \"e2e-acct\""), "{stop}");
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and freeradius: run by tests/run-all.sh"]
fn radius_challenge_is_a_second_form() {
    let lab = Lab::new();
    let radius = FreeRadius::start(&lab, USERS);
    let _server = Server::start(&lab.srv, &config(&lab, &radius, &[]));

    // A wrong code after the right password is refused.
    let wrong = format!("{}\n000000", radius::CHALLENGE_PASSWORD);
    let (status, output) = run_to_exit(&lab, radius::CHALLENGE_USER, &wrong, WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    assert!(!output.contains("CSTP connected"), "{output}");

    let answers = format!("{}\n{}", radius::CHALLENGE_PASSWORD, radius::CHALLENGE_CODE);
    let mut client = Client::start(
        &lab,
        &ClientOptions::password(radius::CHALLENGE_USER, &answers),
    );
    client.wait_up(WAIT).expect("challenged login");
    assert!(
        client.output().contains(radius::CHALLENGE_PROMPT),
        "{}",
        client.output()
    );
}

/// A dead server costs only the login that waits for it, bounded by radcli's timeout and
/// retries: with the server's packets dropped (nftables, inside the server namespace only) the
/// login is refused after radius_timeout (2 s) x radius_retries (2), not sooner and not much
/// later, and sec-mod says why; then, with the server reachable again, the next login works.
#[test]
#[ignore = "needs root, network namespaces, openconnect, nftables and freeradius: run by tests/run-all.sh"]
fn radius_dead_server_is_a_bounded_refusal() {
    let lab = Lab::new();
    let radius = FreeRadius::start(&lab, USERS);
    let server = Server::start(&lab.srv, &config(&lab, &radius, &[]));
    // A user already connected keeps its traffic while another login waits for the server.
    let mut ruth = Client::start(&lab, &ClientOptions::password("ruth", "ruth-pw"));
    ruth.wait_up(WAIT).expect("RADIUS login");
    let port = radius::AUTH_PORT.to_string();
    lab.srv.exec_ok(&["nft", "add", "table", "inet", "e2e"]);
    lab.srv.exec_ok(&[
        "nft",
        "add chain inet e2e input { type filter hook input priority 0 ; }",
    ]);
    lab.srv.exec_ok(&[
        "nft", "add", "rule", "inet", "e2e", "input", "udp", "dport", &port, "drop",
    ]);
    let started = std::time::Instant::now();
    let (status, output, took) = std::thread::scope(|s| {
        let login = s.spawn(|| {
            let (status, output) = run_to_exit(&lab, "sam", "sam-pw", WAIT);
            (status, output, started.elapsed())
        });
        let (ok, out) = lab.ping_through_tunnel(5);
        assert!(ok, "traffic stalled while a login waited:\n{out}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the pings ended only after the stuck login: {:?}",
            started.elapsed()
        );
        login.join().unwrap()
    });
    assert!(!status.expect("gives up").success(), "{output}");
    server
        .wait_for_log("no server answered", WAIT)
        .expect("sec-mod says why");
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    lab.srv.exec_ok(&["nft", "delete", "table", "inet", "e2e"]);
    let mut client = Client::start(&lab, &ClientOptions::password("sam", "sam-pw"));
    client
        .wait_up(WAIT)
        .expect("login once the server answers again");
}

/// `rocserv -t` reads radcli's file of `auth` and `acct`: a key rocserv cannot honour is an
/// error naming the file and line; an accounting server without a secret is named too; the
/// fixed file passes.
#[test]
#[ignore = "spawns the built binaries: run by tests/run-all.sh"]
fn radius_config_is_checked_by_t() {
    let dir = std::env::temp_dir().join(format!("rocserv-radius-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = rocserv_e2e::pki::make(&dir, "127.0.0.1");
    let rc = dir.join("radiusclient.conf");
    let acct_rc = dir.join("acct.conf");
    let conf = dir.join("ocserv.conf");
    std::fs::write(
        &conf,
        format!(
            "auth = \"radius[config={}]\"\nacct = \"radius[config={}]\"\ntcp-port = 4443\n\
             server-cert = {}\nserver-key = {}\nrun-as-user = nobody\nrun-as-group = nogroup\n\
             ipv4-network = 192.168.1.0/24\n",
            rc.display(),
            acct_rc.display(),
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .unwrap();
    let check = || {
        let out = std::process::Command::new(rocserv_e2e::bin("rocserv"))
            .args(["-t", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    std::fs::write(
        &rc,
        "authserver 127.0.0.1:1812:s3cret\nradius_timeout 3\nserv-type tls\n",
    )
    .unwrap();
    std::fs::write(&acct_rc, "acctserver 127.0.0.1\n").unwrap();
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{}:3: serv-type \"tls\" is not supported",
            rc.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}:2: error: acct: radius accounting: {}: acctserver 127.0.0.1 has no shared secret",
            conf.display(),
            acct_rc.display()
        )),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "the secret was printed:\n{out}");
    std::fs::write(&rc, "authserver 127.0.0.1:1812:s3cret\nradius_timeout 3\n").unwrap();
    std::fs::write(&acct_rc, "acctserver 127.0.0.1::other\n").unwrap();
    let (ok, out) = check();
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `ipv6-network`, Framed-IPv6-Address is the client's IPv6 address; with `groupconfig`,
/// Framed-Route and the Microsoft DNS attribute reach the client (announced in the CONNECT
/// answer).
#[test]
#[ignore = "needs root, network namespaces, openconnect and freeradius: run by tests/run-all.sh"]
fn radius_ipv6_address_route_and_dns() {
    let lab = Lab::new();
    let radius = FreeRadius::start(&lab, USERS);
    let _server = Server::start(
        &lab.srv,
        &config(&lab, &radius, &[("ipv6-network", rocserv_e2e::lab::POOL6)]),
    );
    let mut opts = ClientOptions::password("vera", "vera-pw");
    opts.extra = vec!["--dump-http-traffic".to_owned()];
    let mut client = Client::start(&lab, &opts);
    client.wait_up(WAIT).expect("RADIUS login");
    let out = client.output();
    assert!(
        out.contains("X-CSTP-Address-IP6: fd00:231:1::78/128"),
        "{out}"
    );
    assert!(
        out.contains("X-CSTP-Split-Include: 10.77.0.0/255.255.0.0"),
        "{out}"
    );
    assert!(out.contains("X-CSTP-DNS: 10.231.9.9"), "{out}");
    let (ok, out) = lab.ping6_through_tunnel(2);
    assert!(ok, "{out}");
}
