//! What services know of this node's standing: the owner's address and,
//! once in a network, its key and members; and what the mesh says of it.
//!
//! The engine publishes a new [`Standing`] on a watch channel whenever the
//! account or the enrollment changes (saved, joined, roster adopted, key
//! rotated, removed) and before it tells anyone; services read the latest
//! value and never lock the engine's state. These are the types only: the
//! node service, which owns the state they are made from, makes them
//! (`NodeState::standing`), so this module imports no service.

use mailmesh_core::drive::NetworkKey;
use mailmesh_core::identity::NodeId;
use tokio::sync::watch;

use crate::mesh::MeshIdentity;

#[derive(Clone, Default)]
pub struct Standing {
    /// The owner's address, normalized; `None` before an account is saved.
    pub address: Option<String>,
    /// The network, once this node is in one.
    pub network: Option<Membership>,
    /// What the mesh says about this node on links, and whom it trusts.
    pub mesh: MeshIdentity,
}

#[derive(Clone)]
pub struct Membership {
    pub key: NetworkKey,
    /// Every member of the roster, this node included.
    pub members: Vec<NodeId>,
}

/// The latest standing.
pub type StandingWatch = watch::Receiver<Standing>;
