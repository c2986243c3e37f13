//! The slot rules, by example and by randomized runs (seeded, so a failure replays).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use super::*;

/// Ids of the sockets not yet dropped.
type Live = Rc<RefCell<BTreeSet<u32>>>;

struct Sock {
    id: u32,
    live: Live,
}

impl Drop for Sock {
    fn drop(&mut self) {
        self.live.borrow_mut().remove(&self.id);
    }
}

struct Srv {
    id: u32,
    closed: bool,
}

impl Conversation for Srv {
    fn is_closed(&self) -> bool {
        self.closed
    }
}

/// The slots under test and what the test knows beside them.
struct World {
    slots: Slots<Sock, Srv>,
    live: Live,
    next: u32,
    now: Instant,
    /// Server id -> id of the socket its ClientHello came on.
    origin: HashMap<u32, u32>,
}

impl World {
    fn new() -> Self {
        Self {
            slots: Slots::default(),
            live: Live::default(),
            next: 1,
            now: Instant::now(),
            origin: HashMap::new(),
        }
    }

    fn id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    fn socket(&mut self) -> Sock {
        let id = self.id();
        self.live.borrow_mut().insert(id);
        Sock {
            id,
            live: self.live.clone(),
        }
    }

    fn current(&self) -> Option<u32> {
        self.slots.current().map(|s| s.id)
    }

    fn session(&self) -> Option<u32> {
        self.slots.session().map(|s| s.id)
    }

    /// The handshake's server id and the id of the socket its flights go to.
    fn handshake(&mut self) -> Option<(u32, Option<u32>)> {
        self.slots
            .handshake_parts()
            .map(|(h, s)| (h.id, s.map(|s| s.id)))
    }

    /// Route one datagram read from `from` (whose socket is `socket`); a new server is
    /// recorded as coming from that socket.
    fn route(&mut self, from: Source, socket: Option<u32>, kind: Kind<'_>) -> Route {
        let made = Cell::new(None);
        let id = self.id();
        let route = self.slots.route(from, kind, self.now, || {
            made.set(Some(id));
            Srv { id, closed: false }
        });
        if let Some(id) = made.get() {
            let socket = socket.expect("a hello from a socket that exists");
            self.origin.insert(id, socket);
        }
        route
    }

    /// A flow from main: its first datagram, then settle. `authentic`: a data record
    /// authenticates under the session.
    fn new_flow(&mut self, kind: Kind<'_>, authentic: bool) -> (Route, bool) {
        let socket = self.socket();
        let id = socket.id;
        self.slots.offer(socket);
        let route = self.route(Source::Offered, Some(id), kind);
        let mut moved = false;
        if route == Route::Session && kind == Kind::Data && authentic {
            moved = self.slots.authenticated(Source::Offered);
        }
        self.slots.settle();
        (route, moved)
    }

    /// The sockets the slots hold.
    fn held(&self) -> BTreeSet<u32> {
        let slots = &self.slots;
        slots
            .current
            .iter()
            .chain(slots.handshake.as_ref().and_then(|h| h.socket.as_ref()))
            .chain(slots.offered.iter())
            .map(|s| s.id)
            .collect()
    }

    /// A session established on a flow from main.
    fn established() -> Self {
        let mut w = Self::new();
        w.new_flow(Kind::Hello(b"hello"), false);
        assert!(w.slots.established());
        w
    }
}

#[test]
fn a_replayed_hello_moves_nothing_and_its_socket_goes_with_its_handshake() {
    let mut w = World::established();
    let (current, session) = (w.current(), w.session());
    let (route, _) = w.new_flow(Kind::Hello(b"hello"), false);
    assert_eq!(route, Route::Handshake);
    assert_eq!((w.current(), w.session()), (current, session));
    // Its answers go to the replayer's socket, data to the client's.
    let (_, flights) = w.handshake().unwrap();
    assert_ne!(flights, current);
    assert_eq!(w.live.borrow().len(), 2);
    // Records from the replayer's socket never reach the session.
    let own = flights;
    assert_eq!(
        w.route(Source::Handshake, own, Kind::Data),
        Route::Handshake
    );
    w.slots.drop_handshake();
    assert_eq!(*w.live.borrow(), current.into_iter().collect());
}

