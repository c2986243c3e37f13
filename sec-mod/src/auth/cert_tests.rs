//! The `certificate` method and the chain with a real CA (rcgen), CRL and password file.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    RevokedCertParams, SerialNumber,
};
use rocserv_proto::config::{CertAuth, CertField};
use rocserv_proto::ipc::worker_secmod::ClientFacts;
use time::{Duration, OffsetDateTime};

use super::certificate::Certificate;
use super::chain::Chain;
use super::crypt::{self, SALT_LEN};
use super::plain::Plain;
use super::{AuthBackend, Event, Login, Rejection, Verdict};
use crate::testutil::TempDir;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate of `uid` (OU `ou`) with `serial`; DER.
fn client(ca: &Ca, uid: &str, ou: &str, serial: u64) -> Vec<u8> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{uid} user"));
    dn.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
        DnValue::Utf8String(uid.into()),
    );
    dn.push(DnType::OrganizationalUnitName, ou);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
}

fn crl(ca: &Ca, revoked: &[u64]) -> String {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

struct Setup {
    dir: TempDir,
    ca: Ca,
    crl: PathBuf,
    settings: CertAuth,
}

fn setup(group: bool) -> Setup {
    let dir = TempDir::new();
    let ca = ca("Test CA");
    let ca_path = dir.write("ca.pem", &ca.pem);
    let crl_path = dir.write("crl.pem", &crl(&ca, &[]));
    let alice = crypt::hash_sha256("alicepw", &[1; SALT_LEN]);
    let bob = crypt::hash_sha256("bobpw", &[2; SALT_LEN]);
    dir.write("ocpasswd", &format!("alice:eng:{alice}\nbob:sales:{bob}\n"));
    let settings = CertAuth {
        ca_cert: ca_path,
        crl: Some(crl_path.clone()),
        user: CertField::Oid("0.9.2342.19200300.100.1.1".into()),
        group: group.then(|| CertField::Oid("2.5.4.11".into())),
    };
    Setup {
        dir,
        ca,
        crl: crl_path,
        settings,
    }
}

impl Setup {
    fn cert(&self) -> Certificate {
        Certificate::load(&self.settings).unwrap()
    }

    fn chain(&self, alone: bool) -> Chain {
        let cert: Arc<dyn AuthBackend> = Arc::new(self.cert());
        let plain: Arc<dyn AuthBackend> =
            Arc::new(Plain::new(self.dir.path().join("ocpasswd"), &[9; SALT_LEN]));
        Chain::new(vec![Arc::clone(&cert), plain], alone.then_some(cert))
    }
}

fn login(user: &str, pw: &str, chain: Option<Vec<u8>>) -> Login {
    Login {
        username: user.into(),
        password: pw.into(),
        facts: Arc::new(ClientFacts {
            cert_chain: chain.into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn verdict(backend: &dyn AuthBackend, login: Login) -> Verdict {
    match backend.begin(login).next().await {
        Event::Done(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

fn accepted(v: Verdict) -> super::Granted {
    match v {
        Verdict::Accepted(g) => g,
        Verdict::Rejected(r) => panic!("rejected: {r}"),
    }
}

#[tokio::test]
async fn certificate_alone_names_user_group_and_subject() {
    let s = setup(true);
    let g = accepted(
        verdict(
            &s.cert(),
            login("", "", Some(client(&s.ca, "alice", "eng", 10))),
        )
        .await,
    );
    assert_eq!(g.username.as_deref(), Some("alice"));
    assert_eq!(g.group, "eng");
    assert!(g.cert_subject.unwrap().contains("alice user"));
    // A requested group other than the certificate's is refused.
    let mut l = login("", "", Some(client(&s.ca, "alice", "eng", 10)));
    l.group = Some("sales".into());
    assert_eq!(
        verdict(&s.cert(), l).await,
        Verdict::Rejected(Rejection::GroupNotAllowed("sales".into()))
    );
}

#[tokio::test]
async fn foreign_ca_missing_and_garbage_chains_are_refused() {
    let s = setup(false);
    let other = ca("Other CA");
    for chain in [
        Some(client(&other, "alice", "eng", 10)),
        None,
        Some(b"garbage".to_vec()),
    ] {
        let v = verdict(&s.cert(), login("", "", chain.clone())).await;
        assert!(
            matches!(v, Verdict::Rejected(Rejection::Certificate(_))),
            "{chain:?}: {v:?}"
        );
    }
}

#[tokio::test]
async fn revoked_certificate_is_refused_after_the_crl_changes() {
    let s = setup(false);
    let cert = s.cert();
    let alice = client(&s.ca, "alice", "eng", 77);
    accepted(verdict(&cert, login("", "", Some(alice.clone()))).await);
    // The CRL is re-read at the next login, no restart: size differs, so the stamp does.
    std::fs::write(&s.crl, crl(&s.ca, &[77, 78])).unwrap();
    let v = verdict(&cert, login("", "", Some(alice.clone()))).await;
    assert!(
        matches!(&v, Verdict::Rejected(Rejection::Certificate(why)) if why.contains("evoked")),
        "{v:?}"
    );
    // An unreadable CRL fails closed.
    std::fs::write(&s.crl, "not a crl").unwrap();
    let v = verdict(&cert, login("", "", Some(alice))).await;
    assert!(
        matches!(v, Verdict::Rejected(Rejection::Certificate(_))),
        "{v:?}"
    );
}

/// ocserv #694 (fixed in 1.4.1): the certificate of alice with the password of bob must not
/// log in, neither as bob nor as alice.
#[tokio::test]
async fn certificate_of_one_user_with_the_password_of_another_is_refused() {
    let s = setup(false);
    let chain = s.chain(false);
    let alice = client(&s.ca, "alice", "eng", 10);
    let v = verdict(&chain, login("bob", "bobpw", Some(alice.clone()))).await;
    assert_eq!(
        v,
        Verdict::Rejected(Rejection::UserMismatch {
            cert: "alice".into(),
            password: "bob".into()
        })
    );
    // Right user, wrong password; right password, no certificate.
    let v = verdict(&chain, login("alice", "bobpw", Some(alice.clone()))).await;
    assert_eq!(v, Verdict::Rejected(Rejection::WrongPassword));
    let v = verdict(&chain, login("alice", "alicepw", None)).await;
    assert!(
        matches!(v, Verdict::Rejected(Rejection::Certificate(_))),
        "{v:?}"
    );
    // Both right: alice, group from the password file (no cert-group-oid).
    let g = accepted(verdict(&chain, login("alice", "alicepw", Some(alice))).await);
    assert_eq!(g.username.as_deref(), Some("alice"));
    assert_eq!(g.group, "eng");
    assert!(g.cert_subject.is_some());
}

#[tokio::test]
async fn certificate_group_wins_and_no_form_login_needs_the_alternative() {
    let s = setup(true);
    // The certificate says OU=ops; the password file says eng: the certificate decides.
    let alice = client(&s.ca, "alice", "ops", 10);
    let g = accepted(
        verdict(
            &s.chain(false),
            login("alice", "alicepw", Some(alice.clone())),
        )
        .await,
    );
    assert_eq!(g.group, "ops");
    // Without `enable-auth = certificate` a login without the form is refused...
    let v = verdict(&s.chain(false), login("", "", Some(alice.clone()))).await;
    assert_eq!(v, Verdict::Rejected(Rejection::Malformed));
    // ... with it, the certificate alone logs in.
    let g = accepted(verdict(&s.chain(true), login("", "", Some(alice))).await);
    assert_eq!(g.username.as_deref(), Some("alice"));
}

/// A CRL file that hangs (a network mount; here a FIFO nobody writes) holds only the login that
/// reads it: the next certificate login of the section is answered at once (refused, fail
/// closed) instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_crl_holds_only_the_login_reading_it() {
    let s = setup(false);
    let cert = Arc::new(s.cert());
    let alice = client(&s.ca, "alice", "eng", 77);
    std::fs::remove_file(&s.crl).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&s.crl)
        .status()
        .unwrap();
    assert!(made.success());
    let first = {
        let (cert, alice) = (Arc::clone(&cert), alice.clone());
        std::thread::spawn(move || {
            cert.check(
                &login("", "", Some(alice)),
                rustls::pki_types::UnixTime::now(),
            )
        })
    };
    // Wait until the first login is inside the read (bounded).
    for _ in 0..200 {
        if cert.crl_reading() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(cert.crl_reading());
    let started = std::time::Instant::now();
    let second = cert.check(
        &login("", "", Some(alice)),
        rustls::pki_types::UnixTime::now(),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&second, Verdict::Rejected(Rejection::Certificate(why)) if why.contains("re-read")),
        "{second:?}"
    );
    // Let the first read end (a writer opens and closes the FIFO: an empty CRL is refused).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.crl)
        .unwrap();
    assert!(matches!(first.join().unwrap(), Verdict::Rejected(_)));
}
