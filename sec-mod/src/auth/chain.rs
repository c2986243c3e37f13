//! Several methods for one login: every `auth` line in turn (the certificate, then the password
//! method with the form's answers), all must accept and establish the SAME account; or, with a
//! valid certificate, `enable-auth = certificate` (or `auth = certificate` alone) without the
//! form.
//!
//! The same-account rule is ocserv's fix of #694 (1.4.1): a certificate of user A together with
//! the password of user B logged in as B. Here every method's account (the certificate's
//! `cert-user-oid`, or the form's user name for a password method) must be equal, byte for byte.
//!
//! Group: from the certificate when `cert-group-oid` is set (the later methods are then asked
//! for no group), else from the password method; a requested group must be the final one.

use std::sync::Arc;

use super::{Attempt, AttemptPeer, AuthBackend, Event, Granted, Login, Rejection, Verdict};

/// The methods of one section.
pub struct Chain {
    name: &'static str,
    /// The `auth` lines, in order.
    required: Vec<Arc<dyn AuthBackend>>,
    /// The certificate method when a certificate alone logs in (`auth = certificate` as the
    /// only line, or `enable-auth = certificate`).
    alone: Option<Arc<dyn AuthBackend>>,
}

impl Chain {
    /// `required` must not be empty (the configuration parser makes sure).
    pub fn new(required: Vec<Arc<dyn AuthBackend>>, alone: Option<Arc<dyn AuthBackend>>) -> Self {
        let mut name = required
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join("+");
        if alone.is_some() {
            name.push_str(" or certificate");
        }
        Self {
            // Built once per section when sec-mod starts, for the log lines' `&'static str`.
            name: Box::leak(name.into_boxed_str()),
            required,
            alone,
        }
    }
}

impl AuthBackend for Chain {
    fn name(&self) -> &'static str {
        self.name
    }

    fn begin(&self, login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        // The worker asks for a login by certificate alone with no user name and no password
        // (it showed no form).
        let by_certificate = login.username.is_empty() && login.password.is_empty();
        let methods = if by_certificate {
            match &self.alone {
                Some(cert) => vec![Arc::clone(cert)],
                None => {
                    tokio::spawn(async move {
                        let _ = peer
                            .events
                            .send(Event::Done(Verdict::Rejected(Rejection::Malformed)))
                            .await;
                    });
                    return attempt;
                }
            }
        } else {
            self.required.clone()
        };
        tokio::spawn(run(methods, login, peer));
        attempt
    }
}

/// Run `methods` in turn for `login`, forwarding their questions to `peer`.
async fn run(methods: Vec<Arc<dyn AuthBackend>>, login: Login, mut peer: AttemptPeer) {
    let verdict = chain(&methods, login, &mut peer).await;
    let _ = peer.events.send(Event::Done(verdict)).await;
}

async fn chain(methods: &[Arc<dyn AuthBackend>], login: Login, peer: &mut AttemptPeer) -> Verdict {
    let asked_group = login.group.clone();
    let mut account: Option<(String, &'static str)> = None;
    let mut cert_group: Option<String> = None;
    let mut last_group = String::new();
    let mut granted = Granted::default();
    for method in methods {
        let mut this = login.clone();
        // The form may leave the user name out; it is then the certificate's.
        if this.username.is_empty() {
            if let Some((user, _)) = &account {
                this.username = user.clone();
            }
        }
        if cert_group.is_some() {
            this.group = None;
        }
        let form_user = this.username.clone();
        let got = match one(method.as_ref(), this, peer).await {
            Verdict::Accepted(got) => got,
            rejected @ Verdict::Rejected(_) => return rejected,
        };
        let user = got.username.clone().unwrap_or(form_user);
        match &account {
            None => account = Some((user, method.name())),
            Some((first, first_method)) if *first != user => {
                let (cert, password) = if *first_method == "certificate" {
                    (first.clone(), user)
                } else {
                    (user, first.clone())
                };
                return Verdict::Rejected(Rejection::UserMismatch { cert, password });
            }
            Some(_) => {}
        }
        if method.name() == "certificate" && !got.group.is_empty() {
            cert_group = Some(got.group.clone());
        }
        last_group = got.group;
        granted.cert_subject = got.cert_subject.or(granted.cert_subject);
        granted.policy = got.policy.or(granted.policy);
    }
    let group = cert_group.unwrap_or(last_group);
    if let Some(asked) = asked_group {
        if asked != group {
            return Verdict::Rejected(Rejection::GroupNotAllowed(asked));
        }
    }
    granted.group = group;
    granted.username = account.map(|(user, _)| user);
    Verdict::Accepted(granted)
}

/// One method's conversation, its questions passed on to the worker.
async fn one(method: &dyn AuthBackend, login: Login, peer: &mut AttemptPeer) -> Verdict {
    let mut attempt = method.begin(login);
    loop {
        match attempt.next().await {
            Event::Done(verdict) => return verdict,
            Event::Challenge { message, secret } => {
                if peer
                    .events
                    .send(Event::Challenge { message, secret })
                    .await
                    .is_err()
                {
                    return Verdict::Rejected(Rejection::BackendGone);
                }
                let Some(answer) = peer.answers.recv().await else {
                    return Verdict::Rejected(Rejection::BackendGone);
                };
                if !attempt.answer(answer).await {
                    return Verdict::Rejected(Rejection::BackendGone);
                }
            }
        }
    }
}
