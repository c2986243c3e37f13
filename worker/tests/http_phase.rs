//! The HTTP phase against a scripted client over an in-memory stream, with a scripted sec-mod:
//! the openconnect 9.01 exchange of protocol.md §1.4-§1.8 and §2.1, byte for byte where it
//! matters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is the test failing"
)]

use std::cell::RefCell;
use std::collections::VecDeque;

use rocserv_proto::ipc::main_worker::{ClientSettings, UserProfile};
use rocserv_proto::ipc::worker_secmod::{AuthStep, ToSecMod};
use rocserv_proto::ipc::SessionId;
use rocserv_worker::http::{self, Banners, Groups, HttpPhaseError, Outcome, ReadTimeouts};
use rocserv_worker::ipc::{AuthService, IpcChannelError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{Duration, Instant};

static NO_GROUPS: Groups = Groups {
    choices: Vec::new(),
    default_select: None,
    by_url: false,
};

/// sec-mod that answers from a script and records the questions.
#[derive(Default)]
struct FakeSecMod {
    answers: RefCell<VecDeque<AuthStep>>,
    asked: RefCell<Vec<ToSecMod>>,
}

impl FakeSecMod {
    fn new(answers: impl IntoIterator<Item = AuthStep>) -> Self {
        Self {
            answers: RefCell::new(answers.into_iter().collect()),
            asked: RefCell::default(),
        }
    }
}

impl AuthService for FakeSecMod {
    fn auth(&self, request: ToSecMod) -> Result<AuthStep, IpcChannelError> {
        self.asked.borrow_mut().push(request);
        self.answers
            .borrow_mut()
            .pop_front()
            .ok_or(IpcChannelError::Closed)
    }
}

const INIT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
    type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>\
    <device-id>linux-64</device-id><group-access>https://127.0.0.1:4443/</group-access>\
    </config-auth>";

fn reply(user: &str, pass: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
         type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>\
         <auth><username>{user}</username><password>{pass}</password></auth></config-auth>"
    )
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:4443\r\n\
         User-Agent: Open AnyConnect VPN Agent v9.01-3\r\nX-Transcend-Version: 1\r\n\
         X-Aggregate-Auth: 1\r\nContent-Type: application/xml; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Read one response: head and `Content-Length` body.
async fn response(client: &mut DuplexStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    client.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8(body).unwrap())
}

async fn closed(client: &mut DuplexStream) -> bool {
    let mut byte = [0u8; 1];
    client.read(&mut byte).await.unwrap() == 0
}

/// No profile, no extra headers.
static NO_EXTRAS: ClientSettings = ClientSettings {
    profile: None,
    cert_sha1: String::new(),
    included_http_headers: Vec::new(),
    camouflage: None,
};

/// Read deadlines no test here comes near.
fn relaxed() -> ReadTimeouts {
    ReadTimeouts {
        first_request_by: Instant::now() + Duration::from_secs(60),
        per_request: Duration::from_secs(60),
    }
}

fn complete() -> AuthStep {
    AuthStep::Complete {
        cookie: "Q2Fub25pY2FsQ29va2llVmFsdWVXaXRob3V0UGFkZGluZw".into(),
        sid: SessionId(7),
        username: "test".into(),
    }
}

#[tokio::test]
async fn openconnect_login_then_connect() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([AuthStep::Failed { retry: true }, complete()]);
    let banners = Banners {
        pre_login: Some("Authorised use only"),
        post_login: Some("Welcome banner"),
    };
    let script = async {
        client.write_all(post("/", INIT).as_bytes()).await.unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nX-Transcend-Version: 1\r\n"));
        assert!(head.contains("\r\nContent-Type: text/xml; charset=utf-8\r\n"));
        assert!(body.contains("type=\"auth-request\""), "{body}");
        assert!(body.contains("name=\"username\""));
        assert!(body.contains("name=\"password\""));
        assert!(body.contains("Authorised use only"));

        client
            .write_all(post("/auth", &reply("test", "wrong")).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(body.contains("Login failed."), "{body}");

        client
            .write_all(post("/auth", &reply("test", "test123")).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            head.contains(
                "\r\nSet-Cookie: webvpn=Q2Fub25pY2FsQ29va2llVmFsdWVXaXRob3V0UGFkZGluZw; \
                 Secure; HttpOnly\r\n"
            ),
            "{head}"
        );
        assert!(body.contains("<auth id=\"success\">"), "{body}");
        assert!(body.contains("Welcome banner"));

        client
            .write_all(
                b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: 127.0.0.1:4443\r\n\
                  User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n\
                  Cookie: webvpn=Q2Fub25pY2FsQ29va2llVmFsdWVXaXRob3V0UGFkZGluZw\r\n\
                  X-CSTP-Version: 1\r\nX-CSTP-Hostname: vm\r\nX-CSTP-Base-MTU: 1500\r\n\r\n",
            )
            .await
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            banners,
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    match outcome.unwrap() {
        Outcome::Tunnel(connect) => {
            assert_eq!(
                connect.request.cookie,
                "Q2Fub25pY2FsQ29va2llVmFsdWVXaXRob3V0UGFkZGluZw"
            );
            assert_eq!(connect.request.hostname.as_deref(), Some("vm"));
            assert_eq!(connect.request.base_mtu, Some(1500));
        }
        Outcome::Closed => panic!("expected a tunnel"),
    }
    let asked = secmod.asked.borrow();
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[1],
        ToSecMod::AuthStart {
            username: "test".into(),
            password: "test123".into(),
            group: None,
            facts: rocserv_proto::ipc::worker_secmod::ClientFacts {
                user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
                // openconnect's `<device-id>` (its default `--os`).
                platform: Some("linux-64".into()),
                ..Default::default()
            },
        }
    );
}

