//! The XML documents of the login conversation (protocol.md §1.4-1.8): what the client posts,
//! and the forms and the completion message we answer with. Parsed by the sandboxed worker from
//! the internet. (Skeleton: being written; the signatures are the contract.)

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientRequest {
    pub kind: Option<RequestKind>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `secondary_password` (OTP / PAM follow-up prompt).
    pub secondary_password: Option<String>,
    /// `<group-select>` or `group_list`.
    pub group: Option<String>,
}

/// The body is neither acceptable XML nor an urlencoded form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthXmlError {
    #[error("malformed auth document")]
    Malformed,
}

/// Parse a POST body: XML (`<config-auth ...>`, sniffed by `<?xml` or `<config-auth`) or
/// `application/x-www-form-urlencoded`.
pub fn parse_client_body(body: &[u8]) -> Result<ClientRequest, AuthXmlError> {
    let _ = body;
    Err(AuthXmlError::Malformed)
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
}

/// Render `form` as a complete XML document. All text is escaped here and only here.
pub fn render_login_form(form: &LoginForm) -> String {
    let _ = form;
    String::new()
}

/// Render the `type="complete"` success document, carrying `session_token` as
/// `<session-token>` too (protocol.md §1.7).
pub fn render_complete(banner: Option<&str>, session_token: &str) -> String {
    let _ = (banner, session_token);
    String::new()
}
