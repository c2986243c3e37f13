//! Every `-j` output is valid JSON with ocserv's member names in ocserv's order
//! (protocol.md §7.2-7.5), parsed back with serde_json (`preserve_order`).

use rocserv_proto::ipc::ctl::{BanInfo, ServerStatus, SessionInfo, UserInfo};

use crate::output::json_array;
use crate::render;

const NOW: u64 = 1_700_000_100;

/// §7.2, without the members that need IPv6 or rate limits.
const USER_KEYS: &[&str] = &[
    "ID",
    "Username",
    "Groupname",
    "State",
    "vhost",
    "Device",
    "MTU",
    "Remote IP",
    "Location",
    "Local Device IP",
    "IPv4",
    "P-t-P IPv4",
    "User-Agent",
    "RX",
    "TX",
    "_RX",
    "_TX",
    "Average RX",
    "Average TX",
    "DPD",
    "KeepAlive",
    "Hostname",
    "Connected at",
    "_Connected at",
    "Last connected at",
    "_Last connected at",
    "Session started at",
    "_Session started at",
    "raw_connected_at",
    "raw_session_started_at",
    "Full session",
    "Session",
    "TLS ciphersuite",
    "DTLS cipher",
    "CSTP compression",
    "DTLS compression",
    "DNS",
    "NBNS",
    "Split-DNS-Domains",
    "Routes",
    "No-routes",
    "iRoutes",
    "Restricted to routes",
    "Restricted to ports",
    "Device ID",
    "Device platform",
    "MAC addresses",
    "UDP peer",
];

/// §7.3 without `--debug`.
const STATUS_KEYS: &[&str] = &[
    "Status",
    "Server PID",
    "Sec-mod PID",
    "Sec-mod instance count",
    "Up since",
    "_Up since",
    "raw_up_since",
    "uptime",
    "Active sessions",
    "Total sessions",
    "Total authentication failures",
    "IPs in ban list",
    "Last stats reset",
    "_Last stats reset",
    "raw_last_stats_reset",
    "Sessions handled",
    "Timed out sessions",
    "Timed out (idle) sessions",
    "Closed due to error sessions",
    "Authentication failures",
    "Average auth time",
    "raw_avg_auth_time",
    "Max auth time",
    "raw_max_auth_time",
    "Average session time",
    "raw_avg_session_time",
    "Max session time",
    "raw_max_session_time",
    "Min MTU",
    "Max MTU",
    "RX",
    "raw_rx",
    "TX",
    "raw_tx",
];

/// §7.4.
const SESSION_KEYS: &[&str] = &[
    "Session",
    "Full session",
    "Created",
    "Expires",
    "State",
    "Username",
    "Groupname",
    "vhost",
    "User-Agent",
    "Remote IP",
    "Location",
    "session_is_open",
    "tls_auth_ok",
    "in_use",
];

