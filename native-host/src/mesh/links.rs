//! The seam between services and the mesh: what a service needs to reach
//! the owner's other nodes and other people's, and nothing of how links
//! are made.
//!
//! The engine hands services an `Arc<dyn Links>` backed by the real
//! [`Mesh`]; unit tests hand them [`memory::MemoryMesh`]'s links, which
//! deliver frames between simulated nodes in one process.

use futures_util::future::BoxFuture;
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;

use super::{Mesh, MeshError};

pub trait Links: Send + Sync {
    /// This network's members with a link up now.
    fn online_members(&self) -> Vec<NodeId>;
    /// When a member was last heard from (now, if its link is up), in ms.
    fn last_seen(&self, id: &NodeId) -> Option<u64>;
    /// Sends a frame to a member, waiting while its link is busy.
    fn send_to<'a>(&'a self, peer: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>>;
    /// Other people's nodes with a link up now, and the address each one's
    /// handshake claimed.
    fn linked_strangers(&self) -> Vec<(NodeId, String)>;
    /// Sends a frame to another person's node (over the browsers' data
    /// channel when there is one, else the link).
    fn send_to_person<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>>;
    /// Sends a frame over whatever link a node has (a member's or not),
    /// waiting while it is busy: for `people.` and `send.` frames.
    fn send_to_linked<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>>;
}

impl Links for Mesh {
    fn online_members(&self) -> Vec<NodeId> {
        Mesh::online_members(self)
    }

    fn last_seen(&self, id: &NodeId) -> Option<u64> {
        Mesh::last_seen(self, id)
    }

    fn send_to<'a>(&'a self, peer: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
        Box::pin(Mesh::send_to(self, peer, frame))
    }

    fn linked_strangers(&self) -> Vec<(NodeId, String)> {
        Mesh::linked_strangers(self)
    }

    fn send_to_person<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
        Box::pin(Mesh::send_to_person(self, to, frame))
    }

    fn send_to_linked<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
        Box::pin(Mesh::send_to_linked(self, to, frame))
    }
}

#[cfg(test)]
pub mod memory {
    //! An in-memory mesh for unit tests. Every simulated node belongs to an
    //! owner (an address): nodes of one owner are members to each other,
    //! others are strangers, as on the LAN. A node registers a handler for
    //! the frames it receives, which runs in a task of its own as a route's
    //! would; a node can be taken offline, and a frame to an offline node
    //! fails as a missing link would. [`MemoryMesh::settled`] waits until
    //! every delivered frame was handled, so tests need no timeouts.

    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    use tokio_util::task::TaskTracker;

    use super::*;

    /// What a node's handler gets: the sender, whether it is a member, the
    /// frame. It is called in the order frames are sent (a handler that
    /// queues the frame at once keeps that order); the future it returns
    /// runs in a task of its own.
    type Handler = Arc<dyn Fn(NodeId, bool, Frame) -> BoxFuture<'static, ()> + Send + Sync>;

    #[derive(Default)]
    struct Hub {
        handlers: HashMap<NodeId, Handler>,
        owners: HashMap<NodeId, String>,
        /// What a node's handshake claims, when not its owner's address.
        claims: HashMap<NodeId, String>,
        offline: HashSet<NodeId>,
        last_seen: HashMap<NodeId, u64>,
        /// Per topic: frames still to let through, then frames to lose.
        losing: HashMap<String, (usize, usize)>,
        /// Nodes that stopped reading: a send to them never completes.
        stalled: HashSet<NodeId>,
    }

    /// The simulated LAN.
    #[derive(Clone, Default)]
    pub struct MemoryMesh {
        hub: Arc<Mutex<Hub>>,
        handling: TaskTracker,
    }

    impl MemoryMesh {
        /// Adds `owner`'s node `id`, whose received frames go to `handler`.
        pub fn join(
            &self,
            id: NodeId,
            owner: &str,
            handler: impl Fn(NodeId, bool, Frame) -> BoxFuture<'static, ()> + Send + Sync + 'static,
        ) {
            let mut hub = crate::sync::lock(&self.hub);
            hub.handlers.insert(id, Arc::new(handler));
            hub.owners.insert(id, owner.to_string());
        }

        /// Makes node `id` claim `address` on its links to other people
        /// (an impostor's, if it is not its owner's).
        pub fn claim(&self, id: NodeId, address: &str) {
            crate::sync::lock(&self.hub).claims.insert(id, address.to_string());
        }

