//! The login conversation as an explicit state machine (style.md habit 4; ocserv's
//! `S_AUTH_INACTIVE` / `S_AUTH_INIT` / `S_AUTH_REQ` of protocol.md §0.1). Sans-IO: a client
//! document goes in, and out comes either the reply or a question for sec-mod, whose answer is
//! fed back with [`Login::handle_secmod`].

use rocserv_proto::auth_xml::{
    group_access_path, ClientRequest, FormFields, FormGroup, LoginForm, RequestKind,
};
use rocserv_proto::config::GroupChoice;
use rocserv_proto::ipc::worker_secmod::{AuthStep, ClientFacts, ToSecMod};

/// protocol.md §1.5 (newest ocserv asks for both in one form).
const FORM_MESSAGE: &str = "Please enter your username and password.";
/// protocol.md §1.8.
const LOGIN_FAILED: &str = "Login failed.";

/// The group choice the login form offers (from `WorkerStart`'s `AuthSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    /// `select-group` (or `auto-select-group`'s list), in order.
    pub choices: Vec<GroupChoice>,
    /// `default-select-group`: offered first; choosing it means "no particular group".
    pub default_select: Option<String>,
    /// `select-group-by-url`: a POST to `/NAME` asks for `NAME`.
    pub by_url: bool,
}

/// The group the client asked for. Only a wish: sec-mod grants it only to a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Choice {
    /// None asked for (or `default-select-group`): sec-mod picks the user's default group.
    #[default]
    Default,
    /// Chosen in the form (`group_list`, `<group-select>`).
    Picked(String),
    /// Named by the URL (`select-group-by-url`): the form offers only this group, as ocserv's.
    Url(String),
}

impl Choice {
    fn name(&self) -> Option<&str> {
        match self {
            Self::Default => None,
            Self::Picked(name) | Self::Url(name) => Some(name),
        }
    }
}

