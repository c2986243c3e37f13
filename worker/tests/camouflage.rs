//! `camouflage` in the HTTP phase, against a scripted client over an in-memory stream: without
//! the secret every request (any method, any path, a CONNECT without a usable cookie) gets the
//! same plain web server answer and the connection closes, sec-mod never asked; with it the
//! login proceeds as usual, the secret stripped from the target.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is the test failing"
)]

use std::cell::RefCell;

use rocserv_proto::config::{Camouflage, GroupChoice, Secret};
use rocserv_proto::ipc::main_worker::ClientSettings;
use rocserv_proto::ipc::worker_secmod::{AuthStep, ToSecMod};
use rocserv_proto::ipc::SessionId;
use rocserv_worker::http::{self, Banners, Groups, Outcome, ReadTimeouts};
use rocserv_worker::ipc::{AuthService, IpcChannelError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{Duration, Instant};

const SECRET: &str = "s3cret-Query-0123456789";
const COOKIE: &str = "Q2Fub25pY2FsQ29va2llVmFsdWVXaXRob3V0UGFkZGluZw";

#[derive(Default)]
struct FakeSecMod {
    answers: RefCell<Vec<AuthStep>>,
    asked: RefCell<Vec<ToSecMod>>,
}

impl AuthService for FakeSecMod {
    fn auth(&self, request: ToSecMod) -> Result<AuthStep, IpcChannelError> {
        self.asked.borrow_mut().push(request);
        let mut answers = self.answers.borrow_mut();
        if answers.is_empty() {
            return Err(IpcChannelError::Closed);
        }
        Ok(answers.remove(0))
    }
}

fn settings(realm: Option<&str>) -> ClientSettings {
    ClientSettings {
        profile: None,
        cert_sha1: String::new(),
        // Never on a camouflage answer: they would tell a scanner which server this is.
        included_http_headers: vec![("X-Frame-Options".into(), "deny".into())],
        camouflage: Some(Camouflage {
            secret: Secret(SECRET.into()),
            realm: realm.map(str::to_owned),
        }),
    }
}

fn groups(by_url: bool) -> Groups {
    Groups {
        choices: vec![GroupChoice {
            name: "staff".into(),
            label: None,
        }],
        default_select: None,
        by_url,
    }
}

fn relaxed() -> ReadTimeouts {
    ReadTimeouts {
        first_request_by: Instant::now() + Duration::from_secs(60),
        per_request: Duration::from_secs(60),
    }
}

const INIT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
    type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>\
    </config-auth>";

fn reply(user: &str, pass: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
         type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>\
         <auth><username>{user}</username><password>{pass}</password></auth></config-auth>"
    )
}

