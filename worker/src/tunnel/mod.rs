//! The established tunnel: the sans-IO [`session`] rules and the [`pump`] that moves CSTP frames
//! between the TLS connection and the tun device, with the [`dtls`] channel beside it (its mode
//! chosen at CONNECT by [`dtls_mode`], its path MTU tracked by [`path_mtu`]).

pub mod dtls;
pub mod dtls_dpd;
pub mod dtls_mode;
pub mod dtls_slots;
pub mod dtls_socket;
pub mod moderation;
pub mod path_mtu;
pub mod pump;
pub mod sched_slice;
pub mod session;
pub mod state_report;
pub mod tun_io;
pub mod udp_gso;
pub mod udp_mmsg;
pub mod udp_pmtu;

pub use pump::{start, Pump, Summary};
pub use session::SessionTimers;
