//! What the services' unit tests share: content that does not repeat, a
//! drive of one node, and people verifying each other as the product does
//! (a link seen, a challenge mailed, the node's answer).

use std::sync::Arc;

use mailmesh_core::identity::NodeSecrets;
use tokio::sync::broadcast;

use super::drive_net::{DriveNet, Settings};
use super::people::PeopleHandle;
use super::standing::StandingWatch;
use crate::api::Event;
use crate::drive::Drive;
use crate::home::NodeHome;
use crate::mesh::links::memory::MemoryMesh;

/// `len` bytes that neither compress nor repeat.
pub fn content(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = *blake3::hash(b"mailmesh test content").as_bytes();
    while out.len() < len {
        block = *blake3::hash(&block).as_bytes();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// Drive-network settings for tests: repairs as soon as a node is gone.
pub fn settings(repair_grace_ms: u64) -> Settings {
    Settings {
        started_at_ms: 0,
        repair_grace_ms,
        maintenance_every: Default::default(),
        sweep_grace: std::time::Duration::from_secs(24 * 3600),
        sweep_settle: std::time::Duration::ZERO,
    }
}

/// The drive of a node that is alone on its own simulated LAN.
pub fn lone_drive(
    home: &std::path::Path,
    secrets: &NodeSecrets,
    standing: StandingWatch,
    events: broadcast::Sender<Event>,
) -> Arc<DriveNet> {
    let drive = Arc::new(Drive::open(&NodeHome::at(home)).expect("a drive in the test home"));
    let id = secrets.node_id();
    DriveNet::new(id, drive, MemoryMesh::default().links(id), standing, events, settings(0))
}

/// One side of a verification: a node, its owner's address and book.
pub struct Party<'a> {
    pub people: &'a PeopleHandle,
    pub secrets: &'a NodeSecrets,
    pub address: &'a str,
}

/// `who` saw `whom`'s node link up, claiming `whom`'s address.
pub async fn saw(who: &Party<'_>, whom: &Party<'_>) {
    who.people.seen(whom.address, whom.secrets.public().ed25519, 1).await.expect("a node seen");
}

/// `who` verifies `whom`'s node: seen, challenged, answered.
pub async fn verify(who: &Party<'_>, whom: &Party<'_>) {
    saw(who, whom).await;
    let (me, them) = (who.secrets.node_id(), whom.secrets.node_id());
    let challenge = who.people.challenge(whom.address, me, who.address, 2, vec![[9; 32]]).await.expect("a challenge");
    let answer = challenge.answer(whom.secrets, whom.address).expect("the challenge names the node");
    assert_eq!(who.people.answer(them, me, answer, 3).await.expect("the answer holds"), whom.address);
}

/// Each verifies the other.
pub async fn verify_each_other(a: &Party<'_>, b: &Party<'_>) {
    verify(a, b).await;
    verify(b, a).await;
}
