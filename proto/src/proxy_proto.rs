//! The PROXY protocol header a load balancer (haproxy `send-proxy` / `send-proxy-v2`, nginx
//! `proxy_protocol on`) writes at the start of each TCP connection it relays, naming the client
//! (`listen-proxy-proto`). Both versions of haproxy's `doc/proxy-protocol.txt`: the text line
//! of version 1 (§2.1) and the binary block of version 2 (§2.2).
//!
//! main parses it, as ROOT, on bytes from the network before any worker exists, so the parser
//! is small, strict and bounded: a v1 line is at most 107 bytes with its CRLF (§2.1), a v2
//! block at most [`V2_MAX_BODY`] bytes after its 16 fixed ones; TLVs are walked (each must fit
//! in the block) and skipped. [`Parsed::NeedMore`] says how many more bytes are certainly part
//! of the header, so the caller can read exactly those and never consume the TLS bytes behind
//! it.
//!
//! What is refused, and why (the spec leaves a receiver free to refuse all but `LOCAL`): v1
//! `UNKNOWN` and v2 `PROXY` with an unspecified, UNIX or UDP address (no client address: the
//! connection would be charged to the balancer, whose address bans and per-address limits
//! would then hit; ocserv refuses v1 `UNKNOWN` too), an address block shorter than its family
//! needs, a v1 address of the other family, anything not exactly as the spec writes it.
//! v2 `LOCAL` (the balancer's own health check) is accepted: the connection's own endpoints
//! stand, as the spec requires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 line, CRLF included (§2.1: "PROXY UNKNOWN" with two full IPv6 addresses).
pub const V1_MAX: usize = 107;
/// The shortest v1 line (`PROXY UNKNOWN\r\n`).
const V1_MIN: usize = 15;
const V1_PREFIX: &[u8] = b"PROXY ";

/// The v2 signature (§2.2), then version/command, family/protocol and a 16-bit length.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
const V2_FIXED: usize = 16;
/// The most address and TLV bytes accepted after the fixed 16: the addresses take at most 216
/// (UNIX), and what haproxy adds (ALPN, authority, unique id up to 128 bytes, SSL facts,
/// CRC32C, cloud ids) stays well below.
pub const V2_MAX_BODY: usize = 2048;
/// The longest header of either version.
pub const MAX_HEADER: usize = V2_FIXED + V2_MAX_BODY;

/// Address block sizes of TCP over IPv4 and IPv6 (§2.2).
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;

/// Which version a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed TCP connection: the client's address and port, and the address and port it
    /// connected to (the balancer's front end).
    Proxied {
        version: Version,
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: a connection the balancer made itself (a health check); the socket's own
    /// endpoints are the connection's (§2.2).
    Local,
}

/// The outcome of [`parse`] on the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; what follows it is the client's data.
    Complete { header: Header, len: usize },
    /// Not complete yet: at least this many more bytes (>= 1) belong to the header, if it is
    /// a valid one.
    NeedMore(usize),
}

/// Why the bytes are not an acceptable header. Every one ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The connection starts with something else (a client that bypassed the balancer).
    #[error("no PROXY protocol header")]
    Missing,
    /// No CRLF within the first 107 bytes.
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A lone CR or LF, or a line that is not exactly `PROXY TCP4|TCP6 SRC DST SPORT DPORT`.
    #[error("malformed PROXY v1 line ({0})")]
    V1Malformed(&'static str),
    /// `PROXY UNKNOWN`: the balancer could not name the client.
    #[error("PROXY v1 UNKNOWN: no client address")]
    V1Unknown,
    /// The high nibble of byte 13 is not 2.
    #[error("PROXY v2 header of version {0}")]
    V2Version(u8),
    /// A command other than LOCAL (0) and PROXY (1).
    #[error("PROXY v2 command {0}")]
    V2Command(u8),
    /// A family/protocol byte the spec calls invalid.
    #[error("PROXY v2 family/protocol byte {0:#04x} is invalid")]
    V2BadFamily(u8),
    /// A valid family/protocol other than TCP over IPv4 or IPv6.
    #[error("PROXY v2 family/protocol {0:#04x}: no TCP client address")]
    V2Unsupported(u8),
    /// The length field says more than [`V2_MAX_BODY`].
    #[error("PROXY v2 block of {0} bytes is too long")]
    V2TooLong(usize),
    /// The block is shorter than its family's addresses.
    #[error("PROXY v2 block of {len} bytes is too short for family/protocol {family:#04x}")]
    V2Short { family: u8, len: usize },
    /// A TLV does not fit in the block.
    #[error("PROXY v2 TLV runs past the end of the header")]
    V2BadTlv,
}

