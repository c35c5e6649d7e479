//! The mesh: this engine's links to other nodes on the LAN.
//!
//! - [`discovery`] advertises this node over mDNS and notes where others are.
//! - [`link`] holds one authenticated, encrypted TCP link per peer (the
//!   core's [`mailmesh_core::peer::session::Session`]); it carries WebRTC
//!   signaling between the two extensions, relays their data when no data
//!   channel can be made, and measures liveness and round-trip time;
//!   [`outgoing`] holds what it has to write, so a socket that takes
//!   nothing never stops its timers.
//! - [`channel`] runs the data-channel handshake for the extension, which
//!   has no access to the node's keys.
//! - [`peers`] is the table of known peers and the view `status` shows.
//! - [`extension_api`] is what the extension's mesh socket speaks.
//! - [`links`] is what services see of the mesh ([`links::Links`]),
//!   and an in-memory mesh for their unit tests.
//! - [`outbox`] queues frames per node for services that must not wait on
//!   any one link.
//! - [`inbound`] holds the routes services register for the frames they
//!   take (`drive.`, `chat.`, …): bounded queues with a quota per peer.
//!
//! Data flow: extension → mesh socket → [`Mesh`] → link → peer's engine →
//! peer's mesh socket → peer's extension, and back. A data frame whose
//! topic a service registered goes to that service's route instead.

pub mod channel;
pub mod discovery;
pub mod extension_api;
pub mod gate;
pub mod inbound;
pub mod link;
pub mod links;
pub mod outbox;
pub mod outgoing;
pub mod peers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use mailmesh_core::identity::{NodeId, NodeSecrets};
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::peer::handshake::{HandshakeConfig, PeerIdentity};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::extension_api::ToExtension;
use self::inbound::{Inbound, Offered, Route, RouteSpec, Waiting};
use self::link::{LinkCommand, LinkHandle};
use self::peers::PeerTable;
use crate::api::{PeerPath, PeerView};
use crate::clock::now_ms;

/// What this node says about itself on links, and what it trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshIdentity {
    pub name: String,
    pub email: String,
    /// The link PSK of the network key, when enrolled.
    pub psk: Option<[u8; 32]>,
    /// The network key's public id (advertised as `net`).
    pub key_id: Option<String>,
    /// The roster's members and their device names.
    pub roster: Vec<(NodeId, String)>,
    /// Nodes removed from the network: never again a member link.
    pub removed: Vec<NodeId>,
    /// The encoded roster, sent to members when a link opens so that a
    /// new member is known at once rather than when its roster mail arrives.
    pub roster_bytes: Vec<u8>,
}

/// The topic on which members hand each other their roster.
pub const ROSTER_TOPIC: &str = "mesh.roster";
/// The only topics a person's data channel may carry (it has no link's
/// handshake behind it, so nothing else is taken from it).
const CHAT_PREFIX: &str = "chat.";

/// What the mesh itself tells the engine: news of links and rosters. Frames
/// for services go to their routes ([`Mesh::route`]). Sent with `try_send`:
/// the mesh never waits on the engine, and each of these is repeated (a
/// roster at every link-up and by mail, link news at every change).
#[derive(Debug)]
pub enum MeshEvent {
    /// A roster a member sent, to adopt if newer and valid.
    Roster(Vec<u8>),
    /// A member's link is up (or the roster just made it one): a moment to
    /// trade catalogs.
    MemberUp(NodeId),
    /// Another person's node linked up; its handshake proved its key and
    /// carries the address it claims.
    StrangerUp(PeerIdentity),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MeshError {
    #[error("{0} is not a node id")]
    BadNodeId(String),
    #[error("no link to node {0} right now")]
    NoLink(String),
    #[error("node {0} is not one of your devices")]
    NotMember(String),
    #[error("cannot send that: {0}")]
    BadFrame(String),
    #[error("{0}")]
    Handshake(String),
    #[error("the system's random number generator failed")]
    Random,
    #[error("node {0} sends more than this node takes in; try again shortly")]
    Busy(String),
}

pub struct Mesh {
    pub secrets: NodeSecrets,
    pub link_port: u16,
    pub shutdown: CancellationToken,
    pub identity: watch::Sender<MeshIdentity>,
    peers: Mutex<PeerTable>,
    pub to_extension: broadcast::Sender<ToExtension>,
    pub channels: channel::Channels,
    /// Other people's nodes verified (and not blocked) in the contact book:
    /// they get data channels and signaling like members, for chat.
    trusted_people: Mutex<std::collections::HashSet<NodeId>>,
    /// Rosters and link news for the engine.
    events: mpsc::Sender<MeshEvent>,
    /// The services' routes, registered at start.
    routes: Mutex<Vec<Arc<Route>>>,
}

impl Mesh {
    /// The mesh, and the receiver of what it tells the engine.
    pub fn new(secrets: NodeSecrets, link_port: u16, shutdown: CancellationToken) -> (Mesh, mpsc::Receiver<MeshEvent>) {
        let (events, events_rx) = mpsc::channel(64);
        let mesh = Mesh {
            secrets,
            link_port,
            shutdown,
            identity: watch::Sender::new(MeshIdentity::default()),
            peers: Mutex::new(PeerTable::default()),
            to_extension: broadcast::channel(1024).0,
            channels: channel::Channels::default(),
            trusted_people: Mutex::default(),
            events,
            routes: Mutex::default(),
        };
        (mesh, events_rx)
    }

