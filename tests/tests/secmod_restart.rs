//! `kill -9` of sec-mod: main logs it and starts a new one; an established tunnel keeps
//! carrying traffic across the kill; new logins work again at once. Cookies lived in the dead
//! sec-mod, so the old session's cookie is unknown to the new one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocserv_e2e::client::authenticate;
use rocserv_e2e::{procfs, Client, ClientOptions, Lab, Server, WAIT};

/// The bound for logins to work again after the kill.
const BACK_WITHIN: Duration = Duration::from_secs(2);

fn secmod_pid(server: &Server) -> u32 {
    let found: Vec<u32> = procfs::children(server.pid())
        .into_iter()
        .filter(|pid| procfs::comm(*pid).as_deref() == Some("rocserv-sm"))
        .collect();
    assert_eq!(found.len(), 1, "one sec-mod expected: {found:?}");
    found[0]
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn killed_secmod_is_restarted_and_tunnels_keep_flowing() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let old_cookie = authenticate(&lab, "carol", "carol-pw").expect("login before the kill");
    let mut client = Client::start(&lab, &ClientOptions::password("alice", "alice-pw"));
    client.wait_up(WAIT).expect("tunnel up");
    let old = secmod_pid(&server);

    let before = server.log_len();
    // 25 pings over 5 s; sec-mod dies near the start of them.
    let (ping, killed_at) = std::thread::scope(|s| {
        let ping = s.spawn(|| lab.ping_through_tunnel(25));
        kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("kill -9 sec-mod");
        let killed_at = Instant::now();
        server
            .wait_for_log_after(before, "sec-mod restarted", WAIT)
            .expect("main restarted sec-mod");
        let restarted_in = killed_at.elapsed();
        assert!(restarted_in <= BACK_WITHIN, "restart took {restarted_in:?}");
        (ping.join().unwrap(), killed_at)
    });
    let log = server.log_text();
    assert!(
        log.contains(&format!("sec-mod (pid {old}) is gone")),
        "the kill is not logged:\n{log}"
    );
    let (ok, out) = ping;
    assert!(
        ok && out.contains(" 0% packet loss"),
        "the tunnel lost traffic across the kill:\n{out}"
    );
    let new = secmod_pid(&server);
    assert_ne!(new, old);
    assert!(!procfs::alive(old), "the killed sec-mod was not reaped");

    // A new login works (the restart log line came within BACK_WITHIN of the kill).
    let cookie = authenticate(&lab, "bob", "bob-pw").expect("login after the restart");
    eprintln!(
        "a new login completed {:?} after the kill",
        killed_at.elapsed()
    );
    // The old tunnel is still up and still carries traffic.
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
    // A CONNECT with a cookie of the new sec-mod works; one of the old sec-mod is unknown.
    client.signal(Signal::SIGINT);
    client.wait_exit(WAIT).expect("first client leaves");
    let mut stale = Client::start(&lab, &ClientOptions::cookie(&old_cookie));
    let status = stale.wait_exit(WAIT).expect("stale cookie refused");
    assert!(!status.success(), "{}", stale.output());
    let mut fresh = Client::start(&lab, &ClientOptions::cookie(&cookie));
    fresh
        .wait_up(WAIT)
        .expect("tunnel with a cookie of the new sec-mod");
    let (ok, out) = lab.ping_through_tunnel(2);
    assert!(ok, "{out}");
}
