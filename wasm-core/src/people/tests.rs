//! Verification between simulated people: Alice's node challenges the nodes
//! that claim Bob's address; only a node that reads the challenge (Bob's)
//! can answer; pins, warnings, expiry, and the formats' round trips.

use proptest::prelude::*;

use super::*;

const T0: u64 = 1_800_000_000_000;

fn node(seed: u8) -> NodeSecrets {
    NodeSecrets::from_seeds([seed; 32], [seed.wrapping_add(100); 32])
}

fn key_of(n: &NodeSecrets) -> [u8; 32] {
    n.public().ed25519
}

/// A counter as the nonce source: distinct, deterministic.
fn nonces() -> impl FnMut() -> [u8; 32] {
    let mut next = 0u8;
    move || {
        next += 1;
        [next; 32]
    }
}

#[test]
fn only_the_node_that_reads_the_mailbox_gets_verified() {
    let (alice, bob, mallory) = (node(1), node(2), node(3));
    let mut book = Contacts::default();
    assert_eq!(book.seen("Bob@Example.org ", key_of(&bob), T0).unwrap(), Seen::New);
    // Mallory claims Bob's address too.
    assert_eq!(book.seen("bob@example.org", key_of(&mallory), T0).unwrap(), Seen::New);
    let challenge = book.challenge("bob@example.org", alice.node_id(), "alice@example.org", T0, nonces()).unwrap();
    assert_eq!(challenge.nonces.len(), 2);

    // The mail travels; Bob's node reads it from Bob's mailbox.
    let mailed = Challenge::decode(&challenge.encode()).unwrap();
    assert!(mailed.answer(&bob, "alice@example.org").is_none(), "a challenge for another address is not answered");
    let answer = Answer::decode(&mailed.answer(&bob, "BOB@example.org").unwrap().encode()).unwrap();
    assert_eq!(book.handle_answer(bob.node_id(), alice.node_id(), &answer, T0 + 5_000).unwrap(), "bob@example.org");

    // Mallory never saw the mail: guessing, or replaying Bob's answer, fails.
    let guess = Answer::sign(&mallory, [9; 32], alice.node_id(), "bob@example.org");
    assert_eq!(
        book.handle_answer(mallory.node_id(), alice.node_id(), &guess, T0 + 6_000),
        Err(PeopleError::WrongProof)
    );
    assert_eq!(book.handle_answer(mallory.node_id(), alice.node_id(), &answer, T0 + 6_000), Err(PeopleError::NotAsked));
    let person = book.person("bob@example.org").unwrap();
    assert!(matches!(person.devices[&bob.node_id()].trust, Trust::Verified { .. }));
    assert!(matches!(person.devices[&mallory.node_id()].trust, Trust::Pending { .. }));
    assert!(person.has_unverified_newcomer(), "an unverified node beside a verified one is a warning");
}

#[test]
fn a_forged_signature_or_an_old_answer_is_refused() {
    let (alice, bob) = (node(1), node(2));
    let mut book = Contacts::default();
    book.seen("bob@example.org", key_of(&bob), T0).unwrap();
    let challenge = book.challenge("bob@example.org", alice.node_id(), "alice@example.org", T0, nonces()).unwrap();
    let mut answer = challenge.answer(&bob, "bob@example.org").unwrap();
    answer.signature[0] ^= 1;
    assert_eq!(book.handle_answer(bob.node_id(), alice.node_id(), &answer, T0), Err(PeopleError::BadSignature));
    let late = challenge.answer(&bob, "bob@example.org").unwrap();
    assert_eq!(
        book.handle_answer(bob.node_id(), alice.node_id(), &late, T0 + CHALLENGE_TTL_MS + 1),
        Err(PeopleError::Expired)
    );
    assert_eq!(
        book.handle_answer(bob.node_id(), alice.node_id(), &late, T0 + 1),
        Err(PeopleError::NotAsked),
        "after expiry the node must be challenged again"
    );
}

