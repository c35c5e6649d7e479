//! Placing a file's fragments while it is still coming in (a browser
//! upload), so spreading overlaps the upload instead of following it.
//!
//! ```text
//!   verified chunk ─▶ place_chunk ─┬─ here (or its node is away) ─▶ returned, stored by the caller
//!                                  └─ another online member ─▶ queue ─▶ Put, PUTS_IN_FLIGHT at a time
//!                                                                        └─ refused or lost: stored here
//! ```
//!
//! Browser uploads place through [`Placing`] directly; `files add`, which
//! codes on a blocking thread, through [`BlockingPlacer`].
//!
//! A fragment placed on another member is sent from memory and never
//! written here, unless that member does not store it; [`Placing::finish`]
//! returns once every fragment is durable somewhere, which is when the
//! caller may write the file's record. [`DriveNet::distribute`] then sends
//! the record and where everything went, and moves what stayed here only
//! because its node failed.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use mailmesh_core::drive::placement::{chunk_seed, place_chunk, Candidate};
use mailmesh_core::drive::{EncodedChunk, FragmentId};
use mailmesh_core::identity::NodeId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DriveNet, PUTS_IN_FLIGHT};
use crate::drive::{fragments_of, DriveError, Placer};
use crate::sync::lock;

/// A fragment on its way to another member.
struct Handing {
    id: FragmentId,
    target: NodeId,
    bytes: Bytes,
}

pub struct Placing {
    me: NodeId,
    shards: usize,
    candidates: Vec<Candidate>,
    online: HashSet<NodeId>,
    /// Bounded: a full queue holds up the upload (and so the page), which
    /// is the backpressure that keeps memory at a few MiB.
    queue: mpsc::Sender<Handing>,
    sending: JoinHandle<Result<(), DriveError>>,
}

impl DriveNet {
    /// Starts placing the fragments of a file coded with `shards`
    /// fragments a chunk as its chunks are coded.
    pub fn placing(self: &Arc<Self>, shards: usize) -> Placing {
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let candidates = self.membership().map(|m| self.placement_candidates(&m)).unwrap_or_default();
        let (queue, sends) = mpsc::channel::<Handing>(PUTS_IN_FLIGHT * 2);
        let net = self.clone();
        let sending = tokio::spawn(async move {
            let sends = stream::unfold(sends, |mut sends| async move { sends.recv().await.map(|send| (send, sends)) });
            let sent = sends.map(|send| net.hand_over(send)).buffer_unordered(PUTS_IN_FLIGHT);
            let mut sent = std::pin::pin!(sent);
            let mut outcome = Ok(());
            while let Some(result) = sent.next().await {
                outcome = outcome.and(result);
            }
            outcome
        });
        Placing { me: self.me, shards, candidates, online, queue, sending }
    }

    /// Puts a fragment on its target member, or stores it here if the
    /// member does not take it.
    async fn hand_over(&self, send: Handing) -> Result<(), DriveError> {
        let Handing { id, target, bytes } = send;
        // The chunk's buffer stays in memory until the target has stored it.
        if self.put_fragment(&target, id, bytes.to_vec()).await {
            lock(&self.known).held(id, target);
            return Ok(());
        }
        self.on_disk(move |drive| Ok(drive.store().put(&id, &bytes)?)).await
    }
}

impl Placing {
    /// Sends a verified chunk's fragments placed on other online members
    /// to them; returns those to be stored here.
    pub async fn place(&self, chunk: EncodedChunk) -> Vec<(FragmentId, Bytes)> {
        let targets = place_chunk(&chunk_seed(&chunk.ids), chunk.index, self.shards, &self.candidates);
        let mut here = Vec::new();
        for ((id, bytes), target) in fragments_of(chunk).zip(targets) {
            if target == self.me || !self.online.contains(&target) {
                here.push((id, bytes));
                continue;
            }
            if let Err(mpsc::error::SendError(send)) = self.queue.send(Handing { id, target, bytes }).await {
                // The sending task is gone (the engine is stopping): keep it.
                here.push((send.id, send.bytes));
            }
        }
        here
    }

    /// Waits until every fragment sent is stored on its member or here.
    pub async fn finish(self) -> Result<(), DriveError> {
        drop(self.queue);
        self.sending.await.unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))
    }
}

/// A [`Placing`] for an add that runs on a blocking thread (`files add`):
/// started at the first chunk.
pub struct BlockingPlacer {
    net: Arc<DriveNet>,
    runtime: tokio::runtime::Handle,
    placing: Option<Placing>,
}

impl BlockingPlacer {
    pub fn new(net: Arc<DriveNet>) -> BlockingPlacer {
        BlockingPlacer { net, runtime: tokio::runtime::Handle::current(), placing: None }
    }
}

impl Placer for BlockingPlacer {
    fn place(&mut self, shards: usize, chunk: EncodedChunk) -> Result<Vec<(FragmentId, Bytes)>, DriveError> {
        let placing = self.placing.get_or_insert_with(|| self.net.placing(shards));
        Ok(self.runtime.block_on(placing.place(chunk)))
    }

    fn finish(&mut self) -> Result<(), DriveError> {
        match self.placing.take() {
            Some(placing) => self.runtime.block_on(placing.finish()),
            None => Ok(()),
        }
    }
}
