//! The classic BPF program main attaches to the shared DTLS socket (SO_ATTACH_FILTER), so that
//! the kernel drops what [`super::peek`] would drop anyway before it reaches the socket's queue
//! or costs main a wake-up: only a ClientHello (record type 22, a DTLS version, epoch 0,
//! handshake type 1, a session id of 1 to 32 bytes) or an application-data record (type 23, a
//! DTLS version, a payload; a client whose NAT moved its port) of at most
//! [`MAX_DATAGRAM`] bytes passes. It accepts a superset of what `peek` routes (tested on
//! every fuzz input), so it never drops a datagram main would have used.
//!
//! Instruction encoding: linux/filter.h and linux/bpf_common.h (`struct sock_filter`); a load
//! beyond the end of the packet ends the program with 0 (drop), which keeps short datagrams
//! out without length checks.

/// Largest datagram the filter passes: main hands at most this much to a worker as the first
/// datagram of a flow (IPC message limit).
pub const MAX_DATAGRAM: u32 = 4096;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes (linux/bpf_common.h): class | size | mode, class | op | source.
const LD_W_LEN: u16 = 0x80; // BPF_LD (0) | BPF_W (0) | BPF_LEN (0x80)
const LD_H_ABS: u16 = 0x28; // BPF_LD (0) | BPF_H (0x08) | BPF_ABS (0x20)
const LD_B_ABS: u16 = 0x30; // BPF_LD (0) | BPF_B (0x10) | BPF_ABS (0x20)
const JEQ_K: u16 = 0x15; // BPF_JMP (0x05) | BPF_JEQ (0x10) | BPF_K (0)
const JGT_K: u16 = 0x25; // BPF_JMP (0x05) | BPF_JGT (0x20) | BPF_K (0)
const RET_K: u16 = 0x06; // BPF_RET (0x06) | BPF_K (0)

/// Record layer fields (RFC 6347 §4.1): type at 0, version at 1, epoch at 3; the handshake
/// type at 13; the ClientHello's session id length at 59 (see [`super::peek`]).
const TYPE_AT: u32 = 0;
const VERSION_AT: u32 = 1;
const EPOCH_AT: u32 = 3;
const HANDSHAKE_TYPE_AT: u32 = 13;
const SESSION_ID_LEN_AT: u32 = 59;
/// DTLS 1.0, DTLS 1.2 and DTLS 0.9 (`DTLS1_BAD_VER`), as [`super::peek`] accepts.
const VERSIONS: [u32; 3] = [0xFEFF, 0xFEFD, 0x0100];

/// The filter for a socket whose filter sees `header` bytes before the datagram's payload: 8
/// (the UDP header) for SO_ATTACH_FILTER on a UDP socket, 0 for a bare datagram.
pub fn socket_filter(header: u32) -> Vec<BpfInstruction> {
    let at = |offset: u32| header.saturating_add(offset);
    let i = |code, jt, jf, k| BpfInstruction { code, jt, jf, k };
    // Jump offsets count instructions skipped; the comments number the instructions.
    vec![
        /* 0 */ i(LD_W_LEN, 0, 0, 0),
        /* 1 */ i(JGT_K, 16, 0, at(MAX_DATAGRAM)), // too long -> 18
        /* 2 */ i(LD_H_ABS, 0, 0, at(VERSION_AT)),
        /* 3 */ i(JEQ_K, 2, 0, VERSIONS[0]), // -> 6
        /* 4 */ i(JEQ_K, 1, 0, VERSIONS[1]), // -> 6
        /* 5 */ i(JEQ_K, 0, 12, VERSIONS[2]), // -> 6, other versions -> 18
        /* 6 */ i(LD_B_ABS, 0, 0, at(TYPE_AT)),
        /* 7 */ i(JEQ_K, 8, 0, 23), // application data -> 16
        /* 8 */ i(JEQ_K, 0, 9, 22), // handshake -> 9, other types -> 18
        /* 9 */ i(LD_H_ABS, 0, 0, at(EPOCH_AT)),
        /* 10 */ i(JEQ_K, 0, 7, 0), // epoch 0 -> 11, else -> 18
        /* 11 */ i(LD_B_ABS, 0, 0, at(HANDSHAKE_TYPE_AT)),
        /* 12 */ i(JEQ_K, 0, 5, 1), // ClientHello -> 13, else -> 18
        /* 13 */ i(LD_B_ABS, 0, 0, at(SESSION_ID_LEN_AT)),
        /* 14 */ i(JEQ_K, 3, 0, 0), // empty session id -> 18
        /* 15 */ i(JGT_K, 2, 1, 32), // longer than 32 -> 18, else -> 17
        // Application data: a byte after the record header must exist (else the load drops).
        /* 16 */
        i(LD_B_ABS, 0, 0, at(HANDSHAKE_TYPE_AT)),
        /* 17 */ i(RET_K, 0, 0, u32::MAX),
        /* 18 */ i(RET_K, 0, 0, 0),
    ]
}

