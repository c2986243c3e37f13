//! RADIUS packets: what a client (a NAS, here sec-mod) sends and receives.
//!
//! Facts from RFC 2865 (§3 packet format and the Response Authenticator, §5.2 User-Password
//! hiding), RFC 2866 §3 (the Accounting-Request authenticator), RFC 2869 §5.14 and RFC 3579
//! §3.2 (Message-Authenticator, HMAC-MD5). Sans-IO: the caller passes the random Request
//! Authenticator and identifier in and sends the bytes itself.

use std::net::{Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

/// Code, identifier, length, authenticator (RFC 2865 §3).
pub const HEADER_LEN: usize = 20;
/// The largest packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;
/// Longest User-Password (RFC 2865 §5.2: at most 128 octets once padded).
pub const MAX_PASSWORD: usize = 128;
/// Longest attribute value (the length octet counts type and length too).
pub const MAX_VALUE: usize = 253;

/// Length of the Request/Response Authenticator and of a Message-Authenticator value.
const AUTH_LEN: usize = 16;

/// Packet codes (RFC 2865 §3, RFC 2866 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
}

impl Code {
    pub fn byte(self) -> u8 {
        match self {
            Self::AccessRequest => 1,
            Self::AccessAccept => 2,
            Self::AccessReject => 3,
            Self::AccountingRequest => 4,
            Self::AccountingResponse => 5,
            Self::AccessChallenge => 11,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::AccessRequest,
            2 => Self::AccessAccept,
            3 => Self::AccessReject,
            4 => Self::AccountingRequest,
            5 => Self::AccountingResponse,
            11 => Self::AccessChallenge,
            _ => return None,
        })
    }

    /// Whether `self` answers a request of code `request`.
    fn answers(self, request: Self) -> bool {
        match request {
            Self::AccessRequest => matches!(
                self,
                Self::AccessAccept | Self::AccessReject | Self::AccessChallenge
            ),
            Self::AccountingRequest => self == Self::AccountingResponse,
            _ => false,
        }
    }
}

/// Attribute types we send or read (RFC 2865 §5, RFC 2866 §5, RFC 2869 §5, RFC 3162 §2,
/// RFC 4818 §3 (Delegated-IPv6-Prefix), RFC 6911 §3).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const NAS_PORT: u8 = 5;
    pub const SERVICE_TYPE: u8 = 6;
    pub const FRAMED_PROTOCOL: u8 = 7;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const FRAMED_IP_NETMASK: u8 = 9;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const FRAMED_ROUTE: u8 = 22;
    pub const STATE: u8 = 24;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
    pub const IDLE_TIMEOUT: u8 = 28;
    pub const CALLED_STATION_ID: u8 = 30;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_DELAY_TIME: u8 = 41;
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_AUTHENTIC: u8 = 45;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    pub const NAS_PORT_TYPE: u8 = 61;
    pub const CONNECT_INFO: u8 = 77;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    pub const FRAMED_IPV6_PREFIX: u8 = 97;
    pub const FRAMED_IPV6_ROUTE: u8 = 99;
    pub const DELEGATED_IPV6_PREFIX: u8 = 123;
    pub const FRAMED_IPV6_ADDRESS: u8 = 168;
    pub const DNS_SERVER_IPV6_ADDRESS: u8 = 169;
    pub const ROUTE_IPV6_INFORMATION: u8 = 170;
}