pub(crate) fn user() -> UserInfo {
    UserInfo {
        id: 8063,
        username: "test".into(),
        groupname: String::new(),
        device: "vpns0".into(),
        mtu: Some(1434),
        remote_ip: "10.231.0.2".parse().unwrap(),
        local_device_ip: "10.231.0.1".parse().unwrap(),
        ipv4: Some("192.168.99.190".parse().unwrap()),
        ptp_ipv4: Some("192.168.99.1".parse().unwrap()),
        user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
        rx_bytes: 1234,
        tx_bytes: 400,
        dpd_secs: 90,
        keepalive_secs: 32400,
        hostname: "laptop \"x\"".into(),
        connected_at: NOW - 100,
        session_started_at: NOW - 200,
        session: "0123456789abcdef".into(),
        tls_ciphersuite: "(TLS1.3)-(AES-256-GCM)".into(),
        dtls_cipher: "(DTLS1.2)-(PSK)-(AES-256-GCM)".into(),
        cstp_compression: "lzs".into(),
        dtls_compression: "oc-lz4".into(),
        dns: vec!["192.168.99.1".into()],
        nbns: vec![],
        split_dns_domains: vec![],
        routes: vec!["10.99.0.0/255.255.0.0".into()],
        no_routes: vec![],
        iroutes: vec![],
        restricted_to_routes: false,
        restricted_to_ports: vec![],
        rx_limit_per_sec: 0,
        tx_limit_per_sec: 0,
        ipv6: None,
        ptp_ipv6: None,
        device_id: "3B5C0E8F".into(),
        device_platform: "win".into(),
        macs: vec!["00:0c:29:5e:1a:9b".into(), "02:00:00:00:00:01".into()],
        dtls_in_use: true,
        udp_peer: Some("10.231.0.2:40000".parse().unwrap()),
        node: String::new(),
    }
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn no_duplicate_keys(text: &str) {
    // serde_json keeps the last of duplicate keys; count the member lines instead.
    for object in text.split("  }") {
        let mut seen = std::collections::HashSet::new();
        for line in object.lines() {
            if let Some(key) = line
                .trim_start()
                .strip_prefix('"')
                .and_then(|l| l.split('"').next())
            {
                assert!(
                    seen.insert(key.to_owned()),
                    "duplicate key {key} in\n{text}"
                );
            }
        }
    }
}

#[test]
fn show_users_json() {
    let users = [user(), UserInfo { id: 2, ..user() }];
    let records: Vec<_> = users.iter().map(|u| render::user(u, NOW)).collect();
    let text = json_array(&records, true);
    no_duplicate_keys(&text);
    let v = parse(&text);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(keys(&v[0]), USER_KEYS);
    assert_eq!(v[0]["ID"], 8063);
    assert_eq!(v[0]["Groupname"], "(none)");
    assert_eq!(v[0]["MTU"], "1434");
    assert_eq!(v[0]["RX"], "1234");
    assert_eq!(v[0]["_RX"], "1.2 kB");
    assert_eq!(v[0]["Average RX"], "12 bytes/s");
    assert_eq!(v[0]["Hostname"], "laptop \"x\"");
    assert_eq!(v[0]["raw_connected_at"], NOW - 100);
    assert_eq!(v[0]["Session"], "012345");
    assert_eq!(v[0]["_Last connected at"], " 1m:40s");
    assert_eq!(v[0]["DNS"], serde_json::json!(["192.168.99.1"]));
    assert_eq!(v[0]["Restricted to routes"], "False");
    assert_eq!(v[0]["Device ID"], "3B5C0E8F");
    assert_eq!(v[0]["Device platform"], "win");
    assert_eq!(
        v[0]["MAC addresses"],
        serde_json::json!(["00:0c:29:5e:1a:9b", "02:00:00:00:00:01"])
    );
}

#[test]
fn empty_members_are_omitted_and_default_route_is_one_member() {
    let u = UserInfo {
        hostname: String::new(),
        tls_ciphersuite: String::new(),
        dtls_cipher: String::new(),
        cstp_compression: String::new(),
        dtls_compression: String::new(),
        routes: vec![],
        device_id: String::new(),
        device_platform: String::new(),
        macs: vec![],
        ..user()
    };
    let text = json_array(&[render::user(&u, NOW)], true);
    no_duplicate_keys(&text);
    let v = parse(&text);
    let expected: Vec<&str> = USER_KEYS
        .iter()
        .copied()
        .filter(|k| {
            !matches!(
                *k,
                "Hostname"
                    | "TLS ciphersuite"
                    | "DTLS cipher"
                    | "CSTP compression"
                    | "DTLS compression"
                    | "Device ID"
                    | "Device platform"
            )
        })
        .collect();
    assert_eq!(keys(&v[0]), expected);
    assert_eq!(v[0]["Routes"], "defaultroute");
}

#[test]
fn granted_policy_is_shown() {
    let u = UserInfo {
        groupname: "staff".into(),
        nbns: vec!["10.0.0.54".into()],
        split_dns_domains: vec!["corp.example".into()],
        iroutes: vec!["192.168.77.0/255.255.255.0".into()],
        restricted_to_routes: true,
        restricted_to_ports: vec!["tcp(443)".into(), "icmp()".into()],
        rx_limit_per_sec: 2_000_000,
        tx_limit_per_sec: 0,
        ..user()
    };
    let text = json_array(&[render::user(&u, NOW)], true);
    no_duplicate_keys(&text);
    let v = parse(&text);
    assert_eq!(v[0]["Groupname"], "staff");
    assert_eq!(v[0]["NBNS"], serde_json::json!(["10.0.0.54"]));
    assert_eq!(
        v[0]["Split-DNS-Domains"],
        serde_json::json!(["corp.example"])
    );
    assert_eq!(
        v[0]["iRoutes"],
        serde_json::json!(["192.168.77.0/255.255.255.0"])
    );
    assert_eq!(v[0]["Restricted to routes"], "True");
    assert_eq!(
        v[0]["Restricted to ports"],
        serde_json::json!(["tcp(443)", "icmp()"])
    );
    assert_eq!(v[0]["Limit RX"], "2.0 MB/sec");
    assert!(v[0].get("Limit TX").is_none());
}

#[test]
fn ipv6_members_follow_ipv4_and_an_ipv6_only_user_has_only_them() {
    let dual = UserInfo {
        ipv6: Some("fd00:1::2".parse().unwrap()),
        ptp_ipv6: Some("fd00:1::1".parse().unwrap()),
        ..user()
    };
    let v = parse(&json_array(&[render::user(&dual, NOW)], true));
    let keys = keys(&v[0]);
    let at = keys.iter().position(|k| k == "P-t-P IPv4").unwrap();
    assert_eq!(keys[at + 1..at + 3], ["IPv6", "P-t-P IPv6"]);
    assert_eq!(v[0]["IPv6"], "fd00:1::2");
    assert_eq!(v[0]["P-t-P IPv6"], "fd00:1::1");
    let v6_only = UserInfo {
        ipv4: None,
        ptp_ipv4: None,
        ..dual.clone()
    };
    let v = parse(&json_array(&[render::user(&v6_only, NOW)], true));
    assert!(v[0].get("IPv4").is_none());
    assert_eq!(v[0]["IPv6"], "fd00:1::2");
    assert_eq!(render::vpn_ip(&v6_only), "fd00:1::2");
    assert_eq!(render::vpn_ip(&dual), "192.168.99.190");
}

#[test]
fn show_user_not_found_is_an_empty_array() {
    assert_eq!(parse(&json_array(&[], true)), serde_json::json!([]));
}

#[test]
fn show_status_json() {
    let s = ServerStatus {
        server_pid: 10,
        secmod_pid: 11,
        up_since: NOW - 7,
        active_sessions: 1,
        total_sessions: 3,
        total_auth_failures: 0,
        banned_ips: 0,
        avg_auth_time: 0,
        max_auth_time: 0,
        avg_session_time: 65,
        max_session_time: 130,
        min_mtu: 1400,
        max_mtu: 1434,
        rx_bytes: 5_000_000,
        tx_bytes: 10,
        last_stats_reset: NOW - 5,
        sessions_handled: 2,
        auth_failures: 0,
        cluster: None,
    };
    let text = format!("{}\n", render::status(&s, NOW, false).json());
    no_duplicate_keys(&text);
    let v = parse(&text);
    assert_eq!(keys(&v), STATUS_KEYS);
    assert_eq!(v["Server PID"], 10);
    assert_eq!(v["uptime"], 7);
    assert_eq!(v["RX"], "5.0 MB");
    assert_eq!(v["raw_rx"], 5_000_000);
    assert_eq!(v["raw_last_stats_reset"], NOW - 5);
    assert_eq!(
        (v["Total sessions"].clone(), v["Sessions handled"].clone()),
        (3.into(), 2.into())
    );
    let debug = parse(&render::status(&s, NOW, true).json());
    assert!(keys(&debug).contains(&"TLS DB entries".to_owned()));
    let quiet = ServerStatus {
        min_mtu: 0,
        max_mtu: 0,
        ..s
    };
    assert!(!keys(&parse(&render::status(&quiet, NOW, false).json())).contains(&"Min MTU".into()));
}

#[test]
fn show_sessions_json() {
    let s = SessionInfo {
        session: "0123456789abcdef".into(),
        created: NOW - 50,
        expires: Some(NOW + 300),
        username: "alice".into(),
        groupname: "staff".into(),
        user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
        remote_ip: Some("10.231.0.2".parse().unwrap()),
        session_is_open: true,
        tls_auth_ok: false,
        in_use: 0,
        node: String::new(),
    };
    let records = [render::session(&s, true), render::session(&s, true)];
    let text = json_array(&records, true);
    no_duplicate_keys(&text);
    let v = parse(&text);
    assert_eq!(keys(&v[1]), SESSION_KEYS);
    assert_eq!(v[0]["session_is_open"], 1);
    assert_eq!(v[0]["in_use"], 0);
    // In use: no expiry, no remote data.
    let busy = SessionInfo {
        expires: None,
        user_agent: String::new(),
        remote_ip: None,
        in_use: 1,
        ..s
    };
    let v = parse(&json_array(&[render::session(&busy, true)], true));
    let expected: Vec<&str> = SESSION_KEYS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "Expires" | "User-Agent" | "Remote IP"))
        .collect();
    assert_eq!(keys(&v[0]), expected);
}

