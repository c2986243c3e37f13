//! main <-> sec-mod. Both sides are trusted; sec-mod still validates because a bug in main must
//! not hand out sessions.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::worker_secmod::ClientFacts;
use super::{CloseReason, KeyKind, SessionId, WorkerId};
use crate::config::AuthPlan;

/// What sec-mod needs to start: paths it opens itself (the key never passes through main) and
/// the authentication policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecModConfig {
    /// `server-key`: PEM, PKCS#1, PKCS#8 or SEC1.
    pub server_key: PathBuf,
    /// `server-cert`: sec-mod checks that the key matches the first certificate.
    pub server_cert: PathBuf,
    /// `auth`, `enable-auth` and `acct`.
    pub auth: AuthPlan,
    /// `stats-report-time` in seconds (0: none): how often main sends [`ToSecMod::SessionStats`];
    /// accounting's interim updates follow it unless the RADIUS server asks otherwise.
    pub stats_report_secs: u32,
    /// `cookie-timeout`, seconds a cookie outlives its last connection.
    pub cookie_timeout_secs: u64,
    /// `persistent-cookies`: a user disconnect keeps the cookie.
    pub persistent_cookies: bool,
    /// `auth-timeout`: an unfinished login conversation is dropped after this many seconds.
    pub auth_timeout_secs: u64,
    /// Only load and check the key against the certificate, answer, and exit (`rocserv -t`).
    pub check_only: bool,
    /// `ban-points-wrong-password`: reported to main in [`FromSecMod::BanPoints`] per failure.
    pub ban_points_wrong_password: u32,
    /// `deny-roaming`: a cookie opens only from the client address that logged in (a user's
    /// or group's file may change it: sec-mod decides after reading them).
    pub deny_roaming: bool,
    /// Where the per-user and per-group files are; sec-mod reads them at each CONNECT.
    pub policy_files: crate::policy::file::Locations,
    /// The `[vhost:NAME]` sections: each one's key, certificate and authentication method.
    pub vhosts: Vec<SecModVhost>,
    /// `auto-select-group`: list the backend's groups in [`FromSecMod::Ready`].
    pub auto_select_group: bool,
    /// `session-db` (ours): the SQLite file of session records and usage; `None`: none.
    pub session_db: Option<PathBuf>,
    /// `key-pin` / `pin-file` of the default section: open an encrypted `server-key`.
    pub key_pin: KeyPin,
    /// `cluster-store` and friends (ours, doc/cluster.md); `None`: a single node.
    pub cluster: Option<super::cluster::ClusterSettings>,
}

/// How sec-mod gets the PIN of an encrypted key: `key-pin` as written, or `pin-file`, which
/// sec-mod reads itself (its first line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPin {
    pub pin: Option<crate::config::Secret>,
    pub file: Option<PathBuf>,
}

/// What sec-mod needs of one `[vhost:NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecModVhost {
    /// The section name, lower case.
    pub name: String,
    pub server_key: PathBuf,
    pub server_cert: PathBuf,
    pub auth: AuthPlan,
    /// Its `deny-roaming`, for the sessions created in it.
    pub deny_roaming: bool,
    /// Its per-user and per-group files (`config-per-user`, ...), read for its sessions.
    pub policy_files: crate::policy::file::Locations,
    /// Its `key-pin` / `pin-file`.
    pub key_pin: KeyPin,
}

