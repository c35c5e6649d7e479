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
//! - **Repair** ([`repair`]): scrub what is stored here, and re-create what
//!   nodes gone too long held.
//!
//! Messages are [`DriveMessage`]s (`mailmesh_core::drive::net`: versioned,
//! fuzzed) in `Data` frames on the `drive.msg` topic; requests carry a
//! 32-bit id the answer repeats.
//!
//! [`DriveNet`] is a service: it owns the outstanding requests and what it
//! knows of other nodes (private maps, locked only to read or change an
//! entry, never across an await or disk work). It reaches members through
//! [`Links`], reads the network from a [`StandingWatch`], does disk
//! work on blocking threads, and announces [`Event::FilesChanged`]. Its
//! unit tests (`tests.rs`) run three nodes over an in-memory mesh.

mod durable;
mod placing;
mod repair;

pub use placing::{BlockingPlacer, Placing};
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use mailmesh_core::drive::net::{DriveMessage, TOPIC};
use mailmesh_core::drive::placement::{candidates_by_space, chunk_seed, place_chunk, Candidate};
use mailmesh_core::drive::{FileId, FragmentId};
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::standing::{Membership, StandingWatch};
use crate::api::{Event, FileView};
use crate::drive::index::FileRecord;
use crate::drive::{Drive, DriveError};
use crate::mesh::links::Links;
use crate::sync::lock;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Fragments a restore asks members for ahead of its decoder.
const FETCHES_IN_FLIGHT: usize = 8;
/// Decoded chunks a streamed restore runs ahead of its reader.
const CHUNKS_AHEAD: usize = 4;
/// Fragments a spread keeps on their way at once (a few MiB: enough to
/// keep a gigabit link and the receiver's disk busy, bounded in memory).
const PUTS_IN_FLIGHT: usize = 16;
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

/// How the drive network behaves; the engine reads it from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// When this engine started (ms): a node never heard from counts as
    /// gone since then.
    pub started_at_ms: u64,
    /// How long a node may be gone before its fragments are re-created on
    /// the others (`MAILMESH_REPAIR_GRACE_SECS`, default one hour).
    pub repair_grace_ms: u64,
    /// How often the drive is scrubbed and repaired
    /// (`MAILMESH_MAINTENANCE_SECS`, default ten minutes).
    pub maintenance_every: Duration,
    /// How old a fragment no file names must be before maintenance deletes
    /// it (`MAILMESH_SWEEP_GRACE_SECS`, default a day): younger ones may
    /// belong to an add under way here or whose record is still coming.
    pub sweep_grace: Duration,
    /// How long every member must have been linked before a sweep
    /// (`MAILMESH_SWEEP_SETTLE_SECS`, default ten minutes): the catalog
    /// a member sends when its link comes up may name fragments here.
    pub sweep_settle: Duration,
}

impl Settings {
    pub fn from_env(started_at_ms: u64) -> Settings {
        let secs =
            |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(default);
        Settings {
            started_at_ms,
            repair_grace_ms: secs("MAILMESH_REPAIR_GRACE_SECS", 3600) * 1000,
            maintenance_every: Duration::from_secs(secs("MAILMESH_MAINTENANCE_SECS", 600)),
            sweep_grace: Duration::from_secs(secs("MAILMESH_SWEEP_GRACE_SECS", 24 * 3600)),
            sweep_settle: Duration::from_secs(secs("MAILMESH_SWEEP_SETTLE_SECS", 600)),
        }
    }
}

/// What this node knows of the others' drives.
/// A restore under way ([`DriveNet::restore_stream`]).
pub struct Restoring {
    /// The file's bytes, a chunk at a time.
    pub bytes: mpsc::Receiver<Vec<u8>>,
    /// Ends when the restore does: the file, or why it stopped.
    pub done: std::pin::Pin<Box<dyn std::future::Future<Output = Result<FileView, DriveError>> + Send>>,
}