#[test]
fn show_ip_bans_and_points_json() {
    let bans = [
        BanInfo {
            ip: "10.0.0.9".parse().unwrap(),
            score: 80,
            expires: Some(NOW + 30),
        },
        BanInfo {
            ip: "10.0.0.8".parse().unwrap(),
            score: 10,
            expires: None,
        },
    ];
    let banned: Vec<_> = bans
        .iter()
        .filter_map(|b| render::ban(b, false, NOW))
        .collect();
    let v = parse(&json_array(&banned, false));
    assert_eq!(v.as_array().unwrap().len(), 1, "only banned addresses");
    assert_eq!(keys(&v[0]), ["IP", "Since", "_Since", "Score"]);
    assert_eq!(v[0]["Score"], 80);
    let points: Vec<_> = bans
        .iter()
        .filter_map(|b| render::ban(b, true, NOW))
        .collect();
    let v = parse(&json_array(&points, false));
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(keys(&v[1]), ["IP", "Score"]);
}

#[test]
fn show_iroutes_json() {
    let v = parse(&json_array(&[render::iroute(&user())], false));
    assert_eq!(
        keys(&v[0]),
        ["ID", "Username", "vhost", "Device", "IP", "iRoutes"]
    );
    assert_eq!(v[0]["IP"], "192.168.99.190");
}

