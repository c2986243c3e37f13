//! The `script` authentication method's hook (ours; doc/config.md "The script authentication
//! hook", doc/security/hook.md). sec-mod decides every login but cannot execute programs, so
//! it asks main (`FromSecMod::RunAuthHook`) and main runs the executable here, then reports how
//! it ended (`ToSecMod::AuthHookDone`); sec-mod parses the answer.
//!
//! Each run is its own task: a hook that takes seconds holds only its own login, never main's
//! accept loop or a tunnel. The hook runs
//! - only if its path is one of the `script` methods of main's own configuration (a
//!   compromised sec-mod cannot make root execute something else), with that method's user
//!   (`run-as-user` by default; never root) and timeout (capped at `auth-timeout`);
//! - with a clean environment (`rocserv_proto::auth_hook::environment`), the password on stdin
//!   (never in argv or the environment), in its own process group, which is killed at the
//!   timeout and once the answer is in;
//! - with a control FIFO in a fresh directory only the hook's user can enter: a hook that
//!   exits [`EXIT_PENDING`] answers later by writing to it (OpenVPN's `auth_control_file`
//!   idea); main reads at most `MAX_CONTROL + 1` bytes, up to the writer's close.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, User};
use rocserv_proto::auth_hook::{environment, EXIT_PENDING, MAX_CONTROL};
use rocserv_proto::config::{AuthMethod, AuthPlan};
use rocserv_proto::ipc::main_secmod::{AuthHookOutcome, AuthHookRun, SecModConfig};
use rocserv_proto::ipc::main_worker::SandboxPolicy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};

/// Where the per-run directories go (root's, mode 0711: a hook can reach its own directory by
/// name but cannot list the others').
pub const RUN_DIR: &str = "/run/rocserv-auth";

/// Hooks running at once; more wait for a slot within their own timeout.
const MAX_RUNNING: usize = 256;
/// Output lines logged per stream and run, and their length.
const MAX_LINE: usize = 512;
const MAX_LINES: usize = 100;
/// How long output is still read after the hook's answer.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// One configured hook.
#[derive(Debug, Clone)]
struct Hook {
    path: PathBuf,
    limit: Duration,
    /// Who it runs as, or why it cannot run.
    ids: Result<(Uid, Gid), String>,
}

/// Every `script` method of the configuration, and the runs in progress.
#[derive(Debug)]
pub struct Runner {
    hooks: Vec<Hook>,
    base: PathBuf,
    next: AtomicU64,
    slots: Arc<Semaphore>,
}

impl Runner {
    /// The hooks of `secmod`'s plans (default section and vhosts), `user=` resolved now (an
    /// unknown user is logged, and refuses that hook's logins); the default user is the
    /// workers' (`run-as-user`). Leftovers of a main that is gone under [`RUN_DIR`] are removed.
    pub fn new(secmod: &SecModConfig, sandbox: &SandboxPolicy) -> Self {
        Self::with_base(secmod, sandbox, PathBuf::from(RUN_DIR))
    }

    fn with_base(secmod: &SecModConfig, sandbox: &SandboxPolicy, base: PathBuf) -> Self {
        let hooks = configured(secmod, sandbox);
        for hook in &hooks {
            if let Err(e) = &hook.ids {
                log::error!(
                    "auth hook {}: {e}; its logins will be refused",
                    hook.path.display()
                );
            }
        }
        if !hooks.is_empty() {
            remove_leftovers(&base);
        }
        Self {
            hooks,
            base,
            next: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(MAX_RUNNING)),
        }
    }

    /// Whether any `script` method is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Run the hook `run` names for its login, and report how it ended.
    pub async fn run(&self, run: AuthHookRun) -> AuthHookOutcome {
        let started = Instant::now();
        let Some(hook) = self.hooks.iter().find(|h| h.path == run.path) else {
            log::error!(
                "sec-mod asked to run {} as an auth hook, which no `script` method names",
                run.path.display()
            );
            return failed("not a configured hook");
        };
        let ids = match &hook.ids {
            Ok(ids) => *ids,
            Err(e) => return failed(e),
        };
        let deadline = started + hook.limit;
        let after_secs = u32::try_from(hook.limit.as_secs()).unwrap_or(u32::MAX);
        let Ok(Ok(_slot)) = timeout_at(deadline, Arc::clone(&self.slots).acquire_owned()).await
        else {
            return AuthHookOutcome::TimedOut { after_secs };
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = match private_dir(&self.base, n, ids) {
            Ok(dir) => dir,
            Err(e) => {
                log::error!("auth hook {}: {e}", hook.path.display());
                return failed("cannot prepare its control file");
            }
        };
        let outcome = run_in(hook, &run, &dir, ids, deadline).await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            log::warn!("cannot remove {}: {e}", dir.display());
        }
        let who = run.username.escape_debug();
        let path = hook.path.display();
        let took = started.elapsed();
        match &outcome {
            AuthHookOutcome::Exited { code, control } => log::info!(
                "auth hook {path} (user '{who}', run {}): exit status {code}, {} byte answer, \
                 after {took:.3?}",
                run.id,
                control.len()
            ),
            AuthHookOutcome::Killed { signal } => log::info!(
                "auth hook {path} (user '{who}', run {}): killed by signal {signal} after \
                 {took:.3?}",
                run.id
            ),
            AuthHookOutcome::TimedOut { after_secs } => log::warn!(
                "auth hook {path} (user '{who}', run {}): no answer within {after_secs} s; its \
                 process group was killed",
                run.id
            ),
            AuthHookOutcome::Failed { why } => {
                log::error!("auth hook {path} (user '{who}', run {}): {why}", run.id)
            }
        }
        outcome
    }
}

