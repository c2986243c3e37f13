//! The small HTTP/1.1 subset of the VPN port (protocol.md §1-2): request heads in, response
//! heads out with header names written byte-exactly (openconnect compares them case-sensitively,
//! dependency-findings.md §8). Parsed by the sandboxed worker from the internet.
//!
//! Requests: [`parse_request_head`] reads at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers
//! (httparse underneath) and says whether the head is complete, needs more bytes, or is refused.
//! Bodies are `Content-Length` only: openconnect never sends chunked requests, and refusing
//! `Transfer-Encoding` outright leaves no room for length confusion (request smuggling).
//!
//! Responses: [`Response`] is written exactly as built, plus `Content-Length` (omitted only for
//! `200 CONNECTED`, after which the stream carries CSTP, protocol.md §2.2). A response that could
//! split the stream (CR/LF in a header, a name that is not an HTTP token, a caller-supplied
//! framing header) is refused at encode time: [`Response::try_encode`] returns the error, and
//! [`Response::encode`] writes a fixed `500` with `Connection: close` instead, so that no caller
//! mistake ever puts attacker-influenced bytes on the wire as a second response.

/// Largest request head we read (ocserv: 16 KiB).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body we accept (ocserv: 256 KiB; logins are a few hundred bytes).
pub const MAX_BODY: usize = 256 * 1024;
/// Most request headers we accept; openconnect sends about 15 (protocol.md §1.4, §2.1).
pub const MAX_HEADERS: usize = 64;

/// Request methods we route on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Connect,
    /// Any other token, as sent (methods are case-sensitive).
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "CONNECT" => Self::Connect,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request target as sent (origin-form path, possibly with a query).
    pub target: String,
    /// Header names as sent, values trimmed. Values that are not UTF-8 are kept with U+FFFD in
    /// place of the bad bytes: nothing we read from headers is binary.
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
    ///
    /// Each header is `a=b; c=d`: pairs split at `;`, name and value at the first `=` (a value
    /// may contain `=`, e.g. base64 padding), whitespace around both trimmed. Cookie names are
    /// case-sensitive; the first match over all `Cookie` headers wins.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
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
    /// Not HTTP/1.x, more than [`MAX_HEADERS`] headers, or a `Content-Length` that is not one
    /// plain decimal number (or several that disagree).
    #[error("malformed HTTP request head")]
    Malformed,
    /// No end of head within [`MAX_HEAD`] bytes.
    #[error("HTTP request head exceeds {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// `Content-Length` above [`MAX_BODY`] (saturated at `usize::MAX` when it does not fit).
    #[error("HTTP request body of {0} bytes exceeds the limit")]
    BodyTooLarge(usize),
    /// A `Transfer-Encoding` header in a request.
    #[error("unsupported transfer encoding")]
    UnsupportedTransferEncoding,
}

/// Parse the request head at the start of `buf`.
///
/// Only the first [`MAX_HEAD`] bytes are looked at, so a caller may keep appending to `buf`
/// until this returns something other than [`ParsedHead::NeedMore`].
pub fn parse_request_head(buf: &[u8]) -> Result<ParsedHead, HttpError> {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if window.len() < MAX_HEAD => {
            return Ok(ParsedHead::NeedMore)
        }
        Ok(httparse::Status::Partial) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::Malformed),
    };
    // httparse fills method and path on every Complete.
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(HttpError::Malformed);
    };

    let mut headers = Vec::with_capacity(request.headers.len());
    let mut content_length = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let len = parse_content_length(header.value)?;
            // Repeating the same length is allowed (RFC 9110 §8.6); disagreeing is smuggling.
            if content_length.is_some_and(|seen| seen != len) {
                return Err(HttpError::Malformed);
            }
            content_length = Some(len);
        }
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim_matches([' ', '\t']);
        headers.push((header.name.to_owned(), value.to_owned()));
    }

    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(HttpError::BodyTooLarge(content_length));
    }
    Ok(ParsedHead::Complete {
        head: RequestHead {
            method: Method::from_token(method),
            target: target.to_owned(),
            headers,
            content_length,
        },
        head_len,
    })
}