/// Parse the start of a connection. `data` is everything received so far (more than the
/// header is fine: the rest is ignored).
pub fn parse(data: &[u8]) -> Result<Parsed, Error> {
    match data.first() {
        None => Ok(Parsed::NeedMore(V1_MIN)),
        Some(b'P') => parse_v1(data),
        Some(0x0D) => parse_v2(data),
        Some(_) => Err(Error::Missing),
    }
}

/// `data` as far as it goes must agree with `prefix`.
fn agrees(data: &[u8], prefix: &[u8]) -> bool {
    data.iter().zip(prefix).all(|(a, b)| a == b)
}

fn parse_v1(data: &[u8]) -> Result<Parsed, Error> {
    if !agrees(data, V1_PREFIX) {
        return Err(Error::Missing);
    }
    let window = data.get(..V1_MAX).unwrap_or(data);
    // The spec forbids a lone CR or LF as the end of the line.
    let Some(end) = window.iter().position(|&b| b == b'\n' || b == b'\r') else {
        return need_more_v1(data.len(), 2);
    };
    match (window.get(end), window.get(end.saturating_add(1))) {
        (Some(b'\r'), Some(b'\n')) => {}
        (Some(b'\r'), None) => return need_more_v1(data.len(), 1),
        _ => return Err(Error::V1Malformed("lone CR or LF")),
    }
    let line = window
        .get(V1_PREFIX.len()..end)
        .ok_or(Error::V1Malformed("too short"))?;
    let header = v1_line(line)?;
    Ok(Parsed::Complete {
        header,
        len: end.saturating_add(2),
    })
}

/// `missing` more bytes (the CRLF) at least, and never beyond [`V1_MAX`].
fn need_more_v1(have: usize, missing: usize) -> Result<Parsed, Error> {
    let floor = V1_MIN.saturating_sub(have);
    let want = missing.max(floor);
    if have.saturating_add(want) > V1_MAX {
        return Err(Error::V1TooLong);
    }
    Ok(Parsed::NeedMore(want))
}

/// The line between `PROXY ` and CRLF.
fn v1_line(line: &[u8]) -> Result<Header, Error> {
    let text = std::str::from_utf8(line).map_err(|_| Error::V1Malformed("not ASCII"))?;
    if text == "UNKNOWN" || text.starts_with("UNKNOWN ") {
        return Err(Error::V1Unknown);
    }
    let mut parts = text.split(' ');
    let mut next = || parts.next().ok_or(Error::V1Malformed("missing field"));
    let proto = next()?;
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err(Error::V1Malformed("extra field"));
    }
    let (src, dst) = match proto {
        "TCP4" => (IpAddr::V4(v1_ipv4(src)?), IpAddr::V4(v1_ipv4(dst)?)),
        "TCP6" => (IpAddr::V6(v1_ipv6(src)?), IpAddr::V6(v1_ipv6(dst)?)),
        _ => return Err(Error::V1Malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Header::Proxied {
        version: Version::V1,
        source: SocketAddr::new(src, v1_port(sport)?),
        destination: SocketAddr::new(dst, v1_port(dport)?),
    })
}

/// Dotted quad without leading zeros (§2.1; std's parser refuses them too).
fn v1_ipv4(s: &str) -> Result<Ipv4Addr, Error> {
    s.parse()
        .map_err(|_| Error::V1Malformed("bad IPv4 address"))
}

/// Hex groups and at most one `::`; a dotted tail is not in the spec's format.
fn v1_ipv6(s: &str) -> Result<Ipv6Addr, Error> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(Error::V1Malformed("bad IPv6 address"));
    }
    s.parse()
        .map_err(|_| Error::V1Malformed("bad IPv6 address"))
}

/// A decimal port, 0..=65535, no sign, no leading zero (§2.1).
fn v1_port(s: &str) -> Result<u16, Error> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(Error::V1Malformed("bad port"));
    }
    s.parse().map_err(|_| Error::V1Malformed("bad port"))
}

