//! The small HTTP/1.1 subset of the VPN port (protocol.md §1-2): request heads in, response
//! heads out with header names written byte-exactly (openconnect compares them case-sensitively,
//! dependency-findings.md §8). Parsed by the sandboxed worker from the internet.
//! (Skeleton: being written; the signatures are the contract.)

/// Largest request head we read (ocserv: 16 KiB).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body we accept (ocserv: 256 KiB; logins are a few hundred bytes).
pub const MAX_BODY: usize = 256 * 1024;

/// Request methods we route on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Connect,
    Other(String),
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request target as sent (origin-form path, possibly with a query).
    pub target: String,
    /// Header names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// `Content-Length`, 0 when absent.
    pub content_length: usize,
}

impl RequestHead {
    /// The first header of that name, compared case-insensitively (request headers are ours to
    /// interpret leniently).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` from the `Cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        let _ = name;
        None
    }
}

/// Outcome of [`parse_request_head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedHead {
    /// A whole head; the body (if any) starts at `head_len`.
    Complete { head: RequestHead, head_len: usize },
    /// Valid so far; read more.
    NeedMore,
}

/// The request is not acceptable HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP request head")]
    Malformed,
    #[error("HTTP request head exceeds {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("HTTP request body of {0} bytes exceeds the limit")]
    BodyTooLarge(usize),
    #[error("unsupported transfer encoding")]
    UnsupportedTransferEncoding,
}

/// Parse the request head at the start of `buf`.
pub fn parse_request_head(buf: &[u8]) -> Result<ParsedHead, HttpError> {
    let _ = buf;
    Err(HttpError::Malformed)
}

/// A response to write. Header names are written exactly as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Append the whole response to `out`. Adds `Content-Length` unless the status is a
    /// CONNECT success (`200 CONNECTED` carries no length: the stream becomes CSTP).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = out;
    }
}
