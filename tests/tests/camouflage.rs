//! `camouflage`: the real openconnect connects with `https://host/?SECRET` and fails without
//! it; plain HTTPS requests (curl) get a web server's 401 (realm) or 404 with nothing that
//! tells a VPN; a session cookie gets a CONNECT through without the secret (openconnect does
//! not repeat the query there); a scanner hammering the camouflage answers is banned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::process::Stdio;

use rocserv_e2e::client::run_to_exit;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

const SECRET: &str = "Hidden-0f9a3c71e2b84d56";
const REALM: &str = "Restricted Content";

/// `curl -k -i` in the client namespace: (exit status ok, head and body).
fn curl(lab: &Lab, extra: &[&str], path: &str) -> (bool, String) {
    let url = format!("{}{}", lab.url().trim_end_matches('/'), path);
    let mut argv = vec!["curl", "-k", "-s", "-i", "--max-time", "10"];
    argv.extend_from_slice(extra);
    argv.push(&url);
    lab.cli.exec(&argv)
}

/// The answer is the camouflage's: `status` line, no header or word of a VPN.
fn assert_plain(answer: &str, status: &str) {
    assert!(answer.starts_with(status), "{answer}");
    let lower = answer.to_ascii_lowercase();
    for tell in [
        "x-transcend",
        "x-reason",
        "x-cstp",
        "set-cookie",
        "webvpn",
        "config-auth",
        "xml",
        "vpn",
        "rocserv",
        "anyconnect",
    ] {
        assert!(!lower.contains(tell), "{tell:?} in {answer}");
    }
}

/// `openconnect --authenticate` against `url`: the cookie it printed.
fn cookie_from(lab: &Lab, url: &str, user: &str, password: &str) -> String {
    let mut child = lab
        .cli
        .command("openconnect")
        .args([
            "--protocol=anyconnect",
            "--non-inter",
            "--servercert",
            &lab.pki.pin,
            "--passwd-on-stdin",
            "--authenticate",
        ])
        .arg(format!("--user={user}"))
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("COOKIE="))
        .map(|v| v.trim_matches('\'').to_owned())
        .unwrap_or_else(|| panic!("no cookie:\n{text}"))
}

#[test]
#[ignore = "needs root, network namespaces, openconnect and curl: run by tests/run-all.sh"]
fn openconnect_needs_the_secret_url_and_scanners_see_a_web_server() {
    let lab = Lab::new();
    let quoted_realm = format!("\"{REALM}\"");
    let server = Server::start(
        &lab.srv,
        &lab.config(&[
            ("camouflage", "true"),
            ("camouflage_secret", SECRET),
            ("camouflage_realm", &quoted_realm),
            ("max-ban-score", "0"),
            // Would show on every answer of the HTTP phase; never on the camouflage's.
            ("included-http-headers", "X-Frame-Options: deny"),
        ]),
    );
    let unauthorized =
        format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"{REALM}\"\r\n");

    // What a scanner tries, as a browser or curl sends it.
    let xml_init = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" \
                    type=\"init\"><version who=\"vpn\">v9.01</version></config-auth>";
    for (extra, path) in [
        (vec![], "/"),
        (vec![], "/auth"),
        (vec![], "/+CSCOE+/logon.html"),
        (vec![], "/+CSCOT+/translation-table?type=manifest"),
        (vec![], "/1/VPNManifest.xml"),
        (vec![], "/?wrong"),
        (vec![], &format!("/?{SECRET}&x=1")),
        (vec!["-X", "POST", "--data", xml_init], "/"),
        (vec!["-X", "POST", "--data", xml_init], "/auth"),
        (
            vec!["-X", "CONNECT", "-H", "Cookie: webvpn=made-up-cookie"],
            "/CSCOSSLC/tunnel",
        ),
        (vec!["-X", "CONNECT"], "/CSCOSSLC/tunnel"),
    ] {
        let (ok, answer) = curl(&lab, &extra, path);
        assert!(ok, "curl {extra:?} {path}: {answer}");
        assert_plain(&answer, &unauthorized);
    }
    // With the secret the server shows itself (the login form).
    let (ok, answer) = curl(&lab, &[], &format!("/?{SECRET}"));
    assert!(ok && answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("auth-request"), "{answer}");

    // openconnect without the secret: nothing to log in to.
    let (status, output) = run_to_exit(&lab, "alice", "alice-pw", WAIT);
    assert!(!status.expect("gives up").success(), "{output}");
    assert!(!output.contains("CSTP connected"), "{output}");
    assert!(!output.contains("auth-request"), "{output}");

    // openconnect with https://host/?SECRET logs in and gets the tunnel.
    let secret_url = format!("{}?{SECRET}", lab.url());
    let mut opts = ClientOptions::password("alice", "alice-pw");
    opts.url = Some(secret_url.clone());
    let mut client = Client::start(&lab, &opts);
    client.wait_up(WAIT).expect("login with the secret URL");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    drop(client);

    // A cookie obtained with the secret connects without it (a reconnect is a CONNECT only).
    let cookie = cookie_from(&lab, &secret_url, "bob", "bob-pw");
    let mut client = Client::start(&lab, &ClientOptions::cookie(&cookie));
    client
        .wait_up(WAIT)
        .expect("the cookie's CONNECT needs no secret");
    drop(client);
    assert!(
        server
            .log_text()
            .contains("camouflage: Get \"/auth\" without the secret"),
        "{}",
        server.log_text()
    );
    assert!(!server.log_text().contains(SECRET), "the secret was logged");
}

