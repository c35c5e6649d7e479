//! Alice sends files to Bob (and Carol) over an in-memory mesh: through a
//! link that loses frames, across Bob's restart, and past a person whose
//! node stops reading. Each checks the bytes that arrive.

use std::path::PathBuf;
use std::sync::Arc;

use mailmesh_core::drive::NetworkKey;
use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::peer::frame::Frame;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::DirectSend;
use crate::api::{Event, TransferView};
use crate::engine::drive_net::DriveNet;
use crate::engine::people::PeopleHandle;
use crate::engine::routes::SEND;
use crate::engine::standing::{Membership, Standing};
use crate::engine::testkit::{self, Party};
use crate::mesh::inbound::{Offered, Route};
use crate::mesh::links::memory::MemoryMesh;
use crate::transfer_store::Destination;

const ALICE: &str = "alice@example.org";

struct Person {
    secrets: NodeSecrets,
    address: String,
    people: PeopleHandle,
    drive: Arc<DriveNet>,
    events: broadcast::Sender<Event>,
    home: tempfile::TempDir,
    sends: Arc<DirectSend>,
    stop: CancellationToken,
}

/// Starts (or restarts, on the same home) a person's direct-send service
/// and joins it to the mesh.
fn start(
    mesh: &MemoryMesh,
    secrets: &NodeSecrets,
    address: &str,
    home: &std::path::Path,
    people: &PeopleHandle,
    drive: &Arc<DriveNet>,
    events: &broadcast::Sender<Event>,
) -> (Arc<DirectSend>, CancellationToken) {
    let stop = CancellationToken::new();
    let id = secrets.node_id();
    let sends = DirectSend::start(home, mesh.links(id), people.clone(), drive.clone(), events.clone(), stop.clone());
    let (route, inbox) = Route::new(SEND);
    mesh.join(id, address, move |from, member, frame| {
        // Offered at once, so the route keeps the order frames were sent in.
        let offered = match frame {
            Frame::Data { topic, payload } => route.offer(from, member, topic, payload),
            _ => Offered::Dropped,
        };
        Box::pin(async move {
            if let Offered::Wait(room) = offered {
                room.await;
            }
        })
    });
    tokio::spawn(sends.clone().run(inbox));
    (sends, stop)
}

fn person(mesh: &MemoryMesh, seed: u8, address: &str) -> Person {
    let secrets = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
    let home = tempfile::tempdir().expect("temp dir");
    let people = PeopleHandle::start(home.path().join("people.bin"));
    let events = broadcast::channel(256).0;
    let network = Membership { key: NetworkKey::from_bytes([seed; 32]), members: vec![secrets.node_id()] };
    let (_, standing) =
        watch::channel(Standing { address: Some(address.into()), network: Some(network), mesh: Default::default() });
    let drive = testkit::lone_drive(home.path(), &secrets, standing, events.clone());
    let (sends, stop) = start(mesh, &secrets, address, home.path(), &people, &drive, &events);
    Person { secrets, address: address.into(), people, drive, events, home, sends, stop }
}

impl Person {
    fn party(&self) -> Party<'_> {
        Party { people: &self.people, secrets: &self.secrets, address: &self.address }
    }
}

async fn verified(a: &Person, b: &Person) {
    testkit::verify_each_other(&a.party(), &b.party()).await;
}

/// Waits, event by event, until `person`'s transfers satisfy `done`.
async fn until(person: &Person, done: impl Fn(&[TransferView]) -> bool) -> Vec<TransferView> {
    let mut events = person.events.subscribe();
    loop {
        let list = person.sends.list();
        if done(&list) {
            return list;
        }
        // Progress without a state change raises no event: look again
        // at least whenever the other side's timers could have acted.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), events.recv()).await;
    }
}

fn state(list: &[TransferView], state: &str) -> bool {
    !list.is_empty() && list.iter().all(|t| t.state == state)
}

