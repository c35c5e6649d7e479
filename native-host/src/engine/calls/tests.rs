//! Call signaling between Alice and Bob over an in-memory mesh, and what
//! an unverified node's signaling gets (nothing).

use std::collections::BTreeSet;
use std::sync::Arc;

use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::peer::frame::Frame;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::CallNet;
use crate::engine::people::PeopleHandle;
use crate::engine::standing::Standing;
use crate::engine::testkit::{self, Party};
use crate::mesh::links::memory::MemoryMesh;

struct Person {
    secrets: NodeSecrets,
    address: String,
    people: PeopleHandle,
    calls: Arc<CallNet>,
    events: broadcast::Sender<crate::api::Event>,
    _home: tempfile::TempDir,
}

fn person(mesh: &MemoryMesh, seed: u8, address: &str) -> Person {
    let secrets = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
    let home = tempfile::tempdir().unwrap();
    let people = PeopleHandle::start(home.path().join("people.bin"));
    let (_, standing) =
        watch::channel(Standing { address: Some(address.into()), network: None, mesh: Default::default() });
    let id = secrets.node_id();
    let events = broadcast::channel(16).0;
    let calls = Arc::new(CallNet::new(id, mesh.links(id), people.clone(), standing, events.clone()));
    let receiver = Arc::downgrade(&calls);
    mesh.join(id, address, move |from, _member, frame| {
        if let (Some(calls), Frame::Data { payload, .. }) = (receiver.upgrade(), frame) {
            calls.on_frame(from, &payload);
        }
        Box::pin(async {})
    });
    Person { secrets, address: address.into(), people, calls, events, _home: home }
}

impl Person {
    fn party(&self) -> Party<'_> {
        Party { people: &self.people, secrets: &self.secrets, address: &self.address }
    }
}

async fn verified(a: &Person, b: &Person) {
    testkit::verify_each_other(&a.party(), &b.party()).await;
}

#[tokio::test]
async fn an_invitation_and_the_signaling_reach_a_verified_person_and_its_page() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (person(&mesh, 1, "alice@example.org"), person(&mesh, 2, "bob@example.org"));
    verified(&alice, &bob).await;
    let mut bobs_page = bob.calls.subscribe();
    let mut bobs_events = bob.events.subscribe();

    let mut alices_rooms = BTreeSet::new();
    let invite = json!({"type": "invite", "room": "r1", "title": "standup", "members": [bob.address]});
    alice.calls.on_page_message(invite, &mut alices_rooms).unwrap();
    // Signaling leaves through a queue per node: wait for what it causes.
    assert_eq!(bobs_events.recv().await.unwrap(), crate::api::Event::CallsChanged);
    alice.calls.on_page_message(json!({"type": "join", "room": "r1"}), &mut alices_rooms).unwrap();

    let rooms = bob.calls.list();
    assert_eq!(rooms.len(), 1);
    assert_eq!((rooms[0].title.as_str(), rooms[0].invited_by.as_str()), ("standup", "alice@example.org"));
    let joined = bobs_page.recv().await.expect("Alice's join reached Bob's pages");
    assert_eq!(joined.message["type"], "join");
    assert_eq!(joined.message["email"], "alice@example.org");
}

#[tokio::test]
async fn an_unverified_node_can_neither_invite_nor_be_invited() {
    let mesh = MemoryMesh::default();
    let (alice, mallory) = (person(&mesh, 1, "alice@example.org"), person(&mesh, 3, "mallory@example.org"));
    testkit::saw(&alice.party(), &mallory.party()).await;
    testkit::saw(&mallory.party(), &alice.party()).await;

    let invite = json!({"type": "invite", "room": "r1", "members": [mallory.address]});
    let refused = alice.calls.on_page_message(invite, &mut BTreeSet::new()).unwrap_err();
    assert!(refused.contains("no verified device"), "{refused}");

    // Mallory's node sends an invitation anyway (straight on the link).
    let forged = json!({"room": "r2", "kind": "invite", "members": [alice.address, mallory.address]});
    let frame = Frame::Data { topic: super::TOPIC.into(), payload: forged.to_string().into_bytes() };
    use crate::mesh::links::Links;
    mesh.links(mallory.secrets.node_id()).send_to_linked(&alice.secrets.node_id(), frame).await.unwrap();
    mesh.settled().await;
    assert!(alice.calls.list().is_empty(), "nothing shown from an unverified node");
}