    /// Registers a service's route: frames whose topic starts with the
    /// route's prefix, from the links it admits, come out of the receiver.
    pub fn route(&self, spec: RouteSpec) -> mpsc::Receiver<Inbound> {
        let (route, receiver) = Route::new(spec);
        crate::sync::lock(&self.routes).push(route);
        receiver
    }

    fn route_for(&self, topic: &str) -> Option<Arc<Route>> {
        crate::sync::lock(&self.routes).iter().find(|r| topic.starts_with(r.spec().prefix)).cloned()
    }

    fn table(&self) -> MutexGuard<'_, PeerTable> {
        // A panic while holding this lock would be a bug elsewhere; the table
        // itself stays consistent, so keep going with it.
        crate::sync::lock(&self.peers)
    }

    /// Updates what we say and trust. Links whose kind no longer fits are
    /// closed, to be made again: member links of removed nodes, and
    /// stranger links of nodes that are members now.
    pub fn set_identity(&self, identity: MeshIdentity) {
        let stale: Vec<LinkHandle> = {
            let table = self.table();
            table
                .entries
                .iter()
                .filter(|(id, e)| !link_fits(&identity, id, e.member))
                .filter_map(|(_, e)| e.link.clone())
                .collect()
        };
        for link in stale {
            let _ = link.commands.try_send(LinkCommand::Close("the network changed".into()));
        }
        let roster_changed = self.identity.borrow().roster != identity.roster;
        self.identity.send_if_modified(|current| {
            let changed = *current != identity;
            *current = identity;
            changed
        });
        if roster_changed {
            for peer in self.online_members() {
                let _ = self.events.try_send(MeshEvent::MemberUp(peer));
            }
        }
        self.publish_peers();
    }

    /// The engine names the verified people's nodes (after every change of
    /// the contact book); the extension is told who to link to.
    pub fn set_trusted_people(&self, nodes: std::collections::HashSet<NodeId>) {
        let changed = {
            let mut trusted = crate::sync::lock(&self.trusted_people);
            let changed = *trusted != nodes;
            *trusted = nodes;
            changed
        };
        if changed {
            self.publish_peers();
        }
    }

    pub fn is_trusted_person(&self, id: &NodeId) -> bool {
        crate::sync::lock(&self.trusted_people).contains(id)
    }

    pub fn handshake_config(&self, binding: Vec<u8>) -> HandshakeConfig {
        self.handshake_config_for(binding, true)
    }

    /// The handshake for a link with a member (with the network key) or with
    /// another person's node (plain Noise XX, as on a stranger LAN link).
    pub fn handshake_config_for(&self, binding: Vec<u8>, member: bool) -> HandshakeConfig {
        let identity = self.identity.borrow();
        HandshakeConfig {
            network_psk: if member { identity.psk } else { None },
            binding,
            name: identity.name.clone(),
            email: identity.email.clone(),
        }
    }

    /// Fresh randomness for one handshake (the core draws none itself).
    pub fn seed(&self) -> Result<[u8; 32], MeshError> {
        crate::rng::bytes().map_err(|_| MeshError::Random)
    }

    pub fn in_roster(&self, id: &NodeId) -> bool {
        self.identity.borrow().roster.iter().any(|(r, _)| r == id)
    }

