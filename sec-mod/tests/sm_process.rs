//! Drives the real `rocserv-sm` binary the way main does: a seqpacket socket on fd 3, `Start`,
//! `NewWorker` with a worker channel attached, then signing and logins over that channel.
// Test helpers outside #[test] functions may unwrap and panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// pre_exec (moving the socket onto fd 3 in the child) needs unsafe; nothing else does.
#![allow(unsafe_code)]

mod common;

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use common::{generate, verify_with_cert, TempDir};
use nix::sys::socket::{
    recv, send, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::time::TimeVal;
use rocserv_proto::config::AuthMethod;
use rocserv_proto::ipc::main_secmod::{self, SecModConfig, SessionRefusal};
use rocserv_proto::ipc::worker_secmod::{self, AuthStep};
use rocserv_proto::ipc::{self, CloseReason, KeyKind, WorkerId, MAX_MESSAGE};
use rocserv_sec_mod::auth::crypt::{hash_sha256, SALT_LEN};

/// Upper bound for any single answer from sec-mod (a hash takes milliseconds).
const TIMEOUT: Duration = Duration::from_secs(20);

struct Fixture {
    dir: TempDir,
    cert_pem: String,
    config: SecModConfig,
}

fn fixture() -> Fixture {
    let dir = TempDir::new("proc");
    let (cert_pem, key_pem) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let cert = dir.write("cert.pem", &cert_pem);
    let key = dir.write("key.pem", &key_pem);
    let alice = hash_sha256("alicepw", &[5; SALT_LEN]);
    let passwd = dir.write("ocpasswd", format!("alice:staff:{alice}\n"));
    let config = SecModConfig {
        server_key: key,
        server_cert: cert,
        auth: plan(AuthMethod::Plain {
            passwd: Some(passwd),
            otp: None,
        }),
        stats_report_secs: 60,
        cookie_timeout_secs: 300,
        persistent_cookies: false,
        auth_timeout_secs: 30,
        check_only: false,
        ban_points_wrong_password: 10,
        deny_roaming: false,
        policy_files: Default::default(),
        vhosts: Vec::new(),
        auto_select_group: false,
        session_db: None,
        key_pin: Default::default(),
        cluster: None,
    };
    Fixture {
        dir,
        cert_pem,
        config,
    }
}

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    for fd in [&a, &b] {
        setsockopt(
            fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(TIMEOUT.as_secs() as i64, 0),
        )
        .unwrap();
    }
    (a, b)
}

/// Start rocserv-sm with `child_end` as its fd 3.
fn spawn(child_end: OwnedFd) -> Child {
    let raw = child_end.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rocserv-sm"));
    cmd.args(["--log-level", "3"]).env_clear();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl, prctl) are made.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(child_end);
    child
}

fn send_msg<T: serde::Serialize>(fd: &OwnedFd, msg: &T) {
    send(
        fd.as_raw_fd(),
        &ipc::encode(msg).unwrap(),
        MsgFlags::empty(),
    )
    .unwrap();
}

fn recv_msg<T: serde::de::DeserializeOwned>(fd: &OwnedFd) -> T {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    assert!(n > 0, "sec-mod closed the socket");
    ipc::decode(&buf[..n]).unwrap()
}

/// Hand sec-mod a new worker channel; returns the worker's end.
fn new_worker(main: &OwnedFd, worker: u64) -> OwnedFd {
    let (ours, theirs) = seqpacket_pair();
    let bytes = ipc::encode(&main_secmod::ToSecMod::NewWorker {
        worker: WorkerId(worker),
        peer: "192.0.2.7:40000".parse().unwrap(),
    })
    .unwrap();
    let fds = [theirs.as_raw_fd()];
    sendmsg::<()>(
        main.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    ours
}

fn auth(worker: &OwnedFd, user: &str, pw: &str) -> AuthStep {
    auth_group(worker, user, pw, None)
}

fn auth_group(worker: &OwnedFd, user: &str, pw: &str, group: Option<&str>) -> AuthStep {
    send_msg(
        worker,
        &worker_secmod::ToSecMod::AuthStart {
            username: user.into(),
            password: pw.into(),
            group: group.map(Into::into),
            facts: worker_secmod::ClientFacts {
                user_agent: "Open AnyConnect VPN Agent v9.01".into(),
                ..Default::default()
            },
        },
    );
    match recv_msg(worker) {
        worker_secmod::FromSecMod::Auth(step) => step,
        other => panic!("unexpected {other:?}"),
    }
}

fn wait_exit(mut child: Child) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().unwrap());
    });
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("rocserv-sm (pid {pid}) did not exit"))
}

