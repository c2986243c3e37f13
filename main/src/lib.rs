//! rocserv main process (binary `rocserv`).
//!
//! **Privileges.** Runs as root. May: read the configuration and the *public* certificate chain,
//! bind the listening port, create tun devices, lease client addresses, spawn (fork+exec)
//! sec-mod and one worker per connection, signal the processes it spawned. Never: open the
//! server's private key (only sec-mod does; `--demo` *writes* a fresh one once), parse client
//! HTTP or TLS (the worker does; the one HTTP request head main reads is a scraper's on
//! `metrics-listen`, 4 KiB at most, through the fuzzed `proto::http` parser; see [`metrics`]),
//! trust what a worker says (worker messages are decoded as
//! untrusted input; a malformed one gets that worker killed) or that it obeys (main enforces
//! `Terminate` with a kill after a bounded wait, and the auth, idle and session timeouts itself;
//! see [`conn`]).
//!
//! **Startup sequence.**
//! 1. Parse the command line (`-c -f -d -t -p --log-stderr -v --demo`).
//! 2. Load the configuration: `--demo` builds it in code over files in /var/lib/rocserv-demo
//!    (self-signed certificate, user `demo`); otherwise the file is parsed by
//!    `rocserv_proto::config::parse` and every diagnostic is printed as `FILE:LINE: ...`; any
//!    error exits with status 1.
//! 3. Set the log level (`-d` overrides `log-level`).
//! 4. Check and resolve: `run-as-user` / `run-as-group` to uid/gid (`nobody` / `nogroup` with a
//!    warning when absent; root is refused), read the certificate chain PEM, check
//!    `ipv4-network`. Every problem is reported; any error exits with status 1. With `-t`, also
//!    spawn sec-mod in check-only mode (key readable and matching the certificate, password
//!    file readable), print every problem and exit (status 1 if there was any).
//! 5. Take the TCP and UDP sockets systemd passed (`LISTEN_FDS`, checked against the
//!    configuration, see [`service`]), or bind and listen on TCP `listen-host:tcp-port` (default
//!    `[::]`, dual-stack, else `0.0.0.0`), and UDP `udp-listen-host`/`listen-host` : `udp-port`
//!    when DTLS is configured (see [`udp`]), inside `listen-netns` when set. Nothing is accepted
//!    until step 9: a client arriving during the start waits in the kernel's backlog.
//! 6. Spawn sec-mod (`rocserv-sm` next to our executable, fd 3 = its socket, `--log-level N`,
//!    SIGTERM when main dies), send `Start`, wait up to 10 s for `Ready{key}`; `StartFailed`
//!    or silence exits with status 1 (the sockets close with the process). Meanwhile, on a task
//!    of its own, delete the access rules table `inet rocserv` (what a killed main left; see
//!    [`firewall`]: every session's rules wait for that reset).
//! 7. Write the pid file (`-p` overrides `pid-file`).
//! 8. Bind the occtl socket and `metrics-listen` (if set; see [`metrics`]), log
//!    `ready: listening on <addr> (tcp)` (the readiness signal the e2e tests wait for) and send
//!    `READY=1` to `NOTIFY_SOCKET` ([`service::Notifier`]); in demo mode also print the
//!    openconnect command line and the password.
//! 9. Serve: per accepted connection spawn a worker (see [`worker`]); SIGTERM/SIGINT stop the
//!    server (after the `server-drain-ms` drain, see [`server`]: workers and sec-mod get
//!    SIGTERM, the pid file is removed, exit 0); SIGHUP
//!    reloads the configuration for new connections (see [`reload`]); sec-mod dying stops the
//!    server with status 1.
//!
//! **Logs.** main logs to syslog (facility daemon) unless `--log-stderr`, and to stderr too
//! with `-d N` (N > 0), as ocserv does; see [`logger`]. A worker's stderr is a pipe main reads:
//! its lines reach main's log escaped and prefixed `worker[PID] PEER:` (see [`worker_log`]).
//! sec-mod's stderr is a pipe too: its lines reach main's log as `rocserv-sm[PID]: ` lines
//! (see [`secmod_log`]).
//!
//! **No daemon mode.** rocserv stays in the foreground even without `-f` and says so:
//! sec-mod logs only to stderr, so a detached daemon would lose its lines, and
//! PR_SET_PDEATHSIG ties sec-mod to the thread that spawned it, so forking after sec-mod starts
//! would kill it. Run it under systemd (`Type=notify`, dist/systemd/rocserv.service) or another
//! supervisor.

