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