    /// Whether a link of this kind (member or stranger) may exist with `id`.
    pub fn link_fits(&self, id: &NodeId, member: bool) -> bool {
        link_fits(&self.identity.borrow(), id, member)
    }

    /// What a new member link sends first: our roster.
    pub fn roster_frame(&self) -> Frame {
        Frame::Data { topic: ROSTER_TOPIC.into(), payload: self.identity.borrow().roster_bytes.clone() }
    }

    pub fn peers(&self) -> Vec<PeerView> {
        let identity = self.identity.borrow().clone();
        let mut peers = self.table().view(&identity.roster, &self.secrets.node_id(), now_ms());
        for peer in peers.iter_mut().filter(|p| !p.member) {
            peer.verified = peer.id.parse().is_ok_and(|id| self.is_trusted_person(&id));
        }
        peers
    }

    pub fn publish_peers(&self) {
        let _ = self.to_extension.send(ToExtension::Peers { peers: self.peers() });
    }

    /// Notes where mDNS says a node listens.
    pub fn advertised(&self, id: NodeId, addresses: Vec<SocketAddr>, key_id: Option<String>) {
        if id == self.secrets.node_id() {
            return;
        }
        let roster: Vec<NodeId> = self.identity.borrow().roster.iter().map(|(id, _)| *id).collect();
        self.table().advertised(id, addresses, key_id, now_ms(), &|id| roster.contains(id));
    }

    /// Dials every advertised peer without a link that is ours to dial.
    pub fn dial_due(self: &Arc<Self>) {
        let our_key = self.identity.borrow().key_id.clone();
        let dials = self.table().dials_due(&self.secrets.node_id(), now_ms());
        for (addr, id) in dials {
            // Our roster is the better guide; the advertisement helps
            // before a new member's roster entry has reached us.
            let advertised = self.table().entries.get(&id).and_then(|e| e.advertised_key.clone());
            let member = our_key.is_some() && (self.in_roster(&id) || advertised == our_key);
            tokio::spawn(link::dial(addr, id, member, self.clone()));
        }
    }

    /// A dial ended (its link, if any, closed); `proven` if its handshake
    /// completed at that address.
    pub fn dial_finished(&self, id: &NodeId, addr: SocketAddr, proven: bool) {
        self.table().dial_finished(id, addr, proven, now_ms());
    }

    pub fn link_opened(&self, peer: &PeerIdentity, handle: LinkHandle) {
        let loser = {
            let mut table = self.table();
            table.entry(peer.node_id).dial_backoff_ms = 0;
            table.link_opened(peer, handle, now_ms())
        };
        if let Some(loser) = loser {
            let _ = loser.commands.try_send(LinkCommand::Close("a second link to the same node".into()));
        }
        if peer.member && self.in_roster(&peer.node_id) {
            let _ = self.events.try_send(MeshEvent::MemberUp(peer.node_id));
        } else if !peer.member {
            let _ = self.events.try_send(MeshEvent::StrangerUp(peer.clone()));
        }
        self.publish_peers();
    }

    /// Sends a frame over whatever link `peer` has (member or not): for
    /// `people.*` messages only.
    pub async fn send_to_linked(&self, peer: &NodeId, frame: Frame) -> Result<(), MeshError> {
        let link = self.table().entries.get(peer).and_then(|e| e.link.clone());
        let link = link.ok_or_else(|| MeshError::NoLink(peer.to_string()))?;
        link.commands.send(LinkCommand::Send(frame)).await.map_err(|_| MeshError::NoLink(peer.to_string()))
    }

    /// Other people's nodes with a link up now, and the address each one's
    /// handshake claimed.
    pub fn linked_strangers(&self) -> Vec<(NodeId, String)> {
        self.table()
            .entries
            .iter()
            .filter(|(_, e)| !e.member && e.link.is_some())
            .map(|(id, e)| (*id, e.email.clone()))
            .collect()
    }

    /// When a node was last heard from (now, if its link is up).
    pub fn last_seen(&self, id: &NodeId) -> Option<u64> {
        let table = self.table();
        let entry = table.entries.get(id)?;
        if entry.link.is_some() {
            Some(now_ms())
        } else {
            entry.last_seen_ms
        }
    }

