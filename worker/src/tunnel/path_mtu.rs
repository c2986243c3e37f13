//! The MTU of one tunnel's DTLS path (`try-mtu-discovery`), sans-IO: the caller reports what
//! happened to its datagrams and hears the new data MTU, which it passes on to main (the tun
//! device's MTU, so that the kernel hands over smaller packets).
//!
//! Two sizes: the link MTU (one outer IP datagram: IP + UDP + DTLS record, what
//! `X-CSTP-Base-MTU` means) and the data MTU (the largest tunnelled packet: link minus the fixed
//! per-packet overhead). The state moves between a floor and the MTU granted at CONNECT, never
//! above it: the client was told that one. As in ocserv (src/worker-vpn.c `mtu_not_ok`,
//! `mtu_ok`, `data_mtu_set`):
//!
//! - A datagram the kernel refused as too large (EMSGSIZE under IP_PMTUDISC_DO) marks the
//!   current size bad. When the kernel tells the path MTU it learnt (`IP_MTU`/`IPV6_MTU`),
//!   that is taken as it is and nothing is probed above it. Otherwise (ocserv's guess) the MTU
//!   goes back to the last good size, or to 2/3 of the current one, never below the floor
//!   (800: ocserv's minimum for IPv4 clients); at the floor discovery gives up.
//! - A full-size packet that left fine after a failure moves halfway up towards the last bad
//!   size (a binary search that stops when the two meet).
//! - A DPD request from the client larger than the data MTU (openconnect probes its MTU with
//!   them) raises the MTU to fit it, with discovery on or off.

/// ocserv's smallest link MTU for an IPv4-only tunnel (`MIN_MTU`; 1280 when IPv6 is assigned,
/// which rocserv does not do yet).
pub const FLOOR: u16 = 800;
/// Data MTUs below this are never set (main refuses them too: the IPv4 minimum datagram size).
pub const MIN_DATA: u16 = 576;

/// What the caller must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// The data MTU is now this: tell main.
    Data(u16),
    /// Discovery gave up at the floor (data MTU now this): let the kernel fragment again
    /// (IP_PMTUDISC_DONT) and tell main.
    GaveUp(u16),
}

/// The path MTU state of one tunnel.
#[derive(Debug, Clone)]
pub struct PathMtu {
    /// `try-mtu-discovery` is on and has not given up.
    discovery: bool,
    /// Bytes between the data MTU and the link MTU (outer IP + UDP, DTLS record, type byte).
    overhead: u16,
    /// The link MTU granted at CONNECT: the ceiling.
    granted: u16,
    /// The current link MTU.
    link: u16,
    /// The largest size known to pass, and the smallest known to fail (`granted + 1` = none).
    last_good: u16,
    last_bad: u16,
}

impl PathMtu {
    /// `granted_data`: the data MTU main granted (the tun MTU); `overhead`: link minus data.
    /// Discovery starts only when the granted link MTU is above the floor (ocserv
    /// `mtu_discovery_init`).
    pub fn new(discovery: bool, granted_data: u16, overhead: u16) -> Self {
        let granted = granted_data.saturating_add(overhead);
        Self {
            discovery: discovery && granted > FLOOR,
            overhead,
            granted,
            link: granted,
            last_good: granted,
            last_bad: granted.saturating_add(1),
        }
    }

    /// The link MTU that goes with [`Self::data_mtu`] (data plus overhead).
    pub fn link_mtu(&self) -> u16 {
        self.data_mtu().saturating_add(self.overhead)
    }

    /// Whether discovery is on (DF set, EMSGSIZE handled here).
    pub fn discovery(&self) -> bool {
        self.discovery
    }

    /// The largest tunnelled packet that fits the path now.
    pub fn data_mtu(&self) -> u16 {
        self.data_of(self.link)
    }

    fn data_of(&self, link: u16) -> u16 {
        let ceiling = self.granted.saturating_sub(self.overhead).max(MIN_DATA);
        link.saturating_sub(self.overhead).clamp(MIN_DATA, ceiling)
    }

    /// Move to `link` (bounded) and say whether the data MTU changed.
    fn set(&mut self, link: u16) -> Change {
        let before = self.data_mtu();
        self.link = link.min(self.granted);
        match self.data_mtu() {
            after if after == before => Change::None,
            after => Change::Data(after),
        }
    }

