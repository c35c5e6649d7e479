//! Two or three nodes' link state machines against a simulated network and
//! clock: who may connect, what they learn, and how a link ends.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::frame::{Frame, MAX_PAYLOAD};
use super::handshake::{Handshake, HandshakeConfig, HandshakeError};
use super::liveness::DEAD_AFTER_MS;
use super::session::{Event, Session, SessionError, HANDSHAKE_TIMEOUT_MS};
use crate::drive::keys::NetworkKey;
use crate::identity::NodeSecrets;

fn node(n: u8) -> NodeSecrets {
    NodeSecrets::from_seeds([n; 32], [n.wrapping_add(100); 32])
}

fn config(psk: Option<[u8; 32]>, name: &str) -> HandshakeConfig {
    HandshakeConfig { network_psk: psk, binding: Vec::new(), name: name.into(), email: "owner@example.org".into() }
}

fn psk(n: u8) -> Option<[u8; 32]> {
    Some(NetworkKey::from_bytes([n; 32]).link_psk())
}

/// A link between two sessions: records cross after `latency_ms`, unless
/// the link is cut.
struct Wire {
    now: u64,
    latency_ms: u64,
    cut: bool,
    a: Session,
    b: Session,
    in_flight: VecDeque<(u64, bool, Vec<u8>)>,
}

impl Wire {
    /// Starts a link from `a` to `b`'s listener; `b` is created by the first record.
    fn connect(a_cfg: HandshakeConfig, b_cfg: HandshakeConfig) -> Result<Wire, SessionError> {
        Wire::connect_with_latency(a_cfg, b_cfg, 5)
    }

    fn connect_with_latency(
        a_cfg: HandshakeConfig,
        b_cfg: HandshakeConfig,
        latency_ms: u64,
    ) -> Result<Wire, SessionError> {
        let mut a = Session::connect(&node(1), a_cfg, [11; 32], 0)?;
        let first = a.poll_transmit().expect("the initiator speaks first");
        let b = Session::accept(&node(2), b_cfg, &first, [22; 32], 0)?;
        let mut wire = Wire { now: 0, latency_ms, cut: false, a, b, in_flight: VecDeque::new() };
        wire.run_for(100);
        Ok(wire)
    }

    /// Advances the clock in 1 ms steps, delivering records and timeouts.
    fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 1;
            for (from_a, session) in [(true, &mut self.a), (false, &mut self.b)] {
                if session.poll_timeout().is_some_and(|t| t <= self.now) {
                    session.handle_timeout(self.now);
                }
                while let Some(record) = session.poll_transmit() {
                    if !self.cut {
                        self.in_flight.push_back((self.now + self.latency_ms, from_a, record));
                    }
                }
            }
            while self.in_flight.front().is_some_and(|(at, _, _)| *at <= self.now) {
                let Some((_, from_a, record)) = self.in_flight.pop_front() else { break };
                let to = if from_a { &mut self.b } else { &mut self.a };
                let _ = to.handle_record(self.now, &record);
            }
        }
    }
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn established(session: &mut Session) -> super::handshake::PeerIdentity {
    events(session)
        .into_iter()
        .find_map(|e| if let Event::Established(peer) = e { Some(peer) } else { None })
        .expect("the link is established")
}

#[test]
fn members_prove_who_they_are_and_trade_frames_of_any_size() {
    let mut wire = Wire::connect(config(psk(9), "laptop"), config(psk(9), "desktop")).unwrap();
    let seen_by_a = established(&mut wire.a);
    let seen_by_b = established(&mut wire.b);
    assert_eq!(seen_by_a.node_id, node(2).node_id());
    assert_eq!(seen_by_a.name, "desktop");
    assert!(seen_by_a.member);
    assert_eq!(seen_by_b.node_id, node(1).node_id());
    assert_eq!(seen_by_b.x25519, node(1).public().x25519);
    assert!(seen_by_b.member);

    let big = Frame::Data { topic: "mesh.echo".into(), payload: (0..MAX_PAYLOAD).map(|i| i as u8).collect() };
    wire.a.send(&big).unwrap();
    wire.b.send(&Frame::Signal(b"{\"sdp\":\"...\"}".to_vec())).unwrap();
    wire.run_for(20);
    assert_eq!(events(&mut wire.b), vec![Event::Frame(big)]);
    assert_eq!(events(&mut wire.a), vec![Event::Frame(Frame::Signal(b"{\"sdp\":\"...\"}".to_vec()))]);
}

#[test]
fn a_node_without_the_network_key_gets_nothing() {
    // An impostor asking for a member link with a wrong key fails on the
    // first message: the responder reveals neither name nor key.
    let mut impostor = Session::connect(&node(3), config(psk(66), "impostor"), [3; 32], 0).unwrap();
    let first = impostor.poll_transmit().unwrap();
    let refused = Session::accept(&node(2), config(psk(9), "desktop"), &first, [22; 32], 0);
    assert!(matches!(refused, Err(SessionError::Handshake(HandshakeError::Crypto))));

    // A node in no network cannot even be asked for a member link.
    let refused = Session::accept(&node(2), config(None, "fresh"), &first, [22; 32], 0);
    assert!(matches!(refused, Err(SessionError::Handshake(HandshakeError::NoNetwork))));
}

#[test]
fn other_peoples_nodes_get_a_stranger_link_that_never_counts_as_member() {
    let mut wire = Wire::connect(config(None, "bob's laptop"), config(psk(9), "desktop")).unwrap();
    let seen_by_b = established(&mut wire.b);
    assert_eq!(seen_by_b.node_id, node(1).node_id());
    assert!(!seen_by_b.member, "a stranger handshake never uses the network key");
    assert!(!established(&mut wire.a).member);
}

