//! Fuzz target `radius_conf`: the body lives in `rocserv_proto::fuzzing::radius_conf`, which the stable corpus
//! replay test (proto/tests/corpus_replay.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rocserv_proto::fuzzing::radius_conf(data));