pub mod auth_hook;
pub mod ban;
pub mod ban_cluster;
pub mod bounded_lines;
pub mod cli;
pub mod cluster;
pub mod cluster_leases;
pub mod cluster_view;
pub mod conn;
pub mod connect;
pub mod counters;
pub mod ctl;
pub mod demo;
pub mod fd_limit;
pub mod firewall;
pub mod handover_budget;
pub mod ip6_pool;
pub mod ip_pool;
pub mod ipc;
pub mod iroutes;
pub mod lifecycle;
pub mod limits;
pub mod logger;
pub mod memory;
pub mod metrics;
pub mod net_priority;
pub mod proxy_header;
pub mod rate_limit;
pub mod reload;
pub mod rtnetlink;
pub mod scripts;
pub mod secmod;
pub mod secmod_log;
pub mod server;
pub mod service;
pub mod session_deadline;
pub mod settings;
pub mod spawn;
pub mod spki;
pub mod state;
pub mod tun;
pub mod tun_ip6;
pub mod tun_mtu;
pub mod tun_stats;
pub mod tunnel_state;
pub mod tunnels;
pub mod udp;
pub mod utmp;
pub mod worker;
pub mod worker_guard;
pub mod worker_log;
pub mod worker_priority;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use rocserv_proto::config::{self, Config, Severity};

use crate::cli::Cli;
use crate::settings::{Findings, Prepared};

/// The whole program after argument parsing.
pub fn run(cli: Cli) -> ExitCode {
    // First: the environment may be changed only while we have one thread.
    let systemd = service::take_environment();
    memory::tune();
    logger::init(cli.debug.unwrap_or(1));
    let mut config_errors = false;
    let (config, demo) = if cli.demo {
        match demo::prepare(&demo::state_dir()) {
            Ok(d) => (d.config.clone(), Some(d)),
            Err(e) => {
                log::error!("demo: {}", error_chain(&e));
                return ExitCode::FAILURE;
            }
        }
    } else {
        match load_config(&cli.config, cli.test_config) {
            Loaded::Clean(c) => (*c, None),
            // `-t` goes on with the best-effort configuration to find every other problem.
            Loaded::WithErrors(c) if cli.test_config => {
                config_errors = true;
                (*c, None)
            }
            Loaded::WithErrors(_) | Loaded::Unreadable => return ExitCode::FAILURE,
        }
    };
    let level = cli.debug.unwrap_or(config.log_level).min(9);
    log::set_max_level(logger::filter_for(level));
    logger::set_facility(config.syslog_facility);
    // `-t` output stays text: its findings are for a person (FILE:LINE: severity: ...).
    logger::set_json(config.log_format == config::LogFormat::Json && !cli.test_config);
    if !cli.log_stderr && !cli.test_config {
        let also_stderr = cli.debug.is_some_and(|d| d > 0);
        if let Err(e) = logger::use_syslog(&cli.syslog_socket, also_stderr) {
            log::info!(
                "syslog unavailable ({}: {e}); logging to stderr",
                cli.syslog_socket.display()
            );
        }
    }
    if !cli.foreground && !cli.test_config {
        log::info!("daemon mode is not supported; staying in the foreground (-f silences this)");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut findings = Findings::default();
    let prepared = settings::prepare(&config, &mut findings);
    // `auto-select-group`'s list is only known once sec-mod started; the rest is checked here.
    if let Some(p) = &prepared {
        if let Err(e) = settings::start_fits(&config, p, p.profile.clone()) {
            findings.errors.push(e);
        }
    }
    let origin = if demo.is_some() {
        "demo".to_owned()
    } else {
        cli.config.display().to_string()
    };
    if cli.test_config {
        return runtime.block_on(test_config(
            &config,
            &origin,
            findings,
            config_errors,
            level,
        ));
    }
    match fd_limit::raise(config.max_clients) {
        Ok(outcome) => {
            if outcome.soft > outcome.soft_before {
                log::debug!(
                    "open-files limit raised from {} to {}",
                    outcome.soft_before,
                    outcome.soft
                );
            }
            if let Some(w) = fd_limit::shortfall(&outcome, config.max_clients) {
                findings.warnings.push(w);
            }
        }
        Err(e) => log::warn!("cannot raise the open-files limit: {e}"),
    }
    for n in &findings.notes {
        log::info!("{}", settings::locate(&origin, &config, "note", n));
    }
    for w in &findings.warnings {
        log::warn!("{}", settings::locate(&origin, &config, "warning", w));
    }
    for e in &findings.errors {
        log::error!("{}", settings::locate(&origin, &config, "error", e));
    }
    let Some(prepared) = prepared.filter(|_| findings.errors.is_empty()) else {
        return ExitCode::FAILURE;
    };
    // A relative pid-file is relative to where rocserv was started (ocserv accepts one too).
    let pid_file = cli
        .pid_file
        .clone()
        .or_else(|| config.pid_file.clone())
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    // What SIGHUP / occtl `reload` re-read (nothing in demo mode), and `-d`, which wins.
    let source = (demo.is_none().then(|| cli.config.clone()), cli.debug);
    runtime.block_on(start(
        config, prepared, level, pid_file, demo, source, systemd,
    ))
}

/// A configuration file after parsing.
enum Loaded {
    Clean(Box<Config>),
    /// Errors were printed; the best-effort configuration is still useful to `-t`.
    WithErrors(Box<Config>),
    Unreadable,
}

/// Read and parse the configuration file, printing every diagnostic. In test mode (`-t`)
/// diagnostics go to stderr without the log prefix.
fn load_config(path: &Path, plain: bool) -> Loaded {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report(plain, true, &format!("{origin}: cannot read: {e}"));
            return Loaded::Unreadable;
        }
    };
    let parsed = config::parse(&text, &origin);
    for d in &parsed.diagnostics {
        report(plain, d.severity == Severity::Error, &d.to_string());
    }
    if parsed.has_errors() {
        Loaded::WithErrors(Box::new(parsed.config))
    } else {
        Loaded::Clean(Box::new(parsed.config))
    }
}

