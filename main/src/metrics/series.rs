//! What a scrape answers: every series of doc/metrics.md, from the same data occtl reads
//! (`ctl::status`, `ctl::user_info`) plus main's own counters. The names without a prefix are
//! those of criteo/ocserv-exporter (which runs `occtl -j show status` / `show users`), so its
//! dashboards keep working; `rocserv_*` are what an occtl-based exporter cannot see.

use rocserv_proto::ipc::ctl::{ServerStatus, UserInfo};

use super::text::{Encoder, Kind};
use crate::counters::{HistogramSnapshot, Snapshot};

/// A per-session family: name, help, value.
type PerUser = (&'static str, &'static str, fn(&UserInfo) -> u64);

/// Everything one scrape reports, gathered first so that rendering is pure.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub status: ServerStatus,
    pub users: Vec<UserInfo>,
    pub counters: Snapshot,
    pub worker_spawn: HistogramSnapshot,
    pub secmod_request: HistogramSnapshot,
    pub secmod_pending: u64,
    /// `cluster-store` (ours): this node's name and whether sec-mod last found the store.
    pub cluster: Option<(String, bool)>,
}

/// Gather from the live server. Reads each tunnel's device counters from sysfs (as occtl
/// `show users` does): call it off main's event loop.
pub fn gather(shared: &crate::state::Shared) -> Gathered {
    let users = shared
        .conns
        .tunnels
        .snapshot()
        .iter()
        .map(crate::ctl::user_info)
        .collect();
    Gathered {
        status: crate::ctl::status(shared),
        users,
        counters: shared.counters.snapshot(),
        worker_spawn: shared.counters.worker_spawn.snapshot(),
        secmod_request: shared.counters.secmod_request.snapshot(),
        secmod_pending: u64::try_from(shared.secmod.pending()).unwrap_or(u64::MAX),
        cluster: shared
            .cluster
            .as_ref()
            .map(|c| (c.node.clone(), c.store_up())),
    }
}