/// `1*DIGIT` and nothing else (no sign, no list, no spaces inside).
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed);
    }
    let len = digits.iter().try_fold(0usize, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(usize::from(d.wrapping_sub(b'0')))
    });
    Ok(len.unwrap_or(usize::MAX))
}

/// A response to write. Header names are written exactly as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A [`Response`] that cannot be written safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status is not a three-digit code.
    #[error("HTTP status {0} is not a three-digit code")]
    BadStatus(u16),
    /// The reason phrase holds CR, LF or another control character.
    #[error("HTTP reason phrase contains a control character")]
    BadReason,
    /// A header name is empty or not an HTTP token.
    #[error("invalid HTTP header name {0:?}")]
    BadHeaderName(String),
    /// A header value holds CR, LF or another control character (response splitting).
    #[error("HTTP header {0} has a value with a control character")]
    BadHeaderValue(String),
    /// `Content-Length` and `Transfer-Encoding` are written by [`Response::encode`] alone.
    #[error("HTTP header {0} is set by the encoder, not by the caller")]
    FramingHeader(String),
    /// `200 CONNECTED` switches the stream to CSTP, so it carries no body.
    #[error("a 200 CONNECTED response cannot carry a body")]
    BodyOnConnected,
}

/// Written by [`Response::encode`] in place of a response that failed validation.
const FALLBACK_500: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

impl Response {
    /// A response with no headers and no body.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Append a header, name spelled exactly as it must appear on the wire. Checked when the
    /// response is encoded (see [`Response::try_encode`]), or now with [`check_header`].
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// True for the CONNECT success, which has no `Content-Length` and no body (protocol.md
    /// §2.2: the blank line ends HTTP, CSTP follows).
    pub fn is_connected(&self) -> bool {
        self.status == 200 && self.reason == "CONNECTED"
    }

    /// Append the whole response to `out`. Adds `Content-Length` unless the status is a
    /// CONNECT success (`200 CONNECTED` carries no length: the stream becomes CSTP).
    ///
    /// A response that [`Response::try_encode`] refuses is replaced by a bare
    /// `500 Internal Server Error` with `Connection: close`; the caller should then close.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if self.try_encode(out).is_err() {
            out.extend_from_slice(FALLBACK_500);
        }
    }

    /// Append the whole response to `out`, or leave `out` untouched and say why it cannot be
    /// written safely.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), ResponseError> {
        self.check()?;
        out.reserve(self.encoded_len_hint());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            write_header(out, name, value);
        }
        if !self.is_connected() {
            write_header(out, "Content-Length", &self.body.len().to_string());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Ok(())
    }

    fn check(&self) -> Result<(), ResponseError> {
        if !(100..=999).contains(&self.status) {
            return Err(ResponseError::BadStatus(self.status));
        }
        if !self.reason.bytes().all(is_field_byte) {
            return Err(ResponseError::BadReason);
        }
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        if self.is_connected() && !self.body.is_empty() {
            return Err(ResponseError::BodyOnConnected);
        }
        Ok(())
    }

    fn encoded_len_hint(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len().saturating_add(v.len()).saturating_add(4))
            .fold(0, usize::saturating_add);
        headers
            .saturating_add(self.reason.len())
            .saturating_add(self.body.len())
            .saturating_add(64)
    }
}