#[test]
fn a_completed_handshake_moves_the_session_to_its_socket() {
    let mut w = World::established();
    w.new_flow(Kind::Hello(b"roamed"), false);
    let (server, flights) = w.handshake().unwrap();
    assert!(w.slots.established());
    assert_eq!(w.current(), flights);
    assert_eq!(w.session(), Some(server));
    assert_eq!(w.live.borrow().len(), 1, "the old socket is closed");
}

#[test]
fn a_nat_rebinding_moves_the_session_only_when_the_record_authenticates() {
    let mut w = World::established();
    let current = w.current();
    assert_eq!(w.new_flow(Kind::Data, false), (Route::Session, false));
    assert_eq!(w.current(), current);
    assert_eq!(w.new_flow(Kind::Handshake, true), (Route::Drop, false));
    assert_eq!(w.current(), current);
    assert_eq!(w.new_flow(Kind::Data, true), (Route::Session, true));
    assert_ne!(w.current(), current);
    assert_eq!(w.live.borrow().len(), 1);
}

#[test]
fn a_handshake_on_the_current_socket_keeps_it_when_the_session_moves() {
    let mut w = World::established();
    let old = w.current();
    assert_eq!(
        w.route(Source::Current, old, Kind::Hello(b"again")),
        Route::Handshake
    );
    assert_eq!(w.handshake().unwrap().1, old);
    w.new_flow(Kind::Data, true);
    assert_ne!(w.current(), old);
    assert_eq!(
        w.handshake().unwrap().1,
        old,
        "its flights still go where its hello came from"
    );
    assert!(w.slots.established());
    assert_eq!(w.current(), old);
}

#[test]
fn a_handshake_that_does_not_complete_expires_with_its_socket() {
    let mut w = World::established();
    w.new_flow(Kind::Hello(b"hello"), false);
    let deadline = w.slots.deadline().unwrap();
    assert!(!w.slots.expire(deadline - Duration::from_millis(1)));
    assert!(w.slots.expire(deadline));
    assert!(w.handshake().is_none());
    assert_eq!(w.live.borrow().len(), 1);
}

#[test]
fn retransmitted_and_cookie_hellos_continue_the_handshake() {
    let mut w = World::new();
    w.new_flow(Kind::Hello(b"first"), false);
    let (server, own) = w.handshake().unwrap();
    // The cookie exchange's second hello, soon after, on the same socket.
    w.route(Source::Handshake, own, Kind::Hello(b"second"));
    assert_eq!(w.handshake().unwrap().0, server);
    // The same hello much later is a retransmission; a different one a new attempt.
    w.now += RESTART_AFTER * 2;
    w.route(Source::Handshake, own, Kind::Hello(b"second"));
    assert_eq!(w.handshake().unwrap().0, server);
    w.route(Source::Handshake, own, Kind::Hello(b"third"));
    let (again, socket) = w.handshake().unwrap();
    assert_ne!(again, server);
    assert_eq!(socket, own, "a restart on a socket keeps the socket");
}

/// A small seeded generator (xorshift64*): the runs are reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn kind(&mut self) -> Kind<'static> {
        const HELLOS: [&[u8]; 3] = [b"a", b"b", b"c"];
        match self.below(3) {
            0 => Kind::Hello(HELLOS[self.below(3) as usize]),
            1 => Kind::Handshake,
            _ => Kind::Data,
        }
    }
}

/// What one step was allowed to change.
#[derive(Debug, Default)]
struct Allowed {
    /// The handshake completed (with the server and flight socket it had).
    completed: Option<(u32, Option<u32>)>,
    /// An authentic record from an offered flow.
    rebound: bool,
    /// The client closed the session.
    closed: bool,
}