/// The exposition document.
pub fn render(g: &Gathered) -> String {
    let mut e = Encoder::new();
    let s = &g.status;
    let gauge = |e: &mut Encoder, name: &'static str, help: &str, v: u64| {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], v);
    };

    // criteo/ocserv-exporter's server series (gauges there, from `occtl show status`).
    gauge(
        &mut e,
        "vpn_start_time_seconds",
        "Start time of the server since unix epoch in seconds.",
        s.up_since,
    );
    gauge(
        &mut e,
        "vpn_active_sessions",
        "Current number of users connected.",
        u64::from(s.active_sessions),
    );
    gauge(
        &mut e,
        "vpn_handled_sessions",
        "Total number of sessions handled since the server is up.",
        s.total_sessions,
    );
    gauge(
        &mut e,
        "vpn_sessions_handled",
        "Total number of sessions handled since last stats reset.",
        s.sessions_handled,
    );
    gauge(
        &mut e,
        "vpn_ips_banned",
        "Number of IPs banned now.",
        u64::from(s.banned_ips),
    );
    gauge(
        &mut e,
        "vpn_total_authentication_failures",
        "Total number of authentication failures since the server is up.",
        s.total_auth_failures,
    );
    gauge(
        &mut e,
        "vpn_authentication_failures",
        "Total number of authentication failures since last stats reset.",
        s.auth_failures,
    );
    gauge(
        &mut e,
        "vpn_average_session_time_seconds",
        "Average session time in seconds of the sessions ended since last stats reset.",
        s.avg_session_time,
    );
    gauge(
        &mut e,
        "vpn_max_session_time_seconds",
        "Longest session time in seconds of the sessions ended since last stats reset.",
        s.max_session_time,
    );
    gauge(
        &mut e,
        "vpn_rx_bytes",
        "Bytes received from clients by the sessions ended since last stats reset.",
        s.rx_bytes,
    );
    gauge(
        &mut e,
        "vpn_tx_bytes",
        "Bytes sent to clients by the sessions ended since last stats reset.",
        s.tx_bytes,
    );

    // criteo/ocserv-exporter's per-session series, same labels.
    let labelled = |u: &UserInfo| -> [(&'static str, String); 6] {
        [
            ("username", u.username.clone()),
            ("remote_ip", u.remote_ip.to_string()),
            ("mtu", u.mtu.map_or_else(String::new, |m| m.to_string())),
            (
                "vpn_ipv4",
                u.ipv4.map_or_else(String::new, |a| a.to_string()),
            ),
            (
                "vpn_ipv6",
                u.ipv6.map_or_else(String::new, |a| a.to_string()),
            ),
            ("device", u.device.clone()),
        ]
    };
    let per_user: [PerUser; 3] = [
        (
            "vpn_user_rx_bytes",
            "Bytes received from the client by this session.",
            |u| u.rx_bytes,
        ),
        (
            "vpn_user_tx_bytes",
            "Bytes sent to the client by this session.",
            |u| u.tx_bytes,
        ),
        (
            "vpn_user_start_time_seconds",
            "Start time of the session since unix epoch in seconds.",
            |u| u.connected_at,
        ),
    ];
    for (name, help, value) in per_user {
        e.family(name, Kind::Gauge, help);
        for u in &g.users {
            let owned = labelled(u);
            let labels: Vec<(&'static str, &str)> =
                owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.sample(name, &labels, value(u));
        }
    }

    // Ours.
    let dtls = g.users.iter().filter(|u| u.dtls_in_use).count();
    let tls = g.users.len().saturating_sub(dtls);
    e.family("rocserv_sessions", Kind::Gauge, "Tunnels up now, by the channel carrying their data: DTLS (UDP) or TLS (TCP only, or fallen back).");
    e.sample(
        "rocserv_sessions",
        &[("transport", "dtls")],
        u64::try_from(dtls).unwrap_or(u64::MAX),
    );
    e.sample(
        "rocserv_sessions",
        &[("transport", "tls")],
        u64::try_from(tls).unwrap_or(u64::MAX),
    );

    let c = &g.counters;
    let counter = |e: &mut Encoder, name: &'static str, help: &str, v: u64| {
        e.family(name, Kind::Counter, help);
        e.sample(name, &[], v);
    };
    counter(
        &mut e,
        "rocserv_connections_accepted_total",
        "TCP connections given to a worker, each one TLS handshake attempt.",
        c.connections,
    );
    counter(
        &mut e,
        "rocserv_connections_rejected_total",
        "TCP connections closed at accept: banned address, max-clients, pre-auth caps.",
        c.rejected,
    );
    counter(
        &mut e,
        "rocserv_logins_total",
        "Tunnels granted (a CONNECT with a valid cookie passed every check).",
        c.sessions,
    );
    counter(
        &mut e,
        "rocserv_auth_failures_total",
        "Failed authentication attempts reported by sec-mod.",
        c.auth_failures,
    );
    counter(
        &mut e,
        "rocserv_reloads_total",
        "Successful configuration reloads.",
        c.reloads,
    );
    e.family(
        "rocserv_uptime_seconds",
        Kind::Gauge,
        "Seconds since the server started.",
    );
    e.sample("rocserv_uptime_seconds", &[], c.uptime.as_secs());

    e.family(
        "rocserv_secmod_pending_requests",
        Kind::Gauge,
        "Requests from main to sec-mod waiting for their answer.",
    );
    e.sample("rocserv_secmod_pending_requests", &[], g.secmod_pending);
    let h = &g.secmod_request;
    e.histogram(
        "rocserv_secmod_request_seconds",
        "Round trip of main's requests to sec-mod (session open at CONNECT).",
        &[],
        &h.cumulative,
        h.sum_secs,
        h.count,
    );
    let h = &g.worker_spawn;
    e.histogram(
        "rocserv_worker_spawn_seconds",
        "Time to start a worker: socket pairs, sec-mod told, fork and exec.",
        &[],
        &h.cumulative,
        h.sum_secs,
        h.count,
    );
    if let Some((node, up)) = &g.cluster {
        e.family(
            "rocserv_cluster_info",
            Kind::Gauge,
            "Always 1: this node's cluster-node name as a label (cluster-store set).",
        );
        e.sample("rocserv_cluster_info", &[("node", node)], 1u64);
        e.family(
            "rocserv_cluster_store_up",
            Kind::Gauge,
            "1 while the cluster store answers; 0: this node works alone.",
        );
        e.sample("rocserv_cluster_store_up", &[], u64::from(*up));
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;

    fn user(name: &str, dtls: bool) -> UserInfo {
        let mut u = sample_user();
        u.username = name.into();
        u.dtls_in_use = dtls;
        u
    }

    fn sample_user() -> UserInfo {
        UserInfo {
            id: 7,
            username: String::new(),
            groupname: String::new(),
            device: "vpns0".into(),
            mtu: Some(1400),
            remote_ip: "192.0.2.9".parse().unwrap(),
            local_device_ip: "192.0.2.1".parse().unwrap(),
            ipv4: Some("10.10.0.2".parse().unwrap()),
            ptp_ipv4: Some("10.10.0.1".parse().unwrap()),
            user_agent: String::new(),
            rx_bytes: 1234,
            tx_bytes: 5678,
            dpd_secs: 0,
            keepalive_secs: 0,
            hostname: String::new(),
            connected_at: 1_700_000_000,
            session_started_at: 1_700_000_000,
            session: String::new(),
            tls_ciphersuite: String::new(),
            dtls_cipher: String::new(),
            cstp_compression: String::new(),
            dtls_compression: String::new(),
            dns: Vec::new(),
            nbns: Vec::new(),
            split_dns_domains: Vec::new(),
            routes: Vec::new(),
            no_routes: Vec::new(),
            iroutes: Vec::new(),
            restricted_to_routes: false,
            restricted_to_ports: Vec::new(),
            rx_limit_per_sec: 0,
            tx_limit_per_sec: 0,
            ipv6: None,
            ptp_ipv6: None,
            device_id: String::new(),
            device_platform: String::new(),
            macs: Vec::new(),
            dtls_in_use: false,
            udp_peer: None,
            node: String::new(),
        }
    }

    fn gathered(users: Vec<UserInfo>) -> Gathered {
        let counters = Counters::default();
        Counters::add(&counters.auth_failures, 3);
        counters
            .worker_spawn
            .observe(std::time::Duration::from_millis(3));
        Gathered {
            status: ServerStatus {
                server_pid: 1,
                secmod_pid: 2,
                up_since: 1_700_000_000,
                active_sessions: u32::try_from(users.len()).unwrap(),
                total_sessions: 40,
                total_auth_failures: 3,
                banned_ips: 0,
                avg_auth_time: 0,
                max_auth_time: 0,
                avg_session_time: 30,
                max_session_time: 50,
                min_mtu: 0,
                max_mtu: 0,
                rx_bytes: 700,
                tx_bytes: 800,
                last_stats_reset: 1_700_000_000,
                // The current stats period (server-stats-reset-time) is shorter than the
                // server's life: these differ from the `total_*` members.
                sessions_handled: 4,
                auth_failures: 1,
                cluster: None,
            },
            users,
            counters: counters.snapshot(),
            worker_spawn: counters.worker_spawn.snapshot(),
            secmod_request: counters.secmod_request.snapshot(),
            secmod_pending: 1,
            cluster: None,
        }
    }

    #[test]
    fn the_criteo_series_and_ours() {
        let doc = render(&gathered(vec![user("alice", true), user("bob", false)]));
        let has = |line: &str| doc.lines().any(|l| l == line);
        assert!(has("vpn_active_sessions 2"), "{doc}");
        assert!(has("vpn_total_authentication_failures 3"));
        // Since start vs the current stats period.
        assert!(has("vpn_handled_sessions 40"), "{doc}");
        assert!(has("vpn_sessions_handled 4"), "{doc}");
        assert!(has("vpn_authentication_failures 1"), "{doc}");
        assert!(has("vpn_average_session_time_seconds 30"));
        assert!(has("vpn_max_session_time_seconds 50"));
        assert!(has("vpn_rx_bytes 700"));
        assert!(has("vpn_tx_bytes 800"));
        assert!(has("rocserv_auth_failures_total 3"));
        assert!(has(
            r#"vpn_user_rx_bytes{username="alice",remote_ip="192.0.2.9",mtu="1400",vpn_ipv4="10.10.0.2",vpn_ipv6="",device="vpns0"} 1234"#
        ));
        assert!(has(
            r#"vpn_user_tx_bytes{username="bob",remote_ip="192.0.2.9",mtu="1400",vpn_ipv4="10.10.0.2",vpn_ipv6="",device="vpns0"} 5678"#
        ));
        assert!(has(r#"rocserv_sessions{transport="dtls"} 1"#));
        assert!(has(r#"rocserv_sessions{transport="tls"} 1"#));
        assert!(has(r#"rocserv_worker_spawn_seconds_bucket{le="0.005"} 1"#));
        assert!(has("rocserv_worker_spawn_seconds_count 1"));
        assert!(has("rocserv_secmod_pending_requests 1"));
        assert!(!doc.contains("rocserv_cluster"), "no cluster series alone");
    }

    #[test]
    fn the_cluster_series() {
        let mut g = gathered(Vec::new());
        g.cluster = Some(("node-a".to_owned(), false));
        let doc = render(&g);
        let has = |line: &str| doc.lines().any(|l| l == line);
        assert!(has(r#"rocserv_cluster_info{node="node-a"} 1"#), "{doc}");
        assert!(has("rocserv_cluster_store_up 0"), "{doc}");
        g.cluster = Some(("node-a".to_owned(), true));
        assert!(render(&g)
            .lines()
            .any(|l| l == "rocserv_cluster_store_up 1"));
    }

    /// Every family appears once, each sample belongs to the family above it, and every name
    /// is a valid metric name (what Prometheus's parser checks).
    #[test]
    fn the_document_is_well_formed() {
        let doc = render(&gathered(vec![user("a\"b\nc", false)]));
        let mut families = std::collections::HashSet::new();
        let mut current = String::new();
        for line in doc.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(families.insert(name.clone()), "{name} twice");
                current = name;
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    name.starts_with(current.as_str()),
                    "{line} outside {current}"
                );
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit()),
                    "{name}"
                );
            }
        }
        assert!(families.len() > 20);
    }
}
