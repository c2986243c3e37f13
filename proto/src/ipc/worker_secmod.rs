//! worker <-> sec-mod: signatures for the TLS handshake and the login conversation. The worker
//! is untrusted; sec-mod knows which worker a socket belongs to from main
//! ([`super::main_secmod::ToSecMod::NewWorker`]), never from the worker.
//!
//! Strict request/response: the worker sends one [`ToSecMod`] and waits for one [`FromSecMod`].

use serde::{Deserialize, Serialize};

use super::SessionId;

/// worker -> sec-mod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSecMod {
    /// Sign `message` with the server key using TLS `SignatureScheme` code `scheme`: the key of
    /// `[vhost:NAME]` `vhost` (the certificate the worker chose by the client's SNI), or the
    /// default section's for `None`. The vhost is also the one the link's logins use.
    Sign {
        scheme: u16,
        message: Vec<u8>,
        vhost: Option<String>,
    },
    /// First credentials of a login conversation, from the login form.
    AuthStart {
        username: String,
        password: String,
        /// Group the client selected, if any.
        group: Option<String>,
        user_agent: String,
    },
    /// The answer to an [`AuthStep::Continue`] prompt (PAM challenge, OTP).
    AuthContinue { answer: String },
}

/// sec-mod -> worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromSecMod {
    Signature(Vec<u8>),
    /// The scheme is not one this key can do, or signing failed.
    SignFailed,
    Auth(AuthStep),
}

/// Where a login conversation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthStep {
    /// Logged in: `cookie` is the value of the `webvpn` cookie (unpadded base64url, so it has no
    /// `=`: protocol.md §1.7).
    Complete {
        cookie: String,
        sid: SessionId,
        username: String,
    },
    /// The backend asks one more question; `message` is its prompt, `secret` whether the answer
    /// should be hidden.
    Continue { message: String, secret: bool },
    /// Wrong credentials. With `retry` the worker may show the form again in this conversation;
    /// without it the worker answers 401 and closes.
    Failed { retry: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::roundtrip;

    #[test]
    fn messages_roundtrip() {
        roundtrip(&ToSecMod::Sign {
            scheme: 0x0403,
            message: vec![1, 2, 3],
            vhost: Some("vpn.example.com".into()),
        });
        roundtrip(&ToSecMod::AuthStart {
            username: "u".into(),
            password: "p".into(),
            group: None,
            user_agent: "ua".into(),
        });
        roundtrip(&FromSecMod::Auth(AuthStep::Complete {
            cookie: "c".into(),
            sid: SessionId(5),
            username: "u".into(),
        }));
        roundtrip(&FromSecMod::Auth(AuthStep::Failed { retry: true }));
    }
}