#[test]
fn command_lines_parse_like_occtl() {
    use crate::commands::{parse, Command};
    use rocserv_proto::ipc::ctl::{SessionFilter, Target, UserFilter};
    assert_eq!(parse("show users"), Ok(Command::Users));
    assert_eq!(
        parse("  SHOW   user  alice "),
        Ok(Command::User("alice".into()))
    );
    assert_eq!(parse("show id 42"), Ok(Command::Id(42)));
    assert!(parse("show id x").is_err());
    assert_eq!(
        parse("show ip ban points"),
        Ok(Command::Bans { points: true })
    );
    assert_eq!(parse("show ip bans"), Ok(Command::Bans { points: false }));
    assert_eq!(
        parse("show cookies valid"),
        Ok(Command::Sessions(SessionFilter::Valid))
    );
    assert_eq!(
        parse("show session 0123"),
        Ok(Command::Sessions(SessionFilter::Prefix("0123".into())))
    );
    assert_eq!(
        parse("disconnect id 7"),
        Ok(Command::Disconnect(UserFilter::Id(7)))
    );
    assert_eq!(
        parse("terminate session ab"),
        Ok(Command::Terminate(Target::Session("ab".into())))
    );
    assert!(parse("unban ip not-an-ip").is_err());
    // ocserv's stop ignores its argument.
    assert_eq!(parse("stop"), Ok(Command::Stop));
    assert_eq!(parse("stop now"), Ok(Command::Stop));
    assert_eq!(parse("?"), Ok(Command::Help));
    assert!(parse("show").is_err());
    // ocserv ignores what follows a command without an argument.
    assert_eq!(parse("show users extra"), Ok(Command::Users));
    assert!(parse("frobnicate").is_err());
}