fn start(config: &SecModConfig) -> (OwnedFd, Child, main_secmod::FromSecMod) {
    let (main, child_end) = seqpacket_pair();
    let child = spawn(child_end);
    send_msg(&main, &main_secmod::ToSecMod::Start(config.clone()));
    let answer = recv_msg(&main);
    (main, child, answer)
}

#[test]
fn full_conversation() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert_eq!(
        answer,
        main_secmod::FromSecMod::Ready {
            key: KeyKind::EcdsaP256,
            vhost_keys: Vec::new(),
            groups: Vec::new(),
        }
    );

    let worker = new_worker(&main, 1);
    // Signing for the TLS handshake.
    let message = tls13_certificate_verify(32);
    assert_signed(&worker, &f.cert_pem, 0x0403, &message);

    // Login: a wrong password, an unknown user, then the right one.
    assert_eq!(
        auth(&worker, "alice", "nope"),
        AuthStep::Failed { retry: true }
    );
    assert_eq!(
        auth(&worker, "bob", "alicepw"),
        AuthStep::Failed { retry: true }
    );
    expect_ban_points(&main, 2);
    let (cookie, sid) = match auth(&worker, "alice", "alicepw") {
        AuthStep::Complete {
            cookie,
            sid,
            username,
        } => {
            assert_eq!(username, "alice");
            (cookie, sid)
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(cookie.len(), 43);
    assert!(!cookie.contains('='));

    // CONNECT with the cookie, through main.
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(1),
            peer: "192.0.2.7".parse().unwrap(),
            cookie: cookie.clone(),
        },
    );
    match recv_msg(&main) {
        main_secmod::FromSecMod::SessionOpened {
            worker: WorkerId(1),
            result: Ok(grant),
        } => {
            assert_eq!(grant.sid, sid);
            assert_eq!(grant.username, "alice");
            assert_eq!(grant.groupname, "staff");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The session is granted: sec-mod has ended that worker's channel.
    expect_closed(&worker);
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(2),
            peer: "192.0.2.7".parse().unwrap(),
            cookie: "forged".into(),
        },
    );
    assert_eq!(
        recv_msg::<main_secmod::FromSecMod>(&main),
        main_secmod::FromSecMod::SessionOpened {
            worker: WorkerId(2),
            result: Err(SessionRefusal::UnknownCookie)
        }
    );
    // The user logs out: the cookie dies.
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionClose {
            sid,
            reason: CloseReason::UserDisconnect,
            end: None,
        },
    );
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(3),
            peer: "192.0.2.7".parse().unwrap(),
            cookie,
        },
    );
    assert!(matches!(
        recv_msg::<main_secmod::FromSecMod>(&main),
        main_secmod::FromSecMod::SessionOpened {
            result: Err(SessionRefusal::UnknownCookie),
            ..
        }
    ));

    // Garbage from a worker closes only that worker's channel.
    let garbage = new_worker(&main, 5);
    send(garbage.as_raw_fd(), &[0xff; 7], MsgFlags::empty()).unwrap();
    expect_closed(&garbage);
    let second = new_worker(&main, 4);
    assert!(matches!(
        auth(&second, "alice", "alicepw"),
        AuthStep::Complete { .. }
    ));

    // main goes away: sec-mod exits cleanly.
    drop(main);
    assert!(wait_exit(child).success());
    drop(f.dir);
}

/// TLS 1.3 server CertificateVerify content (RFC 8446 §4.4.3) with a transcript hash of
/// `hash_len` bytes.
fn tls13_certificate_verify(hash_len: u8) -> Vec<u8> {
    let mut m = vec![0x20; 64];
    m.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
    m.extend(0..hash_len);
    m
}

/// TLS 1.2 ServerKeyExchange signed params for x25519.
fn tls12_server_key_exchange() -> Vec<u8> {
    let mut m = vec![0x11; 64];
    m.extend([3, 0x00, 0x1d, 32]);
    m.extend([0x22; 32]);
    m
}

