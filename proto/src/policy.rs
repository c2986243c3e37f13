//! A session's policy: what the global (or vhost) section of ocserv.conf, then the user's
//! group file, then the user's own file (`config-per-group`, `config-per-user`) decide for one
//! login. The global values live in [`crate::config::Config::policy`]; the per-user and
//! per-group files are read by sec-mod at each CONNECT and merged over them, and main hands the
//! result to the worker in [`crate::ipc::main_worker::TunnelGrant::policy`].
//!
//! Who enforces what (the worker is assumed compromised, doc/security.md): the worker only
//! *announces* the policy to the client (headers) and paces its own sending; addresses, routes,
//! firewall rules, bandwidth backstops and timeouts are applied by main or the kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::config::{IpNet, Route};

pub mod device;
pub mod file;
pub mod ports;
pub mod quota;

pub use file::{Overrides, PolicyFile};
pub use ports::PortRules;

/// The effective policy of one session. Field names follow ocserv's option names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    // --- what the client is told ---
    /// `dns` (`ipv4-dns`, `ipv6-dns`).
    pub dns: Vec<IpAddr>,
    /// `nbns`.
    pub nbns: Vec<IpAddr>,
    /// `split-dns`: domains resolved with the VPN's DNS servers.
    pub split_dns: Vec<String>,
    pub tunnel_all_dns: bool,
    /// `route` (none, or `default` among them, = tunnel everything) and `no-route`.
    pub routes: Vec<Route>,
    pub no_routes: Vec<Route>,
    /// `iroute`: networks behind this client, routed to it on the server (per-user only).
    pub iroutes: Vec<IpNet>,
    /// `keepalive`, `dpd`, `mobile-dpd` in seconds (`mobile-dpd` 0 = `dpd`).
    pub keepalive: u32,
    pub dpd: u32,
    pub mobile_dpd: u32,
    /// `idle-timeout`, `mobile-idle-timeout` (already `idle-timeout` when not configured),
    /// `session-timeout`; `None` = unlimited.
    pub idle_timeout: Option<u32>,
    pub mobile_idle_timeout: Option<u32>,
    pub session_timeout: Option<u32>,
    /// `stats-report-time`: seconds between a worker's traffic reports; 0 = every 60 s.
    pub stats_report_time: u32,
    /// `mtu`: the link MTU to assume; `None` = 1500 (the tun default).
    pub mtu: Option<u16>,
    /// `hostname` forced on the user (per-user file).
    pub hostname: Option<String>,

    // --- addresses ---
    /// `ipv4-network` + `ipv4-netmask` (or the network in prefix form).
    pub ipv4_network: Option<IpNet>,
    /// `ipv6-network` + `ipv6-prefix`, and `ipv6-subnet-prefix` (the size of the network each
    /// client gets; `None` = 128, one address).
    pub ipv6_network: Option<IpNet>,
    pub ipv6_subnet_prefix: Option<u8>,
    /// `explicit-ipv4` / `explicit-ipv6`: a fixed address (per-user file).
    pub explicit_ipv4: Option<Ipv4Addr>,
    pub explicit_ipv6: Option<Ipv6Addr>,

    // --- limits and access (enforced outside the worker) ---
    /// `rx-data-per-sec` / `tx-data-per-sec`, bytes per second from / to the client; 0 = none.
    pub rx_data_per_sec: u64,
    pub tx_data_per_sec: u64,
    /// `restrict-user-to-routes`: the client may reach only its routes.
    pub restrict_user_to_routes: bool,
    /// `restrict-user-to-ports`; `None` = unrestricted.
    pub restrict_user_to_ports: Option<PortRules>,
    /// `net-priority`.
    pub net_priority: Option<NetPriority>,
    /// `deny-roaming`: the cookie works only from the address that logged in.
    pub deny_roaming: bool,
    /// `no-udp`: no DTLS for this session.
    pub no_udp: bool,
    /// `max-same-clients`: most sessions of this user at once; 0 = no limit.
    pub max_same_clients: u32,
    /// `cgroup` (removed in ocserv 1.5): accepted in per-user files, applied nowhere.
    pub cgroup: Option<String>,
    /// `append-routes` (main file only): the routes and no-routes of per-user and per-group
    /// files are followed by the global ones instead of replacing them.
    pub append_routes: bool,
    /// `client-bypass-protocol`: `X-CSTP-Client-Bypass-Protocol`, telling AnyConnect to send the
    /// traffic of an IP version without an address outside the tunnel (instead of dropping it).
    pub client_bypass_protocol: bool,
}

/// `net-priority`: a socket priority (`0`-`6`, SO_PRIORITY) or a TOS byte (`0x..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetPriority {
    Priority(u8),
    Tos(u8),
}

impl Default for Policy {
    /// ocserv's built-in defaults.
    fn default() -> Self {
        Self {
            dns: Vec::new(),
            nbns: Vec::new(),
            split_dns: Vec::new(),
            tunnel_all_dns: false,
            routes: Vec::new(),
            no_routes: Vec::new(),
            iroutes: Vec::new(),
            keepalive: 32400,
            dpd: 90,
            mobile_dpd: 1800,
            idle_timeout: None,
            mobile_idle_timeout: None,
            session_timeout: None,
            stats_report_time: 0,
            mtu: None,
            hostname: None,
            ipv4_network: None,
            ipv6_network: None,
            ipv6_subnet_prefix: None,
            explicit_ipv4: None,
            explicit_ipv6: None,
            rx_data_per_sec: 0,
            tx_data_per_sec: 0,
            restrict_user_to_routes: false,
            restrict_user_to_ports: None,
            net_priority: None,
            deny_roaming: false,
            no_udp: false,
            max_same_clients: 0,
            cgroup: None,
            append_routes: false,
            client_bypass_protocol: false,
        }
    }
}

impl Policy {
    /// The DPD interval this client is told (and the worker enforces), in seconds; 0 = off.
    pub fn dpd_secs(&self, mobile: bool) -> u32 {
        if mobile && self.mobile_dpd > 0 {
            self.mobile_dpd
        } else {
            self.dpd
        }
    }

    /// The idle timeout of this client (`mobile-idle-timeout` for mobile clients).
    pub fn idle_timeout_for(&self, mobile: bool) -> Option<u32> {
        if mobile {
            self.mobile_idle_timeout
        } else {
            self.idle_timeout
        }
    }
}
