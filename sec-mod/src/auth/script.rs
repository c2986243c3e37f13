//! `auth = "script[path=FILE,timeout=SECS,user=NAME]"` (ours): an executable decides, at once
//! by its exit status or later through its control file (doc/config.md "The script
//! authentication hook", doc/security/hook.md).
//!
//! sec-mod cannot execute programs (its seccomp filter refuses execve, doc/security.md), so it
//! asks main, which runs the hook unprivileged and reports how it ended
//! ([`FromSecMod::RunAuthHook`] / `ToSecMod::AuthHookDone`). sec-mod decides: the outcome and
//! the control answer are parsed here. Each login waits on its own one-shot channel: a slow
//! hook holds only its own login, never sec-mod's loop or another login.
//!
//! [`FromSecMod::RunAuthHook`]: rocserv_proto::ipc::main_secmod::FromSecMod::RunAuthHook

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use rocserv_proto::auth_hook::{parse_control, Answer, EXIT_PENDING};
use rocserv_proto::ipc::main_secmod::{AuthHookOutcome, AuthHookRun};
use rocserv_proto::ipc::worker_secmod::ClientFacts;
use rocserv_proto::policy::file::PolicyFile;
use tokio::sync::{oneshot, Notify};

use super::{check_login_shape, Attempt, AuthBackend, Granted, Login, Rejection, Verdict};
use crate::peers::lock;

/// Hook runs waiting to be sent to main, at most: more logins at once are refused at once
/// (main runs a bounded number in parallel anyway).
const MAX_QUEUED: usize = 1024;
/// How long after the hook's own timeout sec-mod still waits for main's report (main kills
/// the hook at its timeout and reports at once; this only covers a main that never answers).
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// The one channel to main for every `script` backend of this process (the default section's
/// and each vhost's): requests queued for the task that owns main's socket, and the logins
/// waiting for their outcome by run id.
#[derive(Debug, Default)]
pub struct HookRuns {
    next_id: AtomicU64,
    queue: Mutex<Vec<AuthHookRun>>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<AuthHookOutcome>>>,
    /// `auth-timeout` in seconds (0: not set): no hook runs longer.
    auth_timeout_secs: AtomicU64,
    /// Wakes the sender when a request was queued.
    pub ready: Notify,
}

/// This process's [`HookRuns`]: one socket to main, so one table.
pub static HOOK_RUNS: LazyLock<HookRuns> = LazyLock::new(HookRuns::default);

impl HookRuns {
    /// `auth-timeout` (set once at start, before any login): caps every hook's `timeout=`.
    pub fn set_auth_timeout(&self, limit: Duration) {
        self.auth_timeout_secs
            .store(limit.as_secs(), Ordering::Relaxed);
    }

    /// A hook's `timeout=` capped at `auth-timeout`.
    fn limit(&self, timeout: Duration) -> Duration {
        match self.auth_timeout_secs.load(Ordering::Relaxed) {
            0 => timeout,
            secs => timeout.min(Duration::from_secs(secs)),
        }
    }

    /// Queue `run` (its id is set here); the receiver gets main's report.
    fn submit(&self, mut run: AuthHookRun) -> Option<(u64, oneshot::Receiver<AuthHookOutcome>)> {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        run.id = id;
        {
            let mut queue = lock(&self.queue);
            if queue.len() >= MAX_QUEUED {
                return None;
            }
            lock(&self.waiting).insert(id, tx);
            queue.push(run);
        }
        self.ready.notify_one();
        Some((id, rx))
    }

    /// Everything queued so far, for main.
    pub fn take(&self) -> Vec<AuthHookRun> {
        std::mem::take(&mut *lock(&self.queue))
    }