/// main -> sec-mod.
#[allow(
    clippy::large_enum_variant,
    reason = "`Start` is sent once per sec-mod start; boxing it buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSecMod {
    /// The first message after spawn.
    Start(SecModConfig),
    /// A new worker exists. One end of a fresh socket pair travels beside this message; it is
    /// that worker's channel to sec-mod, and `peer` is its client's address as main saw it.
    NewWorker { worker: WorkerId, peer: SocketAddr },
    /// A worker presented `cookie` on CONNECT. `peer` is its client's address as main accepted
    /// it (`deny-roaming` compares it with the login's). Answered with
    /// [`FromSecMod::SessionOpened`].
    SessionOpen {
        worker: WorkerId,
        peer: IpAddr,
        cookie: String,
    },
    /// The tunnel of a session opened with [`ToSecMod::SessionOpen`] is up (sent once per
    /// tunnel, after the connect-script accepted it): accounting starts.
    /// `worker` names the tunnel in the later messages (a session may have a second tunnel
    /// while a takeover ends the first).
    SessionStarted {
        sid: SessionId,
        worker: WorkerId,
        tunnel: TunnelFacts,
    },
    /// The traffic of `worker`'s tunnel of `sid` so far (bytes from and to the client, since
    /// this tunnel started), every `stats-report-time`.
    SessionStats {
        sid: SessionId,
        worker: WorkerId,
        rx: u64,
        tx: u64,
    },
    /// The tunnel of `sid` ended; sec-mod keeps or drops the cookie according to `reason`.
    /// `end` is `None` when no tunnel was started ([`ToSecMod::SessionStarted`] not sent).
    SessionClose {
        sid: SessionId,
        reason: CloseReason,
        end: Option<(WorkerId, TunnelEnd)>,
    },
    /// occtl wants the session table: answered with one or more [`FromSecMod::SessionList`].
    ListSessions,
    /// occtl `show history [USER]`: the last `limit` sessions (of `user`) from the session
    /// database, newest first; answered with one or more [`FromSecMod::History`].
    History { user: Option<String>, limit: u32 },
    /// The end of the hook run [`FromSecMod::RunAuthHook`] `id` asked for.
    AuthHookDone { id: u64, outcome: AuthHookOutcome },
    /// A cluster notice (only with `cluster-store`).
    Cluster(super::cluster::ToCluster),
    /// A cluster question; answered with [`FromSecMod::ClusterAnswer`] with the same `id`.
    ClusterQuery {
        id: u64,
        query: super::cluster::ClusterQuery,
    },
}

/// sec-mod -> main.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromSecMod {
    /// The keys are loaded and match their certificates; sec-mod serves requests from now on.
    /// `vhost_keys`: the kind of each `[vhost:NAME]` key, by name.
    /// `groups`: with `auto-select-group`, every group the backend knows (the password
    /// file's groups, or the system's groups from `gid-min` up), sorted; else empty.
    Ready {
        key: KeyKind,
        vhost_keys: Vec<(String, KeyKind)>,
        groups: Vec<String>,
    },
    /// sec-mod could not start (unreadable key, key not matching the certificate, unreadable
    /// password file...). It exits after sending this.
    StartFailed { reason: String },
    /// Answer to [`ToSecMod::SessionOpen`].
    SessionOpened {
        worker: WorkerId,
        result: Result<SessionGrant, SessionRefusal>,
    },
    /// A login from `peer` failed: main counts it and adds `points` (`ban-points-wrong-password`)
    /// to the address's ban score (protocol.md §1.8). Sent for every failed login.
    BanPoints { peer: IpAddr, points: u32 },
    /// sec-mod ends the tunnel of `sid` (a quota ran out, the RADIUS server said so): main
    /// stops its worker as an administrator's disconnect would, logging `why`, and answers
    /// with the usual [`ToSecMod::SessionClose`] (cause [`EndCause::Policy`]).
    EndSession { sid: SessionId, why: String },
    /// One page of the answer to [`ToSecMod::ListSessions`]; `more` = another page follows.
    SessionList {
        sessions: Vec<SessionSummary>,
        more: bool,
    },
    /// One page of the answer to [`ToSecMod::History`]; `more` = another page follows.
    /// `error`: why there are no records (no `session-db`, the database failed).
    History {
        records: Vec<SessionRecord>,
        more: bool,
        error: Option<String>,
    },
    /// Run the `script` method's hook for one login (sec-mod cannot execute programs): main
    /// runs it in the background and answers with [`ToSecMod::AuthHookDone`]. main runs only a
    /// path of the `script` methods it configured itself, with their user and timeout.
    RunAuthHook(Box<AuthHookRun>),
    /// A cluster notice (only with `cluster-store`).
    Cluster(super::cluster::FromCluster),
    /// The answer to [`ToSecMod::ClusterQuery`] `id`.
    ClusterAnswer {
        id: u64,
        answer: super::cluster::ClusterAnswer,
    },
}

/// Most records [`ToSecMod::History`] returns.
pub const MAX_HISTORY: u32 = 1000;

