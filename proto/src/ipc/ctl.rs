//! occtl <-> main, over the `occtl-socket-file` unix socket (`SOCK_SEQPACKET`, one message per
//! packet, root only: main checks `SO_PEERCRED`).
//!
//! occtl sends one [`CtlRequest`] and reads answers until the last one of the reply: a list
//! longer than one packet arrives as several pages, each with `more: true` except the last
//! ([`pages`] cuts them). `Events` is a subscription: main sends [`CtlResponse::Event`] until
//! occtl closes the socket. Every value is raw (addresses, byte counts, unix times); occtl
//! formats them the way ocserv's occtl prints them (protocol.md §7).
//!
//! Both ends are root-owned processes; main still decodes requests strictly and answers a
//! malformed one by closing the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// occtl -> main.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlRequest {
    /// `show status`: answered with [`CtlResponse::Status`].
    Status,
    /// `show users` / `show user NAME` / `show id ID` / `show iroutes`: [`CtlResponse::Users`].
    Users(UserFilter),
    /// `show sessions all|valid` / `show session SID`: [`CtlResponse::Sessions`].
    Sessions(SessionFilter),
    /// `show ip bans` (`points: false`) / `show ip ban points`: [`CtlResponse::Bans`].
    Bans { points: bool },
    /// `disconnect user|id`: end the tunnels; answered with [`CtlResponse::Done`].
    Disconnect(UserFilter),
    /// `terminate user|id|session`: end the tunnels and invalidate the cookies.
    Terminate(Target),
    /// `unban ip IP`.
    Unban(IpAddr),
    /// `reload`.
    Reload,
    /// `stop now`: orderly shutdown, like SIGTERM.
    Stop,
    /// `show events`: a stream of [`CtlResponse::Event`].
    Events,
    /// `show history [USER]`: the last sessions from sec-mod's session database, newest first
    /// (at most `limit`); [`CtlResponse::History`], or `Done(Failed)` when there is none.
    History { user: Option<String>, limit: u32 },
}

/// Which connected users a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserFilter {
    All,
    /// By user name (every connection of that user).
    Name(String),
    /// By connection id (occtl's `ID`).
    Id(u64),
    /// The connection `id` on the cluster node `node` (occtl `ID@NODE`, ours: a worker's
    /// process id is unique on its node only; doc/cluster.md "One view").
    NodeId {
        node: String,
        id: u64,
    },
}

/// Which sessions (cookies) `show sessions` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionFilter {
    /// Every session sec-mod knows.
    All,
    /// Only those a client may still reconnect with.
    Valid,
    /// Those whose session id starts with this text.
    Prefix(String),
}

/// What `terminate` ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    User(String),
    Id(u64),
    /// A session id or a unique prefix of one.
    Session(String),
    /// The connection `id` on the cluster node `node` (occtl `ID@NODE`, ours).
    NodeId {
        node: String,
        id: u64,
    },
}

/// main -> occtl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtlResponse {
    Status(Box<ServerStatus>),
    /// One page of connected users; `more` = another page follows.
    Users {
        users: Vec<UserInfo>,
        more: bool,
    },
    Sessions {
        sessions: Vec<SessionInfo>,
        more: bool,
    },
    Bans {
        bans: Vec<BanInfo>,
        more: bool,
    },
    /// The result of an action (disconnect, terminate, unban, reload, stop).
    Done(Outcome),
    /// A user connected (`connected: true`) or disconnected (`show events`).
    Event {
        connected: bool,
        user: Box<UserInfo>,
    },
    /// One page of `show history`; `more` = another page follows.
    History {
        records: Vec<super::main_secmod::SessionRecord>,
        more: bool,
    },
}

/// Result of an action request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; the number of connections or sessions it touched.
    Ok(u32),
    /// Nothing matched (occtl exits 2 for `terminate session`, 1 otherwise, like ocserv).
    NotFound,
    /// The server does not implement this yet or could not do it.
    Failed(String),
    /// Cluster (ours): `local` connections or sessions touched on this node, and the other
    /// nodes whose listed tunnels matched and that were told to act (sorted). Sent only when
    /// `nodes` is not empty, so a single node answers as before.
    Cluster { local: u32, nodes: Vec<String> },
}