/// Whether `name: value` may be written as a response header: `name` a non-empty HTTP token
/// other than the framing headers the encoder owns, `value` free of CR, LF and other control
/// characters except tab.
pub fn check_header(name: &str, value: &str) -> Result<(), ResponseError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(ResponseError::BadHeaderName(name.to_owned()));
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(ResponseError::FramingHeader(name.to_owned()));
    }
    if !value.bytes().all(is_field_byte) {
        return Err(ResponseError::BadHeaderValue(name.to_owned()));
    }
    Ok(())
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Visible characters, space, tab and non-ASCII (UTF-8) bytes; never CR, LF, NUL or DEL.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &[u8] = include_bytes!("../tests/vectors/http/init_post.http");
    const CONNECT: &[u8] = include_bytes!("../tests/vectors/http/connect.http");

    fn complete(buf: &[u8]) -> (RequestHead, usize) {
        match parse_request_head(buf) {
            Ok(ParsedHead::Complete { head, head_len }) => (head, head_len),
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_openconnect_init_post() {
        let (head, head_len) = complete(INIT);
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.target, "/");
        assert_eq!(head.content_length, 369);
        assert_eq!(
            head.header("user-agent"),
            Some("Open AnyConnect VPN Agent v9.01-3")
        );
        assert_eq!(head.header("X-AGGREGATE-AUTH"), Some("1"));
        assert_eq!(head.headers[0].0, "Host");
        let body = &INIT[head_len..];
        assert!(body.starts_with(b"<?xml"));
        assert_eq!(body.len(), 369);
    }

    #[test]
    fn parses_the_openconnect_connect() {
        let (head, head_len) = complete(CONNECT);
        assert_eq!(head.method, Method::Connect);
        assert_eq!(head.target, "/CSCOSSLC/tunnel");
        assert_eq!(head.content_length, 0);
        assert_eq!(head_len, CONNECT.len());
        assert_eq!(
            head.cookie("webvpn"),
            Some("AOzuCpDN6hEictBLEDdBCNozb2u2b9lBKvEVo0qqgws=")
        );
        assert_eq!(head.header("X-CSTP-Base-MTU"), Some("65535"));
    }

    #[test]
    fn every_proper_prefix_needs_more() {
        let (_, head_len) = complete(CONNECT);
        for cut in 0..head_len {
            assert_eq!(
                parse_request_head(&CONNECT[..cut]),
                Ok(ParsedHead::NeedMore),
                "{cut}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed_not_need_more() {
        for bad in [
            &b"STF\x01\x00\x00\x03\x00"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        ] {
            assert_eq!(
                parse_request_head(bad),
                Err(HttpError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn head_size_is_bounded() {
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD - 1, b'0');
        assert_eq!(parse_request_head(&big), Ok(ParsedHead::NeedMore));
        big.resize(MAX_HEAD + 100, b'0');
        assert_eq!(parse_request_head(&big), Err(HttpError::HeadTooLarge));
        // A head that ends exactly at the limit is fine, whatever follows it.
        let mut exact = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        exact.resize(MAX_HEAD - 4, b'0');
        exact.extend_from_slice(b"\r\n\r\nmore");
        assert!(matches!(
            parse_request_head(&exact),
            Ok(ParsedHead::Complete {
                head_len: MAX_HEAD,
                ..
            })
        ));
    }

    #[test]
    fn header_count_is_bounded() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut ok = req.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_request_head(&ok),
            Ok(ParsedHead::Complete { .. })
        ));
        req.extend_from_slice(b"X-One-Too-Many: v\r\n\r\n");
        assert_eq!(parse_request_head(&req), Err(HttpError::Malformed));
    }

    #[test]
    fn content_length_is_strict() {
        let head = |cl: &str| format!("POST /auth HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(complete(head("12").as_bytes()).0.content_length, 12);
        assert_eq!(complete(head(" 7 ").as_bytes()).0.content_length, 7);
        assert_eq!(
            complete(head(&MAX_BODY.to_string()).as_bytes())
                .0
                .content_length,
            MAX_BODY
        );
        for bad in ["", "+1", "-1", "1,1", "0x10", "1 2", "１"] {
            assert_eq!(
                parse_request_head(head(bad).as_bytes()),
                Err(HttpError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            parse_request_head(head(&(MAX_BODY + 1).to_string()).as_bytes()),
            Err(HttpError::BodyTooLarge(MAX_BODY + 1))
        );
        assert_eq!(
            parse_request_head(head("99999999999999999999999999").as_bytes()),
            Err(HttpError::BodyTooLarge(usize::MAX))
        );
    }

    #[test]
    fn duplicate_content_length_must_agree() {
        let same = b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(complete(same).0.content_length, 3);
        let conflict = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(parse_request_head(conflict), Err(HttpError::Malformed));
    }

    #[test]
    fn transfer_encoding_is_refused() {
        for te in ["chunked", "identity", "gzip, chunked"] {
            let req = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(
                parse_request_head(req.as_bytes()),
                Err(HttpError::UnsupportedTransferEncoding)
            );
        }
    }

    #[test]
    fn cookies_are_split_like_openconnect_does() {
        let (head, _) = complete(
            b"GET / HTTP/1.1\r\nCookie: webvpncontext=abc=; x\r\n\
              Cookie:  a = 1 ;webvpn=XYZ==;webvpn=second\r\n\r\n",
        );
        assert_eq!(head.cookie("webvpn"), Some("XYZ=="));
        assert_eq!(head.cookie("webvpncontext"), Some("abc="));
        assert_eq!(head.cookie("a"), Some("1"));
        assert_eq!(head.cookie("x"), None);
        assert_eq!(head.cookie("WEBVPN"), None);
        assert_eq!(head.cookie("missing"), None);
    }

    #[test]
    fn non_utf8_header_values_do_not_fail_the_request() {
        let (head, _) = complete(b"GET / HTTP/1.1\r\nUser-Agent: caf\xe9\r\n\r\n");
        assert_eq!(head.header("User-Agent"), Some("caf\u{fffd}"));
    }

    #[test]
    fn response_is_written_byte_exactly() {
        let mut out = Vec::new();
        Response::new(200, "OK")
            .header("Content-Type", "text/xml")
            .header("X-Transcend-Version", "1")
            .header("Set-Cookie", "webvpn=abc; Secure; HttpOnly")
            .body("<x/>")
            .encode(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Transcend-Version: 1\r\n\
              Set-Cookie: webvpn=abc; Secure; HttpOnly\r\nContent-Length: 4\r\n\r\n<x/>"
        );
    }

    #[test]
    fn connected_has_no_content_length_and_keeps_case() {
        let mut out = b"prefix".to_vec();
        Response::new(200, "CONNECTED")
            .header("X-CSTP-Version", "1")
            .header("X-DTLS-App-ID", "00ff")
            .header("X-CSTP-MTU", "1434")
            .encode(&mut out);
        assert_eq!(
            out,
            b"prefixHTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-DTLS-App-ID: 00ff\r\n\
              X-CSTP-MTU: 1434\r\n\r\n"
        );
        let mut out = Vec::new();
        Response::new(401, "Cookie is not acceptable").encode(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 401 Cookie is not acceptable\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn response_splitting_is_refused() {
        let injected = [
            Response::new(200, "OK").header("X-Reason", "a\r\nSet-Cookie: evil=1"),
            Response::new(200, "OK").header("X-Reason", "a\nb"),
            Response::new(200, "OK").header("X-Reason", "a\0b"),
            Response::new(200, "OK").header("X-Bad\r\nName", "v"),
            Response::new(200, "OK").header("", "v"),
            Response::new(200, "OK").header("Bad Name", "v"),
            Response::new(200, "OK\r\nX: y"),
            Response::new(200, "OK").header("content-length", "0"),
            Response::new(200, "OK").header("Transfer-Encoding", "chunked"),
            Response::new(200, "CONNECTED").body("STF"),
            Response::new(42, "OK"),
        ];
        for response in injected {
            let mut out = b"kept".to_vec();
            assert!(response.try_encode(&mut out).is_err(), "{response:?}");
            assert_eq!(out, b"kept");
            response.encode(&mut out);
            assert_eq!(&out[4..], FALLBACK_500);
        }
        assert_eq!(
            check_header("X-Reason", "a\rb"),
            Err(ResponseError::BadHeaderValue("X-Reason".into()))
        );
        assert_eq!(check_header("X-Reason", "tab\tand UTF-8 é"), Ok(()));
    }
}