/// Values of enumerated attributes.
pub mod value {
    /// Service-Type Framed (RFC 2865 §5.6).
    pub const SERVICE_FRAMED: u32 = 2;
    /// Framed-Protocol PPP (RFC 2865 §5.7), what NAS accounting reports for a tunnel.
    pub const FRAMED_PPP: u32 = 1;
    /// NAS-Port-Type Virtual (RFC 2865 §5.41).
    pub const PORT_VIRTUAL: u32 = 5;
    /// Acct-Status-Type (RFC 2866 §5.1, RFC 2869 §5.1 for Interim-Update).
    pub const STATUS_START: u32 = 1;
    pub const STATUS_STOP: u32 = 2;
    pub const STATUS_INTERIM: u32 = 3;
    /// Acct-Authentic RADIUS (RFC 2866 §5.6).
    pub const AUTHENTIC_RADIUS: u32 = 1;
    /// Acct-Terminate-Cause (RFC 2866 §5.10).
    pub const CAUSE_USER_REQUEST: u32 = 1;
    pub const CAUSE_LOST_CARRIER: u32 = 2;
    pub const CAUSE_LOST_SERVICE: u32 = 3;
    pub const CAUSE_IDLE_TIMEOUT: u32 = 4;
    pub const CAUSE_SESSION_TIMEOUT: u32 = 5;
    pub const CAUSE_ADMIN_RESET: u32 = 6;
    pub const CAUSE_ADMIN_REBOOT: u32 = 7;
    pub const CAUSE_NAS_ERROR: u32 = 9;
    pub const CAUSE_NAS_REQUEST: u32 = 10;
    pub const CAUSE_SERVICE_UNAVAILABLE: u32 = 15;
}

/// Microsoft's vendor id and its DNS server attributes (RFC 2548 §2.4 lists the vendor; the
/// DNS attributes 28 and 29 are the ones ocserv reads, src/auth/radius.c).
pub const VENDOR_MICROSOFT: u32 = 311;
pub const MS_PRIMARY_DNS_SERVER: u8 = 28;
pub const MS_SECONDARY_DNS_SERVER: u8 = 29;

/// One attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub ty: u8,
    pub value: Vec<u8>,
}

impl Attribute {
    pub fn text(ty: u8, text: &str) -> Self {
        Self {
            ty,
            value: text.as_bytes().to_vec(),
        }
    }

    pub fn int(ty: u8, v: u32) -> Self {
        Self {
            ty,
            value: v.to_be_bytes().to_vec(),
        }
    }

    pub fn ipv4(ty: u8, a: Ipv4Addr) -> Self {
        Self {
            ty,
            value: a.octets().to_vec(),
        }
    }

    pub fn ipv6(ty: u8, a: Ipv6Addr) -> Self {
        Self {
            ty,
            value: a.octets().to_vec(),
        }
    }
}

/// A decoded packet (the authenticators already checked where the caller asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    pub id: u8,
    pub authenticator: [u8; AUTH_LEN],
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// Values of every attribute of type `ty`, in order.
    pub fn all(&self, ty: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |a| a.ty == ty)
            .map(|a| a.value.as_slice())
    }

    pub fn first(&self, ty: u8) -> Option<&[u8]> {
        self.all(ty).next()
    }

    /// Values of a vendor's sub-attribute `ty` inside Vendor-Specific attributes, in the
    /// RFC 2865 §5.26 suggested format (vendor type, vendor length, value).
    pub fn vendor(&self, vendor: u32, ty: u8) -> Vec<&[u8]> {
        let mut out = Vec::new();
        for v in self.all(attr::VENDOR_SPECIFIC) {
            let Some((id, mut rest)) = v.split_first_chunk::<4>() else {
                continue;
            };
            if u32::from_be_bytes(*id) != vendor {
                continue;
            }
            while let [t, len, tail @ ..] = rest {
                let Some(vlen) = usize::from(*len).checked_sub(2) else {
                    break;
                };
                let Some((value, next)) = tail.split_at_checked(vlen) else {
                    break;
                };
                if *t == ty {
                    out.push(value);
                }
                rest = next;
            }
        }
        out
    }
}

/// A value as a 32-bit integer (RFC 2865 §5 "integer").
pub fn int(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

/// A value as an IPv4 address.
pub fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// A value as an IPv6 address.
pub fn ipv6(v: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(v).ok().map(Ipv6Addr::from)
}

/// A Framed-IPv6-Prefix value (RFC 3162 §2.3: reserved octet, prefix length, up to 16 octets of
/// prefix); bits past the prefix length are cleared.
pub fn ipv6_prefix(v: &[u8]) -> Option<(Ipv6Addr, u8)> {
    let [_reserved, len, prefix @ ..] = v else {
        return None;
    };
    if *len > 128 || prefix.len() > 16 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (o, p) in octets.iter_mut().zip(prefix) {
        *o = *p;
    }
    let bits = u128::from_be_bytes(octets);
    let mask = u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(*len)))
        .unwrap_or(0);
    Some((Ipv6Addr::from(bits & mask), *len))
}