/// `show status` (protocol.md §7.3). Times are unix seconds, durations seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub server_pid: u32,
    pub secmod_pid: u32,
    pub up_since: u64,
    /// Tunnels right now.
    pub active_sessions: u32,
    /// Tunnels that ended since start.
    pub total_sessions: u64,
    pub total_auth_failures: u64,
    pub banned_ips: u32,
    pub avg_auth_time: u64,
    pub max_auth_time: u64,
    pub avg_session_time: u64,
    pub max_session_time: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
    /// Bytes of ended tunnels (from and to the clients), in the current stats period.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Unix time the current stats period started (`server-stats-reset-time`).
    pub last_stats_reset: u64,
    /// Tunnels that ended and failed logins in the current stats period (the `total_*`
    /// members count since start).
    pub sessions_handled: u64,
    pub auth_failures: u64,
    /// With `cluster-store` (ours): this node, the store's state and the live nodes.
    pub cluster: Option<super::cluster::ClusterStatus>,
}

/// One connection with a tunnel (protocol.md §7.2 user object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Connection id: the worker's process id, as in ocserv.
    pub id: u64,
    pub username: String,
    /// Empty when the user has no group.
    pub groupname: String,
    pub device: String,
    pub mtu: Option<u16>,
    /// The client's public address and the server address it connected to.
    pub remote_ip: IpAddr,
    pub local_device_ip: IpAddr,
    /// The client's VPN address and the server's end of the point-to-point link.
    pub ipv4: Option<Ipv4Addr>,
    pub ptp_ipv4: Option<Ipv4Addr>,
    pub user_agent: String,
    /// Bytes received from the client and sent to it.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub dpd_secs: u32,
    pub keepalive_secs: u32,
    pub hostname: String,
    /// Unix time this connection's tunnel started, and the session's first tunnel.
    pub connected_at: u64,
    pub session_started_at: u64,
    /// The session id text (also what `show sessions` prints).
    pub session: String,
    /// Empty when not known.
    pub tls_ciphersuite: String,
    pub dtls_cipher: String,
    pub cstp_compression: String,
    pub dtls_compression: String,
    pub dns: Vec<String>,
    pub nbns: Vec<String>,
    pub split_dns_domains: Vec<String>,
    /// Empty = everything goes through the tunnel.
    pub routes: Vec<String>,
    pub no_routes: Vec<String>,
    pub iroutes: Vec<String>,
    pub restricted_to_routes: bool,
    pub restricted_to_ports: Vec<String>,
    /// `rx-data-per-sec` / `tx-data-per-sec` granted to this session, bytes per second; 0 = none.
    pub rx_limit_per_sec: u64,
    pub tx_limit_per_sec: u64,
    /// The client's VPN IPv6 address and the server's end of the link (`IPv6`, `P-t-P IPv6`).
    pub ipv6: Option<Ipv6Addr>,
    pub ptp_ipv6: Option<Ipv6Addr>,
    /// What the client reported at login (empty when it did not): its device id, platform
    /// and MAC addresses (rocserv only: `Device ID`, `Device platform`, `MAC addresses`).
    pub device_id: String,
    pub device_platform: String,
    pub macs: Vec<String>,
    /// Data travels over DTLS right now (false: no DTLS yet, or the tunnel fell back to TLS);
    /// from the worker's last state report, checked by main.
    pub dtls_in_use: bool,
    /// The client's current UDP address (it changes when the client roams); main's own
    /// knowledge (it hands each UDP flow to the worker), never the worker's word.
    pub udp_peer: Option<SocketAddr>,
    /// The cluster node holding this tunnel (ours, `Node`); empty without `cluster-store`.
    pub node: String,
}

/// One session (cookie) sec-mod knows (protocol.md §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session: String,
    /// Unix times; `expires` is `None` while a tunnel uses the session.
    pub created: u64,
    pub expires: Option<u64>,
    pub username: String,
    pub groupname: String,
    /// From the session's live tunnel, if any (empty / `None` otherwise).
    pub user_agent: String,
    pub remote_ip: Option<IpAddr>,
    /// A CONNECT happened with this cookie.
    pub session_is_open: bool,
    pub tls_auth_ok: bool,
    /// Tunnels using it right now.
    pub in_use: u32,
    /// The cluster node that listed it (ours, `Node`); empty without `cluster-store`.
    pub node: String,
}

/// One address with ban points (protocol.md §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub ip: IpAddr,
    pub score: u32,
    /// Unix time the ban ends; `None` when the address has points but is not banned.
    pub expires: Option<u64>,
}

