//! The server's own DPD over DTLS (protocol.md §3.4, §4.5) with the real openconnect: a DTLS
//! channel the client keeps quiet is probed and the client answers; when the client's UDP stops
//! reaching the server, the server gives DTLS up after 3 x dpd and sends over TLS.
//!
//! The client only stays quiet on UDP while it keeps receiving (it probes itself after dpd
//! seconds without a packet), so the server namespace sends a one-way UDP stream through the
//! tunnel to a port the client namespace drops silently (no ICMP answer travels back).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rocserv_e2e::netns::Netns;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

const ESTABLISHED: &str = "Established DTLS connection";
/// The `dpd` of these tests, in seconds.
const DPD: u64 = 2;
/// The stream's destination port in the client namespace.
const SINK_PORT: &str = "5999";

/// DTLS on, a short DPD.
fn start(lab: &Lab) -> (Server, Client, String) {
    let dpd = DPD.to_string();
    let server = Server::start(&lab.srv, &lab.config(&[("udp-port", "443"), ("dpd", &dpd)]));
    let mut opts = ClientOptions::password("alice", "alice-pw");
    // -v: openconnect logs "Got DTLS DPD request".
    opts.extra = vec!["-v".to_owned()];
    let mut client = Client::start(lab, &opts);
    let up = client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output(ESTABLISHED, WAIT)
        .expect("DTLS established");
    (server, client, up.address)
}

/// Drop UDP to [`SINK_PORT`] in the client namespace, counting the packets.
fn sink(ns: &Netns) {
    add_drop_rule(ns, &format!("udp dport {SINK_PORT} counter drop"));
}

/// Packets the sink counted.
fn sink_count(ns: &Netns) -> u64 {
    let rules = ns.exec_ok(&["nft", "list", "chain", "inet", "e2e", "input"]);
    let line = rules
        .lines()
        .find(|l| l.contains(&format!("dport {SINK_PORT}")))
        .expect("sink rule");
    let mut words = line.split_whitespace();
    words.find(|w| *w == "packets").expect("counter");
    words.next().expect("count").parse().expect("number")
}

/// Block UDP to port 443 in the server namespace (the client's DTLS stops arriving).
fn block_udp_443(ns: &Netns) {
    add_drop_rule(ns, "udp dport 443 drop");
}

fn add_drop_rule(ns: &Netns, rule: &str) {
    let (_, tables) = ns.exec(&["nft", "list", "tables"]);
    if !tables.contains("inet e2e") {
        ns.exec_ok(&["nft", "add", "table", "inet", "e2e"]);
        ns.exec_ok(&[
            "nft",
            "add chain inet e2e input { type filter hook input priority 0 ; }",
        ]);
    }
    ns.exec_ok(&["nft", &format!("add rule inet e2e input {rule}")]);
}

/// One small UDP packet every 250 ms from the server namespace to the client's tunnel address
/// for `secs` seconds (bounded). Killed on drop.
struct Stream(Child);

impl Stream {
    fn start(ns: &Netns, to: &str, secs: u64) -> Self {
        let script = format!(
            "for i in $(seq 1 {n}); do echo x > /dev/udp/{to}/{SINK_PORT}; sleep 0.25; done",
            n = secs * 4
        );
        let child = ns
            .command("bash")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the UDP stream");
        Self(child)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn server_dpd_over_dtls_is_answered() {
    let lab = Lab::new();
    let (server, client, address) = start(&lab);
    sink(&lab.cli);
    let skip = server.log_len();
    let _stream = Stream::start(&lab.srv, &address, 20);
    server
        .wait_for_log_after(skip, "sending a DTLS DPD request", WAIT)
        .expect("the server probed the quiet DTLS channel");
    server
        .wait_for_log_after(skip, "DTLS DPD answered", Duration::from_secs(DPD))
        .expect("the client answered the probe over DTLS");
    assert!(
        client.output().contains("Got DTLS DPD request"),
        "{}",
        client.output()
    );
    assert!(sink_count(&lab.cli) > 0, "the stream did not arrive");
    let log = server.log_text();
    assert!(!log.contains("sending over TLS"), "{log}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn server_gives_dtls_up_when_udp_stops_arriving() {
    let lab = Lab::new();
    let (server, client, address) = start(&lab);
    sink(&lab.cli);
    let _stream = Stream::start(&lab.srv, &address, 40);
    // The stream keeps the client happy with DTLS: only the server's DPD can notice.
    block_udp_443(&lab.srv);
    let blocked = Instant::now();
    let line = server
        .wait_for_log("sending over TLS", WAIT)
        .expect("the server fell back to TLS");
    let took = blocked.elapsed();
    assert!(line.contains("no answer to DTLS DPD"), "{line}");
    // Probes at 2 and 2.5 x dpd of silence, given up at 3 x dpd (+ the 250 ms stream tick).
    assert!(
        took <= Duration::from_secs(3 * DPD + 2),
        "fell back after {took:?}"
    );
    assert!(
        took >= Duration::from_secs(2 * DPD),
        "fell back after only {took:?}"
    );
    assert!(server.log_text().contains("sending a DTLS DPD request"));
    // From now on the stream reaches the client over TLS: no UDP arrives in the client
    // namespace, the sink still counts.
    let udp_before = lab.cli.udp_in_datagrams();
    let sink_before = sink_count(&lab.cli);
    std::thread::sleep(Duration::from_secs(2));
    let udp_after = lab.cli.udp_in_datagrams();
    let sink_after = sink_count(&lab.cli);
    assert!(
        sink_after >= sink_before + 4,
        "the stream stopped: {sink_before} -> {sink_after}"
    );
    assert_eq!(udp_before, udp_after, "the server still sends over UDP");
    drop(client);
}
