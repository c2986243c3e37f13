//! From the server's raw answers to ocserv-shaped records and text tables (protocol.md §7.2-7.5,
//! member names and order of the newest ocserv; text layout after ocserv's occtl).
//! `now` (unix seconds) is passed in so that ages and rates are testable.

use std::fmt::Write as _;

use rocserv_proto::ipc::ctl::{BanInfo, ServerStatus, SessionInfo, UserInfo};
use rocserv_proto::ipc::main_secmod::SessionRecord;

use crate::format::{age, bytes, date, duration, rate, since};
use crate::output::{printable, Record};

/// ocserv's placeholder for an empty user or group name.
const NO_USER: &str = "(none)";

fn or_none(s: &str) -> String {
    if s.is_empty() {
        NO_USER.to_owned()
    } else {
        s.to_owned()
    }
}

fn short(session: &str) -> String {
    session.chars().take(6).collect()
}

/// The user object (`show users`/`user`/`id`/`events`): ocserv's members in ocserv's order
/// (tests/ocserv-samples, and the newer members of ocserv 1.4.1+), then ours.
pub(crate) fn user(u: &UserInfo, now: u64) -> Record {
    let mut r = Record::default();
    r.num("ID", u.id)
        .str("Username", or_none(&u.username))
        .pair("Groupname", or_none(&u.groupname))
        .str("State", "connected")
        .str("vhost", "default")
        .str("Device", u.device.clone())
        .pair("MTU", u.mtu.map(|m| m.to_string()).unwrap_or_default())
        .str("Remote IP", u.remote_ip.to_string())
        .pair("Location", "unknown")
        .str("Local Device IP", u.local_device_ip.to_string());
    if let (Some(ip), Some(ptp)) = (u.ipv4, u.ptp_ipv4) {
        r.str("IPv4", ip.to_string())
            .pair("P-t-P IPv4", ptp.to_string());
    }
    if let (Some(ip), Some(ptp)) = (u.ipv6, u.ptp_ipv6) {
        r.str("IPv6", ip.to_string())
            .pair("P-t-P IPv6", ptp.to_string());
    }
    let up = u64::try_from(since(now, u.connected_at)).unwrap_or(0);
    r.str("User-Agent", u.user_agent.clone());
    // Only the limits that are set. ocserv up to 1.2.3 named the second of the pair `TX`, a key
    // its JSON repeats below; we print the later `Limit TX` (no duplicate keys).
    if u.rx_limit_per_sec > 0 {
        r.str("Limit RX", bytes(u.rx_limit_per_sec, "/sec"));
    }
    if u.tx_limit_per_sec > 0 {
        r.pair("Limit TX", bytes(u.tx_limit_per_sec, "/sec"));
    }
    // JSON: the counters as strings of digits, then human forms; text: two lines of their own.
    r.json_only_str("RX", u.rx_bytes.to_string())
        .json_only_str("TX", u.tx_bytes.to_string())
        .json_only_str("_RX", bytes(u.rx_bytes, ""))
        .json_only_str("_TX", bytes(u.tx_bytes, ""))
        .json_only_str("Average RX", rate(u.rx_bytes, up))
        .json_only_str("Average TX", rate(u.tx_bytes, up))
        .text_only(
            "RX",
            format!("{} ({})", u.rx_bytes, bytes(u.rx_bytes, "")),
            false,
        )
        .text_only(
            "TX",
            format!("{} ({})", u.tx_bytes, bytes(u.tx_bytes, "")),
            true,
        )
        .text_only(
            "Average bandwidth RX",
            format!("{}  TX: {}", rate(u.rx_bytes, up), rate(u.tx_bytes, up)),
            false,
        )
        .str("DPD", u.dpd_secs.to_string())
        .pair("KeepAlive", u.keepalive_secs.to_string())
        .str("Hostname", u.hostname.clone())
        // ocserv up to 1.4.0 printed the connection's start as `Connected at`; 1.4.1 renamed it
        // `Last connected at` and added `Session started at`. Tools read either: both are here.
        .with_human(
            "Connected at",
            date(u.connected_at),
            age(since(now, u.connected_at)),
        )
        .with_human(
            "Last connected at",
            date(u.connected_at),
            age(since(now, u.connected_at)),
        )
        .with_human(
            "Session started at",
            date(u.session_started_at),
            age(since(now, u.session_started_at)),
        )
        .raw("raw_connected_at", u.connected_at)
        .raw("raw_session_started_at", u.session_started_at)
        .json_only_str("Full session", u.session.clone())
        .str("Session", short(&u.session))
        .str("TLS ciphersuite", u.tls_ciphersuite.clone())
        .str("DTLS cipher", u.dtls_cipher.clone())
        .str("CSTP compression", u.cstp_compression.clone())
        .pair("DTLS compression", u.dtls_compression.clone())
        .text_line("")
        .list("DNS", u.dns.clone())
        .list("NBNS", u.nbns.clone())
        .list("Split-DNS-Domains", u.split_dns_domains.clone());
    // ocserv prints `"Routes": []` and then `"Routes": "defaultroute"`; a JSON parser keeps the
    // second, so that is the one member we print (no duplicate keys).
    if u.routes.is_empty() {
        r.str("Routes", "defaultroute");
    } else {
        r.list("Routes", u.routes.clone());
    }
    r.list("No-routes", u.no_routes.clone())
        .list("iRoutes", u.iroutes.clone())
        .str(
            "Restricted to routes",
            if u.restricted_to_routes {
                "True"
            } else {
                "False"
            },
        )
        .json_only_list("Restricted to ports", u.restricted_to_ports.clone());
    // ocserv's text prints the ports on one line, and an empty line when there are none.
    if u.restricted_to_ports.is_empty() {
        r.text_line("");
    } else {
        r.text_only(
            "Restricted to ports",
            u.restricted_to_ports.join(", "),
            false,
        );
    }
    // Ours, after every ocserv member so that ocserv's keys and order stay as they are
    // (the list: doc/config.md, "occtl").
    r.str("Device ID", u.device_id.clone())
        .str("Device platform", u.device_platform.clone())
        .list("MAC addresses", u.macs.clone())
        .str(
            "UDP peer",
            u.udp_peer.map(|a| a.to_string()).unwrap_or_default(),
        )
        // The cluster node holding the tunnel; only with `cluster-store` (empty otherwise).
        .str("Node", u.node.clone());
    r
}