    /// Members with a link up now.
    pub fn online_members(&self) -> Vec<NodeId> {
        let roster = self.identity.borrow().roster.clone();
        self.table()
            .entries
            .iter()
            .filter(|(id, e)| e.member && e.link.is_some() && roster.iter().any(|(r, _)| r == *id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Sends a frame to a member's engine, waiting while its link is busy.
    pub async fn send_to(&self, peer: &NodeId, frame: Frame) -> Result<(), MeshError> {
        let (_, link) = self.member_link(&peer.to_string())?;
        link.commands.send(LinkCommand::Send(frame)).await.map_err(|_| MeshError::NoLink(peer.to_string()))
    }

    pub fn link_closed(&self, peer: &NodeId, link_id: u64) {
        self.table().link_closed(peer, link_id, now_ms());
        self.publish_peers();
    }

    pub fn on_link_rtt(&self, peer: &NodeId, rtt_ms: u32) {
        let news = {
            let mut table = self.table();
            let entry = table.entry(*peer);
            let now = now_ms();
            entry.link_rtt_ms = Some(rtt_ms);
            entry.last_seen_ms = Some(now);
            table.rtt_news(peer, now)
        };
        if news {
            self.publish_peers();
        }
    }

    /// A frame from a peer's engine. Rosters and signaling are the mesh's
    /// own; a data frame goes to the service route for its topic if that
    /// route admits this kind of link, and otherwise, from a member, to our
    /// extension (relayed data). Never waits: past a peer's quota on a
    /// waiting route it hands back what its link must await before reading
    /// on.
    pub fn on_frame(&self, peer: &NodeId, frame: Frame) -> Option<Waiting> {
        let member = self.is_member_link(peer);
        let from = peer.to_string();
        match frame {
            // Anyone who proved the network key may tell us of a newer
            // roster (it is checked by its signatures, as one from the mailbox).
            Frame::Data { topic, payload }
                if topic == ROSTER_TOPIC && self.table().entries.get(peer).is_some_and(|e| e.member) =>
            {
                let _ = self.events.try_send(MeshEvent::Roster(payload));
            }
            Frame::Data { topic, payload } => match self.route_for(&topic) {
                Some(route) if route.takes(&topic, member) => match route.offer(*peer, member, topic, payload) {
                    Offered::Wait(waiting) => return Some(waiting),
                    Offered::Dropped => tracing::debug!(%peer, "dropping a frame past its quota"),
                    Offered::Queued => {}
                },
                Some(_) => tracing::debug!(%peer, member, "ignoring a frame this kind of link may not send"),
                None if member => match (Frame::Data { topic, payload }).encode() {
                    Ok(frame) => {
                        let _ = self.to_extension.send(ToExtension::Relayed { from, frame });
                    }
                    Err(e) => tracing::info!(%peer, "dropping a relayed frame: {e}"),
                },
                None => tracing::debug!(%peer, "ignoring a frame from a node outside the network"),
            },
            Frame::Signal(payload) if member || self.is_trusted_person(peer) => {
                match serde_json::from_slice(&payload) {
                    Ok(payload) => {
                        let _ = self.to_extension.send(ToExtension::Signal { from, payload });
                    }
                    Err(e) => tracing::info!(%peer, "dropping malformed signaling: {e}"),
                }
            }
            _ => {}
        }
        None
    }

    fn is_member_link(&self, peer: &NodeId) -> bool {
        self.in_roster(peer) && self.table().entries.get(peer).is_some_and(|e| e.member && e.link.is_some())
    }

    fn member_link(&self, to: &str) -> Result<(NodeId, LinkHandle), MeshError> {
        let id = to.parse::<NodeId>().map_err(|_| MeshError::BadNodeId(to.to_string()))?;
        if !self.is_member_link(&id) {
            return match self.in_roster(&id) {
                true => Err(MeshError::NoLink(to.to_string())),
                false => Err(MeshError::NotMember(to.to_string())),
            };
        }
        let link = self.table().link(&id).cloned().ok_or_else(|| MeshError::NoLink(to.to_string()))?;
        Ok((id, link))
    }

    /// The LAN link to a verified person's node.
    fn person_link(&self, to: &str) -> Result<(NodeId, LinkHandle), MeshError> {
        let id = to.parse::<NodeId>().map_err(|_| MeshError::BadNodeId(to.to_string()))?;
        if !self.is_trusted_person(&id) {
            return Err(MeshError::NotMember(to.to_string()));
        }
        let link = self.table().link(&id).cloned().ok_or_else(|| MeshError::NoLink(to.to_string()))?;
        Ok((id, link))
    }

    /// Whether a data channel (proved by the engine's handshake) reaches
    /// `id` now, as the extension last said.
    fn has_channel(&self, id: &NodeId) -> bool {
        self.table().entries.get(id).is_some_and(|e| e.channel_rtt_ms.is_some())
    }

    /// Sends a frame to a verified person's node: over the data channel
    /// between the two browsers when there is one, else over the LAN link
    /// (the relay).
    pub async fn send_to_person(&self, to: &NodeId, frame: Frame) -> Result<(), MeshError> {
        if self.is_trusted_person(to) && self.has_channel(to) {
            if let Ok(bytes) = frame.encode() {
                // Someone listens when a channel is up: the extension said so.
                if self.to_extension.send(ToExtension::Forward { to: to.to_string(), frame: bytes }).is_ok() {
                    return Ok(());
                }
            }
        }
        self.send_to_linked(to, frame).await
    }

    /// A frame that came over a data channel from another person's node:
    /// taken as if from its link, for chat only.
    pub fn from_person_channel(&self, from: &str, frame: &[u8]) -> Result<(), MeshError> {
        let id = from.parse::<NodeId>().map_err(|_| MeshError::BadNodeId(from.to_string()))?;
        if !self.is_trusted_person(&id) || !self.has_channel(&id) {
            return Err(MeshError::NotMember(from.to_string()));
        }
        match Frame::decode(frame).map_err(|e| MeshError::BadFrame(e.to_string()))? {
            Frame::Data { topic, payload } if topic.starts_with(CHAT_PREFIX) => {
                let route = self.route_for(&topic).filter(|r| r.takes(&topic, false));
                match route.map(|r| r.offer(id, false, topic, payload)) {
                    Some(Offered::Queued) => Ok(()),
                    _ => Err(MeshError::Busy(from.to_string())),
                }
            }
            _ => Err(MeshError::BadFrame("only chat comes from a person's channel".into())),
        }
    }

    /// Sends our extension's signaling to a peer's extension.
    pub fn signal(&self, to: &str, payload: &serde_json::Value) -> Result<(), MeshError> {
        let (_, link) = self.member_link(to).or_else(|_| self.person_link(to))?;
        let bytes = serde_json::to_vec(payload).map_err(|e| MeshError::BadFrame(e.to_string()))?;
        send(&link, Frame::Signal(bytes), to)
    }

    /// Relays a data frame to a peer's extension over the engines' link.
    pub async fn relay(&self, to: &str, frame: &[u8]) -> Result<(), MeshError> {
        let frame = Frame::decode(frame).map_err(|e| MeshError::BadFrame(e.to_string()))?;
        if !matches!(frame, Frame::Data { .. }) {
            return Err(MeshError::BadFrame("only data frames are relayed".into()));
        }
        let (_, link) = self.member_link(to)?;
        // Waiting for room in the link's queue is the relay's backpressure.
        link.commands.send(LinkCommand::Send(frame)).await.map_err(|_| MeshError::NoLink(to.to_string()))
    }

    /// The extension says how it reaches a peer now. A change of path is
    /// announced, and a round-trip time only when it moved (`rtt_news`).
    pub fn set_path(&self, peer: &str, path: Option<PeerPath>, rtt_ms: Option<u32>) {
        let Ok(id) = peer.parse::<NodeId>() else { return };
        let changed = {
            let mut table = self.table();
            let Some(entry) = table.entries.get_mut(&id) else { return };
            let before = entry.channel_rtt_ms.is_some();
            entry.channel_rtt_ms = match path {
                Some(PeerPath::Webrtc) => Some(rtt_ms),
                _ => None,
            };
            let path_changed = before != entry.channel_rtt_ms.is_some();
            table.rtt_news(&id, now_ms()) || path_changed
        };
        if changed {
            self.publish_peers();
        }
    }
}

/// A member link only with a node that proved the network key and was
/// never removed; a stranger link only with a node outside the roster.
fn link_fits(identity: &MeshIdentity, id: &NodeId, member: bool) -> bool {
    if member {
        !identity.removed.contains(id)
    } else {
        !(identity.psk.is_some() && identity.roster.iter().any(|(r, _)| r == id))
    }
}

fn send(link: &LinkHandle, frame: Frame, to: &str) -> Result<(), MeshError> {
    link.commands.try_send(LinkCommand::Send(frame)).map_err(|_| MeshError::NoLink(to.to_string()))
}
