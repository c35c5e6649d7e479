//! Direct file send between people (issue 7): the `send_*` requests, the
//! `send.msg` frames between engines, and the pump that streams chunks.
//!
//! ```text
//! send_file ─▶ Offer to each verified linked node of the person (repeated until answered)
//! their engine: shown as offered ─▶ send_accept / send_decline
//! Accept { next } ─▶ pump: read chunk, seal (core), send; window of WINDOW chunks
//!   receiver: open_chunk verifies, appends to transfers/<id>.part, Ack { next }
//! last chunk ─▶ BLAKE3 of the part file = offer's hash ─▶ drive or folder ─▶ Done
//! ```
//!
//! A break (link down, either engine restarted) stops the pump; the
//! receiver, which holds only verified chunks, says `Accept { next }` again
//! when the link is back (or every few seconds while nothing arrives), and
//! the sender goes on from there. Declining deletes everything of it on the
//! receiver's side; the sender is told and keeps nothing either.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::people::normalize_email;
use mailmesh_core::transfer::{Incoming, Offer, Outgoing, Received, TransferId, TransferMessage};
use tokio::sync::{mpsc, Notify};

use super::Engine;
use crate::api::{Event, TransferView};
use crate::clock::now_ms;
use crate::transfer_store::{free_path, Destination, Direction, Meter, TransferRecord, TransferState, TransferStore};

pub const TOPIC: &str = "send.msg";
/// How often offers are repeated and quiet transfers asked to go on.
const TICK: Duration = Duration::from_secs(2);

struct OutTransfer {
    record: TransferRecord,
    machine: Option<Outgoing>,
    meter: Meter,
    wake: Arc<Notify>,
    pumping: bool,
}

struct InTransfer {
    record: TransferRecord,
    machine: Option<Incoming>,
    meter: Meter,
    file: Option<std::fs::File>,
    finishing: bool,
}

