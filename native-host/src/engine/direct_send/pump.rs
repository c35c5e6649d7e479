//! Streaming an accepted transfer's chunks: one task per transfer, which
//! alone waits on that person's link.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::transfer::{TransferId, TransferMessage};

use super::{close, frame, DirectSend};
use crate::clock::now_ms;
use crate::transfer_store::TransferState;

impl DirectSend {
    /// Streams an accepted transfer's chunks to `node` within the window,
    /// until it is done, the link fails, or it is cancelled.
    pub(super) async fn pump(self: Arc<Self>, id: TransferId, node: NodeId) {
        loop {
            let work = {
                let mut sends = self.sends();
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
                    Ok(Err(e)) => return self.fail_outgoing(id, node, format!("cannot read the file: {e}")),
                    Err(_) => return,
                };
                for (index, sealed) in chunks {
                    let message = TransferMessage::Chunk { id, index, sealed };
                    if self.links.send_to_linked(&node, frame(&message)).await.is_err() {
                        // No link: wait for the receiver's Accept when it is back.
                        if let Some(t) = self.sends().out.get_mut(&id) {
                            t.pumping = false;
                        }
                        return;
                    }
                }
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            if self.stop.is_cancelled() {
                return;
            }
        }
    }

    fn fail_outgoing(&self, id: TransferId, node: NodeId, why: String) {
        if let Some(t) = self.sends().out.get_mut(&id) {
            close(&mut t.record, TransferState::Failed, &why);
            t.machine = None;
            t.pumping = false;
            self.save(&t.record);
        }
        self.changed();
        self.outbox.send(node, frame(&TransferMessage::Cancel { id, reason: why }));
    }
}