/// `show users` in text mode: ocserv's one-line-per-user table.
pub(crate) fn users_table(users: &[UserInfo], now: u64) -> String {
    let mut out = String::new();
    if users.is_empty() {
        return out;
    }
    // A cluster's listing (every row then names its node) gets a last column for the node;
    // a single node's table is ocserv's.
    let cluster = users.iter().any(|u| !u.node.is_empty());
    let _ = write!(
        out,
        "{:>8} {:>8} {:>8} {:>14} {:>14} {:>6} {:>7} {:>14} {:>9}",
        "id", "user", "vhost", "ip", "vpn-ip", "device", "since", "dtls-cipher", "status"
    );
    let _ = writeln!(out, "{}", node_cell(cluster, "node"));
    for u in users {
        // Fallen back to TLS counts as no DTLS: the column says what carries the data now.
        let dtls = if u.dtls_in_use {
            table_cipher(&u.dtls_cipher)
        } else {
            "(no-dtls)"
        };
        let _ = write!(
            out,
            "{:>8} {:>8} {:>8} {:>14} {:>14} {:>6} {} {:>14} {:>9}",
            u.id,
            printable(&or_none(&u.username)),
            "default",
            u.remote_ip.to_string(),
            vpn_ip(u),
            printable(&u.device),
            age(since(now, u.connected_at)),
            printable(dtls),
            "connected"
        );
        let _ = writeln!(out, "{}", node_cell(cluster, &u.node));
    }
    out
}

/// The node column of a cluster's tables (nothing on a single node).
fn node_cell(cluster: bool, text: &str) -> String {
    if cluster {
        format!(" {:>10}", printable(text))
    } else {
        String::new()
    }
}

