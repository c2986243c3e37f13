//! `rocserv --demo`: a working server without any configuration file.
//!
//! The state directory holds a self-signed ECDSA P-256 certificate (SAN = host name and
//! 127.0.0.1), its key (mode 0600; main writes it once and never reads it back, sec-mod loads
//! it), an ocpasswd file with user `demo` (`$5$` SHA-256-crypt hash) and that user's password in
//! clear (mode 0600, so that a restart can print it again). Existing files are reused.

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rocserv_proto::config::{AuthMethod, AuthPlan, Config, IpNet, Route};
use rocserv_proto::policy::Policy;

/// Where the demo keeps its files.
pub const STATE_DIR: &str = "/var/lib/rocserv-demo";
/// The demo's TCP port.
pub const PORT: u16 = 4443;
/// The demo user.
pub const USER: &str = "demo";

/// Preparing the demo files failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory could not be read or written.
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate the certificate")]
    Cert(#[from] rcgen::Error),
    /// Password hashing failed.
    #[error("cannot hash the password")]
    Hash,
    /// The system random generator failed.
    #[error("no randomness available")]
    Random,
    /// The stored certificate cannot be parsed.
    #[error("stored certificate is unusable")]
    BadCert(#[from] crate::spki::MalformedCertificate),
}

/// The demo's files and what to tell the user.
#[derive(Debug)]
pub struct Demo {
    pub config: Config,
    pub pin: String,
    pub password: String,
}

/// Create (or reuse) the files in `dir` and build the configuration in code.
pub fn prepare(dir: &Path) -> Result<Demo, DemoError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let cert = dir.join("server-cert.pem");
    let key = dir.join("server-key.pem");
    let passwd = dir.join("ocpasswd");
    let clear = dir.join("demo-password");
    if !(cert.exists() && key.exists()) {
        let host = hostname();
        let ck = rcgen::generate_simple_self_signed(vec![host, "127.0.0.1".to_owned()])?;
        write_new(&key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert, ck.cert.pem().as_bytes(), 0o644)?;
    }
    let password = match fs::read_to_string(&clear) {
        Ok(p) if passwd.exists() && !p.trim().is_empty() => p.trim().to_owned(),
        _ => {
            let password = random_password()?;
            let hash = sha_crypt::sha256_simple(&password, &sha_crypt::Sha256Params::default())
                .map_err(|_| DemoError::Hash)?;
            let line = rocserv_proto::passwd::format_entry(&rocserv_proto::passwd::Entry {
                username: USER.to_owned(),
                groups: Vec::new(),
                hash,
                locked: false,
            })
            .map_err(|_| DemoError::Hash)?;
            write_new(&passwd, format!("{line}\n").as_bytes(), 0o600)?;
            write_new(&clear, format!("{password}\n").as_bytes(), 0o600)?;
            password
        }
    };
    let chain = crate::settings::read_cert_chain(&cert).map_err(|e| DemoError::Io {
        path: e,
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })?;
    let leaf = chain.first().ok_or(crate::spki::MalformedCertificate)?;
    let pin = crate::spki::pin_sha256(leaf)?;
    Ok(Demo {
        config: config(&cert, &key, &passwd),
        pin,
        password,
    })
}

/// The demo configuration: TCP and UDP port 4443 on all IPv4 addresses, 10.77.0.0/24, a split
/// route for that network only (a local client keeps its default route), no DNS, sandboxed
/// workers, occtl on a socket in the state directory.
pub fn config(cert: &Path, key: &Path, passwd: &Path) -> Config {
    let net = IpNet {
        addr: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 0)),
        prefix: 24,
    };
    Config {
        auth: AuthPlan {
            required: vec![AuthMethod::Plain {
                passwd: Some(passwd.to_path_buf()),
                otp: None,
            }],
            ..Default::default()
        },
        listen_host: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        tcp_port: PORT,
        // DTLS on the same port number, as ocserv's sample does, so the demo shows the UDP path.
        udp_port: Some(PORT),
        use_occtl: true,
        occtl_socket_file: Some(state_dir().join("occtl.socket")),
        // The demo keeps everything in its own state directory, its records too.
        session_db: Some(state_dir().join("sessions.db")),
        run_as_user: Some("nobody".to_owned()),
        run_as_group: Some(nogroup().to_owned()),
        server_cert: Some(cert.to_path_buf()),
        server_key: Some(key.to_path_buf()),
        isolate_workers: true,
        policy: Policy {
            ipv4_network: Some(net),
            routes: vec![Route::Net(net)],
            dns: Vec::new(),
            ..Policy::default()
        },
        ..Config::default()
    }
}

/// The instructions printed once the demo listens.
pub fn instructions(demo: &Demo) -> String {
    format!(
        "demo server ready. Connect with:\n\n  openconnect --servercert {pin} --user {USER} https://127.0.0.1:{PORT}/\n\n\
         password: {password}\n(from another machine use this host's name or address instead of 127.0.0.1)\n\n\
         manage it with: occtl -s {socket} show users\n",
        socket = state_dir().join("occtl.socket").display(),
        pin = demo.pin,
        password = demo.password,
    )
}

/// The default state directory.
pub fn state_dir() -> PathBuf {
    PathBuf::from(STATE_DIR)
}

fn random_password() -> Result<String, DemoError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DemoError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn nogroup() -> &'static str {
    match nix::unistd::Group::from_name("nogroup") {
        Ok(Some(_)) => "nogroup",
        _ => "nobody",
    }
}

/// Replace `path` with `bytes`, created with `mode` (never briefly world-readable).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DemoError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rocserv-demo-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn prepares_then_reuses_the_same_files() {
        let dir = temp_dir("reuse");
        let first = prepare(&dir).unwrap();
        assert!(first.pin.starts_with("pin-sha256:"));
        assert_eq!(first.password.len(), 16);
        let line = fs::read_to_string(dir.join("ocpasswd")).unwrap();
        assert!(line.starts_with("demo:*:$5$"), "{line}");
        let entries = rocserv_proto::passwd::parse(&line).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].username, "demo");
        assert!(sha_crypt::sha256_check(&first.password, &entries[0].hash).is_ok());
        // The key is private.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.join("server-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        // A second start reuses certificate and password.
        let second = prepare(&dir).unwrap();
        assert_eq!(second.pin, first.pin);
        assert_eq!(second.password, first.password);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn demo_config_is_split_tunnel_on_10_77() {
        let c = config(Path::new("/c"), Path::new("/k"), Path::new("/p"));
        assert_eq!(c.tcp_port, 4443);
        assert_eq!(c.policy.routes.len(), 1);
        assert!(c.policy.dns.is_empty());
        assert!(c.isolate_workers);
        assert_eq!(c.policy.ipv4_network.unwrap().prefix, 24);
        assert_eq!(c.run_as_user.as_deref(), Some("nobody"));
    }

    #[test]
    fn instructions_carry_pin_and_password() {
        let demo = Demo {
            config: Config::default(),
            pin: "pin-sha256:AAAA=".to_owned(),
            password: "secret".to_owned(),
        };
        let text = instructions(&demo);
        assert!(text.contains(
            "openconnect --servercert pin-sha256:AAAA= --user demo https://127.0.0.1:4443/"
        ));
        assert!(text.contains("password: secret"));
    }
}