/// A file of `len` bytes that does not repeat, in `dir`.
fn file(dir: &std::path::Path, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes = testkit::content(len);
    let path = dir.join("holiday.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// Bob accepts the one offer he has into a folder of his home.
async fn accept_into_folder(bob: &Person) -> PathBuf {
    let offered = until(bob, |list| state(list, "offered")).await;
    let folder = bob.home.path().join("received");
    let destination = Destination::Folder { path: folder.clone() };
    bob.sends.accept(&offered[0].id, destination).await.unwrap();
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_crosses_a_link_that_loses_chunks_and_acks_and_arrives_whole() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (person(&mesh, 1, ALICE), person(&mesh, 2, "bob@example.org"));
    verified(&alice, &bob).await;
    let (path, bytes) = file(alice.home.path(), 40 * 256 * 1024 + 1000);

    alice.sends.offer(&bob.address, Some(path.display().to_string()), None).await.unwrap();
    // After the offer, the accept and some chunks, the link loses frames
    // both ways (chunks from Alice, acks from Bob).
    mesh.lose(super::TOPIC, 12, 6);
    accept_into_folder(&bob).await;

    let received = until(&bob, |list| state(list, "done")).await;
    let saved = received[0].saved_as.clone().expect("saved somewhere");
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
    until(&alice, |list| state(list, "done")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_restarted_mid_transfer_goes_on_from_the_chunks_it_holds() {
    let mesh = MemoryMesh::default();
    let (alice, mut bob) = (person(&mesh, 1, ALICE), person(&mesh, 2, "bob@example.org"));
    verified(&alice, &bob).await;
    let (path, bytes) = file(alice.home.path(), 30 * 256 * 1024);

    alice.sends.offer(&bob.address, Some(path.display().to_string()), None).await.unwrap();
    // The link breaks for good after the offer, the accept and ten chunks.
    mesh.lose(super::TOPIC, 12, usize::MAX);
    accept_into_folder(&bob).await;
    let held = until(&bob, |list| list.first().is_some_and(|t| t.done > 0)).await[0].done;
    assert!(held < bytes.len() as u64, "stopped part way");

    // Bob's engine stops and starts again on the same home.
    bob.sends.flushed().await;
    bob.stop.cancel();
    let (sends, stop) = start(&mesh, &bob.secrets, &bob.address, bob.home.path(), &bob.people, &bob.drive, &bob.events);
    (bob.sends, bob.stop) = (sends, stop);
    let kept = bob.sends.list();
    assert_eq!((kept[0].state.as_str(), kept[0].done > 0), ("active", true), "the chunks held survive");
    mesh.lose(super::TOPIC, 0, 0);

    let received = until(&bob, |list| state(list, "done")).await;
    assert_eq!(std::fs::read(received[0].saved_as.clone().unwrap()).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_whose_node_stops_reading_holds_up_no_one_elses_transfer() {
    let mesh = MemoryMesh::default();
    let alice = person(&mesh, 1, ALICE);
    let (bob, carol) = (person(&mesh, 2, "bob@example.org"), person(&mesh, 3, "carol@example.org"));
    verified(&alice, &bob).await;
    verified(&alice, &carol).await;
    let (path, bytes) = file(alice.home.path(), 20 * 256 * 1024);

    // Bob's node reads nothing: every offer to it, repeated at each tick,
    // and anything else for it waits for ever.
    mesh.stall(bob.secrets.node_id());
    alice.sends.offer(&bob.address, Some(path.display().to_string()), None).await.unwrap();
    alice.sends.offer(&carol.address, Some(path.display().to_string()), None).await.unwrap();
    accept_into_folder(&carol).await;

    let received = until(&carol, |list| state(list, "done")).await;
    assert_eq!(std::fs::read(received[0].saved_as.clone().unwrap()).unwrap(), bytes);
    let to_bob = alice.sends.list().into_iter().find(|t| t.peer == bob.address).unwrap();
    assert_eq!(to_bob.state, "offered", "Bob's offer just waits");
}

/// Lets the other side's timers repeat what they send at least once, before
/// asserting that something did *not* happen.
async fn a_tick_passes() {
    tokio::time::sleep(super::TICK + std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_from_a_node_not_verified_for_its_address_is_not_shown() {
    let mesh = MemoryMesh::default();
    let alice = person(&mesh, 1, ALICE);
    // Mallory's node claims Bob's address; Alice saw it link up but never
    // verified it. Mallory's side trusts Alice, so its offer goes out.
    let mallory = person(&mesh, 3, "bob@example.org");
    testkit::saw(&alice.party(), &mallory.party()).await;
    testkit::verify(&mallory.party(), &alice.party()).await;
    let (path, _) = file(mallory.home.path(), 1000);
    mallory.sends.offer(ALICE, Some(path.display().to_string()), None).await.unwrap();

    a_tick_passes().await;
    assert_eq!(alice.sends.list().len(), 0, "nothing offered under an address the node did not prove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_person_cannot_flood_the_list_with_offers() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (person(&mesh, 1, ALICE), person(&mesh, 2, "bob@example.org"));
    verified(&alice, &bob).await;
    let (path, _) = file(bob.home.path(), 1000);
    for _ in 0..super::MAX_OFFERS_PER_NODE + 4 {
        bob.sends.offer(ALICE, Some(path.display().to_string()), None).await.unwrap();
    }

    until(&alice, |list| list.len() >= super::MAX_OFFERS_PER_NODE).await;
    a_tick_passes().await;
    assert_eq!(alice.sends.list().len(), super::MAX_OFFERS_PER_NODE, "the rest wait until some are answered");
}
