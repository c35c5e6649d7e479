//! The transfers this node knows, and how their records reach the disk.
//!
//! [`Sends`] is the in-memory table (loaded from `transfers/` at start).
//! [`RecordWriter`] writes records on a blocking thread: each change
//! replaces the transfer's pending write (the latest state wins), batches
//! are written in the order they were made, and nothing waits for the disk
//! but the writer's own task.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use mailmesh_core::transfer::{Incoming, Outgoing, TransferId};
use tokio::sync::{watch, Notify};

use crate::transfer_store::{Direction, Meter, TransferRecord, TransferStore};

pub(super) struct OutTransfer {
    pub record: TransferRecord,
    pub machine: Option<Outgoing>,
    pub meter: Meter,
    pub wake: Arc<Notify>,
    pub pumping: bool,
}

pub(super) struct InTransfer {
    pub record: TransferRecord,
    pub machine: Option<Incoming>,
    pub meter: Meter,
    /// The part file, open while chunks come in (taken out while a chunk is
    /// written on a blocking thread).
    pub file: Option<std::fs::File>,
    pub finishing: bool,
}

/// Every transfer this engine knows, coming and going.
#[derive(Default)]
pub(super) struct Sends {
    pub out: HashMap<TransferId, OutTransfer>,
    pub inc: HashMap<TransferId, InTransfer>,
    /// Offers declined since the engine started: not shown again if the
    /// sender repeats one before it heard the answer.
    pub declined: HashSet<TransferId>,
}

impl Sends {
    /// The transfers kept in the home, as they were: an active one waits
    /// for the receiver to say where to go on.
    pub fn load(store: &TransferStore) -> Sends {
        let mut sends = Sends::default();
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
}

enum Change {
    Save(Box<TransferRecord>),
    /// The record and every byte of the transfer.
    Forget(TransferId),
}

#[derive(Default)]
struct Pending {
    changes: HashMap<String, Change>,
    /// Counts changes made; the writer reports the count it has written.
    made: u64,
}

pub(super) struct RecordWriter {
    pending: Mutex<Pending>,
    wake: Notify,
    written: watch::Sender<u64>,
}

impl RecordWriter {
    /// Starts the writer's task for `store`.
    pub fn start(store: TransferStore) -> Arc<RecordWriter> {
        let writer =
            Arc::new(RecordWriter { pending: Mutex::default(), wake: Notify::new(), written: watch::Sender::new(0) });
        let task = writer.clone();
        tokio::spawn(async move {
            let writer = task;
            loop {
                let notified = writer.wake.notified();
                let (changes, made) = {
                    let mut pending = crate::sync::lock(&writer.pending);
                    (std::mem::take(&mut pending.changes), pending.made)
                };
                if changes.is_empty() {
                    notified.await;
                    continue;
                }
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for change in changes.into_values() {
                        match change {
                            Change::Save(record) => {
                                if let Err(e) = store.save(&record) {
                                    tracing::warn!("cannot save transfer {}: {e}", record.id);
                                }
                            }
                            Change::Forget(id) => store.remove(&id),
                        }
                    }
                })
                .await;
                writer.written.send_replace(made);
            }
        });
        writer
    }

    fn change(&self, id: String, change: Change) {
        let mut pending = crate::sync::lock(&self.pending);
        pending.changes.insert(id, change);
        pending.made += 1;
        drop(pending);
        self.wake.notify_one();
    }

    pub fn save(&self, record: &TransferRecord) {
        self.change(record.id.clone(), Change::Save(Box::new(record.clone())));
    }

    pub fn forget(&self, id: &TransferId) {
        self.change(id.to_string(), Change::Forget(*id));
    }

    /// Waits until every change made so far is on disk.
    pub async fn flushed(&self) {
        let made = crate::sync::lock(&self.pending).made;
        let mut written = self.written.subscribe();
        let _ = written.wait_for(|w| *w >= made).await;
    }
}