/// The `script` methods of `secmod`'s plans (default section and vhosts), once per path, with
/// their user resolved (the default user is the workers', `run-as-user`).
fn configured(secmod: &SecModConfig, sandbox: &SandboxPolicy) -> Vec<Hook> {
    let plans = std::iter::once(&secmod.auth).chain(secmod.vhosts.iter().map(|v| &v.auth));
    let auth_timeout = Duration::from_secs(secmod.auth_timeout_secs.max(1));
    let mut hooks: Vec<Hook> = Vec::new();
    for method in plans.flat_map(|p: &AuthPlan| p.required.iter().chain(&p.alternatives)) {
        let AuthMethod::Script {
            path,
            timeout_secs,
            user,
        } = method
        else {
            continue;
        };
        if hooks.iter().any(|h| h.path == *path) {
            continue;
        }
        let ids = match user {
            None => Ok((Uid::from_raw(sandbox.uid), Gid::from_raw(sandbox.gid))),
            Some(name) => match User::from_name(name) {
                Ok(Some(u)) => Ok((u.uid, u.gid)),
                Ok(None) => Err(format!("no user named `{name}`")),
                Err(e) => Err(format!("cannot look up user `{name}`: {e}")),
            },
        };
        let ids = ids.and_then(|(uid, gid)| {
            if uid.is_root() {
                Err("a hook must not run as root".to_owned())
            } else {
                Ok((uid, gid))
            }
        });
        hooks.push(Hook {
            path: path.clone(),
            limit: Duration::from_secs((*timeout_secs).into()).min(auth_timeout),
            ids,
        });
    }
    hooks
}

/// What stops the `script` hooks from running (for start and `rocserv -t`): an unknown or root
/// user, a path that is not an executable file.
pub fn problems(secmod: &SecModConfig, sandbox: &SandboxPolicy) -> Vec<String> {
    let mut problems = Vec::new();
    for hook in configured(secmod, sandbox) {
        let path = hook.path.display();
        match &hook.ids {
            Err(e) => problems.push(format!("auth: script hook {path}: {e}")),
            // Without the worker's seccomp filter a compromised worker of the same uid could
            // open a pending login's control FIFO and answer `1` for itself.
            Ok((uid, _)) if !sandbox.seccomp && uid.as_raw() == sandbox.uid => {
                problems.push(format!(
                    "auth: script hook {path} would run as the workers' user while \
                     isolate-workers = false; give it another one (`user=`)"
                ))
            }
            Ok(_) => {}
        }
        match std::fs::metadata(&hook.path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => problems.push(format!(
                "auth: script hook {path} is not an executable file"
            )),
            Err(e) => problems.push(format!("auth: script hook {path}: {e}")),
        }
    }
    problems
}

/// Remove the per-run directories of mains that are gone (`PID-N`: a killed main leaves its
/// runs' directories behind); another running main's stay.
fn remove_leftovers(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_string_lossy().split('-').next().map(str::to_owned);
        let alive = pid.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if !alive {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                log::warn!("cannot remove {}: {e}", entry.path().display());
            }
        }
    }
}

fn failed(why: &str) -> AuthHookOutcome {
    AuthHookOutcome::Failed {
        why: why.to_owned(),
    }
}

