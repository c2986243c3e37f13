//! The HTTP phase over the TLS stream (protocol.md §1, §0 limits): a small keep-alive loop on
//! `proto::http` (not hyper, which re-cases header names: dependency-findings.md §8). It reads
//! one request at a time, answers it with one write, and ends either closed or with a CONNECT
//! to hand to the tunnel. At most [`MAX_REQUESTS`] requests; a request that arrives before the
//! previous one was answered (pipelining), or bytes that are not HTTP, close the connection. The
//! caller bounds the whole phase by `auth-timeout`; [`ReadTimeouts`] (`handshake-timeout`) bound
//! the first request and every request once its first byte arrived, so a client that trickles
//! a request (slowloris) is cut off early.

pub mod camouflage;
pub mod connect;
pub mod login;
pub mod router;

use rocserv_proto::auth_xml::{self, profile, render_complete, render_login_form, AuthXmlError};
use rocserv_proto::http::{self, HttpError, Method, ParsedHead, RequestHead, Response, MAX_BODY};
use rocserv_proto::ipc::main_worker::ClientSettings;
use rocserv_proto::ipc::worker_secmod::{AuthStep, ClientFacts, ToSecMod};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Duration, Instant};

use crate::ipc::{AuthService, IpcChannelError};
use connect::Connect;
pub use login::Groups;
use login::{Login, Reply, Step};
use router::Route;

/// Requests per TLS connection (ocserv src/vpn.h `MAX_HTTP_REQUESTS`, protocol.md §0).
pub const MAX_REQUESTS: usize = 16;

const XML: &str = "text/xml; charset=utf-8";

/// Texts the HTTP phase shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Banners<'a> {
    /// `pre-login-banner`, on the login form.
    pub pre_login: Option<&'a str>,
    /// `banner`, in the `complete` document.
    pub post_login: Option<&'a str>,
}

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy)]
pub struct ReadTimeouts {
    /// The first request (head and body) must be in by then: the connection's handshake
    /// deadline, which the TLS handshake also counts against.
    pub first_request_by: Instant,
    /// Any later request must be in this long after its first byte. The wait before that
    /// byte (a user typing a password) is bounded by `auth-timeout` only.
    pub per_request: Duration,
}

/// How the HTTP phase ended.
#[derive(Debug)]
pub enum Outcome {
    /// A CONNECT with a cookie: the caller asks main and answers it.
    Tunnel(Box<Connect>),
    /// The connection is done (client closed, final answer sent, limit reached).
    Closed,
}

