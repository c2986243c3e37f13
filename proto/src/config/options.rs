//! The table of every option ocserv 1.5 knows, with what rocserv does with each.
//!
//! Sources for the list: ocserv `doc/sample.config`, the option chain in ocserv
//! `src/config.c` (`cfg_ini_handler`) and the per-user options of `src/sup-config/file.c`.
//! The descriptions are ours. `doc/config.md` is checked against this table by a test.

/// Where an option may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only in the global section: ocserv refuses it inside `[vhost:...]`.
    Global,
    /// Global section or a `[vhost:...]` section (a vhost inherits the global value).
    Vhost,
    /// Belongs in per-user / per-group files; ocserv skips it in the main file.
    PerUser,
}

/// What rocserv does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Parsed into the typed [`super::Config`] and honoured.
    Supported,
    /// Accepted and ignored, with a "not supported yet" warning unless the value is one of
    /// `quiet` (values that ask for exactly what rocserv does anyway).
    NotYet { quiet: &'static [&'static str] },
    /// Ignoring it would weaken security or break every client, so any value but one of `safe`
    /// is an error.
    Refused { safe: &'static [&'static str] },
    /// Another name of option `of`; `old` when ocserv considers the name outdated.
    Alias { of: &'static str, old: bool },
    /// Meaningless in rocserv's design; accepted without a word.
    NotApplicable,
    /// Dropped by ocserv; `error` when ocserv refuses to start on it.
    Removed { error: bool },
}

/// One known option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Name as written in ocserv.conf.
    pub name: &'static str,
    /// Where it may appear.
    pub scope: Scope,
    /// What rocserv does with it.
    pub status: Status,
    /// May it be given several times, each adding a value (`route`, `dns`, ...)?
    pub repeatable: bool,
    /// What the option does in ocserv, in a few words.
    pub meaning: &'static str,
    /// How rocserv differs; empty when it behaves as ocserv.
    pub difference: &'static str,
}

impl Status {
    /// Short label used in diagnostics and `doc/config.md`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Supported => "supported",
            Self::NotYet { .. } => "not yet",
            Self::Refused { .. } => "refused",
            Self::Alias { .. } => "alias",
            Self::NotApplicable => "not applicable",
            Self::Removed { .. } => "removed",
        }
    }
}

/// Every option, sorted by name.
pub fn all() -> &'static [OptionSpec] {
    OPTIONS
}

/// The entry for `name` (exact, case-sensitive, as ocserv compares).
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The known option nearest to a misspelt `name`, if one is near enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    // No option name is this long; skip the quadratic comparison for garbage lines.
    if name.len() > 64 {
        return None;
    }
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    // A third of the name may differ, and at least two edits are always allowed.
    let allowed = (name.chars().count() / 3).max(2);
    let mut best: Option<(usize, &'static str)> = None;
    for option in OPTIONS {
        // The distance is at least the difference in length: skip hopeless names cheaply
        // (this runs for every unknown line; the config fuzz target made it a hot spot).
        if option.name.len().abs_diff(wanted.len()) > allowed {
            continue;
        }
        let d = distance(&wanted, &option.name.replace('_', "-"));
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, option.name));
        }
    }
    let (d, found) = best?;
    (d <= allowed).then_some(found)
}

/// Levenshtein distance (characters), without indexing.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(previous.len());
        current.push(i.saturating_add(1));
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous
                .get(j)
                .map_or(usize::MAX, |v| v.saturating_add(usize::from(ca != *cb)));
            let delete = previous
                .get(j.saturating_add(1))
                .map_or(usize::MAX, |v| v.saturating_add(1));
            let insert = current.get(j).map_or(usize::MAX, |v| v.saturating_add(1));
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or_default()
}

pub(crate) const FALSE: &[&str] = &["false", "no"];

/// The difference of the four options that locate per-user and per-group files.
const PER_FILE: &str = "Read by sec-mod at each CONNECT (an edit applies to the next login). \
    An unknown option, a section or a bad value in such a file refuses that login, with a log \
    line naming file and line (ocserv skips unknown options); so do an unreadable file and a \
    user or group name containing `/` or NUL or equal to `.` or `..`. See \
    \"Per-user and per-group files\" below.";
const NONE: &[&str] = &[];

const fn yes(name: &'static str, scope: Scope, meaning: &'static str) -> OptionSpec {
    spec(name, scope, Status::Supported, meaning, "")
}

const fn yes_but(
    name: &'static str,
    scope: Scope,
    meaning: &'static str,
    difference: &'static str,
) -> OptionSpec {
    spec(name, scope, Status::Supported, meaning, difference)
}

const fn spec(
    name: &'static str,
    scope: Scope,
    status: Status,
    meaning: &'static str,
    difference: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        scope,
        status,
        repeatable: false,
        meaning,
        difference,
    }
}