/// One random event; `attacker`: only what someone without the key can do (no completed
/// handshake, no authentic record, no close_notify).
fn step(w: &mut World, rng: &mut Rng, attacker: bool) -> Allowed {
    let mut allowed = Allowed::default();
    let authentic = !attacker && rng.below(2) == 0;
    match rng.below(if attacker { 5 } else { 9 }) {
        0 => {
            let kind = rng.kind();
            let (route, moved) = w.new_flow(kind, authentic);
            assert!(
                route != Route::Session || kind == Kind::Data,
                "{kind:?} to the session"
            );
            allowed.rebound = moved;
        }
        1 => {
            let current = w.current();
            let kind = rng.kind();
            let route = w.route(Source::Current, current, kind);
            if route == Route::Session && authentic {
                assert!(!w.slots.authenticated(Source::Current));
            }
        }
        2 => {
            let own = w.slots.handshake_socket().map(|s| s.id);
            let kind = rng.kind();
            let route = w.route(Source::Handshake, own, kind);
            assert_ne!(
                route,
                Route::Session,
                "a handshake's socket reached the session"
            );
            if own.is_none() {
                assert_eq!(route, Route::Drop);
            }
        }
        3 => {
            w.now += Duration::from_millis(rng.below(20_000));
            let expired = w.slots.expire(w.now);
            if expired {
                assert!(w.handshake().is_none());
            }
        }
        4 => {
            // The handshake's server failed or ran out of retransmissions.
            if rng.below(2) == 0 {
                w.slots.drop_handshake();
            } else if let Some((h, _)) = w.slots.handshake_parts() {
                h.closed = true;
            }
        }
        5..=6 => {
            allowed.completed = w.handshake();
            w.slots.established();
        }
        7 => {
            if let (Some(_), current) = w.slots.session_parts(Source::Current) {
                assert!(current.is_some(), "a session without a socket");
            }
        }
        _ => {
            allowed.closed = w.session().is_some();
            w.slots.session_closed();
        }
    }
    allowed
}

/// The invariants across one step.
fn check(w: &mut World, before: (Option<u32>, Option<u32>), allowed: &Allowed) {
    let (current, session) = (w.current(), w.session());
    if current != before.0 {
        match allowed.completed {
            Some((server, flights)) => {
                assert_eq!(
                    current, flights,
                    "the session moved elsewhere than its handshake"
                );
                assert_eq!(current, w.origin.get(&server).copied());
            }
            None => assert!(allowed.rebound, "the session's socket moved without proof"),
        }
    }
    if session != before.1 {
        match allowed.completed {
            Some((server, _)) => assert_eq!(session, Some(server)),
            None => assert!(allowed.closed && session.is_none(), "the session changed"),
        }
    }
    if let Some((server, flights)) = w.handshake() {
        assert_eq!(
            flights,
            w.origin.get(&server).copied(),
            "a handshake's flights go elsewhere than where its hello came from"
        );
    }
    assert!(
        w.slots.offered.is_none(),
        "an offered socket outlived its first datagram"
    );
    assert_eq!(*w.live.borrow(), w.held(), "a socket leaked or vanished");
}

#[test]
fn randomized_runs_keep_the_socket_rules() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut w = World::new();
        for _ in 0..400 {
            let before = (w.current(), w.session());
            let allowed = step(&mut w, &mut rng, false);
            check(&mut w, before, &allowed);
        }
    }
}

#[test]
fn randomized_attacks_never_move_an_established_session() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut w = World::established();
        let start = (w.current(), w.session());
        for _ in 0..400 {
            let before = (w.current(), w.session());
            let allowed = step(&mut w, &mut rng, true);
            check(&mut w, before, &allowed);
            assert_eq!((w.current(), w.session()), start, "seed {seed}");
        }
    }
}
