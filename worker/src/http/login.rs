//! The login conversation as an explicit state machine (style.md habit 4; ocserv's
//! `S_AUTH_INACTIVE` / `S_AUTH_INIT` / `S_AUTH_REQ` of protocol.md §0.1). Sans-IO: a client
//! document goes in, and out comes either the reply or a question for sec-mod, whose answer is
//! fed back with [`Login::handle_secmod`].

use rocserv_proto::auth_xml::{ClientRequest, FormFields, LoginForm, RequestKind};
use rocserv_proto::ipc::worker_secmod::{AuthStep, ToSecMod};

/// protocol.md §1.5 (newest ocserv asks for both in one form).
const FORM_MESSAGE: &str = "Please enter your username and password.";
/// protocol.md §1.8.
const LOGIN_FAILED: &str = "Login failed.";

/// Where the conversation of one TLS connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Nothing seen yet.
    ExpectInit,
    /// The username/password form was sent.
    ExpectCredentials { group: Option<String> },
    /// Credentials or an answer went to sec-mod; its verdict is awaited.
    AwaitingVerdict,
    /// sec-mod asked a follow-up question (OTP, PAM challenge), shown as a form.
    ExpectAnswer { prompt: String, secret: bool },
    /// Logged in; a new POST starts a new conversation.
    LoggedIn,
}

/// What to do with a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Answer the client now.
    Reply(Reply),
    /// Ask sec-mod, then pass its answer to [`Login::handle_secmod`].
    AskSecMod(ToSecMod),
}

/// An answer to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200` with this `auth-request` form.
    Form(LoginForm),
    /// `200` with the `complete` document and `Set-Cookie: webvpn=<cookie>`.
    Complete { cookie: String },
    /// `401 Authentication failed`, then close (protocol.md §1.8).
    Rejected,
}

impl Login {
    /// `GET /` and friends: show the form (and restart the conversation).
    pub fn handle_get(self, banner: Option<&str>) -> (Self, Reply) {
        let form = credentials_form(banner, None);
        (Self::ExpectCredentials { group: None }, Reply::Form(form))
    }

    /// A POST body, already parsed.
    pub fn handle_post(
        self,
        request: ClientRequest,
        user_agent: &str,
        banner: Option<&str>,
    ) -> (Self, Step) {
        let form_again = |group| {
            (
                Self::ExpectCredentials { group },
                Step::Reply(Reply::Form(credentials_form(banner, None))),
            )
        };
        match self {
            Self::ExpectAnswer { prompt, secret } => {
                if is_reply(request.kind) {
                    if let Some(answer) = request.secondary_password.or(request.password) {
                        return (
                            Self::AwaitingVerdict,
                            Step::AskSecMod(ToSecMod::AuthContinue { answer }),
                        );
                    }
                    // The same question again: the reply did not answer it.
                    let form = answer_form(&prompt, secret);
                    return (Self::ExpectAnswer { prompt, secret }, Step::Reply(form));
                }
                // A new init (openconnect restarts after a group change) starts over.
                form_again(request.group)
            }
            Self::ExpectInit
            | Self::ExpectCredentials { .. }
            | Self::AwaitingVerdict
            | Self::LoggedIn => {
                let known_group = match &self {
                    Self::ExpectCredentials { group } => group.clone(),
                    Self::ExpectInit
                    | Self::AwaitingVerdict
                    | Self::ExpectAnswer { .. }
                    | Self::LoggedIn => None,
                };
                let group = request.group.or(known_group);
                match (is_reply(request.kind), request.username, request.password) {
                    (true, Some(username), Some(password)) => (
                        Self::AwaitingVerdict,
                        Step::AskSecMod(ToSecMod::AuthStart {
                            username,
                            password,
                            group,
                            user_agent: user_agent.to_owned(),
                        }),
                    ),
                    // init, logout (AnyConnect; ocserv treats it as init) or an incomplete reply.
                    _ => form_again(group),
                }
            }
        }
    }

    /// sec-mod's verdict on the last [`Step::AskSecMod`].
    pub fn handle_secmod(self, step: AuthStep, banner: Option<&str>) -> (Self, Reply) {
        if self != Self::AwaitingVerdict {
            // Only reachable through a bug of ours; end the conversation rather than guess.
            return (Self::ExpectInit, Reply::Rejected);
        }
        match step {
            AuthStep::Complete { cookie, .. } => (Self::LoggedIn, Reply::Complete { cookie }),
            AuthStep::Failed { retry: true } => (
                Self::ExpectCredentials { group: None },
                Reply::Form(credentials_form(banner, Some(LOGIN_FAILED))),
            ),
            AuthStep::Failed { retry: false } => (Self::ExpectInit, Reply::Rejected),
            AuthStep::Continue { message, secret } => {
                let reply = answer_form(&message, secret);
                (
                    Self::ExpectAnswer {
                        prompt: message,
                        secret,
                    },
                    reply,
                )
            }
        }
    }
}