/// One session (tunnel) as the session database recorded it (occtl `show history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id text (as `show sessions` prints it).
    pub session: String,
    pub username: String,
    /// Empty when the user has no group.
    pub groupname: String,
    pub vhost: Option<String>,
    pub device_id: Option<String>,
    pub macs: Vec<String>,
    pub hostname: Option<String>,
    pub user_agent: String,
    /// The client's real address.
    pub remote_ip: Option<IpAddr>,
    pub vpn_ipv4: Option<std::net::Ipv4Addr>,
    pub vpn_ipv6: Option<std::net::Ipv6Addr>,
    /// Unix times; `ended` is `None` while the tunnel is up.
    pub started: u64,
    pub ended: Option<u64>,
    pub duration_secs: u64,
    /// Bytes from and to the client (at the last traffic report while it is up).
    pub rx: u64,
    pub tx: u64,
    /// Why it ended ([`EndCause`]'s text, or `server stopped` for one a crash left open).
    pub end_reason: Option<String>,
}

/// One login for the `script` hook: its credentials and what is known of the client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthHookRun {
    /// sec-mod's number for the run, echoed in [`ToSecMod::AuthHookDone`].
    pub id: u64,
    /// The `script[path=...]` of the method.
    pub path: PathBuf,
    pub username: String,
    /// Written to the hook's stdin, never put in its arguments or environment.
    pub password: String,
    /// The group the client asked for.
    pub group: Option<String>,
    /// The client's address as main accepted it.
    pub peer: Option<SocketAddr>,
    /// The `[vhost:NAME]` of the login (`None`: the default section).
    pub vhost: Option<String>,
    /// What the client said about itself (checked by sec-mod), without the certificate chain.
    pub facts: ClientFacts,
    /// The subject of a client certificate sec-mod verified for this login, if any.
    pub cert_subject: Option<String>,
}

impl std::fmt::Debug for AuthHookRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHookRun")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("group", &self.group)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// How a hook run ended, as main saw it; sec-mod decides what it means
/// (`rocserv_proto::auth_hook`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthHookOutcome {
    /// It exited with `code`. `control`: what it wrote to its control file (for code
    /// [`crate::auth_hook::EXIT_PENDING`]: everything up to the writer's close; otherwise what
    /// was there at exit), at most [`crate::auth_hook::MAX_CONTROL`] + 1 bytes.
    Exited { code: i32, control: Vec<u8> },
    /// A signal ended it.
    Killed { signal: i32 },
    /// No answer within its timeout: its process group was killed.
    TimedOut { after_secs: u32 },
    /// main did not run it (not a configured hook, unknown user, cannot execute...).
    Failed { why: String },
}

/// One row of sec-mod's session table, for occtl (protocol.md §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub sid: SessionId,
    pub username: String,
    pub groupname: String,
    /// Unix times; `expires` is `None` while a tunnel uses the session.
    pub created: u64,
    pub expires: Option<u64>,
    /// Tunnels using it now.
    pub in_use: u32,
    /// A CONNECT happened with this cookie at least once.
    pub opened: bool,
}

/// A valid cookie: who the session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    pub sid: SessionId,
    pub username: String,
    /// Empty when the user has no group.
    pub groupname: String,
    /// Milliseconds since the user logged in (the session was created): `session-timeout`
    /// counts from the login, not from this CONNECT (ocserv bug #599). An age, because the
    /// processes share no clock origin.
    pub age_ms: u64,
    /// The user's group file and own file, as read for this CONNECT (laid over the global
    /// policy by main).
    pub overrides: crate::policy::Overrides,
    /// The `[vhost:NAME]` the session was created in (`None`: the default section): main uses
    /// that section's policy and address pool.
    pub vhost: Option<String>,
    /// What the client said about itself at login (checked by sec-mod; no certificate chain):
    /// for occtl, scripts and logs. Boxed: it would make every message of this enum large.
    pub facts: Box<ClientFacts>,
    /// The certificate's subject name the login used, if any (occtl, scripts).
    pub cert_subject: Option<String>,
    /// `cluster-store` (ours): this CONNECT spent its time with the store
    /// ([`crate::cluster::REQUEST_BUDGET`]) in sec-mod already (logged there): main finishes it
    /// node-locally without asking the store again.
    #[serde(default)]
    pub cluster_spent: bool,
    /// `cluster-store`: how long sec-mod's part of this CONNECT waited for the store (ms);
    /// main's own round trips get what is left of the budget.
    #[serde(default)]
    pub cluster_store_used_ms: u32,
}

