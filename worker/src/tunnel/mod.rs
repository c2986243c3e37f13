//! The established tunnel: the sans-IO [`session`] rules and the [`pump`] that moves CSTP frames
//! between the TLS connection and the tun device.

pub mod pump;
pub mod session;

pub use pump::{run, Summary};
pub use session::SessionTimers;
