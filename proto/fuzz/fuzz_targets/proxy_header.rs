//! Fuzz target `proxy_header`: the body lives in `rocserv_proto::fuzzing::proxy_header`, which the
//! stable corpus replay test (proto/tests/corpus_replay.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rocserv_proto::fuzzing::proxy_header(data));