#[test]
fn a_new_device_of_a_verified_person_is_a_warning_and_blocking_stops_challenges() {
    let (alice, bob, bob_laptop) = (node(1), node(2), node(4));
    let mut book = Contacts::default();
    book.seen("bob@example.org", key_of(&bob), T0).unwrap();
    let c = book.challenge("bob@example.org", alice.node_id(), "alice@example.org", T0, nonces()).unwrap();
    let a = c.answer(&bob, "bob@example.org").unwrap();
    book.handle_answer(bob.node_id(), alice.node_id(), &a, T0).unwrap();
    assert_eq!(book.seen("bob@example.org", key_of(&bob), T0).unwrap(), Seen::Known);
    assert_eq!(book.seen("bob@example.org", key_of(&bob_laptop), T0).unwrap(), Seen::NewDeviceOfVerified);
    let again = book.challenge("bob@example.org", alice.node_id(), "alice@example.org", T0, nonces()).unwrap();
    assert_eq!(again.nonces.len(), 1, "only the unverified node is challenged");
    assert_eq!(again.nonces[0].0, bob_laptop.node_id());

    book.rename("bob@example.org", " Bob (work)\n").unwrap();
    assert_eq!(book.person("bob@example.org").unwrap().name, "Bob (work)");
    book.set_blocked("bob@example.org", true).unwrap();
    assert!(matches!(
        book.challenge("bob@example.org", alice.node_id(), "a@x", T0, nonces()),
        Err(PeopleError::Blocked(_))
    ));
    assert!(book.remove("bob@example.org").is_ok());
    assert!(matches!(book.remove("bob@example.org"), Err(PeopleError::UnknownPerson(_))));
    assert_eq!(book.seen("bob@example.org", key_of(&bob), T0).unwrap(), Seen::New, "removed means forgotten");
}

fn book_strategy() -> impl Strategy<Value = Contacts> {
    let device = (any::<u8>(), any::<u64>(), 0u8..3, any::<[u8; 32]>(), any::<u64>());
    let person = ("[a-z]{1,12}@[a-z]{1,8}\\.org", "\\PC{0,20}", any::<bool>(), prop::collection::vec(device, 0..4));
    prop::collection::vec(person, 0..5).prop_map(|people| {
        let mut book = Contacts::default();
        for (email, name, blocked, devices) in people {
            let entry = book.people.entry(email).or_default();
            entry.name = name;
            entry.blocked = blocked;
            for (seed, seen, kind, nonce, at) in devices {
                let public_key = key_of(&node(seed));
                let trust = match kind {
                    0 => Trust::Unverified,
                    1 => Trust::Pending { nonce, expires_ms: at },
                    _ => Trust::Verified { at_ms: at },
                };
                entry
                    .devices
                    .insert(NodeId::from_public_key(&public_key), Device { public_key, first_seen_ms: seen, trust });
            }
        }
        book
    })
}

proptest! {
    #[test]
    fn the_contact_book_round_trips(book in book_strategy()) {
        // What is saved: everything but unverified nodes, and people left
        // with nothing the owner did.
        let mut saved = book.clone();
        saved.people.retain(|_, p| {
            p.devices.retain(|_, d| d.trust != Trust::Unverified);
            p.owner_acted() || !p.devices.is_empty()
        });
        prop_assert_eq!(Contacts::decode(&book.encode()).unwrap(), saved);
    }

    #[test]
    fn challenges_and_answers_round_trip(seeds in prop::collection::vec(any::<u8>(), 0..8), nonce in any::<[u8; 32]>(), to in "[a-z]{1,10}@[a-z]{1,6}\\.net") {
        let challenge = Challenge {
            from_node: node(7).node_id(),
            from_email: "alice@example.org".into(),
            to_email: to.clone(),
            nonces: seeds.iter().map(|s| (node(*s).node_id(), nonce)).collect(),
        };
        prop_assert_eq!(Challenge::decode(&challenge.encode()).unwrap(), challenge);
        let answer = Answer::sign(&node(8), nonce, node(7).node_id(), &to);
        prop_assert_eq!(Answer::decode(&answer.encode()).unwrap(), answer);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Challenge::decode(&bytes);
        let _ = Answer::decode(&bytes);
        let _ = Contacts::decode(&bytes);
        let mut prefixed = b"MMPB\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = Contacts::decode(&prefixed);
    }
}