#[tokio::test]
async fn final_failure_is_a_bare_401_and_close() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([AuthStep::Failed { retry: false }]);
    let script = async {
        client
            .write_all(post("/auth", &reply("test", "bad")).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut client).await;
        assert_eq!(
            head,
            "HTTP/1.1 401 Authentication failed\r\nX-Transcend-Version: 1\r\n\
             Content-Length: 0\r\n\r\n"
        );
        assert!(body.is_empty());
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    assert!(matches!(outcome, Ok(Outcome::Closed)));
    drop(server);
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn unknown_url_is_404_and_close() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::default();
    let script = async {
        client
            .write_all(b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 404 Not found\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"));
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    assert!(matches!(outcome, Ok(Outcome::Closed)));
}

#[tokio::test]
async fn connect_without_cookie_is_503() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::default();
    let script = async {
        client
            .write_all(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(&mut client).await;
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    assert!(matches!(outcome, Ok(Outcome::Closed)));
}

#[tokio::test]
async fn pipelining_and_garbage_close_without_asking_secmod() {
    for input in [
        format!("{}{}", post("/", INIT), post("/", INIT)),
        "\x16\x03\x01 not http at all\r\n\r\n".to_owned(),
    ] {
        let (mut server, mut client) = tokio::io::duplex(64 * 1024);
        let secmod = FakeSecMod::default();
        client.write_all(input.as_bytes()).await.unwrap();
        let outcome = http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS,
        )
        .await;
        assert!(
            matches!(
                outcome,
                Err(HttpPhaseError::Pipelined | HttpPhaseError::Http(_))
            ),
            "{outcome:?}"
        );
        assert!(secmod.asked.borrow().is_empty());
    }
}

#[tokio::test]
async fn request_limit() {
    let (mut server, mut client) = tokio::io::duplex(1024 * 1024);
    let secmod = FakeSecMod::default();
    let script = async {
        for _ in 0..http::MAX_REQUESTS {
            client
                .write_all(b"GET /1/binaries/update.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let (head, body) = response(&mut client).await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
            assert_eq!(body, "0,0,0000\n");
        }
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    assert!(matches!(outcome, Err(HttpPhaseError::TooManyRequests)));
}

/// `handshake-timeout` against slow clients (slowloris): the first request must be in by its
/// deadline, and any request within `per_request` of its first byte; a trickling client is cut
/// off then, not at `auth-timeout`.
#[tokio::test]
async fn silent_and_trickling_clients_are_cut_off() {
    let short = |first: u64| ReadTimeouts {
        first_request_by: Instant::now() + Duration::from_millis(first),
        per_request: Duration::from_millis(800),
    };
    // Nothing at all.
    let (mut server, _client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::default();
    let started = Instant::now();
    let serve = http::serve(
        &mut server,
        &secmod,
        Banners::default(),
        &NO_GROUPS,
        short(500),
        &NO_EXTRAS,
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), serve).await;
    assert!(
        matches!(outcome, Ok(Err(HttpPhaseError::TooSlow))),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // A head byte every 100 ms, forever: the first request's deadline cuts it.
    for first in [500, 60_000] {
        let (mut server, mut client) = tokio::io::duplex(64 * 1024);
        let trickle = async {
            if first > 500 {
                // An honest first request, then a trickled second one.
                client
                    .write_all(b"GET /1/binaries/update.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let _ = response(&mut client).await;
            }
            for b in b"GET / HTTP/1.1\r\nX-Slow: "
                .iter()
                .chain([b'a'; 4096].iter())
                .take(200)
            {
                if client.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the server still reads a trickled request after 20 s");
        };
        let started = Instant::now();
        let serve = http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            short(first),
            &NO_EXTRAS,
        );
        let outcome = tokio::select! {
            outcome = serve => outcome,
            () = trickle => unreachable!(),
        };
        assert!(
            matches!(outcome, Err(HttpPhaseError::TooSlow)),
            "{outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}

/// The time between requests (a user typing a password) is not a request's time.
#[tokio::test]
async fn a_pause_between_requests_is_not_cut() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::default();
    let timeouts = ReadTimeouts {
        first_request_by: Instant::now() + Duration::from_secs(5),
        per_request: Duration::from_millis(300),
    };
    let script = async {
        let get = b"GET /1/binaries/update.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(get).await.unwrap();
        let _ = response(&mut client).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        client.write_all(get).await.unwrap();
        let (head, _) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        client.shutdown().await.unwrap();
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            timeouts,
            &NO_EXTRAS
        ),
        script
    );
    assert!(matches!(outcome, Ok(Outcome::Closed)), "{outcome:?}");
}

/// openconnect's flow with `select-group-by-url`: init POSTed to `/staff` gets a form offering
/// that group only; the credentials go to the form's `/auth` with `<group-select>`; sec-mod is
/// asked for the group.
#[tokio::test]
async fn a_group_url_reaches_secmod_and_the_form_offers_it() {
    use rocserv_proto::config::GroupChoice;
    let groups = Groups {
        choices: vec![
            GroupChoice {
                name: "staff".into(),
                label: Some("Staff & Co".into()),
            },
            GroupChoice {
                name: "admins".into(),
                label: None,
            },
        ],
        default_select: None,
        by_url: true,
    };
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([complete()]);
    let script = async move {
        client
            .write_all(post("/staff", INIT).as_bytes())
            .await
            .unwrap();
        let (_, body) = response(&mut client).await;
        assert!(
            body.contains(
                "<select name=\"group_list\" label=\"Group:\">\n\
                 <option value=\"staff\">Staff &amp; Co</option>\n</select>"
            ),
            "{body}"
        );
        let with_group =
            reply("test", "pw").replace("<auth>", "<group-select>staff</group-select><auth>");
        client
            .write_all(post("/auth", &with_group).as_bytes())
            .await
            .unwrap();
        let (head, _) = response(&mut client).await;
        assert!(head.contains("Set-Cookie: webvpn="), "{head}");
        drop(client);
    };
    let (_, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &groups,
            relaxed(),
            &NO_EXTRAS
        ),
        script
    );
    let asked = secmod.asked.borrow();
    assert!(
        matches!(&asked[0], ToSecMod::AuthStart { group: Some(g), .. } if g == "staff"),
        "{asked:?}"
    );
}

fn get(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:4443\r\n\
         User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n\r\n"
    )
}

fn with_profile() -> ClientSettings {
    ClientSettings {
        profile: Some(UserProfile {
            name: "corp.xml".into(),
            sha1: "A9993E364706816ABA3E25717850C26C9CD0D89D".into(),
            xml: b"<AnyConnectProfile/>\n".to_vec(),
        }),
        cert_sha1: "C0FFEE".into(),
        included_http_headers: vec![("Strict-Transport-Security".into(), "max-age=60".into())],
        camouflage: None,
    }
}

/// The profile is announced in the login reply and the `webvpnc` cookie, served to the
/// connection that logged in (both URL spellings openconnect uses), and every answer carries
/// `included-http-headers`.
#[tokio::test]
async fn user_profile_after_login() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([complete()]);
    let settings = with_profile();
    let script = async {
        client.write_all(post("/", INIT).as_bytes()).await.unwrap();
        let (head, _) = response(&mut client).await;
        assert!(
            head.contains("\r\nStrict-Transport-Security: max-age=60\r\n"),
            "{head}"
        );
        client
            .write_all(post("/auth", &reply("test", "test123")).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut client).await;
        assert!(
            body.contains(
                "<vpn-profile-manifest><vpn rev=\"1.0\"><file type=\"profile\" \
                 service-type=\"user\"><uri>/profiles/corp.xml</uri><hash type=\"sha1\">\
                 A9993E364706816ABA3E25717850C26C9CD0D89D</hash>"
            ),
            "{body}"
        );
        assert!(body.trim_end().ends_with("</config-auth>"), "{body}");
        assert!(
            head.contains(
                "\r\nSet-Cookie: webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; \
                 Secure; HttpOnly\r\nSet-Cookie: webvpnc=bu:/&p:t&iu:1/&sh:C0FFEE&lu:"
            ),
            "{head}"
        );
        assert!(
            head.contains("&fu:profiles%2Fcorp.xml&fh:A9993E36"),
            "{head}"
        );
        for path in ["/profiles/corp.xml", "/profiles%2Fcorp.xml"] {
            client.write_all(get(path).as_bytes()).await.unwrap();
            let (head, body) = response(&mut client).await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains("\r\nContent-Type: text/xml\r\n"), "{head}");
            assert_eq!(body, "<AnyConnectProfile/>\n");
        }
        client
            .write_all(get("/profiles/other.xml").as_bytes())
            .await
            .unwrap();
        let (head, _) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
        assert!(
            head.contains("\r\nStrict-Transport-Security: max-age=60\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &settings
        ),
        script
    );
    assert!(matches!(outcome.unwrap(), Outcome::Closed));
}

/// Without a login on this connection the profile is refused and the connection closed.
#[tokio::test]
async fn user_profile_needs_a_login() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([]);
    let settings = with_profile();
    let script = async {
        client
            .write_all(get("/profiles/corp.xml").as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
        assert!(!body.contains("AnyConnectProfile"));
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    };
    let (outcome, ()) = tokio::join!(
        http::serve(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &settings
        ),
        script
    );
    assert!(matches!(outcome.unwrap(), Outcome::Closed));
}

fn cert(alone: bool, no_form: bool) -> http::ClientCert {
    http::ClientCert {
        chain: vec![b"leaf".to_vec(), b"intermediate".to_vec()],
        alone,
        no_form,
    }
}

/// `auth = certificate` alone: the init POST is answered with `complete`, no form; the chain
/// goes to sec-mod with no user name and no password.
#[tokio::test]
async fn a_certificate_alone_logs_in_at_init_without_a_form() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([complete()]);
    let script = async {
        client.write_all(post("/", INIT).as_bytes()).await.unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(body.contains("type=\"complete\""), "{body}");
        drop(client);
    };
    let cert = cert(true, true);
    let (outcome, ()) = tokio::join!(
        http::serve_with_cert(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS,
            &cert
        ),
        script
    );
    assert!(matches!(outcome.unwrap(), Outcome::Closed));
    let asked = secmod.asked.borrow();
    assert_eq!(
        asked[..],
        [ToSecMod::AuthStart {
            username: String::new(),
            password: String::new(),
            group: None,
            // The device facts of the init document travel with the certificate too.
            facts: rocserv_proto::ipc::worker_secmod::ClientFacts {
                user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
                platform: Some("linux-64".into()),
                cert_chain: cert.chain.clone(),
                ..Default::default()
            },
        }]
    );
}

/// No password method: a refused certificate is a 401 and the end, never a password form.
#[tokio::test]
async fn a_refused_certificate_without_a_password_method_is_401() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([AuthStep::Failed { retry: true }]);
    let script = async {
        client.write_all(post("/", INIT).as_bytes()).await.unwrap();
        let (head, _) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    };
    let cert = cert(true, true);
    let (outcome, ()) = tokio::join!(
        http::serve_with_cert(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS,
            &cert
        ),
        script
    );
    assert!(matches!(outcome.unwrap(), Outcome::Closed));
}

/// `enable-auth = certificate` beside a password method: a refused certificate falls back to
/// the form once; the password login then carries the chain too (sec-mod runs `auth` on it).
#[tokio::test]
async fn a_refused_alternative_certificate_falls_back_to_the_form() {
    let (mut server, mut client) = tokio::io::duplex(64 * 1024);
    let secmod = FakeSecMod::new([AuthStep::Failed { retry: true }, complete()]);
    let script = async {
        client.write_all(post("/", INIT).as_bytes()).await.unwrap();
        let (head, body) = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(body.contains("name=\"password\""), "{body}");
        client
            .write_all(post("/auth", &reply("test", "pw")).as_bytes())
            .await
            .unwrap();
        let (_, body) = response(&mut client).await;
        assert!(body.contains("type=\"complete\""), "{body}");
        drop(client);
    };
    let cert = cert(true, false);
    let (outcome, ()) = tokio::join!(
        http::serve_with_cert(
            &mut server,
            &secmod,
            Banners::default(),
            &NO_GROUPS,
            relaxed(),
            &NO_EXTRAS,
            &cert
        ),
        script
    );
    assert!(matches!(outcome.unwrap(), Outcome::Closed));
    let asked = secmod.asked.borrow();
    assert_eq!(asked.len(), 2);
    match &asked[1] {
        ToSecMod::AuthStart {
            username, facts, ..
        } => {
            assert_eq!(username, "test");
            assert_eq!(facts.cert_chain, cert.chain);
        }
        other => panic!("{other:?}"),
    }
}
