//! Where frames from links go. Each kind of traffic a service takes
//! (`drive.`, `chat.`, …) is a [`Route`] the service registers with the
//! mesh: which links may use it, one bounded queue the service reads, and a
//! quota per peer in that queue. The mesh knows no feature; it keeps every
//! queue bounded and every peer to its share.
//!
//! A peer past its quota on a route either loses the frame
//! ([`Overflow::Drop`], for traffic its sender repeats: chat, signaling,
//! verification) or has its link stop reading until a slot frees
//! ([`Overflow::Wait`], for transfers with windows of their own): only that
//! peer waits, never the mesh, another peer, or that link's sending.
//!
//! A frame holds its slot until the service drops the [`Inbound`], so a
//! service that hands frames to tasks keeps the bound through them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use mailmesh_core::identity::NodeId;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Peers that may hold their whole quota in one queue at once; the queue's
/// bound is this many quotas.
const PEERS_PER_QUEUE: usize = 16;

/// Which links a route takes frames from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Links of the owner's own devices (proved the network key, in the roster).
    Members,
    /// Links of other people's nodes.
    Others,
    /// Any link.
    Anyone,
}

/// What happens to a frame from a peer past its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Drop,
    Wait,
}

/// One frame for a service, holding its slot in the route until dropped.
#[derive(Debug)]
pub struct Inbound {
    pub from: NodeId,
    /// Whether it came over a member link.
    pub member: bool,
    pub topic: String,
    pub payload: Vec<u8>,
    _slot: OwnedSemaphorePermit,
}

/// A route's settings.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub prefix: &'static str,
    pub admit: Admit,
    pub overflow: Overflow,
    /// Frames one peer may have queued or in hand at once.
    pub per_peer: usize,
}

pub struct Route {
    spec: RouteSpec,
    queue: mpsc::Sender<Inbound>,
    slots: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    dropped: std::sync::atomic::AtomicU64,
}

/// A frame waiting for room in its route (its peer's link reads nothing
/// else meanwhile).
pub type Waiting = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What became of a frame offered to a route.
pub enum Offered {
    Queued,
    /// Past the peer's quota on a dropping route, or the service is gone.
    Dropped,
    /// Past the peer's quota on a waiting route: await this, then read on.
    Wait(Waiting),
}

impl Route {
    pub fn new(spec: RouteSpec) -> (Arc<Route>, mpsc::Receiver<Inbound>) {
        let (queue, receiver) = mpsc::channel(spec.per_peer.max(1) * PEERS_PER_QUEUE);
        let route = Route { spec, queue, slots: Mutex::default(), dropped: Default::default() };
        (Arc::new(route), receiver)
    }

    pub fn spec(&self) -> &RouteSpec {
        &self.spec
    }

    /// Whether this route takes `topic` from a link of this kind.
    pub fn takes(&self, topic: &str, member: bool) -> bool {
        topic.starts_with(self.spec.prefix)
            && match self.spec.admit {
                Admit::Members => member,
                Admit::Others => !member,
                Admit::Anyone => true,
            }
    }

