//! Replays every committed fuzz input on stable, as an ordinary test (the firezone/quinn
//! pattern): the seed corpora in `fuzz/corpus/<target>/`, crash regressions in
//! `fuzz/regressions/<target>/` (copy a fixed `fuzz/artifacts/<target>/crash-*` there), and the
//! codec vectors in `tests/vectors/`. Each input goes through the same function as the fuzz
//! target (`rocserv_proto::fuzzing`), so a panic here is a fuzz finding.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a test reads its committed input files; the library itself stays sans-IO"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers; a failure is a test failure"
)]

use std::path::{Path, PathBuf};

use rocserv_proto::fuzzing;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("cstp_frame", fuzzing::cstp_frame),
    ("http_head", fuzzing::http_head),
    ("auth_xml", fuzzing::auth_xml),
    ("config", fuzzing::config),
    ("passwd", fuzzing::passwd),
    ("otp_file", fuzzing::otp_file),
    ("worker_log", fuzzing::worker_log),
    ("proxy_header", fuzzing::proxy_header),
    ("ipc", fuzzing::ipc),
    ("lzs_decompress", fuzzing::lzs_decompress),
    ("lzs_roundtrip", fuzzing::lzs_roundtrip),
    ("lz4_roundtrip", fuzzing::lz4_roundtrip),
    ("dtls_client_hello_peek", fuzzing::dtls_client_hello_peek),
    ("dtls_server", fuzzing::dtls_server),
    ("tun_offload", fuzzing::tun_offload),
    ("sign_content", fuzzing::sign_content),
    ("policy_file", fuzzing::policy_file),
    ("ports", fuzzing::ports),
    ("auth_hook_control", fuzzing::auth_hook_control),
    ("radius_packet", fuzzing::radius_packet),
    ("radius_conf", fuzzing::radius_conf),
    ("cert_fields", fuzzing::cert_fields),
];

/// Vector folders and the target whose code they exercise.
const VECTORS: [(&str, &str); 5] = [
    ("cstp", "cstp_frame"),
    ("http", "http_head"),
    ("auth_xml", "auth_xml"),
    ("config", "config"),
    ("passwd", "passwd"),
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files directly inside `dir`, sorted; none if the folder does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn run_target(name: &str) -> usize {
    let (_, run) = TARGETS.iter().find(|(n, _)| *n == name).unwrap();
    let root = crate_dir();
    let mut dirs = vec![
        root.join("fuzz/corpus").join(name),
        root.join("fuzz/regressions").join(name),
    ];
    dirs.extend(
        VECTORS
            .iter()
            .filter(|(_, target)| *target == name)
            .map(|(folder, _)| root.join("tests/vectors").join(folder)),
    );
    let mut count = 0;
    for file in dirs.iter().flat_map(|d| files_in(d)) {
        let data = std::fs::read(&file).unwrap();
        // On failure the panic message of the target is printed above this line.
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{name}: input {} panicked", file.display());
        count += 1;
    }
    count
}

#[test]
fn cstp_frame_corpus() {
    assert!(run_target("cstp_frame") >= 4);
}

#[test]
fn http_head_corpus() {
    assert!(run_target("http_head") >= 2);
}

#[test]
fn auth_xml_corpus() {
    assert!(run_target("auth_xml") >= 5);
}

#[test]
fn config_corpus() {
    assert!(run_target("config") >= 1);
}

#[test]
fn auth_hook_control_corpus() {
    assert!(run_target("auth_hook_control") >= 2);
}

#[test]
fn policy_file_corpus() {
    assert!(run_target("policy_file") >= 2);
}

#[test]
fn radius_packet_corpus() {
    assert!(run_target("radius_packet") >= 2);
}

#[test]
fn radius_conf_corpus() {
    assert!(run_target("radius_conf") >= 2);
}

#[test]
fn cert_fields_corpus() {
    assert!(run_target("cert_fields") >= 2);
}

#[test]
fn passwd_corpus() {
    assert!(run_target("passwd") >= 1);
}

#[test]
fn otp_file_corpus() {
    assert!(run_target("otp_file") >= 2);
}

#[test]
fn ipc_corpus() {
    assert!(run_target("ipc") >= 1);
}

#[test]
fn lzs_decompress_corpus() {
    assert!(run_target("lzs_decompress") >= 5);
}

#[test]
fn lzs_roundtrip_corpus() {
    assert!(run_target("lzs_roundtrip") >= 5);
}

#[test]
fn lz4_roundtrip_corpus() {
    assert!(run_target("lz4_roundtrip") >= 3);
}

#[test]
fn dtls_client_hello_peek_corpus() {
    assert!(run_target("dtls_client_hello_peek") >= 5);
}

#[test]
fn dtls_server_corpus() {
    assert!(run_target("dtls_server") >= 5);
}

/// Every fuzz target has a seed corpus, and every seed folder belongs to a target.
#[test]
fn corpus_folders_match_targets() {
    let corpus = crate_dir().join("fuzz/corpus");
    let mut folders: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    let mut targets: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    targets.sort();
    assert_eq!(folders, targets);

    // ... and each is a `[[bin]]` of the fuzz crate.
    let manifest = std::fs::read_to_string(crate_dir().join("fuzz/Cargo.toml")).unwrap();
    for target in &targets {
        let bin = format!("name = \"{target}\"\npath = \"fuzz_targets/{target}.rs\"");
        assert!(
            manifest.contains(&bin),
            "fuzz/Cargo.toml lacks the bin {target}"
        );
    }
}

#[test]
fn tun_offload_corpus() {
    assert!(run_target("tun_offload") >= 3);
}

#[test]
fn sign_content_corpus() {
    assert!(run_target("sign_content") >= 4);
}

#[test]
fn worker_log_corpus() {
    assert!(run_target("worker_log") >= 3);
}

#[test]
fn proxy_header_corpus() {
    assert!(run_target("proxy_header") >= 8);
}

#[test]
fn ports_corpus() {
    assert!(run_target("ports") >= 5);
}
