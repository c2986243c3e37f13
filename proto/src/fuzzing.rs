//! One "run one input" function per fuzz target, shared by the cargo-fuzz crate (`proto/fuzz`)
//! and the stable corpus replay test (`proto/tests/corpus_replay.rs`), so both exercise exactly
//! the same code (the firezone/quinn pattern). Not an API: hidden from the docs.
//!
//! Each function must never panic on any input except through the `assert!`s below, which state
//! properties of the codecs (round trips, bounds) and so turn a silent bug into a fuzz finding.
//! Like the rest of the crate it is pure.

use serde::{de::DeserializeOwned, Serialize};

use crate::policy::ports;
use crate::{
    auth_xml, client_strings, compress, config, cstp, http, ipc, logline, otp_file, passwd,
};

/// Most frames decoded from one input (an input of `n` bytes holds at most `n / 8` frames).
const MAX_FRAMES: usize = 4096;

/// `cstp_frame`: decode `data` as a CSTP stream; every frame re-encodes to its own bytes, and
/// `NeedMore(n)` once the length is known means exactly `n` more bytes complete the frame.
pub fn cstp_frame(data: &[u8]) {
    let mut rest = data;
    for _ in 0..MAX_FRAMES {
        match cstp::decode(rest) {
            Ok(cstp::Decoded::Frame { frame, consumed }) => {
                assert!(consumed >= cstp::HEADER_LEN && consumed <= rest.len());
                let mut again = Vec::new();
                assert!(cstp::encode_frame(frame.ty, frame.payload, &mut again).is_ok());
                assert_eq!(Some(again.as_slice()), rest.get(..consumed));
                rest = rest.get(consumed..).unwrap_or_default();
            }
            Ok(cstp::Decoded::NeedMore(missing)) => {
                assert!(missing > 0);
                if rest.len() >= 6 {
                    let mut padded = rest.to_vec();
                    padded.resize(rest.len().saturating_add(missing), 0);
                    assert!(matches!(
                        cstp::decode(&padded),
                        Ok(cstp::Decoded::Frame { consumed, .. }) if consumed == padded.len()
                    ));
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// `http_head`: parse `data` as a request head and check the bounds the worker relies on; then
/// build a response from the same bytes and check that an accepted response cannot be split
/// (it reads back as one response with exactly the headers we put in).
pub fn http_head(data: &[u8]) {
    match http::parse_request_head(data) {
        Ok(http::ParsedHead::Complete { head, head_len }) => {
            assert!(head_len <= data.len() && head_len <= http::MAX_HEAD);
            assert!(head.content_length <= http::MAX_BODY);
            assert!(head.headers.len() <= http::MAX_HEADERS);
            let _ = head.cookie("webvpn");
            let _ = head.header("user-agent");
        }
        Ok(http::ParsedHead::NeedMore) => assert!(data.len() < http::MAX_HEAD),
        Err(_) => {}
    }
    response_cannot_split(data);
}

fn response_cannot_split(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let reason = lines.next().unwrap_or_default();
    let mut response = http::Response::new(200, reason);
    for line in lines.take(8) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        response = response.header(name, value);
    }
    let mut out = Vec::new();
    if response.try_encode(&mut out).is_err() {
        return;
    }
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut slots);
    let status = parsed.parse(&out);
    assert!(
        matches!(status, Ok(httparse::Status::Complete(len)) if len == out.len()),
        "encoded response does not read back: {status:?}"
    );
    let extra = usize::from(!response.is_connected());
    assert_eq!(
        parsed.headers.len(),
        response.headers.len().saturating_add(extra)
    );
    for (sent, got) in response.headers.iter().zip(parsed.headers.iter()) {
        assert_eq!(sent.0, got.name);
    }
}

/// `auth_xml`: parse `data` as a client body; then render both server documents with the same
/// text and check that they read back with quick-xml to exactly that text.
pub fn auth_xml(data: &[u8]) {
    if let Ok(request) = auth_xml::parse_client_body(data) {
        for field in [
            &request.username,
            &request.password,
            &request.secondary_password,
            &request.group,
            &request.group_access,
        ] {
            assert!(field
                .as_ref()
                .is_none_or(|v| v.len() <= auth_xml::MAX_FIELD));
        }
        if let Some(path) = request
            .group_access
            .as_deref()
            .and_then(auth_xml::group_access_path)
        {
            assert!(!path.is_empty() && !path.contains(['?', '#']));
        }
        // Whatever the document says about the device, the login's facts pass sec-mod's
        // check (a worker that sent them would otherwise lose its channel).
        let d = &request.device;
        assert!(d.macs.len() <= ipc::worker_secmod::MAX_MACS);
        assert!(d.macs.iter().all(|m| ipc::worker_secmod::valid_mac(m)));
        let text = String::from_utf8_lossy(data);
        let facts = d.login_facts(|_| Some(text.as_ref()));
        assert_eq!(facts.check(), Ok(()));
    }
    if let Some(mac) = ipc::worker_secmod::normalize_mac(&String::from_utf8_lossy(data)) {
        assert!(ipc::worker_secmod::valid_mac(&mac));
        assert_eq!(ipc::worker_secmod::normalize_mac(&mac), Some(mac.clone()));
    }
    let text = String::from_utf8_lossy(data);
    let form = auth_xml::LoginForm {
        message: text.to_string(),
        banner: Some(text.to_string()),
        error: None,
        fields: auth_xml::FormFields::Secondary {
            label: text.to_string(),
            secret: true,
        },
        groups: Vec::new(),
    };
    let expected = auth_xml::xml_safe(&text);
    let rendered = auth_xml::render_login_form(&form);
    assert_eq!(read_back(&rendered, b"message"), Some(expected.clone()));
    assert_eq!(read_back(&rendered, b"label"), Some(expected.clone()));
    let complete = auth_xml::render_complete(Some(&text), &text);
    assert_eq!(
        read_back(&complete, b"session-token"),
        Some(expected.clone())
    );
    // Group names and labels come from the configuration and the password file.
    let with_groups = auth_xml::LoginForm {
        fields: auth_xml::FormFields::UsernamePassword,
        groups: vec![auth_xml::FormGroup {
            value: text.to_string(),
            label: text.to_string(),
        }],
        ..form
    };
    let rendered = auth_xml::render_login_form(&with_groups);
    assert_eq!(read_back(&rendered, b"value"), Some(expected.clone()));
    assert_eq!(read_back(&rendered, b"option"), Some(expected));
}

/// The text of the first element named `name`, or the value of the first attribute named
/// `name`; panics if the document is not well-formed.
fn read_back(doc: &str, name: &[u8]) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut inside = false;
    let mut found: Option<String> = None;
    loop {
        let event = reader.read_event();
        assert!(
            event.is_ok(),
            "rendered document is not XML: {event:?}\n{doc}"
        );
        match event {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                inside = e.name().as_ref() == name;
                if inside && found.is_none() {
                    found = Some(String::new());
                }
                for attribute in e.attributes() {
                    assert!(attribute.is_ok(), "bad attribute in\n{doc}");
                    if let Ok(a) = attribute {
                        if a.key.as_ref() == name && found.is_none() {
                            let value = a.unescape_value();
                            assert!(value.is_ok(), "bad attribute value in\n{doc}");
                            found = value.ok().map(|v| v.into_owned());
                        }
                    }
                }
            }
            Ok(Event::Text(t)) if inside => {
                let text = t.unescape();
                assert!(text.is_ok(), "bad text in\n{doc}");
                if let (Some(found), Ok(text)) = (found.as_mut(), text) {
                    found.push_str(&text);
                }
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}

/// `config`: parse `data` as an ocserv.conf when it is UTF-8.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = config::parse(text, "fuzz");
        let _ = parsed.has_errors();
    }
}

/// `auth_hook_control`: parse `data` as a hook's control answer; an accepted group is a valid
/// group name and an answer is only ever read from at most `MAX_CONTROL` bytes.
pub fn auth_hook_control(data: &[u8]) {
    use crate::auth_hook::{parse_control, Answer, MAX_CONTROL};
    match parse_control(data) {
        Ok(Answer::Accept { group, .. }) => {
            assert!(data.len() <= MAX_CONTROL);
            assert!(group.as_deref().is_none_or(config::valid_group_name));
        }
        Ok(Answer::Refuse) => assert!(data.len() <= MAX_CONTROL),
        Err(_) => {}
    }
}

/// `policy_file`: parse `data` as a per-user/per-group file when it is UTF-8; a file without
/// errors merges over the default policy, as group and as user file, without panicking.
pub fn policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = crate::policy::file::parse(text, "fuzz");
    if !parsed.has_errors() {
        let file = Box::new(parsed.file);
        let overrides = crate::policy::Overrides {
            group: Some(file.clone()),
            user: Some(file.clone()),
            auth: Some(file),
        };
        let policy = crate::policy::Policy {
            append_routes: data.len().is_multiple_of(2),
            ..Default::default()
        };
        let _ = policy.resolve(&overrides);
    }
}

/// `cert_fields`: read the user and group of `data` as a client certificate (the bytes a
/// hostile client or worker chooses), by UID/OU and by `SAN(rfc822name)`; names that come out
/// are bounded and free of control characters.
pub fn cert_fields(data: &[u8]) {
    use crate::cert_fields::{names, MAX_NAME, MAX_SUBJECT};
    use crate::config::CertField;
    let uid = CertField::Oid("0.9.2342.19200300.100.1.1".to_owned());
    let ou = CertField::Oid("2.5.4.11".to_owned());
    for (user, group) in [(&uid, Some(&ou)), (&CertField::SanRfc822Name, None)] {
        if let Ok(found) = names(data, user, group) {
            for name in std::iter::once(&found.user).chain(found.group.as_ref()) {
                assert!(!name.is_empty() && name.len() <= MAX_NAME);
                assert!(!name.chars().any(char::is_control));
            }
            assert!(found.subject.len() <= MAX_SUBJECT);
            assert!(!found.subject.chars().any(char::is_control));
        }
    }
}

/// `passwd`: parse `data` as an ocpasswd file when it is UTF-8, and each entry's crypt hash field;
/// a file that parses writes back to text that parses to the same entries.
pub fn passwd(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = passwd::parse(text);
    // Each entry's hash field, as sec-mod reads it before computing the digest.
    for entry in entries.iter().flatten() {
        if let Ok(h) = crate::crypt_hash::CryptHash::parse(&entry.hash) {
            assert!(
                (crate::crypt_hash::ROUNDS_MIN..=crate::crypt_hash::ROUNDS_MAX).contains(&h.rounds)
            );
            assert!(!h.digest.is_empty() && !h.digest.contains('$') && !h.salt.contains('$'));
        }
    }
    if let Ok(file) = passwd::PasswdFile::parse(text) {
        assert_eq!(Ok(file.clone().into_entries()), entries);
        if let Ok(written) = file.to_text() {
            let again = passwd::parse(&written);
            assert_eq!(again, entries, "rewritten file:\n{written}");
        }
    }
}

/// `otp_file`: parse `data` as a one-time password users file; a file that parses writes back
/// byte for byte, and after a recorded use of each token it still parses to the same tokens,
/// with that token's counter, code and time as recorded.
pub fn otp_file(data: &[u8]) {
    let Ok(mut file) = otp_file::OtpFile::parse_bytes(data) else {
        return;
    };
    assert_eq!(file.to_text().as_bytes(), data);
    let before = file.tokens().to_vec();
    let time = "2026-12-05T08:00:00L";
    for index in 0..before.len().min(8) {
        let code = format!("{:06}", index);
        assert!(file.record_use(index, index as u64, &code, time).is_ok());
        let text = file.to_text();
        let again = otp_file::OtpFile::parse(&text);
        assert!(again.is_ok(), "rewritten file does not parse:\n{text}");
        let again = again.unwrap_or_else(|_| file.clone());
        assert_eq!(again.tokens().len(), before.len());
        for (i, (a, b)) in again.tokens().iter().zip(&before).enumerate() {
            assert_eq!(
                (&a.user, &a.secret, a.token_type),
                (&b.user, &b.secret, b.token_type)
            );
            if i == index {
                assert_eq!(a.counter, Some(index as u64));
                assert_eq!(a.last_otp.as_deref(), Some(code.as_str()));
                assert_eq!(a.last_time.as_deref(), Some(time));
            }
        }
    }
}

/// `ipc`: decode `data` as every message type of every edge; whatever decodes re-encodes and
/// decodes to the same value.
pub fn ipc(data: &[u8]) {
    use crate::ipc::{main_secmod, main_worker, worker_secmod};
    round_trip::<main_secmod::ToSecMod>(data);
    round_trip::<main_secmod::FromSecMod>(data);
    round_trip::<main_worker::ToMain>(data);
    round_trip::<main_worker::ToWorker>(data);
    round_trip::<worker_secmod::ToSecMod>(data);
    round_trip::<worker_secmod::FromSecMod>(data);
    // What a node reads from the store's pub/sub channel (any bytes: a shared store may carry
    // anything): the bounded decoder, then the round trip.
    if let Ok(msg) = crate::cluster::bus::BusMessage::decode(data) {
        let bytes = msg.encode();
        assert!(
            bytes.is_ok(),
            "decoded bus message does not re-encode: {msg:?}"
        );
        if let Ok(bytes) = bytes {
            let again = crate::cluster::bus::BusMessage::decode(&bytes);
            assert!(
                matches!(&again, Ok(m) if *m == msg),
                "{msg:?} became {again:?}"
            );
        }
    }
    // A session record read from the store (`cluster::session`): checked decode, round trip.
    {
        use crate::cluster::session::Record;
        if let Ok(r) = Record::decode(data, u64::MAX, &["vpn.example.com"]) {
            let again = r
                .encode()
                .map(|b| Record::decode(&b, u64::MAX, &["vpn.example.com"]));
            assert!(
                matches!(&again, Ok(Ok(x)) if *x == r),
                "{r:?} became {again:?}"
            );
        }
    }
    // A ban key and value read back from the store (any bytes): no panic.
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = crate::cluster::bans::parse_stored(key, Some(data), 1);
    }
    // A node's rows as another node reads them from the store (`cluster::view`): the bounded
    // decoder, then the round trip (the decoder stamps the key's node name on every row).
    if let Ok(view) = crate::cluster::view::NodeView::decode(data, "fuzz") {
        if let Ok(bytes) = view.encode() {
            let again = crate::cluster::view::NodeView::decode(&bytes, "fuzz");
            assert!(
                matches!(&again, Ok(v) if *v == view),
                "{view:?} became {again:?}"
            );
        }
    }
    // main's check of a worker's state report: any values, no panic; accepted text is printable.
    if let Ok(main_worker::ToMain::TunnelState(state)) = ipc::decode(data) {
        if let Ok(d) = crate::session_desc::describe(&state) {
            assert!(d
                .tls
                .bytes()
                .chain(d.dtls.bytes())
                .all(|b| b.is_ascii_graphic()));
        }
    }
    // main's check of a worker's CONNECT, and the worker's cleaning always satisfying it.
    if let Ok(main_worker::ToMain::Connect(req)) = ipc::decode(data) {
        let _ = client_strings::check_request(&req);
        for max in [0, 3, client_strings::MAX_USER_AGENT] {
            let clean = client_strings::clean_text(&req.user_agent, max);
            assert!(client_strings::is_clean_text(&clean, max), "{clean:?}");
        }
        if let Some(label) = req
            .hostname
            .as_deref()
            .and_then(client_strings::clean_hostname)
        {
            assert!(client_strings::is_host_label(&label));
        }
    }
}

