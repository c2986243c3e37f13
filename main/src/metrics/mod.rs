//! The metrics endpoint (`metrics-listen`, ours; doc/metrics.md): Prometheus text format over
//! plain HTTP/1.1, served by its own task in main. Off unless configured.
//!
//! Kept off the data path and away from logins: tunnels run in the workers and never wait on
//! main's event loop for a scrape; here the event loop only accepts, reads one small request
//! head and writes the answer. Gathering (a copy of the tunnel registry, sysfs reads of each
//! device's counters, as occtl `show users`) and encoding run on tokio's blocking pool.
//! Strict and bounded, since anything that reaches the port may send anything:
//! - `GET /metrics` and `GET /health` only (a query string is ignored); other methods 405,
//!   other paths 404, a request with a body or anything httparse refuses 400;
//! - `/health` is for load balancers (doc/cluster.md "Drain and health"): `200 ok` while the
//!   node takes new clients, `503 draining` from the start of a `server-drain-ms` drain; with
//!   a cluster the body also says `store up` or `store down` (a down store does not fail it:
//!   the node still serves, alone);
//! - the head is parsed by `rocserv_proto::http::parse_request_head` (sans-IO, fuzzed:
//!   `http_head`), capped here at [`MAX_REQUEST`] bytes (431 above);
//! - [`MAX_SCRAPES`] connections at once, more are closed at accept; the head must arrive
//!   within [`HEAD_TIMEOUT`], the whole exchange ends within [`SCRAPE_TIMEOUT`];
//! - one request per connection (`Connection: close`).

pub mod series;
pub mod text;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rocserv_proto::config::Config;
use rocserv_proto::http::{parse_request_head, Method, ParsedHead, RequestHead, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::state::Shared;

/// Scrapes served at once; Prometheus and an agent or two need no more.
pub const MAX_SCRAPES: usize = 4;
/// Largest request head read: a scraper's is a few hundred bytes.
pub const MAX_REQUEST: usize = 4096;
/// Time for the request head to arrive after the connection was accepted.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the whole exchange; a reader slower than this is cut off.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);

/// The bound listener, before the server state exists.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
}

/// The serving task; dropping it stops serving.
#[derive(Debug)]
pub struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bind `metrics-listen`, if set. Call inside the runtime.
pub fn bind(config: &Config) -> std::io::Result<Option<Bound>> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(Some(Bound {
        listener: TcpListener::from_std(listener)?,
    }))
}

impl Bound {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve scrapes until the returned handle is dropped.
    pub fn serve(self, shared: Arc<Shared>) -> Running {
        let listener = self.listener;
        let permits = Arc::new(Semaphore::new(MAX_SCRAPES));
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                            log::debug!("metrics: {peer}: {MAX_SCRAPES} scrapes already; closed");
                            continue;
                        };
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            let _permit = permit;
                            let served =
                                tokio::time::timeout(SCRAPE_TIMEOUT, scrape(stream, shared)).await;
                            match served {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => log::debug!("metrics: {peer}: {e}"),
                                Err(_) => log::debug!("metrics: {peer}: timed out"),
                            }
                        });
                    }
                    // EMFILE and friends: keep serving, without spinning.
                    Err(e) => {
                        log::warn!("metrics: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Running { task }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

/// Route a parsed head. Pure, so that the rules are unit-tested.
pub fn route(head: &RequestHead) -> Route {
    if head.method != Method::Get {
        return Route::MethodNotAllowed;
    }
    if head.content_length != 0 {
        return Route::BadRequest;
    }
    let path = head.target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Route::Metrics
    } else if path == "/health" {
        Route::Health
    } else {
        Route::NotFound
    }
}

/// Where the bytes read so far leave the request.
pub fn classify(buf: &[u8]) -> Option<Route> {
    match parse_request_head(buf) {
        Ok(ParsedHead::Complete { head, .. }) => Some(route(&head)),
        Ok(ParsedHead::NeedMore) if buf.len() >= MAX_REQUEST => Some(Route::TooLarge),
        Ok(ParsedHead::NeedMore) => None,
        Err(_) => Some(Route::BadRequest),
    }
}

async fn scrape(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let routed = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await;
    let Ok(routed) = routed else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no request head in time",
        ));
    };
    let response = match routed? {
        Route::Metrics => {
            let body =
                tokio::task::spawn_blocking(move || series::render(&series::gather(&shared)))
                    .await
                    .map_err(std::io::Error::other)?;
            Response::new(200, "OK")
                .header("Content-Type", text::CONTENT_TYPE)
                .body(body)
        }
        Route::Health => {
            let (status, reason, body) = health(&shared);
            Response::new(status, reason)
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("Cache-Control", "no-store")
                .body(body.into_bytes())
        }
        Route::NotFound => Response::new(404, "Not Found"),
        Route::MethodNotAllowed => Response::new(405, "Method Not Allowed").header("Allow", "GET"),
        Route::BadRequest => Response::new(400, "Bad Request"),
        Route::TooLarge => Response::new(431, "Request Header Fields Too Large"),
    };
    let mut out = Vec::new();
    response.header("Connection", "close").encode(&mut out);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// The health answer: status, reason and body.