/// Why a packet could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute value does not fit the one-octet length.
    #[error("attribute {0} is longer than 253 octets")]
    ValueTooLong(u8),
    /// The password is longer than User-Password can carry.
    #[error("the password is longer than 128 octets")]
    PasswordTooLong,
    /// The packet would exceed 4096 octets.
    #[error("the packet would be longer than 4096 octets")]
    TooLong,
}

/// Why a received packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header or than its own length field, or a length out of range.
    #[error("truncated or bad length")]
    Length,
    /// A code we do not know.
    #[error("unknown code {0}")]
    UnknownCode(u8),
    /// An attribute's length runs past the packet or is below 2.
    #[error("malformed attribute")]
    Attribute,
    /// Not an answer to our request (identifier or code).
    #[error("not an answer to the request")]
    NotOurs,
    /// The Response Authenticator does not match: wrong secret, or forged.
    #[error("bad response authenticator")]
    Authenticator,
    /// A Message-Authenticator that does not match, has the wrong size, or is missing where
    /// required.
    #[error("bad or missing Message-Authenticator")]
    MessageAuthenticator,
}

/// What the answer to a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub code: Code,
    pub id: u8,
    pub authenticator: [u8; AUTH_LEN],
}

/// The header with a zero length, then attributes; the caller fills length and authenticator.
fn start(code: Code, id: u8, authenticator: &[u8; AUTH_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(code.byte());
    out.push(id);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(authenticator);
    out
}

fn push_attr(out: &mut Vec<u8>, ty: u8, value: &[u8]) -> Result<(), EncodeError> {
    if value.len() > MAX_VALUE {
        return Err(EncodeError::ValueTooLong(ty));
    }
    out.push(ty);
    // Bounded by MAX_VALUE + 2 above.
    out.push(
        u8::try_from(value.len().saturating_add(2)).map_err(|_| EncodeError::ValueTooLong(ty))?,
    );
    out.extend_from_slice(value);
    Ok(())
}

/// Write the length field; the packet must be at most [`MAX_PACKET`].
fn set_length(out: &mut [u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(out.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_PACKET)
        .ok_or(EncodeError::TooLong)?;
    if let Some(field) = out.get_mut(2..4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// User-Password hiding (RFC 2865 §5.2): pad to a multiple of 16 with NULs, then XOR each block
/// with MD5(secret + previous cipher block), the first with MD5(secret + Request Authenticator).
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; AUTH_LEN],
) -> Result<Vec<u8>, EncodeError> {
    if password.len() > MAX_PASSWORD {
        return Err(EncodeError::PasswordTooLong);
    }
    let blocks = password.len().div_ceil(AUTH_LEN).max(1);
    let mut out = vec![0u8; blocks.saturating_mul(AUTH_LEN)];
    for (o, p) in out.iter_mut().zip(password) {
        *o = *p;
    }
    let mut previous: [u8; AUTH_LEN] = *authenticator;
    for block in out.chunks_mut(AUTH_LEN) {
        let b = Md5::new()
            .chain_update(secret)
            .chain_update(previous)
            .finalize();
        for (c, k) in block.iter_mut().zip(b.iter()) {
            *c ^= k;
        }
        for (p, c) in previous.iter_mut().zip(block.iter()) {
            *p = *c;
        }
    }
    Ok(out)
}

/// HMAC-MD5 of `packet` keyed with the secret (RFC 2869 §5.14); the caller zeroed the
/// Message-Authenticator value (and, for a response, put the Request Authenticator in the
/// header, RFC 3579 §3.2).
fn message_authenticator(packet: &[u8], secret: &[u8]) -> [u8; AUTH_LEN] {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(secret) else {
        return [0; AUTH_LEN];
    };
    mac.update(packet);
    mac.finalize().into_bytes().into()
}

/// An Access-Request (RFC 2865 §4.1): Message-Authenticator first (the BlastRADIUS advice,
/// RFC 3579 §3.2 computed over the whole packet), then `attributes`, then the hidden
/// User-Password if given. `authenticator` must be unpredictable (fresh random bytes).
pub fn access_request(
    id: u8,
    authenticator: &[u8; AUTH_LEN],
    attributes: &[Attribute],
    password: Option<&[u8]>,
    secret: &[u8],
    with_message_authenticator: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = start(Code::AccessRequest, id, authenticator);
    if with_message_authenticator {
        push_attr(&mut out, attr::MESSAGE_AUTHENTICATOR, &[0; AUTH_LEN])?;
    }
    for a in attributes {
        push_attr(&mut out, a.ty, &a.value)?;
    }
    if let Some(password) = password {
        let hidden = hide_password(password, secret, authenticator)?;
        push_attr(&mut out, attr::USER_PASSWORD, &hidden)?;
    }
    set_length(&mut out)?;
    if with_message_authenticator {
        let mac = message_authenticator(&out, secret);
        // The attribute's value starts after the header, type and length.
        if let Some(v) = out.get_mut(HEADER_LEN.saturating_add(2)..HEADER_LEN.saturating_add(18)) {
            v.copy_from_slice(&mac);
        }
    }
    Ok(out)
}

/// An Accounting-Request (RFC 2866 §3): its authenticator is MD5(code + id + length + 16 zero
/// octets + attributes + secret). Returns the bytes and the authenticator (to check the answer).
pub fn accounting_request(
    id: u8,
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<(Vec<u8>, [u8; AUTH_LEN]), EncodeError> {
    let mut out = start(Code::AccountingRequest, id, &[0; AUTH_LEN]);
    for a in attributes {
        push_attr(&mut out, a.ty, &a.value)?;
    }
    set_length(&mut out)?;
    let auth: [u8; AUTH_LEN] = Md5::new()
        .chain_update(&out)
        .chain_update(secret)
        .finalize()
        .into();
    if let Some(field) = out.get_mut(4..HEADER_LEN) {
        field.copy_from_slice(&auth);
    }
    Ok((out, auth))
}

/// A server's answer (RFC 2865 §3: Response Authenticator = MD5(code + id + length + Request
/// Authenticator + attributes + secret)), without Message-Authenticator. For tests and tools
/// that play the server; sec-mod never answers.
pub fn response(
    code: Code,
    id: u8,
    request_authenticator: &[u8; AUTH_LEN],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut out = start(code, id, request_authenticator);
    for a in attributes {
        push_attr(&mut out, a.ty, &a.value)?;
    }
    set_length(&mut out)?;
    let auth: [u8; AUTH_LEN] = Md5::new()
        .chain_update(&out)
        .chain_update(secret)
        .finalize()
        .into();
    if let Some(field) = out.get_mut(4..HEADER_LEN) {
        field.copy_from_slice(&auth);
    }
    Ok(out)
}

/// The packet's structure: header and attributes, nothing checked cryptographically. Octets
/// past the length field are padding and ignored (RFC 2865 §3).
pub fn parse(datagram: &[u8]) -> Result<Packet, DecodeError> {
    let (header, _) = datagram
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(DecodeError::Length)?;
    let [code, id, l0, l1, auth @ ..] = *header;
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if !(HEADER_LEN..=MAX_PACKET).contains(&len) || len > datagram.len() {
        return Err(DecodeError::Length);
    }
    let code = Code::from_byte(code).ok_or(DecodeError::UnknownCode(code))?;
    let mut rest = datagram.get(HEADER_LEN..len).ok_or(DecodeError::Length)?;
    let mut attributes = Vec::new();
    while let [ty, alen, tail @ ..] = rest {
        let vlen = usize::from(*alen)
            .checked_sub(2)
            .ok_or(DecodeError::Attribute)?;
        let (value, next) = tail.split_at_checked(vlen).ok_or(DecodeError::Attribute)?;
        attributes.push(Attribute {
            ty: *ty,
            value: value.to_vec(),
        });
        rest = next;
    }
    if !rest.is_empty() {
        return Err(DecodeError::Attribute);
    }
    Ok(Packet {
        code,
        id,
        authenticator: auth,
        attributes,
    })
}

/// Constant-time comparison (a forger must not learn how many octets matched).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check and decode the answer to `sent` (RFC 2865 §3 Response Authenticator: MD5(code + id +
/// length + Request Authenticator + attributes + secret); RFC 3579 §3.2 Message-Authenticator).
/// `require_message_authenticator`: an Access-Accept/Reject/Challenge without one is refused
/// (the BlastRADIUS forgery, CVE-2024-3596, needs a response without it).
pub fn decode_response(
    datagram: &[u8],
    sent: &Sent,
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Packet, DecodeError> {
    let packet = parse(datagram)?;
    if packet.id != sent.id || !packet.code.answers(sent.code) {
        return Err(DecodeError::NotOurs);
    }
    let len = usize::from(u16::from_be_bytes([
        datagram.get(2).copied().unwrap_or_default(),
        datagram.get(3).copied().unwrap_or_default(),
    ]));
    let body = datagram.get(..len).ok_or(DecodeError::Length)?;
    let head = body.get(..4).ok_or(DecodeError::Length)?;
    let attrs = body.get(HEADER_LEN..).ok_or(DecodeError::Length)?;
    let expected: [u8; AUTH_LEN] = Md5::new()
        .chain_update(head)
        .chain_update(sent.authenticator)
        .chain_update(attrs)
        .chain_update(secret)
        .finalize()
        .into();
    if !same(&expected, &packet.authenticator) {
        return Err(DecodeError::Authenticator);
    }
    let mut mas = packet.all(attr::MESSAGE_AUTHENTICATOR);
    let ma = (mas.next(), mas.next());
    match ma {
        (None, _) => {
            if require_message_authenticator && sent.code == Code::AccessRequest {
                return Err(DecodeError::MessageAuthenticator);
            }
        }
        (Some(_), Some(_)) => return Err(DecodeError::MessageAuthenticator),
        (Some(value), None) => {
            if value.len() != AUTH_LEN {
                return Err(DecodeError::MessageAuthenticator);
            }
            let copy = zeroed_for_mac(body, &sent.authenticator)?;
            if !same(&message_authenticator(&copy, secret), value) {
                return Err(DecodeError::MessageAuthenticator);
            }
        }
    }
    drop(mas);
    Ok(packet)
}

/// `body` with the Request Authenticator in the header and the Message-Authenticator value
/// zeroed (RFC 3579 §3.2).
fn zeroed_for_mac(body: &[u8], request_auth: &[u8; AUTH_LEN]) -> Result<Vec<u8>, DecodeError> {
    let mut copy = body.to_vec();
    if let Some(field) = copy.get_mut(4..HEADER_LEN) {
        field.copy_from_slice(request_auth);
    }
    let mut at = HEADER_LEN;
    while let (Some(&ty), Some(&alen)) = (copy.get(at), copy.get(at.saturating_add(1))) {
        let end = at
            .checked_add(usize::from(alen))
            .ok_or(DecodeError::Attribute)?;
        if ty == attr::MESSAGE_AUTHENTICATOR {
            if let Some(v) = copy.get_mut(at.saturating_add(2)..end) {
                v.fill(0);
            }
        }
        if alen < 2 {
            return Err(DecodeError::Attribute);
        }
        at = end;
    }
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn auth(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    // RFC 2865 §7.1: user nemo, password arctangent, secret xyzzy5461.
    const RFC_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f
        78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03";
    const RFC_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";
    const RFC_AUTH: &str = "0f403f9473978057bd83d5cb98f4227a";

    #[test]
    fn rfc2865_access_request_vector() {
        let a = auth(RFC_AUTH);
        let attrs = [
            Attribute::text(attr::USER_NAME, "nemo"),
            Attribute::ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(192, 168, 1, 16)),
            Attribute::int(attr::NAS_PORT, 3),
        ];
        // The RFC's order: User-Name, User-Password, NAS-IP-Address, NAS-Port.
        let hidden = hide_password(b"arctangent", b"xyzzy5461", &a).unwrap();
        assert_eq!(
            hidden,
            hex("0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee")
        );
        let mut ordered = vec![attrs[0].clone()];
        ordered.push(Attribute {
            ty: attr::USER_PASSWORD,
            value: hidden,
        });
        ordered.extend_from_slice(&attrs[1..]);
        let bytes = access_request(0, &a, &ordered, None, b"xyzzy5461", false).unwrap();
        assert_eq!(bytes, hex(RFC_REQUEST));
    }

    #[test]
    fn rfc2865_access_accept_vector_checks_and_forgeries_fail() {
        let sent = Sent {
            code: Code::AccessRequest,
            id: 0,
            authenticator: auth(RFC_AUTH),
        };
        let accept = hex(RFC_ACCEPT);
        let p = decode_response(&accept, &sent, b"xyzzy5461", false).unwrap();
        assert_eq!(p.code, Code::AccessAccept);
        assert_eq!(p.first(attr::SERVICE_TYPE).and_then(int), Some(1));
        // Login-IP-Host (14) 192.168.1.3.
        assert_eq!(
            p.first(14).and_then(ipv4),
            Some(Ipv4Addr::new(192, 168, 1, 3))
        );
        // Wrong secret, a flipped attribute octet, another request's authenticator, another id.
        assert_eq!(
            decode_response(&accept, &sent, b"xyzzy5462", false),
            Err(DecodeError::Authenticator)
        );
        let mut flipped = accept.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode_response(&flipped, &sent, b"xyzzy5461", false),
            Err(DecodeError::Authenticator)
        );
        let mut other = sent;
        other.authenticator[0] ^= 1;
        assert_eq!(
            decode_response(&accept, &other, b"xyzzy5461", false),
            Err(DecodeError::Authenticator)
        );
        other = sent;
        other.id = 1;
        assert_eq!(
            decode_response(&accept, &other, b"xyzzy5461", false),
            Err(DecodeError::NotOurs)
        );
        // Without a Message-Authenticator it is refused when one is required.
        assert_eq!(
            decode_response(&accept, &sent, b"xyzzy5461", true),
            Err(DecodeError::MessageAuthenticator)
        );
    }

    /// A server's answer with a Message-Authenticator, built as RFC 3579 §3.2 says.
    fn server_answer(code: Code, sent: &Sent, attrs: &[Attribute], secret: &[u8]) -> Vec<u8> {
        let mut out = start(code, sent.id, &sent.authenticator);
        push_attr(&mut out, attr::MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        for a in attrs {
            push_attr(&mut out, a.ty, &a.value).unwrap();
        }
        set_length(&mut out).unwrap();
        let mac = message_authenticator(&out, secret);
        out[22..38].copy_from_slice(&mac);
        let auth: [u8; 16] = Md5::new()
            .chain_update(&out)
            .chain_update(secret)
            .finalize()
            .into();
        out[4..20].copy_from_slice(&auth);
        out
    }

    #[test]
    fn message_authenticator_is_checked() {
        let sent = Sent {
            code: Code::AccessRequest,
            id: 7,
            authenticator: [9; 16],
        };
        let attrs = [
            Attribute::text(attr::REPLY_MESSAGE, "code?"),
            Attribute::text(attr::STATE, "s1"),
        ];
        let good = server_answer(Code::AccessChallenge, &sent, &attrs, b"s3cret");
        let p = decode_response(&good, &sent, b"s3cret", true).unwrap();
        assert_eq!(p.code, Code::AccessChallenge);
        assert_eq!(p.first(attr::STATE), Some(&b"s1"[..]));
        // Break the MAC but keep the Response Authenticator right (a forger who knows neither
        // cannot do this; it proves the MAC is checked on its own).
        let mut bad = good.clone();
        bad[22] ^= 1;
        let auth: [u8; 16] = Md5::new()
            .chain_update(&bad[..4])
            .chain_update(sent.authenticator)
            .chain_update(&bad[20..])
            .chain_update(b"s3cret")
            .finalize()
            .into();
        bad[4..20].copy_from_slice(&auth);
        assert_eq!(
            decode_response(&bad, &sent, b"s3cret", true),
            Err(DecodeError::MessageAuthenticator)
        );
    }

    #[test]
    fn our_request_carries_a_valid_message_authenticator() {
        let a = [3u8; 16];
        let bytes = access_request(
            5,
            &a,
            &[Attribute::text(attr::USER_NAME, "bob")],
            Some(b"pw"),
            b"k",
            true,
        )
        .unwrap();
        let p = parse(&bytes).unwrap();
        assert_eq!(p.attributes[0].ty, attr::MESSAGE_AUTHENTICATOR);
        let copy = zeroed_for_mac(&bytes, &a).unwrap();
        assert_eq!(
            message_authenticator(&copy, b"k").as_slice(),
            p.attributes[0].value
        );
        assert_eq!(p.first(attr::USER_PASSWORD).unwrap().len(), 16);
    }

    #[test]
    fn response_reproduces_the_rfc2865_accept() {
        let attrs = [
            Attribute::int(attr::SERVICE_TYPE, 1),
            Attribute::int(15, 0),
            Attribute::ipv4(14, Ipv4Addr::new(192, 168, 1, 3)),
        ];
        let bytes = response(Code::AccessAccept, 0, &auth(RFC_AUTH), &attrs, b"xyzzy5461").unwrap();
        assert_eq!(bytes, hex(RFC_ACCEPT));
    }

    #[test]
    fn accounting_authenticator_is_rfc2866() {
        let (bytes, a) =
            accounting_request(1, &[Attribute::int(attr::ACCT_STATUS_TYPE, 1)], b"k").unwrap();
        let mut zeroed = bytes.clone();
        zeroed[4..20].fill(0);
        let expected: [u8; 16] = Md5::new()
            .chain_update(&zeroed)
            .chain_update(b"k")
            .finalize()
            .into();
        assert_eq!(a, expected);
        assert_eq!(&bytes[4..20], &a);
    }

    #[test]
    fn limits_and_malformed_input() {
        assert_eq!(
            hide_password(&[b'a'; 129], b"k", &[0; 16]),
            Err(EncodeError::PasswordTooLong)
        );
        assert_eq!(hide_password(b"", b"k", &[0; 16]).unwrap().len(), 16);
        assert_eq!(
            access_request(
                0,
                &[0; 16],
                &[Attribute {
                    ty: 1,
                    value: vec![0; 254]
                }],
                None,
                b"k",
                false
            ),
            Err(EncodeError::ValueTooLong(1))
        );
        assert_eq!(parse(&[2, 0, 0, 19]), Err(DecodeError::Length));
        let mut p = hex(RFC_ACCEPT);
        p[3] = 0x30; // longer than the datagram
        assert_eq!(parse(&p), Err(DecodeError::Length));
        let mut p = hex(RFC_ACCEPT);
        p[21] = 1; // attribute length 1
        assert_eq!(parse(&p), Err(DecodeError::Attribute));
        let mut p = hex(RFC_ACCEPT);
        p[0] = 99;
        assert_eq!(parse(&p), Err(DecodeError::UnknownCode(99)));
        // Padding past the length field is ignored.
        let mut p = hex(RFC_ACCEPT);
        p.extend_from_slice(&[0; 7]);
        assert_eq!(parse(&p).unwrap().attributes.len(), 3);
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            ipv6_prefix(&hex("00 40 20 01 0d b8 00 01 00 02")),
            Some(("2001:db8:1:2::".parse().unwrap(), 64))
        );
        assert_eq!(
            ipv6_prefix(&hex("00 30 20 01 0d b8 ff ff ff")),
            Some(("2001:db8:ffff::".parse().unwrap(), 48))
        );
        assert_eq!(ipv6_prefix(&hex("00 81")), None);
        assert_eq!(ipv6_prefix(&[0]), None);
        let vsa = Attribute {
            ty: attr::VENDOR_SPECIFIC,
            value: hex("00 00 01 37 1c 06 0a 00 00 01 1d 06 0a 00 00 02"),
        };
        let p = Packet {
            code: Code::AccessAccept,
            id: 0,
            authenticator: [0; 16],
            attributes: vec![vsa],
        };
        assert_eq!(
            p.vendor(VENDOR_MICROSOFT, MS_PRIMARY_DNS_SERVER),
            [&[10, 0, 0, 1][..]]
        );
        assert_eq!(
            p.vendor(VENDOR_MICROSOFT, MS_SECONDARY_DNS_SERVER),
            [&[10, 0, 0, 2][..]]
        );
        assert!(p.vendor(9, MS_PRIMARY_DNS_SERVER).is_empty());
    }
}