/// `base/PID-n/` (0700, the hook's user's) with the FIFO `control` (0600) in it. `base` must be
/// root's and writable by nobody else, so that nobody can plant a link there.
fn private_dir(base: &Path, n: u64, (uid, gid): (Uid, Gid)) -> std::io::Result<PathBuf> {
    match std::fs::DirBuilder::new().mode(0o711).create(base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(base)?;
    if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a directory only root can write",
            base.display()
        )));
    }
    let dir = base.join(format!("{}-{n}", std::process::id()));
    // Fails if it exists: never reuse what someone else made.
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let control = dir.join("control");
    nix::unistd::mkfifo(&control, Mode::from_bits_truncate(0o600))?;
    for path in [&control, &dir] {
        nix::unistd::chown(path, Some(uid), Some(gid))?;
    }
    Ok(dir)
}

/// Spawn the hook and wait for its outcome (at most until `deadline`).
async fn run_in(
    hook: &Hook,
    run: &AuthHookRun,
    dir: &Path,
    (uid, gid): (Uid, Gid),
    deadline: Instant,
) -> AuthHookOutcome {
    let control_path = dir.join("control");
    // Opened before the hook starts, so that its open for writing never blocks; nonblocking
    // and close-on-exec (the hook does not inherit it).
    let mut control = match pipe::OpenOptions::new().open_receiver(&control_path) {
        Ok(rx) => rx,
        Err(e) => {
            log::error!("auth hook: cannot open {}: {e}", control_path.display());
            return failed("cannot open its control file");
        }
    };
    let limit_secs = u32::try_from(hook.limit.as_secs()).unwrap_or(u32::MAX);
    let env = environment(run, &control_path.to_string_lossy(), limit_secs);
    let mut child = match Command::new(&hook.path)
        .env_clear()
        .envs(env)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .uid(uid.as_raw())
        .gid(gid.as_raw())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            log::error!("auth hook: cannot execute {}: {e}", hook.path.display());
            return failed("cannot execute it");
        }
    };
    log::info!(
        "auth hook {} (user '{}', run {}): started",
        hook.path.display(),
        run.username.escape_debug(),
        run.id
    );
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    // The password goes to stdin and stdin is closed; a hook that does not read it is fine
    // (a broken pipe here is ignored; main ignores SIGPIPE).
    if let Some(mut stdin) = child.stdin.take() {
        let mut secret = run.password.clone().into_bytes();
        secret.push(b'\n');
        tokio::spawn(async move {
            let _ = stdin.write_all(&secret).await;
        });
    }
    let prefix = format!(
        "auth hook {} (user '{}')",
        hook.path.display(),
        run.username.escape_debug()
    );
    let (stdout, stderr, prefix) = (child.stdout.take(), child.stderr.take(), &prefix);
    let logs = async move { tokio::join!(log_lines(stdout, prefix), log_lines(stderr, prefix)) };
    tokio::pin!(logs);
    let mut logs_done = false;
    let waited = timeout_at(deadline, async {
        loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = &mut logs, if !logs_done => logs_done = true,
            }
        }
    })
    .await;
    let outcome = match waited {
        Err(_elapsed) => AuthHookOutcome::TimedOut {
            after_secs: limit_secs,
        },
        Ok(Err(e)) => {
            log::error!("auth hook: waiting for {} failed: {e}", hook.path.display());
            failed("waiting for it failed")
        }
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (status.code(), status.signal()) {
                (Some(EXIT_PENDING), _) => {
                    match timeout_at(deadline, read_answer(&mut control)).await {
                        Ok(answer) => AuthHookOutcome::Exited {
                            code: EXIT_PENDING,
                            control: answer,
                        },
                        Err(_elapsed) => AuthHookOutcome::TimedOut {
                            after_secs: limit_secs,
                        },
                    }
                }
                (Some(code), _) => AuthHookOutcome::Exited {
                    code,
                    control: written_so_far(&control),
                },
                (None, Some(signal)) => AuthHookOutcome::Killed { signal },
                (None, None) => failed("ended without a status"),
            }
        }
    };
    // The answer is in (or the time is up): whatever the hook left running goes too.
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGKILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    if !logs_done {
        let _ = tokio::time::timeout(OUTPUT_GRACE, &mut logs).await;
    }
    outcome
}

/// Everything written to the control FIFO up to the writer's close, at most `MAX_CONTROL + 1`
/// bytes (one more than allowed, so that sec-mod sees it is too long).
async fn read_answer(control: &mut pipe::Receiver) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match control.read(&mut chunk).await {
            Ok(0) | Err(_) => return answer,
            Ok(n) => {
                answer.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if answer.len() > MAX_CONTROL {
                    answer.truncate(MAX_CONTROL.saturating_add(1));
                    return answer;
                }
            }
        }
    }
}

/// What a hook that exited at once left in the FIFO (nothing waits for a writer).
fn written_so_far(control: &pipe::Receiver) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while answer.len() <= MAX_CONTROL {
        match control.try_read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    answer.truncate(MAX_CONTROL.saturating_add(1));
    answer
}