/// Page budget: a page's items encode to at most this many bytes, leaving room for the enum
/// tag and the `more` flag under [`super::MAX_MESSAGE`].
pub const PAGE_BUDGET: usize = super::MAX_MESSAGE - 1024;

/// Cut `items` into pages whose encodings stay within `budget` bytes each. An item that alone
/// exceeds the budget gets a page of its own (its encoding will then fail with `TooLarge`, which
/// the sender logs and skips). Always returns at least one (possibly empty) page.
pub fn pages<T: Serialize>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new()];
    let mut used = 0usize;
    for item in items {
        let size = postcard::experimental::serialized_size(&item).unwrap_or(budget);
        let fits = used.saturating_add(size) <= budget;
        match out.last_mut() {
            Some(page) if fits || page.is_empty() => {
                page.push(item);
                used = used.saturating_add(size);
            }
            Some(_) | None => {
                out.push(vec![item]);
                used = size;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{encode, roundtrip, MAX_MESSAGE};

    fn user(n: u64) -> UserInfo {
        UserInfo {
            id: n,
            username: format!("user{n}"),
            groupname: String::new(),
            device: "vpns0".into(),
            mtu: Some(1434),
            remote_ip: "10.0.0.2".parse().unwrap(),
            local_device_ip: "10.0.0.1".parse().unwrap(),
            ipv4: Some(Ipv4Addr::new(192, 168, 1, 2)),
            ptp_ipv4: Some(Ipv4Addr::new(192, 168, 1, 1)),
            user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
            rx_bytes: 1,
            tx_bytes: 2,
            dpd_secs: 90,
            keepalive_secs: 32400,
            hostname: "laptop".into(),
            connected_at: 1_700_000_000,
            session_started_at: 1_700_000_000,
            session: "0123456789abcdef".into(),
            tls_ciphersuite: String::new(),
            dtls_cipher: String::new(),
            cstp_compression: String::new(),
            dtls_compression: String::new(),
            dns: vec!["192.168.1.1".into()],
            nbns: vec![],
            split_dns_domains: vec![],
            routes: vec!["10.0.0.0/255.0.0.0".into()],
            no_routes: vec![],
            iroutes: vec![],
            restricted_to_routes: false,
            restricted_to_ports: vec![],
            rx_limit_per_sec: 0,
            tx_limit_per_sec: 0,
            ipv6: Some("fd00:1::2".parse().unwrap()),
            ptp_ipv6: Some(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1)),
            device_id: "3B5C0E8F".into(),
            device_platform: "win".into(),
            macs: vec!["00:0c:29:5e:1a:9b".into()],
            dtls_in_use: true,
            udp_peer: Some("10.0.0.2:40000".parse().unwrap()),
            node: "node-a".into(),
        }
    }

    #[test]
    fn messages_roundtrip() {
        roundtrip(&CtlRequest::Users(UserFilter::Name("alice".into())));
        roundtrip(&CtlRequest::Terminate(Target::Session("01ab".into())));
        roundtrip(&CtlRequest::Unban("10.1.2.3".parse().unwrap()));
        roundtrip(&CtlResponse::Users {
            users: vec![user(1)],
            more: false,
        });
        roundtrip(&CtlResponse::Done(Outcome::Failed("no".into())));
        roundtrip(&CtlResponse::Bans {
            bans: vec![BanInfo {
                ip: "10.1.2.3".parse().unwrap(),
                score: 80,
                expires: Some(5),
            }],
            more: true,
        });
    }

    #[test]
    fn many_users_fit_in_pages_of_one_packet_each() {
        let users: Vec<UserInfo> = (0..2000).map(user).collect();
        let pages = pages(users, PAGE_BUDGET);
        assert!(pages.len() > 1);
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 2000);
        for (i, page) in pages.into_iter().enumerate() {
            let msg = CtlResponse::Users {
                users: page,
                more: true,
            };
            let bytes = encode(&msg).unwrap_or_else(|e| panic!("page {i}: {e}"));
            assert!(bytes.len() <= MAX_MESSAGE);
        }
    }

    #[test]
    fn empty_list_is_one_empty_page() {
        assert_eq!(pages(Vec::<BanInfo>::new(), PAGE_BUDGET), vec![vec![]]);
    }
}
