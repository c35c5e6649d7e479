//! The drive across the owner's nodes, over the engines' LAN links.
//!
//! - **Catalog**: every file record (the sealed manifest and its metadata)
//!   and every deletion goes to every member: pushed when it happens, and
//!   the whole catalog is traded whenever a member link comes up, so a node
//!   that was off catches up. Records are accepted only if their manifest
//!   opens with the network key.
//! - **Placement**: after a file is added, each chunk's `k + m` fragments go
//!   to the nodes `place_chunk` picks among the members (two per node with
//!   three nodes and 4 + 2 coding). A fragment is deleted here only after
//!   its new holder acknowledged storing it; a target that is offline
//!   leaves the fragment here.
//! - **Fetch**: a download takes what is stored here and asks online members
//!   for the rest, chunk by chunk, only as many as needed.
//! - **Inventory**: members tell each other which fragments they hold, so
//!   health counts fragments on online nodes.
//! - **Space**: members tell each other their free disk space when a link
//!   comes up and at every maintenance pass; placement weighs nodes by it
//!   (`candidates_by_space`) and gives a nearly full node nothing new.
//!
//! Messages are [`DriveMessage`]s (`mailmesh_core::drive::net`: versioned,
//! fuzzed) in `Data` frames on the `drive.msg` topic; requests carry a
//! 32-bit id the answer repeats.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mailmesh_core::drive::net::{DriveMessage, TOPIC};
use mailmesh_core::drive::placement::{candidates_by_space, place_chunk, Candidate};
use mailmesh_core::drive::{FileId, FragmentId, NetworkKey};
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use tokio::sync::oneshot;

use super::Engine;
use crate::drive::index::FileRecord;
use crate::sync::lock;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Fragment ids per inventory message (32 bytes each, under a frame).
const INVENTORY_BATCH: usize = 7000;
/// Bytes of records per catalog message (a larger catalog goes in several).
const CATALOG_BATCH: usize = 200_000;
/// Deletions per catalog message (40 bytes each).
const DELETIONS_BATCH: usize = 5000;

#[derive(Debug, Default)]
struct Catalog {
    files: Vec<FileRecord>,
    deleted: Vec<(FileId, u64)>,
}

/// Outstanding requests and what is known of other nodes' fragments.
#[derive(Default)]
pub struct DriveNet {
    next: AtomicU32,
    pending: Mutex<HashMap<u32, oneshot::Sender<DriveMessage>>>,
    holders: Mutex<HashMap<FragmentId, HashSet<NodeId>>>,
    /// Free bytes each member last reported.
    space: Mutex<HashMap<NodeId, u64>>,
}