    /// main's report for run `id`; ignored when nobody waits any more (abandoned login).
    pub fn done(&self, id: u64, outcome: AuthHookOutcome) {
        match lock(&self.waiting).remove(&id) {
            Some(tx) => {
                let _ = tx.send(outcome);
            }
            None => log::debug!("auth hook run {id} ended after its login gave up"),
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }
}

/// The `script` backend: one configured hook.
#[derive(Debug, Clone)]
pub struct Script {
    path: PathBuf,
    /// `timeout=` as configured.
    timeout: Duration,
    runs: &'static HookRuns,
}

impl Script {
    /// The hook at `path`, given at most `timeout_secs` (and at most `auth-timeout`,
    /// [`HookRuns::set_auth_timeout`]).
    pub fn new(path: PathBuf, timeout_secs: u32) -> Self {
        Self::with(path, timeout_secs, &HOOK_RUNS)
    }

    fn with(path: PathBuf, timeout_secs: u32, runs: &'static HookRuns) -> Self {
        Self {
            path,
            timeout: Duration::from_secs(timeout_secs.into()),
            runs,
        }
    }
}

impl AuthBackend for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    /// Must be called inside the tokio runtime (sec-mod's worker links are).
    fn begin(&self, login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let verdict = this.decide_login(login, &peer.events).await;
            let _ = peer.events.send(super::Event::Done(verdict)).await;
        });
        attempt
    }
}

impl Script {
    async fn decide_login(
        &self,
        login: Login,
        events: &tokio::sync::mpsc::Sender<super::Event>,
    ) -> Verdict {
        if let Err(r) = check_login_shape(&login) {
            return Verdict::Rejected(r);
        }
        let hook = self.path.display().to_string();
        let run = AuthHookRun {
            id: 0,
            path: self.path.clone(),
            username: login.username.clone(),
            password: login.password.clone(),
            group: login.group.clone(),
            peer: login.peer,
            vhost: login.vhost.clone(),
            facts: ClientFacts {
                cert_chain: Vec::new(),
                ..(*login.facts).clone()
            },
            // Only a subject a `certificate` method verified may be told to the hook; the
            // chain in the facts is the worker's unverified word.
            cert_subject: None,
        };
        let limit = self.runs.limit(self.timeout);
        let Some((id, rx)) = self.runs.submit(run) else {
            return Verdict::Rejected(Rejection::Script(format!(
                "hook {hook}: too many logins waiting for it"
            )));
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limit + REPORT_GRACE, rx) => outcome,
            // Abandoned (worker gone, auth-timeout): main's report will find nobody.
            () = events.closed() => {
                self.runs.forget(id);
                return Verdict::Rejected(Rejection::BackendGone);
            }
        };
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_dropped)) => AuthHookOutcome::Failed {
                why: "main did not report".to_owned(),
            },
            Err(_elapsed) => {
                self.runs.forget(id);
                AuthHookOutcome::TimedOut {
                    after_secs: u32::try_from(limit.as_secs()).unwrap_or(u32::MAX),
                }
            }
        };
        decide(&hook, &login, outcome)
    }
}

/// What a hook's outcome means for `login` (pure). Every refusal names the hook; the worker
/// link's log line adds the user.
pub fn decide(hook: &str, login: &Login, outcome: AuthHookOutcome) -> Verdict {
    let refused = |why: String| Verdict::Rejected(Rejection::Script(format!("hook {hook} {why}")));
    let answer = match outcome {
        AuthHookOutcome::Exited { code: 0, control } if control.is_empty() => Answer::Accept {
            group: None,
            policy: None,
        },
        AuthHookOutcome::Exited { code, control } if code == 0 || code == EXIT_PENDING => {
            match parse_control(&control) {
                Ok(answer) => answer,
                Err(e) => return refused(format!("gave no valid answer: {e}")),
            }
        }
        AuthHookOutcome::Exited { code, .. } => {
            return refused(format!("refused the login (exit status {code})"))
        }
        AuthHookOutcome::Killed { signal } => {
            return refused(format!("died (signal {signal}): refused"))
        }
        AuthHookOutcome::TimedOut { after_secs } => {
            return refused(format!("did not answer within {after_secs} s: refused"))
        }
        AuthHookOutcome::Failed { why } => return refused(format!("could not run: {why}")),
    };
    match answer {
        Answer::Refuse => refused("refused the login (answer 0)".to_owned()),
        Answer::Accept { group, policy } => accepted(login, group, policy),
    }
}

