//! Keeping every file restorable: the scrub re-verifies what is stored
//! here, and repair re-creates fragments that no online node holds.
//!
//! Repair planning per chunk: a fragment needs re-creating when neither
//! this node nor a known online holder has it; it goes back to the node
//! placement picks if that node is online, or — once that node has been
//! gone longer than the grace period — to the online node holding fewest of
//! the chunk's fragments. Only the online member with the smallest id runs
//! the full repair, so two nodes never re-create the same fragment.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mailmesh_core::drive::placement::{chunk_seed, place_chunk};
use mailmesh_core::drive::{FileDecoder, FragmentId};
use mailmesh_core::identity::NodeId;

use super::DriveNet;
use crate::drive::DriveError;
use crate::sync::lock;

impl DriveNet {
    /// Deletes the fragments no record names that are older than the sweep
    /// grace ([`crate::drive::Drive::sweep_unreferenced`]): without it, every
    /// add that never finished would keep its fragments here and on the
    /// members for good.
    ///
    /// Only while every member is online: a member that placed fragments
    /// here and lost its link before its record went out (a laptop leaving
    /// mid-upload) finishes the file with its own share only, under `k`;
    /// its record comes with the catalogs traded when its link is back,
    /// however long that takes, and a record made while a link is up is
    /// pushed over it. So a fragment no record here names, while every
    /// member is linked and has traded its catalog, is named by none of
    /// theirs either. "Traded" is told by time: every member's link must
    /// have been up for the settle time (ten minutes; the catalog goes out
    /// at once, in seconds even for a drive of years) and no catalog be
    /// being merged. A device that never comes back holds sweeping up until
    /// it is removed.
    pub async fn sweep(&self) {
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let away = self.members().into_iter().filter(|m| *m != self.me && !online.contains(m)).count();
        if away > 0 {
            return tracing::debug!(away, "not sweeping unnamed fragments while members are away");
        }
        let now = crate::clock::now_ms();
        let settle = u64::try_from(self.settings.sweep_settle.as_millis()).unwrap_or(u64::MAX);
        let settling = {
            let known = lock(&self.known);
            let since = |m: &NodeId| known.linked_since.get(m).copied();
            online.iter().filter(|m| since(m).is_none_or(|at| now.saturating_sub(at) < settle)).count()
        };
        if settling > 0 || self.merging.load(Ordering::SeqCst) > 0 {
            return tracing::debug!(settling, "not sweeping unnamed fragments while catalogs may still come");
        }
        let Some(cutoff) = crate::clock::now().checked_sub(self.settings.sweep_grace) else { return };
        match self.on_disk(move |drive| drive.sweep_unreferenced(cutoff)).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted fragments no file names, left by adds that never finished"),
            Err(e) => tracing::warn!("cannot sweep fragments no file names: {e}"),
        }
    }

    /// Re-verifies every fragment stored here (rebuilding damaged ones from
    /// the other nodes), then re-creates fragments lost with nodes gone
    /// longer than the grace period.
    pub async fn scrub_and_repair(&self) {
        match self.on_disk(|drive| drive.scrub().map_err(DriveError::Open)).await {
            Ok(damaged) if !damaged.is_empty() => {
                tracing::warn!(count = damaged.len(), "scrub found damaged fragments; rebuilding them");
                self.repair(Some(damaged.into_iter().collect())).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("scrub failed: {e}"),
        }
        self.repair(None).await;
    }

    /// Repairs fragments. With `only`, just those ids, back onto this node
    /// (they rotted here). Without, every fragment no online node holds.
    async fn repair(&self, only: Option<HashSet<FragmentId>>) {
        let Some(membership) = self.membership() else { return };
        let me = self.me;
        let online: HashSet<NodeId> = self.links.online_members().into_iter().chain([me]).collect();
        if only.is_none() && online.iter().min() != Some(&me) {
            return;
        }
        let candidates = self.placement_candidates(&membership);
        let records = self.on_disk(|drive| Ok(drive.index().files()?)).await.unwrap_or_default();
        let mut repaired: HashMap<NodeId, Vec<FragmentId>> = HashMap::new();
        for record in records {
            let file = record.id.clone();
            let Ok((_, manifest)) = self.on_disk(move |drive| drive.record(&file)).await else { continue };
            let Ok(keys) = manifest.open(&membership.key) else { continue };
            let decoder = FileDecoder::new(manifest.params, keys, manifest.size, manifest.fragment_ids.clone());
            let Ok(decoder) = decoder.map(Arc::new) else { continue };
            for chunk in 0..manifest.chunk_count() {
                let ids = manifest.chunk_ids(chunk).to_vec();
                let wanted = ids.clone();
                let local = self.on_disk(move |drive| Ok(wanted.iter().map(|id| drive.store().get(id).ok()).collect()));
                let Ok(mut fragments): Result<Vec<Option<Vec<u8>>>, _> = local.await else { continue };
                let here: Vec<bool> = fragments.iter().map(Option::is_some).collect();
                let targets = place_chunk(&chunk_seed(&ids), chunk, ids.len(), &candidates);
                let needs = self.plan_chunk(&ids, &here, &targets, only.as_ref(), &online);
                if needs.is_empty() {
                    continue;
                }
                let mut present = here.iter().filter(|h| **h).count();
                for (slot, id) in fragments.iter_mut().zip(&ids) {
                    if present >= manifest.params.k() {
                        break;
                    }
                    if slot.is_none() {
                        *slot = self.fetch_fragment(*id).await;
                        present += usize::from(slot.is_some());
                    }
                }
                // Decoding and re-coding a chunk is CPU work: off the async workers.
                let decoder = decoder.clone();
                let rebuilt = tokio::task::spawn_blocking(move || {
                    let refs: Vec<Option<&[u8]>> = fragments.iter().map(|f| f.as_deref()).collect();
                    decoder.rebuild_chunk(chunk, &refs).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                let rebuilt = match rebuilt {
                    Ok(rebuilt) => rebuilt,
                    Err(e) => {
                        tracing::warn!(file = %record.id, chunk, "cannot repair a chunk yet: {e}");
                        continue;
                    }
                };
                for (shard, home) in needs {
                    let id = ids[shard];
                    let bytes = rebuilt.fragment(shard).to_vec();
                    let stored = if home == me {
                        self.on_disk(move |drive| Ok(drive.store().put(&id, &bytes)?)).await.is_ok()
                    } else {
                        self.put_fragment(&home, id, bytes).await
                    };
                    if stored {
                        lock(&self.known).held(id, home);
                        repaired.entry(home).or_default().push(id);
                    }
                }
            }
        }
        if repaired.is_empty() {
            return;
        }
        let count: usize = repaired.values().map(Vec::len).sum();
        tracing::info!(count, "re-created lost fragments");
        let peers = self.links.online_members();
        for (holder, ids) in repaired {
            self.send_inventory(&peers, holder, &ids).await;
        }
        self.changed();
    }

    /// Which of one chunk's fragments to re-create, and on which node.
    fn plan_chunk(
        &self,
        ids: &[FragmentId],
        here: &[bool],
        targets: &[NodeId],
        only: Option<&HashSet<FragmentId>>,
        online: &HashSet<NodeId>,
    ) -> Vec<(usize, NodeId)> {
        let mut needs = Vec::new();
        for (shard, (id, target)) in ids.iter().zip(targets).enumerate() {
            if let Some(only) = only {
                if only.contains(id) && !here[shard] {
                    needs.push((shard, self.me));
                }
                continue;
            }
            if here[shard] || self.held_online(id, online) {
                continue;
            }
            let gone_since = self.links.last_seen(target).unwrap_or(self.settings.started_at_ms);
            let home = if online.contains(target) {
                *target
            } else if crate::clock::now_ms().saturating_sub(gone_since) >= self.settings.repair_grace_ms {
                self.least_loaded(ids, here, online)
            } else {
                continue;
            };
            needs.push((shard, home));
        }
        needs
    }

    /// The live node holding fewest of these fragments (ties: smallest id).
    fn least_loaded(&self, ids: &[FragmentId], here: &[bool], online: &HashSet<NodeId>) -> NodeId {
        let known = lock(&self.known);
        let load = |node: &NodeId| {
            ids.iter()
                .zip(here)
                .filter(|(id, here)| {
                    known.holders.get(id).is_some_and(|h| h.contains(node)) || (*node == self.me && **here)
                })
                .count()
        };
        online.iter().min_by_key(|node| (load(node), **node)).copied().unwrap_or(self.me)
    }
}