fn report(plain: bool, error: bool, line: &str) {
    match (plain, error) {
        (true, _) => eprintln!("{line}"),
        (false, true) => log::error!("{line}"),
        (false, false) => log::warn!("{line}"),
    }
}

/// One of sec-mod's start problems as a finding about its option: the key (`server key ...`),
/// accounting (`radius accounting ...`), else the authentication method. A vhost's
/// (`[vhost:NAME] ...`) keeps its place in front.
fn secmod_finding(problem: &str) -> String {
    let (place, text) = match problem.strip_prefix("[vhost:") {
        Some(rest) => match rest.split_once("] ") {
            Some((name, text)) => (format!("[vhost:{name}] (line 0): "), text),
            None => (String::new(), problem),
        },
        None => (String::new(), problem),
    };
    let option = if text.starts_with("server key") {
        "server-key"
    } else if text.starts_with("radius accounting") {
        "acct"
    } else {
        "auth"
    };
    format!("{place}{option}: {text}")
}

/// `rocserv -t`: everything [`settings::prepare`] found plus sec-mod's opinion of the key and
/// the password file.
async fn test_config(
    config: &Config,
    origin: &str,
    findings: Findings,
    config_errors: bool,
    level: u8,
) -> ExitCode {
    let mut errors = findings.errors;
    for n in &findings.notes {
        eprintln!("{}", settings::locate(origin, config, "note", n));
    }
    for w in &findings.warnings {
        eprintln!("{}", settings::locate(origin, config, "warning", w));
    }
    let mut policy_file_errors = false;
    // Per-user and per-group files: every file of the directories and the default files
    // (sec-mod reads them only at login, so a bad line would otherwise show up as refused
    // logins). The lines name file and line already.
    let mut checked = Vec::new();
    for locations in std::iter::once(&config.policy_files)
        .chain(config.vhosts.iter().map(|v| &v.config.policy_files))
    {
        if !checked.contains(&locations) {
            checked.push(locations);
            for line in rocserv_rt::policy_files::check_all(locations) {
                if rocserv_rt::policy_files::is_error(&line) {
                    policy_file_errors = true;
                }
                eprintln!("{line}");
            }
        }
    }
    if let Some(mut smc) = settings::secmod_config(config) {
        smc.check_only = true;
        match secmod::start(smc, level).await {
            Ok(mut started) => {
                let _ = started.child.wait().await;
            }
            // One line per problem, named by the option it is about (sec-mod lists them
            // all, joined by "; ").
            Err(secmod::SecModError::StartFailed(reasons)) => {
                errors.extend(reasons.split("; ").map(secmod_finding));
            }
            Err(e) => errors.push(format!("auth: sec-mod: {}", error_chain(&e))),
        }
    }
    for e in &errors {
        eprintln!("{}", settings::locate(origin, config, "error", e));
    }
    if errors.is_empty() && !config_errors && !policy_file_errors {
        eprintln!("configuration OK");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Steps 5 to 9 of the startup sequence.
async fn start(
    config: Config,
    mut prepared: Prepared,
    level: u8,
    pid_file: Option<std::path::PathBuf>,
    demo: Option<demo::Demo>,
    source: (Option<std::path::PathBuf>, Option<u8>),
    systemd: service::Environment,
) -> ExitCode {
    let notifier = systemd.notifier;
    // The sockets first: a client arriving while sec-mod starts waits in the backlog (as
    // with systemd's socket activation) instead of being refused, and exec -> listening is
    // main's own start (doc/performance.md, "2026-12-05, session 9: start-up"). Nothing is
    // accepted before sec-mod is ready; a start that fails below drops them (the process
    // exits non-zero).
    let netns = match config.listen_netns.as_deref().map(service::Netns::open) {
        None => None,
        Some(Ok(ns)) => Some(ns),
        Some(Err(e)) => {
            log::error!("listen-netns: cannot open the namespace: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (listener, udp) = match listeners(&config, systemd.listen, netns.as_ref()) {
        Ok(both) => both,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot serve the TCP listener: {e}");
            return ExitCode::FAILURE;
        }
    };
    notifier.status("starting sec-mod");
    // Before any CONNECT: rules a killed main left behind go (their devices are gone). Off the
    // start's path: deleting the table waits for the kernel (an RCU grace period, 10-40 ms
    // here); the firewall's order lock makes every session's rules wait for it instead.
    let restricts = firewall::restricts(&config.policy);
    firewall::spawn_start_reset(move |outcome| report_reset(outcome, restricts));
    let started = match secmod::start(prepared.secmod.clone(), level).await {
        Ok(s) => s,
        Err(e) => {
            log::error!("sec-mod: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let mut secmod_child = started.child;
    started.client.set_hooks(Arc::new(auth_hook::Runner::new(
        &prepared.secmod,
        &prepared.sandbox,
    )));
    if let Err(e) = prepared.set_vhost_keys(&started.vhost_keys) {
        log::error!("{e}");
        let _ = secmod_child.start_kill();
        return ExitCode::FAILURE;
    }
    if let Some(path) = &pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            log::error!("cannot write pid file {}: {e}", path.display());
            let _ = secmod_child.start_kill();
            let _ = secmod_child.wait().await;
            return ExitCode::FAILURE;
        }
    }
    if let Some(addr) = udp.as_ref().and_then(|u| u.local_addr().ok()) {
        log::info!("listening on {addr} (udp, DTLS)");
    }
    // Bound before the ready line, so that occtl works as soon as the server says it is ready.
    let ctl = match ctl::bind(&config) {
        Ok(ctl) => ctl,
        Err(e) => {
            log::error!("cannot create the occtl socket: {e}");
            if let Some(path) = &pid_file {
                let _ = std::fs::remove_file(path);
            }
            let _ = secmod_child.start_kill();
            let _ = secmod_child.wait().await;
            return ExitCode::FAILURE;
        }
    };
    if let Some(ctl) = &ctl {
        log::info!("occtl socket at {}", ctl.path().display());
    }
    let metrics = match metrics::bind(&config) {
        Ok(m) => m,
        Err(e) => {
            log::error!(
                "cannot listen on metrics-listen {:?}: {e}",
                config.metrics_listen
            );
            if let Some(path) = &pid_file {
                let _ = std::fs::remove_file(path);
            }
            let _ = secmod_child.start_kill();
            let _ = secmod_child.wait().await;
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = metrics.as_ref().and_then(|m| m.local_addr().ok()) {
        log::info!("metrics at http://{addr}/metrics");
    }
    let ready = match listener.local_addr() {
        Ok(addr) => format!("ready: listening on {addr} (tcp)"),
        Err(e) => format!("ready: listening on port {} (tcp) ({e})", config.tcp_port),
    };
    if let Some(demo) = &demo {
        println!("{}", demo::instructions(demo));
    }
    let secmod = secmod::Supervisor::new(secmod_child, prepared.secmod.clone(), level);
    let prepared = Prepared {
        auto_groups: started.groups,
        ..prepared
    };
    if let Err(e) = settings::start_fits(&config, &prepared, prepared.profile.clone()) {
        log::error!("{e}");
        secmod.stop().await;
        return ExitCode::FAILURE;
    }
    let shared = Arc::new(state::Shared::new(
        config,
        prepared,
        started.key,
        level,
        started.client,
    ));
    shared.live.set_source(source.0, source.1);
    cluster::spawn(&shared);
    tokio::spawn(memory::trimmer());
    cluster_leases::spawn(&shared);
    if let Some(udp) = udp {
        let netns = match netns.as_ref().map(service::Netns::try_clone).transpose() {
            Ok(ns) => ns,
            Err(e) => {
                log::error!("listen-netns: {e}");
                secmod.stop().await;
                return ExitCode::FAILURE;
            }
        };
        // Runs until the process exits.
        if let Err(e) = udp::spawn(Arc::clone(&shared), udp, netns) {
            log::error!("cannot start the UDP thread: {e}");
        }
    }
    // Removes the socket file when dropped at the end of `start`.
    let _ctl = ctl.map(|ctl| ctl.serve(Arc::clone(&shared)));
    // Stops serving when dropped at the end of `start`.
    let _metrics = metrics.map(|m| m.serve(Arc::clone(&shared)));
    // Only now: sec-mod is up, every socket open, occtl answers.
    log::info!("{ready}");
    notifier.ready(&ready);
    let stop = server::run(shared, listener, secmod, pid_file, &notifier).await;
    // Every worker is gone: so is every session's need for rules.
    if let Err(e) = firewall::reset().await {
        log::debug!(
            "access rules table not removed at exit: {}",
            error_chain(&e)
        );
    }
    // The last line, so that tools (and people) can tell a finished shutdown from a stuck one.
    match stop {
        server::Stop::Signal => {
            log::info!("rocserv stopped");
            ExitCode::SUCCESS
        }
        server::Stop::Failure => {
            log::error!("rocserv stopped after a failure");
            ExitCode::FAILURE
        }
    }
}

/// The TCP listener and the DTLS socket (when `udp-port` is set): those systemd passed
/// (`LISTEN_FDS`), else bound here, inside `listen-netns` when set.
fn listeners(
    config: &Config,
    passed: Option<Result<Vec<std::os::fd::OwnedFd>, service::ListenError>>,
    netns: Option<&service::Netns>,
) -> Result<(std::net::TcpListener, Option<std::net::UdpSocket>), String> {
    if let Some(passed) = passed {
        let fds = passed.map_err(|e| format!("socket activation: {e}"))?;
        let count = fds.len();
        let (tcp, udp) = service::split(fds, &service::Wanted::from_config(config))
            .map_err(|e| format!("socket activation: {e}"))?;
        tcp.set_nonblocking(true)
            .map_err(|e| format!("socket activation: TCP socket: {e}"))?;
        let udp = udp
            .map(udp::adopt_shared)
            .transpose()
            .map_err(|e| format!("socket activation: UDP socket: {e}"))?;
        log::info!("listening on {count} sockets passed by systemd");
        return Ok((tcp, udp));
    }
    let bind_both = || -> Result<_, String> {
        let tcp = server::bind(config)
            .map_err(|e| format!("cannot listen on port {}: {e}", config.tcp_port))?;
        let udp = udp::bind_shared(config)
            .map_err(|e| format!("cannot listen on UDP port {:?}: {e}", config.udp_port))?;
        Ok((tcp, udp))
    };
    match netns {
        None => bind_both(),
        Some(ns) => {
            let mut inner = None;
            ns.within(|| {
                inner = Some(bind_both());
                Ok(())
            })
            .map_err(|e| format!("listen-netns: {e}"))?;
            let (tcp, udp) = inner.unwrap_or_else(|| Err("listen-netns: nothing bound".into()))?;
            log::info!(
                "listening in network namespace {}",
                config.listen_netns.as_deref().unwrap_or_default()
            );
            Ok((tcp, udp))
        }
    }
}

/// Log the start's reset of the access rules table ([`firewall::spawn_start_reset`]). Without
/// `nft` a server whose configuration restricts nobody runs as before; a restricted login is
/// then refused (and says why).
fn report_reset(outcome: Result<(), firewall::FirewallError>, restricts: bool) {
    match outcome {
        Ok(()) => log::debug!("access rules table inet {} reset", firewall::TABLE),
        Err(e) if restricts => log::error!(
            "cannot reset the access rules table inet {}: {}; restricted logins will be refused",
            firewall::TABLE,
            error_chain(&e)
        ),
        Err(e) => log::info!(
            "cannot reset the access rules table inet {} ({}); needed only for \
             restrict-user-to-routes/-ports",
            firewall::TABLE,
            error_chain(&e)
        ),
    }
}

pub use rocserv_proto::error_chain;