#[derive(Default)]
struct Known {
    holders: HashMap<FragmentId, HashSet<NodeId>>,
    /// Free bytes each member last reported.
    space: HashMap<NodeId, u64>,
    /// When each member's link last came up (ms).
    linked_since: HashMap<NodeId, u64>,
}

impl Known {
    fn held(&mut self, id: FragmentId, holder: NodeId) {
        self.holders.entry(id).or_default().insert(holder);
    }
}

/// Counts a catalog merge while it runs.
struct Merging<'a>(&'a AtomicUsize);

impl Merging<'_> {
    fn start(count: &AtomicUsize) -> Merging<'_> {
        count.fetch_add(1, Ordering::SeqCst);
        Merging(count)
    }
}

impl Drop for Merging<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct DriveNet {
    me: NodeId,
    drive: Arc<Drive>,
    links: Arc<dyn Links>,
    standing: StandingWatch,
    events: broadcast::Sender<Event>,
    settings: Settings,
    next_request: AtomicU32,
    pending: Mutex<HashMap<u32, oneshot::Sender<DriveMessage>>>,
    known: Mutex<Known>,
    /// Catalog messages being merged now (a sweep waits for them).
    merging: AtomicUsize,
    group_sync: durable::GroupSync,
    /// Itself, for work that outlives a borrow (spreads, blocking restores).
    this: Weak<DriveNet>,
}

impl DriveNet {
    pub fn new(
        me: NodeId,
        drive: Arc<Drive>,
        links: Arc<dyn Links>,
        standing: StandingWatch,
        events: broadcast::Sender<Event>,
        settings: Settings,
    ) -> Arc<DriveNet> {
        Arc::new_cyclic(|this| DriveNet {
            me,
            drive,
            links,
            standing,
            events,
            settings,
            next_request: AtomicU32::new(0),
            pending: Mutex::default(),
            known: Mutex::default(),
            merging: AtomicUsize::new(0),
            group_sync: durable::GroupSync::default(),
            this: this.clone(),
        })
    }

    pub fn drive(&self) -> &Arc<Drive> {
        &self.drive
    }