/// A scanner pays a connection's ban points for each probe (each camouflage answer closes the
/// connection) and is banned; once banned, not even the secret URL gets in.
#[test]
#[ignore = "needs root, network namespaces, openconnect and curl: run by tests/run-all.sh"]
fn a_scanner_hammering_the_camouflage_is_banned() {
    const MAX_SCORE: usize = 6;
    let lab = Lab::new();
    let server = Server::start(
        &lab.srv,
        &lab.config(&[
            ("camouflage", "true"),
            ("camouflage_secret", SECRET),
            ("max-ban-score", &MAX_SCORE.to_string()),
            ("ban-points-connection", "1"),
        ]),
    );
    let mut answered = 0;
    for _ in 0..MAX_SCORE * 3 {
        let (ok, answer) = curl(&lab, &[], "/");
        if !ok {
            break;
        }
        assert_plain(&answer, "HTTP/1.1 404 Not Found\r\n");
        answered += 1;
    }
    assert!(
        (MAX_SCORE - 1..=MAX_SCORE).contains(&answered),
        "{answered} probes answered before the ban"
    );
    server
        .wait_for_log("rejected connection from banned IP", WAIT)
        .unwrap();
    let (ok, answer) = curl(&lab, &[], &format!("/?{SECRET}"));
    assert!(!ok, "a banned address got an answer: {answer}");
}

/// `camouflage` is vhost-scoped, chosen by SNI like the certificate: the default section hides,
/// a `[vhost:NAME]` with `camouflage = false` shows its login form, a name no vhost has gets
/// the default section's camouflage.
#[test]
#[ignore = "needs root, network namespaces and curl: run by tests/run-all.sh"]
fn the_vhost_named_by_sni_decides() {
    use std::io::Write as _;
    const VHOST: &str = "open.vpn.test";
    let lab = Lab::new();
    let vdir = lab.dir.join("vhost-open");
    std::fs::create_dir_all(&vdir).unwrap();
    let vpki = rocserv_e2e::pki::make(&vdir, VHOST);
    let quoted_realm = format!("\"{REALM}\"");
    let conf = lab.config(&[
        ("camouflage", "true"),
        ("camouflage_secret", SECRET),
        ("camouflage_realm", &quoted_realm),
        ("max-ban-score", "0"),
    ]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .unwrap();
    write!(
        file,
        "[vhost:{VHOST}]\nserver-cert = {}\nserver-key = {}\nipv4-network = 192.168.232.0/24\n\
         camouflage = false\n",
        vpki.cert.display(),
        vpki.key.display(),
    )
    .unwrap();
    drop(file);
    let _server = Server::start(&lab.srv, &conf);
    let ip = rocserv_e2e::lab::SERVER_IP;
    let by_name = |name: &str, path: &str| {
        let resolve = format!("{name}:443:{ip}");
        let url = format!("https://{name}{path}");
        lab.cli.exec(&[
            "curl",
            "-k",
            "-s",
            "-i",
            "--max-time",
            "10",
            "--resolve",
            &resolve,
            &url,
        ])
    };
    let unauthorized =
        format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"{REALM}\"\r\n");
    // No SNI (an IP address) and an unknown name: the default section hides.
    let (ok, answer) = curl(&lab, &[], "/");
    assert!(ok, "{answer}");
    assert_plain(&answer, &unauthorized);
    let (ok, answer) = by_name("other.vpn.test", "/");
    assert!(ok, "{answer}");
    assert_plain(&answer, &unauthorized);
    // The open vhost shows its form without a secret.
    let (ok, answer) = by_name(VHOST, "/");
    assert!(ok && answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("auth-request"), "{answer}");
}

/// With `select-group-by-url`, `https://host/GROUP?SECRET` passes the camouflage and asks for
/// `GROUP` (the secret is not part of the group name).
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn the_group_url_with_the_secret() {
    let lab = Lab::new();
    rocserv_e2e::lab::add_user(&lab.passwd, "dave", "dave-pw", Some("staff,admins"));
    let server = Server::start(
        &lab.srv,
        &lab.config(&[
            ("camouflage", "true"),
            ("camouflage_secret", SECRET),
            ("select-group-by-url", "true"),
            ("max-ban-score", "0"),
        ]),
    );
    let mut opts = ClientOptions::password("dave", "dave-pw");
    opts.url = Some(format!("{}admins?{SECRET}", lab.url()));
    let mut client = Client::start(&lab, &opts);
    client.wait_up(WAIT).expect("login through /admins?SECRET");
    server
        .wait_for_log("user 'dave' logged in via plain (group 'admins'", WAIT)
        .unwrap();
}
