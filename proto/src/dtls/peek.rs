//! The session id of a DTLS ClientHello datagram, for routing the first datagram of a flow to
//! its session (protocol.md §4.6), and whether a datagram looks like an application-data record
//! (a client whose NAT changed its port). Runs as ROOT in main on internet bytes: a handful of
//! bounded reads at fixed offsets, nothing else.

/// Offset of the session_id length byte: record header 13 + handshake header 12 + version 2 +
/// random 32 (dependency-findings.md §1).
const SESSION_ID_LEN_AT: usize = 59;
/// Where the 32-byte client random starts.
const RANDOM_AT: usize = 27;

/// Record header length (type, version, epoch, sequence number, length).
const RECORD_HEADER: usize = 13;
/// Where the record header's epoch is.
const EPOCH: std::ops::Range<usize> = 3..5;
/// Record content types.
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// The session id of a DTLS ClientHello datagram (record type 22, epoch 0, handshake type 1),
/// 1..=32 bytes, or None for anything else. A hello in a later epoch would be encrypted.
pub fn client_hello_session_id(datagram: &[u8]) -> Option<&[u8]> {
    let handshake_type = *datagram.get(RECORD_HEADER)?;
    let epoch = datagram.get(EPOCH)?;
    if !record_of(datagram, HANDSHAKE) || handshake_type != 1 || epoch != [0, 0] {
        return None;
    }
    // GnuTLS 3.6.3-3.6.12 sent an all-zero random; such a hello cannot complete (§4.6 step 2).
    let random = datagram.get(RANDOM_AT..SESSION_ID_LEN_AT)?;
    if random.iter().all(|b| *b == 0) {
        return None;
    }
    let len = usize::from(*datagram.get(SESSION_ID_LEN_AT)?);
    if !(1..=32).contains(&len) {
        return None;
    }
    let start = SESSION_ID_LEN_AT + 1;
    datagram.get(start..start.checked_add(len)?)
}

/// Whether `datagram` starts like a DTLS application-data record with a payload. Only a hint for
/// routing: the worker decides whether it authenticates.
pub fn is_application_data(datagram: &[u8]) -> bool {
    datagram.len() > RECORD_HEADER && record_of(datagram, APPLICATION_DATA)
}

/// Record type `content_type` in DTLS 1.0, 1.2 or 0.9 (DTLS1_BAD_VER); protocol.md §4.6 step 1.
fn record_of(datagram: &[u8], content_type: u8) -> bool {
    datagram.first() == Some(&content_type)
        && matches!(
            datagram.get(1..3),
            Some([0xFE, 0xFF] | [0xFE, 0xFD] | [0x01, 0x00])
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of the ClientHello openconnect 9.01 sent (protocol.md §4.2 trace shape).
    fn hello(id_len: u8) -> Vec<u8> {
        let mut d = vec![0x16, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9b];
        d.extend_from_slice(&[1, 0, 0, 0x8f, 0, 0, 0, 0, 0, 0, 0, 0x8f, 0xfe, 0xfd]);
        d.extend_from_slice(&[0x26; 32]);
        d.push(id_len);
        d.extend((0..id_len).map(|i| i ^ 0x5a));
        d.push(0);
        d
    }

    #[test]
    fn finds_the_session_id() {
        let d = hello(32);
        let id = client_hello_session_id(&d).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(id[0], 0x5a);
        assert_eq!(id[31], 31 ^ 0x5a);
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(client_hello_session_id(&hello(0)), None);
        assert_eq!(client_hello_session_id(&hello(33)), None);
        let d = hello(32);
        assert_eq!(client_hello_session_id(&d[..70]), None, "truncated id");
        let mut app = d.clone();
        app[0] = 23;
        assert_eq!(client_hello_session_id(&app), None);
        let mut tls = d.clone();
        tls[1] = 3;
        tls[2] = 3;
        assert_eq!(client_hello_session_id(&tls), None);
        let mut zero = d.clone();
        zero[27..59].fill(0);
        assert_eq!(client_hello_session_id(&zero), None);
        let mut epoch1 = d.clone();
        epoch1[4] = 1;
        assert_eq!(client_hello_session_id(&epoch1), None);
        let mut server_hello = d;
        server_hello[13] = 2;
        assert_eq!(client_hello_session_id(&server_hello), None);
        for n in 0..60 {
            assert_eq!(client_hello_session_id(&hello(32)[..n]), None);
        }
    }

    #[test]
    fn application_data_is_recognised_by_its_header_only() {
        let mut record = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 40];
        assert!(!is_application_data(&record), "header without payload");
        record.extend_from_slice(&[0x11; 40]);
        assert!(is_application_data(&record));
        let mut bad_ver = record.clone();
        bad_ver[1..3].copy_from_slice(&[0x01, 0x00]);
        assert!(
            is_application_data(&bad_ver),
            "DTLS 0.9 (legacy AnyConnect)"
        );
        let mut tls = record.clone();
        tls[1..3].copy_from_slice(&[3, 3]);
        assert!(!is_application_data(&tls));
        assert!(!is_application_data(&hello(32)));
        assert!(!is_application_data(&[]));
    }
}