    /// The kernel refused a datagram of at most the data MTU as too large for the path.
    /// `kernel_mtu`: the path MTU the kernel reports for the socket, if it does.
    pub fn too_big(&mut self, kernel_mtu: Option<u16>) -> Change {
        if !self.discovery {
            return Change::None;
        }
        match kernel_mtu {
            // The kernel's own figure (interface, route or ICMP "fragmentation needed"):
            // trust it and probe no higher. One that is not below the current size means the
            // refused datagram was larger than the current MTU (sent before it changed).
            Some(path) if path >= self.link => Change::None,
            Some(path) if path >= FLOOR => {
                self.last_good = path;
                self.last_bad = path.saturating_add(1);
                self.set(path)
            }
            Some(_) => self.give_up(),
            None => {
                self.last_bad = self.link;
                if self.last_good <= FLOOR {
                    return self.give_up();
                }
                if self.last_good >= self.link {
                    let two_thirds = u16::try_from(u32::from(self.link) * 2 / 3).unwrap_or(FLOOR);
                    self.last_good = two_thirds.max(FLOOR);
                }
                self.set(self.last_good)
            }
        }
    }

    /// Not even the floor passes: stop discovering and stay at the floor (ocserv
    /// `disable_mtu_disc`).
    fn give_up(&mut self) -> Change {
        self.discovery = false;
        match self.set(FLOOR) {
            Change::Data(data) | Change::GaveUp(data) => Change::GaveUp(data),
            Change::None => Change::GaveUp(self.data_mtu()),
        }
    }

    /// A tunnelled packet of `len` bytes left over DTLS. A full-size one after a failure
    /// probes halfway up towards the last bad size (ocserv `mtu_ok`).
    pub fn sent(&mut self, len: usize) -> Change {
        if !self.discovery
            || len < usize::from(self.data_mtu())
            || self.last_bad <= self.link.saturating_add(1)
        {
            return Change::None;
        }
        self.last_good = self.link;
        let mid = (u32::from(self.link) + u32::from(self.last_bad)) / 2;
        self.set(u16::try_from(mid).unwrap_or(self.link))
    }