/// The `dtls-cipher` column as ocserv's occtl prints it: the cipher part of the description,
/// without its `(DTLS1.2)-(PSK)-` / `(DTLS0.9)-(RSA)-` head; anything else is `(no-dtls)`.
pub(crate) fn table_cipher(desc: &str) -> &str {
    const HEAD: usize = "(DTLS1.2)-(PSK)-".len();
    let known =
        desc.starts_with("(DTLS") && matches!(desc.get(8..HEAD), Some(")-(RSA)-" | ")-(PSK)-"));
    match desc.get(HEAD..) {
        Some(cipher) if known && !cipher.is_empty() => cipher,
        _ => "(no-dtls)",
    }
}

/// The client's VPN address for one-line listings: IPv4, else IPv6 (ocserv occtl `get_ip`).
pub(crate) fn vpn_ip(u: &UserInfo) -> String {
    u.ipv4
        .map(|i| i.to_string())
        .or_else(|| u.ipv6.map(|i| i.to_string()))
        .unwrap_or_default()
}

/// `show iroutes` object.
pub(crate) fn iroute(u: &UserInfo) -> Record {
    let mut r = Record::default();
    r.num("ID", u.id)
        .str("Username", or_none(&u.username))
        .str("vhost", "default")
        .str("Device", u.device.clone())
        .str("IP", vpn_ip(u))
        .list("iRoutes", u.iroutes.clone());
    r
}

/// The session object (`show sessions`, `show session`).
pub(crate) fn session(s: &SessionInfo, json: bool) -> Record {
    let mut r = Record::default();
    r.str("Session", short(&s.session));
    if json {
        r.str("Full session", s.session.clone());
    } else {
        r.str("Full session ID", s.session.clone());
    }
    r.str("Created", date(s.created))
        .str("Expires", s.expires.map(date).unwrap_or_default())
        .str("State", "authenticated")
        .str("Username", or_none(&s.username))
        .str("Groupname", or_none(&s.groupname))
        .str("vhost", "default")
        .str("User-Agent", s.user_agent.clone())
        .str(
            "Remote IP",
            s.remote_ip.map(|i| i.to_string()).unwrap_or_default(),
        )
        .str("Location", "unknown");
    if json {
        r.num("session_is_open", u64::from(s.session_is_open))
            .num("tls_auth_ok", u64::from(s.tls_auth_ok))
            .num("in_use", u64::from(s.in_use));
    } else {
        r.str("In use", true_false(s.in_use > 0))
            .str("Activated", true_false(s.session_is_open))
            .str("Certificate auth", true_false(s.tls_auth_ok));
    }
    // Ours: the node that listed it (cluster only).
    r.str("Node", s.node.clone());
    r
}