#[test]
fn pins_from_another_node_of_the_owner_verify_the_same_key_only() {
    let bob = node(2);
    let bob_key = bob.public().ed25519;
    let mut first = Contacts::default();
    first.seen("bob@x.org", bob_key, 1).unwrap();
    let mut pins = Pins(vec![Pin { email: "bob@x.org".into(), public_key: bob_key, at_ms: 5 }]);
    // Our own book, where Bob's node was seen but not verified yet.
    assert!(first.adopt_pin(&pins.0[0]));
    assert!(first.person("bob@x.org").unwrap().is_verified());
    assert!(!first.adopt_pin(&pins.0[0]), "once is enough");
    assert_eq!(first.verified_pins(), pins);
    // A book that never saw Bob learns his node, verified.
    let mut second = Contacts::default();
    assert!(second.adopt_pin(&pins.0[0]));
    assert_eq!(second.owner_of(&bob.node_id()).map(|(e, _)| e.as_str()), Some("bob@x.org"));
    // A pin cannot move a node we know under one address to another.
    pins.0[0].email = "mallory@x.org".into();
    assert!(!second.adopt_pin(&pins.0[0]));
}

proptest! {
    #[test]
    fn pins_round_trip(pins in proptest::collection::vec(("[a-z]{1,8}@x\\.org", any::<[u8; 32]>(), any::<u64>()), 0..8)) {
        let pins = Pins(pins.into_iter().map(|(email, public_key, at_ms)| Pin { email, public_key, at_ms }).collect());
        prop_assert_eq!(Pins::decode(&pins.encode()), Ok(pins));
    }
}

#[test]
fn self_made_identities_cannot_grow_the_book_without_bound_nor_reach_the_disk() {
    let mut book = Contacts::default();
    let (bob, me) = (node(1), node(2));
    book.seen("bob@example.org", key_of(&bob), T0).unwrap();
    let challenge = book.challenge("bob@example.org", me.node_id(), "me@example.org", T0, nonces()).unwrap();
    let answer = challenge.answer(&bob, "bob@example.org").unwrap();
    book.handle_answer(bob.node_id(), me.node_id(), &answer, T0 + 1).unwrap();
    book.seen("carol@example.org", key_of(&node(3)), T0).unwrap();
    book.rename("carol@example.org", "Carol").unwrap();

    // Anyone on the LAN can make identities, each claiming some address.
    for n in 0..5_000u32 {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        key[31] = 0xee;
        book.seen(&format!("stranger{n}@example.net"), key, T0 + u64::from(n)).unwrap();
    }
    let unverified =
        book.people().flat_map(|(_, p)| p.devices.values()).filter(|d| matches!(d.trust, Trust::Unverified)).count();
    assert!(unverified <= MAX_UNVERIFIED_DEVICES, "{unverified} unverified nodes kept");
    assert!(book.people().count() <= MAX_UNVERIFIED_DEVICES + 2, "{} people", book.people().count());
    assert!(book.person("bob@example.org").unwrap().is_verified(), "a verified person stays");
    assert!(book.person("carol@example.org").is_some(), "so does one the owner named");

    // Only what was verified, or what the owner acted on, is saved.
    let saved = Contacts::decode(&book.encode()).unwrap();
    let emails: Vec<&String> = saved.people().map(|(e, _)| e).collect();
    assert_eq!(emails, ["bob@example.org", "carol@example.org"]);
    assert!(saved.person("carol@example.org").unwrap().devices.is_empty(), "an unverified node is not saved");
}