/// Where the conversation of one TLS connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Nothing seen yet.
    ExpectInit,
    /// The username/password form was sent.
    ExpectCredentials { group: Choice },
    /// Credentials or an answer went to sec-mod; its verdict is awaited.
    AwaitingVerdict { group: Choice },
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
    pub fn handle_get(self, banner: Option<&str>, groups: &Groups) -> (Self, Reply) {
        let group = Choice::Default;
        let form = credentials_form(banner, None, groups, &group);
        (Self::ExpectCredentials { group }, Reply::Form(form))
    }

    /// A POST body, already parsed; `url_group` is the request path when it is no URL of
    /// ours (a group name with `select-group-by-url`); `facts` what the client said about
    /// itself in this and earlier documents of the connection and in the request's headers.
    pub fn handle_post(
        self,
        request: ClientRequest,
        url_group: Option<&str>,
        facts: &ClientFacts,
        banner: Option<&str>,
        groups: &Groups,
    ) -> (Self, Step) {
        let form_again = |group: Choice| {
            let form = credentials_form(banner, None, groups, &group);
            (
                Self::ExpectCredentials { group },
                Step::Reply(Reply::Form(form)),
            )
        };
        let known = match &self {
            Self::ExpectCredentials { group } | Self::AwaitingVerdict { group } => group.clone(),
            Self::ExpectInit | Self::ExpectAnswer { .. } | Self::LoggedIn => Choice::Default,
        };
        let group = choose(groups, url_group, &request, known);
        match self {
            Self::ExpectAnswer { prompt, secret } => {
                if is_reply(request.kind) {
                    if let Some(answer) = request.secondary_password.or(request.password) {
                        return (
                            Self::AwaitingVerdict {
                                group: Choice::Default,
                            },
                            Step::AskSecMod(ToSecMod::AuthContinue { answer }),
                        );
                    }
                    // The same question again: the reply did not answer it.
                    let form = answer_form(&prompt, secret);
                    return (Self::ExpectAnswer { prompt, secret }, Step::Reply(form));
                }
                // A new init (openconnect restarts after a group change) starts over.
                form_again(group)
            }
            Self::ExpectInit
            | Self::ExpectCredentials { .. }
            | Self::AwaitingVerdict { .. }
            | Self::LoggedIn => {
                match (is_reply(request.kind), request.username, request.password) {
                    (true, Some(username), Some(password)) => (
                        Self::AwaitingVerdict {
                            group: group.clone(),
                        },
                        Step::AskSecMod(ToSecMod::AuthStart {
                            username,
                            password,
                            group: group.name().map(str::to_owned),
                            facts: facts.clone(),
                        }),
                    ),
                    // init, logout (AnyConnect; ocserv treats it as init) or an incomplete reply.
                    _ => form_again(group),
                }
            }
        }
    }

    /// sec-mod's verdict on the last [`Step::AskSecMod`].
    pub fn handle_secmod(
        self,
        step: AuthStep,
        banner: Option<&str>,
        groups: &Groups,
    ) -> (Self, Reply) {
        let Self::AwaitingVerdict { group } = self else {
            // Only reachable through a bug of ours; end the conversation rather than guess.
            return (Self::ExpectInit, Reply::Rejected);
        };
        match step {
            AuthStep::Complete { cookie, .. } => (Self::LoggedIn, Reply::Complete { cookie }),
            AuthStep::Failed { retry: true } => {
                // The form again, with the group the client asked for still chosen.
                let form = credentials_form(banner, Some(LOGIN_FAILED), groups, &group);
                (Self::ExpectCredentials { group }, Reply::Form(form))
            }
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

/// The group a POST asks for, as ocserv's `post_auth_handler` reads it: with
/// `select-group-by-url` the URL wins (the request path, else the path of Cisco's
/// `<group-access>` URL); then the form's choice, where `default-select-group` means none and
/// a label stands for its group (some AnyConnect clients send the label, ocserv #267); else
/// what this conversation asked before. A group not offered is still passed on: sec-mod
/// decides, by membership.
fn choose(
    groups: &Groups,
    url_group: Option<&str>,
    request: &ClientRequest,
    known: Choice,
) -> Choice {
    let is_default = |name: &str| groups.default_select.as_deref() == Some(name);
    if groups.by_url {
        // openconnect's later requests go to the form's `/auth`, and their <group-access>
        // names that URL: a URL of ours is no group.
        let from_url = url_group.or_else(|| {
            let path = request
                .group_access
                .as_deref()
                .and_then(group_access_path)?;
            let target = format!("/{path}");
            super::router::group_of_target(&target)
                .is_some()
                .then_some(path)
        });
        if let Some(name) = from_url {
            return if is_default(name) {
                Choice::Default
            } else {
                Choice::Url(name.to_owned())
            };
        }
    }
    match request.group.as_deref() {
        None | Some("") => known,
        Some(name) if is_default(name) => Choice::Default,
        Some(name) => {
            let by_label = || {
                groups
                    .choices
                    .iter()
                    .find(|c| c.label.as_deref() == Some(name))
            };
            let listed = groups.choices.iter().any(|c| c.name == name);
            match by_label().filter(|_| !listed) {
                Some(choice) => Choice::Picked(choice.name.clone()),
                None => Choice::Picked(name.to_owned()),
            }
        }
    }
}

/// ocserv's group `select` (src/worker-auth.c `get_auth_handler2`), shown when groups are
/// configured: the chosen group first, then `default-select-group` (unless a group is chosen),
/// then the other groups (none when the URL chose: the client has nothing to pick).
fn group_options(groups: &Groups, group: &Choice) -> Vec<FormGroup> {
    if groups.choices.is_empty() {
        return Vec::new();
    }
    let option = |name: &str| FormGroup {
        value: name.to_owned(),
        label: groups
            .choices
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.label.clone())
            .unwrap_or_else(|| name.to_owned()),
    };
    let chosen = group.name();
    let mut options: Vec<FormGroup> = chosen.map(option).into_iter().collect();
    if chosen.is_none() {
        options.extend(groups.default_select.as_deref().map(option));
    }
    if !matches!(group, Choice::Url(_)) {
        options.extend(
            groups
                .choices
                .iter()
                .filter(|c| Some(c.name.as_str()) != chosen)
                .map(|c| option(&c.name)),
        );
    }
    options
}

/// An `auth-reply`, or a document without a type that carries fields (lenient, as ocserv's
/// substring search is).
fn is_reply(kind: Option<RequestKind>) -> bool {
    matches!(kind, Some(RequestKind::AuthReply) | None)
}

fn credentials_form(
    banner: Option<&str>,
    error: Option<&str>,
    groups: &Groups,
    group: &Choice,
) -> LoginForm {
    LoginForm {
        message: FORM_MESSAGE.to_owned(),
        banner: banner.map(str::to_owned),
        error: error.map(str::to_owned),
        fields: FormFields::UsernamePassword,
        groups: group_options(groups, group),
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
        groups: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocserv_proto::ipc::SessionId;

    const NO_GROUPS: Groups = Groups {
        choices: Vec::new(),
        default_select: None,
        by_url: false,
    };

    impl Login {
        fn handle_secmod_(self, step: AuthStep, banner: Option<&str>) -> (Self, Reply) {
            self.handle_secmod(step, banner, &NO_GROUPS)
        }
    }

    fn init() -> ClientRequest {
        ClientRequest {
            kind: Some(RequestKind::Init),
            ..ClientRequest::default()
        }
    }

    fn ua() -> ClientFacts {
        ClientFacts {
            user_agent: "ua".into(),
            ..Default::default()
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
        let (login, step) = Login::ExpectInit.handle_post(init(), None, &ua(), None, &NO_GROUPS);
        assert!(is_form(&step));
        assert_eq!(
            login,
            Login::ExpectCredentials {
                group: Choice::Default
            }
        );
        let (login, step) = login.handle_post(reply("test", "pw"), None, &ua(), None, &NO_GROUPS);
        assert_eq!(
            step,
            Step::AskSecMod(ToSecMod::AuthStart {
                username: "test".into(),
                password: "pw".into(),
                group: None,
                facts: ClientFacts {
                    user_agent: "ua".into(),
                    ..Default::default()
                },
            })
        );
        let (login, reply) = login.handle_secmod_(
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
        let (login, _) =
            Login::ExpectInit.handle_post(reply("u", "bad"), None, &ua(), None, &NO_GROUPS);
        let (login, r) = login.handle_secmod_(AuthStep::Failed { retry: true }, Some("hi"));
        match r {
            Reply::Form(form) => {
                assert_eq!(form.error.as_deref(), Some("Login failed."));
                assert_eq!(form.banner.as_deref(), Some("hi"));
                assert_eq!(form.fields, FormFields::UsernamePassword);
            }
            other => panic!("{other:?}"),
        }
        let (login, _) = login.handle_post(reply("u", "bad"), None, &ua(), None, &NO_GROUPS);
        let (_, r) = login.handle_secmod_(AuthStep::Failed { retry: false }, None);
        assert_eq!(r, Reply::Rejected);
    }

    #[test]
    fn secondary_question() {
        let (login, _) =
            Login::ExpectInit.handle_post(reply("u", "p"), None, &ua(), None, &NO_GROUPS);
        let (login, r) = login.handle_secmod_(
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
        let (login, step) = login.handle_post(answer, None, &ua(), None, &NO_GROUPS);
        assert_eq!(
            login,
            Login::AwaitingVerdict {
                group: Choice::Default
            }
        );
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
        let (login, _) = Login::ExpectInit.handle_post(first, None, &ua(), None, &NO_GROUPS);
        let (_, step) = login.handle_post(reply("u", "p"), None, &ua(), None, &NO_GROUPS);
        assert!(matches!(
            step,
            Step::AskSecMod(ToSecMod::AuthStart { group: Some(g), .. }) if g == "staff"
        ));
    }

    fn staff_groups(by_url: bool) -> Groups {
        Groups {
            choices: vec![
                GroupChoice {
                    name: "staff".into(),
                    label: Some("Staff Network".into()),
                },
                GroupChoice {
                    name: "admins".into(),
                    label: None,
                },
            ],
            default_select: Some("DEFAULT".into()),
            by_url,
        }
    }

    fn options(reply: &Reply) -> Vec<(String, String)> {
        match reply {
            Reply::Form(form) => form
                .groups
                .iter()
                .map(|g| (g.value.clone(), g.label.clone()))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect()
    }

    fn asked_group(step: &Step) -> Option<String> {
        match step {
            Step::AskSecMod(ToSecMod::AuthStart { group, .. }) => group.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn with_group(mut request: ClientRequest, group: &str) -> ClientRequest {
        request.group = Some(group.into());
        request
    }

    /// ocserv's select: default-select-group first when nothing is chosen, labels shown; the
    /// chosen group moves to the top; a follow-up question shows no select.
    #[test]
    fn the_form_offers_the_groups_with_labels() {
        let groups = staff_groups(false);
        let (_, form) = Login::ExpectInit.handle_get(None, &groups);
        assert_eq!(
            options(&form),
            pairs(&[
                ("DEFAULT", "DEFAULT"),
                ("staff", "Staff Network"),
                ("admins", "admins")
            ])
        );
        let (login, step) =
            Login::ExpectInit.handle_post(with_group(init(), "admins"), None, &ua(), None, &groups);
        let Step::Reply(form) = step else {
            panic!("{step:?}")
        };
        assert_eq!(
            options(&form),
            pairs(&[("admins", "admins"), ("staff", "Staff Network")])
        );
        let (login, step) = login.handle_post(reply("u", "p"), None, &ua(), None, &groups);
        assert_eq!(asked_group(&step).as_deref(), Some("admins"));
        // A failed login shows the form again with the same group chosen.
        let (login, form) = login.handle_secmod(AuthStep::Failed { retry: true }, None, &groups);
        assert_eq!(options(&form)[0].0, "admins");
        assert_eq!(
            login,
            Login::ExpectCredentials {
                group: Choice::Picked("admins".into())
            }
        );
        // No groups configured: no select.
        let (_, form) = Login::ExpectInit.handle_get(None, &NO_GROUPS);
        assert!(options(&form).is_empty());
    }

    /// What the client sends: a name, a label (some AnyConnect clients), default-select-group
    /// (no group), or a group not offered (passed on: sec-mod decides by membership).
    #[test]
    fn the_choice_is_resolved_like_ocserv() {
        let groups = staff_groups(false);
        for (sent, want) in [
            ("staff", Some("staff")),
            ("Staff Network", Some("staff")),
            ("DEFAULT", None),
            ("", None),
            ("root", Some("root")),
        ] {
            let (_, step) = Login::ExpectInit.handle_post(
                with_group(reply("u", "p"), sent),
                None,
                &ua(),
                None,
                &groups,
            );
            assert_eq!(asked_group(&step).as_deref(), want, "{sent:?}");
        }
        // Without select-group-by-url the URL means nothing.
        let (_, step) =
            Login::ExpectInit.handle_post(reply("u", "p"), Some("admins"), &ua(), None, &groups);
        assert_eq!(asked_group(&step), None);
    }

    /// select-group-by-url: the path (else Cisco's <group-access> path) names the group and
    /// wins over the form's choice; the form then offers that group only.
    #[test]
    fn the_url_chooses_with_select_group_by_url() {
        let groups = staff_groups(true);
        let (login, step) =
            Login::ExpectInit.handle_post(init(), Some("staff"), &ua(), None, &groups);
        let Step::Reply(form) = step else {
            panic!("{step:?}")
        };
        assert_eq!(options(&form), pairs(&[("staff", "Staff Network")]));
        let (_, step) = login.handle_post(
            with_group(reply("u", "p"), "admins"),
            Some("staff"),
            &ua(),
            None,
            &groups,
        );
        assert_eq!(asked_group(&step).as_deref(), Some("staff"));

        let mut cisco = reply("u", "p");
        cisco.group_access = Some("https://vpn.example.com/admins".into());
        let (_, step) = Login::ExpectInit.handle_post(cisco.clone(), None, &ua(), None, &groups);
        assert_eq!(asked_group(&step).as_deref(), Some("admins"));
        // A camouflage secret in the URL the client was given is no part of the group.
        cisco.group_access = Some("https://vpn.example.com/admins?s3cret".into());
        let (_, step) = Login::ExpectInit.handle_post(cisco.clone(), None, &ua(), None, &groups);
        assert_eq!(asked_group(&step).as_deref(), Some("admins"));
        cisco.group_access = Some("https://vpn.example.com/auth".into());
        let (_, step) = Login::ExpectInit.handle_post(cisco.clone(), None, &ua(), None, &groups);
        assert_eq!(asked_group(&step), None);
        cisco.group_access = Some("https://vpn.example.com/".into());
        let (_, step) =
            Login::ExpectInit.handle_post(with_group(cisco, "staff"), None, &ua(), None, &groups);
        assert_eq!(asked_group(&step).as_deref(), Some("staff"));
        let (_, step) =
            Login::ExpectInit.handle_post(reply("u", "p"), Some("DEFAULT"), &ua(), None, &groups);
        assert_eq!(asked_group(&step), None);
    }

    #[test]
    fn verdict_without_question_is_refused() {
        let (_, r) = Login::ExpectInit.handle_secmod_(AuthStep::Failed { retry: true }, None);
        assert_eq!(r, Reply::Rejected);
    }
}