/// The HTTP phase ended abnormally; the caller logs it once and closes.
#[derive(Debug, thiserror::Error)]
pub enum HttpPhaseError {
    /// Reading from or writing to the client failed.
    #[error("client connection")]
    Io(#[from] std::io::Error),
    /// The client sent something that is not acceptable HTTP.
    #[error("bad request from client")]
    Http(#[from] HttpError),
    /// The client's login document could not be parsed.
    #[error("bad login document from client")]
    AuthXml(#[from] AuthXmlError),
    /// The client closed in the middle of a request.
    #[error("client closed in the middle of a request")]
    Truncated,
    /// A second request arrived before the first was answered.
    #[error("client pipelined requests")]
    Pipelined,
    /// More than [`MAX_REQUESTS`] requests.
    #[error("more than {MAX_REQUESTS} requests on one connection")]
    TooManyRequests,
    /// The request did not arrive in time ([`ReadTimeouts`]).
    #[error("client too slow sending its request")]
    TooSlow,
    /// sec-mod could not be asked.
    #[error("sec-mod")]
    SecMod(#[from] IpcChannelError),
}

/// The client's certificate and what the configuration lets it do.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// The chain the client sent (DER, leaf first), its key proven by the handshake; empty
    /// without one. sec-mod checks it.
    pub chain: Vec<Vec<u8>>,
    /// A certificate alone logs in: try it before showing the form.
    pub alone: bool,
    /// There is no form (`auth = certificate` only): a refused certificate ends the login.
    pub no_form: bool,
}

/// Serve requests on `stream` until a CONNECT or the end of the connection.
pub async fn serve<S>(
    stream: &mut S,
    auth: &dyn AuthService,
    banners: Banners<'_>,
    groups: &Groups,
    timeouts: ReadTimeouts,
    client: &ClientSettings,
) -> Result<Outcome, HttpPhaseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cert = ClientCert::default();
    serve_with_cert(stream, auth, banners, groups, timeouts, client, &cert).await
}

/// [`serve`] for a client that may log in with its certificate.
pub async fn serve_with_cert<S>(
    stream: &mut S,
    auth: &dyn AuthService,
    banners: Banners<'_>,
    groups: &Groups,
    timeouts: ReadTimeouts,
    client: &ClientSettings,
    cert: &ClientCert,
) -> Result<Outcome, HttpPhaseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    let mut login = Login::ExpectInit;
    // The certificate alone is tried once per connection (then the form, if there is one),
    // as ocserv answers the first POST of a certificate login with `complete`.
    let mut certificate_tried = false;
    // What the client said about its device in the documents of this connection so far.
    let mut device = auth_xml::DeviceFacts::default();
    // A login completed on this connection: the profile may be fetched.
    let mut logged_in = false;
    // `camouflage`: closed until a request of this connection carried the secret.
    let mut hidden = client.camouflage.as_ref().map(camouflage::Gate::new);
    for n in 0..MAX_REQUESTS {
        let first_by = (n == 0).then_some(timeouts.first_request_by);
        let read = read_request(stream, &mut buf, first_by, timeouts.per_request);
        let Some((mut head, body)) = read.await? else {
            return Ok(Outcome::Closed);
        };
        if let Some(gate) = &hidden {
            match unveil(gate, &head) {
                Unveil::Pass(path) => {
                    // The rest of the phase (routing, select-group-by-url, logs) sees the
                    // target without the secret, as in ocserv.
                    head.target = path;
                    hidden = None;
                }
                Unveil::Tunnel(mut connect) => {
                    connect.camouflaged = true;
                    return Ok(Outcome::Tunnel(connect));
                }
                Unveil::Hide => {
                    let path = head.target.split('?').next().unwrap_or_default();
                    log::info!(
                        "camouflage: {:?} {path:?} without the secret, answering as a web server",
                        head.method
                    );
                    write_response(stream, &gate.answer()).await?;
                    return Ok(Outcome::Closed);
                }
            }
        }
        log::debug!("{:?} {}", head.method, head.target);
        let (response, keep_alive) = match router::route(&head.method, &head.target) {
            Route::Tunnel => match connect::parse(&head) {
                Ok(connect) => return Ok(Outcome::Tunnel(Box::new(connect))),
                Err(err) => {
                    log::info!("{err}");
                    (
                        Response::new(503, "Service Unavailable").header("X-Reason", "No cookie"),
                        false,
                    )
                }
            },
            Route::LoginForm => {
                let (next, reply) = login.handle_get(banners.pre_login, groups);
                login = next;
                reply_response(reply, banners, client)
            }
            Route::AuthStep => {
                let mut request = auth_xml::parse_client_body(&body)?;
                device.update(std::mem::take(&mut request.device));
                let facts = device.login_facts(|name| head.header(name));
                let url_group = router::group_of_target(&head.target);
                let by_certificate =
                    cert.no_form || (cert.alone && !cert.chain.is_empty() && !certificate_tried);
                let (next, mut step) = if by_certificate {
                    certificate_tried = true;
                    certificate_login(&facts)
                } else {
                    login.handle_post(request, url_group, &facts, banners.pre_login, groups)
                };
                if let Step::AskSecMod(ToSecMod::AuthStart { facts, .. }) = &mut step {
                    facts.cert_chain.clone_from(&cert.chain);
                }
                let (next, reply) = match step {
                    Step::Reply(reply) => (next, reply),
                    Step::AskSecMod(question) => {
                        let verdict = auth.auth(question)?;
                        log_verdict(&verdict);
                        let failed = matches!(verdict, AuthStep::Failed { .. });
                        match next.handle_secmod(verdict, banners.pre_login, groups) {
                            // No form to fall back to.
                            _ if failed && cert.no_form => (Login::ExpectInit, Reply::Rejected),
                            answered => answered,
                        }
                    }
                };
                login = next;
                logged_in |= matches!(reply, Reply::Complete { .. });
                reply_response(reply, banners, client)
            }
            Route::Profile => profile_response(&head.target, logged_in, client),
            Route::Stub(stub) => (
                Response::new(200, "OK")
                    .header("Connection", "Keep-Alive")
                    .header("Content-Type", stub.content_type)
                    .header("X-Transcend-Version", "1")
                    .body(stub.body),
                true,
            ),
            Route::NotFound => {
                log::info!("no such URL: {:?} {:?}", head.method, head.target);
                (
                    Response::new(404, "Not found")
                        .header("Connection", "close")
                        .header("Content-Type", "text/html")
                        .header("X-Transcend-Version", "1")
                        .body("<html><body><h1>404 Not found</h1></body></html>\n"),
                    false,
                )
            }
        };
        let response = included_headers(response, client);
        write_response(stream, &response).await?;
        if !keep_alive {
            return Ok(Outcome::Closed);
        }
    }
    Err(HttpPhaseError::TooManyRequests)
}

/// What the camouflage gate does with a request of a connection that has not shown the secret.
enum Unveil {
    /// The query is the secret: serve the request with this target (the path).
    Pass(String),
    /// A CONNECT with a cookie: main decides; a refused cookie gets the gate's answer.
    Tunnel(Box<Connect>),
    /// Answer as a plain web server and close.
    Hide,
}

fn unveil(gate: &camouflage::Gate, head: &RequestHead) -> Unveil {
    if head.method == Method::Connect {
        // openconnect does not repeat the query on CONNECT (ocserv checks only the cookie
        // there too); anything else than a well-formed tunnel request is hidden.
        return match (
            router::route(&head.method, &head.target),
            connect::parse(head),
        ) {
            (Route::Tunnel, Ok(connect)) => Unveil::Tunnel(Box::new(connect)),
            _ => Unveil::Hide,
        };
    }
    match gate.pass(&head.target) {
        Some(path) => Unveil::Pass(path.to_owned()),
        None => Unveil::Hide,
    }
}

/// The login by certificate alone: no user name, no password (sec-mod reads the user from the
/// chain, which the caller puts in as for every AuthStart); the verdict goes through the usual [`Login::handle_secmod`].
fn certificate_login(facts: &ClientFacts) -> (Login, Step) {
    (
        Login::AwaitingVerdict {
            group: login::Choice::Default,
        },
        Step::AskSecMod(ToSecMod::AuthStart {
            username: String::new(),
            password: String::new(),
            group: None,
            facts: facts.clone(),
        }),
    )
}

/// Write one response with a single write, then flush.
pub async fn write_response<S>(stream: &mut S, response: &Response) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(512 + response.body.len());
    response.encode(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Read one whole request (head and body) into `buf`; `None` when the client closed cleanly
/// between requests. It must be complete by `by` (if given) and `per_request` after its first
/// byte.
async fn read_request<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    mut by: Option<Instant>,
    per_request: Duration,
) -> Result<Option<(RequestHead, Vec<u8>)>, HttpPhaseError>
where
    S: AsyncRead + Unpin,
{
    buf.clear();
    let (head, head_len) = loop {
        match http::parse_request_head(buf)? {
            ParsedHead::Complete { head, head_len } => break (head, head_len),
            ParsedHead::NeedMore => {
                if !read_before(stream, buf, &mut by, per_request).await? {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(HttpPhaseError::Truncated)
                    };
                }
            }
        }
    };
    if head.content_length > MAX_BODY {
        return Err(HttpError::BodyTooLarge(head.content_length).into());
    }
    let end = head_len.saturating_add(head.content_length);
    while buf.len() < end {
        if !read_before(stream, buf, &mut by, per_request).await? {
            return Err(HttpPhaseError::Truncated);
        }
    }
    if buf.len() > end {
        // ocserv closes on pipelining (protocol.md §0); so does openconnect never pipeline.
        return Err(HttpPhaseError::Pipelined);
    }
    let body = buf.get(head_len..end).unwrap_or_default().to_vec();
    Ok(Some((head, body)))
}