/// `sign_content`: the first two bytes are a signature scheme, the rest a message a worker asks
/// sec-mod to sign. What `ipc::signable::check` accepts re-encodes to exactly the message, has one
/// of the few lengths a handshake signature input can have, and is refused under any scheme
/// outside the list.
pub fn sign_content(data: &[u8]) {
    use crate::ipc::signable::{check, Signable};
    let Some((scheme, message)) = data.split_first_chunk::<2>() else {
        return;
    };
    let scheme = u16::from_be_bytes(*scheme);
    if let Ok(signable) = check(scheme, message) {
        let mut again = Vec::new();
        signable.encode(&mut again);
        assert_eq!(again, message);
        let lens: &[usize] = match signable {
            Signable::Tls13CertificateVerify { .. } => &[130, 146],
            Signable::Tls12ServerKeyExchange { .. } => &[100, 133, 165],
        };
        assert!(lens.contains(&message.len()), "{} bytes", message.len());
        assert!(check(0x0201, message).is_err());
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(msg) = ipc::decode::<T>(data) {
        let bytes = ipc::encode(&msg);
        assert!(bytes.is_ok(), "decoded message does not re-encode: {msg:?}");
        if let Ok(bytes) = bytes {
            let again = ipc::decode::<T>(&bytes);
            assert!(
                matches!(&again, Ok(m) if *m == msg),
                "{msg:?} became {again:?}"
            );
        }
    }
}

/// `lzs_decompress`: decode `data` as an LZS packet into a 16 KiB buffer; whatever decodes
/// fits, and compresses and decodes back to itself.
pub fn lzs_decompress(data: &[u8]) {
    let mut out = vec![0u8; compress::MAX_DECOMPRESSED];
    if let Ok(n) = compress::lzs::decompress(data, &mut out) {
        assert!(n <= out.len());
        lzs_roundtrip(out.get(..n).unwrap_or_default());
    }
}

/// `lzs_roundtrip`: compress `data`, which must decode to exactly `data`; with less output room
/// than the input the compressor either says so or still produces a valid stream.
pub fn lzs_roundtrip(data: &[u8]) {
    let mut lzs = compress::lzs::Compressor::new();
    // 9 bits per literal plus the end marker is the worst case.
    let mut packed = vec![0u8; (data.len().saturating_mul(9) / 8).saturating_add(3)];
    let n = lzs.compress(data, &mut packed);
    assert!(n.is_ok(), "worst-case room was too small: {n:?}");
    let n = n.unwrap_or_default();
    let mut back = vec![0u8; data.len()];
    let decoded = compress::lzs::decompress(packed.get(..n).unwrap_or_default(), &mut back);
    assert_eq!(decoded, Ok(data.len()));
    assert_eq!(back.as_slice(), data);
    // The sender's "only if shorter" path reuses the same state.
    let room = data.len().saturating_sub(1);
    if let Ok(m) = lzs.compress(data, packed.get_mut(..room).unwrap_or_default()) {
        assert!(m <= room);
        let again = compress::lzs::decompress(packed.get(..m).unwrap_or_default(), &mut back);
        assert_eq!(again, Ok(data.len()));
    }
}

/// `lz4_roundtrip`: compress `data` as one LZ4 block and decode it back; also decode `data`
/// itself as a block into a 16 KiB buffer (must not panic or overrun).
pub fn lz4_roundtrip(data: &[u8]) {
    let mut lz4 = compress::lz4::Compressor::new();
    let mut packed = vec![0u8; compress::lz4::max_compressed_len(data.len())];
    let n = lz4.compress(data, &mut packed);
    assert!(n.is_ok(), "{n:?}");
    let n = n.unwrap_or_default();
    let mut back = vec![0u8; data.len()];
    let decoded = compress::lz4::decompress(packed.get(..n).unwrap_or_default(), &mut back);
    assert_eq!(decoded, Ok(data.len()));
    assert_eq!(back.as_slice(), data);
    let mut out = vec![0u8; compress::MAX_DECOMPRESSED];
    if let Ok(k) = compress::lz4::decompress(data, &mut out) {
        assert!(k <= out.len());
    }
}

/// `dtls_client_hello_peek`: the ClientHello peek main runs as root (`dtls::peek`) returns
/// exactly the session id bytes or nothing.
pub fn dtls_client_hello_peek(data: &[u8]) {
    crate::dtls::fuzz::client_hello_peek(data);
}

/// `dtls_server`: datagrams fed to a DTLS server in one of the five modes (seed format in
/// `dtls/fuzz.rs`); never a panic, answers are sane, data seals.
pub fn dtls_server(data: &[u8]) {
    let _ = crate::dtls::fuzz::server(data);
}

/// `tun_offload`: the tun offload code on arbitrary bytes. `data` as one tun read (header +
/// packet) is cut into segments; then `data` as a list of packets (2-byte big-endian length
/// each) from the client goes through the joiner, and every write it makes is cut again: no
/// panic, every segment fits its buffer, and a joined write re-cuts into as many segments as
/// were joined.
pub fn tun_offload(data: &[u8]) {
    use crate::offload::{ack_thin, coalesce::Coalescer, segment::Segments, VnetHdr};
    let mut out = vec![0u8; 65_536];
    let cut = |write: &[u8], out: &mut [u8]| -> usize {
        let mut count = 0usize;
        if let Some((hdr, packet)) = VnetHdr::split(write) {
            if let Ok(mut segments) = Segments::new(&hdr, packet) {
                while let Some(Ok(n)) = segments.next_into(out) {
                    assert!(n <= out.len());
                    count = count.saturating_add(1);
                }
            }
        }
        count
    };
    let _ = cut(data, &mut out);
    // ACK filtering: only pure ACKs qualify, and a packet never supersedes itself.
    if let Some((&at, rest)) = data.split_first() {
        let (older, newer) = rest.split_at(usize::from(at).min(rest.len()));
        if ack_thin::supersedes(older, newer) {
            assert!(ack_thin::is_pure_ack(older) && ack_thin::is_pure_ack(newer));
        }
        assert!(!ack_thin::supersedes(older, older));
    }
    let mut coalescer = Coalescer::new();
    let mut joined = 0usize;
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        if coalescer.push(packet) {
            joined = joined.saturating_add(1);
            continue;
        }
        if let Some(write) = coalescer.take() {
            let write = write.to_vec();
            assert_eq!(cut(&write, &mut out), joined);
        }
        joined = usize::from(coalescer.push(packet));
    }
    if let Some(write) = coalescer.take() {
        let write = write.to_vec();
        assert_eq!(cut(&write, &mut out), joined);
    }
}

