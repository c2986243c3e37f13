//! The XML documents of the login conversation (protocol.md §1.4-1.8): what the client posts,
//! and the forms and the completion message we answer with. Parsed by the sandboxed worker from
//! the internet.
//!
//! Client bodies ([`parse_client_body`], in `client.rs`) are read leniently, the way ocserv
//! reads them: unknown elements are ignored, any order is fine, only the fields we use are kept.
//! Each kept value is at most [`MAX_FIELD`] bytes; a longer one is refused, not truncated, so a
//! password or user name is never silently changed. Server documents ([`render_login_form`],
//! [`render_complete`], in `render.rs`) escape every piece of text in one function.

mod client;
pub mod profile;
mod render;

pub use client::parse_client_body;
#[doc(hidden)]
pub use render::xml_safe;
pub use render::{render_complete, render_login_form};

/// The path of a `<group-access>` URL (`https://host[:port]/PATH`), without the leading `/`,
/// query or fragment; `None` when it has no path or is not an https URL.
pub fn group_access_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let (_host, path) = rest.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    (!path.is_empty()).then_some(path)
}

/// Longest user name, password, secondary password or group we accept, in bytes after
/// unescaping (ocserv keeps far less; a login form field is never longer).
pub const MAX_FIELD: usize = 1024;

/// What kind of document the client posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `type="init"`, or an empty/non-XML body without credentials.
    Init,
    /// `type="auth-reply"`, or an urlencoded body with fields.
    AuthReply,
    /// `type="logout"` (AnyConnect).
    Logout,
}

/// The fields of a client document we use. Unknown elements are ignored.
///
/// `kind` is `None` only for an XML document that does not say (no `config-auth`, or a `type`
/// we do not know). A field present more than once keeps its first value, as ocserv's
/// substring search does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientRequest {
    pub kind: Option<RequestKind>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `secondary_password` (OTP / PAM follow-up prompt).
    pub secondary_password: Option<String>,
    /// `<group-select>` or `group_list`.
    pub group: Option<String>,
    /// `<group-access>`: the URL the client was pointed at (Cisco clients and openconnect
    /// send it in `init`); its path names a group with `select-group-by-url`.
    pub group_access: Option<String>,
    /// `<device-id>` and `<mac-address-list>`: what the client says about its device.
    pub device: DeviceFacts,
}

/// What an aggregate-auth document says about the client's device. openconnect 9.01 sends
/// `<device-id>linux-64</device-id>` (its `--os`; with `android`/`apple-ios` also the
/// attributes `platform-version`, `device-type` and `unique-id`) in every document; AnyConnect
/// adds `computer-name` and `<mac-address-list><mac-address>..</mac-address>..` (observed with
/// the real openconnect; AnyConnect's shape from public client captures).
///
/// Lenient: an over-long, badly escaped or malformed value is dropped (the field is absent),
/// never an error, so junk here never fails a login. Values are at most [`MAX_DEVICE_TEXT`]
/// bytes, without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceFacts {
    /// The text of `<device-id>`: the platform (`linux-64`, `win`, `mac-intel`, ...).
    pub platform: Option<String>,
    /// `<device-id unique-id=..>`.
    pub unique_id: Option<String>,
    /// `<device-id computer-name=..>`.
    pub computer_name: Option<String>,
    /// `<device-id device-type=..>`.
    pub device_type: Option<String>,
    /// `<device-id platform-version=..>`.
    pub platform_version: Option<String>,
    /// Each `<mac-address>` inside `<mac-address-list>`, normalised
    /// ([`crate::ipc::worker_secmod::normalize_mac`]), without duplicates, at most
    /// [`crate::ipc::worker_secmod::MAX_MACS`]; malformed ones dropped.
    pub macs: Vec<String>,
}

/// Longest device fact kept (longer ones are dropped, not cut: a cut identifier would be a
/// different one).
pub const MAX_DEVICE_TEXT: usize = crate::ipc::worker_secmod::MAX_FACT;

impl DeviceFacts {
    /// Lay `newer` (a later document of the same connection) over these: each fact it has
    /// replaces ours, the others stay (openconnect repeats `<device-id>` in every document,
    /// AnyConnect may send its MAC list only in `init`).
    pub fn update(&mut self, newer: DeviceFacts) {
        let DeviceFacts {
            platform,
            unique_id,
            computer_name,
            device_type,
            platform_version,
            macs,
        } = newer;
        for (slot, value) in [
            (&mut self.platform, platform),
            (&mut self.unique_id, unique_id),
            (&mut self.computer_name, computer_name),
            (&mut self.device_type, device_type),
            (&mut self.platform_version, platform_version),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        if !macs.is_empty() {
            self.macs = macs;
        }
    }

    /// The [`ClientFacts`](crate::ipc::worker_secmod::ClientFacts) of a login: these facts,
    /// else the login request's headers (`header(name)`: `X-AnyConnect-Identifier-*` of
    /// openconnect's mobile `--os` values, `X-AnyConnect-Platform` of AnyConnect), and the
    /// `User-Agent`. Every text goes through `fact_text`, so the result passes
    /// `ClientFacts::check`.
    pub fn login_facts<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> crate::ipc::worker_secmod::ClientFacts {
        use crate::ipc::worker_secmod::{fact_text, valid_mac, ClientFacts, MAX_MACS};
        let clean = |v: &str| Some(fact_text(v)).filter(|t| !t.trim().is_empty());
        let pick = |own: &Option<String>, headers: &[&str]| {
            own.as_deref()
                .and_then(clean)
                .or_else(|| headers.iter().find_map(|h| header(h).and_then(clean)))
        };
        ClientFacts {
            user_agent: fact_text(header("User-Agent").unwrap_or_default()),
            device_id: pick(
                &self.unique_id,
                &["X-AnyConnect-Identifier-Device-UniqueID"],
            ),
            platform: pick(
                &self.platform,
                &["X-AnyConnect-Platform", "X-AnyConnect-Identifier-Platform"],
            ),
            hostname: pick(&self.computer_name, &[]),
            macs: self
                .macs
                .iter()
                .filter(|m| valid_mac(m))
                .take(MAX_MACS)
                .cloned()
                .collect(),
            cert_chain: Vec::new(),
        }
    }
}

/// The body is neither acceptable XML nor an urlencoded form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthXmlError {
    /// Not well-formed XML, a bad entity or `%` escape in a field we use, or not UTF-8.
    #[error("malformed auth document")]
    Malformed,
    /// A field we use is longer than [`MAX_FIELD`] bytes.
    #[error("auth document field longer than {MAX_FIELD} bytes")]
    FieldTooLong,
}

/// Which inputs a login form asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormFields {
    /// `username` (text) and `password` (password).
    UsernamePassword,
    /// One follow-up question, input `secondary_password`; `secret` picks type password/text.
    Secondary { label: String, secret: bool },
}

/// A login form (`type="auth-request"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    pub message: String,
    pub banner: Option<String>,
    /// Shown as `<error>` (e.g. "Login failed.") above the inputs.
    pub error: Option<String>,
    pub fields: FormFields,
    /// The group choices, shown as ocserv's `<select name="group_list" label="Group:">`
    /// under the username and password inputs; empty = no group choice.
    pub groups: Vec<FormGroup>,
}

/// One `<option>` of the group choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormGroup {
    /// What the client sends back (`value`).
    pub value: String,
    /// What the user sees (openconnect's `--authgroup` matches it).
    pub label: String,
}