const fn many(mut option: OptionSpec) -> OptionSpec {
    option.repeatable = true;
    option
}

const fn later(name: &'static str, scope: Scope, meaning: &'static str) -> OptionSpec {
    spec(name, scope, Status::NotYet { quiet: NONE }, meaning, "")
}

const fn later_unless(
    name: &'static str,
    scope: Scope,
    quiet: &'static [&'static str],
    meaning: &'static str,
) -> OptionSpec {
    spec(name, scope, Status::NotYet { quiet }, meaning, "")
}

#[allow(
    dead_code,
    reason = "no option is refused today; kept for the next one"
)]
const fn refused(
    name: &'static str,
    scope: Scope,
    safe: &'static [&'static str],
    meaning: &'static str,
    difference: &'static str,
) -> OptionSpec {
    spec(name, scope, Status::Refused { safe }, meaning, difference)
}

const fn alias(name: &'static str, of: &'static str, old: bool, scope: Scope) -> OptionSpec {
    spec(name, scope, Status::Alias { of, old }, "", "")
}

use Scope::{Global as G, PerUser as U, Vhost as V};

static OPTIONS: &[OptionSpec] = &[
    yes_but("acct", V, "Accounting method (radius, or a pam account check) run beside authentication.",
        "`radius[config=FILE,nas-identifier=NAME]` only (radcli's file format, RADIUS over UDP); `pam` is an error, since skipping an account check could let in users it would reject."),
    many(yes_but("allowed-device-id", U, "Not an ocserv option.",
        "rocserv only, per-user/per-group files: a device id (the `unique-id` AnyConnect reports) the user may log in from, one per line; a login from another device is refused by sec-mod (doc/security/device.md). In the main file: a warning, ignored.")),
    many(yes_but("allowed-mac", U, "Not an ocserv option.",
        "rocserv only, per-user/per-group files: a MAC address the client must report (`<mac-address-list>`), one per line; a login reporting none of them is refused by sec-mod (doc/security/device.md). In the main file: a warning, ignored.")),
    spec("always-require-cert", V, Status::Supported, "Old switch; `false` meant what `cisco-client-compat = true` means now.",
        "Mapped onto `cisco-client-compat`, with a warning about the old name."),
    yes_but("append-routes", V, "Add per-user/group routes to the global ones instead of replacing them.",
        "Also adds the global `no-route`s after the files' ones (as ocserv); a route the files already list is not repeated."),
    many(yes_but("auth", V, "Authentication method: `plain[passwd=FILE,otp=FILE]`, `pam[gid-min=N,service=NAME]`, `certificate`, `radius[...]`, `gssapi[...]`, `oidc[...]`; several lines must all succeed.", "`plain` (`passwd=FILE`, `otp=FILE` or both: the one-time password is asked as a second form after the password; oath-toolkit users file, HOTP and TOTP; windows TOTP +/-1 step and HOTP 10 ahead instead of liboath's 20; a replayed code is refused; the file is rewritten as liboath does, mode and owner kept; a malformed line is an error; see doc/security/otp.md); `pam` (service `ocserv`, or `service=NAME`, a plain file name in /etc/pam.d; as in ocserv the user's group is the account's primary Unix group, or a requested one it is in, whatever its gid; `gid-min` limits only the `auto-select-group` list, as in ocserv); `radius[config=FILE,groupconfig=BOOL,nas-identifier=NAME]` (radcli's file format over UDP; see the RADIUS section); `certificate` (with `ca-cert`, `crl`, `cert-user-oid`, `cert-group-oid`; see doc/security/cert.md). Ours: `script[path=FILE,timeout=SECS,user=NAME]`, an external hook that decides now or later (\"The `script` authentication hook\"). Several lines: `certificate` plus one password method, run in order, and the certificate's user must be the account that gives the password (ocserv 1.4.1's fix of #694); two password methods are an error. `gssapi` and `oidc` are errors, since the server could not log users in as configured.")),
    yes("auth-timeout", G, "Seconds a client may take to log in."),
    yes_but("auto-select-group", V, "Offer every group the auth backend knows as a group choice.", "The list replaces the `select-group` lines (as in ocserv) and is read by sec-mod when it starts (`plain`: every group of the password file; `pam`: the system's groups with a gid of at least `gid-min`); a restart picks up new groups."),
    yes("ban-points-connection", G, "Ban points charged for each new connection."),
    yes_but("ban-points-kkdcp", G, "Ban points charged for each KKDCP request.", "Parsed only: rocserv has no KKDCP."),
    yes("ban-points-wrong-password", G, "Ban points charged for each wrong password."),
    yes("ban-reset-time", G, "Seconds after which a client's ban points are forgotten."),
    yes("ban-time", G, "Seconds an address stays banned after passing `max-ban-score`."),
    yes("banner", V, "Message shown to the user after login (at most 256 bytes)."),
    yes_but("ca-cert", V, "CA file used to check client certificates.", "Required with `certificate`; read by main (the worker gets its public DER to name the CA in the TLS certificate request) and by sec-mod, which checks every chain itself."),
    yes_but("camouflage", V, "Hide the VPN behind a secret URL; everyone else sees a plain web server.",
        "`camouflage_secret` is required (ocserv starts without one and refuses every client). Every method and path without the secret gets the same `401`/`404`, CONNECT included unless its cookie is accepted, with no VPN header (no `X-Transcend-Version`, no `included-http-headers`). A request carrying a cookie but not the secret is not let through (ocserv lets any well-formed cookie through, so a made-up one unmasks it): a Cisco client fetching its profile or manifest on a new connection after login gets the camouflage answer. See doc/security/camouflage.md."),
    yes_but("camouflage_realm", V, "HTTP realm shown by the camouflaged server (`401` with `WWW-Authenticate: Basic`); unset: `404`.",
        "No `\"`, `\\` or control character, at most 256 bytes; empty means unset."),
    yes_but("camouflage_secret", V, "The secret URL query that passes the camouflage (`https://host/?SECRET`).",
        "Compared in constant time, whole query only (as ocserv: `/?SECRET&x` does not pass); 1 to 256 characters a URL query carries as they are (RFC 3986 §3.4); a warning below 16."),
    yes_but("cert-group-oid", V, "Certificate DN field holding the user's group (certificate auth).", "A dotted OID (e.g. 2.5.4.11 OU) or `SAN(rfc822name)`; a requested group must be this one."),
    yes_but("cert-user-oid", V, "Certificate DN field holding the user name (certificate auth).", "A dotted OID (0.9.2342.19200300.100.1.1 UID, 2.5.4.3 CN) or `SAN(rfc822name)`; required with `certificate`, as in ocserv."),
    spec("cgroup", G, Status::Removed { error: false }, "Put workers into a cgroup (cgroups v1).", "removed in ocserv 1.5; use systemd resource controls"),
    spec("chroot-dir", G, Status::NotYet { quiet: NONE }, "Directory the workers are chrooted into.",
        "Workers are confined by seccomp and an unprivileged uid, not by chroot."),
    yes("cisco-client-compat", V, "Accept legacy AnyConnect clients (legacy DTLS, no client certificate per TLS connection); when no tls-priorities is set it also turns TLS 1.3 off."),
    later_unless("cisco-svc-client-compat", V, FALSE, "Settings for Cisco SVC IP phones."),
    yes("client-bypass-protocol", V, "Tell the client to bypass the VPN for an IP version without an address pool."),
    yes_but("cluster-node", G, "Not an ocserv option.", "rocserv only: this node's name in the cluster store, log lines and occtl (`Node`); 1-64 of `A-Z a-z 0-9 . _ -`; default the host name. Only with `cluster-store`. See doc/cluster.md."),
    yes_but("cluster-route-add-cmd", G, "Not an ocserv option.", "rocserv only: a command main runs (as `route-add-cmd`, with `%{R}` the VPN address and `%{D}` the device) when this node starts serving a VPN address, so that a routing daemon or the administrator's script can move that /32 to this node. Only with `cluster-store`. See doc/cluster.md."),
    yes_but("cluster-route-del-cmd", G, "Not an ocserv option.", "rocserv only: the counterpart of `cluster-route-add-cmd`, run when this node stops serving the address. See doc/cluster.md."),
    yes_but("cluster-store", G, "Not an ocserv option.", "rocserv only: `redis://HOST[:PORT][/DB]` or `rediss://...` (TLS): a Valkey or Redis server the nodes of one service share sessions, cookies, bans and address leases through. Credentials are refused in the URL (use `cluster-store-auth-file`). Without it nothing is shared and no store is contacted. Read at start (a reload keeps the running value). See doc/cluster.md."),
    yes_but("cluster-store-auth-file", G, "Not an ocserv option.", "rocserv only: a file whose first line is `PASSWORD` (Redis `AUTH`) or `USER:PASSWORD` (an ACL user); read by sec-mod at start, never passed on a command line. See doc/cluster.md."),
    yes_but("cluster-store-ca-cert", G, "Not an ocserv option.", "rocserv only: the CA file (PEM) a `rediss://` store's certificate is checked against; default the system's roots. See doc/cluster.md."),
    yes("compression", V, "Negotiate LZS / LZ4 compression with clients (default off)."),
    many(yes_but("compression-algo-priority", G, "Priority of one compression algorithm, `NAME:PRIORITY` (defaults `oc-lz4:90`, `lzs:80`; higher wins).",
        "Also takes a colon list of names in order of preference (`lzs:oc-lz4`), and `lz4` for `oc-lz4`; a bad value is an error (ocserv warns).")),
    yes_but("config-per-group", V, "Directory of per-group configuration files.", PER_FILE),
    yes_but("config-per-user", V, "Directory of per-user configuration files.", PER_FILE),
    yes_but("connect-script", G, "Program run when a client connects; a non-zero exit refuses the client.",
        "Absolute path; killed (and the client refused) after 30 s."),
    yes("cookie-timeout", V, "Seconds a session cookie stays usable after the client disconnects."),
    yes_but("crl", V, "Revocation list for client certificates.", "PEM or DER; sec-mod re-reads it at the next login when its modification time or size changed (no reload needed); a CRL that cannot be read refuses certificate logins."),
    many(yes_but("custom-header", V, "Extra HTTP header sent to the client before the tunnel starts (`%{U}`, `%{G}` expanded).",
        "Checked at start: `Name: value` with an HTTP token as name (not `Content-Length` / `Transfer-Encoding`) and no control character in the value, else an error; control characters in the user or group name are dropped when `%{U}` / `%{G}` are expanded, so no header can be injected.")),
    spec("debug-no-secmod-stats", G, Status::NotApplicable, "Debug switch: sec-mod stops logging its statistics.", "No such statistics in rocserv."),
    yes("default-domain", V, "DNS search domain(s) given to clients, space separated."),
    yes_but("default-group-config", V, "Per-group file used when no group file matches.", PER_FILE),
    yes("default-select-group", V, "Name of the group entry meaning 'the user's default group'."),
    yes_but("default-user-config", V, "Per-user file used when no user file matches.", PER_FILE),
    yes("deny-roaming", V, "Tie a cookie to the client address it was issued to."),
    yes_but("device", G, "Prefix of the tun device names (`vpns` gives vpns0, vpns1, ...).", "At most 10 characters of `[A-Za-z0-9_.-]`."),
    spec("dh-params", V, Status::NotApplicable, "Diffie-Hellman parameters for DHE suites in old GnuTLS.", "rustls has no DHE suites."),
    yes_but("disconnect-script", G, "Program run when a client disconnects.", "Absolute path; killed after 30 s."),
    many(yes_but("dns", V, "DNS server given to clients; repeat for more.", "`local` is refused (as in ocserv).")),
    yes("dpd", V, "Dead peer detection interval in seconds."),
    yes("dtls-legacy", V, "Offer the pre-standard DTLS negotiation of old AnyConnect."),
    yes("dtls-psk", G, "Offer DTLS keyed from the TLS session (openconnect 7.08+)."),
    many(yes_but("dynamic-split-exclude-domains", V, "Not an ocserv option.",
        "rocserv only: domains (one per line or comma separated, `*.` allowed) whose traffic a Cisco Secure Client sends outside the tunnel (dynamic split tunnelling), announced in `X-CSTP-Post-Auth-XML` as the ASA's `dynamic-split-exclude-domains` custom attribute; openconnect ignores it.")),
    many(yes_but("dynamic-split-include-domains", V, "Not an ocserv option.",
        "rocserv only: domains whose traffic a Cisco Secure Client sends through the tunnel although the routes exclude it (`dynamic-split-include-domains` in `X-CSTP-Post-Auth-XML`); openconnect ignores it.")),
    many(yes_but("enable-auth", V, "Alternative method that on its own suffices to log in (e.g. `certificate`).", "Only `certificate` (a client with a valid certificate logs in without the form; others get the `auth` methods); gssapi and oidc are not available.")),
    yes_but("explicit-ipv4", U, "Fixed IPv4 address for a user (per-user file).", "A second login while the address is in use is refused (logged with user and address). In the main file: a warning, ignored."),
    yes_but("explicit-ipv6", U, "Fixed IPv6 address for a user (per-user file).", "A second login while the address is in use is refused (logged with user and address). In the main file: a warning, ignored."),
    yes_but("expose-iroutes", V, "Announce every client's iroutes to the other clients.", "The iroutes of every per-user file (start, reload) and of the connected clients; not added to a client that tunnels everything."),
    yes_but("handshake-timeout", G, "Not an ocserv option.", "rocserv only (default 15, 1 to 3600): seconds a new connection has for the TLS handshake and its first HTTP request, and each later request for its head and body once its first byte arrived (slow senders are cut off). Time between requests stays bounded by `auth-timeout`."),
    yes_but("host-update-script", G, "Program run when a client reports its host name.", "Absolute path; runs when the tunnel is granted to a client that sent `X-CSTP-Hostname` (ocserv: when DTLS comes up); killed after 30 s."),
    yes_but("hostname", U, "Host name forced on a user (per-user file), in place of the one the client sends.",
        "Used for the scripts' `HOSTNAME`, `host-update-script` and occtl, as ocserv; in the main file it is ignored with a warning."),
    yes("idle-timeout", V, "Seconds without traffic before a client is dropped; 0 or unset = never."),
    many(yes_but("included-http-headers", V, "Extra HTTP header added to every response (value kept verbatim).",
        "Added to every answer of the HTTP phase (login, fixed pages, profile, 404), not to the CONNECT answer; checked at start like `custom-header`.")),
    alias("ipv4-dns", "dns", false, V),
    alias("ipv4-nbns", "nbns", false, V),
    yes("ipv4-netmask", V, "Netmask of `ipv4-network`."),
    yes("ipv4-network", V, "IPv4 pool the client addresses are leased from; may carry its prefix (`a.b.c.d/24`)."),
    alias("ipv6-dns", "dns", false, V),
    alias("ipv6-nbns", "nbns", false, V),
    yes_but("ipv6-network", V, "IPv6 pool; may carry its prefix.", "The server's end of every tunnel is the network's first address + 1, as in ocserv; with `predictable-ips` the first candidate comes from a stable hash of the user name (ocserv: of its IPv4 seed), otherwise candidates are random."),
    yes("ipv6-prefix", V, "Prefix length of `ipv6-network` (older spelling)."),
    yes("ipv6-subnet-prefix", V, "Size of the IPv6 network each client gets (128 = one address)."),
    many(yes_but("iroute", U, "Network behind a client, routed to it on the server (per-user file).", "Typed (`net/prefix` or `net/mask`, IPv4 or IPv6). In the main file: a warning, ignored.")),
    yes("isolate-workers", G, "Confine workers with seccomp (and namespaces)."),
    yes("keepalive", V, "Keepalive interval in seconds."),
    yes_but("key-pin", V, "PIN that unlocks the server key.", "Opens an encrypted PKCS#8 `server-key` (PBES2: PBKDF2 with HMAC-SHA1/256/384/512 and AES-CBC, what certtool and OpenSSL 3 write); OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` PEM is refused with the command that converts it. No PKCS #11 or TPM. A wrong PIN stops the start, naming the key file. Wins over `pin-file`."),
    many(later("kkdcp", V, "URL path forwarded to a Kerberos KDC (MS-KKDCP).")),
    later("limit-worker-memory", G, "Cap each worker's heap (RLIMIT_DATA)."),
    spec("listen-clear-file", G, Status::Removed { error: true }, "Unix socket for TLS terminated elsewhere.", "removed in ocserv 1.1.2, which refuses it too"),
    yes_but("listen-host", G, "Address to listen on (default: all).", "An IP address; host names are not resolved."),
    later_unless("listen-host-is-dyndns", V, FALSE, "The server address may change: ask clients to resolve again on reconnect."),
    yes_but("listen-netns", G, "Network namespace to open the listening sockets in.", "A name under /run/netns (as `ip netns add` makes). The TCP and UDP listening sockets, and the per-client UDP sockets main hands to workers, are opened there; tun devices, scripts, sec-mod and the occtl socket stay in the namespace rocserv was started in (as ocserv). With sockets from systemd (`LISTEN_FDS`) only the per-client UDP sockets are opened there (as ocserv); give the socket unit the same namespace (`NetworkNamespacePath=`)."),
    yes_but("listen-proxy-proto", G, "Expect the PROXY protocol header from a load balancer.",
        "Read by main (never by the worker) before a worker is spawned, within 10 s, on its own task: versions 1 and 2, TCP over IPv4/IPv6; the client's address it names is used for bans, per-address limits, logs, occtl, scripts and `deny-roaming`. Refused: a connection without a header, v1 `UNKNOWN`, v2 `PROXY` without a TCP address (ocserv keeps the balancer's address for some of these); v2 `LOCAL` (health checks) keeps the balancer's address and costs no ban points. TCP only: DTLS is matched by its session id. Only the balancer may reach the port (doc/security/proxy.md)."),
    yes_but("log-format", G, "Not an ocserv option.", "rocserv only: `text` (default: ocserv's line shapes, doc/logs.md) or `json`: every line of main, its workers and sec-mod, on stderr and syslog alike, is one JSON object with stable keys (`time`, `process`, `pid`, `level`, `event`, `user`, `ip`, `port`, `message`, then the event's own), for log pipelines. Read at startup. See doc/logs.md."),
    yes_but("log-level", G, "Verbosity 0-9 (1 basic, 2 info, 3 debug, 4 http, 8 sensitive, 9 TLS).", "Default 1 (ocserv: 2)."),
    yes_but("match-tls-dtls-ciphers", V, "Require the DTLS cipher to be the one of the TLS channel.", "Restricts the legacy suite choice to the TLS channel's AES key size; PSK-NEGOTIATE picks its own AES-GCM suite."),
    yes_but("max-ban-score", G, "Ban points at which an address is banned; 0 = no bans.", "Default 0 (ocserv's built-in default is 30, with `ban-time` 0). Loopback clients are never banned."),
    yes("max-clients", G, "Most clients at once; 0 = no limit."),
    yes_but("max-pre-auth-clients", G, "Most connections not logged in yet, server-wide; 0 = no limit.", "rocserv only (ocserv has no such option): default 256. Each costs a worker process; more are closed at accept."),
    yes_but("max-pre-auth-per-ip", G, "Most connections not logged in yet from one client address (IPv6: one /64); 0 = no limit.", "rocserv only (ocserv has no such option): default 32; raise it for many users behind one NAT address (they reconnect together after a restart or a blip; see doc/decisions/0011-login-path.md)."),
    yes("max-same-clients", V, "Most sessions of one user at once; 0 = no limit."),
    yes_but("max-session-time-per-day", U, "Not an ocserv option.", "rocserv only, per-user/per-group files: seconds a user may be connected per UTC day, all their tunnels added up (0 = no limit; the user's file over the group's). Needs `session-db`. Checked at CONNECT (refused, logged) and at each traffic report (`stats-report-time`): the tunnel is ended with the reason in the log. See \"Session records and quotas\" below."),
    yes_but("metrics-listen", G, "Not an ocserv option.", "rocserv only: `ADDRESS:PORT` where main serves Prometheus metrics over plain HTTP (`GET /metrics` only); off by default. Per-user series name users and their addresses: keep it on loopback or a management network. Fixed at start (a reload keeps the running value). See doc/metrics.md and doc/security/metrics.md."),
    alias("min-reauth-time", "ban-time", false, G),
    yes("mobile-dpd", V, "Dead peer detection interval for mobile clients; 0 = same as `dpd`."),
    yes("mobile-idle-timeout", V, "`idle-timeout` for mobile clients; unset = `idle-timeout`, 0 = never."),
    yes_but("mtu", V, "Link MTU assumed for clients; unset = the tun default.", "Values below 68 are refused."),
    many(yes_but("nbns", V, "NetBIOS name server given to clients.", "Sent as `X-CSTP-NBNS`; IPv6 servers are left out while the client gets no IPv6 address, as in ocserv.")),
    yes_but("net-priority", V, "SO_PRIORITY (0-6) or TOS (hex) for the client's packets.", "Set by main on the client's TCP socket when the tunnel is granted and on each UDP socket it hands over (the worker cannot change it: seccomp); on IPv6 sockets the TOS byte is the traffic class."),
    yes_but("no-compress-limit", V, "Packets of at most this many bytes are sent uncompressed (default 256).", "Values below 64 are raised to 64, as in ocserv."),
    many(yes("no-route", V, "Network the client must not send through the VPN.")),
    yes("no-udp", V, "Disable DTLS: tunnel over TLS only."),
    yes("occtl-socket-file", G, "Unix socket for occtl."),
    later("ocsp-response", V, "Stapled OCSP response for the server certificate."),
    yes_but("output-buffer", V, "Packets (of MTU size) queued towards a client.", "Set by main as the client's TCP socket send buffer (SO_SNDBUF = link MTU x value) when the tunnel is granted, as ocserv does; the DTLS socket keeps rocserv's 1 MiB buffer (ocserv sets min(2048, MTU x value) bytes there, which the kernel raises to its minimum). 0 or unset: the system's autotuned buffer."),
    yes("persistent-cookies", V, "Keep cookies valid after the user logs out, until they expire."),
    yes_but("pid-file", G, "Where the main process writes its PID.", "A relative name is relative to the directory rocserv was started in."),
    yes_but("pin-file", V, "File holding the PIN of the server key.", "Its first line is the PIN of an encrypted `server-key` (read by sec-mod at start); see `key-pin`."),
    later_unless("ping-leases", G, FALSE, "Ping an address before leasing it."),
    yes("pre-login-banner", V, "Message shown on the login form."),
    yes("predictable-ips", V, "Give a user the same address each time when possible."),
    yes_but("proxy-url", V, "Proxy URL (PAC) handed to clients (`%{U}`, `%{G}` expanded).",
        "Sent as `X-CSTP-MSIE-Proxy-PAC-URL`, the spelling openconnect matches (case-sensitively: it ignores ocserv's `X-CSTP-MSIE-Proxy-Pac-URL`); visible ASCII only; control characters in expanded names dropped."),
    yes_but("rate-limit-ms", G, "Slow down accepting connections while authentication is backlogged.", "Always a minimum interval between accepted connections (ocserv applies it only while sec-mod is backlogged)."),
    yes("rekey-method", V, "How to rekey: `ssl` (in-channel) or `new-tunnel` (client reconnects)."),
    yes("rekey-time", V, "Seconds between rekeys; 0 = never."),
    yes_but("restrict-user-to-ports", V, "Firewall a client to (or away from) listed protocols/ports.",
        "Applied by main in the kernel (nftables table `inet rocserv`), not by a script; also to traffic addressed to the server itself; implies `restrict-user-to-routes`, as ocserv's documentation says (its script does not); port 0, a missing port or a malformed entry is an error."),
    yes_but("restrict-user-to-routes", V, "Firewall a client to its routes.",
        "Applied by main in the kernel (nftables table `inet rocserv`), not by a script; also to traffic addressed to the server itself, and to IPv6 as to IPv4."),
    many(yes("route", V, "Network the client sends through the VPN: `default`, `a.b.c.d/len`, `a.b.c.d/m.m.m.m` or IPv6; none or `default` = everything.")),
    yes_but("route-add-cmd", G, "Command that adds a server route for an iroute.", "A plain command runs without a shell (split into words, `%{R}`, `%{RI}`, `%{D}` expanded in each); one with shell syntax runs with `/bin/sh -c`, as in ocserv, with only those typed values substituted. Default `ip route add %{RI} dev %{D}` (ocserv: nothing). A failure refuses the login, as in ocserv."),
    yes_but("route-del-cmd", G, "Command that removes a server route for an iroute.", "As `route-add-cmd`; default `ip route delete %{RI} dev %{D}`. Runs when the tunnel ends, also after the worker was killed."),
    yes("run-as-group", G, "Group the workers run as."),
    yes_but("run-as-user", G, "User the workers run as.", "Default `nobody`, with a warning at every start; `nobody` set explicitly warns too: other services share that uid and can signal the workers. Use a dedicated system user. `root` runs as in ocserv, with a warning on its line: the worker keeps uid 0 but drops every capability (bounding set included, securebits locked) and keeps the seccomp filter; with `isolate-workers = false` it is an error."),
    yes_but("rx-data-per-sec", V, "Bandwidth limit from the client, bytes/s.", "Enforced by the kernel, not the worker: a token-bucket shaper (tc `tbf`, burst 128 KiB or 50 ms of the rate, whichever is larger, and a queue of 50 ms) on an `ifb` device the tun device's ingress is redirected to; both channels (TLS and DTLS) count. The rate counts IP packets in the tunnel, headers included. Needs iproute2 (`tc`, `ip`); if the shaper cannot be installed, the login is refused."),
    spec("sec-mod-db-cleanup-time", G, Status::NotApplicable, "How often sec-mod purges expired sessions.", "Expiry is computed from the clock passed in; nothing to tune."),
    spec("sec-mod-scale", G, Status::NotApplicable, "Number of sec-mod processes.", "rocserv runs one sec-mod."),
    many(yes_but("select-group", V, "Group the user may choose at login (`name[Label]`).", "A name with a control character, `[`, `]`, `/`, `:` or `,` is an error, and so are more than 128 lines or a label over 255 bytes. As in ocserv a user may still ask for a group not listed, and gets it only if they are in it.")),
    yes_but("select-group-by-url", V, "Choose the group from the URL path.", "`/NAME?query` asks for `NAME` (ocserv takes the query too); also taken from the path of Cisco's `<group-access>` URL when the POST goes to `/`. Implied by `cisco-client-compat`, as in ocserv 1.5."),
    many(yes_but("server-cert", V, "Server certificate (chain) file; several pairs allowed.", "PEM files only; a second pair is ignored with a warning.")),
    yes_but("server-drain-ms", G, "Delay before closing listeners at shutdown, for load balancers.", "On SIGTERM/SIGINT/`occtl stop` main closes the TCP listener at once, tells systemd `STOPPING=1`, keeps the tunnels (and the DTLS port, so that roaming clients keep theirs) for this long, then ends them. A second signal ends the drain early. At most 86400000."),
    many(yes_but("server-key", V, "Private key of the preceding `server-cert`.", "PEM file only (no PKCS #11 / TPM URLs): RSA 2048 to 8192 bits of any size (certtool's 2432 and 3072 too), RSA-PSS (TLS 1.3 only), ECDSA P-256/P-384/P-521, Ed25519; PKCS#1, PKCS#8 or SEC1, with or without certtool's text before the PEM block; encrypted with `key-pin` / `pin-file`. See doc/security/keys.md.")),
    yes_but("server-stats-reset-time", G, "Period after which occtl's statistics restart.", "Default 604800 (a week), 0 = never, as ocserv; the period counters of `occtl show status` (sessions handled, authentication failures, session times, RX/TX) restart when a session ends or occtl asks after the period (ocserv: only when a session ends), with one log line; the totals do not. Not changed by a reload."),
    spec("session-control", G, Status::Removed { error: false }, "Old session-control switch.", "deprecated; ocserv ignores it too"),
    yes_but("session-db", G, "Not an ocserv option.", "rocserv only: the SQLite file where sec-mod records every session (user, group, device, addresses, bytes, duration, end reason) and each user's daily usage for `max-session-time-per-day` and `traffic-quota`; default `/var/lib/rocserv/sessions.db` (directory created, mode 0700), `none` = no records and no quotas. Read by `occtl show history`. See \"Session records and quotas\" below."),
    yes_but("session-timeout", V, "Seconds a session may last before re-authentication; 0 or unset = forever.", "Counted from the login across cookie reconnects, as ocserv (whose bug #599 restarted it); `X-CSTP-Session-Timeout-Remaining` says what is left; enforced by main too (the worker is terminated, then killed, a few seconds after)."),
    yes_but("socket-file", G, "Prefix of ocserv's internal IPC socket.", "Parsed only (any name, relative too): rocserv's processes talk over socketpairs, so no socket file is made."),
    many(yes_but("split-dns", V, "Domain resolved with the VPN's DNS servers.", "One domain name per line (letters, digits, `-`, `_`, dots); anything else is an error.")),
    later("srk-pin", V, "TPM storage root key PIN."),
    later("srk-pin-file", V, "File with the TPM storage root key PIN."),
    yes_but("stats-report-time", V, "Seconds between workers' traffic reports to main; 0 = 60.", "The reports are occtl's fallback; `RX`/`TX` of connected users come from the tun device's counters, always current. It is also the interval of accounting's interim updates (RADIUS Interim-Update, the session database, quotas), which main sends from its own timer with the tun device's kernel counters, not from the worker's reports; a RADIUS server's Acct-Interim-Interval replaces it for that user."),
    yes("switch-to-tcp-timeout", V, "Seconds without DTLS traffic before falling back to TLS."),
    yes_but("syslog-facility", G, "syslog facility (daemon, user, auth, authpriv, local0-7).", "Applies to main's syslog lines (main's own and its workers'); sec-mod always writes to the inherited stderr. Any other name is an error. See doc/logs.md."),
    yes_but("tcp-port", G, "TCP port of the TLS listener.", "Defaults to 443 (ocserv insists on it being set)."),
    yes_but("tls-priorities", V, "GnuTLS priority string for the TLS channel.", "Mapped onto rustls; see the note below the table."),
    yes_but("traffic-quota", U, "Not an ocserv option.", "rocserv only, per-user/per-group files: bytes (both directions, `K`/`M`/`G`/`T` = powers of 1024) a user may move per `traffic-quota-period`, all their tunnels added up; 0 = no quota. Needs `session-db`. Checked at CONNECT and at each traffic report: the tunnel is ended when it is used up. See \"Session records and quotas\" below."),
    yes_but("traffic-quota-period", U, "Not an ocserv option.", "rocserv only, per-user/per-group files: `day`, `week` (from Monday) or `month` (default), in UTC, for `traffic-quota`."),
    yes_but("try-mtu-discovery", G, "Probe the path MTU with DPD packets.",
        "Sets DF on DTLS datagrams and lowers the tun MTU when the kernel refuses one as too large, to the path MTU the kernel learnt (ocserv guesses 2/3 and searches); the packets of the refused send are dropped (ocserv resends the one packet over TLS), and packets above the lowered MTU go over TLS. The TCP path MTU (TCP_INFO) is not consulted."),
    yes("tunnel-all-dns", V, "Send all DNS queries through the VPN."),
    yes_but("tx-data-per-sec", V, "Bandwidth limit to the client, bytes/s.", "Enforced by the kernel, not the worker: a token-bucket shaper (tc `tbf`, burst 128 KiB or 50 ms of the rate, whichever is larger, and a queue of 50 ms) on the tun device; both channels (TLS and DTLS) count. The rate counts IP packets in the tunnel, headers included. Needs iproute2 (`tc`, `ip`); if the shaper cannot be installed, the login is refused."),
    yes_but("udp-listen-host", G, "Address for the DTLS socket (default: `listen-host`).", "An IP address; host names are not resolved."),
    yes("udp-port", G, "UDP port for DTLS; 0 or unset = no DTLS."),
    alias("use-dbus", "use-occtl", false, G),
    yes("use-occtl", G, "Serve the occtl control socket."),
    alias("use-seccomp", "isolate-workers", true, G),
    yes_but("use-utmp", G, "Record clients in utmp.", "On by default, as in ocserv: main writes a USER_PROCESS record (line = tun device, user, host = client IP, pid = worker) into utmp and wtmp when the tunnel is granted and a DEAD_PROCESS record when it ends; a failure to write is logged at debug level and changes nothing else."),
    yes_but("user-profile", V, "AnyConnect XML profile offered to clients.",
        "Absolute path; main reads it at start and at reload (an unreadable file or one over 32 KiB is an error) and hands it to the workers. Served as `/profiles/NAME` (NAME = the file name) only on the connection that just logged in, where openconnect `-x` fetches it; ocserv also serves it to a new connection that shows a valid cookie. Only in the main file (not per user or group)."),
];