/// An `auth-reply`, or a document without a type that carries fields (lenient, as ocserv's
/// substring search is).
fn is_reply(kind: Option<RequestKind>) -> bool {
    matches!(kind, Some(RequestKind::AuthReply) | None)
}

fn credentials_form(banner: Option<&str>, error: Option<&str>) -> LoginForm {
    LoginForm {
        message: FORM_MESSAGE.to_owned(),
        banner: banner.map(str::to_owned),
        error: error.map(str::to_owned),
        fields: FormFields::UsernamePassword,
    }
}

/// The follow-up question; its input is `secondary_password` so that openconnect's token modes
/// can fill it (protocol.md §1.9).
fn answer_form(prompt: &str, secret: bool) -> Reply {
    Reply::Form(LoginForm {
        message: prompt.to_owned(),
        banner: None,
        error: None,
        fields: FormFields::Secondary {
            label: prompt.to_owned(),
            secret,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::SessionId;

    fn init() -> ClientRequest {
        ClientRequest {
            kind: Some(RequestKind::Init),
            ..ClientRequest::default()
        }
    }

    fn reply(user: &str, pass: &str) -> ClientRequest {
        ClientRequest {
            kind: Some(RequestKind::AuthReply),
            username: Some(user.into()),
            password: Some(pass.into()),
            ..ClientRequest::default()
        }
    }

    fn is_form(step: &Step) -> bool {
        matches!(step, Step::Reply(Reply::Form(_)))
    }

    #[test]
    fn init_credentials_complete() {
        let (login, step) = Login::ExpectInit.handle_post(init(), "ua", None);
        assert!(is_form(&step));
        assert_eq!(login, Login::ExpectCredentials { group: None });
        let (login, step) = login.handle_post(reply("test", "pw"), "ua", None);
        assert_eq!(
            step,
            Step::AskSecMod(ToSecMod::AuthStart {
                username: "test".into(),
                password: "pw".into(),
                group: None,
                user_agent: "ua".into(),
            })
        );
        let (login, reply) = login.handle_secmod(
            AuthStep::Complete {
                cookie: "c00kie".into(),
                sid: SessionId(1),
                username: "test".into(),
            },
            None,
        );
        assert_eq!(login, Login::LoggedIn);
        assert_eq!(
            reply,
            Reply::Complete {
                cookie: "c00kie".into()
            }
        );
    }

    #[test]
    fn wrong_password_then_final_failure() {
        let (login, _) = Login::ExpectInit.handle_post(reply("u", "bad"), "ua", None);
        let (login, r) = login.handle_secmod(AuthStep::Failed { retry: true }, Some("hi"));
        match r {
            Reply::Form(form) => {
                assert_eq!(form.error.as_deref(), Some("Login failed."));
                assert_eq!(form.banner.as_deref(), Some("hi"));
                assert_eq!(form.fields, FormFields::UsernamePassword);
            }
            other => panic!("{other:?}"),
        }
        let (login, _) = login.handle_post(reply("u", "bad"), "ua", None);
        let (_, r) = login.handle_secmod(AuthStep::Failed { retry: false }, None);
        assert_eq!(r, Reply::Rejected);
    }

    #[test]
    fn secondary_question() {
        let (login, _) = Login::ExpectInit.handle_post(reply("u", "p"), "ua", None);
        let (login, r) = login.handle_secmod(
            AuthStep::Continue {
                message: "OTP:".into(),
                secret: true,
            },
            None,
        );
        assert!(matches!(
            r,
            Reply::Form(LoginForm {
                fields: FormFields::Secondary { secret: true, .. },
                ..
            })
        ));
        let answer = ClientRequest {
            kind: Some(RequestKind::AuthReply),
            secondary_password: Some("123456".into()),
            ..ClientRequest::default()
        };
        let (login, step) = login.handle_post(answer, "ua", None);
        assert_eq!(login, Login::AwaitingVerdict);
        assert_eq!(
            step,
            Step::AskSecMod(ToSecMod::AuthContinue {
                answer: "123456".into()
            })
        );
    }

    #[test]
    fn group_from_init_is_kept() {
        let mut first = init();
        first.group = Some("staff".into());
        let (login, _) = Login::ExpectInit.handle_post(first, "ua", None);
        let (_, step) = login.handle_post(reply("u", "p"), "ua", None);
        assert!(matches!(
            step,
            Step::AskSecMod(ToSecMod::AuthStart { group: Some(g), .. }) if g == "staff"
        ));
    }

    #[test]
    fn verdict_without_question_is_refused() {
        let (_, r) = Login::ExpectInit.handle_secmod(AuthStep::Failed { retry: true }, None);
        assert_eq!(r, Reply::Rejected);
    }
}