/// `worker_log`: split `data` (fed in two pieces at a point its first byte picks) into lines as
/// main does with a worker's stderr; no line exceeds the limit or holds a newline, the pieces
/// give the same lines as the whole, and no escaped line holds a byte outside printable ASCII.
pub fn worker_log(data: &[u8]) {
    const MAX: usize = 64;
    let at = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(at);
    let mut pieces = logline::LineSplitter::new(MAX);
    let mut whole = logline::LineSplitter::new(MAX);
    let (mut split_out, mut whole_out) = (Vec::new(), Vec::new());
    pieces.feed(a, &mut split_out);
    pieces.feed(b, &mut split_out);
    split_out.extend(pieces.finish());
    whole.feed(data, &mut whole_out);
    whole_out.extend(whole.finish());
    assert_eq!(split_out, whole_out);
    for line in &whole_out {
        assert!(line.bytes.len() <= MAX && !line.bytes.contains(&b'\n'));
        let (_, rest) = logline::split_tag(&line.bytes);
        assert!(logline::escape(rest)
            .bytes()
            .all(|c| (0x20..=0x7e).contains(&c)));
    }
}

/// `ports`: parse `data` as a `restrict-user-to-ports` value; an accepted list is non-empty,
/// within the bound, and its normalised text reads back to the same rules.
pub fn ports(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rules) = ports::parse(text) {
        assert!(!rules.rules.is_empty() && rules.rules.len() <= ports::MAX_RULES);
        assert_eq!(ports::parse(&rules.to_string()), Ok(rules));
    }
}