#[test]
fn text_tables_escape_client_strings() {
    let u = UserInfo {
        username: "eve\nroot".into(),
        device: "vpns0\u{1b}[31m".into(),
        user_agent: "ua\r\nInjected: 1".into(),
        ..user()
    };
    let table = render::users_table(std::slice::from_ref(&u), NOW);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("eve\\x0aroot") && table.contains("vpns0\\x1b[31m"),
        "{table}"
    );
    let line = render::event_line(true, &u);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(!line.contains('\u{1b}'));
    let text = render::user(&u, NOW).text();
    assert!(
        text.contains("\tUser-Agent: ua\\x0d\\x0aInjected: 1\n"),
        "{text}"
    );
    // JSON keeps the real value (serde_json escapes it).
    let json = parse(&json_array(&[render::user(&u, NOW)], true));
    assert_eq!(json[0]["User-Agent"], "ua\r\nInjected: 1");
}

/// `show history -j`: the keys doc/config.md lists, in that order; a control character from
/// the client's word is escaped; an open record has no `Ended`.
#[test]
fn history_objects_have_the_documented_keys() {
    use rocserv_proto::ipc::main_secmod::SessionRecord;
    let closed = SessionRecord {
        session: "0123456789abcdef".into(),
        username: "alice".into(),
        groupname: "staff".into(),
        vhost: None,
        device_id: Some("linux-64\u{1b}[2J".into()),
        macs: vec!["00:11:22:33:44:55".into()],
        hostname: Some("laptop".into()),
        user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
        remote_ip: Some("10.0.0.2".parse().unwrap()),
        vpn_ipv4: Some("192.168.1.2".parse().unwrap()),
        vpn_ipv6: Some("fd00::2".parse().unwrap()),
        started: NOW - 100,
        ended: Some(NOW),
        duration_secs: 100,
        rx: 1234,
        tx: 56,
        end_reason: Some("ended by policy".into()),
    };
    let open = SessionRecord {
        ended: None,
        end_reason: None,
        ..closed.clone()
    };
    let text = json_array(&[render::history(&closed), render::history(&open)], true);
    assert!(!text.contains('\u{1b}'), "{text}");
    let v = parse(&text);
    assert_eq!(
        keys(&v[0]),
        [
            "Session",
            "Username",
            "Groupname",
            "vhost",
            "Device ID",
            "MAC addresses",
            "Hostname",
            "User-Agent",
            "Remote IP",
            "IPv4",
            "IPv6",
            "Started",
            "raw_started",
            "Ended",
            "raw_ended",
            "Duration",
            "raw_duration",
            "RX",
            "raw_rx",
            "TX",
            "raw_tx",
            "End reason"
        ]
    );
    assert_eq!(v[0]["raw_rx"], 1234);
    assert_eq!(v[0]["End reason"], "ended by policy");
    assert_eq!(v[1]["End reason"], "connected");
    assert!(v[1].get("Ended").is_none() && v[1].get("raw_ended").is_none());
    let table = render::history_table(&[closed]);
    assert!(
        table.contains("alice") && table.contains("ended by policy"),
        "{table}"
    );
}