fn sign_request(worker: &OwnedFd, scheme: u16, message: &[u8]) {
    sign_request_in(worker, None, scheme, message);
}

fn sign_request_in(worker: &OwnedFd, vhost: Option<&str>, scheme: u16, message: &[u8]) {
    send_msg(
        worker,
        &worker_secmod::ToSecMod::Sign {
            scheme,
            message: message.to_vec(),
            vhost: vhost.map(str::to_owned),
        },
    );
}

/// Ask for a signature of `message` and check it with the certificate's public key.
fn assert_signed(worker: &OwnedFd, cert_pem: &str, scheme: u16, message: &[u8]) {
    sign_request(worker, scheme, message);
    match recv_msg(worker) {
        worker_secmod::FromSecMod::Signature(sig) => {
            assert!(verify_with_cert(cert_pem.as_bytes(), scheme, message, &sig))
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// sec-mod has closed this worker channel (without answering): the next read is end-of-file.
fn expect_closed(worker: &OwnedFd) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    match recv(worker.as_raw_fd(), &mut buf, MsgFlags::empty()) {
        Ok(0) => {}
        Ok(n) => panic!("sec-mod answered ({n} bytes) instead of closing the channel"),
        Err(e) => panic!("sec-mod did not close the channel: {e}"),
    }
}

/// Each wrong password is reported to main with ban-points-wrong-password (10 here).
fn expect_ban_points(main: &OwnedFd, count: usize) {
    for _ in 0..count {
        match recv_msg::<main_secmod::FromSecMod>(main) {
            main_secmod::FromSecMod::BanPoints { points: 10, .. } => {}
            other => panic!("expected BanPoints, got {other:?}"),
        }
    }
}

#[test]
fn three_failures_end_the_conversation() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let worker = new_worker(&main, 9);
    assert_eq!(
        auth(&worker, "alice", "x1"),
        AuthStep::Failed { retry: true }
    );
    assert_eq!(
        auth(&worker, "alice", "x2"),
        AuthStep::Failed { retry: true }
    );
    assert_eq!(
        auth(&worker, "alice", "x3"),
        AuthStep::Failed { retry: false }
    );
    expect_ban_points(&main, 3);
    // Even the right password is refused on this connection now.
    assert_eq!(
        auth(&worker, "alice", "alicepw"),
        AuthStep::Failed { retry: false }
    );
    // An answer without an open conversation is refused, not fatal.
    send_msg(
        &worker,
        &worker_secmod::ToSecMod::AuthContinue {
            answer: "123456".into(),
        },
    );
    assert_eq!(
        recv_msg::<worker_secmod::FromSecMod>(&worker),
        worker_secmod::FromSecMod::Auth(AuthStep::Failed { retry: false })
    );
    // A fresh connection starts with fresh attempts.
    let other = new_worker(&main, 10);
    assert!(matches!(
        auth(&other, "alice", "alicepw"),
        AuthStep::Complete { .. }
    ));
    drop(main);
    assert!(wait_exit(child).success());
}

#[test]
fn check_only_answers_and_exits() {
    let mut f = fixture();
    f.config.check_only = true;
    let (_main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    assert!(wait_exit(child).success());
}

#[test]
fn start_failures_are_reported_and_exit_1() {
    let f = fixture();
    let mut missing_passwd = f.config.clone();
    let missing = f.dir.path().join("no-such-ocpasswd");
    missing_passwd.auth = plan(AuthMethod::Plain {
        passwd: Some(missing.clone()),
        otp: None,
    });
    let (_main, child, answer) = start(&missing_passwd);
    match answer {
        main_secmod::FromSecMod::StartFailed { reason } => {
            assert!(reason.contains(&*missing.to_string_lossy()), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(wait_exit(child).code(), Some(1));

    // A malformed one-time password file is reported with its line, before any login.
    let mut bad_otp = f.config.clone();
    let AuthMethod::Plain { passwd, .. } = f.config.auth.required[0].clone() else {
        panic!("fixture uses plain");
    };
    let otp = f
        .dir
        .write("users.oath", "HOTP alice - 00\nMOTP bob - 00\n");
    bad_otp.auth = plan(AuthMethod::Plain {
        passwd,
        otp: Some(otp),
    });
    let (_main, child, answer) = start(&bad_otp);
    match answer {
        main_secmod::FromSecMod::StartFailed { reason } => {
            assert!(
                reason.contains("users.oath: line 2: unknown token type \"MOTP\""),
                "{reason}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(wait_exit(child).code(), Some(1));

    let mut mismatch = f.config.clone();
    let (_, other_key) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    mismatch.server_key = f.dir.write("other.pem", other_key);
    let (_main, child, answer) = start(&mismatch);
    match answer {
        main_secmod::FromSecMod::StartFailed { reason } => {
            assert!(reason.contains("does not match"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(wait_exit(child).code(), Some(1));
}

/// A worker gets one handshake signature: a second request ends its channel, whatever it asks.
#[test]
fn second_signature_closes_the_link() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let worker = new_worker(&main, 20);
    assert_signed(&worker, &f.cert_pem, 0x0403, &tls13_certificate_verify(32));
    sign_request(&worker, 0x0403, &tls13_certificate_verify(32));
    expect_closed(&worker);
    // A scheme the key cannot do uses up the one signature too.
    let other = new_worker(&main, 21);
    sign_request(&other, 0x0804, &tls13_certificate_verify(32));
    assert_eq!(
        recv_msg::<worker_secmod::FromSecMod>(&other),
        worker_secmod::FromSecMod::SignFailed
    );
    sign_request(&other, 0x0403, &tls12_server_key_exchange());
    expect_closed(&other);
    // Other workers are served as before.
    let third = new_worker(&main, 22);
    assert_signed(&third, &f.cert_pem, 0x0403, &tls12_server_key_exchange());
    drop(main);
    assert!(wait_exit(child).success());
}

/// Once the login conversation started, the handshake is over: no signature any more.
#[test]
fn no_signature_after_a_login_request() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let worker = new_worker(&main, 30);
    assert_eq!(
        auth(&worker, "alice", "wrong"),
        AuthStep::Failed { retry: true }
    );
    expect_ban_points(&main, 1);
    sign_request(&worker, 0x0403, &tls13_certificate_verify(32));
    expect_closed(&worker);
    // A signed handshake, then a login: still fine (the usual order).
    let usual = new_worker(&main, 31);
    assert_signed(&usual, &f.cert_pem, 0x0403, &tls13_certificate_verify(48));
    assert!(matches!(
        auth(&usual, "alice", "alicepw"),
        AuthStep::Complete { .. }
    ));
    drop(main);
    assert!(wait_exit(child).success());
}

/// sec-mod signs only what a TLS server signs in its handshake; anything else ends the channel.
#[test]
fn only_handshake_structures_are_signed() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let mut client_cv = tls13_certificate_verify(32);
    client_cv[64 + 9] = b'c';
    let mut odd_hash = tls13_certificate_verify(32);
    odd_hash.push(0);
    let mut long_point = tls12_server_key_exchange();
    long_point.push(0);
    let refused: [(u16, Vec<u8>); 6] = [
        (0x0403, b"transcript".to_vec()),
        (0x0403, vec![0x20; 130]),
        (0x0403, client_cv),
        (0x0403, odd_hash),
        (0x0403, long_point),
        // SHA-1 ECDSA, with a well-formed message.
        (0x0203, tls13_certificate_verify(32)),
    ];
    for (n, (scheme, message)) in (40..).zip(refused) {
        let worker = new_worker(&main, n);
        sign_request(&worker, scheme, &message);
        expect_closed(&worker);
    }
    let fine = new_worker(&main, 50);
    assert_signed(&fine, &f.cert_pem, 0x0403, &tls13_certificate_verify(48));
    drop(main);
    assert!(wait_exit(child).success());
}

/// A cookie reconnect: the new worker signs its handshake and goes straight to CONNECT (no
/// login); main's SessionOpen for it ends its channel, granted or refused.
#[test]
fn session_open_closes_the_link() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let login = new_worker(&main, 60);
    assert_signed(&login, &f.cert_pem, 0x0403, &tls13_certificate_verify(32));
    let AuthStep::Complete { cookie, .. } = auth(&login, "alice", "alicepw") else {
        panic!("login failed");
    };
    let reconnect = new_worker(&main, 61);
    assert_signed(
        &reconnect,
        &f.cert_pem,
        0x0403,
        &tls13_certificate_verify(32),
    );
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(61),
            peer: "192.0.2.7".parse().unwrap(),
            cookie,
        },
    );
    assert!(matches!(
        recv_msg::<main_secmod::FromSecMod>(&main),
        main_secmod::FromSecMod::SessionOpened {
            worker: WorkerId(61),
            result: Ok(_)
        }
    ));
    expect_closed(&reconnect);
    // A refused cookie ends the channel too.
    let refused = new_worker(&main, 62);
    send_msg(
        &main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(62),
            peer: "192.0.2.7".parse().unwrap(),
            cookie: "forged".into(),
        },
    );
    assert!(matches!(
        recv_msg::<main_secmod::FromSecMod>(&main),
        main_secmod::FromSecMod::SessionOpened {
            worker: WorkerId(62),
            result: Err(_)
        }
    ));
    expect_closed(&refused);
    drop(main);
    assert!(wait_exit(child).success());
}

/// A worker's group request is the client's word: sec-mod grants only a group the password
/// file lists for the user (the first one when none is asked for), refuses any other as a
/// failed login, and the session carries the granted group. With `auto-select-group` the
/// `Ready` answer lists the file's groups.
#[test]
fn only_a_group_the_user_is_in_is_granted() {
    let f = fixture();
    let alice = hash_sha256("alicepw", &[5; SALT_LEN]);
    f.dir.write(
        "ocpasswd",
        format!(
            "alice:staff,admins:{alice}
bob:ops,staff:{alice}
"
        ),
    );
    let config = SecModConfig {
        auto_select_group: true,
        ..f.config.clone()
    };
    let (main, child, answer) = start(&config);
    assert_eq!(
        answer,
        main_secmod::FromSecMod::Ready {
            key: KeyKind::EcdsaP256,
            vhost_keys: Vec::new(),
            groups: vec!["admins".into(), "ops".into(), "staff".into()],
        }
    );
    let granted = |worker_id: u64, group: Option<&str>| -> Result<String, AuthStep> {
        let worker = new_worker(&main, worker_id);
        let step = auth_group(&worker, "alice", "alicepw", group);
        let AuthStep::Complete { cookie, .. } = step else {
            return Err(step);
        };
        send_msg(
            &main,
            &main_secmod::ToSecMod::SessionOpen {
                worker: WorkerId(worker_id),
                peer: "192.0.2.7".parse().unwrap(),
                cookie,
            },
        );
        match recv_msg::<main_secmod::FromSecMod>(&main) {
            main_secmod::FromSecMod::SessionOpened {
                result: Ok(grant), ..
            } => Ok(grant.groupname),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(granted(70, None), Ok("staff".into()));
    assert_eq!(granted(71, Some("")), Ok("staff".into()));
    assert_eq!(granted(72, Some("admins")), Ok("admins".into()));
    for (id, other) in [
        (73, "ops"),
        (74, "Staff"),
        (75, "../staff"),
        (76, "staff\n"),
    ] {
        assert_eq!(
            granted(id, Some(other)),
            Err(AuthStep::Failed { retry: true }),
            "{other:?}"
        );
        expect_ban_points(&main, 1);
    }
    drop(main);
    assert!(wait_exit(child).success());
}

/// The running binary is locked down (`harden::apply`): seccomp filter, no_new_privs, only the
/// kept capabilities, no core files.
#[test]
fn running_secmod_is_locked_down() {
    let f = fixture();
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let pid = child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(field("Seccomp"), "2", "{status}");
    assert_eq!(field("NoNewPrivs"), "1", "{status}");
    let kept = rocserv_sec_mod::harden::kept_mask();
    let caps = |key: &str| u64::from_str_radix(&field(key), 16).unwrap();
    assert_eq!(caps("CapEff") & !kept, 0, "{status}");
    assert_eq!(caps("CapPrm") & !kept, 0, "{status}");
    if nix::unistd::geteuid().is_root() {
        assert_eq!(caps("CapBnd"), kept, "{status}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{limits}"
    );
    // It still serves logins with all of that in place.
    let worker = new_worker(&main, 1);
    assert!(matches!(
        auth(&worker, "alice", "alicepw"),
        AuthStep::Complete { .. }
    ));
    drop(main);
    assert!(wait_exit(child).success());
}

/// Log in as alice over a new worker channel and present the cookie from `peer`.
fn login_and_open(
    main: &OwnedFd,
    worker: u64,
    peer: std::net::IpAddr,
) -> Result<main_secmod::SessionGrant, SessionRefusal> {
    let link = new_worker(main, worker);
    let AuthStep::Complete { cookie, .. } = auth(&link, "alice", "alicepw") else {
        panic!("login failed");
    };
    send_msg(
        main,
        &main_secmod::ToSecMod::SessionOpen {
            worker: WorkerId(worker),
            peer,
            cookie,
        },
    );
    match recv_msg(main) {
        main_secmod::FromSecMod::SessionOpened { result, .. } => result,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn per_user_and_group_files_are_read_at_each_session_open() {
    let mut f = fixture();
    std::fs::create_dir_all(f.dir.path().join("users")).unwrap();
    std::fs::create_dir_all(f.dir.path().join("groups")).unwrap();
    f.config.policy_files.per_user_dir = Some(f.dir.path().join("users"));
    f.config.policy_files.per_group_dir = Some(f.dir.path().join("groups"));
    f.dir.write("groups/staff", "dpd = 5\n");
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));

    // The group's file applies; alice has no file of her own.
    let grant = login_and_open(&main, 1, "192.0.2.7".parse().unwrap()).unwrap();
    assert_eq!(grant.overrides.group.as_ref().unwrap().dpd, Some(5));
    assert_eq!(grant.overrides.user, None);

    // An edit applies to the next CONNECT without a reload; deny-roaming from the user's file
    // is honoured although the global configuration allows roaming.
    f.dir.write("users/alice", "dpd = 6\ndeny-roaming = true\n");
    assert_eq!(
        login_and_open(&main, 2, "198.51.100.1".parse().unwrap()),
        Err(SessionRefusal::UnknownCookie)
    );
    let grant = login_and_open(&main, 3, "192.0.2.7".parse().unwrap()).unwrap();
    assert_eq!(grant.overrides.user.as_ref().unwrap().dpd, Some(6));

    // A bad line refuses the CONNECT (fail closed).
    f.dir.write("users/alice", "dpd = 6\nno-such-option = 1\n");
    assert_eq!(
        login_and_open(&main, 4, "192.0.2.7".parse().unwrap()),
        Err(SessionRefusal::PolicyFile)
    );
    f.dir.write("users/alice", "");
    f.dir.write("groups/staff", "route = 10.0.0.0/33\n");
    assert_eq!(
        login_and_open(&main, 5, "192.0.2.7".parse().unwrap()),
        Err(SessionRefusal::PolicyFile)
    );

    drop(main);
    assert!(wait_exit(child).success());
}
/// A device binding added after the login (or the login's check skipped) is checked again at
/// CONNECT: the cookie is refused, and accepted again once the binding is gone.
#[test]
fn device_binding_is_checked_again_at_session_open() {
    let mut f = fixture();
    std::fs::create_dir_all(f.dir.path().join("users")).unwrap();
    f.config.policy_files.per_user_dir = Some(f.dir.path().join("users"));
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let link = new_worker(&main, 1);
    let AuthStep::Complete { cookie, .. } = auth(&link, "alice", "alicepw") else {
        panic!("login failed");
    };
    let open = |worker: u64| {
        send_msg(
            &main,
            &main_secmod::ToSecMod::SessionOpen {
                worker: WorkerId(worker),
                peer: "192.0.2.7".parse().unwrap(),
                cookie: cookie.clone(),
            },
        );
        match recv_msg(&main) {
            main_secmod::FromSecMod::SessionOpened { result, .. } => result,
            other => panic!("unexpected {other:?}"),
        }
    };
    // alice's worker reported no MAC address.
    f.dir
        .write("users/alice", "allowed-mac = 00:0c:29:5e:1a:9b\n");
    assert_eq!(open(2), Err(SessionRefusal::UnknownCookie));
    f.dir.write("users/alice", "dpd = 7\n");
    assert_eq!(open(3).unwrap().overrides.user.unwrap().dpd, Some(7));
    drop(main);
    assert!(wait_exit(child).success());
}

/// A CONNECT whose files are slow to read (a hung mount; here a FIFO nobody writes) delays
/// only itself: another user's CONNECT sent after it is answered at once, not after the 5 s
/// the slow one may take (sec-mod's loop must never wait on a disk).
#[test]
fn a_slow_session_open_delays_no_other() {
    let mut f = fixture();
    let alice = hash_sha256("alicepw", &[5; SALT_LEN]);
    let bob = hash_sha256("bobpw", &[6; SALT_LEN]);
    f.dir.write(
        "ocpasswd",
        format!("alice:staff:{alice}\nbob:staff:{bob}\n"),
    );
    std::fs::create_dir_all(f.dir.path().join("users")).unwrap();
    f.config.policy_files.per_user_dir = Some(f.dir.path().join("users"));
    let fifo = f.dir.path().join("users/alice");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    let cookie = |worker: u64, user: &str, pw: &str| {
        let link = new_worker(&main, worker);
        let AuthStep::Complete { cookie, .. } = auth(&link, user, pw) else {
            panic!("login of {user} failed");
        };
        cookie
    };
    let (a, b) = (cookie(1, "alice", "alicepw"), cookie(2, "bob", "bobpw"));
    let sent = std::time::Instant::now();
    for (worker, cookie) in [(3, a), (4, b)] {
        send_msg(
            &main,
            &main_secmod::ToSecMod::SessionOpen {
                worker: WorkerId(worker),
                peer: "192.0.2.7".parse().unwrap(),
                cookie,
            },
        );
    }
    match recv_msg(&main) {
        main_secmod::FromSecMod::SessionOpened { worker, result } => {
            assert_eq!(worker, WorkerId(4), "bob's CONNECT waited for alice's");
            assert!(result.is_ok(), "{result:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "bob's CONNECT took {:?}",
        sent.elapsed()
    );
    // alice's ends at the files' timeout, refused.
    match recv_msg(&main) {
        main_secmod::FromSecMod::SessionOpened { worker, result } => {
            assert_eq!(worker, WorkerId(3));
            assert_eq!(result, Err(SessionRefusal::PolicyFile));
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(main);
    assert!(wait_exit(child).success());
}

/// A group file too large for one IPC answer (a country's route list) refuses that CONNECT;
/// it must not end sec-mod (which would drop every cookie) nor the next login.
#[test]
fn files_too_large_for_one_answer_refuse_only_that_login() {
    let mut f = fixture();
    std::fs::create_dir_all(f.dir.path().join("groups")).unwrap();
    f.config.policy_files.per_group_dir = Some(f.dir.path().join("groups"));
    let routes: String = (0..12_000u32)
        .map(|i| format!("route = 10.{}.{}.0/24\n", i / 256 % 256, i % 256))
        .collect();
    f.dir.write("groups/staff", &routes);
    let (main, child, answer) = start(&f.config);
    assert!(matches!(answer, main_secmod::FromSecMod::Ready { .. }));
    assert_eq!(
        login_and_open(&main, 1, "192.0.2.7".parse().unwrap()),
        Err(SessionRefusal::PolicyFile)
    );
    // sec-mod is still there and serves the next login once the file is fixed.
    f.dir.write("groups/staff", "dpd = 5\n");
    let grant = login_and_open(&main, 2, "192.0.2.7".parse().unwrap()).unwrap();
    assert_eq!(grant.overrides.group.as_ref().unwrap().dpd, Some(5));
    drop(main);
    assert!(wait_exit(child).success());
}

/// Each `[vhost:NAME]` has its own key and password file: a link signs with the key of the vhost
/// the worker names (an unknown name ends the link), its logins use that vhost's users only,
/// and the session it opens says which vhost it was created in.
#[test]
fn vhosts_sign_and_log_in_with_their_own_key_and_users() {
    let f = fixture();
    let mut config = f.config.clone();
    let (b_cert, b_key) = generate(&rcgen::PKCS_ECDSA_P384_SHA384);
    let bob = hash_sha256("bobpw", &[6; SALT_LEN]);
    config.vhosts.push(main_secmod::SecModVhost {
        name: "b.example.com".into(),
        server_key: f.dir.write("b-key.pem", &b_key),
        server_cert: f.dir.write("b-cert.pem", &b_cert),
        auth: plan(AuthMethod::Plain {
            passwd: Some(f.dir.write("b-ocpasswd", format!("bob:staff:{bob}\n"))),
            otp: None,
        }),
        deny_roaming: true,
        policy_files: rocserv_proto::policy::file::Locations {
            per_user_dir: Some(f.dir.path().join("b-users")),
            ..Default::default()
        },
        key_pin: Default::default(),
    });
    std::fs::create_dir_all(f.dir.path().join("b-users")).unwrap();
    f.dir.write("b-users/bob", "dpd = 7\n");
    let (main, child, answer) = start(&config);
    assert_eq!(
        answer,
        main_secmod::FromSecMod::Ready {
            key: KeyKind::EcdsaP256,
            vhost_keys: vec![("b.example.com".into(), KeyKind::EcdsaP384)],
            groups: Vec::new(),
        }
    );
    // The vhost's key signs; its users log in, the default section's do not.
    let worker = new_worker(&main, 90);
    sign_request_in(
        &worker,
        Some("b.example.com"),
        0x0503,
        &tls13_certificate_verify(48),
    );
    match recv_msg(&worker) {
        worker_secmod::FromSecMod::Signature(sig) => assert!(verify_with_cert(
            b_cert.as_bytes(),
            0x0503,
            &tls13_certificate_verify(48),
            &sig
        )),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        auth(&worker, "alice", "alicepw"),
        AuthStep::Failed { retry: true }
    );
    let AuthStep::Complete { cookie, .. } = auth(&worker, "bob", "bobpw") else {
        panic!("bob's login in his vhost failed");
    };
    expect_ban_points(&main, 1);
    let open = |worker, peer: &str, cookie: &str| {
        send_msg(
            &main,
            &main_secmod::ToSecMod::SessionOpen {
                worker: WorkerId(worker),
                peer: peer.parse().unwrap(),
                cookie: cookie.to_owned(),
            },
        );
        match recv_msg::<main_secmod::FromSecMod>(&main) {
            main_secmod::FromSecMod::SessionOpened { result, .. } => result,
            other => panic!("unexpected {other:?}"),
        }
    };
    let grant = open(90, "192.0.2.7", &cookie).unwrap();
    assert_eq!(grant.vhost.as_deref(), Some("b.example.com"));
    // The vhost's config-per-user directory is read for its sessions.
    assert_eq!(grant.overrides.user.as_ref().unwrap().dpd, Some(7));
    // The vhost's deny-roaming (the default section's is off): another address is refused.
    assert_eq!(
        open(93, "198.51.100.9", &cookie),
        Err(SessionRefusal::UnknownCookie)
    );
    // The default section: its own key and users, and no vhost in the grant.
    let worker = new_worker(&main, 91);
    assert_signed(&worker, &f.cert_pem, 0x0403, &tls13_certificate_verify(32));
    assert_eq!(
        auth(&worker, "bob", "bobpw"),
        AuthStep::Failed { retry: true }
    );
    expect_ban_points(&main, 1);
    let AuthStep::Complete { cookie, .. } = auth(&worker, "alice", "alicepw") else {
        panic!("alice's login failed");
    };
    assert_eq!(open(91, "198.51.100.9", &cookie).unwrap().vhost, None);
    // A key of a vhost that is not configured: no signature, the link ends.
    let worker = new_worker(&main, 92);
    sign_request_in(
        &worker,
        Some("c.example.com"),
        0x0403,
        &tls13_certificate_verify(32),
    );
    expect_closed(&worker);
    drop(main);
    assert!(wait_exit(child).success());
}

/// `-t`: a vhost's key that does not match its certificate fails the start, naming the vhost.
#[test]
fn a_bad_vhost_key_fails_the_start() {
    let f = fixture();
    let mut config = f.config.clone();
    let (b_cert, _) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_key) = generate(&rcgen::PKCS_ECDSA_P256_SHA256);
    config.check_only = true;
    config.vhosts.push(main_secmod::SecModVhost {
        name: "b.example.com".into(),
        server_key: f.dir.write("b-key.pem", &other_key),
        server_cert: f.dir.write("b-cert.pem", &b_cert),
        auth: config.auth.clone(),
        deny_roaming: false,
        policy_files: Default::default(),
        key_pin: Default::default(),
    });
    let (_main, child, answer) = start(&config);
    match answer {
        main_secmod::FromSecMod::StartFailed { reason } => assert!(
            reason.contains("[vhost:b.example.com]") && reason.contains("does not match"),
            "{reason}"
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(wait_exit(child).code(), Some(1));
}

fn plan(method: AuthMethod) -> rocserv_proto::config::AuthPlan {
    rocserv_proto::config::AuthPlan {
        required: vec![method],
        ..Default::default()
    }
}
