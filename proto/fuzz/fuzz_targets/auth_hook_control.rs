//! Fuzz target `auth_hook_control`: the body lives in `rocserv_proto::fuzzing::auth_hook_control`,
//! which the stable corpus replay test (proto/tests/corpus_replay.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rocserv_proto::fuzzing::auth_hook_control(data));
