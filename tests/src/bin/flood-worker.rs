//! A stand-in for `rocserv-worker` that behaves like a compromised one, on its main channel
//! (fd 4), then stays alive. What it does is read from the file `mode` beside its binary:
//! `stats` floods main with `Stats`; `hostname` sends a CONNECT whose host name carries a
//! newline (a DNS record for a host-update script); `state` floods main with `TunnelState`
//! reports (main kills it, as for `stats`). Used by `tests/tests/worker_guard.rs`,
//! which installs it as `rocserv-worker` beside copies of `rocserv` and `rocserv-sm`.
#![allow(
    unsafe_code,
    reason = "fd 4 is inherited from main; taking it needs from_raw_fd"
)]

use std::os::fd::FromRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use rocserv_proto::ipc::main_worker::{ConnectRequest, ToMain, TunnelState};

fn main() {
    // SAFETY: main starts every worker with its end of the main channel on fd 4 and nothing
    // else in this process owns or closes that descriptor.
    let main_channel = unsafe { UnixDatagram::from_raw_fd(4) };
    let mode = std::env::current_exe()
        .ok()
        .and_then(|exe| std::fs::read_to_string(exe.with_file_name("mode")).ok())
        .unwrap_or_default();
    let (msg, count) = match mode.trim() {
        "hostname" => (
            ToMain::Connect(ConnectRequest {
                cookie: "abc".into(),
                hostname: Some("laptop\nevil 60 IN A 10.0.0.1".into()),
                base_mtu: None,
                cstp_mtu: None,
                user_agent: "Open AnyConnect VPN Agent v9.01-3".into(),
                device_platform: String::new(),
                device_type: String::new(),
                dtls_overhead: None,
            }),
            1,
        ),
        "state" => (
            ToMain::TunnelState(TunnelState {
                tls_version: 0x0304,
                tls_suite: 0x1302,
                tls_group: Some(0x001D),
                tls_signature: Some(0x0804),
                dtls_suite: None,
                dtls_flow: 0,
                dtls_in_use: false,
                cstp_compression: None,
                dtls_compression: None,
            }),
            10_000,
        ),
        _ => (
            ToMain::Stats {
                rx_bytes: 0,
                tx_bytes: 0,
            },
            10_000,
        ),
    };
    let Ok(bytes) = rocserv_proto::ipc::encode(&msg) else {
        return;
    };
    // `send` on a connected SOCK_SEQPACKET socket: one message per call.
    for _ in 0..count {
        if main_channel.send(&bytes).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(60));
}
