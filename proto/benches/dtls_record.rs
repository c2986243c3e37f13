//! Record-layer cost of our DTLS (doc/decisions/0002-own-dtls.md): sealing a 1400-byte payload
//! with an established `Server` (`seal_in_place`, the TX path) and opening one (the RX path's
//! crypto), for AES-128-GCM, AES-256-GCM and DTLS 0.9 AES-128-CBC-SHA1.
//!
//!     cargo bench -p rocserv-proto --bench dtls_record
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark reads its committed seed, needs a clock, and may panic on setup failure"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rocserv_proto::dtls::bench::{established, RecordKey};

const PAYLOAD: usize = 1400;

fn seed(mode: u8) -> Vec<u8> {
    let path = format!(
        "{}/fuzz/corpus/dtls_server/handshake_mode{mode}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal_in_place");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    // mode 0 = PSK (AES-256-GCM, openconnect's choice), 1 = legacy AES-128-GCM, 3 = AES128-SHA.
    for (mode, name) in [(1u8, "aes128gcm"), (0, "aes256gcm"), (3, "aes128cbc_sha1")] {
        let mut server = established(&seed(mode), Instant::now()).unwrap();
        let mut buf = vec![0u8; server.header_room() + PAYLOAD + server.trailer_room()];
        let mut rng = |b: &mut [u8]| b.fill(0x11);
        group.bench_function(name, |b| {
            b.iter(|| black_box(server.seal_in_place(&mut buf, PAYLOAD, &mut rng).unwrap()))
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_in_place");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    for (kind, name) in [(0u8, "aes128gcm"), (1, "aes256gcm"), (2, "aes128cbc_sha1")] {
        let mut key = RecordKey::new(kind).unwrap();
        let mut sealed = vec![0u8; key.header_room() + PAYLOAD + key.trailer_room()];
        let n = key.seal(&mut sealed, PAYLOAD).unwrap();
        sealed.truncate(n);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |record| black_box(key.open(record).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