/// Log a stream of the hook's output, bounded ([`crate::bounded_lines`]).
async fn log_lines<R: tokio::io::AsyncRead + Unpin>(stream: Option<R>, prefix: &str) {
    let Some(stream) = stream else { return };
    crate::bounded_lines::read_lines(stream, MAX_LINE, MAX_LINES, |line| {
        log::info!("{prefix}: {line}");
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::worker_secmod::ClientFacts;

    /// A hook script in a fresh directory anyone may read, and a runner whose per-run
    /// directories go under it too. Needs root (it switches to `nobody`), as main does.
    fn setup(name: &str, body: &str, limit: Duration) -> (Runner, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rocserv-hook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
        let path = dir.join("hook");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let runner = Runner {
            hooks: vec![Hook {
                path: path.clone(),
                limit,
                ids: Ok((nobody.uid, nobody.gid)),
            }],
            base: dir.join("runs"),
            next: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(MAX_RUNNING)),
        };
        (runner, path, dir)
    }

    fn login(path: &Path) -> AuthHookRun {
        AuthHookRun {
            id: 1,
            path: path.to_owned(),
            username: "alice".into(),
            password: "s3cret-pw".into(),
            group: None,
            peer: Some("10.0.0.2:4433".parse().unwrap()),
            vhost: None,
            facts: ClientFacts::default(),
            cert_subject: None,
        }
    }

    #[tokio::test]
    async fn deferred_answer_as_nobody_with_the_password_on_stdin_only() {
        // The background writer answers after the hook exited "pending"; it reports its uid,
        // the password it read from stdin, and whether the password is in its argv or
        // environment.
        let (runner, path, dir) = setup(
            "deferred",
            r#"read -r pw
leak=no
for f in /proc/$$/cmdline /proc/$$/environ; do
  test -r "$f" || leak=unreadable
  grep -q "$pw" "$f" && leak=yes
done
( sleep 0.3
  printf '1\ngroup = staff\n# uid=%s pw=%s leak=%s path=%s\n' "$(id -u)" "$pw" "$leak" "$PATH" > "$ROCSERV_AUTH_CONTROL" ) &
exit 2"#,
            Duration::from_secs(10),
        );
        let outcome = runner.run(login(&path)).await;
        let AuthHookOutcome::Exited { code: 2, control } = outcome else {
            panic!("{outcome:?}")
        };
        let text = String::from_utf8(control).unwrap();
        let nobody = User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            text,
            format!(
                "1\ngroup = staff\n# uid={} pw=s3cret-pw leak=no path={}\n",
                nobody.uid,
                rocserv_proto::auth_hook::HOOK_PATH
            )
        );
        // The per-run directory is gone.
        assert_eq!(std::fs::read_dir(dir.join("runs")).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn exit_status_signal_timeout_and_unknown_hooks() {
        let (runner, path, dir) = setup("status", r#"exit "$USERNAME""#, Duration::from_secs(10));
        for (user, code) in [("0", 0), ("1", 1), ("7", 7)] {
            let outcome = runner
                .run(AuthHookRun {
                    username: user.into(),
                    ..login(&path)
                })
                .await;
            assert_eq!(
                outcome,
                AuthHookOutcome::Exited {
                    code,
                    control: Vec::new()
                }
            );
        }
        let outcome = runner.run(login(Path::new("/bin/true"))).await;
        assert!(
            matches!(outcome, AuthHookOutcome::Failed { .. }),
            "{outcome:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();

        let (runner, path, dir) = setup("signal", "kill -9 $$", Duration::from_secs(10));
        assert_eq!(
            runner.run(login(&path)).await,
            AuthHookOutcome::Killed { signal: 9 }
        );
        std::fs::remove_dir_all(dir).unwrap();

        // Pending for ever: refused at the timeout, and the background process is killed.
        let pid_file = std::env::temp_dir().join(format!("rocserv-hook-bg-{}", std::process::id()));
        let (runner, path, dir) = setup(
            "timeout",
            &format!("sleep 60 & echo $! > {}; exit 2", pid_file.display()),
            Duration::from_secs(1),
        );
        std::fs::write(&pid_file, "").unwrap();
        std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            runner.run(login(&path)).await,
            AuthHookOutcome::TimedOut { after_secs: 1 }
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        // Gone, or a zombie waiting for init.
        assert!(
            stat.as_ref().map_or(true, |s| s.contains(") Z ")),
            "background process of the hook still runs: {stat:?}"
        );
        let _ = std::fs::remove_file(pid_file);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