/// A tunnel that came up, for accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelFacts {
    /// The client's address as main accepted it.
    pub peer: Option<SocketAddr>,
    pub vpn_ipv4: Option<std::net::Ipv4Addr>,
    pub vpn_ipv6: Option<std::net::Ipv6Addr>,
    /// The tun device's name.
    pub device: String,
}

/// How a tunnel ended, for accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEnd {
    /// Bytes from and to the client over the tunnel's life.
    pub rx: u64,
    pub tx: u64,
    /// Seconds the tunnel was up.
    pub duration_secs: u64,
    pub cause: EndCause,
}

/// Why a tunnel ended, finer than [`CloseReason`] (RADIUS `Acct-Terminate-Cause`, session
/// records, log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndCause {
    /// The client disconnected (CSTP DISCONNECT).
    UserRequest,
    /// The connection broke: TLS or socket error, DPD timeout, client BYE, worker exit.
    LostCarrier,
    IdleTimeout,
    SessionTimeout,
    /// occtl disconnect.
    AdminReset,
    /// A new connection with the same cookie took over.
    Takeover,
    /// The worker broke a rule (main killed it).
    Violation,
    /// sec-mod ended it ([`FromSecMod::EndSession`]: quota, RADIUS).
    Policy,
    /// The server is shutting down.
    ServerShutdown,
}

impl std::fmt::Display for EndCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UserRequest => "user disconnected",
            Self::LostCarrier => "connection lost",
            Self::IdleTimeout => "idle timeout",
            Self::SessionTimeout => "session timeout",
            Self::AdminReset => "disconnected by the administrator",
            Self::Takeover => "taken over by a new connection",
            Self::Violation => "worker violation",
            Self::Policy => "ended by policy",
            Self::ServerShutdown => "server shutdown",
        })
    }
}