        /// On `topic`, lets `pass` more frames through and then fails the
        /// `lose` after them as a broken link would.
        pub fn lose(&self, topic: &str, pass: usize, lose: usize) {
            crate::sync::lock(&self.hub).losing.insert(topic.to_string(), (pass, lose));
        }

        /// Makes node `id` stop reading its links: every send to it waits
        /// for ever, as on a link whose peer reads nothing.
        pub fn stall(&self, id: NodeId) {
            crate::sync::lock(&self.hub).stalled.insert(id);
        }

        /// Waits until every frame sent so far, and every frame those sent
        /// in turn, was handled.
        pub async fn settled(&self) {
            self.handling.close();
            self.handling.wait().await;
            self.handling.reopen();
        }

        /// The links node `me` sees.
        pub fn links(&self, me: NodeId) -> Arc<MemoryLinks> {
            Arc::new(MemoryLinks { me, mesh: self.clone() })
        }

        /// Takes a node off the LAN (`at_ms` is when it was last seen) or
        /// brings it back.
        pub fn set_online(&self, id: NodeId, online: bool, at_ms: u64) {
            let mut hub = crate::sync::lock(&self.hub);
            if online {
                hub.offline.remove(&id);
            } else {
                hub.offline.insert(id);
                hub.last_seen.insert(id, at_ms);
            }
        }
    }

    pub struct MemoryLinks {
        me: NodeId,
        mesh: MemoryMesh,
    }

    impl MemoryLinks {
        /// Nodes linked to this one now, what they claim, and whether they
        /// are members (of the same owner).
        fn linked(&self) -> Vec<(NodeId, String, bool)> {
            let hub = crate::sync::lock(&self.mesh.hub);
            let mine = hub.owners.get(&self.me).cloned().unwrap_or_default();
            if hub.offline.contains(&self.me) {
                return Vec::new();
            }
            hub.owners
                .iter()
                .filter(|(id, _)| **id != self.me && !hub.offline.contains(id))
                .map(|(id, owner)| (*id, hub.claims.get(id).unwrap_or(owner).clone(), *owner == mine))
                .collect()
        }

        fn deliver<'a>(&'a self, to: &'a NodeId, frame: Frame, member: bool) -> BoxFuture<'a, Result<(), MeshError>> {
            let linked = self.linked().into_iter().any(|(id, _, m)| id == *to && m == member);
            let handler = {
                let mut hub = crate::sync::lock(&self.mesh.hub);
                let lost = match (&frame, linked) {
                    (Frame::Data { topic, .. }, true) => match hub.losing.get_mut(topic) {
                        Some((0, 0)) | None => false,
                        Some((0, lose)) => {
                            *lose -= 1;
                            true
                        }
                        Some((pass, _)) => {
                            *pass -= 1;
                            false
                        }
                    },
                    _ => false,
                };
                if linked && hub.stalled.contains(to) {
                    return Box::pin(std::future::pending());
                }
                hub.handlers.get(to).cloned().filter(|_| linked && !lost)
            };
            Box::pin(async move {
                let handler = handler.ok_or_else(|| MeshError::NoLink(to.to_string()))?;
                self.mesh.handling.spawn(handler(self.me, member, frame));
                Ok(())
            })
        }
    }

    impl Links for MemoryLinks {
        fn online_members(&self) -> Vec<NodeId> {
            self.linked().into_iter().filter(|(_, _, member)| *member).map(|(id, _, _)| id).collect()
        }

        fn last_seen(&self, id: &NodeId) -> Option<u64> {
            let hub = crate::sync::lock(&self.mesh.hub);
            if hub.offline.contains(id) {
                hub.last_seen.get(id).copied()
            } else {
                Some(crate::clock::now_ms())
            }
        }

        fn send_to<'a>(&'a self, peer: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
            self.deliver(peer, frame, true)
        }

        fn linked_strangers(&self) -> Vec<(NodeId, String)> {
            self.linked().into_iter().filter(|(_, _, member)| !*member).map(|(id, owner, _)| (id, owner)).collect()
        }

        fn send_to_person<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
            self.deliver(to, frame, false)
        }

        fn send_to_linked<'a>(&'a self, to: &'a NodeId, frame: Frame) -> BoxFuture<'a, Result<(), MeshError>> {
            let member = self.linked().into_iter().any(|(id, _, member)| id == *to && member);
            self.deliver(to, frame, member)
        }
    }
}
