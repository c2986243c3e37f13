//! Parsing what the client posts: a `<config-auth>` document (openconnect's XML mode) or an
//! `application/x-www-form-urlencoded` form (`--no-xmlpost`, browsers), protocol.md §1.4, §1.6.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{AuthXmlError, ClientRequest, DeviceFacts, RequestKind, MAX_DEVICE_TEXT, MAX_FIELD};
use crate::ipc::worker_secmod::{normalize_mac, MAX_MACS};

/// Deepest element nesting we follow; openconnect's documents are 3 levels deep.
const MAX_DEPTH: usize = 32;

/// Parse a POST body: XML (`<config-auth ...>`, sniffed by `<?xml` or `<config-auth`) or
/// `application/x-www-form-urlencoded`.
///
/// A body that is empty (or only whitespace) is an `init`; so is a form without any field we
/// use. The `Content-Type` header is not consulted, like ocserv: the first non-blank byte `<`
/// means XML.
pub fn parse_client_body(body: &[u8]) -> Result<ClientRequest, AuthXmlError> {
    let body = body
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(body)
        .trim_ascii();
    if body.is_empty() {
        return Ok(ClientRequest {
            kind: Some(RequestKind::Init),
            ..ClientRequest::default()
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| AuthXmlError::Malformed)?;
    if text.starts_with('<') {
        parse_xml(text)
    } else {
        parse_urlencoded(body)
    }
}

/// The fields we keep, by element or form-field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Username,
    Password,
    SecondaryPassword,
    Group,
    /// Only from XML: a form field of this name means nothing to ocserv.
    GroupAccess,
}

impl Field {
    /// ocserv counts any name that starts with `password` or ends with `_password` as the
    /// password (protocol.md §1.4), except `secondary_password`, the follow-up answer.
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "username" => Some(Self::Username),
            "secondary_password" => Some(Self::SecondaryPassword),
            "group-select" | "group_list" => Some(Self::Group),
            _ if name.starts_with("password") || name.ends_with("_password") => {
                Some(Self::Password)
            }
            _ => None,
        }
    }
}

impl ClientRequest {
    /// First value wins; a later duplicate is ignored.
    fn keep(&mut self, field: Field, value: String) -> Result<(), AuthXmlError> {
        if value.len() > MAX_FIELD {
            return Err(AuthXmlError::FieldTooLong);
        }
        let slot = match field {
            Field::Username => &mut self.username,
            Field::Password => &mut self.password,
            Field::SecondaryPassword => &mut self.secondary_password,
            Field::Group => &mut self.group,
            Field::GroupAccess => &mut self.group_access,
        };
        slot.get_or_insert(value);
        Ok(())
    }

    fn has_fields(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.secondary_password.is_some()
            || self.group.is_some()
    }
}

/// Where the text of an element goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A credential or group field: strict (bad text fails the document).
    Field(Field),
    /// `<device-id>`'s text, the platform: lenient (bad text drops the fact).
    DevicePlatform,
    /// One `<mac-address>` inside `<mac-address-list>`: lenient.
    Mac,
}

impl Target {
    fn lenient(self) -> bool {
        !matches!(self, Self::Field(_))
    }
}

/// The element being read: what it is, at which depth, text so far; `junk` once a lenient
/// target's text turned out unusable (it is then dropped at its end).
struct Capture {
    target: Target,
    depth: usize,
    value: String,
    junk: bool,
}

impl Capture {
    fn new(target: Target, depth: usize) -> Self {
        Self {
            target,
            depth,
            value: String::new(),
            junk: false,
        }
    }