/// Every transfer this engine knows, coming and going.
pub struct Sends {
    store: Option<TransferStore>,
    out: HashMap<TransferId, OutTransfer>,
    inc: HashMap<TransferId, InTransfer>,
    /// Offers declined since the engine started: not shown again if the
    /// sender repeats one before it heard the answer.
    declined: HashSet<TransferId>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no transfer {0}")]
    Unknown(String),
    #[error("that transfer was already answered")]
    Answered,
    #[error("that transfer is over")]
    Over,
    #[error("name a file on this computer or a drive file, not both")]
    Source,
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("cannot keep the transfer on disk: {0}")]
    Disk(#[from] std::io::Error),
    #[error(transparent)]
    Chat(#[from] super::chat_net::ChatNetError),
    #[error(transparent)]
    Drive(#[from] crate::drive::DriveError),
    #[error(transparent)]
    Transfer(#[from] mailmesh_core::transfer::TransferError),
}

impl Sends {
    /// The transfers kept in the home, as they were: an active one waits
    /// for the receiver to say where to go on.
    pub fn load(home_root: &std::path::Path) -> Sends {
        let store = TransferStore::open(home_root)
            .map_err(|e| tracing::warn!("direct send is unavailable: cannot make its folder: {e}"))
            .ok();
        let mut sends = Sends { store, out: HashMap::new(), inc: HashMap::new(), declined: HashSet::new() };
        let Some(store) = sends.store.clone() else { return sends };
        for record in store.load_all() {
            let Ok(id) = record.id.parse::<TransferId>() else { continue };
            let offer = if record.is_over() { None } else { record.offer() };
            match record.direction {
                Direction::Out => {
                    let machine = offer.map(Outgoing::new);
                    let transfer =
                        OutTransfer { record, machine, meter: Meter::default(), wake: Arc::default(), pumping: false };
                    sends.out.insert(id, transfer);
                }
                Direction::In => {
                    let machine = offer.map(|offer| {
                        // Only whole chunks count; a torn last write is cut off.
                        let part = store.part(&id);
                        let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                        let fresh = Incoming::new(offer, 0);
                        let held = fresh.chunks_in(len);
                        let keep = fresh.offer.chunk_size as u64 * held;
                        if len > keep {
                            let _ = std::fs::OpenOptions::new().write(true).open(&part).and_then(|f| f.set_len(keep));
                        }
                        Incoming::new(fresh.offer, held)
                    });
                    let transfer =
                        InTransfer { record, machine, meter: Meter::default(), file: None, finishing: false };
                    sends.inc.insert(id, transfer);
                }
            }
        }
        sends
    }

    fn store(&self) -> Result<&TransferStore, SendError> {
        self.store.as_ref().ok_or_else(|| SendError::Disk(std::io::Error::other("no transfers folder")))
    }

    fn save(&self, record: &TransferRecord) {
        if let Some(store) = &self.store {
            if let Err(e) = store.save(record) {
                tracing::warn!("cannot save transfer {}: {e}", record.id);
            }
        }
    }
}

fn state_word(state: &TransferState) -> &'static str {
    match state {
        TransferState::Offered => "offered",
        TransferState::Active => "active",
        TransferState::Done => "done",
        TransferState::Declined => "declined",
        TransferState::Cancelled => "cancelled",
        TransferState::Failed => "failed",
    }
}

fn view(record: &TransferRecord, done: u64, meter: &Meter) -> TransferView {
    let rate = if record.is_over() { 0 } else { meter.rate() };
    let done = if record.state == TransferState::Done { record.size } else { done };
    TransferView {
        id: record.id.clone(),
        direction: match record.direction {
            Direction::Out => "out",
            Direction::In => "in",
        }
        .into(),
        peer: record.peer.clone(),
        name: record.name.clone(),
        size: record.size,
        done,
        state: state_word(&record.state).into(),
        detail: record.detail.clone(),
        rate_bps: rate,
        eta_secs: (rate > 0).then(|| record.size.saturating_sub(done) / rate),
        saved_as: record.saved_as.clone(),
    }
}

/// Ends a transfer's record: no key kept, nothing more to send.
fn close(record: &mut TransferRecord, state: TransferState, detail: &str) {
    record.state = state;
    record.detail = detail.to_string();
    record.key = None;
}

fn frame(message: &TransferMessage) -> Frame {
    Frame::Data { topic: TOPIC.into(), payload: message.encode() }
}

impl Engine {
    fn sends(&self) -> MutexGuard<'_, Sends> {
        crate::sync::lock(&self.sends)
    }

    fn transfers_changed(&self) {
        self.notify(Event::TransfersChanged);
    }

    pub fn send_list(&self) -> Vec<TransferView> {
        let sends = self.sends();
        let outgoing =
            sends.out.values().map(|t| (&t.record, t.machine.as_ref().map_or(0, Outgoing::done_bytes), &t.meter));
        let incoming =
            sends.inc.values().map(|t| (&t.record, t.machine.as_ref().map_or(0, Incoming::done_bytes), &t.meter));
        let mut list: Vec<(u64, TransferView)> = outgoing
            .chain(incoming)
            .map(|(record, done, meter)| (record.created_ms, view(record, done, meter)))
            .collect();
        list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        list.into_iter().map(|(_, v)| v).collect()
    }

    fn find(&self, id: &str) -> Result<TransferId, SendError> {
        let sends = self.sends();
        let matches: Vec<TransferId> = sends
            .out
            .keys()
            .chain(sends.inc.keys())
            .filter(|k| k.to_string().starts_with(&id.trim().to_lowercase()))
            .copied()
            .collect();
        match matches.as_slice() {
            [one] if !id.trim().is_empty() => Ok(*one),
            _ => Err(SendError::Unknown(id.into())),
        }
    }

    /// Offers a file (on this computer, or from the drive) to a person.
    pub async fn send_file(
        &self,
        to: &str,
        path: Option<String>,
        file_id: Option<String>,
    ) -> Result<TransferView, SendError> {
        let to = normalize_email(to);
        self.check_verified(&to)?;
        let id = TransferId(crate::rng::bytes_or_zeros());
        let (source, owned, name, media_type) = match (path, file_id) {
            (Some(path), None) => {
                let path = PathBuf::from(path);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (path, false, name, "application/octet-stream".to_string())
            }
            (None, Some(file_id)) => {
                let network = self.network_key().await.ok_or(crate::drive::DriveError::NoNetwork)?;
                let copy = self.sends().store()?.source_copy(&id);
                let file = self.restore(network, file_id, copy.clone()).await.inspect_err(|_| {
                    let _ = std::fs::remove_file(&copy);
                })?;
                (copy, true, file.name, file.media_type)
            }
            _ => return Err(SendError::Source),
        };
        let hashed = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<(u64, [u8; 32])> {
                let mut hasher = blake3::Hasher::new();
                let file = std::fs::File::open(&source)?;
                let size = file.metadata()?.len();
                hasher.update_reader(file)?;
                Ok((size, *hasher.finalize().as_bytes()))
            })
            .await
            .map_err(|e| SendError::Disk(std::io::Error::other(e)))?
        };
        let (size, hash) = hashed.map_err(|e| SendError::Read(source.display().to_string(), e))?;
        let offer = Offer::new(id, &name, size, &media_type, hash, crate::rng::bytes_or_zeros())?;
        let mut record = TransferRecord::new(Direction::Out, &offer, &to, None, now_ms());
        record.source = Some(source);
        record.owned_source = owned;
        let shown = view(&record, 0, &Meter::default());
        {
            let mut sends = self.sends();
            sends.save(&record);
            let transfer = OutTransfer {
                record,
                machine: Some(Outgoing::new(offer)),
                meter: Meter::default(),
                wake: Arc::default(),
                pumping: false,
            };
            sends.out.insert(id, transfer);
        }
        tracing::info!(to = %to, size, "offering a file");
        self.offer_pending().await;
        self.transfers_changed();
        Ok(shown)
    }

    /// Takes an offered file, into the drive or a folder.
    pub async fn send_accept(&self, id: &str, destination: Destination) -> Result<(), SendError> {
        let id = self.find(id)?;
        let node = {
            let mut sends = self.sends();
            let part = sends.store()?.part(&id);
            let t = sends.inc.get_mut(&id).ok_or_else(|| SendError::Unknown(id.to_string()))?;
            if t.record.state != TransferState::Offered {
                return Err(SendError::Answered);
            }
            t.file = Some(crate::home::open_private_append(&part)?);
            t.record.state = TransferState::Active;
            t.record.destination = Some(destination);
            if let Some(machine) = t.machine.as_mut() {
                machine.heard(now_ms());
            }
            let record = t.record.clone();
            sends.save(&record);
            record.node
        };
        self.transfers_changed();
        self.send_to_node(node.as_deref(), &TransferMessage::Accept { id, next: 0 }).await;
        Ok(())
    }

    /// Refuses an offered file: nothing of it is kept.
    pub async fn send_decline(&self, id: &str) -> Result<(), SendError> {
        let id = self.find(id)?;
        let node = {
            let mut sends = self.sends();
            let t = sends.inc.get(&id).ok_or_else(|| SendError::Unknown(id.to_string()))?;
            if t.record.state != TransferState::Offered {
                return Err(SendError::Answered);
            }
            let node = t.record.node.clone();
            sends.inc.remove(&id);
            sends.declined.insert(id);
            sends.store()?.remove(&id);
            node
        };
        self.transfers_changed();
        self.send_to_node(node.as_deref(), &TransferMessage::Decline { id }).await;
        Ok(())
    }

    /// Stops a transfer from either side.
    pub async fn send_cancel(&self, id: &str) -> Result<(), SendError> {
        let id = self.find(id)?;
        let reason = "cancelled by the other side";
        let nodes = {
            let mut sends = self.sends();
            let store = sends.store()?.clone();
            let mut nodes = Vec::new();
            if let Some(t) = sends.out.get_mut(&id) {
                if t.record.is_over() {
                    return Err(SendError::Over);
                }
                nodes = self.offer_targets(&t.record);
                close(&mut t.record, TransferState::Cancelled, "cancelled");
                t.machine = None;
                t.wake.notify_one();
                clean_source(&store, &id, &t.record);
            } else if let Some(t) = sends.inc.get_mut(&id) {
                if t.record.is_over() {
                    return Err(SendError::Over);
                }
                nodes.extend(t.record.node.iter().filter_map(|n| n.parse::<NodeId>().ok()));
                close(&mut t.record, TransferState::Cancelled, "cancelled");
                t.machine = None;
                t.file = None;
                let _ = std::fs::remove_file(store.part(&id));
            }
            let record = sends.out.get(&id).map(|t| &t.record).or(sends.inc.get(&id).map(|t| &t.record)).cloned();
            if let Some(record) = record {
                sends.save(&record);
            }
            nodes
        };
        self.transfers_changed();
        for node in nodes {
            let message = TransferMessage::Cancel { id, reason: reason.into() };
            let _ = self.mesh.send_to_linked(&node, frame(&message)).await;
        }
        Ok(())
    }

    /// The nodes an outgoing transfer talks to: the one that accepted, or
    /// while offered every verified linked node of the person.
    fn offer_targets(&self, record: &TransferRecord) -> Vec<NodeId> {
        match record.node.as_deref().and_then(|n| n.parse().ok()) {
            Some(node) => vec![node],
            None => self.linked_people().0.get(&record.peer).cloned().unwrap_or_default(),
        }
    }

    async fn send_to_node(&self, node: Option<&str>, message: &TransferMessage) -> bool {
        let Some(node) = node.and_then(|n| n.parse::<NodeId>().ok()) else { return false };
        self.mesh.send_to_linked(&node, frame(message)).await.is_ok()
    }

    /// Repeats offers not answered yet to the person's linked nodes.
    async fn offer_pending(&self) {
        let offers: Vec<(Vec<NodeId>, TransferMessage)> = {
            let sends = self.sends();
            sends
                .out
                .values()
                .filter(|t| t.record.state == TransferState::Offered)
                .filter_map(|t| {
                    Some((self.offer_targets(&t.record), TransferMessage::Offer(t.machine.as_ref()?.offer.clone())))
                })
                .collect()
        };
        for (nodes, message) in offers {
            for node in nodes {
                let _ = self.mesh.send_to_linked(&node, frame(&message)).await;
            }
        }
    }

    /// Receivers ask quiet transfers to go on from what they hold.
    async fn resume_quiet(&self) {
        let asks: Vec<(Option<String>, TransferMessage)> = {
            let mut sends = self.sends();
            sends
                .inc
                .iter_mut()
                .filter(|(_, t)| t.record.state == TransferState::Active && !t.finishing)
                .filter_map(|(id, t)| {
                    let next = t.machine.as_mut()?.handle_timeout(now_ms())?;
                    Some((t.record.node.clone(), TransferMessage::Accept { id: *id, next }))
                })
                .collect()
        };
        for (node, message) in asks {
            self.send_to_node(node.as_deref(), &message).await;
        }
    }

    /// A `send.msg` frame from another person's node, in arrival order.
    async fn on_send_message(&self, from: NodeId, payload: &[u8]) -> Result<(), SendError> {
        let Some((email, _)) = self.sender_of(&from) else { return Ok(()) };
        let message = TransferMessage::decode(payload)?;
        let id = message.id();
        match message {
            TransferMessage::Offer(offer) => self.on_offer(from, &email, offer).await,
            TransferMessage::Accept { next, .. } => self.on_accept(from, &email, id, next).await,
            TransferMessage::Decline { .. } => self.end_outgoing(from, id, TransferState::Declined, "declined"),
            TransferMessage::Done { .. } => self.end_outgoing(from, id, TransferState::Done, ""),
            TransferMessage::Ack { next, .. } => {
                let mut sends = self.sends();
                if let Some(t) = sends.out.get_mut(&id).filter(|t| t.record.node == Some(from.to_string())) {
                    if let Some(machine) = t.machine.as_mut() {
                        machine.handle_ack(next, now_ms());
                        t.meter.note(machine.done_bytes());
                        t.wake.notify_one();
                    }
                }
            }
            TransferMessage::Chunk { index, sealed, .. } => self.on_chunk(from, id, index, &sealed).await?,
            TransferMessage::Cancel { reason, .. } => self.on_cancel(from, id, &reason),
        }
        Ok(())
    }

    async fn on_offer(&self, from: NodeId, email: &str, offer: Offer) {
        let id = offer.id;
        let resume = {
            let mut sends = self.sends();
            if sends.declined.contains(&id) {
                return;
            }
            match sends.inc.get(&id) {
                // The sender restarted and offers again: tell it where we are.
                Some(t) if t.record.state == TransferState::Active => t.machine.as_ref().map(|m| m.next),
                Some(_) => return,
                None => {
                    let record = TransferRecord::new(Direction::In, &offer, email, Some(from.to_string()), now_ms());
                    sends.save(&record);
                    let transfer = InTransfer {
                        record,
                        machine: Some(Incoming::new(offer, 0)),
                        meter: Meter::default(),
                        file: None,
                        finishing: false,
                    };
                    sends.inc.insert(id, transfer);
                    tracing::info!(from = %email, "a file is offered");
                    None
                }
            }
        };
        match resume {
            Some(next) => {
                let _ = self.mesh.send_to_linked(&from, frame(&TransferMessage::Accept { id, next })).await;
            }
            None => self.transfers_changed(),
        }
    }

    async fn on_accept(&self, from: NodeId, email: &str, id: TransferId, next: u64) {
        let (refuse, start) = {
            let mut sends = self.sends();
            let Some(t) = sends.out.get_mut(&id) else { return };
            if t.record.peer != email || t.machine.is_none() {
                return;
            }
            match t.record.node.as_deref() {
                Some(node) if node != from.to_string() => (true, None),
                _ => {
                    let first = t.record.node.is_none();
                    t.record.node = Some(from.to_string());
                    t.record.state = TransferState::Active;
                    if let Some(machine) = t.machine.as_mut() {
                        machine.handle_accept(next, now_ms());
                    }
                    t.wake.notify_one();
                    let start = !t.pumping;
                    t.pumping = true;
                    let record = t.record.clone();
                    if first {
                        sends.save(&record);
                    }
                    (false, start.then_some(record.node))
                }
            }
        };
        if refuse {
            let message = TransferMessage::Cancel { id, reason: "accepted on another device".into() };
            let _ = self.mesh.send_to_linked(&from, frame(&message)).await;
            return;
        }
        if start.is_some() {
            self.transfers_changed();
            if let Some(engine) = self.self_ref().upgrade() {
                tokio::spawn(pump(engine, id, from));
            }
        }
    }

    fn end_outgoing(&self, from: NodeId, id: TransferId, state: TransferState, detail: &str) {
        let mut sends = self.sends();
        let Some(store) = sends.store.clone() else { return };
        let Some(t) = sends.out.get_mut(&id) else { return };
        let accepted_here = t.record.node.as_deref().is_none_or(|n| n == from.to_string());
        if t.record.is_over() || !accepted_here {
            return;
        }
        close(&mut t.record, state, detail);
        t.machine = None;
        t.wake.notify_one();
        clean_source(&store, &id, &t.record);
        let record = t.record.clone();
        sends.save(&record);
        drop(sends);
        tracing::info!(transfer = %id, "transfer ended: {}", state_word(&record.state));
        self.transfers_changed();
    }

    fn on_cancel(&self, from: NodeId, id: TransferId, reason: &str) {
        if self.sends().out.contains_key(&id) {
            return self.end_outgoing(from, id, TransferState::Cancelled, reason);
        }
        let mut sends = self.sends();
        let Some(store) = sends.store.clone() else { return };
        let Some(t) = sends.inc.get_mut(&id) else { return };
        if t.record.node != Some(from.to_string()) || t.record.is_over() {
            return;
        }
        close(&mut t.record, TransferState::Cancelled, reason);
        t.machine = None;
        t.file = None;
        let _ = std::fs::remove_file(store.part(&id));
        let record = t.record.clone();
        sends.save(&record);
        drop(sends);
        self.transfers_changed();
    }

    async fn on_chunk(&self, from: NodeId, id: TransferId, index: u64, sealed: &[u8]) -> Result<(), SendError> {
        let reply = {
            let mut sends = self.sends();
            let Some(part) = sends.store.as_ref().map(|s| s.part(&id)) else { return Ok(()) };
            let Some(t) = sends.inc.get_mut(&id) else { return Ok(()) };
            if t.record.node != Some(from.to_string()) || t.record.state != TransferState::Active || t.finishing {
                return Ok(());
            }
            let Some(machine) = t.machine.as_mut() else { return Ok(()) };
            match machine.handle_chunk(index, sealed) {
                Ok(Received::Append { plain, next }) => {
                    if let Err(e) = append(&mut t.file, &part, &plain) {
                        // Nothing torn stays (and the space comes back); say why in words.
                        t.file = None;
                        let _ = std::fs::remove_file(&part);
                        let why = format!("cannot write the file on the receiving device: {e} (is its disk full?)");
                        close(&mut t.record, TransferState::Failed, &why);
                        t.machine = None;
                        let record = t.record.clone();
                        sends.save(&record);
                        self.transfers_changed();
                        Some(TransferMessage::Cancel { id, reason: why })
                    } else {
                        t.meter.note(machine.done_bytes());
                        machine.heard(now_ms());
                        if machine.is_complete() {
                            t.finishing = true;
                        }
                        Some(TransferMessage::Ack { id, next })
                    }
                }
                // Already held: our acknowledgement was lost; say it again.
                Ok(Received::Again { next }) => Some(TransferMessage::Ack { id, next }),
                // Ahead of a gap (after a break): the sender rewinds when we
                // ask (`resume_quiet`) or its acks stall.
                Ok(Received::Ignore) => None,
                // The very chunk we wait for, damaged: ask for it again.
                Err(e) => {
                    tracing::info!(transfer = %id, "{e}; asking again");
                    Some(TransferMessage::Accept { id, next: machine.next })
                }
            }
        };
        let finishing = matches!(reply, Some(TransferMessage::Ack { .. })) && self.is_finishing(&id);
        if let Some(message) = reply {
            let _ = self.mesh.send_to_linked(&from, frame(&message)).await;
        }
        if finishing {
            self.finish_incoming(id, from).await;
        }
        Ok(())
    }

    fn is_finishing(&self, id: &TransferId) -> bool {
        self.sends().inc.get(id).is_some_and(|t| t.finishing)
    }

    /// Every chunk is in: check the whole file, put it where asked, and
    /// tell the sender.
    async fn finish_incoming(&self, id: TransferId, from: NodeId) {
        let taken = {
            let mut sends = self.sends();
            let Some(store) = sends.store.clone() else { return };
            let Some(t) = sends.inc.get_mut(&id) else { return };
            t.file = None;
            let (Some(machine), Some(destination)) = (t.machine.clone(), t.record.destination.clone()) else { return };
            (store.part(&id), machine, destination, t.record.name.clone())
        };
        let (part, machine, destination, name) = taken;
        let outcome = self.place_received(part.clone(), machine, destination, name).await;
        let (message, state, detail, saved_as) = match outcome {
            Ok(saved_as) => (TransferMessage::Done { id }, TransferState::Done, String::new(), Some(saved_as)),
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                let why = e.to_string();
                (TransferMessage::Cancel { id, reason: why.clone() }, TransferState::Failed, why, None)
            }
        };
        {
            let mut sends = self.sends();
            if let Some(t) = sends.inc.get_mut(&id) {
                close(&mut t.record, state, &detail);
                t.record.saved_as = saved_as;
                t.machine = None;
                t.finishing = false;
                let record = t.record.clone();
                sends.save(&record);
            }
        }
        tracing::info!(transfer = %id, "file received: {}", if detail.is_empty() { "done" } else { &detail });
        self.transfers_changed();
        let _ = self.mesh.send_to_linked(&from, frame(&message)).await;
    }

    async fn place_received(
        &self,
        part: PathBuf,
        machine: Incoming,
        destination: Destination,
        name: String,
    ) -> Result<String, SendError> {
        let checked = {
            let part = part.clone();
            tokio::task::spawn_blocking(move || -> Result<(), SendError> {
                let file = std::fs::File::open(&part)?;
                file.sync_all()?;
                let mut hasher = blake3::Hasher::new();
                hasher.update_reader(file)?;
                Ok(machine.finish(hasher.finalize().as_bytes())?)
            })
            .await
            .map_err(|e| SendError::Disk(std::io::Error::other(e)))?
        };
        checked?;
        match destination {
            Destination::Folder { path } => {
                std::fs::create_dir_all(&path)?;
                let target = free_path(&path, &name);
                if std::fs::rename(&part, &target).is_err() {
                    std::fs::copy(&part, &target)?;
                    let _ = std::fs::remove_file(&part);
                }
                Ok(target.display().to_string())
            }
            Destination::Drive => {
                let network = self.network_key().await.ok_or(crate::drive::DriveError::NoNetwork)?;
                let source = part.clone();
                let file = self.drive_blocking(move |d| d.add_named(&network, &source, &name, now_ms())).await;
                let _ = std::fs::remove_file(&part);
                let file = file?;
                self.spread(file.id.clone());
                self.notify(Event::FilesChanged);
                Ok(file.id)
            }
        }
    }
}