/// `radius_packet`: the first 17 octets are a request's identifier and authenticator, the rest
/// an answer to it, checked with a fixed secret (almost never valid: this exercises the parser
/// and the checks). Any packet that parses re-encodes its attributes within the limits, and a
/// password hides to a multiple of 16 octets.
pub fn radius_packet(data: &[u8]) {
    use crate::radius::packet;
    let Some((head, answer)) = data.split_first_chunk::<17>() else {
        return;
    };
    let [id, auth @ ..] = *head;
    let sent = packet::Sent {
        code: packet::Code::AccessRequest,
        id,
        authenticator: auth,
    };
    for require in [false, true] {
        let _ = packet::decode_response(answer, &sent, b"fuzz-secret", require);
    }
    if let Ok(p) = packet::parse(answer) {
        assert!(p
            .attributes
            .iter()
            .all(|a| a.value.len() <= packet::MAX_VALUE));
        let _ = p.vendor(packet::VENDOR_MICROSOFT, packet::MS_PRIMARY_DNS_SERVER);
        for a in &p.attributes {
            let _ = (packet::int(&a.value), packet::ipv4(&a.value));
            let _ = (packet::ipv6(&a.value), packet::ipv6_prefix(&a.value));
        }
        let again = packet::access_request(id, &auth, &p.attributes, None, b"k", false);
        if let Ok(bytes) = again {
            assert!(bytes.len() <= packet::MAX_PACKET);
            assert_eq!(
                packet::parse(&bytes).map(|q| q.attributes),
                Ok(p.attributes)
            );
        }
    }
    if let Ok(hidden) = packet::hide_password(answer, b"k", &auth) {
        assert!(hidden.len() % 16 == 0 && !hidden.is_empty() && hidden.len() <= 128);
    }
}

