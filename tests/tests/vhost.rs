//! `[vhost:NAME]` sections served by TLS SNI with the real openconnect: a client that names the
//! vhost gets its certificate, logs in with its password file only and gets an address from its
//! pool; a client without SNI or with a name no vhost has gets the default section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use rocserv_e2e::lab::{self, SERVER_IP};
use rocserv_e2e::{pki, Client, ClientOptions, Lab, Server, WAIT};

const VHOST: &str = "b.vpn.test";
const VHOST_POOL: &str = "192.168.232.0/24";

/// Log in as `user` through `name` (resolved to the server; `None`: the server's IP, no SNI),
/// pinning certificate `pin`; the address the tunnel got, or openconnect's output on failure.
fn connect(
    lab: &Lab,
    name: Option<&str>,
    pin: &str,
    user: &str,
    password: &str,
) -> Result<String, String> {
    let mut opts = ClientOptions::password(user, password);
    opts.servercert = Some(pin.to_owned());
    if let Some(name) = name {
        opts.url = Some(format!("https://{name}/"));
        opts.extra.push(format!("--resolve={name}:{SERVER_IP}"));
    }
    let mut client = Client::start(lab, &opts);
    match client.wait_up(WAIT) {
        Ok(up) => Ok(up.address),
        Err(e) => {
            client.wait_exit(Duration::from_secs(5));
            Err(e)
        }
    }
}

/// `openconnect --authenticate` through vhost `name`: the session cookie.
fn authenticate(lab: &Lab, name: &str, pin: &str, user: &str, password: &str) -> String {
    let mut child = lab
        .cli
        .command("openconnect")
        .args([
            "--protocol=anyconnect",
            "--non-inter",
            "--servercert",
            pin,
            "--passwd-on-stdin",
            "--authenticate",
        ])
        .arg(format!("--resolve={name}:{SERVER_IP}"))
        .arg(format!("--user={user}"))
        .arg(format!("https://{name}/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("COOKIE=")
                .map(|v| v.trim_matches('\'').to_owned())
        })
        .unwrap_or_else(|| panic!("no COOKIE= in {stdout}"))
}

fn in_pool(address: &str, prefix: &str) -> bool {
    address.starts_with(prefix)
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn sni_selects_the_vhost_certificate_users_and_pool() {
    let lab = Lab::new();
    // The vhost: its own certificate, password file (only dave) and pool.
    let vdir = lab.dir.join("vhost-b");
    std::fs::create_dir_all(&vdir).unwrap();
    let vpki = pki::make(&vdir, VHOST);
    let vpasswd = lab.dir.join("ocpasswd-b");
    lab::add_user(&vpasswd, "dave", "dave-pw", None);
    // The vhost's per-user files: dave gets a DNS server of his own.
    let vusers = lab.dir.join("users-b");
    std::fs::create_dir_all(&vusers).unwrap();
    std::fs::write(vusers.join("dave"), "dns = 192.168.232.53\n").unwrap();
    // Failed logins are part of the test: no bans.
    let conf = lab.config(&[("max-ban-score", "0")]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .unwrap();
    write!(
        file,
        "[vhost:{VHOST}]\nauth = \"plain[passwd={}]\"\nserver-cert = {}\nserver-key = {}\n\
         ipv4-network = {VHOST_POOL}\nconfig-per-user = {}\n",
        vpasswd.display(),
        vpki.cert.display(),
        vpki.key.display(),
        vusers.display()
    )
    .unwrap();
    drop(file);
    let server = Server::start(&lab.srv, &conf);

    // SNI names the vhost: its certificate (the pin of the vhost's key), its user, its pool.
    let address = connect(&lab, Some(VHOST), &vpki.pin, "dave", "dave-pw")
        .expect("dave logs in through the vhost");
    assert!(in_pool(&address, "192.168.232."), "{address}");
    // The same name in other case is the same vhost.
    let address = connect(&lab, Some("B.VPN.Test"), &vpki.pin, "dave", "dave-pw")
        .expect("the vhost name compares without case");
    assert!(in_pool(&address, "192.168.232."), "{address}");
    // The default section's users are not the vhost's.
    let refused = connect(&lab, Some(VHOST), &vpki.pin, "alice", "alice-pw");
    assert!(refused.is_err(), "alice got into the vhost: {refused:?}");
    // The vhost does not present the default certificate.
    let refused = connect(&lab, Some(VHOST), &lab.pki.pin, "dave", "dave-pw");
    let output = refused.expect_err("the vhost served the default certificate");
    assert!(!output.contains("CSTP connected"), "{output}");

    // No SNI (the server's IP): the default section, its certificate, users and pool.
    let address =
        connect(&lab, None, &lab.pki.pin, "alice", "alice-pw").expect("alice logs in without SNI");
    assert!(in_pool(&address, "192.168.231."), "{address}");
    let refused = connect(&lab, None, &lab.pki.pin, "dave", "dave-pw");
    assert!(refused.is_err(), "dave got into the default section");
    // A name no vhost has: the default section too.
    let address = connect(&lab, Some("other.vpn.test"), &lab.pki.pin, "bob", "bob-pw")
        .expect("an unknown name gets the default section");
    assert!(in_pool(&address, "192.168.231."), "{address}");

    // The vhost's per-user file applies to its user.
    let mut opts = ClientOptions::password("dave", "dave-pw");
    opts.servercert = Some(vpki.pin.clone());
    opts.url = Some(format!("https://{VHOST}/"));
    opts.extra.push(format!("--resolve={VHOST}:{SERVER_IP}"));
    let mut client = Client::start(&lab, &opts);
    client.wait_up(WAIT).expect("dave through the vhost");
    let env = std::fs::read_to_string(lab.dir.join(format!("env-{}", client.device))).unwrap();
    assert!(
        env.lines().any(|l| l == "INTERNAL_IP4_DNS=192.168.232.53"),
        "the vhost's per-user file did not apply:\n{env}"
    );
    drop(client);

    // A session stays in the vhost it was created in: its cookie, presented on a connection
    // without SNI (the default certificate), still gets the vhost's pool.
    let cookie = authenticate(&lab, VHOST, &vpki.pin, "dave", "dave-pw");
    let mut client = Client::start(&lab, &ClientOptions::cookie(&cookie));
    let up = client.wait_up(WAIT).expect("cookie reconnect without SNI");
    assert!(in_pool(&up.address, "192.168.232."), "{}", up.address);
    drop(client);

    let log = server.log_text();
    assert!(
        log.contains("[vhost:b.vpn.test] user 'dave' logged in"),
        "sec-mod names the vhost of a login:\n{log}"
    );
    assert!(
        log.contains(") in [vhost:b.vpn.test]"),
        "main names the vhost of a tunnel:\n{log}"
    );
    drop(server);
}