fn true_false(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// `show sessions` in text mode.
pub(crate) fn sessions_table(sessions: &[SessionInfo], now: u64) -> String {
    let mut out = String::new();
    if sessions.is_empty() {
        return out;
    }
    let cluster = sessions.iter().any(|s| !s.node.is_empty());
    let _ = write!(
        out,
        "{:>6} {:>8} {:>8} {:>14} {:>24} {:>8} {:>8}",
        "session", "user", "vhost", "ip", "user agent", "created", "status"
    );
    let _ = writeln!(out, "{}", node_cell(cluster, "node"));
    for s in sessions {
        // ocserv cuts the session to 6 and the user agent to 24 characters without padding.
        let agent: String = printable(&s.user_agent).chars().take(24).collect();
        let _ = write!(
            out,
            "{} {:>8} {:>8} {:>14} {} {:>8} {:>8}",
            printable(&short(&s.session)),
            printable(&or_none(&s.username)),
            "default",
            s.remote_ip.map(|i| i.to_string()).unwrap_or_default(),
            agent,
            age(since(now, s.created)),
            "authenticated"
        );
        let _ = writeln!(out, "{}", node_cell(cluster, &s.node));
    }
    out
}

/// `show ip bans` (`points: false`, banned addresses only) / `show ip ban points`.
pub(crate) fn ban(b: &BanInfo, points: bool, now: u64) -> Option<Record> {
    let mut r = Record::default();
    r.str("IP", b.ip.to_string());
    if !points {
        // ocserv calls the ban's expiry `Since`.
        let expires = b.expires?;
        r.with_human("Since", date(expires), age(since(expires, now)));
    }
    r.num("Score", u64::from(b.score));
    Some(r)
}

/// `show ip bans` / `show ip ban points` in text mode.
pub(crate) fn bans_table(bans: &[BanInfo], points: bool, now: u64) -> String {
    let mut out = String::new();
    for (i, b) in bans.iter().enumerate() {
        if points {
            if i == 0 {
                let _ = writeln!(out, "{:>14} {:>14}", "IP", "score");
            }
            let _ = writeln!(out, "{:>14} {:>14}", b.ip.to_string(), b.score);
        } else if let Some(expires) = b.expires {
            if out.is_empty() {
                let _ = writeln!(out, "{:>14} {:>14} {:>30}", "IP", "score", "expires");
            }
            let _ = writeln!(
                out,
                "{:>14} {:>14} {:>30} ({})",
                b.ip.to_string(),
                b.score,
                date(expires),
                age(since(expires, now))
            );
        }
    }
    out
}

/// `show status` (protocol.md §7.3). `debug` adds the `--debug` members. ocserv's latency
/// members (`Median latency`, `STDEV latency`) are left out, as ocserv leaves them out when its
/// server sends no latency samples.
pub(crate) fn status(s: &ServerStatus, now: u64, debug: bool) -> Record {
    let mut r = Record::default();
    r.text_line("Note: the printed statistics are not real-time; session time")
        .text_line("as well as RX and TX data are updated on user disconnect")
        .text_line("")
        .text_line("General info:")
        .str("Status", "online")
        .num("Server PID", u64::from(s.server_pid))
        .num("Sec-mod PID", u64::from(s.secmod_pid))
        .num("Sec-mod instance count", 1)
        .with_human("Up since", date(s.up_since), age(since(now, s.up_since)))
        .raw("raw_up_since", s.up_since)
        .raw("uptime", u64::try_from(since(now, s.up_since)).unwrap_or(0))
        .num("Active sessions", u64::from(s.active_sessions))
        .num("Total sessions", s.total_sessions)
        .num("Total authentication failures", s.total_auth_failures)
        .num("IPs in ban list", u64::from(s.banned_ips));
    if debug {
        r.num("Sec-mod client entries", 0).num("TLS DB entries", 0);
    }
    // ocserv's "Current stats period" (server-stats-reset-time).
    r.text_line("")
        .text_line("Current stats period:")
        .with_human(
            "Last stats reset",
            date(s.last_stats_reset),
            age(since(now, s.last_stats_reset)),
        )
        .raw("raw_last_stats_reset", s.last_stats_reset)
        .num("Sessions handled", s.sessions_handled)
        .num("Timed out sessions", 0)
        .num("Timed out (idle) sessions", 0)
        .num("Closed due to error sessions", 0)
        .num("Authentication failures", s.auth_failures)
        .str("Average auth time", duration(s.avg_auth_time))
        .raw("raw_avg_auth_time", s.avg_auth_time)
        .str("Max auth time", duration(s.max_auth_time))
        .raw("raw_max_auth_time", s.max_auth_time)
        .str("Average session time", duration(s.avg_session_time))
        .raw("raw_avg_session_time", s.avg_session_time)
        .str("Max session time", duration(s.max_session_time))
        .raw("raw_max_session_time", s.max_session_time);
    if s.min_mtu > 0 {
        r.num("Min MTU", u64::from(s.min_mtu));
    }
    if s.max_mtu > 0 {
        r.num("Max MTU", u64::from(s.max_mtu));
    }
    r.str("RX", bytes(s.rx_bytes, ""))
        .raw("raw_rx", s.rx_bytes)
        .str("TX", bytes(s.tx_bytes, ""))
        .raw("raw_tx", s.tx_bytes);
    // Ours, with `cluster-store` only: after every ocserv member.
    if let Some(c) = &s.cluster {
        r.text_line("")
            .text_line("Cluster:")
            .str("Node", c.node.clone())
            .str("Cluster store", if c.store_up { "up" } else { "down" })
            .list("Cluster nodes", c.nodes.clone());
    }
    r
}

/// One `show events` line in text mode.
pub(crate) fn event_line(connected: bool, u: &UserInfo) -> String {
    let what = if connected { "connect" } else { "disconnect" };
    let ip = vpn_ip(u);
    format!(
        "{what}: user '{}' (ID {}) from {} vpn-ip {ip} device {}\n",
        printable(&or_none(&u.username)),
        u.id,
        u.remote_ip,
        printable(&u.device)
    )
}

/// One record of `show history` (JSON keys: doc/config.md, "Session records and quotas").
pub(crate) fn history(s: &SessionRecord) -> Record {
    let mut r = Record::default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let addr = |v: Option<String>| v.unwrap_or_default();
    r.str("Session", s.session.clone())
        .str("Username", or_none(&s.username))
        .str("Groupname", or_none(&s.groupname))
        .str(
            "vhost",
            s.vhost.clone().unwrap_or_else(|| "default".to_owned()),
        )
        .str("Device ID", opt(&s.device_id))
        .list("MAC addresses", s.macs.clone())
        .str("Hostname", opt(&s.hostname))
        .str("User-Agent", s.user_agent.clone())
        .str("Remote IP", addr(s.remote_ip.map(|a| a.to_string())))
        .str("IPv4", addr(s.vpn_ipv4.map(|a| a.to_string())))
        .str("IPv6", addr(s.vpn_ipv6.map(|a| a.to_string())))
        .str("Started", date(s.started))
        .raw("raw_started", s.started)
        .str("Ended", s.ended.map(date).unwrap_or_default());
    if let Some(ended) = s.ended {
        r.raw("raw_ended", ended);
    }
    r.str("Duration", duration(s.duration_secs).trim().to_owned())
        .raw("raw_duration", s.duration_secs)
        .str("RX", bytes(s.rx, ""))
        .raw("raw_rx", s.rx)
        .str("TX", bytes(s.tx, ""))
        .raw("raw_tx", s.tx)
        .str(
            "End reason",
            s.end_reason
                .clone()
                .unwrap_or_else(|| "connected".to_owned()),
        );
    r
}

/// `show history` in text mode: one line per session, newest first.
pub(crate) fn history_table(records: &[SessionRecord]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:>6} {:>8} {:>14} {:>15} {:>16} {:>8} {:>10} {:>10}  end",
        "session", "user", "ip", "vpn-ip", "started", "duration", "rx", "tx"
    );
    for s in records {
        let _ = writeln!(
            out,
            "{:>6} {:>8} {:>14} {:>15} {:>16} {:>8} {:>10} {:>10}  {}",
            printable(&short(&s.session)),
            printable(&or_none(&s.username)),
            s.remote_ip.map(|i| i.to_string()).unwrap_or_default(),
            s.vpn_ipv4
                .map(|i| i.to_string())
                .or_else(|| s.vpn_ipv6.map(|i| i.to_string()))
                .unwrap_or_default(),
            date(s.started),
            duration(s.duration_secs).trim(),
            bytes(s.rx, ""),
            bytes(s.tx, ""),
            printable(s.end_reason.as_deref().unwrap_or("connected")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table_cipher;

    #[test]
    fn the_table_shows_the_cipher_part_as_ocserv() {
        assert_eq!(
            table_cipher("(DTLS1.2)-(PSK)-(AES-256-GCM)"),
            "(AES-256-GCM)"
        );
        assert_eq!(
            table_cipher("(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)"),
            "(AES-128-CBC)-(SHA1)"
        );
        assert_eq!(table_cipher(""), "(no-dtls)");
        assert_eq!(table_cipher("(DTLS1.2)-(PSK)-"), "(no-dtls)");
        assert_eq!(table_cipher("(TLS1.3)-(ECDHE-X25519)"), "(no-dtls)");
    }
}
