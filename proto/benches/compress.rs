//! Compression of one 1400-byte IP packet, both directions, for `lzs` (ours) and `oc-lz4`
//! (lz4_flex): `cargo bench -p rocserv-proto --bench compress`. Two payloads: a packet of text
//! (compressible, like HTTP) and a packet of random bytes (the common case on a VPN carrying TLS,
//! where the sender gives up: `compress` returns `None`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup; a failure is a bench failure"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rocserv_proto::compress::{self, Algorithm, Compressor, COMPRESS_ROOM, MAX_DECOMPRESSED};

const PACKET: usize = 1400;

/// An IPv4/TCP header followed by HTTP-like text.
fn text_packet() -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0x05, 0x78, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
    ];
    p.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
    ]);
    p.extend_from_slice(&[0; 4]);
    let body = b"<tr><td class=\"name\">rocserv</td><td class=\"value\">1400 bytes</td></tr>\n";
    while p.len() < PACKET {
        p.extend_from_slice(body);
    }
    p.truncate(PACKET);
    p
}

fn random_packet() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..PACKET)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress_1400");
    group.throughput(Throughput::Bytes(PACKET as u64));
    for algorithm in Algorithm::ALL {
        for (kind, packet) in [("text", text_packet()), ("random", random_packet())] {
            let mut compressor = Compressor::new(algorithm, 256);
            let mut out = vec![0u8; COMPRESS_ROOM];
            let name = algorithm.name();
            group.bench_function(format!("{name}/compress/{kind}"), |b| {
                b.iter(|| compressor.compress(black_box(&packet), &mut out))
            });
            let Some(n) = compressor.compress(&packet, &mut out) else {
                continue;
            };
            let packed = out[..n].to_vec();
            let mut back = vec![0u8; MAX_DECOMPRESSED];
            group.bench_function(format!("{name}/decompress/{kind} ({n} bytes)"), |b| {
                b.iter(|| compress::decompress(algorithm, black_box(&packed), &mut back).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