/// Appends verified bytes to a transfer's part file (opened on first use).
fn append(file: &mut Option<std::fs::File>, part: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(crate::home::open_private_append(part)?);
    }
    match file.as_mut() {
        Some(f) => f.write_all(bytes),
        None => Ok(()),
    }
}

fn clean_source(store: &TransferStore, id: &TransferId, record: &TransferRecord) {
    if record.owned_source {
        let _ = std::fs::remove_file(store.source_copy(id));
    }
}

/// Streams an accepted transfer's chunks to `node` within the window,
/// until it is done, the link fails, or it is cancelled.
async fn pump(engine: Arc<Engine>, id: TransferId, node: NodeId) {
    loop {
        let work = {
            let mut sends = engine.sends();
            let Some(t) = sends.out.get_mut(&id) else { return };
            let (Some(machine), Some(source)) = (t.machine.as_mut(), t.record.source.clone()) else {
                t.pumping = false;
                return;
            };
            // Sent but not acknowledged for too long: the link lost them.
            let now = now_ms();
            machine.handle_timeout(now);
            let batch: Vec<u64> = std::iter::from_fn(|| machine.poll_chunk(now)).collect();
            (batch, machine.offer.clone(), source, t.wake.clone())
        };
        let (batch, offer, source, wake) = work;
        if !batch.is_empty() {
            let sealed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(u64, Vec<u8>)>> {
                let file = std::fs::File::open(&source)?;
                batch
                    .into_iter()
                    .map(|index| {
                        let mut plain = vec![0u8; offer.chunk_len(index)];
                        file.read_exact_at(&mut plain, index * offer.chunk_size as u64)?;
                        Ok((index, offer.seal_chunk(index, &plain)))
                    })
                    .collect()
            })
            .await;
            let chunks = match sealed {
                Ok(Ok(chunks)) => chunks,
                Ok(Err(e)) => return fail_outgoing(&engine, id, node, format!("cannot read the file: {e}")).await,
                Err(_) => return,
            };
            for (index, sealed) in chunks {
                let message = TransferMessage::Chunk { id, index, sealed };
                if engine.mesh.send_to_linked(&node, frame(&message)).await.is_err() {
                    // No link: wait for the receiver's Accept when it is back.
                    if let Some(t) = engine.sends().out.get_mut(&id) {
                        t.pumping = false;
                    }
                    return;
                }
            }
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        if engine.shutdown.is_cancelled() {
            return;
        }
    }
}