/// The session's group is the one the hook names, else none. A group the client asked for
/// must be the one the hook named: a hook that only checks the password (exit 0) must not
/// hand out whatever group the client typed (as RADIUS, whose Class must match).
fn accepted(login: &Login, group: Option<String>, policy: Option<Box<PolicyFile>>) -> Verdict {
    let group = group.unwrap_or_default();
    if let Some(asked) = login.group.as_ref().filter(|a| **a != group) {
        return Verdict::Rejected(Rejection::GroupNotAllowed(asked.clone()));
    }
    Verdict::Accepted(Granted {
        group,
        policy,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Event;

    fn login() -> Login {
        Login {
            username: "alice".into(),
            password: "pw".into(),
            group: Some("asked".into()),
            ..Default::default()
        }
    }

    fn exited(code: i32, control: &[u8]) -> AuthHookOutcome {
        AuthHookOutcome::Exited {
            code,
            control: control.to_vec(),
        }
    }

    #[test]
    fn outcomes() {
        let l = login();
        // The client asked for a group the hook did not name: refused, never granted.
        assert_eq!(
            decide("/h", &l, exited(0, b"")),
            Verdict::Rejected(Rejection::GroupNotAllowed("asked".into()))
        );
        assert_eq!(
            decide("/h", &l, exited(0, b"1\ngroup = asked\n")),
            Verdict::accepted("asked")
        );
        let no_group = Login {
            group: None,
            ..login()
        };
        assert_eq!(
            decide("/h", &no_group, exited(0, b"")),
            Verdict::accepted("")
        );
        let deferred = decide(
            "/h",
            &no_group,
            exited(2, b"1\ngroup = staff\nexplicit-ipv4 = 192.168.77.9\n"),
        );
        let Verdict::Accepted(granted) = deferred else {
            panic!("{deferred:?}")
        };
        assert_eq!(granted.group, "staff");
        assert_eq!(
            granted.policy.unwrap().explicit_ipv4,
            Some("192.168.77.9".parse().unwrap())
        );
        for (outcome, words) in [
            (exited(1, b""), "exit status 1"),
            (exited(2, b""), "no valid answer"),
            (exited(2, b"0\n"), "answer 0"),
            (exited(0, b"0\n"), "answer 0"),
            (exited(2, b"yes\n"), "no valid answer"),
            (AuthHookOutcome::Killed { signal: 9 }, "died (signal 9)"),
            (AuthHookOutcome::TimedOut { after_secs: 3 }, "within 3 s"),
            (AuthHookOutcome::Failed { why: "x".into() }, "could not run"),
        ] {
            match decide("/h", &l, outcome.clone()) {
                Verdict::Rejected(Rejection::Script(why)) => {
                    assert!(why.contains("hook /h") && why.contains(words), "{why}")
                }
                other => panic!("{outcome:?}: {other:?}"),
            }
        }
    }

    static RUNS: LazyLock<HookRuns> = LazyLock::new(HookRuns::default);

    /// Two logins in flight: the second's answer comes first and is not held up by the first.
    #[tokio::test]
    async fn each_login_waits_only_for_its_own_report() {
        let script = Script::with("/h".into(), 30, &RUNS);
        let mut slow = script.begin(login());
        let mut fast = script.begin(Login {
            username: "bob".into(),
            ..login()
        });
        let mut runs = Vec::new();
        for _ in 0..100 {
            runs.extend(RUNS.take());
            if runs.len() == 2 {
                break;
            }
            RUNS.ready.notified().await;
        }
        let bob = runs.iter().find(|r| r.username == "bob").unwrap();
        assert_eq!(bob.password, "pw");
        RUNS.done(bob.id, exited(0, b"1\ngroup = asked\n"));
        let verdict = tokio::time::timeout(Duration::from_secs(5), fast.next())
            .await
            .unwrap();
        assert_eq!(verdict, Event::Done(Verdict::accepted("asked")));
        let alice = runs.iter().find(|r| r.username == "alice").unwrap();
        RUNS.done(alice.id, exited(1, b""));
        assert!(matches!(
            slow.next().await,
            Event::Done(Verdict::Rejected(Rejection::Script(_)))
        ));
    }
}