/// [`read_more`] within the request's deadline, which starts with its first byte.
async fn read_before<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    by: &mut Option<Instant>,
    per_request: Duration,
) -> Result<bool, HttpPhaseError> {
    if !buf.is_empty() {
        let started = Instant::now() + per_request;
        *by = Some(by.map_or(started, |by| by.min(started)));
    }
    let more = match *by {
        Some(deadline) => tokio::time::timeout_at(deadline, read_more(stream, buf))
            .await
            .map_err(|_| HttpPhaseError::TooSlow)?,
        None => read_more(stream, buf).await,
    };
    Ok(more?)
}

/// Append what the client sent next; false on end of stream.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.reserve(4096);
    Ok(stream.read_buf(buf).await? > 0)
}

fn reply_response(reply: Reply, banners: Banners<'_>, client: &ClientSettings) -> (Response, bool) {
    match reply {
        Reply::Form(form) => (xml(render_login_form(&form)), true),
        Reply::Complete { cookie } => {
            let set = |name: &str| format!("{name}={cookie}; Secure; HttpOnly");
            let mut document = render_complete(banners.post_login, &cookie);
            let profile = client.profile.as_ref().map(|p| (&*p.name, &*p.sha1));
            if let Some((name, sha1)) = profile {
                document = profile::append_to_root(&document, &profile::manifest(name, sha1));
            }
            let [clear, webvpnc] = profile::webvpnc_cookies(&client.cert_sha1, profile);
            let response = xml(document)
                .header("Set-Cookie", set("webvpncontext"))
                .header("Set-Cookie", set("webvpn"))
                .header("Set-Cookie", clear)
                .header("Set-Cookie", webvpnc);
            (response, true)
        }
        // protocol.md §1.8: no WWW-Authenticate (openconnect would try HTTP auth), then close.
        Reply::Rejected => (
            Response::new(401, "Authentication failed").header("X-Transcend-Version", "1"),
            false,
        ),
    }
}

