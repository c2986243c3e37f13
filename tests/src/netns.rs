//! Network namespaces and a veth pair between them, removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

/// One namespace made by this test.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `Udp: InDatagrams` of the namespace's /proc/net/snmp: proves that traffic went over UDP.
    pub fn udp_in_datagrams(&self) -> u64 {
        let snmp = self.exec_ok(&["cat", "/proc/net/snmp"]);
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let names: Vec<&str> = udp.next().expect("Udp header").split_whitespace().collect();
        let values: Vec<&str> = udp.next().expect("Udp values").split_whitespace().collect();
        let at = names
            .iter()
            .position(|n| *n == "InDatagrams")
            .expect("InDatagrams");
        values[at].parse().expect("number")
    }

    pub fn new(name: String) -> Self {
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Run a command inside the namespace and insist it succeeds.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let (program, args) = argv.split_first().expect("non-empty argv");
        run(self.command(program).args(args))
    }

    /// Run a command inside the namespace; return (success, stdout+stderr).
    pub fn exec(&self, argv: &[&str]) -> (bool, String) {
        let (program, args) = argv.split_first().expect("non-empty argv");
        let out = self
            .command(program)
            .args(args)
            .output()
            .expect("spawn ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Path usable with setns(2).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Join `a` and `b` with a veth pair: `a_ip`/24 in `a`, `b_ip`/24 in `b`.
pub fn link(a: &Netns, a_ip: Ipv4Addr, b: &Netns, b_ip: Ipv4Addr, tag: &str) {
    let va = format!("va{tag}");
    let vb = format!("vb{tag}");
    run(Command::new("ip").args([
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]));
    a.exec_ok(&["ip", "addr", "add", &format!("{a_ip}/24"), "dev", &va]);
    b.exec_ok(&["ip", "addr", "add", &format!("{b_ip}/24"), "dev", &vb]);
    a.exec_ok(&["ip", "link", "set", &va, "up"]);
    b.exec_ok(&["ip", "link", "set", &vb, "up"]);
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}