impl Engine {
    /// Handles one drive message from a member (each in a task of its
    /// own, so a slow disk never holds up the link it came on).
    pub async fn on_drive_message(&self, from: NodeId, topic: &str, payload: Vec<u8>) {
        if topic != TOPIC {
            return tracing::debug!(topic, "unknown drive topic");
        }
        let message = match DriveMessage::decode(&payload) {
            Ok(message) => message,
            Err(e) => return tracing::info!(%from, "ignoring a drive message: {e}"),
        };
        match message {
            DriveMessage::Catalog { records, deleted } => {
                let files = records.iter().filter_map(|r| serde_json::from_slice::<FileRecord>(r).ok()).collect();
                self.merge_catalog(Catalog { files, deleted }).await;
            }
            // A member says what it holds, or where it just placed fragments.
            DriveMessage::Inventory { holder, fragments } => {
                let mut holders = lock(&self.drive_net.holders);
                for id in fragments {
                    holders.entry(id).or_default().insert(holder);
                }
            }
            DriveMessage::Put { request, fragment, bytes } => {
                let stored = self.store_fragment(fragment, bytes).await;
                self.send_drive(&from, &DriveMessage::Stored { request, stored }).await;
            }
            DriveMessage::Get { request, fragment } => {
                let bytes = self.read_fragment(fragment).await;
                self.send_drive(&from, &DriveMessage::Fragment { request, bytes }).await;
            }
            answer @ (DriveMessage::Stored { .. } | DriveMessage::Fragment { .. }) => {
                let waiting = answer.answers().and_then(|request| lock(&self.drive_net.pending).remove(&request));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(answer);
                }
            }
            DriveMessage::Space { free_bytes } => {
                lock(&self.drive_net.space).insert(from, free_bytes);
            }
        }
    }

    async fn send_drive(&self, peer: &NodeId, message: &DriveMessage) {
        let frame = Frame::Data { topic: TOPIC.into(), payload: message.encode() };
        let _ = self.mesh.send_to(peer, frame).await;
    }

    /// A member is (newly) reachable: trade catalogs and inventories.
    pub async fn on_member_up(&self, peer: NodeId) {
        let catalog = self
            .drive_blocking(|drive| {
                let files = drive.index().files()?;
                let deleted = drive.index().deleted()?.into_iter().map(|(id, at)| (FileId(id), at)).collect();
                Ok(Catalog { files, deleted })
            })
            .await;
        if let Ok(catalog) = catalog {
            self.send_catalog(&[peer], &catalog).await;
        }
        let inventory = self.drive_blocking(|drive| Ok(drive.store().list())).await.unwrap_or_default();
        self.send_inventory(&[peer], self.secrets.node_id(), &inventory).await;
        self.send_space(&[peer]).await;
    }

    /// Tells `peers` how much room this node's drive has.
    async fn send_space(&self, peers: &[NodeId]) {
        let Some(free_bytes) = self.drive.free_bytes() else { return };
        for peer in peers {
            self.send_drive(peer, &DriveMessage::Space { free_bytes }).await;
        }
    }

    /// The roster's members as placement candidates, weighed by the free
    /// space they reported (ours measured now); `None` outside a network.
    async fn placement_candidates(&self) -> Option<Vec<Candidate>> {
        let me = self.secrets.node_id();
        let ours = self.drive.free_bytes().unwrap_or(u64::MAX);
        let members: Vec<NodeId> = {
            let state = self.state.lock().await;
            state.enrollment.network()?.roster.members().iter().map(|e| e.node.node_id()).collect()
        };
        let space = lock(&self.drive_net.space);
        let reported: Vec<(NodeId, Option<u64>)> = members
            .into_iter()
            .map(|node| (node, if node == me { Some(ours) } else { space.get(&node).copied() }))
            .collect();
        Some(candidates_by_space(&reported, ours))
    }

    /// Tells `peers` that `holder` stores `ids`.
    async fn send_inventory(&self, peers: &[NodeId], holder: NodeId, ids: &[FragmentId]) {
        for batch in ids.chunks(INVENTORY_BATCH) {
            let message = DriveMessage::Inventory { holder, fragments: batch.to_vec() };
            for peer in peers {
                self.send_drive(peer, &message).await;
            }
        }
    }

    /// Sends a catalog in messages of at most about [`CATALOG_BATCH`] bytes.
    async fn send_catalog(&self, peers: &[NodeId], catalog: &Catalog) {
        let mut messages = Vec::new();
        let mut records: Vec<Vec<u8>> = Vec::new();
        for file in &catalog.files {
            let Ok(record) = serde_json::to_vec(file) else { continue };
            if !records.is_empty() && records.iter().map(Vec::len).sum::<usize>() + record.len() > CATALOG_BATCH {
                messages.push(DriveMessage::Catalog { records: std::mem::take(&mut records), deleted: Vec::new() });
            }
            records.push(record);
        }
        if !records.is_empty() {
            messages.push(DriveMessage::Catalog { records, deleted: Vec::new() });
        }
        for deleted in catalog.deleted.chunks(DELETIONS_BATCH) {
            messages.push(DriveMessage::Catalog { records: Vec::new(), deleted: deleted.to_vec() });
        }
        for peer in peers {
            for message in &messages {
                self.send_drive(peer, message).await;
            }
        }
    }

    async fn merge_catalog(&self, catalog: Catalog) {
        let Some(network) = self.network_key().await else { return };
        let changed = self
            .drive_blocking(move |drive| {
                let mut changed = 0;
                for (id, at) in catalog.deleted {
                    let bytes = id.0;
                    let newer = drive.index().file(&bytes)?.is_some_and(|r| r.added_ms > at);
                    if !newer && drive.index().deleted_at(&bytes)?.is_none() {
                        if drive.index().file(&bytes)?.is_some() {
                            drive.remove(&hex::encode(bytes), at)?;
                        } else {
                            drive.index().set_deleted(&bytes, Some(at))?;
                        }
                        changed += 1;
                    }
                }
                for record in catalog.files {
                    match drive.accept_record(&network, record) {
                        Ok(true) => changed += 1,
                        Ok(false) => {}
                        Err(e) => tracing::info!("ignoring a file record from a member: {e}"),
                    }
                }
                Ok(changed)
            })
            .await;
        if changed.is_ok_and(|n| n > 0) {
            self.notify(crate::api::Event::FilesChanged);
        }
    }

    async fn store_fragment(&self, id: FragmentId, bytes: Vec<u8>) -> bool {
        let stored = self.drive_blocking(move |drive| Ok(drive.store().put(&id, &bytes)?)).await;
        if let Err(e) = &stored {
            tracing::warn!(fragment = %id, "could not store a fragment for a member: {e}");
        }
        stored.is_ok()
    }

    async fn read_fragment(&self, id: FragmentId) -> Option<Vec<u8>> {
        self.drive_blocking(move |drive| Ok(drive.store().get(&id)?)).await.ok()
    }

    /// Sends a request made with `id` and waits for its answer (or gives up
    /// after [`REQUEST_TIMEOUT`]).
    async fn request(&self, peer: &NodeId, make: impl FnOnce(u32) -> DriveMessage) -> Option<DriveMessage> {
        let id = self.drive_net.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.drive_net.pending).insert(id, tx);
        let frame = Frame::Data { topic: TOPIC.into(), payload: make(id).encode() };
        let answer = match self.mesh.send_to(peer, frame).await {
            Ok(()) => tokio::time::timeout(REQUEST_TIMEOUT, rx).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        lock(&self.drive_net.pending).remove(&id);
        answer
    }

    /// Asks `peer` to store a fragment; whether it did.
    async fn put_fragment(&self, peer: &NodeId, fragment: FragmentId, bytes: Vec<u8>) -> bool {
        let answer = self.request(peer, |request| DriveMessage::Put { request, fragment, bytes }).await;
        matches!(answer, Some(DriveMessage::Stored { stored: true, .. }))
    }

    /// A fragment from whichever online member has it.
    pub async fn fetch_fragment(&self, id: FragmentId) -> Option<Vec<u8>> {
        let known: HashSet<NodeId> = lock(&self.drive_net.holders).get(&id).cloned().unwrap_or_default();
        let mut peers = self.mesh.online_members();
        // Ask those known to hold it first.
        peers.sort_by_key(|p| !known.contains(p));
        for peer in peers {
            let answer = self.request(&peer, |request| DriveMessage::Get { request, fragment: id }).await;
            if let Some(DriveMessage::Fragment { bytes: Some(bytes), .. }) = answer {
                if FragmentId::of(&bytes) == id {
                    return Some(bytes);
                }
            }
        }
        None
    }

    /// Whether an online member is known to hold a fragment.
    pub fn held_online(&self, id: &FragmentId, online: &HashSet<NodeId>) -> bool {
        lock(&self.drive_net.holders).get(id).is_some_and(|nodes| nodes.iter().any(|n| online.contains(n)))
    }

    /// Sends a new file's record to every member and its fragments to the
    /// nodes placement picks.
    pub async fn distribute(&self, file_id: &str) {
        let file = file_id.to_string();
        let Ok((record, manifest)) = self.drive_blocking(move |drive| drive.record(&file)).await else { return };
        self.send_catalog(&self.mesh.online_members(), &Catalog { files: vec![record], deleted: Vec::new() }).await;
        let me = self.secrets.node_id();
        let Some(members) = self.placement_candidates().await else { return };
        let online: HashSet<NodeId> = self.mesh.online_members().into_iter().collect();
        let shards = manifest.params.shards();
        let mut placed: HashMap<NodeId, Vec<FragmentId>> = HashMap::new();
        for chunk in 0..manifest.chunk_count() {
            let targets = place_chunk(&manifest.file_id, chunk, shards, &members);
            for (id, target) in manifest.chunk_ids(chunk).iter().zip(targets) {
                if target == me || !online.contains(&target) {
                    // Kept here (placed here, or its node is away for now).
                    placed.entry(me).or_default().push(*id);
                    continue;
                }
                let id = *id;
                let Ok(bytes) = self.drive_blocking(move |drive| Ok(drive.store().get(&id)?)).await else { continue };
                if self.put_fragment(&target, id, bytes).await {
                    lock(&self.drive_net.holders).entry(id).or_default().insert(target);
                    placed.entry(target).or_default().push(id);
                    let _ = self
                        .drive_blocking(move |drive| drive.store().remove(&id).map_err(crate::drive::DriveError::Open))
                        .await;
                } else {
                    placed.entry(me).or_default().push(id);
                }
            }
        }
        // Everyone learns where the fragments went (for health and fetches).
        let members: Vec<NodeId> = online.iter().copied().collect();
        for (holder, ids) in placed {
            self.send_inventory(&members, holder, &ids).await;
        }
        self.notify(crate::api::Event::FilesChanged);
    }

    /// Spreads a file in the background.
    pub fn spread(&self, file_id: String) {
        let Some(engine) = self.this.upgrade() else { return };
        tokio::spawn(async move { engine.distribute(&file_id).await });
    }

    /// Sends a file's record (after a rename) to every online member.
    pub async fn announce_record(&self, file_id: &str) {
        let file = file_id.to_string();
        if let Ok((record, _)) = self.drive_blocking(move |drive| drive.record(&file)).await {
            self.send_catalog(&self.mesh.online_members(), &Catalog { files: vec![record], deleted: Vec::new() }).await;
        }
    }

    /// Tells every online member a file was deleted.
    pub async fn announce_deletion(&self, file_id: &str, at_ms: u64) {
        let Ok(id) = <[u8; 32]>::try_from(hex::decode(file_id).unwrap_or_default()) else { return };
        let catalog = Catalog { files: Vec::new(), deleted: vec![(FileId(id), at_ms)] };
        self.send_catalog(&self.mesh.online_members(), &catalog).await;
    }

    /// Restores a file, fetching fragments not stored here from members.
    pub async fn restore(
        &self,
        network: NetworkKey,
        id: String,
        out: std::path::PathBuf,
    ) -> Result<crate::api::FileView, crate::drive::DriveError> {
        let handle = tokio::runtime::Handle::current();
        let engine = self.self_ref();
        self.drive_blocking(move |drive| {
            drive.get_with(&network, &id, &out, |fragment| {
                let engine = engine.upgrade()?;
                handle.block_on(engine.fetch_fragment(*fragment))
            })
        })
        .await
    }

    /// The file list with health counted over this node and online members.
    pub async fn list_files(&self) -> Result<Vec<crate::api::FileView>, crate::drive::DriveError> {
        let online: HashSet<NodeId> = self.mesh.online_members().into_iter().collect();
        let engine = self.self_ref();
        self.drive_blocking(move |drive| {
            drive.list_with(|id| engine.upgrade().is_some_and(|e| e.held_online(id, &online)))
        })
        .await
    }
}