/// Why a cookie was refused on CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRefusal {
    /// No session has this cookie (never issued, expired, or logged out).
    UnknownCookie,
    /// The user's or group's file (or a default one) is unreadable or has a bad line, or the
    /// user or group name cannot name a file: refused, since the file may restrict the user.
    /// sec-mod logged which file and line.
    PolicyFile,
    /// The user used up their `max-session-time-per-day` or `traffic-quota` (sec-mod logged
    /// which), or it could not be checked.
    Quota,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::roundtrip;

    #[test]
    fn messages_roundtrip() {
        roundtrip(&ToSecMod::Start(SecModConfig {
            server_key: "/k.pem".into(),
            server_cert: "/c.pem".into(),
            auth: AuthPlan {
                required: vec![crate::config::AuthMethod::Plain {
                    passwd: Some("/etc/ocserv/ocpasswd".into()),
                    otp: None,
                }],
                ..Default::default()
            },
            stats_report_secs: 60,
            cookie_timeout_secs: 300,
            persistent_cookies: false,
            auth_timeout_secs: 240,
            check_only: false,
            ban_points_wrong_password: 10,
            deny_roaming: true,
            policy_files: crate::policy::file::Locations {
                per_user_dir: Some("/etc/ocserv/users".into()),
                ..Default::default()
            },
            vhosts: vec![SecModVhost {
                name: "vpn.example.com".into(),
                server_key: "/k2.pem".into(),
                server_cert: "/c2.pem".into(),
                auth: AuthPlan {
                    required: vec![crate::config::AuthMethod::Certificate],
                    ..Default::default()
                },
                deny_roaming: false,
                policy_files: Default::default(),
                key_pin: KeyPin::default(),
            }],
            auto_select_group: true,
            session_db: Some("/var/lib/rocserv/sessions.db".into()),
            key_pin: KeyPin {
                pin: Some(crate::config::Secret("1234".into())),
                file: None,
            },
            cluster: Some(super::super::cluster::ClusterSettings {
                store: crate::cluster::StoreUrl::parse("redis://10.0.0.5").unwrap(),
                node: "vpn-a".into(),
                auth_file: None,
                ca_cert: None,
            }),
        }));
        roundtrip(&FromSecMod::Ready {
            key: KeyKind::EcdsaP256,
            vhost_keys: Vec::new(),
            groups: vec!["staff".into()],
        });
        roundtrip(&FromSecMod::BanPoints {
            peer: "2001:db8::1".parse().unwrap(),
            points: 10,
        });
        roundtrip(&ToSecMod::NewWorker {
            worker: WorkerId(3),
            peer: "10.0.0.2:555".parse().unwrap(),
        });
        roundtrip(&FromSecMod::SessionOpened {
            worker: WorkerId(3),
            result: Ok(SessionGrant {
                sid: SessionId(9),
                username: "u".into(),
                groupname: String::new(),
                age_ms: 6_000,
                overrides: Default::default(),
                vhost: Some("vpn.example.com".into()),
                facts: Box::new(ClientFacts {
                    device_id: Some("d".into()),
                    ..Default::default()
                }),
                cert_subject: Some("CN=u".into()),
                cluster_spent: true,
                cluster_store_used_ms: 1_499,
            }),
        });
        roundtrip(&ToSecMod::SessionStarted {
            sid: SessionId(9),
            worker: WorkerId(3),
            tunnel: TunnelFacts {
                peer: Some("10.0.0.2:555".parse().unwrap()),
                vpn_ipv4: Some("192.168.1.2".parse().unwrap()),
                vpn_ipv6: None,
                device: "vpns0".into(),
            },
        });
        roundtrip(&ToSecMod::SessionStats {
            sid: SessionId(9),
            worker: WorkerId(3),
            rx: 1,
            tx: 2,
        });
        roundtrip(&ToSecMod::SessionClose {
            sid: SessionId(9),
            reason: CloseReason::ServerTerminated,
            end: Some((
                WorkerId(3),
                TunnelEnd {
                    rx: 1,
                    tx: 2,
                    duration_secs: 3,
                    cause: EndCause::Policy,
                },
            )),
        });
        roundtrip(&ToSecMod::History {
            user: Some("alice".into()),
            limit: 100,
        });
        roundtrip(&FromSecMod::History {
            records: vec![SessionRecord {
                session: "0123456789abcdef".into(),
                username: "alice".into(),
                groupname: "staff".into(),
                vhost: None,
                device_id: Some("linux-64".into()),
                macs: vec!["00:11:22:33:44:55".into()],
                hostname: None,
                user_agent: "OpenConnect".into(),
                remote_ip: Some("10.0.0.2".parse().unwrap()),
                vpn_ipv4: Some("192.168.1.2".parse().unwrap()),
                vpn_ipv6: None,
                started: 1,
                ended: Some(2),
                duration_secs: 1,
                rx: 3,
                tx: 4,
                end_reason: Some("user disconnected".into()),
            }],
            more: false,
            error: None,
        });
        roundtrip(&FromSecMod::EndSession {
            sid: SessionId(9),
            why: "quota".into(),
        });
        roundtrip(&FromSecMod::SessionOpened {
            worker: WorkerId(3),
            result: Err(SessionRefusal::UnknownCookie),
        });
        roundtrip(&FromSecMod::SessionOpened {
            worker: WorkerId(3),
            result: Err(SessionRefusal::PolicyFile),
        });
        roundtrip(&FromSecMod::RunAuthHook(Box::new(AuthHookRun {
            id: 7,
            path: "/bin/check".into(),
            username: "u".into(),
            password: "p".into(),
            group: None,
            peer: Some("10.0.0.2:555".parse().unwrap()),
            vhost: None,
            facts: ClientFacts::default(),
            cert_subject: None,
        })));
        for outcome in [
            AuthHookOutcome::Exited {
                code: 2,
                control: b"1\n".to_vec(),
            },
            AuthHookOutcome::Killed { signal: 9 },
            AuthHookOutcome::TimedOut { after_secs: 3 },
            AuthHookOutcome::Failed { why: "x".into() },
        ] {
            roundtrip(&ToSecMod::AuthHookDone { id: 7, outcome });
        }
    }
}