/// `radius_conf`: `data` as radcli's configuration file and as its servers file (when UTF-8);
/// never panics, and what parses stays within the limits.
pub fn radius_conf(data: &[u8]) {
    use crate::radius::conf;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = conf::parse_conf(text, "fuzz") {
        assert!(c.auth_servers.len() <= conf::MAX_SERVERS);
        assert!(c.acct_servers.len() <= conf::MAX_SERVERS);
        assert!(c.timeout_secs >= 1 && c.timeout_secs <= conf::MAX_TIMEOUT_SECS);
        assert!(c.retries <= conf::MAX_RETRIES);
    }
    if let Ok(s) = conf::parse_servers(text, "fuzz") {
        for (host, secret) in &s {
            let _ = conf::secret_for(&s, host, Some(1812));
            assert!(secret.0.len() <= conf::MAX_SECRET);
        }
    }
}

/// `proxy_header`: `data` as the start of a `listen-proxy-proto` connection. A complete header
/// is within the bounds and does not depend on what follows it; every shorter prefix asks for
/// more, never past the header's end (so main's exact reads never eat the client's TLS bytes);
/// an encoded v2 header of the addresses found reads back to them.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy_proto::{self, Header, Parsed, Version};
    let Ok(Parsed::Complete { header, len }) = proxy_proto::parse(data) else {
        if let Ok(Parsed::NeedMore(n)) = proxy_proto::parse(data) {
            assert!(n >= 1 && data.len().saturating_add(n) <= proxy_proto::MAX_HEADER);
        }
        return;
    };
    assert!(len <= data.len() && len <= proxy_proto::MAX_HEADER);
    let own = data.get(..len).unwrap_or_default();
    assert_eq!(
        proxy_proto::parse(own),
        Ok(Parsed::Complete { header, len })
    );
    for cut in 0..len {
        let asked = proxy_proto::parse(own.get(..cut).unwrap_or_default());
        assert!(
            matches!(asked, Ok(Parsed::NeedMore(n)) if n >= 1 && cut.saturating_add(n) <= len),
            "prefix {cut} of a {len}-byte header: {asked:?}"
        );
    }
    match header {
        Header::Proxied {
            version,
            source,
            destination,
        } => {
            if version == Version::V1 {
                assert!(len <= proxy_proto::V1_MAX);
            }
            let again = proxy_proto::encode_v2(source, destination, &[]);
            let again = again.unwrap_or_default();
            assert!(matches!(
                proxy_proto::parse(&again),
                Ok(Parsed::Complete { header: Header::Proxied { source: s, destination: d, .. }, .. })
                    if s == source && d == destination
            ));
        }
        Header::Local => {}
    }
}