/// How long a node may be gone before its fragments are re-created on the
/// others (`MAILMESH_REPAIR_GRACE_SECS`, default one hour).
fn repair_grace_ms() -> u64 {
    std::env::var("MAILMESH_REPAIR_GRACE_SECS").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(3600) * 1000
}

/// How often the drive is scrubbed and repaired (`MAILMESH_MAINTENANCE_SECS`,
/// default ten minutes).
fn maintenance_every() -> Duration {
    Duration::from_secs(std::env::var("MAILMESH_MAINTENANCE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600))
}

/// Scrubs and repairs the drive periodically until the engine stops.
pub async fn maintain(engine: std::sync::Arc<Engine>) {
    loop {
        tokio::select! {
            _ = engine.shutdown.cancelled() => return,
            _ = tokio::time::sleep(maintenance_every()) => {}
        }
        engine.send_space(&engine.mesh.online_members()).await;
        engine.scrub_and_repair().await;
    }
}

impl Engine {
    /// Re-verifies every fragment stored here (rebuilding damaged ones from
    /// the other nodes), then re-creates fragments lost with nodes gone
    /// longer than the grace period.
    pub async fn scrub_and_repair(&self) {
        let damaged = self.drive_blocking(|drive| drive.scrub().map_err(crate::drive::DriveError::Open)).await;
        match damaged {
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
    /// (they rotted here). Without, every fragment no online node holds,
    /// re-created on its placed node or, if that node is gone longer than
    /// the grace period, on the live node holding least of its chunk; only
    /// the online member with the smallest id does this, so two nodes never
    /// repair the same thing.
    async fn repair(&self, only: Option<HashSet<FragmentId>>) {
        let Some(network) = self.network_key().await else { return };
        let me = self.secrets.node_id();
        let online: HashSet<NodeId> = self.mesh.online_members().into_iter().chain([me]).collect();
        if only.is_none() && online.iter().min() != Some(&me) {
            return;
        }
        let Some(members) = self.placement_candidates().await else { return };
        let grace = repair_grace_ms();
        let records = self.drive_blocking(|drive| Ok(drive.index().files()?)).await.unwrap_or_default();
        let mut repaired: HashMap<NodeId, Vec<FragmentId>> = HashMap::new();
        for record in records {
            let file = record.id.clone();
            let Ok((_, manifest)) = self.drive_blocking(move |drive| drive.record(&file)).await else { continue };
            let Ok(key) = manifest.open(&network) else { continue };
            let Ok(decoder) = mailmesh_core::drive::FileDecoder::new(
                manifest.params,
                manifest.file_id,
                &key,
                manifest.size,
                manifest.fragment_ids.clone(),
            ) else {
                continue;
            };
            for chunk in 0..manifest.chunk_count() {
                let ids = manifest.chunk_ids(chunk).to_vec();
                let targets = place_chunk(&manifest.file_id, chunk, ids.len(), &members);
                let mut needs: Vec<(usize, NodeId)> = Vec::new();
                for (shard, (id, target)) in ids.iter().zip(&targets).enumerate() {
                    let here = self.drive.store().contains(id);
                    match &only {
                        Some(only) => {
                            if only.contains(id) && !here {
                                needs.push((shard, me));
                            }
                            continue;
                        }
                        None if here || self.held_online(id, &online) => continue,
                        None => {}
                    }
                    let gone_since = self.mesh.last_seen(target).unwrap_or(self.started_at * 1000);
                    let home = if online.contains(target) {
                        *target
                    } else if crate::clock::now_ms().saturating_sub(gone_since) >= grace {
                        self.least_loaded(&ids, &online)
                    } else {
                        continue;
                    };
                    needs.push((shard, home));
                }
                if needs.is_empty() {
                    continue;
                }
                let mut fragments: Vec<Option<Vec<u8>>> = Vec::with_capacity(ids.len());
                for id in &ids {
                    let local = self.drive.store().get(id).ok();
                    fragments.push(local);
                }
                let mut present = fragments.iter().filter(|f| f.is_some()).count();
                for (slot, id) in fragments.iter_mut().zip(&ids) {
                    if present >= manifest.params.k() {
                        break;
                    }
                    if slot.is_none() {
                        *slot = self.fetch_fragment(*id).await;
                        present += usize::from(slot.is_some());
                    }
                }
                let refs: Vec<Option<&[u8]>> = fragments.iter().map(|f| f.as_deref()).collect();
                let rebuilt = match decoder.rebuild_chunk(chunk, &refs) {
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
                        self.drive_blocking(move |drive| Ok(drive.store().put(&id, &bytes)?)).await.is_ok()
                    } else {
                        self.put_fragment(&home, id, bytes).await
                    };
                    if stored {
                        lock(&self.drive_net.holders).entry(id).or_default().insert(home);
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
        let peers: Vec<NodeId> = self.mesh.online_members();
        for (holder, ids) in repaired {
            self.send_inventory(&peers, holder, &ids).await;
        }
        self.notify(crate::api::Event::FilesChanged);
    }

    /// The live node holding fewest of these fragments (ties: smallest id).
    fn least_loaded(&self, ids: &[FragmentId], online: &HashSet<NodeId>) -> NodeId {
        let me = self.secrets.node_id();
        let holders = lock(&self.drive_net.holders);
        let load = |node: &NodeId| {
            ids.iter()
                .filter(|id| {
                    holders.get(id).is_some_and(|h| h.contains(node))
                        || (*node == me && self.drive.store().contains(id))
                })
                .count()
        };
        online.iter().min_by_key(|node| (load(node), **node)).copied().unwrap_or(me)
    }
}
