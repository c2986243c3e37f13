//! Device binding through a real worker link: the user's file (or the backend's answer) sets
//! `allowed-mac` / `allowed-device-id`; a login whose facts do not match fails like a wrong
//! password (ban points, retry allowed), one that matches logs in.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::SystemRandom;
use rocserv_proto::ipc::worker_secmod::{AuthStep, ClientFacts, FromSecMod, ToSecMod};
use rocserv_proto::ipc::{self, WorkerId, MAX_MESSAGE};
use rocserv_proto::policy::file::{Locations, PolicyFile};
use tokio_seqpacket::UnixSeqpacket;

use crate::auth::{Attempt, AuthBackend, Granted, Login, Verdict};
use crate::keys::ServerKey;
use crate::peers::{BanReports, Origins};
use crate::sessions::{SessionPolicy, Sessions};
use crate::testutil::TempDir;
use crate::worker_link::{serve, Links, Shared};

const POINTS: u32 = 10;

/// Accepts every login into group `staff`, with `policy` as its own answer.
struct Accepts(Option<PolicyFile>);

impl AuthBackend for Accepts {
    fn name(&self) -> &'static str {
        "accepts"
    }

    fn begin(&self, _login: Login) -> Attempt {
        let (attempt, peer) = Attempt::channel();
        let policy = self.0.clone().map(Box::new);
        // Backends answer from their own thread (`finish` blocks).
        std::thread::spawn(move || {
            peer.finish(Verdict::Accepted(Granted {
                group: "staff".into(),
                policy,
                ..Default::default()
            }))
        });
        attempt
    }
}

fn shared(backend: Accepts, policy_files: Locations) -> Arc<Shared> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let key = ServerKey::from_pem(key.serialize_pem().as_bytes(), cert.pem().as_bytes()).unwrap();
    Arc::new(Shared {
        key,
        backend: Box::new(backend),
        sessions: Mutex::new(Sessions::new(SessionPolicy {
            cookie_timeout: Duration::from_secs(300),
            persistent_cookies: false,
        })),
        auth_timeout: Duration::from_secs(5),
        rng: SystemRandom::new(),
        origins: Mutex::new(Origins::default()),
        deny_roaming: false,
        ban_points_wrong_password: POINTS,
        bans: BanReports::default(),
        links: Links::default(),
        policy_files,
        vhosts: Vec::new(),
        accounting: Default::default(),
        session_db: None,
        cluster: None,
    })
}

fn peer() -> SocketAddr {
    "192.0.2.7:4321".parse().unwrap()
}

/// A link served for `shared`, and our end of it.
fn link(shared: &Arc<Shared>, worker: u64) -> UnixSeqpacket {
    let (ours, theirs) = UnixSeqpacket::pair().unwrap();
    tokio::spawn(serve(
        theirs,
        WorkerId(worker),
        peer(),
        Arc::clone(shared),
        Arc::default(),
    ));
    ours
}

async fn login(sock: &UnixSeqpacket, user: &str, facts: ClientFacts) -> AuthStep {
    let request = ToSecMod::AuthStart {
        username: user.into(),
        password: "pw".into(),
        group: None,
        facts,
    };
    sock.send(&ipc::encode(&request).unwrap()).await.unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    match ipc::decode(&buf[..n.bytes_read()]).unwrap() {
        FromSecMod::Auth(step) => step,
        other => panic!("{other:?}"),
    }
}

fn macs(list: &[&str]) -> ClientFacts {
    ClientFacts {
        macs: list.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    }
}

fn users_dir(dir: &TempDir) -> Locations {
    Locations {
        per_user_dir: Some(dir.path().to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn allowed_mac_in_the_users_file_is_required() {
    let dir = TempDir::new();
    dir.write("alice", "allowed-mac = 00-0C-29-5E-1A-9B\n");
    let shared = shared(Accepts(None), users_dir(&dir));
    let sock = link(&shared, 1);
    // Another device (or none reported): a failed login, with ban points, retry allowed.
    let other = macs(&["02:00:00:00:00:01"]);
    assert_eq!(
        login(&sock, "alice", other).await,
        AuthStep::Failed { retry: true }
    );
    assert_eq!(shared.bans.take(), [(peer().ip(), POINTS)]);
    assert_eq!(
        login(&sock, "alice", macs(&[])).await,
        AuthStep::Failed { retry: true }
    );
    shared.bans.take();
    // The bound device (among others it reports) logs in.
    let bound = macs(&["02:00:00:00:00:01", "00:0c:29:5e:1a:9b"]);
    assert!(matches!(
        login(&sock, "alice", bound).await,
        AuthStep::Complete { .. }
    ));
    assert!(shared.bans.take().is_empty());
    // A user without a file is not bound.
    let sock = link(&shared, 2);
    assert!(matches!(
        login(&sock, "bob", macs(&[])).await,
        AuthStep::Complete { .. }
    ));
}

#[tokio::test]
async fn the_group_file_binds_and_the_backends_answer_wins() {
    let dir = TempDir::new();
    dir.write("staff", "allowed-device-id = GROUP-ID\n");
    let locations = Locations {
        per_group_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let with_id = |id: &str| ClientFacts {
        device_id: Some(id.into()),
        ..Default::default()
    };
    let shared1 = shared(Accepts(None), locations.clone());
    assert_eq!(
        login(&link(&shared1, 3), "carol", with_id("OTHER")).await,
        AuthStep::Failed { retry: true }
    );
    assert!(matches!(
        login(&link(&shared1, 4), "carol", with_id("group-id")).await,
        AuthStep::Complete { .. }
    ));
    // A backend's answer (RADIUS, a script) with its own list replaces the group's.
    let answer = PolicyFile {
        allowed_device_ids: vec!["RADIUS-ID".into()],
        ..Default::default()
    };
    let shared2 = shared(Accepts(Some(answer)), locations);
    assert_eq!(
        login(&link(&shared2, 5), "carol", with_id("GROUP-ID")).await,
        AuthStep::Failed { retry: true }
    );
    assert!(matches!(
        login(&link(&shared2, 6), "carol", with_id("RADIUS-ID")).await,
        AuthStep::Complete { .. }
    ));
}

/// A file that cannot be used is not the client's fault: no failed login, no ban points (the
/// CONNECT refuses the session while the file stays broken, `sm_process.rs`).
#[tokio::test]
async fn a_broken_file_is_left_to_the_connect() {
    let dir = TempDir::new();
    dir.write("dave", "allowed-mac = nonsense\n");
    let shared = shared(Accepts(None), users_dir(&dir));
    assert!(matches!(
        login(&link(&shared, 7), "dave", macs(&["00:0c:29:5e:1a:9b"])).await,
        AuthStep::Complete { .. }
    ));
    assert!(shared.bans.take().is_empty());
}
