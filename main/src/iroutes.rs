//! `iroute`: the networks behind a client, routed to its tun device on the server while its
//! tunnel is up (`route-add-cmd` when it starts, `route-del-cmd` when it ends).
//!
//! Every command goes through one queue served by one task ([`run`]), in order, so that main's
//! event loop never waits for a process and the removal queued by an ending connection runs
//! before the addition of a connection that comes after it: a takeover of the same session
//! (same iroutes, often the same device name, since the kernel reuses the lowest free one) must
//! not see its fresh route deleted by the old connection's late `route-del-cmd`. The removal
//! is queued by the connection's record when it releases (`crate::conn::Conn::release`, one
//! place, also after a `kill -9` of the worker), before a takeover waiting for it may go on.
//!
//! Commands are argument vectors built from typed values (`rocserv_proto::config::route_cmd`);
//! no shell parses them. Each is killed after [`ROUTE_CMD_TIMEOUT`].

use std::process::Stdio;
use std::time::Duration;

use rocserv_proto::config::route_cmd::RouteCmd;
use rocserv_proto::config::{Config, IpNet};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

/// How long one route command may run before it is killed (and counts as failed).
pub const ROUTE_CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// One command for the queue; `done` hears whether it succeeded (additions wait for it).
#[derive(Debug)]
pub struct Job {
    pub argv: Vec<String>,
    pub done: Option<oneshot::Sender<bool>>,
}

/// The commands of one connection's iroutes on its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    pub add: Vec<Vec<String>>,
    pub del: Vec<Vec<String>>,
}

/// The add and delete commands for `nets` on `device`, with the configuration of the login's
/// time (so a reload in between cannot unpair them).
pub fn commands(config: &Config, nets: &[IpNet], device: &str) -> Commands {
    let default_add = RouteCmd::default_add();
    let default_del = RouteCmd::default_del();
    let add = config.route_add_cmd.as_ref().unwrap_or(&default_add);
    let del = config.route_del_cmd.as_ref().unwrap_or(&default_del);
    Commands {
        add: nets.iter().map(|n| add.argv(n, device)).collect(),
        del: nets.iter().map(|n| del.argv(n, device)).collect(),
    }
}

/// `expose-iroutes` as ocserv reads it: the iroutes of every file in `config-per-user` (at
/// start and reload), each once. A file that cannot be read or has an error is skipped (its
/// user's login is refused anyway); hidden files and editor backups (`~`) are skipped as by
/// `rocserv -t`. Blocking: call it off the event loop (or before serving).
pub fn from_user_files(config: &Config) -> Vec<IpNet> {
    let Some(dir) = config
        .policy_files
        .per_user_dir
        .as_ref()
        .filter(|_| config.expose_iroutes)
    else {
        return Vec::new();
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("expose-iroutes: cannot read {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut all: Vec<IpNet> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with('~'))
        })
        .filter(|p| !p.is_dir())
        .filter_map(|p| match rocserv_rt::policy_files::read(&p, true) {
            Ok(Some(text)) => {
                let parsed = rocserv_proto::policy::file::parse(&text, &p.display().to_string());
                (!parsed.has_errors()).then_some(parsed.file.iroutes)
            }
            Ok(None) | Err(_) => None,
        })
        .flatten()
        .collect();
    all.sort_by_key(|n| (n.addr, n.prefix));
    all.dedup();
    all
}

/// Serve the queue until every sender is gone.
pub async fn run(mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let ok = exec(&job.argv).await;
        if let Some(done) = job.done {
            let _ = done.send(ok);
        }
    }
}

