//! ocserv.conf, parsed into a typed [`Config`] plus diagnostics that name file, line and option.
//!
//! Sans-IO: the caller reads the file and passes its text and a name for messages.
//! (Skeleton: the parser is being written; the types below are the contract other crates use.)

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Result of parsing one configuration file.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Best-effort configuration (defaults where options were missing or wrong).
    pub config: Config,
    /// Everything worth telling the administrator, errors first-class.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when at least one diagnostic is an error: the server must not start.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The server refuses to start (unknown option, bad value, missing mandatory option).
    Error,
    /// Starts, but the administrator should know (option accepted but not supported yet,
    /// a GnuTLS priority keyword rustls cannot express).
    Warning,
}

/// One finding, attached to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// File name as given by the caller.
    pub origin: String,
    /// 1-based line; 0 when the finding is about the file as a whole.
    pub line: usize,
    /// The option concerned, if any.
    pub option: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: ", self.origin, self.line)?;
        if let Some(option) = &self.option {
            write!(f, "{option}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Parse the text of an ocserv.conf. `origin` names the file in diagnostics.
pub fn parse(source: &str, origin: &str) -> Parsed {
    let _ = source;
    Parsed {
        config: Config::default(),
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            origin: origin.to_owned(),
            line: 0,
            option: None,
            message: "configuration parser not implemented yet".to_owned(),
        }],
    }
}

/// An authentication method from `auth = "..."` (ocserv syntax `name[opt=value,...]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// `plain[passwd=FILE]` (an `otp=` option is reported as not supported yet).
    Plain { passwd: PathBuf },
    /// `pam` or `pam[gid-min=N]`.
    Pam { gid_min: u32 },
}

/// An IPv4 or IPv6 network in prefix form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A `route` / `no-route` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Route {
    /// `default`: tunnel everything.
    Default,
    Net(IpNet),
}

/// `rekey-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RekeyMethod {
    Ssl,
    NewTunnel,
}

/// What `tls-priorities` maps to in rustls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    pub tls12: bool,
    pub tls13: bool,
}

/// The typed configuration (the default vhost; `[vhost:NAME]` sections in [`Config::vhosts`]).
/// Defaults are ocserv's built-in defaults, not its sample file's.
#[derive(Debug, Clone)]
pub struct Config {
    pub auth: Option<AuthMethod>,
    pub listen_host: Option<IpAddr>,
    pub tcp_port: u16,
    pub udp_port: Option<u16>,
    pub run_as_user: Option<String>,
    pub run_as_group: Option<String>,
    pub socket_file: Option<PathBuf>,
    pub occtl_socket_file: Option<PathBuf>,
    pub use_occtl: bool,
    pub pid_file: Option<PathBuf>,
    pub server_cert: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    pub isolate_workers: bool,
    pub max_clients: u32,
    pub max_same_clients: u32,
    pub keepalive: u32,
    pub dpd: u32,
    pub mobile_dpd: u32,
    pub tls: TlsPolicy,
    pub auth_timeout: u32,
    pub idle_timeout: Option<u32>,
    pub session_timeout: Option<u32>,
    pub cookie_timeout: u32,
    pub persistent_cookies: bool,
    pub rekey_time: u32,
    pub rekey_method: RekeyMethod,
    pub log_level: u8,
    /// `device`: tun devices are named this plus a number (`vpns0`, `vpns1`, ...).
    pub device: String,
    pub predictable_ips: bool,
    pub default_domain: Option<String>,
    /// `ipv4-network` + `ipv4-netmask` (or the network in prefix form).
    pub ipv4_network: Option<IpNet>,
    pub dns: Vec<IpAddr>,
    pub routes: Vec<Route>,
    pub no_routes: Vec<Route>,
    pub tunnel_all_dns: bool,
    /// `mtu`: the link MTU to assume; `None` = 1500 (the tun default).
    pub mtu: Option<u16>,
    pub banner: Option<String>,
    pub pre_login_banner: Option<String>,
    pub cisco_client_compat: bool,
    pub vhosts: Vec<VHost>,
}

/// A `[vhost:NAME]` section: its name and its own configuration.
#[derive(Debug, Clone)]
pub struct VHost {
    pub name: String,
    pub line: usize,
    pub config: Box<Config>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auth: None,
            listen_host: None,
            tcp_port: 443,
            udp_port: None,
            run_as_user: None,
            run_as_group: None,
            socket_file: None,
            occtl_socket_file: None,
            use_occtl: false,
            pid_file: None,
            server_cert: None,
            server_key: None,
            ca_cert: None,
            isolate_workers: false,
            max_clients: 0,
            max_same_clients: 0,
            keepalive: 32400,
            dpd: 60,
            mobile_dpd: 1800,
            tls: TlsPolicy {
                tls12: true,
                tls13: true,
            },
            auth_timeout: 240,
            idle_timeout: None,
            session_timeout: None,
            cookie_timeout: 300,
            persistent_cookies: false,
            rekey_time: 172800,
            rekey_method: RekeyMethod::Ssl,
            log_level: 1,
            device: "vpns".to_owned(),
            predictable_ips: true,
            default_domain: None,
            ipv4_network: None,
            dns: Vec::new(),
            routes: Vec::new(),
            no_routes: Vec::new(),
            tunnel_all_dns: false,
            mtu: None,
            banner: None,
            pre_login_banner: None,
            cisco_client_compat: false,
            vhosts: Vec::new(),
        }
    }
}

impl IpNet {
    /// The IPv4 netmask of a v4 network (`None` for IPv6).
    pub fn ipv4_netmask(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(_) => {
                let bits = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                    .unwrap_or(0);
                Some(Ipv4Addr::from(bits))
            }
            IpAddr::V6(_) => None,
        }
    }
}