/// Runs `program` on `packet` as the kernel does for the instructions [`socket_filter`] uses:
/// the number of bytes to keep (0 = drop). `None` for anything else (an unknown opcode, a jump
/// out of the program).
pub(crate) fn interpret(program: &[BpfInstruction], packet: &[u8]) -> Option<u32> {
    let load = |k: u32, size: usize| -> Option<u32> {
        let start = usize::try_from(k).ok()?;
        let bytes = packet.get(start..start.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
    };
    let mut a = 0u32;
    let mut pc = 0usize;
    // Classic BPF only jumps forward: at most one step per instruction.
    for _ in 0..program.len() {
        let ins = program.get(pc)?;
        let next = pc.checked_add(1)?;
        pc = match ins.code {
            LD_W_LEN => {
                a = u32::try_from(packet.len()).ok()?;
                next
            }
            LD_H_ABS | LD_B_ABS => {
                let size = if ins.code == LD_H_ABS { 2 } else { 1 };
                match load(ins.k, size) {
                    Some(v) => a = v,
                    None => return Some(0), // out of the packet: the kernel drops it
                }
                next
            }
            JEQ_K | JGT_K => {
                let taken = if ins.code == JEQ_K {
                    a == ins.k
                } else {
                    a > ins.k
                };
                let skip = if taken { ins.jt } else { ins.jf };
                next.checked_add(usize::from(skip))?
            }
            RET_K => return Some(ins.k),
            _ => return None,
        };
    }
    None
}

/// Whether the filter keeps `datagram` (a bare UDP payload).
pub(crate) fn accepts(datagram: &[u8]) -> bool {
    interpret(&socket_filter(0), datagram).is_some_and(|kept| kept > 0)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "a handshake needs some starting Instant; the filter never reads the clock"
)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::dtls::peek;
    use crate::dtls::test_client::{self, handshake};
    use crate::dtls::LegacySuite;

    /// The datagrams openconnect's side sends to the shared port, built by the test client:
    /// the first ClientHello of every mode, and an application-data record of each.
    fn real_datagrams() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let suites = [
            LegacySuite::Dtls12Aes128Gcm,
            LegacySuite::Dtls12Aes256Gcm,
            LegacySuite::Dtls09Aes128Sha,
            LegacySuite::Dtls09Aes256Sha,
        ];
        for suite in suites {
            out.push(test_client::legacy(suite).1.client_hello(&[]));
            let (mut server, mut client) = test_client::legacy(suite);
            handshake(&mut server, &mut client, Instant::now());
            out.push(client.seal(23, b"a ping through the tunnel"));
        }
        out.push(test_client::psk_pair().1.client_hello(&[]));
        let (mut server, mut client) = test_client::psk_pair();
        handshake(&mut server, &mut client, Instant::now());
        out.push(client.seal(23, b"a ping through the tunnel"));
        out
    }

    #[test]
    fn accepts_real_hellos_and_records() {
        let datagrams = real_datagrams();
        assert_eq!(datagrams.len(), 10);
        for d in &datagrams {
            assert!(accepts(d), "{:02x?}", &d[..16]);
            assert!(peek::client_hello_session_id(d).is_some() || peek::is_application_data(d));
        }
    }

    #[test]
    fn rejects_garbage() {
        let hello = real_datagrams().swap_remove(0);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("zeros", vec![0; 100]),
            ("text", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            (
                "record header only",
                vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0],
            ),
            ("truncated hello", hello[..59].to_vec()),
            ("oversized", {
                let mut d = hello.clone();
                d.resize(MAX_DATAGRAM as usize + 1, 0);
                d
            }),
        ];
        let mut change = |what, at: usize, value: &[u8]| {
            let mut d = hello.clone();
            d[at..at + value.len()].copy_from_slice(value);
            cases.push((what, d));
        };
        change("alert", 0, &[21]);
        change("change cipher spec", 0, &[20]);
        change("TLS 1.2", 1, &[3, 3]);
        change("DTLS 1.3 record", 1, &[0xfe, 0xfc]);
        change("epoch 1", 3, &[0, 1]);
        change("ServerHello", 13, &[2]);
        change("HelloVerifyRequest", 13, &[3]);
        change("no session id", 59, &[0]);
        change("session id of 33", 59, &[33]);
        for (what, d) in cases {
            assert!(!accepts(&d), "{what} passed");
        }
        let mut at_limit = hello;
        at_limit.resize(MAX_DATAGRAM as usize, 0);
        assert!(accepts(&at_limit), "a hello of MAX_DATAGRAM bytes");
    }

    /// The kernel sees the UDP header first: the same decisions 8 bytes further on.
    #[test]
    fn header_offset_shifts_every_load() {
        let program = socket_filter(8);
        for d in real_datagrams() {
            let mut with_header = vec![0x55; 8];
            with_header.extend_from_slice(&d);
            assert_eq!(interpret(&program, &with_header), Some(u32::MAX));
            assert_eq!(interpret(&program, &d), Some(0), "payload without header");
        }
    }

    /// Whatever `peek` would route passes the filter, on mutations of real datagrams.
    #[test]
    fn never_drops_what_peek_routes() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for d in real_datagrams() {
            for _ in 0..2000 {
                let mut m = d.clone();
                for _ in 0..(next() % 4) {
                    let at = (next() % 64) as usize % m.len();
                    m[at] = next() as u8;
                }
                m.truncate((next() as usize % (d.len() + 1)).max(m.len() / 2));
                let routed =
                    peek::client_hello_session_id(&m).is_some() || peek::is_application_data(&m);
                if routed && m.len() <= MAX_DATAGRAM as usize {
                    assert!(accepts(&m), "{m:02x?}");
                }
            }
        }
    }
}