    /// Frames dropped so far (past a quota, or with the service gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn slots_of(&self, peer: &NodeId) -> Arc<Semaphore> {
        let mut slots = crate::sync::lock(&self.slots);
        if slots.len() > 4 * PEERS_PER_QUEUE {
            // Forget peers with nothing in hand: links come and go.
            let full = self.spec.per_peer;
            slots.retain(|_, s| s.available_permits() < full);
        }
        slots.entry(*peer).or_insert_with(|| Arc::new(Semaphore::new(self.spec.per_peer))).clone()
    }

    fn drop_one(&self) -> Offered {
        self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Offered::Dropped
    }

    /// Offers a frame from `from`; never waits itself.
    pub fn offer(self: &Arc<Self>, from: NodeId, member: bool, topic: String, payload: Vec<u8>) -> Offered {
        let slots = self.slots_of(&from);
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) if self.spec.overflow == Overflow::Drop => return self.drop_one(),
            Err(_) => {
                let route = self.clone();
                return Offered::Wait(Box::pin(async move {
                    let Ok(slot) = slots.acquire_owned().await else { return };
                    let inbound = Inbound { from, member, topic, payload, _slot: slot };
                    if route.queue.send(inbound).await.is_err() {
                        route.drop_one();
                    }
                }));
            }
        };
        let inbound = Inbound { from, member, topic, payload, _slot: slot };
        match self.queue.try_send(inbound) {
            Ok(()) => Offered::Queued,
            // Full although this peer had a slot: many peers are busy at
            // once. A waiting route waits; a dropping one drops.
            Err(mpsc::error::TrySendError::Full(inbound)) if self.spec.overflow == Overflow::Wait => {
                let queue = self.queue.clone();
                Offered::Wait(Box::pin(async move {
                    let _ = queue.send(inbound).await;
                }))
            }
            Err(_) => self.drop_one(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    fn spec(overflow: Overflow) -> RouteSpec {
        RouteSpec { prefix: "chat.", admit: Admit::Anyone, overflow, per_peer: 4 }
    }

    #[test]
    fn routes_take_their_prefix_from_the_links_they_admit() {
        let (members, _rx) = Route::new(RouteSpec { admit: Admit::Members, ..spec(Overflow::Drop) });
        let (others, _rx2) = Route::new(RouteSpec { admit: Admit::Others, ..spec(Overflow::Drop) });
        assert!(members.takes("chat.msg", true) && !members.takes("chat.msg", false));
        assert!(others.takes("chat.msg", false) && !others.takes("chat.msg", true));
        assert!(!members.takes("drive.put", true));
    }

    #[test]
    fn a_flooding_peer_loses_its_own_frames_and_nobody_elses() {
        let (route, mut rx) = Route::new(spec(Overflow::Drop));
        let flooder = node(1);
        let queued = (0..1000)
            .filter(|i| matches!(route.offer(flooder, false, "chat.msg".into(), vec![*i as u8]), Offered::Queued))
            .count();
        assert_eq!(queued, 4, "the flooder holds its quota, no more");
        assert_eq!(route.dropped(), 996);
        assert!(matches!(route.offer(node(2), true, "chat.msg".into(), b"hello".to_vec()), Offered::Queued));
        let mut seen = Vec::new();
        while let Ok(inbound) = rx.try_recv() {
            seen.push((inbound.from, inbound.payload));
        }
        assert_eq!(seen.last(), Some(&(node(2), b"hello".to_vec())), "the member's frame is in the queue");
        // Handled frames give their slots back.
        assert!(matches!(route.offer(flooder, false, "chat.msg".into(), vec![]), Offered::Queued));
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_quota_on_a_waiting_route_a_peer_waits_until_a_frame_is_handled() {
        let (route, mut rx) = Route::new(RouteSpec { prefix: "send.", ..spec(Overflow::Wait) });
        let peer = node(3);
        for i in 0..4u8 {
            assert!(matches!(route.offer(peer, false, "send.chunk".into(), vec![i]), Offered::Queued));
        }
        let Offered::Wait(waiting) = route.offer(peer, false, "send.chunk".into(), vec![4]) else {
            panic!("the fifth frame must wait");
        };
        // Another peer is not held up meanwhile.
        assert!(matches!(route.offer(node(4), false, "send.chunk".into(), vec![9]), Offered::Queued));
        let delivered = tokio::spawn(waiting);
        tokio::task::yield_now().await;
        assert!(!delivered.is_finished(), "no slot has come free yet");
        let first = rx.recv().await.unwrap();
        assert_eq!(first.payload, vec![0]);
        drop(first);
        delivered.await.unwrap();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        while let Ok(inbound) = rx.try_recv() {
            payloads.push(inbound.payload);
        }
        assert_eq!(payloads, vec![vec![1], vec![2], vec![3], vec![9], vec![4]], "nothing lost, the peer's order kept");
        assert_eq!(route.dropped(), 0);
    }
}
