//! A worker link with backends that never answer: a login conversation that runs out of
//! `auth-timeout` is a failed login (counted, ban points), whether the backend or the worker
//! is the one that is slow.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::SystemRandom;
use rocserv_proto::ipc::worker_secmod::{AuthStep, FromSecMod, ToSecMod};
use rocserv_proto::ipc::{self, WorkerId, MAX_MESSAGE};
use tokio_seqpacket::UnixSeqpacket;

use crate::auth::{Attempt, AttemptPeer, AuthBackend, Login};
use crate::keys::ServerKey;
use crate::peers::{BanReports, Origins};
use crate::sessions::{SessionPolicy, Sessions};
use crate::worker_link::{serve, Links, Shared};

const AUTH_TIMEOUT: Duration = Duration::from_millis(200);
const POINTS: u32 = 10;

/// Never gives a verdict; keeps its ends alive so the conversation stays open.
#[derive(Default)]
struct Silent(Mutex<Vec<AttemptPeer>>);

impl AuthBackend for Silent {
    fn name(&self) -> &'static str {
        "silent"
    }

    fn begin(&self, _login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        self.0.lock().unwrap().push(peer);
        attempt
    }
}

/// Asks one question and waits for the answer (which never comes).
struct Asks;

impl AuthBackend for Asks {
    fn name(&self) -> &'static str {
        "asks"
    }

    fn begin(&self, _login: Login) -> Attempt {
        let (attempt, mut peer) = Attempt::channel();
        std::thread::spawn(move || {
            let _ = peer.ask("OTP:".into(), true);
        });
        attempt
    }
}

fn shared(backend: Box<dyn AuthBackend>) -> Arc<Shared> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let key = ServerKey::from_pem(key.serialize_pem().as_bytes(), cert.pem().as_bytes()).unwrap();
    Arc::new(Shared {
        key,
        backend,
        sessions: Mutex::new(Sessions::new(SessionPolicy {
            cookie_timeout: Duration::from_secs(300),
            persistent_cookies: false,
        })),
        auth_timeout: AUTH_TIMEOUT,
        rng: SystemRandom::new(),
        origins: Mutex::new(Origins::default()),
        deny_roaming: false,
        ban_points_wrong_password: POINTS,
        bans: BanReports::default(),
        links: Links::default(),
        policy_files: Default::default(),
        vhosts: Vec::new(),
        accounting: Default::default(),
        session_db: None,
        cluster: None,
    })
}

async fn ask(sock: &UnixSeqpacket, request: &ToSecMod) -> FromSecMod {
    sock.send(&ipc::encode(request).unwrap()).await.unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    ipc::decode(&buf[..n.bytes_read()]).unwrap()
}

fn start() -> ToSecMod {
    ToSecMod::AuthStart {
        username: "alice".into(),
        password: "pw".into(),
        group: None,
        facts: Default::default(),
    }
}

fn peer() -> SocketAddr {
    "192.0.2.9:1234".parse().unwrap()
}

#[tokio::test]
async fn a_backend_that_times_out_is_a_failed_login() {
    let shared = shared(Box::new(Silent::default()));
    let (ours, theirs) = UnixSeqpacket::pair().unwrap();
    tokio::spawn(serve(
        theirs,
        WorkerId(1),
        peer(),
        Arc::clone(&shared),
        Arc::default(),
    ));
    // The first of MAX_ATTEMPTS: counted, so a retry is still allowed.
    assert_eq!(
        ask(&ours, &start()).await,
        FromSecMod::Auth(AuthStep::Failed { retry: true })
    );
    assert_eq!(shared.bans.take(), [(peer().ip(), POINTS)]);
}

#[tokio::test]
async fn an_unanswered_challenge_is_a_failed_login() {
    let shared = shared(Box::new(Asks));
    let (ours, theirs) = UnixSeqpacket::pair().unwrap();
    tokio::spawn(serve(
        theirs,
        WorkerId(2),
        peer(),
        Arc::clone(&shared),
        Arc::default(),
    ));
    assert!(matches!(
        ask(&ours, &start()).await,
        FromSecMod::Auth(AuthStep::Continue { .. })
    ));
    // The worker never answers; the link gives up at the deadline and reports the failure.
    tokio::time::timeout(Duration::from_secs(10), shared.bans.ready.notified())
        .await
        .expect("no ban points for the abandoned conversation");
    assert_eq!(shared.bans.take(), [(peer().ip(), POINTS)]);
}
