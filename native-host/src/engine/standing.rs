//! What services know of this node's standing: the owner's address and,
//! once in a network, its key and members; and what the mesh says of it.
//!
//! The engine publishes a new [`Standing`] on a watch channel whenever the
//! account or the enrollment changes (saved, joined, roster adopted, key
//! rotated, removed) and before it tells anyone; services read the latest
//! value and never lock the engine's state.

use mailmesh_core::drive::NetworkKey;
use mailmesh_core::identity::NodeId;
use mailmesh_core::people::normalize_email;
use tokio::sync::watch;

use super::node::NodeState;
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

impl Standing {
    pub fn of(state: &NodeState) -> Standing {
        let network = state.enrollment.network().map(|network| Membership {
            key: network.key.clone(),
            members: network.roster.members().iter().map(|e| e.node.node_id()).collect(),
        });
        Standing {
            address: state.account.as_ref().map(|(a, _)| normalize_email(&a.email)),
            network,
            mesh: mesh_identity(state),
        }
    }
}

fn mesh_identity(state: &NodeState) -> MeshIdentity {
    let network = state.enrollment.network();
    MeshIdentity {
        name: state.config.device_name.clone(),
        email: state.account.as_ref().map(|(a, _)| a.email.clone()).unwrap_or_default(),
        psk: network.map(|n| n.key.link_psk()),
        key_id: network.map(|n| n.key.key_id()),
        roster: network
            .map(|n| n.roster.members().into_iter().map(|e| (e.node.node_id(), e.device_name.clone())).collect())
            .unwrap_or_default(),
        removed: network.map(|n| n.roster.removed()).unwrap_or_default(),
        roster_bytes: network.map(|n| n.roster.encode()).unwrap_or_default(),
    }
}