    /// Add text (or the error decoding it): an error fails the document for a strict target
    /// and only spoils the value of a lenient one.
    fn add(&mut self, text: Result<std::borrow::Cow<'_, str>, ()>) -> Result<(), AuthXmlError> {
        if self.junk {
            return Ok(());
        }
        let added = text
            .map_err(|()| AuthXmlError::Malformed)
            .and_then(|t| append(&mut self.value, &t));
        match added {
            Err(_) if self.target.lenient() => {
                self.junk = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// The element state of the document: depth, the open capture, the open mac list.
#[derive(Default)]
struct Walk {
    depth: usize,
    capture: Option<Capture>,
    /// Depth of the open `<mac-address-list>`.
    mac_list: Option<usize>,
    /// A `<device-id>` was seen: later ones are ignored (first wins, as for fields).
    device_seen: bool,
}

fn parse_xml(text: &str) -> Result<ClientRequest, AuthXmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut request = ClientRequest::default();
    let mut walk = Walk::default();
    loop {
        let event = reader.read_event().map_err(|_| AuthXmlError::Malformed)?;
        match event {
            Event::Start(start) => {
                walk.depth = walk.depth.saturating_add(1);
                if walk.depth > MAX_DEPTH {
                    return Err(AuthXmlError::Malformed);
                }
                note_config_auth(&start, &mut request)?;
                if start.name().as_ref() == b"mac-address-list" && walk.mac_list.is_none() {
                    walk.mac_list = Some(walk.depth);
                }
                if walk.capture.is_none() {
                    let target = walk.target_of(&start, &mut request.device);
                    walk.capture = target.map(|t| Capture::new(t, walk.depth));
                }
            }
            Event::Empty(start) => {
                note_config_auth(&start, &mut request)?;
                if walk.capture.is_none() {
                    if let Some(Target::Field(field)) = walk.target_of(&start, &mut request.device)
                    {
                        request.keep(field, String::new())?;
                    }
                }
            }
            Event::Text(text) => {
                if let Some(capture) = walk.capture.as_mut().filter(|c| c.depth == walk.depth) {
                    capture.add(text.unescape().map_err(drop))?;
                }
            }
            Event::CData(cdata) => {
                if let Some(capture) = walk.capture.as_mut().filter(|c| c.depth == walk.depth) {
                    capture.add(cdata.decode().map_err(drop))?;
                }
            }
            Event::End(_) => {
                if let Some(done) = walk.capture.take_if(|c| c.depth == walk.depth) {
                    finish(done, &mut request)?;
                }
                if walk.mac_list == Some(walk.depth) {
                    walk.mac_list = None;
                }
                walk.depth = walk.depth.saturating_sub(1);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    Ok(request)
}

impl Walk {
    /// What the element `start` holds; a first `<device-id>` also gives its attributes to
    /// `device` here (an empty one has no text to capture).
    fn target_of(&mut self, start: &BytesStart<'_>, device: &mut DeviceFacts) -> Option<Target> {
        let qname = start.name();
        let name = std::str::from_utf8(qname.as_ref()).ok()?;
        match name {
            "group-access" => Some(Target::Field(Field::GroupAccess)),
            "device-id" if !self.device_seen => {
                self.device_seen = true;
                device_attributes(start, device);
                Some(Target::DevicePlatform)
            }
            "device-id" => None,
            "mac-address" if self.mac_list.is_some() => Some(Target::Mac),
            _ => Field::from_name(name).map(Target::Field),
        }
    }
}

/// The end of a captured element: keep its value where it goes.
fn finish(done: Capture, request: &mut ClientRequest) -> Result<(), AuthXmlError> {
    match done.target {
        Target::Field(field) => request.keep(field, done.value),
        _ if done.junk => Ok(()),
        Target::DevicePlatform => {
            request.device.platform = device_text(&done.value);
            Ok(())
        }
        Target::Mac => {
            let macs = &mut request.device.macs;
            if let Some(mac) = normalize_mac(&done.value) {
                if macs.len() < MAX_MACS && !macs.contains(&mac) {
                    macs.push(mac);
                }
            }
            Ok(())
        }
    }
}

/// The attributes of `<device-id>` we keep; a malformed attribute ends the reading of the
/// rest (what was read stays), an unusable value is dropped.
fn device_attributes(start: &BytesStart<'_>, device: &mut DeviceFacts) {
    for attribute in start.attributes() {
        let Ok(attribute) = attribute else { break };
        let slot = match attribute.key.as_ref() {
            b"unique-id" => &mut device.unique_id,
            b"computer-name" => &mut device.computer_name,
            b"device-type" => &mut device.device_type,
            b"platform-version" => &mut device.platform_version,
            _ => continue,
        };
        if slot.is_none() {
            *slot = attribute
                .unescape_value()
                .ok()
                .and_then(|v| device_text(&v));
        }
    }
}

/// A device fact as kept: trimmed, non-empty, at most [`MAX_DEVICE_TEXT`] bytes, no control
/// characters; anything else is no fact.
fn device_text(raw: &str) -> Option<String> {
    let text = raw.trim();
    let usable =
        !text.is_empty() && text.len() <= MAX_DEVICE_TEXT && !text.chars().any(char::is_control);
    usable.then(|| text.to_owned())
}

/// Take the document kind from `<config-auth type="...">`.
fn note_config_auth(
    start: &BytesStart<'_>,
    request: &mut ClientRequest,
) -> Result<(), AuthXmlError> {
    if start.name().as_ref() != b"config-auth" || request.kind.is_some() {
        return Ok(());
    }
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|_| AuthXmlError::Malformed)?;
        if attribute.key.as_ref() == b"type" {
            let value = attribute
                .unescape_value()
                .map_err(|_| AuthXmlError::Malformed)?;
            request.kind = match value.as_ref() {
                "init" => Some(RequestKind::Init),
                "auth-reply" => Some(RequestKind::AuthReply),
                "logout" => Some(RequestKind::Logout),
                _ => None,
            };
        }
    }
    Ok(())
}

fn append(value: &mut String, text: &str) -> Result<(), AuthXmlError> {
    if value.len().saturating_add(text.len()) > MAX_FIELD {
        return Err(AuthXmlError::FieldTooLong);
    }
    value.push_str(text);
    Ok(())
}

/// `name=value&...` with `+` for space and `%XX` escapes in both names and values; names are
/// decoded before they are recognised, so `group%5flist` is `group_list` (protocol.md §1.6).
fn parse_urlencoded(body: &[u8]) -> Result<ClientRequest, AuthXmlError> {
    let mut request = ClientRequest::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (
                pair.get(..eq).unwrap_or_default(),
                pair.get(eq.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (pair, &b""[..]),
        };
        let name = percent_decode(name)?;
        if let Some(field) = Field::from_name(&name) {
            if value.len() > MAX_FIELD.saturating_mul(3) {
                return Err(AuthXmlError::FieldTooLong);
            }
            request.keep(field, percent_decode(value)?)?;
        }
    }
    request.kind = Some(if request.has_fields() {
        RequestKind::AuthReply
    } else {
        RequestKind::Init
    });
    Ok(request)
}

fn percent_decode(raw: &[u8]) -> Result<String, AuthXmlError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = bytes.next().and_then(|&h| hex_value(h));
                let lo = bytes.next().and_then(|&l| hex_value(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err(AuthXmlError::Malformed),
                }
            }
            other => other,
        });
    }
    String::from_utf8(out).map_err(|_| AuthXmlError::Malformed)
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &[u8] = include_bytes!("../../tests/vectors/auth_xml/init.xml");
    const INIT_GROUP: &[u8] = include_bytes!("../../tests/vectors/auth_xml/init_group_select.xml");
    const REPLY_USER: &[u8] =
        include_bytes!("../../tests/vectors/auth_xml/auth_reply_username.xml");
    const REPLY_PASS: &[u8] =
        include_bytes!("../../tests/vectors/auth_xml/auth_reply_password.xml");
    const REPLY_ENTITIES: &[u8] =
        include_bytes!("../../tests/vectors/auth_xml/auth_reply_entities.xml");
    const URLENCODED: &[u8] = include_bytes!("../../tests/vectors/auth_xml/urlencoded.txt");
    /// openconnect 9.01 with `--os=android` (captured).
    const INIT_ANDROID: &[u8] = include_bytes!("../../tests/vectors/auth_xml/init_android.xml");
    /// AnyConnect's shape, with junk in the MAC list.
    const ANYCONNECT_REPLY: &[u8] =
        include_bytes!("../../tests/vectors/auth_xml/anyconnect_auth_reply.xml");

