//! The metrics endpoint (`metrics-listen`): curl scrapes it inside the server's namespace while
//! a real openconnect logs in; the active-session gauge, the per-user series with the user name
//! and the failure counter follow what happened. Also: only `GET /metrics` is answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use rocserv_e2e::client::authenticate;
use rocserv_e2e::netns::Netns;
use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

const LISTEN: &str = "127.0.0.1:9616";

/// curl in `ns`: (HTTP status, body).
fn curl(ns: &Netns, args: &[&str], path: &str) -> (String, String) {
    let url = format!("http://{LISTEN}{path}");
    let mut argv = vec!["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}"];
    argv.extend_from_slice(args);
    argv.push(&url);
    let (ok, out) = ns.exec(&argv);
    assert!(ok, "curl {args:?} {path} failed:\n{out}");
    let (body, status) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (status.to_owned(), body.to_owned())
}

fn scrape(ns: &Netns) -> String {
    let (status, body) = curl(ns, &[], "/metrics");
    assert_eq!(status, "200", "{body}");
    body
}

/// The value of the sample line that starts with `series` (name and labels, as written).
fn value(doc: &str, series: &str) -> Option<f64> {
    doc.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("number"))
}

/// Scrape until `ok` holds (the counters are updated by other tasks than the one the client
/// talked to), bounded by `timeout`; returns the last document.
fn scrape_until(ns: &Netns, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let doc = scrape(ns);
        if ok(&doc) || Instant::now() > deadline {
            return doc;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn scraped_with_curl_while_a_client_logs_in() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[("metrics-listen", LISTEN)]));
    server
        .wait_for_log(&format!("metrics at http://{LISTEN}/metrics"), WAIT)
        .expect("metrics listener announced");

    let doc = scrape(&lab.srv);
    assert_eq!(value(&doc, "vpn_active_sessions"), Some(0.0), "{doc}");
    assert_eq!(
        value(&doc, "rocserv_auth_failures_total"),
        Some(0.0),
        "{doc}"
    );
    assert!(
        doc.contains("# TYPE rocserv_worker_spawn_seconds histogram"),
        "{doc}"
    );

    // A wrong password: the failure counter (ours and the criteo gauge) goes up.
    authenticate(&lab, "alice", "not-the-password").expect_err("wrong password refused");
    let doc = scrape_until(&lab.srv, WAIT, |d| {
        value(d, "rocserv_auth_failures_total") == Some(1.0)
    });
    assert_eq!(
        value(&doc, "rocserv_auth_failures_total"),
        Some(1.0),
        "{doc}"
    );
    assert_eq!(
        value(&doc, "vpn_total_authentication_failures"),
        Some(1.0),
        "{doc}"
    );

    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    let up = client.wait_up(WAIT).expect("tunnel up");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    let doc = scrape(&lab.srv);
    assert_eq!(value(&doc, "vpn_active_sessions"), Some(1.0), "{doc}");
    assert_eq!(value(&doc, "rocserv_logins_total"), Some(1.0), "{doc}");
    let user = format!(
        "vpn_user_rx_bytes{{username=\"alice\",remote_ip=\"{}\",mtu=",
        rocserv_e2e::lab::CLIENT_IP
    );
    let line = doc
        .lines()
        .find(|l| l.starts_with(&user))
        .unwrap_or_else(|| panic!("no per-user series for alice:\n{doc}"));
    assert!(
        line.contains(&format!("vpn_ipv4=\"{}\"", up.address)) && line.contains("device=\"vpns0\""),
        "{line}"
    );
    // The pings went through: the client sent bytes.
    assert!(
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap() > 0,
        "{line}"
    );
    let dtls = value(&doc, "rocserv_sessions{transport=\"dtls\"}").unwrap();
    let tls = value(&doc, "rocserv_sessions{transport=\"tls\"}").unwrap();
    assert_eq!(dtls + tls, 1.0, "{doc}");
    assert!(
        value(&doc, "rocserv_worker_spawn_seconds_count").unwrap() >= 2.0,
        "{doc}"
    );
    assert!(
        value(&doc, "rocserv_secmod_request_seconds_count").unwrap() >= 1.0,
        "{doc}"
    );

    // Strict: nothing but GET /metrics.
    assert_eq!(curl(&lab.srv, &[], "/").0, "404");
    assert_eq!(curl(&lab.srv, &["-X", "POST"], "/metrics").0, "405");
    assert_eq!(curl(&lab.srv, &["-I"], "/metrics").0, "405");

    drop(client);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("session end logged");
    let doc = scrape_until(&lab.srv, WAIT, |d| {
        value(d, "vpn_active_sessions") == Some(0.0)
    });
    assert_eq!(value(&doc, "vpn_active_sessions"), Some(0.0), "{doc}");
    assert!(!doc.contains("username=\"alice\""), "{doc}");
}

/// The listener is not reachable from the client's side when bound to loopback, and it is off
/// without the option.
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn off_by_default() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let (ok, out) = lab.srv.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "3",
        &format!("http://{LISTEN}/metrics"),
    ]);
    assert!(!ok, "something answered on {LISTEN}:\n{out}");
    assert!(
        !server.log_text().contains("metrics at"),
        "{}",
        server.log_text()
    );
}

/// With DTLS up, the session counts under `transport="dtls"` (the worker's state report,
/// `UserInfo.dtls_in_use`).
#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn a_dtls_session_counts_as_dtls() {
    let lab = Lab::new();
    let server = Server::start(
        &lab.srv,
        &lab.config(&[("metrics-listen", LISTEN), ("udp-port", "443")]),
    );
    server
        .wait_for_log(&format!("metrics at http://{LISTEN}/metrics"), WAIT)
        .expect("metrics listener announced");
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    client
        .wait_for_output("Established DTLS connection", WAIT)
        .expect("DTLS established");
    let dtls = "rocserv_sessions{transport=\"dtls\"}";
    let doc = scrape_until(&lab.srv, WAIT, |d| value(d, dtls) == Some(1.0));
    assert_eq!(value(&doc, dtls), Some(1.0), "{doc}");
    assert_eq!(
        value(&doc, "rocserv_sessions{transport=\"tls\"}"),
        Some(0.0),
        "{doc}"
    );
}