async fn fail_outgoing(engine: &Engine, id: TransferId, node: NodeId, why: String) {
    {
        let mut sends = engine.sends();
        if let Some(t) = sends.out.get_mut(&id) {
            close(&mut t.record, TransferState::Failed, &why);
            t.machine = None;
            t.pumping = false;
            let record = t.record.clone();
            sends.save(&record);
        }
    }
    engine.transfers_changed();
    let _ = engine.mesh.send_to_linked(&node, frame(&TransferMessage::Cancel { id, reason: why })).await;
}

/// Handles `send.msg` frames one at a time, in arrival order (chunks
/// must be appended in order), and every few seconds repeats offers and
/// asks quiet transfers to go on.
pub async fn run(engine: Arc<Engine>, mut inbox: mpsc::Receiver<crate::mesh::inbound::Inbound>) {
    let mut tick = tokio::time::interval(TICK);
    // Transfers that were complete but not placed when the engine stopped.
    let unfinished: Vec<(TransferId, NodeId)> = engine
        .sends()
        .inc
        .iter()
        .filter(|(_, t)| t.record.state == TransferState::Active && t.machine.as_ref().is_some_and(|m| m.is_complete()))
        .filter_map(|(id, t)| Some((*id, t.record.node.as_deref()?.parse().ok()?)))
        .collect();
    for (id, node) in unfinished {
        if let Some(t) = engine.sends().inc.get_mut(&id) {
            t.finishing = true;
        }
        engine.finish_incoming(id, node).await;
    }
    loop {
        tokio::select! {
            received = inbox.recv() => {
                let Some(frame) = received else { return };
                let from = frame.from;
                if let Err(e) = engine.on_send_message(from, &frame.payload).await {
                    tracing::info!(node = %from, "transfer message refused: {e}");
                }
            }
            _ = tick.tick() => {
                engine.offer_pending().await;
                engine.resume_quiet().await;
            }
            _ = engine.shutdown.cancelled() => return,
        }
    }
}
