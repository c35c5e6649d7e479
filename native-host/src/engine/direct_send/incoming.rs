//! The `send.msg` frames from other people's nodes, handled one at a time
//! in arrival order by [`DirectSend::run`] (chunks must be appended in
//! order), and the end of a received transfer: hash check, then the drive
//! or a folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use mailmesh_core::identity::NodeId;
use mailmesh_core::transfer::{Incoming, Offer, Received, TransferId, TransferMessage};
use tokio::sync::mpsc;

use super::records::InTransfer;
use super::{close, frame, remove_files, state_word, DirectSend, SendError, MAX_OFFERS_PER_NODE, TICK};
use crate::clock::now_ms;
use crate::mesh::inbound::Inbound;
use crate::transfer_store::{free_path, Destination, Direction, Meter, TransferRecord, TransferState};

impl DirectSend {
    /// Handles `send.msg` frames in arrival order, and every few seconds
    /// repeats offers and asks quiet transfers to go on, until stopped.
    pub async fn run(self: Arc<Self>, mut inbox: mpsc::Receiver<Inbound>) {
        let mut tick = tokio::time::interval(TICK);
        // Transfers that were complete but not placed when the engine stopped.
        let unfinished: Vec<(TransferId, NodeId)> = {
            let mut sends = self.sends();
            sends
                .inc
                .iter_mut()
                .filter(|(_, t)| {
                    t.record.state == TransferState::Active && t.machine.as_ref().is_some_and(|m| m.is_complete())
                })
                .filter_map(|(id, t)| {
                    t.finishing = true;
                    Some((*id, t.record.node.as_deref()?.parse().ok()?))
                })
                .collect()
        };
        for (id, node) in unfinished {
            self.finish_incoming(id, node).await;
        }
        loop {
            tokio::select! {
                received = inbox.recv() => {
                    let Some(frame) = received else { return };
                    let from = frame.from;
                    if let Err(e) = self.on_message(from, &frame.payload).await {
                        tracing::info!(node = %from, "transfer message refused: {e}");
                    }
                }
                _ = tick.tick() => {
                    self.offer_pending();
                    self.resume_quiet();
                }
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// A `send.msg` frame from another person's node.
    async fn on_message(&self, from: NodeId, payload: &[u8]) -> Result<(), SendError> {
        // Only a node verified for its address takes part in a transfer:
        // any node can claim an address on its link, and an offer shown
        // under that address would be a lie told in someone else's name.
        let Some((email, true)) = super::trust::sender_of(&self.people.book(), &from) else { return Ok(()) };
        let message = TransferMessage::decode(payload)?;
        let id = message.id();
        match message {
            TransferMessage::Offer(offer) => self.on_offer(from, &email, offer),
            TransferMessage::Accept { next, .. } => self.on_accept(from, &email, id, next),
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
            TransferMessage::Chunk { index, sealed, .. } => self.on_chunk(from, id, index, sealed).await?,
            TransferMessage::Cancel { reason, .. } => self.on_cancel(from, id, &reason),
        }
        Ok(())
    }

    fn on_offer(&self, from: NodeId, email: &str, offer: Offer) {
        let id = offer.id;
        let resume = {
            let mut sends = self.sends();
            if sends.declined.contains(&id) {
                return;
            }
            let node = Some(from.to_string());
            let waiting =
                sends.inc.values().filter(|t| t.record.state == TransferState::Offered && t.record.node == node);
            let full = waiting.count() >= MAX_OFFERS_PER_NODE;
            match sends.inc.get(&id) {
                // The sender restarted and offers again: tell it where we are.
                Some(t) if t.record.state == TransferState::Active => t.machine.as_ref().map(|m| m.next),
                Some(_) => return,
                // It repeats this offer until answered: shown once some are.
                None if full => return,
                None => {
                    let record = TransferRecord::new(Direction::In, &offer, email, Some(from.to_string()), now_ms());
                    self.save(&record);
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
                self.outbox.send(from, frame(&TransferMessage::Accept { id, next }));
            }
            None => self.changed(),
        }
    }

    fn on_accept(&self, from: NodeId, email: &str, id: TransferId, next: u64) {
        let (refuse, start) = {
            let mut sends = self.sends();
            let Some(t) = sends.out.get_mut(&id) else { return };
            if t.record.peer != email || t.machine.is_none() {
                return;
            }
            match t.record.node.as_deref() {
                Some(node) if node != from.to_string() => (true, false),
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
                    if first {
                        self.save(&t.record);
                    }
                    (false, start)
                }
            }
        };
        if refuse {
            let message = TransferMessage::Cancel { id, reason: "accepted on another device".into() };
            self.outbox.send(from, frame(&message));
            return;
        }
        if start {
            self.changed();
            if let Some(service) = self.this.upgrade() {
                tokio::spawn(service.pump(id, from));
            }
        }
    }

    fn end_outgoing(&self, from: NodeId, id: TransferId, state: TransferState, detail: &str) {
        let Some(store) = self.store.clone() else { return };
        let record = {
            let mut sends = self.sends();
            let Some(t) = sends.out.get_mut(&id) else { return };
            let accepted_here = t.record.node.as_deref().is_none_or(|n| n == from.to_string());
            if t.record.is_over() || !accepted_here {
                return;
            }
            close(&mut t.record, state, detail);
            t.machine = None;
            t.wake.notify_one();
            self.save(&t.record);
            t.record.clone()
        };
        if record.owned_source {
            remove_files(vec![store.source_copy(&id)]);
        }
        tracing::info!(transfer = %id, "transfer ended: {}", state_word(&record.state));
        self.changed();
    }

    fn on_cancel(&self, from: NodeId, id: TransferId, reason: &str) {
        if self.sends().out.contains_key(&id) {
            return self.end_outgoing(from, id, TransferState::Cancelled, reason);
        }
        let Some(store) = self.store.clone() else { return };
        {
            let mut sends = self.sends();
            let Some(t) = sends.inc.get_mut(&id) else { return };
            if t.record.node != Some(from.to_string()) || t.record.is_over() {
                return;
            }
            close(&mut t.record, TransferState::Cancelled, reason);
            t.machine = None;
            t.file = None;
            self.save(&t.record);
        }
        remove_files(vec![store.part(&id)]);
        self.changed();
    }

    async fn on_chunk(&self, from: NodeId, id: TransferId, index: u64, sealed: Vec<u8>) -> Result<(), SendError> {
        let Some(part) = self.store.as_ref().map(|s| s.part(&id)) else { return Ok(()) };
        let (mut machine, file) = {
            let mut sends = self.sends();
            let Some(t) = sends.inc.get_mut(&id) else { return Ok(()) };
            if t.record.node != Some(from.to_string()) || t.record.state != TransferState::Active || t.finishing {
                return Ok(());
            }
            let Some(machine) = t.machine.clone() else { return Ok(()) };
            (machine, t.file.take())
        };
        // Opening the chunk and writing it happen on a blocking thread, on a
        // copy of the machine: no decryption on an async worker, none under
        // the table's lock. This loop is the only one that moves a transfer
        // on or writes its part file, so the copy is the machine's next state
        // and order is kept.
        let step = tokio::task::spawn_blocking(move || match machine.handle_chunk(index, &sealed) {
            Ok(Received::Append { plain, next }) => {
                let (file, written) = append(file, &part, &plain);
                ChunkStep::Appended { machine, file, written, next }
            }
            // Already held: our acknowledgement was lost; say it again.
            Ok(Received::Again { next }) => ChunkStep::Answer(Some(TransferMessage::Ack { id, next }), file),
            // Ahead of a gap (after a break): the sender rewinds when we ask
            // (`resume_quiet`) or its acks stall.
            Ok(Received::Ignore) => ChunkStep::Answer(None, file),
            // The very chunk we wait for, damaged: ask for it again.
            Err(e) => {
                tracing::info!(transfer = %id, "{e}; asking again");
                ChunkStep::Answer(Some(TransferMessage::Accept { id, next: machine.next }), file)
            }
        })
        .await
        .map_err(|e| SendError::Disk(std::io::Error::other(e)))?;
        let (machine, written, next) = match step {
            ChunkStep::Appended { machine, file, written, next } => (machine, (file, written), next),
            ChunkStep::Answer(reply, file) => {
                // The part file stays open for the next chunk, unless the
                // transfer ended meanwhile.
                if let Some(t) = self.sends().inc.get_mut(&id).filter(|t| t.record.state == TransferState::Active) {
                    t.file = t.file.take().or(file);
                }
                if let Some(message) = reply {
                    self.outbox.send(from, frame(&message));
                }
                return Ok(());
            }
        };
        let (reply, finishing) = {
            let mut sends = self.sends();
            let Some(t) = sends.inc.get_mut(&id) else { return Ok(()) };
            if t.record.state != TransferState::Active {
                // Cancelled while the chunk was written.
                return Ok(());
            }
            match written {
                (file, Ok(())) => {
                    t.file = file;
                    let mut machine = machine;
                    t.meter.note(machine.done_bytes());
                    machine.heard(now_ms());
                    let finishing = machine.is_complete();
                    t.machine = Some(machine);
                    t.finishing = finishing;
                    (TransferMessage::Ack { id, next }, finishing)
                }
                (_, Err(e)) => {
                    // Nothing torn stays (and the space comes back); say why in words.
                    let why = format!("cannot write the file on the receiving device: {e} (is its disk full?)");
                    close(&mut t.record, TransferState::Failed, &why);
                    t.machine = None;
                    self.save(&t.record);
                    if let Some(store) = &self.store {
                        remove_files(vec![store.part(&id)]);
                    }
                    (TransferMessage::Cancel { id, reason: why }, false)
                }
            }
        };
        if matches!(reply, TransferMessage::Cancel { .. }) {
            self.changed();
        }
        self.outbox.send(from, frame(&reply));
        if finishing {
            self.finish_incoming(id, from).await;
        }
        Ok(())
    }

    /// Every chunk is in: check the whole file, put it where asked, and
    /// tell the sender.
    async fn finish_incoming(&self, id: TransferId, from: NodeId) {
        let Some(store) = self.store.clone() else { return };
        let taken = {
            let mut sends = self.sends();
            let Some(t) = sends.inc.get_mut(&id) else { return };
            t.file = None;
            let (Some(machine), Some(destination)) = (t.machine.clone(), t.record.destination.clone()) else { return };
            (machine, destination, t.record.name.clone())
        };
        let (machine, destination, name) = taken;
        let part = store.part(&id);
        let outcome = self.place_received(part.clone(), machine, destination, name).await;
        let (message, state, detail, saved_as) = match outcome {
            Ok(saved_as) => (TransferMessage::Done { id }, TransferState::Done, String::new(), Some(saved_as)),
            Err(e) => {
                remove_files(vec![part]);
                let why = e.to_string();
                (TransferMessage::Cancel { id, reason: why.clone() }, TransferState::Failed, why, None)
            }
        };
        if let Some(t) = self.sends().inc.get_mut(&id) {
            close(&mut t.record, state, &detail);
            t.record.saved_as = saved_as;
            t.machine = None;
            t.finishing = false;
            self.save(&t.record);
        }
        tracing::info!(transfer = %id, "file received: {}", if detail.is_empty() { "done" } else { &detail });
        self.changed();
        self.outbox.send(from, frame(&message));
    }

    async fn place_received(
        &self,
        part: PathBuf,
        machine: Incoming,
        destination: Destination,
        name: String,
    ) -> Result<String, SendError> {
        match destination {
            Destination::Folder { path } => {
                let placed = tokio::task::spawn_blocking(move || -> Result<String, SendError> {
                    check_whole(&part, machine)?;
                    std::fs::create_dir_all(&path)?;
                    let target = free_path(&path, &name);
                    if std::fs::rename(&part, &target).is_err() {
                        std::fs::copy(&part, &target)?;
                        let _ = std::fs::remove_file(&part);
                    }
                    Ok(target.display().to_string())
                });
                placed.await.map_err(|e| SendError::Disk(std::io::Error::other(e)))?
            }
            Destination::Drive => {
                let checked = part.clone();
                tokio::task::spawn_blocking(move || check_whole(&checked, machine))
                    .await
                    .map_err(|e| SendError::Disk(std::io::Error::other(e)))??;
                let file = self.drive.add_file(part.clone(), name).await;
                remove_files(vec![part]);
                Ok(file?.id)
            }
        }
    }
}

/// The part file is durable and hashes to what the offer said.
fn check_whole(part: &std::path::Path, machine: Incoming) -> Result<(), SendError> {
    let file = std::fs::File::open(part)?;
    file.sync_all()?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(machine.finish(hasher.finalize().as_bytes())?)
}

/// Appends verified bytes to a transfer's part file (opened on first use);
/// hands the file back for the next chunk.
/// What became of a chunk on the blocking thread.
enum ChunkStep {
    /// Opened and written (or not: `written`), moving the machine on.
    Appended { machine: Incoming, file: Option<std::fs::File>, written: std::io::Result<()>, next: u64 },
    /// Not the chunk awaited: what to answer, if anything.
    Answer(Option<TransferMessage>, Option<std::fs::File>),
}

fn append(
    file: Option<std::fs::File>,
    part: &std::path::Path,
    bytes: &[u8],
) -> (Option<std::fs::File>, std::io::Result<()>) {
    let mut file = match file {
        Some(file) => file,
        None => match crate::home::open_private_append(part) {
            Ok(file) => file,
            Err(e) => return (None, Err(e)),
        },
    };
    let written = file.write_all(bytes);
    (Some(file), written)
}
