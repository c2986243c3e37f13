//! TLS for the client connection: rustls with the ring provider, the certificate chain from main,
//! and a signing key that lives in sec-mod ([`remote_key`]).

pub mod client_cert;
pub mod config;
pub mod remote_key;

pub use config::{server_config, TlsSetupError};