fn parse_v2(data: &[u8]) -> Result<Parsed, Error> {
    if !agrees(data, &V2_SIGNATURE) {
        return Err(Error::Missing);
    }
    let Some(fixed) = data.get(..V2_FIXED) else {
        return Ok(Parsed::NeedMore(V2_FIXED.saturating_sub(data.len())));
    };
    let &[.., ver_cmd, fam, hi, lo] = fixed else {
        return Err(Error::Missing);
    };
    if ver_cmd >> 4 != 2 {
        return Err(Error::V2Version(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0F {
        0 => true,
        1 => false,
        other => return Err(Error::V2Command(other)),
    };
    // Family 0-3 (UNSPEC, INET, INET6, UNIX), protocol 0-2 (UNSPEC, STREAM, DGRAM): anything
    // else "must be rejected as invalid by receivers", whatever the command.
    if (fam >> 4) > 3 || (fam & 0x0F) > 2 {
        return Err(Error::V2BadFamily(fam));
    }
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    if body_len > V2_MAX_BODY {
        return Err(Error::V2TooLong(body_len));
    }
    let len = V2_FIXED.saturating_add(body_len);
    let Some(body) = data.get(V2_FIXED..len) else {
        return Ok(Parsed::NeedMore(len.saturating_sub(data.len())));
    };
    if local {
        // "discard the protocol block including the family which is ignored".
        return Ok(Parsed::Complete {
            header: Header::Local,
            len,
        });
    }
    let (addresses, tlvs) = match fam {
        0x11 => v2_split(body, V2_INET_LEN, fam)?,
        0x21 => v2_split(body, V2_INET6_LEN, fam)?,
        other => return Err(Error::V2Unsupported(other)),
    };
    let (source, destination) = v2_addresses(addresses).ok_or(Error::V2Short {
        family: fam,
        len: body_len,
    })?;
    skip_tlvs(tlvs)?;
    Ok(Parsed::Complete {
        header: Header::Proxied {
            version: Version::V2,
            source,
            destination,
        },
        len,
    })
}

fn v2_split(body: &[u8], need: usize, family: u8) -> Result<(&[u8], &[u8]), Error> {
    match (body.get(..need), body.get(need..)) {
        (Some(a), Some(rest)) => Ok((a, rest)),
        _ => Err(Error::V2Short {
            family,
            len: body.len(),
        }),
    }
}

/// Source address, destination address, source port, destination port, in network order.
fn v2_addresses(block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| -> Option<u16> {
        let b = block.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    match block.len() {
        V2_INET_LEN => {
            let src: [u8; 4] = block.get(0..4)?.try_into().ok()?;
            let dst: [u8; 4] = block.get(4..8)?.try_into().ok()?;
            Some((
                SocketAddr::new(IpAddr::from(src), port(8)?),
                SocketAddr::new(IpAddr::from(dst), port(10)?),
            ))
        }
        V2_INET6_LEN => {
            let src: [u8; 16] = block.get(0..16)?.try_into().ok()?;
            let dst: [u8; 16] = block.get(16..32)?.try_into().ok()?;
            Some((
                SocketAddr::new(IpAddr::from(src), port(32)?),
                SocketAddr::new(IpAddr::from(dst), port(34)?),
            ))
        }
        _ => None,
    }
}

/// Walk the TLVs (type, 16-bit length, value; §2.2.1) and check each fits; none is used.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), Error> {
    while !rest.is_empty() {
        let (Some(&hi), Some(&lo)) = (rest.get(1), rest.get(2)) else {
            return Err(Error::V2BadTlv);
        };
        let end = 3usize.saturating_add(usize::from(u16::from_be_bytes([hi, lo])));
        rest = rest.get(end..).ok_or(Error::V2BadTlv)?;
    }
    Ok(())
}

/// Encode a v2 PROXY header (tests, the fuzz target's round trip, the e2e harness).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Option<Vec<u8>> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    let mut body = Vec::new();
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.push(0x21);
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
        }
        _ => return None,
    }
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    let len = u16::try_from(body.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn complete(data: &[u8]) -> (Header, usize) {
        match parse(data) {
            Ok(Parsed::Complete { header, len }) => (header, len),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(data)),
        }
    }

    fn v1(source: &str, destination: &str) -> Header {
        Header::Proxied {
            version: Version::V1,
            source: sa(source),
            destination: sa(destination),
        }
    }

    /// Every prefix of a valid header asks for more, and never for more than the header has
    /// left, so reading what it asks for never eats the client's first bytes.
    fn prefixes_ask_within(data: &[u8], len: usize) {
        for cut in 0..len {
            match parse(&data[..cut]) {
                Ok(Parsed::NeedMore(n)) => {
                    assert!(n >= 1 && cut + n <= len, "cut {cut}: wants {n} of {len}")
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn v1_examples_of_the_spec() {
        // §2.1's example, followed by the HTTP request it precedes.
        let data = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        let (h, len) = complete(data);
        assert_eq!(h, v1("192.168.0.1:56324", "192.168.0.11:443"));
        assert_eq!(&data[len..], b"GET / HTTP/1.1\r\n");
        prefixes_ask_within(data, len);
        // §2.1's longest TCP4 and TCP6 lines (56 and 104 bytes).
        let max4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(
            complete(max4),
            (v1("255.255.255.255:65535", "255.255.255.255:65535"), 56)
        );
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let max6 = format!("PROXY TCP6 {f} {f} 65535 65535\r\n");
        let (h, len) = complete(max6.as_bytes());
        assert_eq!(len, 104);
        assert_eq!(h, v1(&format!("[{f}]:65535"), &format!("[{f}]:65535")));
        prefixes_ask_within(max6.as_bytes(), len);
        let short6 = b"PROXY TCP6 2001:db8::1 ::1 0 443\r\n";
        assert_eq!(complete(short6).0, v1("[2001:db8::1]:0", "[::1]:443"));
    }

    #[test]
    fn v1_unknown_is_refused_short_and_long() {
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Err(Error::V1Unknown));
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let worst = format!("PROXY UNKNOWN {f} {f} 65535 65535\r\n");
        assert_eq!(worst.len(), V1_MAX);
        assert_eq!(parse(worst.as_bytes()), Err(Error::V1Unknown));
    }

    #[test]
    fn v1_without_crlf_in_107_bytes_is_too_long() {
        let mut long = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2".to_vec();
        long.resize(V1_MAX, b' ');
        assert_eq!(parse(&long), Err(Error::V1TooLong));
        // 106 bytes and no CR: the CRLF would end past 107.
        long.truncate(V1_MAX - 1);
        assert_eq!(parse(&long), Err(Error::V1TooLong));
        long.truncate(V1_MAX - 2);
        assert_eq!(parse(&long), Ok(Parsed::NeedMore(2)));
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],  // lone LF
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",      // lone CR
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",    // two spaces
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       // missing port
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   // extra field
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",    // leading zero (octal?)
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    // leading zero in a port
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",    // sign
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", // port range
            b"PROXY TCP4 ::1 ::1 1 2\r\n",             // TCP4 with IPv6: family mismatch
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",     // TCP6 with IPv4: family mismatch
            b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",         // mixed families
            b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",  // dotted tail: not the spec's format
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     // no such protocol
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",     // case
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", // trailing space
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n", // not ASCII
        ] {
            assert!(
                matches!(parse(bad), Err(Error::V1Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
    }

    #[test]
    fn other_protocols_are_missing_headers() {
        // A TLS ClientHello (a client that bypassed the balancer), HTTP, a near miss.
        for other in [
            &[0x16, 0x03, 0x01, 0x02, 0x00][..],
            b"GET / HTTP/1.1\r\n",
            b"PROXZ TCP4",
            b"\r\n\r\n\x00\r\nQUIX\n",
        ] {
            assert_eq!(parse(other), Err(Error::Missing), "{other:?}");
        }
        assert_eq!(parse(b""), Ok(Parsed::NeedMore(V1_MIN)));
        assert_eq!(parse(b"PRO"), Ok(Parsed::NeedMore(V1_MIN - 3)));
    }

    /// The v2 block haproxy writes for a TCP/IPv4 client (§2.2 layout).
    fn v2_inet(tlvs: &[u8]) -> Vec<u8> {
        encode_v2(sa("192.0.2.7:50000"), sa("198.51.100.1:443"), tlvs).unwrap()
    }

    #[test]
    fn v2_tcp4_and_tcp6() {
        let mut data = v2_inet(&[]);
        assert_eq!(
            &data[..16],
            &[13, 10, 13, 10, 0, 13, 10, 0x51, 0x55, 0x49, 0x54, 10, 0x21, 0x11, 0, 12]
        );
        data.extend_from_slice(&[0x16, 0x03, 0x01]);
        let (h, len) = complete(&data);
        assert_eq!(len, 28);
        assert_eq!(
            h,
            Header::Proxied {
                version: Version::V2,
                source: sa("192.0.2.7:50000"),
                destination: sa("198.51.100.1:443"),
            }
        );
        prefixes_ask_within(&data, len);
        let six = encode_v2(sa("[2001:db8::7]:1"), sa("[2001:db8::1]:443"), &[]).unwrap();
        assert_eq!(six[13], 0x21);
        let (h, len) = complete(&six);
        assert_eq!(len, 16 + 36);
        assert!(matches!(h, Header::Proxied { source, .. } if source == sa("[2001:db8::7]:1")));
    }

    #[test]
    fn v2_tlvs_are_skipped_and_must_fit() {
        // ALPN "h2", authority "vpn.example", CRC32C (4 bytes), NOOP (empty), an SSL TLV
        // with a sub-TLV: all skipped.
        let mut tlvs = vec![0x01, 0, 2, b'h', b'2', 0x02, 0, 11];
        tlvs.extend_from_slice(b"vpn.example");
        tlvs.extend_from_slice(&[0x03, 0, 4, 1, 2, 3, 4, 0x04, 0, 0]);
        tlvs.extend_from_slice(&[0x20, 0, 9, 0x01, 0, 0, 0, 0, 0x21, 0, 1, b'3']);
        let data = v2_inet(&tlvs);
        let (h, len) = complete(&data);
        assert_eq!(len, data.len());
        assert!(matches!(h, Header::Proxied { .. }));
        // A TLV whose length runs past the block, and a cut TLV header.
        for bad in [&[0x02, 0, 12, b'x'][..], &[0x02, 0][..], &[0x04][..]] {
            assert_eq!(parse(&v2_inet(bad)), Err(Error::V2BadTlv), "{bad:?}");
        }
    }

    #[test]
    fn v2_local_is_the_connections_own() {
        // haproxy's health check: LOCAL, UNSPEC, no address; and LOCAL with a block to skip.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(complete(&local), (Header::Local, 16));
        let mut with_block = v2_inet(&[]);
        with_block[12] = 0x20;
        assert_eq!(complete(&with_block), (Header::Local, 28));
    }

    #[test]
    fn v2_invalid_and_unsupported_fields_are_refused() {
        let with = |at: usize, v: u8| {
            let mut d = v2_inet(&[]);
            d[at] = v;
            parse(&d)
        };
        assert_eq!(with(12, 0x11), Err(Error::V2Version(1)));
        assert_eq!(with(12, 0x31), Err(Error::V2Version(3)));
        assert_eq!(with(12, 0x22), Err(Error::V2Command(2)));
        assert_eq!(with(13, 0x41), Err(Error::V2BadFamily(0x41)));
        assert_eq!(with(13, 0x13), Err(Error::V2BadFamily(0x13)));
        // UDP, UNSPEC and UNIX under PROXY: no TCP client address to use.
        assert_eq!(with(13, 0x12), Err(Error::V2Unsupported(0x12)));
        assert_eq!(with(13, 0x00), Err(Error::V2Unsupported(0x00)));
        assert_eq!(with(13, 0x31), Err(Error::V2Unsupported(0x31)));
    }

    #[test]
    fn v2_family_and_length_must_agree() {
        // IPv6 announced with IPv4's 12 bytes; IPv4 with 11: clean refusals, not short reads.
        let mut d = v2_inet(&[]);
        d[13] = 0x21;
        assert_eq!(
            parse(&d),
            Err(Error::V2Short {
                family: 0x21,
                len: 12
            })
        );
        let mut d = v2_inet(&[]);
        d[15] = 11;
        d.pop();
        assert_eq!(
            parse(&d),
            Err(Error::V2Short {
                family: 0x11,
                len: 11
            })
        );
        let mut d = V2_SIGNATURE.to_vec();
        d.extend_from_slice(&[0x21, 0x11, 0, 0]);
        assert_eq!(
            parse(&d),
            Err(Error::V2Short {
                family: 0x11,
                len: 0
            })
        );
    }

    #[test]
    fn v2_truncated_waits_and_oversized_is_refused() {
        let d = v2_inet(&[]);
        assert_eq!(parse(&d[..5]), Ok(Parsed::NeedMore(11)));
        assert_eq!(parse(&d[..16]), Ok(Parsed::NeedMore(12)));
        assert_eq!(parse(&d[..27]), Ok(Parsed::NeedMore(1)));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(parse(&big), Err(Error::V2TooLong(65535)));
        let at_limit = u16::try_from(V2_MAX_BODY).unwrap().to_be_bytes();
        big.truncate(14);
        big.extend_from_slice(&at_limit);
        assert_eq!(parse(&big), Ok(Parsed::NeedMore(V2_MAX_BODY)));
        let over = u16::try_from(V2_MAX_BODY + 1).unwrap().to_be_bytes();
        big.truncate(14);
        big.extend_from_slice(&over);
        assert_eq!(parse(&big), Err(Error::V2TooLong(V2_MAX_BODY + 1)));
    }
}