fn request(method: &str, target: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: vpn.example\r\n\
         User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn connect(cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: webvpn={c}\r\n"))
        .unwrap_or_default();
    format!(
        "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.example\r\n{cookie}X-CSTP-Version: 1\r\n\r\n"
    )
}

/// Everything the server writes until it closes.
async fn all(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

/// Send `text` on a fresh connection; the outcome, the answer, and what sec-mod was asked.
async fn exchange(
    text: &str,
    client_settings: &ClientSettings,
    groups: &Groups,
    answers: Vec<AuthStep>,
) -> (Outcome, String, Vec<ToSecMod>) {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod {
        answers: RefCell::new(answers),
        ..FakeSecMod::default()
    };
    client.write_all(text.as_bytes()).await.unwrap();
    client.shutdown().await.unwrap();
    let outcome = http::serve(
        &mut server,
        &secmod,
        Banners::default(),
        groups,
        relaxed(),
        client_settings,
    )
    .await
    .unwrap();
    drop(server);
    let answer = all(&mut client).await;
    let asked = secmod.asked.take();
    (outcome, answer, asked)
}

fn assert_plain(answer: &str, status: &str) {
    assert!(answer.starts_with(status), "{answer}");
    let lower = answer.to_ascii_lowercase();
    for tell in [
        "x-transcend",
        "x-frame",
        "x-reason",
        "set-cookie",
        "xml",
        "config-auth",
        "vpn",
        "rocserv",
        "anyconnect",
    ] {
        assert!(!lower.contains(tell), "{tell:?} in {answer}");
    }
    // One answer, then the connection is closed (the next probe costs a new connection).
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

/// Scanner-style requests on a camouflaged server: all get the same answer (404, or 401 with
/// the realm), sec-mod is never asked, the connection ends.
#[tokio::test]
async fn without_the_secret_every_request_gets_the_web_servers_answer() {
    for (realm, status) in [
        (None, "HTTP/1.1 404 Not Found\r\n"),
        (
            Some("Restricted Content"),
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Restricted Content\"\r\n",
        ),
    ] {
        let client = settings(realm);
        let probes = [
            request("GET", "/", "", ""),
            request("GET", "/?", "", ""),
            request("GET", "/?wrong", "", ""),
            request("GET", &format!("/?{SECRET}x"), "", ""),
            request("GET", &format!("/?{SECRET}&a=b"), "", ""),
            request("GET", &format!("/{SECRET}"), "", ""),
            request("GET", "/auth", "", ""),
            request("GET", "/+CSCOE+/logon.html", "", ""),
            request("GET", "/+CSCOT+/translation-table?type=manifest", "", ""),
            request("GET", "/1/VPNManifest.xml", "", ""),
            request("GET", "/profiles/p.xml", "", ""),
            request("GET", "/etc/passwd", "", ""),
            request("HEAD", "/", "", ""),
            request("OPTIONS", "*", "", ""),
            request("POST", "/", "X-Aggregate-Auth: 1\r\n", INIT),
            request("POST", "/auth", "", &reply("test", "test123")),
            request("POST", "/staff", "", INIT),
            // A cookie alone does not pass a GET (ocserv lets any well-formed one through).
            request(
                "GET",
                "/1/VPNManifest.xml",
                &format!("Cookie: webvpn={COOKIE}\r\n"),
                "",
            ),
            connect(None),
            request(
                "CONNECT",
                "/other",
                &format!("Cookie: webvpn={COOKIE}\r\n"),
                "",
            ),
        ];
        for probe in probes {
            let (outcome, answer, asked) = exchange(&probe, &client, &groups(true), vec![]).await;
            assert!(matches!(outcome, Outcome::Closed), "{probe}");
            assert_plain(&answer, status);
            assert!(asked.is_empty(), "{probe}: sec-mod asked {asked:?}");
        }
    }
}

/// `https://host/?SECRET`: openconnect's first POST carries the query, its later ones go to
/// the form's `/auth` on the same connection, then CONNECT.
#[tokio::test]
async fn with_the_secret_the_login_proceeds_on_that_connection() {
    let client = settings(Some("Restricted Content"));
    let complete = AuthStep::Complete {
        cookie: COOKIE.into(),
        sid: SessionId(3),
        username: "test".into(),
    };
    let text = [
        request(
            "POST",
            &format!("/?{SECRET}"),
            "X-Aggregate-Auth: 1\r\n",
            INIT,
        ),
        request("POST", "/auth", "", &reply("test", "test123")),
        connect(Some(COOKIE)),
    ]
    .concat();
    // Requests of one connection are sent one after the other (no pipelining).
    let (mut server, mut peer) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod {
        answers: RefCell::new(vec![complete]),
        ..FakeSecMod::default()
    };
    let parts: Vec<String> = text
        .split_inclusive("</config-auth>")
        .map(str::to_owned)
        .collect();
    let script = async {
        for part in &parts {
            peer.write_all(part.as_bytes()).await.unwrap();
            if part.ends_with("</config-auth>") {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    peer.read_exact(&mut byte).await.unwrap();
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut body = vec![0u8; len];
                peer.read_exact(&mut body).await.unwrap();
            }
        }
    };
    let no_groups = groups(false);
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &no_groups,
            relaxed(),
            &client
        ),
        script
    );
    match outcome.unwrap() {
        Outcome::Tunnel(connect) => {
            assert_eq!(connect.request.cookie, COOKIE);
            // The secret was shown on this connection: a refused cookie gets the VPN's answer.
            assert!(!connect.camouflaged);
        }
        Outcome::Closed => panic!("expected the tunnel"),
    }
    assert_eq!(secmod.asked.borrow().len(), 1);
}

/// The group in the URL with `select-group-by-url`: `/staff?SECRET` asks for `staff`.
#[tokio::test]
async fn the_secret_works_with_select_group_by_url() {
    let client = settings(None);
    let text = request("POST", &format!("/staff?{SECRET}"), "", &reply("u", "p"));
    let (_, answer, asked) = exchange(
        &text,
        &client,
        &groups(true),
        vec![AuthStep::Failed { retry: false }],
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 401 Authentication failed\r\n"),
        "{answer}"
    );
    assert!(
        matches!(&asked[..], [ToSecMod::AuthStart { group: Some(g), .. }] if g == "staff"),
        "{asked:?}"
    );
    // And a plain GET of the form with the secret gets the form.
    let (_, answer, _) = exchange(
        &request("GET", &format!("/?{SECRET}"), "", ""),
        &client,
        &groups(false),
        vec![],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("auth-request"), "{answer}");
}

/// A CONNECT with a cookie on a fresh connection goes to main (openconnect reconnects so,
/// without the query), marked so that a refused cookie gets the camouflage answer.
#[tokio::test]
async fn a_cookie_connect_goes_to_main_marked_camouflaged() {
    let client = settings(None);
    let (outcome, answer, asked) =
        exchange(&connect(Some(COOKIE)), &client, &groups(false), vec![]).await;
    match outcome {
        Outcome::Tunnel(connect) => {
            assert_eq!(connect.request.cookie, COOKIE);
            assert!(connect.camouflaged);
        }
        Outcome::Closed => panic!("expected the tunnel"),
    }
    assert!(answer.is_empty(), "{answer}");
    assert!(asked.is_empty());
}