/// Run one command, bounded in time; what it wrote to stderr goes to the log if it failed.
async fn exec(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let line = argv.join(" ");
    // A bare program name (the default `ip`, or an administrator's `ip ...`) is looked up with
    // sbin on the path too: main may run with a PATH that lacks it (systemd, cron).
    let path = std::env::var("PATH").unwrap_or_default();
    let child = Command::new(program)
        .env("PATH", format!("{path}:/usr/local/sbin:/usr/sbin:/sbin"))
        .args(args)
        .stdin(Stdio::null())
        // Only stderr is kept (for the log line of a failure).
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            log::error!("route command `{line}`: cannot start: {e}");
            return false;
        }
    };
    match tokio::time::timeout(ROUTE_CMD_TIMEOUT, child.wait_with_output()).await {
        Err(_) => {
            // Dropping the future dropped the child: killed (kill_on_drop), tokio reaps it.
            log::error!("route command `{line}`: killed after {ROUTE_CMD_TIMEOUT:?}");
            false
        }
        Ok(Err(e)) => {
            log::error!("route command `{line}`: {e}");
            false
        }
        Ok(Ok(out)) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.trim();
            if out.status.success() {
                log::debug!("route command `{line}`: done");
                true
            } else {
                log::warn!("route command `{line}`: {} {said}", out.status);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn default_and_configured_commands() {
        let mut config = Config::default();
        let nets = [net("192.168.5.0", 24), net("fd00:5::", 64)];
        let c = commands(&config, &nets, "vpns2");
        assert_eq!(
            c.add,
            [
                ["ip", "route", "add", "192.168.5.0/24", "dev", "vpns2"],
                ["ip", "route", "add", "fd00:5::/64", "dev", "vpns2"]
            ]
        );
        assert_eq!(
            c.del[0],
            ["ip", "route", "delete", "192.168.5.0/24", "dev", "vpns2"]
        );
        config.route_add_cmd = Some(RouteCmd::parse("/bin/add %{R} %{D}").unwrap());
        let c = commands(&config, &nets[..1], "vpns2");
        assert_eq!(c.add, [["/bin/add", "192.168.5.0/255.255.255.0", "vpns2"]]);
        assert_eq!(c.del[0][2], "delete");
    }

    #[tokio::test]
    async fn the_queue_runs_in_order_and_reports_each_result() {
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = tokio::spawn(run(rx));
        let path = std::env::temp_dir().join(format!("rocserv-iroutes-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = path.to_str().unwrap();
        let (ok_tx, ok_rx) = oneshot::channel();
        let (bad_tx, bad_rx) = oneshot::channel();
        let (gone_tx, gone_rx) = oneshot::channel();
        let sh = |s: &str| {
            vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!("echo {s} >> {log}"),
            ]
        };
        tx.send(Job {
            argv: sh("one"),
            done: None,
        })
        .unwrap();
        tx.send(Job {
            argv: sh("two"),
            done: Some(ok_tx),
        })
        .unwrap();
        tx.send(Job {
            argv: vec!["/bin/false".to_owned()],
            done: Some(bad_tx),
        })
        .unwrap();
        tx.send(Job {
            argv: vec!["/nonexistent/route-cmd".to_owned()],
            done: Some(gone_tx),
        })
        .unwrap();
        assert!(ok_rx.await.unwrap());
        assert!(!bad_rx.await.unwrap());
        assert!(!gone_rx.await.unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let _ = std::fs::remove_file(&path);
        drop(tx);
        runner.await.unwrap();
    }

    #[test]
    fn exposed_iroutes_come_from_every_user_file() {
        let dir = std::env::temp_dir().join(format!("rocserv-expose-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("alice"),
            "iroute = 10.9.1.0/24\niroute = 10.9.2.0/24\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("bob"),
            "iroute = 10.9.1.0/255.255.255.0\ndns = 10.0.0.1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("broken"),
            "iroute = 10.9.3.0/24\nno-such-option = 1\n",
        )
        .unwrap();
        std::fs::write(dir.join("alice~"), "iroute = 10.9.4.0/24\n").unwrap();
        std::fs::write(dir.join(".hidden"), "iroute = 10.9.5.0/24\n").unwrap();
        let mut config = Config::default();
        config.policy_files.per_user_dir = Some(dir.clone());
        assert!(
            from_user_files(&config).is_empty(),
            "off unless expose-iroutes"
        );
        config.expose_iroutes = true;
        assert_eq!(
            from_user_files(&config),
            [net("10.9.1.0", 24), net("10.9.2.0", 24)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