    /// Runs disk work on a blocking thread.
    pub async fn on_disk<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Drive) -> Result<T, DriveError> + Send + 'static,
    ) -> Result<T, DriveError> {
        let drive = self.drive.clone();
        tokio::task::spawn_blocking(move || op(&drive))
            .await
            .unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))
    }

    fn membership(&self) -> Option<Membership> {
        self.standing.borrow().network.clone()
    }

    /// The network's members (none outside a network).
    pub fn members(&self) -> Vec<NodeId> {
        self.membership().map(|m| m.members).unwrap_or_default()
    }

    /// Whether this node is in a network (and so can seal files).
    pub fn in_network(&self) -> bool {
        self.standing.borrow().network.is_some()
    }

    pub fn network_key(&self) -> Option<mailmesh_core::drive::NetworkKey> {
        self.standing.borrow().network.as_ref().map(|m| m.key.clone())
    }

    fn changed(&self) {
        let _ = self.events.send(Event::FilesChanged);
    }

    /// Handles one drive message from a member (each in a task of its
    /// own, so a slow disk never holds up the link it came on).
    pub async fn on_message(&self, from: NodeId, topic: &str, payload: Vec<u8>) {
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
                let mut known = lock(&self.known);
                for id in fragments {
                    known.held(id, holder);
                }
            }
            DriveMessage::Put { request, fragment, bytes } => {
                let stored = self.store_fragment(fragment, bytes).await;
                self.send(&from, &DriveMessage::Stored { request, stored }).await;
            }
            DriveMessage::Get { request, fragment } => {
                let bytes = self.on_disk(move |drive| Ok(drive.store().get(&fragment)?)).await.ok();
                self.send(&from, &DriveMessage::Fragment { request, bytes }).await;
            }
            answer @ (DriveMessage::Stored { .. } | DriveMessage::Fragment { .. }) => {
                let waiting = answer.answers().and_then(|request| lock(&self.pending).remove(&request));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(answer);
                }
            }
            DriveMessage::Space { free_bytes } => {
                lock(&self.known).space.insert(from, free_bytes);
            }
        }
    }

    async fn send(&self, peer: &NodeId, message: &DriveMessage) {
        let frame = Frame::Data { topic: TOPIC.into(), payload: message.encode() };
        let _ = self.links.send_to(peer, frame).await;
    }

    /// A member is (newly) reachable: trade catalogs and inventories.
    pub async fn on_member_up(&self, peer: NodeId) {
        lock(&self.known).linked_since.insert(peer, crate::clock::now_ms());
        let catalog = self
            .on_disk(|drive| {
                let files = drive.index().files()?;
                let deleted = drive.index().deleted()?.into_iter().map(|(id, at)| (FileId(id), at)).collect();
                Ok(Catalog { files, deleted })
            })
            .await;
        if let Ok(catalog) = catalog {
            self.send_catalog(&[peer], &catalog).await;
        }
        let inventory = self.on_disk(|drive| Ok(drive.store().list())).await.unwrap_or_default();
        self.send_inventory(&[peer], self.me, &inventory).await;
        self.send_space(&[peer]).await;
    }

    /// Tells `peers` how much room this node's drive has.
    async fn send_space(&self, peers: &[NodeId]) {
        let Some(free_bytes) = self.drive.free_bytes() else { return };
        for peer in peers {
            self.send(peer, &DriveMessage::Space { free_bytes }).await;
        }
    }

    /// The roster's members as placement candidates, weighed by the free
    /// space they reported (ours measured now).
    fn placement_candidates(&self, membership: &Membership) -> Vec<Candidate> {
        let ours = self.drive.free_bytes().unwrap_or(u64::MAX);
        let known = lock(&self.known);
        let reported: Vec<(NodeId, Option<u64>)> = membership
            .members
            .iter()
            .map(|node| (*node, if *node == self.me { Some(ours) } else { known.space.get(node).copied() }))
            .collect();
        candidates_by_space(&reported, ours)
    }

    /// Tells `peers` that `holder` stores `ids`.
    async fn send_inventory(&self, peers: &[NodeId], holder: NodeId, ids: &[FragmentId]) {
        for batch in ids.chunks(INVENTORY_BATCH) {
            let message = DriveMessage::Inventory { holder, fragments: batch.to_vec() };
            for peer in peers {
                self.send(peer, &message).await;
            }
        }
    }

    /// Sends a catalog in messages of at most about [`CATALOG_BATCH`] bytes.
    async fn send_catalog(&self, peers: &[NodeId], catalog: &Catalog) {
        let mut messages = Vec::new();
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        for file in &catalog.files {
            let Ok(record) = serde_json::to_vec(file) else { continue };
            if !records.is_empty() && batch_bytes + record.len() > CATALOG_BATCH {
                messages.push(DriveMessage::Catalog { records: std::mem::take(&mut records), deleted: Vec::new() });
                batch_bytes = 0;
            }
            batch_bytes += record.len();
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
                self.send(peer, message).await;
            }
        }
    }

    async fn merge_catalog(&self, catalog: Catalog) {
        let Some(membership) = self.membership() else { return };
        let _counted = Merging::start(&self.merging);
        let network = membership.key;
        let changed = self
            .on_disk(move |drive| {
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
            self.changed();
        }
    }

    /// Stores a fragment a member handed over, durably (see [`durable`]).
    async fn store_fragment(&self, id: FragmentId, bytes: Vec<u8>) -> bool {
        let written = self.on_disk(move |drive| Ok(drive.store().put_checked_unsynced(&id, &bytes)?)).await;
        let stored = match written {
            Ok(()) => {
                let sync = || self.on_disk(|drive| drive.store().sync().map_err(DriveError::Open));
                self.group_sync.durable(sync).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &stored {
            tracing::warn!(fragment = %id, "could not store a fragment for a member: {e}");
        }
        stored.is_ok()
    }

    /// Sends a request made with `id` and waits for its answer (or gives up
    /// after [`REQUEST_TIMEOUT`]).
    async fn request(&self, peer: &NodeId, make: impl FnOnce(u32) -> DriveMessage) -> Option<DriveMessage> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let frame = Frame::Data { topic: TOPIC.into(), payload: make(id).encode() };
        let answer = match self.links.send_to(peer, frame).await {
            Ok(()) => tokio::time::timeout(REQUEST_TIMEOUT, rx).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        lock(&self.pending).remove(&id);
        answer
    }

    /// Asks `peer` to store a fragment; whether it did.
    async fn put_fragment(&self, peer: &NodeId, fragment: FragmentId, bytes: Vec<u8>) -> bool {
        let answer = self.request(peer, |request| DriveMessage::Put { request, fragment, bytes }).await;
        matches!(answer, Some(DriveMessage::Stored { stored: true, .. }))
    }

    /// A fragment from whichever online member has it.
    pub async fn fetch_fragment(&self, id: FragmentId) -> Option<Vec<u8>> {
        let known: HashSet<NodeId> = lock(&self.known).holders.get(&id).cloned().unwrap_or_default();
        let mut peers = self.links.online_members();
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
    fn held_online(&self, id: &FragmentId, online: &HashSet<NodeId>) -> bool {
        lock(&self.known).holders.get(id).is_some_and(|nodes| nodes.iter().any(|n| online.contains(n)))
    }

    /// Sends a new file's record to every member and its fragments to the
    /// nodes placement picks, [`PUTS_IN_FLIGHT`] at a time: one put waiting
    /// for its answer before the next is sent would leave the link idle for
    /// a round trip and the receiver's disk write of every fragment.
    pub async fn distribute(&self, file_id: &str) {
        let file = file_id.to_string();
        let Ok((record, manifest)) = self.on_disk(move |drive| drive.record(&file)).await else { return };
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let peers: Vec<NodeId> = online.iter().copied().collect();
        self.send_catalog(&peers, &Catalog { files: vec![record], deleted: Vec::new() }).await;
        let Some(membership) = self.membership() else { return };
        let candidates = self.placement_candidates(&membership);
        let shards = manifest.params.shards();
        let ids = manifest.fragment_ids.clone();
        let Ok(here) = self
            .on_disk(move |drive| Ok(ids.into_iter().filter(|id| drive.store().contains(id)).collect::<HashSet<_>>()))
            .await
        else {
            return;
        };
        let mut placed: HashMap<NodeId, Vec<FragmentId>> = HashMap::new();
        let mut moves = Vec::new();
        for chunk in 0..manifest.chunk_count() {
            let targets = place_chunk(&chunk_seed(manifest.chunk_ids(chunk)), chunk, shards, &candidates);
            for (id, target) in manifest.chunk_ids(chunk).iter().zip(targets) {
                if target == self.me || !online.contains(&target) {
                    // Kept here (placed here, or its node is away for now).
                    placed.entry(self.me).or_default().push(*id);
                } else if !here.contains(id) && lock(&self.known).holders.get(id).is_some_and(|n| n.contains(&target)) {
                    // Handed over while the file was coming in (Placing).
                    placed.entry(target).or_default().push(*id);
                } else {
                    moves.push((*id, target));
                }
            }
        }
        let mut moved = stream::iter(moves)
            .map(|(id, target)| async move { (id, target, self.move_fragment(id, target).await) })
            .buffer_unordered(PUTS_IN_FLIGHT);
        while let Some((id, target, done)) = moved.next().await {
            placed.entry(if done { target } else { self.me }).or_default().push(id);
        }
        // Everyone learns where the fragments went (for health and fetches).
        for (holder, ids) in placed {
            self.send_inventory(&peers, holder, &ids).await;
        }
        self.changed();
    }

    /// Hands a fragment stored here to `target`; deletes it here once the
    /// target has stored it. Whether it moved.
    async fn move_fragment(&self, id: FragmentId, target: NodeId) -> bool {
        let Ok(bytes) = self.on_disk(move |drive| Ok(drive.store().get(&id)?)).await else { return false };
        if !self.put_fragment(&target, id, bytes).await {
            return false;
        }
        lock(&self.known).held(id, target);
        let _ = self.on_disk(move |drive| drive.store().remove(&id).map_err(DriveError::Open)).await;
        true
    }

    /// Spreads a file in the background.
    pub fn spread(&self, file_id: String) {
        let Some(net) = self.this.upgrade() else { return };
        tokio::spawn(async move { net.distribute(&file_id).await });
    }

    /// Adds a file from this computer to the drive, its fragments sent to
    /// the members they are placed on as it is coded.
    pub async fn add_file(&self, source: PathBuf, name: String) -> Result<FileView, DriveError> {
        let network = self.membership().ok_or(DriveError::NoNetwork)?.key;
        let mut placer = BlockingPlacer::new(self.this.upgrade().ok_or(DriveError::NoNetwork)?);
        let now = crate::clock::now_ms();
        let file = self.on_disk(move |drive| drive.add_named(&network, &source, &name, now, &mut placer)).await?;
        self.spread(file.id.clone());
        self.changed();
        // Its health counts the fragments the members took on the way.
        Ok(self.file(file.id.clone()).await.unwrap_or(file))
    }

    /// Sends a file's record (after a rename) to every online member.
    pub async fn announce_record(&self, file_id: &str) {
        let file = file_id.to_string();
        if let Ok((record, _)) = self.on_disk(move |drive| drive.record(&file)).await {
            let catalog = Catalog { files: vec![record], deleted: Vec::new() };
            self.send_catalog(&self.links.online_members(), &catalog).await;
        }
    }

    /// Tells every online member a file was deleted.
    pub async fn announce_deletion(&self, file_id: &str, at_ms: u64) {
        let Ok(id) = <[u8; 32]>::try_from(hex::decode(file_id).unwrap_or_default()) else { return };
        let catalog = Catalog { files: Vec::new(), deleted: vec![(FileId(id), at_ms)] };
        self.send_catalog(&self.links.online_members(), &catalog).await;
    }

    /// Restores a file into `out`, fetching fragments not stored here from
    /// members.
    pub async fn restore(&self, id: String, out: PathBuf) -> Result<FileView, DriveError> {
        let network = self.membership().ok_or(DriveError::NoNetwork)?.key;
        let (_, fetch) = self.prefetch(&id, 0).await?;
        self.on_disk(move |drive| drive.get_with(&network, &id, &out, fetch)).await
    }

    /// Restores a file from byte `from`, its bytes coming out of
    /// [`Restoring::bytes`] chunk by chunk while later chunks are restored
    /// (at most [`CHUNKS_AHEAD`] ahead of the reader). The file's listing
    /// comes first; a restore that fails on the way ends `done` with why.
    pub async fn restore_stream(&self, id: String, from: u64) -> Result<(FileView, Restoring), DriveError> {
        let network = self.membership().ok_or(DriveError::NoNetwork)?.key;
        let (file, fetch) = self.prefetch(&id, from).await?;
        let (sender, bytes) = mpsc::channel(CHUNKS_AHEAD);
        let drive = self.drive.clone();
        let restoring = tokio::task::spawn_blocking(move || {
            drive.restore_from(&network, &id, from, fetch, |plain| {
                sender.blocking_send(plain.to_vec()).map_err(|_| DriveError::Output {
                    path: "the download".into(),
                    source: std::io::ErrorKind::BrokenPipe.into(),
                })
            })
        });
        let done = async move {
            restoring.await.unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))
        };
        Ok((file, Restoring { bytes, done: Box::pin(done) }))
    }

    /// The file a restore from byte `from` gives, and the `fetch` its
    /// decoder asks members through: the fragments it will lack are asked
    /// for ahead, [`FETCHES_IN_FLIGHT`] at a time, in the order it will
    /// want them, so the link and the members' disks work while it
    /// decodes. A fragment it wants out of that order is asked for then.
    async fn prefetch(
        &self,
        id: &str,
        from: u64,
    ) -> Result<(FileView, impl FnMut(&FragmentId) -> Option<Vec<u8>> + Send + 'static), DriveError> {
        let file = id.to_string();
        let (view, lacking) = self.on_disk(move |drive| drive.restore_plan(&file, from)).await?;
        if let Some(first) = lacking.first().filter(|_| self.links.online_members().is_empty()) {
            // Nobody to ask: say so now rather than part way through.
            let (chunk, present) = (first.chunk, first.present);
            return Err(DriveError::Unavailable { chunk, present, needed: present + first.needed });
        }
        let wanted: Vec<FragmentId> =
            lacking.into_iter().flat_map(|chunk| chunk.absent.into_iter().take(chunk.needed)).collect();
        let planned: HashSet<FragmentId> = wanted.iter().copied().collect();
        let (sender, mut fetched) = mpsc::channel(FETCHES_IN_FLIGHT);
        let net = self.this.clone();
        tokio::spawn(async move {
            let mut fetches = stream::iter(wanted)
                .map(|id| {
                    let net = net.clone();
                    async move { (id, async { net.upgrade()?.fetch_fragment(id).await }.await) }
                })
                .buffered(FETCHES_IN_FLIGHT);
            while let Some(fetch) = fetches.next().await {
                if sender.send(fetch).await.is_err() {
                    return; // the restore ended
                }
            }
        });
        let handle = tokio::runtime::Handle::current();
        let net = self.this.clone();
        let fetch = move |id: &FragmentId| {
            if planned.contains(id) {
                // Fetched in the order asked; one passed over is not wanted.
                while let Some((fetched_id, bytes)) = fetched.blocking_recv() {
                    if fetched_id == *id {
                        return bytes;
                    }
                }
            }
            handle.block_on(net.upgrade()?.fetch_fragment(*id))
        };
        Ok((view, fetch))
    }

    /// The file list with health counted over this node and online members.
    pub async fn list_files(&self) -> Result<Vec<FileView>, DriveError> {
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let net = self.this.clone();
        self.on_disk(move |drive| drive.list_with(|id| net.upgrade().is_some_and(|n| n.held_online(id, &online)))).await
    }

    /// One file, its health counted over this node and online members.
    pub async fn file(&self, id: String) -> Result<FileView, DriveError> {
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let net = self.this.clone();
        self.on_disk(move |drive| drive.file_with(&id, |f| net.upgrade().is_some_and(|n| n.held_online(f, &online))))
            .await
    }

    /// A page of the files `query` finds, and how many it finds in all.
    pub async fn search_files(&self, query: crate::api::FileQuery) -> Result<(Vec<FileView>, usize), DriveError> {
        let online: HashSet<NodeId> = self.links.online_members().into_iter().collect();
        let net = self.this.clone();
        self.on_disk(move |drive| drive.search(&query, |id| net.upgrade().is_some_and(|n| n.held_online(id, &online))))
            .await
    }

    /// Tells members our free space, then scrubs, repairs and sweeps,
    /// periodically until `stop`.
    pub async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.maintenance_every) => {}
            }
            self.send_space(&self.links.online_members()).await;
            self.scrub_and_repair().await;
            self.sweep().await;
        }
    }
}