    fn parse(body: &[u8]) -> ClientRequest {
        parse_client_body(body).unwrap()
    }

    #[test]
    fn openconnect_init() {
        let init = parse(INIT);
        assert_eq!(
            init,
            ClientRequest {
                kind: Some(RequestKind::Init),
                group_access: Some("https://127.0.0.1:4443/".into()),
                device: DeviceFacts {
                    platform: Some("linux-64".into()),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
        let with_group = parse(INIT_GROUP);
        assert_eq!(with_group.kind, Some(RequestKind::Init));
        assert_eq!(with_group.group.as_deref(), Some("finance"));
        assert_eq!(
            with_group.group_access.as_deref(),
            Some("https://127.0.0.1:4443/")
        );
    }

    #[test]
    fn openconnect_auth_replies() {
        let user = parse(REPLY_USER);
        assert_eq!(user.kind, Some(RequestKind::AuthReply));
        assert_eq!(user.username.as_deref(), Some("test"));
        assert_eq!(user.password, None);
        let pass = parse(REPLY_PASS);
        assert_eq!(pass.username, None);
        assert_eq!(pass.password.as_deref(), Some("test123"));
    }

    #[test]
    fn entities_are_unescaped() {
        let reply = parse(REPLY_ENTITIES);
        assert_eq!(reply.password.as_deref(), Some("s&cret"));
        let reply = parse(
            b"<config-auth type='auth-reply'><auth><username>a&#x3c;&lt;&#62;&quot;&apos;\
              <![CDATA[<raw>]]></username></auth></config-auth>",
        );
        assert_eq!(reply.username.as_deref(), Some("a<<>\"'<raw>"));
    }

    #[test]
    fn urlencoded_forms() {
        let form = parse(URLENCODED);
        assert_eq!(form.kind, Some(RequestKind::AuthReply));
        assert_eq!(form.username.as_deref(), Some("te st"));
        assert_eq!(form.password.as_deref(), Some("s&cret!"));
        assert_eq!(form.group.as_deref(), Some("g1"));
        let form = parse(b"group_list=a%C3%A9&secondary_password=123456&x=y&&flag");
        assert_eq!(form.group.as_deref(), Some("a\u{e9}"));
        assert_eq!(form.secondary_password.as_deref(), Some("123456"));
        assert_eq!(form.password, None);
        assert_eq!(parse(b"foo=bar").kind, Some(RequestKind::Init));
        for bad in [
            &b"password=%zz"[..],
            b"password=%4",
            b"password=%ff",
            b"pass%word=1",
        ] {
            assert_eq!(
                parse_client_body(bad),
                Err(AuthXmlError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn password_like_names_count_as_password() {
        for name in ["password", "password2", "new_password", "answer_password"] {
            let xml = format!(
                "<config-auth type=\"auth-reply\"><auth><{name}>pw</{name}></auth></config-auth>"
            );
            assert_eq!(
                parse(xml.as_bytes()).password.as_deref(),
                Some("pw"),
                "{name}"
            );
            let form = format!("{name}=pw");
            assert_eq!(
                parse(form.as_bytes()).password.as_deref(),
                Some("pw"),
                "{name}"
            );
        }
        let xml =
            b"<config-auth type=\"auth-reply\"><auth><secondary_password>otp</secondary_password>\
                    </auth></config-auth>";
        let reply = parse(xml);
        assert_eq!(reply.secondary_password.as_deref(), Some("otp"));
        assert_eq!(reply.password, None);
        assert_eq!(
            parse(b"<config-auth><passwordless/></config-auth>")
                .password
                .as_deref(),
            Some("")
        );
    }

    #[test]
    fn lenient_about_order_and_unknown_elements() {
        let reply = parse(
            b"<?xml version=\"1.0\"?><!-- hi --><config-auth client=\"vpn\" type=\"logout\">\
              <unknown a=\"b\"><username>inner</username></unknown><username>second</username>\
              <session-token>t</session-token><group-select>g</group-select>\
              <password>p<b>ignored</b>q</password></config-auth>",
        );
        assert_eq!(reply.kind, Some(RequestKind::Logout));
        assert_eq!(reply.username.as_deref(), Some("inner"));
        assert_eq!(reply.group.as_deref(), Some("g"));
        assert_eq!(reply.password.as_deref(), Some("pq"));
        assert_eq!(parse(b"<config-auth type=\"weird\"/>").kind, None);
        assert_eq!(parse(b"<auth><username>u</username></auth>").kind, None);
    }

    /// Cisco's aggregate auth: the group chosen in the form comes back as `<group-select>` at
    /// the top level (openconnect does the same), `<group-access>` carries the URL.
    #[test]
    fn aggregate_auth_group_fields() {
        let reply = parse(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
              type=\"auth-reply\" aggregate-auth-version=\"2\"><version who=\"vpn\">4.10\
              </version><device-id>win</device-id><group-select>Staff Net</group-select>\
              <group-access>https://vpn.example.com/staff?x=1</group-access><auth>\
              <username>u</username><password>p</password></auth></config-auth>",
        );
        assert_eq!(reply.kind, Some(RequestKind::AuthReply));
        assert_eq!(reply.group.as_deref(), Some("Staff Net"));
        assert_eq!(
            reply.group_access.as_deref(),
            Some("https://vpn.example.com/staff?x=1")
        );
        assert_eq!(reply.username.as_deref(), Some("u"));
        // A form field named like the XML element is not a group-access URL.
        assert_eq!(parse(b"group-access=https://h/x").group_access, None);
        let long = format!(
            "<config-auth><group-access>https://h/{}</group-access></config-auth>",
            "a".repeat(MAX_FIELD)
        );
        assert_eq!(
            parse_client_body(long.as_bytes()),
            Err(AuthXmlError::FieldTooLong)
        );
    }

    #[test]
    fn device_facts_of_openconnect() {
        let init = parse(INIT);
        assert_eq!(
            init.device,
            DeviceFacts {
                platform: Some("linux-64".into()),
                ..Default::default()
            }
        );
        assert_eq!(
            parse(REPLY_PASS).device.platform.as_deref(),
            Some("linux-64")
        );
        let android = parse(INIT_ANDROID);
        assert_eq!(
            android.device,
            DeviceFacts {
                platform: Some("android".into()),
                unique_id: Some("A".repeat(40)),
                device_type: Some("android".into()),
                platform_version: Some("1.0".into()),
                ..Default::default()
            }
        );
        // Not a form field: an urlencoded body has no device.
        assert_eq!(parse(b"device-id=win").device, DeviceFacts::default());
    }

    #[test]
    fn device_facts_of_anyconnect() {
        let reply = parse(ANYCONNECT_REPLY);
        assert_eq!(reply.username.as_deref(), Some("alice"));
        assert_eq!(reply.group.as_deref(), Some("VPN"));
        assert_eq!(
            reply.device,
            DeviceFacts {
                platform: Some("win".into()),
                unique_id: Some(
                    "3B5C0E8F2D6A4B1C9E7F0A2B4C6D8E0F1A3B5C7D9E1F3A5B7C9D1E3F5A7B9C1D".into()
                ),
                computer_name: Some("LAPTOP-7Q2&X".into()),
                device_type: Some("LENOVO 20XW".into()),
                platform_version: Some("10.0.19045 #1".into()),
                // Normalised, the junk and the all-zero one dropped, the repeat kept once.
                macs: vec!["00:0c:29:5e:1a:9b".into(), "0c:29:5e:1a:9b:00".into()],
            }
        );
    }

    /// Junk in a device fact drops that fact; the login goes on.
    #[test]
    fn device_junk_is_dropped_not_fatal() {
        let long = "x".repeat(MAX_DEVICE_TEXT + 1);
        let huge = "y".repeat(MAX_FIELD + 1);
        let body = format!(
            "<config-auth type=\"auth-reply\"><device-id unique-id=\"{long}\" \
             computer-name=\"a&#1;b\" device-type=\"&bogus;\" platform-version=\"  \">{huge}\
             </device-id><mac-address-list><mac-address>&nope;</mac-address>\
             <mac-address>{huge}</mac-address><mac-address><b>00:11:22:33:44:55</b></mac-address>\
             <mac-address>00:11:22:33:44:56<b/></mac-address></mac-address-list>\
             <mac-address>00:11:22:33:44:57</mac-address>\
             <auth><username>u</username><password>p</password></auth></config-auth>"
        );
        let reply = parse(body.as_bytes());
        assert_eq!(reply.username.as_deref(), Some("u"));
        assert_eq!(reply.password.as_deref(), Some("p"));
        // Only the MAC inside the list, as the direct text of `<mac-address>`.
        assert_eq!(
            reply.device,
            DeviceFacts {
                macs: vec!["00:11:22:33:44:56".into()],
                ..Default::default()
            }
        );
        // A second `<device-id>` does not replace the first; an empty one has attributes.
        let reply = parse(
            b"<config-auth><device-id unique-id=\"u1\" a=\"b\" unique-id=\"dup\"/>\
              <device-id unique-id=\"u2\">mac-intel</device-id></config-auth>",
        );
        assert_eq!(reply.device.unique_id.as_deref(), Some("u1"));
        assert_eq!(reply.device.platform, None);
    }

    #[test]
    fn mac_list_is_bounded() {
        let entries: String = (0..MAX_MACS + 5)
            .map(|i| format!("<mac-address>02:00:00:00:00:{i:02x}</mac-address>"))
            .collect();
        let body =
            format!("<config-auth><mac-address-list>{entries}</mac-address-list></config-auth>");
        let macs = parse(body.as_bytes()).device.macs;
        assert_eq!(macs.len(), MAX_MACS);
        assert_eq!(macs.first().map(String::as_str), Some("02:00:00:00:00:00"));
    }

    #[test]
    fn login_facts_from_documents_and_headers() {
        use crate::ipc::worker_secmod::MAX_FACT;
        let mut device = parse(INIT_ANDROID).device;
        // A later document without MACs keeps what an earlier one said; its own facts win.
        device.update(parse(ANYCONNECT_REPLY).device);
        device.update(DeviceFacts {
            platform: Some("linux-64".into()),
            ..Default::default()
        });
        assert_eq!(device.platform.as_deref(), Some("linux-64"));
        assert_eq!(device.macs.len(), 2);
        assert_eq!(device.computer_name.as_deref(), Some("LAPTOP-7Q2&X"));
        let headers = |name: &str| match name {
            "User-Agent" => Some("AnyConnect Windows 4.10.07073"),
            "X-AnyConnect-Platform" => Some("win"),
            "X-AnyConnect-Identifier-Device-UniqueID" => Some("HDR-ID"),
            _ => None,
        };
        let facts = device.login_facts(headers);
        assert_eq!(facts.check(), Ok(()));
        assert_eq!(facts.user_agent, "AnyConnect Windows 4.10.07073");
        assert_eq!(facts.platform.as_deref(), Some("linux-64"));
        assert_eq!(facts.hostname.as_deref(), Some("LAPTOP-7Q2&X"));
        assert!(facts.device_id.as_deref().unwrap().starts_with("3B5C"));
        // Without document facts the headers speak; a blank header is none.
        let facts = DeviceFacts::default().login_facts(headers);
        assert_eq!(facts.device_id.as_deref(), Some("HDR-ID"));
        assert_eq!(facts.platform.as_deref(), Some("win"));
        assert_eq!((facts.hostname, facts.macs.len()), (None, 0));
        let odd = |name: &str| match name {
            "X-AnyConnect-Identifier-Platform" => Some("android\u{7}"),
            "X-AnyConnect-Identifier-Device-UniqueID" => Some(" \t"),
            "User-Agent" => Some("\u{1b}[2J"),
            _ => None,
        };
        let facts = DeviceFacts::default().login_facts(odd);
        assert_eq!(facts.check(), Ok(()));
        assert_eq!(facts.platform.as_deref(), Some("android"));
        assert_eq!(facts.device_id, None);
        let long = "z".repeat(3 * MAX_FACT);
        let facts = DeviceFacts::default().login_facts(|_| Some(long.as_str()));
        assert_eq!(facts.check(), Ok(()));
    }

    #[test]
    fn group_access_paths() {
        use super::super::group_access_path;
        for (url, path) in [
            ("https://127.0.0.1:4443/", None),
            ("https://127.0.0.1:4443", None),
            ("https://vpn.example.com/staff", Some("staff")),
            ("https://vpn.example.com/staff?x=1#f", Some("staff")),
            ("https://vpn.example.com/a/b", Some("a/b")),
            ("https://vpn.example.com/?x", None),
            ("http://vpn.example.com/staff", None),
            ("staff", None),
            ("", None),
        ] {
            assert_eq!(group_access_path(url), path, "{url}");
        }
    }

    #[test]
    fn empty_body_is_init() {
        for body in [&b""[..], b"  \r\n", b"\xef\xbb\xbf"] {
            assert_eq!(parse(body).kind, Some(RequestKind::Init));
        }
    }

    #[test]
    fn bad_documents_are_malformed() {
        for bad in [
            &b"<config-auth><username>a</password></config-auth>"[..],
            b"<config-auth><username>a&bogus;</username></config-auth>",
            b"<config-auth type=\"init\" type=\"init\">",
            b"\xff\xfe<",
            b"<config-auth><username>\xc3</username></config-auth>",
        ] {
            assert_eq!(
                parse_client_body(bad),
                Err(AuthXmlError::Malformed),
                "{bad:?}"
            );
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse_client_body(deep.as_bytes()),
            Err(AuthXmlError::Malformed)
        );
        // An unknown entity in an element we ignore does not matter.
        assert!(parse_client_body(b"<config-auth><x>&nbsp;</x></config-auth>").is_ok());
    }

    #[test]
    fn field_size_is_bounded() {
        let fits = "a".repeat(MAX_FIELD);
        let xml = format!("<config-auth><username>{fits}</username></config-auth>");
        assert_eq!(
            parse(xml.as_bytes()).username.map(|u| u.len()),
            Some(MAX_FIELD)
        );
        let long = "a".repeat(MAX_FIELD + 1);
        let xml = format!("<config-auth><username>{long}</username></config-auth>");
        assert_eq!(
            parse_client_body(xml.as_bytes()),
            Err(AuthXmlError::FieldTooLong)
        );
        let xml = format!(
            "<config-auth><password>{}&amp;{fits}</password></config-auth>",
            ""
        );
        assert_eq!(
            parse_client_body(xml.as_bytes()),
            Err(AuthXmlError::FieldTooLong)
        );
        let form = format!("username={long}");
        assert_eq!(
            parse_client_body(form.as_bytes()),
            Err(AuthXmlError::FieldTooLong)
        );
        let form = format!("username={}", "%41".repeat(MAX_FIELD));
        assert_eq!(
            parse(form.as_bytes()).username.map(|u| u.len()),
            Some(MAX_FIELD)
        );
    }
}