/// `GET /profiles/NAME`: the `user-profile`, to a connection that logged in (ocserv asks for
/// the session cookie there; this worker has no way to check a cookie from another
/// connection, so it serves the connection it logged in itself).
fn profile_response(target: &str, logged_in: bool, client: &ClientSettings) -> (Response, bool) {
    if !logged_in {
        log::info!("profile asked for before logging in");
        return (
            Response::new(401, "Unauthorized")
                .header("Connection", "close")
                .header("X-Transcend-Version", "1"),
            false,
        );
    }
    let asked = router::profile_name(target);
    match &client.profile {
        Some(profile) if asked == Some(profile.name.as_str()) => (
            Response::new(200, "OK")
                .header("Connection", "Keep-Alive")
                .header("Content-Type", "text/xml")
                .header("X-Transcend-Version", "1")
                .body(profile.xml.clone()),
            true,
        ),
        _ => {
            log::info!("no such profile: {target:?}");
            (
                Response::new(404, "Not found")
                    .header("Connection", "close")
                    .header("Content-Type", "text/html")
                    .header("X-Transcend-Version", "1")
                    .body("<html><body><h1>404 Not found</h1></body></html>\n"),
                false,
            )
        }
    }
}

/// `included-http-headers` on an answer of the HTTP phase (checked at configuration time).
fn included_headers(mut response: Response, client: &ClientSettings) -> Response {
    for (name, value) in &client.included_http_headers {
        response = response.header(name.clone(), value.clone());
    }
    response
}

fn xml(body: String) -> Response {
    Response::new(200, "OK")
        .header("Content-Type", XML)
        .header("X-Transcend-Version", "1")
        .body(body)
}

fn log_verdict(verdict: &AuthStep) {
    match verdict {
        AuthStep::Complete { username, sid, .. } => {
            log::info!("user '{username}' logged in (session {sid})");
        }
        AuthStep::Failed { retry } => log::info!("login failed (retry allowed: {retry})"),
        AuthStep::Continue { .. } => log::debug!("login needs another answer"),
    }
}
