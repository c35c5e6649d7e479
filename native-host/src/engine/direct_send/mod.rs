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
//!
//! [`DirectSend`] is a service. It owns the transfers ([`records::Sends`],
//! behind a private lock held only for in-memory work), writes their
//! records through [`records::RecordWriter`] and appends chunks on
//! blocking threads, and never waits on a person's link in its message
//! loop: offers, accepts, acks and cancels go through an [`Outbox`] (a
//! bounded queue per node, dropped past it: the timers repeat them), and
//! each transfer's chunks are sent by a pump task of its own. So a person
//! whose node stops reading stalls only their own transfers.

mod incoming;
mod pump;
mod records;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::people::normalize_email;
use mailmesh_core::transfer::{Incoming, Offer, Outgoing, TransferId, TransferMessage};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use self::records::{OutTransfer, RecordWriter, Sends};
use super::drive_net::DriveNet;
use super::people::trust::{self, TrustError};
use super::people::PeopleHandle;
use crate::api::{Event, TransferView};
use crate::clock::now_ms;
use crate::mesh::links::Links;
use crate::mesh::outbox::Outbox;
use crate::transfer_store::{Destination, Direction, Meter, TransferRecord, TransferState, TransferStore};

pub const TOPIC: &str = "send.msg";
/// How often offers are repeated and quiet transfers asked to go on.
const TICK: Duration = Duration::from_secs(2);
/// Offers one node may have waiting for an answer here; more are ignored
/// (the sender repeats them) until some are answered.
const MAX_OFFERS_PER_NODE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Random(#[from] crate::rng::NoRandomness),
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
    Trust(#[from] TrustError),
    #[error(transparent)]
    Drive(#[from] crate::drive::DriveError),
    #[error(transparent)]
    Transfer(#[from] mailmesh_core::transfer::TransferError),
}

pub struct DirectSend {
    sends: Mutex<Sends>,
    /// `None` if the transfers folder could not be made: sending is then
    /// refused with the reason.
    store: Option<TransferStore>,
    writer: Option<Arc<RecordWriter>>,
    links: Arc<dyn Links>,
    outbox: Outbox,
    people: PeopleHandle,
    drive: Arc<DriveNet>,
    events: broadcast::Sender<Event>,
    stop: CancellationToken,
    this: Weak<DirectSend>,
}

impl DirectSend {
    /// The service over the transfers kept in `home_root`.
    pub fn start(
        home_root: &std::path::Path,
        links: Arc<dyn Links>,
        people: PeopleHandle,
        drive: Arc<DriveNet>,
        events: broadcast::Sender<Event>,
        stop: CancellationToken,
    ) -> Arc<DirectSend> {
        let store = TransferStore::open(home_root)
            .map_err(|e| tracing::warn!("direct send is unavailable: cannot make its folder: {e}"))
            .ok();
        let sends = store.as_ref().map(Sends::load).unwrap_or_default();
        let writer = store.clone().map(RecordWriter::start);
        Arc::new_cyclic(|this| DirectSend {
            sends: Mutex::new(sends),
            store,
            writer,
            outbox: Outbox::new(links.clone()),
            links,
            people,
            drive,
            events,
            stop,
            this: this.clone(),
        })
    }

    fn sends(&self) -> MutexGuard<'_, Sends> {
        crate::sync::lock(&self.sends)
    }

    fn store(&self) -> Result<&TransferStore, SendError> {
        self.store.as_ref().ok_or_else(|| SendError::Disk(std::io::Error::other("no transfers folder")))
    }

    fn save(&self, record: &TransferRecord) {
        if let Some(writer) = &self.writer {
            writer.save(record);
        }
    }

    /// Waits until every record change so far is on disk.
    pub async fn flushed(&self) {
        if let Some(writer) = &self.writer {
            writer.flushed().await;
        }
    }

    fn changed(&self) {
        let _ = self.events.send(Event::TransfersChanged);
    }

    pub fn list(&self) -> Vec<TransferView> {
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
    pub async fn offer(
        &self,
        to: &str,
        path: Option<String>,
        file_id: Option<String>,
    ) -> Result<TransferView, SendError> {
        let to = normalize_email(to);
        trust::check_verified(&self.people.book(), &to)?;
        let id = TransferId(crate::rng::bytes()?);
        let (source, owned, name, media_type) = match (path, file_id) {
            (Some(path), None) => {
                let path = PathBuf::from(path);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (path, false, name, "application/octet-stream".to_string())
            }
            (None, Some(file_id)) => {
                let copy = self.store()?.source_copy(&id);
                let file = self.drive.restore(file_id, copy.clone()).await.inspect_err(|_| {
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
        let offer = Offer::new(id, &name, size, &media_type, hash, crate::rng::bytes()?)?;
        let mut record = TransferRecord::new(Direction::Out, &offer, &to, None, now_ms());
        record.source = Some(source);
        record.owned_source = owned;
        let shown = view(&record, 0, &Meter::default());
        self.save(&record);
        let transfer = OutTransfer {
            record,
            machine: Some(Outgoing::new(offer)),
            meter: Meter::default(),
            wake: Arc::default(),
            pumping: false,
        };
        self.sends().out.insert(id, transfer);
        tracing::info!(to = %to, size, "offering a file");
        self.offer_pending();
        self.changed();
        Ok(shown)
    }

    /// Takes an offered file, into the drive or a folder.
    pub async fn accept(&self, id: &str, destination: Destination) -> Result<(), SendError> {
        let id = self.find(id)?;
        let part = self.store()?.part(&id);
        let opened = tokio::task::spawn_blocking(move || crate::home::open_private_append(&part))
            .await
            .map_err(|e| SendError::Disk(std::io::Error::other(e)))??;
        let node = {
            let mut sends = self.sends();
            let t = sends.inc.get_mut(&id).ok_or_else(|| SendError::Unknown(id.to_string()))?;
            if t.record.state != TransferState::Offered {
                return Err(SendError::Answered);
            }
            t.file = Some(opened);
            t.record.state = TransferState::Active;
            t.record.destination = Some(destination);
            if let Some(machine) = t.machine.as_mut() {
                machine.heard(now_ms());
            }
            self.save(&t.record);
            t.record.node.clone()
        };
        self.changed();
        self.send_to_node(node.as_deref(), &TransferMessage::Accept { id, next: 0 });
        Ok(())
    }

    /// Refuses an offered file: nothing of it is kept.
    pub async fn decline(&self, id: &str) -> Result<(), SendError> {
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
            node
        };
        if let Some(writer) = &self.writer {
            writer.forget(&id);
        }
        self.changed();
        self.send_to_node(node.as_deref(), &TransferMessage::Decline { id });
        Ok(())
    }

    /// Stops a transfer from either side.
    pub async fn cancel(&self, id: &str) -> Result<(), SendError> {
        let id = self.find(id)?;
        let store = self.store()?.clone();
        let reason = "cancelled by the other side";
        let (nodes, remove) = {
            let mut sends = self.sends();
            let mut nodes = Vec::new();
            let mut remove = Vec::new();
            if let Some(t) = sends.out.get_mut(&id) {
                if t.record.is_over() {
                    return Err(SendError::Over);
                }
                nodes = self.offer_targets(&t.record);
                close(&mut t.record, TransferState::Cancelled, "cancelled");
                t.machine = None;
                t.wake.notify_one();
                remove.extend(t.record.owned_source.then(|| store.source_copy(&id)));
                self.save(&t.record);
            } else if let Some(t) = sends.inc.get_mut(&id) {
                if t.record.is_over() {
                    return Err(SendError::Over);
                }
                nodes.extend(t.record.node.iter().filter_map(|n| n.parse::<NodeId>().ok()));
                close(&mut t.record, TransferState::Cancelled, "cancelled");
                t.machine = None;
                t.file = None;
                remove.push(store.part(&id));
                self.save(&t.record);
            }
            (nodes, remove)
        };
        remove_files(remove);
        self.changed();
        for node in nodes {
            self.outbox.send(node, frame(&TransferMessage::Cancel { id, reason: reason.into() }));
        }
        Ok(())
    }

    /// The nodes an outgoing transfer talks to: the one that accepted, or
    /// while offered every verified linked node of the person.
    fn offer_targets(&self, record: &TransferRecord) -> Vec<NodeId> {
        match record.node.as_deref().and_then(|n| n.parse().ok()) {
            Some(node) => vec![node],
            None => trust::linked_people(&self.people.book(), self.links.linked_strangers())
                .0
                .get(&record.peer)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Queues a message for a node (never waits on its link).
    fn send_to_node(&self, node: Option<&str>, message: &TransferMessage) {
        if let Some(node) = node.and_then(|n| n.parse::<NodeId>().ok()) {
            self.outbox.send(node, frame(message));
        }
    }

    /// Repeats offers not answered yet to the person's linked nodes.
    fn offer_pending(&self) {
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
                self.outbox.send(node, frame(&message));
            }
        }
    }

    /// Receivers ask quiet transfers to go on from what they hold.
    fn resume_quiet(&self) {
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
            self.send_to_node(node.as_deref(), &message);
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

/// Removes files a transfer no longer needs, off the async workers.
fn remove_files(paths: Vec<PathBuf>) {
    if !paths.is_empty() {
        tokio::task::spawn_blocking(move || {
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
        });
    }
}