    /// A DPD request with `len` payload bytes came over DTLS: a client probing its MTU. A
    /// larger one than the data MTU raises it (ocserv `data_mtu_set`), up to the granted MTU.
    pub fn client_probe(&mut self, len: usize) -> Change {
        let Ok(len) = u16::try_from(len) else {
            return self.set(self.granted);
        };
        if len <= self.data_mtu() {
            return Change::None;
        }
        // Only the client's direction is proven; ours is found out by sending.
        let link = len.saturating_add(self.overhead);
        if self.last_bad <= link {
            self.last_bad = self.granted.saturating_add(1);
        }
        self.set(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PSK AES-GCM over IPv4: 28 outer + 37 record + 1 type byte.
    const OVERHEAD: u16 = 66;

    fn granted_1500() -> PathMtu {
        PathMtu::new(true, 1434, OVERHEAD)
    }

    #[test]
    fn starts_at_the_granted_mtu() {
        let p = granted_1500();
        assert!(p.discovery());
        assert_eq!(p.data_mtu(), 1434);
        // Nothing to probe before anything failed.
        let mut p = p;
        assert_eq!(p.sent(1434), Change::None);
        assert_eq!(p.data_mtu(), 1434);
    }

    #[test]
    fn the_kernels_path_mtu_is_taken_and_not_probed_above() {
        let mut p = granted_1500();
        assert_eq!(p.too_big(Some(1200)), Change::Data(1200 - OVERHEAD));
        // Full-size packets do not probe above what the kernel knows.
        assert_eq!(p.sent(usize::from(1200 - OVERHEAD)), Change::None);
        // A refused datagram from before the change (larger than the MTU now): no new drop.
        assert_eq!(p.too_big(Some(1200)), Change::None);
        // The path shrinks further.
        assert_eq!(p.too_big(Some(1000)), Change::Data(1000 - OVERHEAD));
    }

    #[test]
    fn without_the_kernels_figure_it_guesses_two_thirds_then_searches() {
        let mut p = granted_1500();
        // 1500 fails: 2/3 of it.
        assert_eq!(p.too_big(None), Change::Data(1000 - OVERHEAD));
        // Smaller packets do not probe.
        assert_eq!(p.sent(500), Change::None);
        // A full-size one did: halfway to 1500.
        assert_eq!(
            p.sent(usize::from(1000 - OVERHEAD)),
            Change::Data(1250 - OVERHEAD)
        );
        // 1250 fails: back to the last good, 1000.
        assert_eq!(p.too_big(None), Change::Data(1000 - OVERHEAD));
        assert_eq!(p.sent(1000), Change::Data(1125 - OVERHEAD));
        // The search narrows until good and bad meet; bounded steps.
        let mut steps = 0;
        loop {
            let full = usize::from(p.data_mtu());
            let change = if p.link < 1180 {
                p.sent(full)
            } else {
                p.too_big(None)
            };
            if change == Change::None {
                break;
            }
            steps += 1;
            assert!(steps < 20, "the search does not end");
        }
        assert!((1170..1185).contains(&p.link), "settled at {}", p.link);
        assert_eq!(p.sent(usize::from(p.data_mtu())), Change::None);
    }

    #[test]
    fn gives_up_at_the_floor() {
        let mut p = PathMtu::new(true, 1000 - OVERHEAD, OVERHEAD);
        // 1000 -> max(666, 800) = 800.
        assert_eq!(p.too_big(None), Change::Data(FLOOR - OVERHEAD));
        // 800 fails too: give up, stay at the floor.
        assert_eq!(p.too_big(None), Change::GaveUp(FLOOR - OVERHEAD));
        assert!(!p.discovery());
        assert_eq!(p.too_big(None), Change::None);
        assert_eq!(p.sent(5000), Change::None);
        // A kernel figure below the floor gives up at once.
        let mut p = granted_1500();
        assert_eq!(p.too_big(Some(700)), Change::GaveUp(FLOOR - OVERHEAD));
        assert!(!p.discovery());
    }

    #[test]
    fn no_discovery_at_or_below_the_floor_or_when_off() {
        let mut p = PathMtu::new(true, FLOOR - OVERHEAD, OVERHEAD);
        assert!(!p.discovery());
        assert_eq!(p.too_big(None), Change::None);
        let mut p = PathMtu::new(false, 1434, OVERHEAD);
        assert!(!p.discovery());
        assert_eq!(p.too_big(Some(1200)), Change::None);
        assert_eq!(p.data_mtu(), 1434);
    }

    #[test]
    fn client_probes_raise_the_mtu_up_to_the_granted_one() {
        let mut p = granted_1500();
        assert_eq!(p.too_big(Some(1100)), Change::Data(1100 - OVERHEAD));
        assert_eq!(p.client_probe(500), Change::None);
        assert_eq!(p.client_probe(1200), Change::Data(1200));
        // Never above the grant, however large the probe.
        assert_eq!(p.client_probe(9000), Change::Data(1434));
        assert_eq!(p.client_probe(usize::MAX), Change::None);
        // With discovery off too (ocserv answers probes regardless).
        let mut off = PathMtu::new(false, 1434, OVERHEAD);
        assert_eq!(off.client_probe(2000), Change::None);
        assert_eq!(off.data_mtu(), 1434);
    }

    #[test]
    fn a_raised_mtu_that_fails_falls_back_to_the_last_good_one() {
        let mut p = granted_1500();
        assert_eq!(p.too_big(None), Change::Data(1000 - OVERHEAD));
        assert_eq!(p.client_probe(1300), Change::Data(1300));
        // The client's probe proves only its direction: 1366 fails ours, back to 1000.
        assert_eq!(p.too_big(None), Change::Data(1000 - OVERHEAD));
        // A probe above the last bad size reopens the search up to the grant.
        assert_eq!(p.client_probe(1350), Change::Data(1350));
        assert_eq!(p.sent(1350), Change::Data((1416 + 1501) / 2 - OVERHEAD));
    }

    #[test]
    fn the_data_mtu_stays_within_its_bounds() {
        // A tiny grant (main clamps data MTUs at 576): never below it, never above the grant.
        let mut p = PathMtu::new(true, MIN_DATA, 300);
        assert_eq!(p.data_mtu(), MIN_DATA);
        for _ in 0..5 {
            p.too_big(None);
            assert_eq!(p.data_mtu(), MIN_DATA);
        }
        assert!(!p.discovery());
        assert_eq!(p.client_probe(5000), Change::None);
        assert_eq!(p.data_mtu(), MIN_DATA);
    }
}
