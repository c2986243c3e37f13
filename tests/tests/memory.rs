//! main and sec-mod give freed heap memory back to the kernel every 10 s
//! (`rocserv_rt::memory::trim`). A trim returns only pages glibc holds as free, so what must
//! hold is that nothing live is lost: logins, the session's cookie and the tunnel keep working
//! across trims in both processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use rocserv_e2e::{Client, ClientOptions, Lab, Server, WAIT};

/// `rocserv_rt::memory::TRIM_EVERY` plus a margin: at least one trim in each process.
const PAST_A_TRIM: Duration = Duration::from_secs(11);

fn ping_ok(lab: &Lab, count: u32) {
    let (ok, out) = lab.ping_through_tunnel(count);
    assert!(ok, "ping through the tunnel failed:\n{out}");
    assert!(out.contains(&format!("{count} received")), "{out}");
}

#[test]
#[ignore = "needs root, network namespaces and openconnect: run by tests/run-all.sh"]
fn logins_and_tunnels_work_across_heap_trims() {
    let lab = Lab::new();
    let server = Server::start(&lab.srv, &lab.config(&[]));
    let opts = ClientOptions::password("alice", "alice-pw");

    let mut first = Client::start(&lab, &opts);
    first.wait_up(WAIT).expect("tunnel up");
    ping_ok(&lab, 2);
    lab.bulk_both_ways(2 << 20);
    // Not a synchronisation: there is no event for a trim; this only lets one happen while
    // the session is live and one after it ended.
    std::thread::sleep(PAST_A_TRIM);
    ping_ok(&lab, 2);
    drop(first);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("first session ended");
    std::thread::sleep(PAST_A_TRIM);

    // A new login (sec-mod's password check and session table, main's worker bookkeeping) after
    // both processes gave back what the first session freed.
    let mut second = Client::start(&lab, &opts);
    second.wait_up(WAIT).expect("second tunnel up");
    ping_ok(&lab, 2);
    lab.bulk_both_ways(2 << 20);
    drop(second);
    server
        .wait_for_log("user disconnect", WAIT)
        .expect("second session ended");
}