pub fn health(shared: &Shared) -> (u16, &'static str, String) {
    let draining = shared.draining.load(std::sync::atomic::Ordering::Relaxed);
    let store = shared.cluster.as_ref().map(|c| c.store_up());
    health_answer(draining, store)
}

/// [`health`] without the state (unit-tested).
pub fn health_answer(draining: bool, store_up: Option<bool>) -> (u16, &'static str, String) {
    let (status, reason, word) = if draining {
        (503, "Service Unavailable", "draining")
    } else {
        (200, "OK", "ok")
    };
    let body = match store_up {
        None => format!("{word}\n"),
        Some(true) => format!("{word}\nstore up\n"),
        Some(false) => format!("{word}\nstore down\n"),
    };
    (status, reason, body)
}

/// Read until the head is complete, refused, or [`MAX_REQUEST`] bytes long.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Route> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let room = MAX_REQUEST.saturating_sub(buf.len()).min(chunk.len());
        let Some(window) = chunk.get_mut(..room) else {
            return Ok(Route::TooLarge);
        };
        let n = stream.read(window).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(window.get(..n).unwrap_or_default());
        if let Some(route) = classify(&buf) {
            return Ok(route);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let ask = |req: &str| classify(req.as_bytes());
        assert_eq!(
            ask("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n"),
            Some(Route::Metrics)
        );
        assert_eq!(
            ask("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Route::Metrics)
        );
        assert_eq!(ask("GET / HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(ask("GET /metricsx HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(
            ask("GET /metrics/../x HTTP/1.1\r\n\r\n"),
            Some(Route::NotFound)
        );
        assert_eq!(
            ask("POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Route::MethodNotAllowed)
        );
        assert_eq!(
            ask("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Some(Route::MethodNotAllowed)
        );
        assert_eq!(
            ask("GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            Some(Route::BadRequest)
        );
        assert_eq!(
            ask("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(Route::BadRequest)
        );
        assert_eq!(ask("\x16\x03\x01\x02\x00"), Some(Route::BadRequest));
        assert_eq!(ask("GET /health HTTP/1.1\r\n\r\n"), Some(Route::Health));
        assert_eq!(ask("GET /health?x HTTP/1.0\r\n\r\n"), Some(Route::Health));
        assert_eq!(
            ask("POST /health HTTP/1.1\r\n\r\n"),
            Some(Route::MethodNotAllowed)
        );
    }

    #[test]
    fn health_fails_only_when_draining() {
        assert_eq!(health_answer(false, None), (200, "OK", "ok\n".into()));
        assert_eq!(
            health_answer(false, Some(false)),
            (200, "OK", "ok\nstore down\n".into())
        );
        assert_eq!(
            health_answer(true, Some(true)),
            (503, "Service Unavailable", "draining\nstore up\n".into())
        );
    }

    #[test]
    fn a_partial_head_waits_until_the_cap() {
        assert_eq!(classify(b"GET /metrics HTTP/1.1\r\nHost:"), None);
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST, b'a');
        assert_eq!(classify(&long), Some(Route::TooLarge));
    }
}