#[test]
fn different_channel_bindings_fail_the_handshake() {
    // What a party rewriting the SDP's fingerprints would cause: the two
    // sides see different fingerprints.
    let mut a_cfg = config(psk(9), "a");
    a_cfg.binding = super::dtls_binding("sha-256 AA", "sha-256 MM");
    let mut b_cfg = config(psk(9), "b");
    b_cfg.binding = super::dtls_binding("sha-256 MM", "sha-256 BB");
    let outcome = Wire::connect(a_cfg, b_cfg);
    assert!(matches!(outcome, Err(SessionError::Handshake(HandshakeError::Crypto))));

    // Same fingerprints, written differently by two browsers: still one binding.
    assert_eq!(super::dtls_binding("SHA-256 AB:CD ", "x"), super::dtls_binding("sha-256 ab:cd", "X"));
}

#[test]
fn a_bare_handshake_binds_a_data_channel() {
    let binding = super::dtls_binding("sha-256 AA", "sha-256 BB");
    let mut cfg = config(psk(9), "a");
    cfg.binding = binding.clone();
    let mut a = Handshake::initiate(&node(1), cfg.clone(), [1; 32]).unwrap();
    let mut b = Handshake::accept(&node(2), cfg, &a.poll_transmit().unwrap(), [2; 32]).unwrap();
    a.handle_message(&b.poll_transmit().unwrap()).unwrap();
    b.handle_message(&a.poll_transmit().unwrap()).unwrap();
    assert_eq!(a.peer().unwrap().node_id, node(2).node_id());
    assert_eq!(b.peer().unwrap().node_id, node(1).node_id());
    assert!(a.poll_transmit().is_none() && b.poll_transmit().is_none());
    assert_eq!(b.handle_message(b"again"), Err(HandshakeError::OutOfTurn));
}

#[test]
fn round_trips_are_measured_and_silence_closes_the_link() {
    let mut wire = Wire::connect_with_latency(config(psk(9), "a"), config(psk(9), "b"), 20).unwrap();
    wire.run_for(3_000);
    let rtts: Vec<u32> =
        events(&mut wire.a).into_iter().filter_map(|e| if let Event::Rtt(r) = e { Some(r) } else { None }).collect();
    assert!(rtts.iter().any(|&r| (38..=42).contains(&r)), "round trips of about 40 ms, got {rtts:?}");

    wire.cut = true;
    wire.in_flight.clear();
    wire.run_for(DEAD_AFTER_MS + 10);
    assert!(wire.a.is_closed() && wire.b.is_closed());
    assert!(events(&mut wire.a).contains(&Event::Closed(SessionError::Silent.to_string())));
}

#[test]
fn a_stuck_handshake_times_out() {
    let mut a = Session::connect(&node(1), config(psk(9), "a"), [1; 32], 0).unwrap();
    a.handle_timeout(HANDSHAKE_TIMEOUT_MS - 1);
    assert!(!a.is_closed());
    a.handle_timeout(HANDSHAKE_TIMEOUT_MS);
    assert!(a.is_closed());
}

#[test]
fn a_tampered_record_closes_the_link() {
    let mut wire = Wire::connect(config(psk(9), "a"), config(psk(9), "b")).unwrap();
    events(&mut wire.b);
    wire.a.send(&Frame::Signal(b"hello".to_vec())).unwrap();
    let mut record = wire.a.poll_transmit().unwrap();
    record[3] ^= 1;
    assert_eq!(wire.b.handle_record(wire.now, &record), Err(SessionError::Decrypt));
    assert!(wire.b.is_closed());
    assert!(wire.b.send(&Frame::Signal(vec![])).is_err(), "nothing more goes out on a closed link");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn garbage_never_panics_a_listener(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Session::accept(&node(2), config(psk(9), "b"), &bytes, [2; 32], 0);
    }

    #[test]
    fn garbage_never_panics_an_initiator(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut a = Session::connect(&node(1), config(psk(9), "a"), [1; 32], 0).unwrap();
        prop_assert!(a.handle_record(1, &bytes).is_err());
        prop_assert!(a.is_closed());
    }
}

#[test]
fn the_engines_link_carries_frames_larger_than_a_data_channel_message() {
    let mut wire = Wire::connect(config(psk(9), "a"), config(psk(9), "b")).unwrap();
    events(&mut wire.b);
    let fragment = Frame::Data { topic: "drive.put".into(), payload: vec![0x5a; 3 * MAX_PAYLOAD] };
    assert!(fragment.encode().is_err(), "too large for a data channel");
    wire.a.send(&fragment).unwrap();
    wire.run_for(20);
    assert_eq!(events(&mut wire.b), vec![Event::Frame(fragment)]);
}

#[test]
fn a_stranger_link_takes_no_frame_larger_than_its_topics_need() {
    // Another person's node: a file chunk fits, a drive-sized frame closes
    // the link before it is buffered whole.
    let mut wire = Wire::connect(config(None, "bob's laptop"), config(psk(9), "desktop")).unwrap();
    events(&mut wire.b);
    let chunk = Frame::Data { topic: "send.msg".into(), payload: vec![1; crate::transfer::CHUNK_SIZE as usize + 64] };
    wire.a.send(&chunk).unwrap();
    wire.run_for(20);
    assert_eq!(events(&mut wire.b), vec![Event::Frame(chunk)]);

    let huge = Frame::Data { topic: "send.msg".into(), payload: vec![2; 3 * 1024 * 1024] };
    wire.a.send(&huge).unwrap();
    wire.run_for(20);
    let closed = events(&mut wire.b);
    assert!(matches!(closed.as_slice(), [Event::Closed(_)]), "{} events, not one close", closed.len());
    assert!(wire.b.is_closed());
}
