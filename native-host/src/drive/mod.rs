//! The drive on this node: files in, encrypted fragments on disk, files out.
//!
//! ```text
//! add:  bytes ─▶ FileEncoder::per_chunk (wasm-core: each chunk keyed by
//!       its own bytes, sealed, coded) ─▶ fragments ─▶ store; at the end the
//!       content hash ─▶ file id ─▶ sealed manifest ─▶ index
//! get:  index ─▶ manifest ─▶ open keys ─▶ per chunk: any k verified
//!       fragments ─▶ FileDecoder ─▶ temp file ─▶ hash check ─▶ rename
//! ```
//!
//! Memory stays bounded by a chunk or two whatever the file size: both
//! stream, in one pass. The index record is written last, so a file
//! interrupted mid-upload is simply absent and can be added again;
//! fragments it left behind are swept once a day old.
//!
//! A file whose bytes come from elsewhere (a browser page, over the
//! engine's socket) comes in through `begin_upload` → `Upload::push`
//! (which codes the chunks the bytes complete) + `store_fragments` per
//! chunk → `finish_upload`, which names it by the content it got. Spreading fragments over
//! the owner's nodes is the engine's job (`engine/drive_net/`); this module
//! is one node's disk.

pub mod attachments;
mod batch;
mod direct_io;
pub mod index;
mod search;
pub mod store;

pub use batch::Batch;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mailmesh_core::drive::{
    file_id_of, CodingParams, ContentHasher, EncodedChunk, FileDecoder, FileEncoder, FileKeys, FragmentId, Manifest,
    ManifestFields, NetworkKey,
};
use thiserror::Error;

use self::index::{FileRecord, Index, IndexError, RECORD_VERSION};
use self::store::{FragmentStore, StoreError};
use crate::api::{FileView, Health, Origin};
use crate::home::NodeHome;

/// How much is read from a source at a time.
const READ_BLOCK: usize = 1024 * 1024;

#[derive(Debug, Error)]
pub enum DriveError {
    #[error("no file with id {0}")]
    NotFound(String),
    #[error("{0} is not a file id")]
    BadId(String),
    #[error("{0} is the start of several file ids; give more of it")]
    Ambiguous(String),
    #[error("a file name cannot be empty")]
    BadName,
    #[error("this node is not in a network yet, so it cannot store files")]
    NoNetwork,
    #[error("cannot read {path}: {source}")]
    Source { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Output { path: String, source: io::Error },
    #[error("the file cannot be restored: chunk {chunk} has {present} of the {needed} fragments it needs")]
    Unavailable { chunk: u64, present: usize, needed: usize },
    #[error("the file changed while it was being added; try again")]
    Changed,
    #[error(
        "{0} is not a regular file (a folder, a pipe or a device); save what you want to add to a file and add that"
    )]
    NotAFile(String),
    #[error("the upload skipped or repeated bytes: bytes from {offset} arrived where {expected} was expected next")]
    UploadGap { offset: u64, expected: u64 },
    #[error(transparent)]
    Core(#[from] mailmesh_core::drive::DriveError),
    #[error(transparent)]
    Manifest(#[from] mailmesh_core::drive::ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("the drive directory cannot be opened: {0}")]
    Open(io::Error),
}

/// A file whose bytes arrive in order from elsewhere, coded as they come.
pub struct Upload {
    encoder: FileEncoder,
    name: String,
    size: u64,
    pub params: CodingParams,
}

impl Upload {
    /// Takes the file's bytes from `offset`, which must be where the bytes
    /// before ended, and codes the chunks they complete (in order; the first
    /// call for an empty file, with no bytes, returns its only chunk).
    pub fn push(&mut self, offset: u64, bytes: &[u8]) -> Result<Vec<EncodedChunk>, DriveError> {
        let expected = self.encoder.fed_bytes();
        if offset != expected {
            return Err(DriveError::UploadGap { offset, expected });
        }
        self.encoder.push(bytes)?;
        Ok(std::iter::from_fn(|| self.encoder.poll_chunk()).collect())
    }

    /// Bytes taken so far.
    pub fn received_bytes(&self) -> u64 {
        self.encoder.fed_bytes()
    }

    pub fn is_complete(&self) -> bool {
        self.encoder.fed_bytes() == self.size
    }
}

/// Where the fragments of a file being added go. The drive asks for each
/// chunk as it is coded and stores the share handed back; the engine's
/// placer sends the rest to the members they are placed on.
pub trait Placer {
    /// Chunk `chunk.index` of the file (`shards` fragments a chunk): the
    /// fragments to store here.
    fn place(&mut self, shards: usize, chunk: EncodedChunk) -> Result<Vec<(FragmentId, Bytes)>, DriveError>;

    /// Returns once every fragment handed on is stored somewhere, before
    /// the file's record is written.
    fn finish(&mut self) -> Result<(), DriveError>;
}

/// A coded chunk's fragments, each a view of the chunk's one buffer.
pub fn fragments_of(chunk: EncodedChunk) -> impl Iterator<Item = (FragmentId, Bytes)> {
    let shard_len = chunk.shard_len.max(1);
    let bytes = Bytes::from(chunk.bytes);
    chunk.ids.into_iter().enumerate().map(move |(i, id)| (id, bytes.slice(i * shard_len..(i + 1) * shard_len)))
}

/// Keeps every fragment here.
pub struct KeepHere;

impl Placer for KeepHere {
    fn place(&mut self, _: usize, chunk: EncodedChunk) -> Result<Vec<(FragmentId, Bytes)>, DriveError> {
        Ok(fragments_of(chunk).collect())
    }

    fn finish(&mut self) -> Result<(), DriveError> {
        Ok(())
    }
}

/// A chunk a restore cannot decode from this node's fragments alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacking {
    pub chunk: u64,
    /// How many of its fragments are stored here.
    pub present: usize,
    /// Its fragments not stored here, in shard order.
    pub absent: Vec<FragmentId>,
    /// How many of them it needs (k minus those stored here).
    pub needed: usize,
}

pub struct Drive {
    temp: PathBuf,
    store: FragmentStore,
    index: Index,
    params: CodingParams,
    /// Tests stop a rewrap after this many records, as a kill would.
    #[cfg(test)]
    pub rewrap_stops_after: std::sync::atomic::AtomicUsize,
}

impl Drive {
    pub fn open(home: &NodeHome) -> Result<Drive, DriveError> {
        let dir = home.root().join("drive");
        fs::create_dir_all(&dir).map_err(DriveError::Open)?;
        let temp = dir.join("tmp");
        // Left over from a run that was killed: never a complete file.
        let _ = fs::remove_dir_all(&temp);
        fs::create_dir_all(&temp).map_err(DriveError::Open)?;
        Ok(Drive {
            temp,
            store: FragmentStore::open(dir.join("fragments")).map_err(DriveError::Open)?,
            index: Index::open(&dir.join("index.redb"))?,
            params: CodingParams::default(),
            #[cfg(test)]
            rewrap_stops_after: usize::MAX.into(),
        })
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn store(&self) -> &FragmentStore {
        &self.store
    }

    /// Adds a file from disk.
    pub fn add_path(&self, network: &NetworkKey, path: &Path, now_ms: u64) -> Result<FileView, DriveError> {
        self.add_named(network, path, &name_of(path), now_ms, &mut KeepHere)
    }

    /// Adds a file from disk under another name (an upload kept in a temp file).
    pub fn add_named(
        &self,
        network: &NetworkKey,
        path: &Path,
        name: &str,
        now_ms: u64,
        placer: &mut dyn Placer,
    ) -> Result<FileView, DriveError> {
        let source = |source| DriveError::Source { path: path.display().to_string(), source };
        let open = || {
            let file = File::open(path).map_err(source)?;
            let metadata = file.metadata().map_err(source)?;
            // Its size is declared before its first byte is coded (it fixes
            // the chunks): a pipe's or a device's is not known.
            if !metadata.is_file() {
                return Err(DriveError::NotAFile(path.display().to_string()));
            }
            Ok((file, metadata.len()))
        };
        self.add(network, name, media_type_of(name), None, now_ms, None, placer, open)
    }

    /// Bytes free for the drive on its filesystem (for an unprivileged
    /// user), or `None` if the filesystem cannot tell.
    pub fn free_bytes(&self) -> Option<u64> {
        let stats = rustix::fs::statvfs(&self.temp).ok()?;
        Some(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// Where uploads and downloads in progress are kept (inside the home,
    /// so they never leave the node's own directory).
    pub fn temp_dir(&self) -> PathBuf {
        self.temp.clone()
    }

    /// Adds bytes already in memory (a mail attachment).
    pub fn add_bytes(
        &self,
        network: &NetworkKey,
        name: &str,
        media_type: &str,
        origin: Option<Origin>,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<FileView, DriveError> {
        if let Some(existing) = self.holding(network, None, bytes)? {
            return Ok(existing);
        }
        self.add(network, name, media_type, origin, now_ms, None, &mut KeepHere, || Ok((bytes, bytes.len() as u64)))
    }

    /// Adds bytes already in memory to `batch`: the fragments are written
    /// but not yet made durable, and the file is recorded only by
    /// [`Drive::commit`].
    #[allow(clippy::too_many_arguments)]
    pub fn add_bytes_to(
        &self,
        batch: &mut Batch,
        network: &NetworkKey,
        name: &str,
        media_type: &str,
        origin: Option<Origin>,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<FileView, DriveError> {
        if let Some(existing) = self.holding(network, Some(batch), bytes)? {
            return Ok(existing);
        }
        let open = || Ok((bytes, bytes.len() as u64));
        self.add(network, name, media_type, origin, now_ms, Some(batch), &mut KeepHere, open)
    }

    /// Makes every fragment of `batch` durable (one `syncfs`), then records
    /// its files and moves `checkpoint` in one index transaction: a crash
    /// before leaves no file recorded and the checkpoint where it was.
    pub fn commit(&self, batch: Batch, checkpoint: Option<(&str, index::Checkpoint)>) -> Result<(), DriveError> {
        if batch.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        if !batch.is_empty() {
            self.store.sync().map_err(DriveError::Open)?;
        }
        self.index.commit_batch(&batch.into_records(), checkpoint)?;
        Ok(())
    }

    /// Adds a file in one pass: each chunk is sealed (under its own key),
    /// coded and handed to `placer` as its bytes are read; the file's id,
    /// from its content hash, is known at the end, where an add of content
    /// the drive (or `batch`) already has gives the file already there.
    #[allow(clippy::too_many_arguments)]
    fn add<R: Read>(
        &self,
        network: &NetworkKey,
        name: &str,
        media_type: &str,
        origin: Option<Origin>,
        now_ms: u64,
        batch: Option<&mut Batch>,
        placer: &mut dyn Placer,
        open: impl FnOnce() -> Result<(R, u64), DriveError>,
    ) -> Result<FileView, DriveError> {
        let (reader, size) = open()?;
        let mut encoder = FileEncoder::per_chunk(self.params, network, size)?;
        let shards = self.params.shards();
        let mut store_ready = |encoder: &mut FileEncoder| -> Result<(), DriveError> {
            while let Some(chunk) = encoder.poll_chunk() {
                for (id, bytes) in placer.place(shards, chunk)? {
                    self.store.put_unsynced(&id, &bytes)?;
                }
            }
            Ok(())
        };
        each_block(reader, |block| {
            encoder.push(block).map_err(changed_if_resized)?;
            store_ready(&mut encoder)
        })?;
        store_ready(&mut encoder)?;
        placer.finish()?;
        let encoded = encoder.finish().map_err(changed_if_resized)?;
        let file_id = file_id_of(network, &encoded.content_hash, &self.params);
        if let Some(existing) = batch.as_deref().and_then(|b| b.get(&file_id.0)).cloned() {
            return Ok(self.view(existing));
        }
        if let Some(existing) = self.index.file(&file_id.0)? {
            return Ok(self.view(existing));
        }
        let fields = ManifestFields {
            file_id,
            content_hash: encoded.content_hash,
            size,
            params: self.params,
            created_ms: now_ms,
            modified_ms: now_ms,
            name: name.chars().take(255).collect(),
            media_type: media_type.chars().take(127).collect(),
            fragment_ids: encoded.fragment_ids,
        };
        let record = self.seal_record(network, fields, &encoded.keys, origin, now_ms)?;
        match batch {
            Some(batch) => batch.push(file_id.0, record.clone(), size),
            None => {
                // One sync for all the fragments, before the record names them.
                self.store.sync().map_err(DriveError::Open)?;
                self.index.set_deleted(&file_id.0, None)?;
                self.index.put_file(&file_id.0, &record)?;
            }
        }
        Ok(self.view(record))
    }

    /// The file the drive (or `batch`) holds with this content, if any: an
    /// add of bytes in memory asks first, as hashing them costs little
    /// beside coding them.
    fn holding(
        &self,
        network: &NetworkKey,
        batch: Option<&Batch>,
        bytes: &[u8],
    ) -> Result<Option<FileView>, DriveError> {
        let mut hasher = ContentHasher::new();
        hasher.update(bytes);
        let file_id = file_id_of(network, &hasher.finalize(), &self.params);
        if let Some(existing) = batch.and_then(|b| b.get(&file_id.0)).cloned() {
            return Ok(Some(self.view(existing)));
        }
        Ok(self.index.file(&file_id.0)?.map(|record| self.view(record)))
    }

    /// Starts taking a file whose bytes come from elsewhere (a page),
    /// coded as they come; its id is known once they all came.
    pub fn begin_upload(&self, network: &NetworkKey, name: &str, size: u64) -> Result<Upload, DriveError> {
        let name = clean_name(name)?;
        let encoder = FileEncoder::per_chunk(self.params, network, size)?;
        Ok(Upload { encoder, name, size, params: self.params })
    }

    /// Stores some of a coded chunk's fragments (the share placed here;
    /// their ids were computed from these bytes) without syncing them:
    /// [`Drive::finish_upload`] makes them durable at once.
    pub fn store_fragments(&self, fragments: &[(FragmentId, Bytes)]) -> Result<(), DriveError> {
        for (id, bytes) in fragments {
            self.store.put_unsynced(id, bytes)?;
        }
        Ok(())
    }

    /// Records an uploaded file once all its bytes came, after making the
    /// fragments stored here durable; content the drive already has gives
    /// the file already there.
    pub fn finish_upload(&self, network: &NetworkKey, upload: Upload, now_ms: u64) -> Result<FileView, DriveError> {
        let Upload { encoder, name, size, params } = upload;
        let encoded = encoder.finish()?;
        let file_id = file_id_of(network, &encoded.content_hash, &params);
        if let Some(existing) = self.index.file(&file_id.0)? {
            return Ok(self.view(existing));
        }
        self.store.sync().map_err(DriveError::Open)?;
        let fields = ManifestFields {
            file_id,
            content_hash: encoded.content_hash,
            size,
            params,
            created_ms: now_ms,
            modified_ms: now_ms,
            media_type: media_type_of(&name).into(),
            name,
            fragment_ids: encoded.fragment_ids,
        };
        self.index.set_deleted(&file_id.0, None)?;
        self.record_new(network, fields, &encoded.keys, None, now_ms)
    }

    /// Seals the manifest of a newly stored file and writes its record,
    /// the last step of an add: until here the file does not exist.
    fn record_new(
        &self,
        network: &NetworkKey,
        fields: ManifestFields,
        keys: &FileKeys,
        origin: Option<Origin>,
        now_ms: u64,
    ) -> Result<FileView, DriveError> {
        let file_id = fields.file_id;
        let record = self.seal_record(network, fields, keys, origin, now_ms)?;
        self.index.put_file(&file_id.0, &record)?;
        Ok(self.view(record))
    }

    /// A new file's record, its manifest sealed under the network key.
    fn seal_record(
        &self,
        network: &NetworkKey,
        fields: ManifestFields,
        keys: &FileKeys,
        origin: Option<Origin>,
        now_ms: u64,
    ) -> Result<FileRecord, DriveError> {
        let (file_id, size, content) = (fields.file_id, fields.size, fields.content_hash);
        let nonce: [u8; 24] = crate::rng::bytes().map_err(|e| DriveError::Open(io::Error::other(e)))?;
        let manifest = Manifest::seal(fields, keys, network, nonce)?;
        let record = FileRecord {
            version: RECORD_VERSION,
            id: file_id.to_string(),
            name: manifest.name.clone(),
            size,
            blake3: content.to_string(),
            media_type: manifest.media_type.clone(),
            added_ms: now_ms,
            renamed_ms: 0,
            origin,
            manifest: hex::encode(manifest.encode()),
        };
        Ok(record)
    }

    pub fn list(&self) -> Result<Vec<FileView>, DriveError> {
        self.list_with(|_| false)
    }

    /// The files, with health counting fragments stored here or, per
    /// `elsewhere`, on another node that is online.
    /// One file as [`Drive::list_with`] shows it.
    pub fn file_with(&self, id: &str, elsewhere: impl Fn(&FragmentId) -> bool) -> Result<FileView, DriveError> {
        let (record, _) = self.record(id)?;
        Ok(self.view_with(record, &elsewhere))
    }

    pub fn list_with(&self, elsewhere: impl Fn(&FragmentId) -> bool) -> Result<Vec<FileView>, DriveError> {
        let mut files: Vec<FileView> = self.index.files()?.into_iter().map(|r| self.view_with(r, &elsewhere)).collect();
        files.sort_by(|a, b| b.added_ms.cmp(&a.added_ms).then_with(|| a.name.cmp(&b.name)));
        Ok(files)
    }

    /// A page of the files `query` finds, with health as in
    /// [`Drive::list_with`] (looked at for the page's files only), and how
    /// many it finds in all.
    pub fn search(
        &self,
        query: &crate::api::FileQuery,
        elsewhere: impl Fn(&FragmentId) -> bool,
    ) -> Result<(Vec<FileView>, usize), DriveError> {
        let (ids, total) = self.index.search(query)?;
        let mut files = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.index.file(&id)? {
                files.push(self.view_with(record, &elsewhere));
            }
        }
        Ok((files, total))
    }

    /// The record of a file by its id or a unique prefix of it (as
    /// `mailmesh files list` shows).
    pub fn record(&self, id: &str) -> Result<(FileRecord, Manifest), DriveError> {
        let id = id.trim().to_ascii_lowercase();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DriveError::BadId(id));
        }
        let record = if id.len() == 64 {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&id, &mut bytes).map_err(|_| DriveError::BadId(id.clone()))?;
            self.index.file(&bytes)?
        } else {
            let mut matches = self.index.files()?.into_iter().filter(|r| r.id.starts_with(&id));
            match (matches.next(), matches.next()) {
                (Some(_), Some(_)) => return Err(DriveError::Ambiguous(id)),
                (one, _) => one,
            }
        };
        let record = record.ok_or_else(|| DriveError::NotFound(id.clone()))?;
        let manifest_bytes =
            hex::decode(&record.manifest).map_err(|e| IndexError::Record(format!("manifest of {}: {e}", record.id)))?;
        let manifest = Manifest::decode(&manifest_bytes)?;
        Ok((record, manifest))
    }

    /// Restores a file into `out`, through a temp file beside it that is
    /// renamed only once every chunk decoded and the content hash matches.
    pub fn get(&self, network: &NetworkKey, id: &str, out: &Path) -> Result<FileView, DriveError> {
        self.get_with(network, id, out, |_| None)
    }

    /// Like [`Drive::get`], asking `fetch` for fragments not stored here
    /// (only as many as each chunk still needs). What `fetch` returns is
    /// checked against the fragment id before use.
    pub fn get_with(
        &self,
        network: &NetworkKey,
        id: &str,
        out: &Path,
        fetch: impl FnMut(&FragmentId) -> Option<Vec<u8>>,
    ) -> Result<FileView, DriveError> {
        let output_error = |source| DriveError::Output { path: out.display().to_string(), source };
        // A temp file of its own (random name, created exclusively): a link
        // planted in the output folder is never followed, and two restores
        // into one folder never share a temp file. Dropped unpersisted, it
        // is deleted.
        let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut file =
            tempfile::Builder::new().prefix(".mailmesh-").suffix(".partial").tempfile_in(dir).map_err(output_error)?;
        let view = self.restore_from(network, id, 0, fetch, |plain| file.write_all(plain).map_err(output_error))?;
        file.as_file().sync_all().map_err(output_error)?;
        file.persist(out).map_err(|e| output_error(e.error))?;
        crate::home::sync_dir(dir).map_err(output_error)?;
        Ok(view)
    }

    /// Restores a file from byte `from` to its end, handing `write` each
    /// chunk's bytes as soon as it is decoded, so a download can stream
    /// while later chunks are still restored. Every chunk is authenticated
    /// on its own (its seal binds the file, its index and whether it is the
    /// last), so a byte given out is a byte of this file; a restore from
    /// the start also checks the content hash at the end.
    pub fn restore_from(
        &self,
        network: &NetworkKey,
        id: &str,
        from: u64,
        mut fetch: impl FnMut(&FragmentId) -> Option<Vec<u8>>,
        mut write: impl FnMut(&[u8]) -> Result<(), DriveError>,
    ) -> Result<FileView, DriveError> {
        let (record, manifest) = self.record(id)?;
        let keys = manifest.open(network)?;
        let decoder = FileDecoder::new(manifest.params, keys, manifest.size, manifest.fragment_ids.clone())?;
        let chunk_size = u64::from(manifest.params.chunk_size());
        let k = manifest.params.k();
        let mut hasher = (from == 0).then(ContentHasher::new);
        for chunk in from / chunk_size..decoder.chunk_count() {
            let ids = decoder.chunk_ids(chunk)?;
            let mut fragments: Vec<Option<Vec<u8>>> = ids.iter().map(|id| self.store.get(id).ok()).collect();
            let mut present = fragments.iter().filter(|f| f.is_some()).count();
            for (slot, id) in fragments.iter_mut().zip(ids) {
                if present >= k {
                    break;
                }
                if slot.is_none() {
                    *slot = fetch(id).filter(|bytes| FragmentId::of(bytes) == *id);
                    present += usize::from(slot.is_some());
                }
            }
            if present < k {
                return Err(DriveError::Unavailable { chunk, present, needed: k });
            }
            let refs: Vec<Option<&[u8]>> = fragments.iter().map(|f| f.as_deref()).collect();
            let plain = decoder.decode_chunk(chunk, &refs)?;
            if let Some(hasher) = &mut hasher {
                hasher.update(&plain);
            }
            let skip = usize::try_from(from.saturating_sub(chunk * chunk_size)).unwrap_or(usize::MAX).min(plain.len());
            write(&plain[skip..])?;
        }
        if hasher.is_some_and(|hasher| hasher.finalize() != manifest.content_hash) {
            return Err(DriveError::Changed);
        }
        Ok(self.view(record))
    }

    /// The file a restore from byte `from` gives, and what it lacks here,
    /// chunk by chunk in the order [`Drive::restore_from`] asks for it: the
    /// fragments not stored here, in shard order, and how many of them the
    /// chunk needs.
    pub fn restore_plan(&self, id: &str, from: u64) -> Result<(FileView, Vec<Lacking>), DriveError> {
        let (record, manifest) = self.record(id)?;
        let chunk_size = u64::from(manifest.params.chunk_size());
        let k = manifest.params.k();
        let lacking = (from / chunk_size..manifest.chunk_count())
            .filter_map(|chunk| {
                let ids = manifest.chunk_ids(chunk);
                let absent: Vec<FragmentId> = ids.iter().filter(|id| !self.store.contains(id)).copied().collect();
                let present = ids.len() - absent.len();
                let needed = k.saturating_sub(present);
                (needed > 0).then_some(Lacking { chunk, present, absent, needed })
            })
            .collect();
        Ok((self.view(record), lacking))
    }

    /// Takes a file record another member sent, unless it is known or was
    /// deleted here. The manifest must decode; it is opened (proving it was
    /// made in this network) before anything is read from it.
    pub fn accept_record(&self, network: &NetworkKey, record: FileRecord) -> Result<bool, DriveError> {
        let bytes = hex::decode(&record.manifest).map_err(|_| DriveError::BadId(record.id.clone()))?;
        let manifest = Manifest::decode(&bytes)?;
        manifest.open(network)?;
        let id = manifest.file_id.0;
        let deleted_later = self.index.deleted_at(&id)?.is_some_and(|at| at >= record.added_ms);
        if manifest.file_id.to_string() != record.id || deleted_later {
            return Ok(false);
        }
        match self.index.file(&id)? {
            // Known: only a later rename changes anything.
            Some(mut known) if record.renamed_ms > known.renamed_ms => {
                known.name = record.name;
                known.renamed_ms = record.renamed_ms;
                self.index.put_file(&id, &known)?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                self.index.put_file(&id, &record)?;
                Ok(true)
            }
        }
    }

    /// Gives a file another name (what lists show and downloads are called;
    /// the sealed manifest keeps the name it was added under).
    pub fn rename(&self, id: &str, name: &str, now_ms: u64) -> Result<FileView, DriveError> {
        let name = clean_name(name)?;
        let (mut record, manifest) = self.record(id)?;
        record.name = name;
        record.renamed_ms = now_ms.max(record.renamed_ms + 1);
        self.index.put_file(&manifest.file_id.0, &record)?;
        Ok(self.view(record))
    }

    /// After the network key changed (a device was removed), wraps every
    /// file key again under the new key, so that what the removed device
    /// may have kept of the old key opens nothing new. Idempotent: records
    /// already under the new key are left alone, so an interrupted run is
    /// finished by the next. Returns how many were rewrapped.
    pub fn rewrap(&self, old: &NetworkKey, new: &NetworkKey) -> Result<usize, DriveError> {
        let mut count = 0;
        for mut record in self.index.files()? {
            #[cfg(test)]
            if count >= self.rewrap_stops_after.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(DriveError::Open(io::Error::other("stopped midway, as by a kill")));
            }
            let bytes = hex::decode(&record.manifest).map_err(|_| DriveError::BadId(record.id.clone()))?;
            let manifest = Manifest::decode(&bytes)?;
            if manifest.open(new).is_ok() {
                continue;
            }
            let Ok(keys) = manifest.open(old) else {
                tracing::warn!(file = %record.id, "a file opens with neither the old nor the new network key");
                continue;
            };
            let fields = ManifestFields {
                file_id: manifest.file_id,
                content_hash: manifest.content_hash,
                size: manifest.size,
                params: manifest.params,
                created_ms: manifest.created_ms,
                modified_ms: manifest.modified_ms,
                name: manifest.name.clone(),
                media_type: manifest.media_type.clone(),
                fragment_ids: manifest.fragment_ids.clone(),
            };
            let nonce: [u8; 24] = crate::rng::bytes().map_err(|e| DriveError::Open(io::Error::other(e)))?;
            let resealed = Manifest::seal(fields, &keys, new, nonce)?;
            record.manifest = hex::encode(resealed.encode());
            self.index.put_file(&manifest.file_id.0, &record)?;
            count += 1;
        }
        Ok(count)
    }

    /// Forgets a file and deletes its fragments here, leaving a tombstone
    /// dated `now_ms` so that no member brings it back.
    pub fn remove(&self, id: &str, now_ms: u64) -> Result<FileView, DriveError> {
        let (record, manifest) = self.record(id)?;
        let view = self.view(record.clone());
        let id_bytes: [u8; 32] = manifest.file_id.0;
        self.index.remove_file(&id_bytes)?;
        self.index.set_deleted(&id_bytes, Some(now_ms))?;
        // A chunk's fragments are named by its bytes, its place and whether
        // it is the last (manifest version 2), so another file with an
        // equal chunk at the same place (a longer or edited copy) may name
        // them too: those stay.
        let named = self.index.named(&manifest.fragment_ids)?;
        for fragment in manifest.fragment_ids.iter().filter(|f| !named.contains(*f)) {
            let _ = self.store.remove(fragment);
        }
        Ok(view)
    }

    /// Deletes the fragments stored here that no file's record names and
    /// that were last written before `cutoff`: what adds that never
    /// finished left behind (a page closed mid-upload, an engine killed, a
    /// file that changed meanwhile), here or on the member they were
    /// placed on. Newer ones may belong to an add under way, here or on
    /// another node whose record has not come yet. Nothing is deleted if
    /// a record cannot be read, since its fragments could not be told
    /// apart. Returns how many went.
    pub fn sweep_unreferenced(&self, cutoff: std::time::SystemTime) -> Result<usize, DriveError> {
        let candidates = self.store.written_before(cutoff);
        if candidates.is_empty() {
            return Ok(0);
        }
        let named = self.index.named(&candidates)?;
        let mut swept = 0;
        for id in candidates.iter().filter(|id| !named.contains(*id)) {
            self.store.remove(id).map_err(DriveError::Open)?;
            swept += 1;
        }
        Ok(swept)
    }

    /// Re-verifies every stored fragment; damaged ones are deleted so they
    /// are never served. Returns their ids, for repair.
    pub fn scrub(&self) -> io::Result<Vec<FragmentId>> {
        let damaged = self.store.scrub()?;
        for id in &damaged {
            tracing::warn!(fragment = %id, "a stored fragment was damaged on disk and was deleted");
        }
        Ok(damaged.iter().filter_map(|id| Some(FragmentId(hex::decode(id).ok()?.try_into().ok()?))).collect())
    }

    fn view(&self, record: FileRecord) -> FileView {
        self.view_with(record, &|_| false)
    }

    fn view_with(&self, record: FileRecord, elsewhere: &dyn Fn(&FragmentId) -> bool) -> FileView {
        let health = hex::decode(&record.manifest)
            .ok()
            .and_then(|bytes| Manifest::decode(&bytes).ok())
            .map(|manifest| self.health(&manifest, elsewhere))
            .unwrap_or(Health {
                state: "unreadable".into(),
                fragments_present: 0,
                fragments_total: 0,
                needed_per_chunk: 0,
            });
        let kind = search::kind_of(&record.media_type, &record.name).into();
        FileView {
            kind,
            id: record.id,
            name: record.name,
            size: record.size,
            blake3: record.blake3,
            media_type: record.media_type,
            added_ms: record.added_ms,
            origin: record.origin,
            health,
        }
    }

    fn health(&self, manifest: &Manifest, elsewhere: &dyn Fn(&FragmentId) -> bool) -> Health {
        let k = manifest.params.k();
        let mut present = 0;
        let mut readable = true;
        for chunk in 0..manifest.chunk_count() {
            let here = manifest.chunk_ids(chunk).iter().filter(|id| self.store.contains(id) || elsewhere(id)).count();
            present += here;
            readable &= here >= k;
        }
        let total = manifest.fragment_ids.len();
        let state = match (readable, present == total) {
            (_, true) => "full",
            (true, false) => "degraded",
            (false, false) => "unreadable",
        };
        Health { state: state.into(), fragments_present: present, fragments_total: total, needed_per_chunk: k }
    }
}

/// A file's name in the drive: its name on disk.
pub fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into())
}

/// Feeds `reader` to `f` a block at a time; returns the bytes read.
/// A file that grew or shrank while it was read: say so in those words.
fn changed_if_resized(e: mailmesh_core::drive::DriveError) -> DriveError {
    use mailmesh_core::drive::DriveError as Core;
    match e {
        Core::SizeExceeded { .. } | Core::SizeShort { .. } => DriveError::Changed,
        other => DriveError::Core(other),
    }
}

fn each_block(mut reader: impl Read, mut f: impl FnMut(&[u8]) -> Result<(), DriveError>) -> Result<u64, DriveError> {
    let mut buf = vec![0u8; READ_BLOCK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DriveError::Source { path: "the file".into(), source }),
        };
        f(&buf[..n])?;
        total += n as u64;
    }
}

/// A name as the drive keeps it: no path, nothing hidden (control
/// characters, bidirectional overrides), at most 255 characters, not empty.
fn clean_name(name: &str) -> Result<String, DriveError> {
    let name: String =
        mailmesh_core::names::visible(name).chars().filter(|c| *c != '/' && *c != '\\').take(255).collect();
    if name.is_empty() {
        return Err(DriveError::BadName);
    }
    Ok(name)
}

/// A media type from a file name, for files added from disk.
fn media_type_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "html" | "htm" => "text/html",
        "zip" => "application/zip",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive() -> (tempfile::TempDir, Drive) {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        let drive = Drive::open(&home).unwrap();
        (dir, drive)
    }

    /// What the engine does with a page's bytes: codes the chunks they
    /// complete and stores every fragment here.
    fn take_bytes(drive: &Drive, upload: &mut Upload, offset: u64, bytes: &[u8]) -> Result<(), DriveError> {
        for chunk in upload.push(offset, bytes)? {
            drive.store_fragments(&fragments_of(chunk).collect::<Vec<_>>())?;
        }
        Ok(())
    }

    /// Sends `bytes` as a page does, in pieces of a BYOB read.
    fn upload_like_a_page(drive: &Drive, upload: &mut Upload, bytes: &[u8]) -> Result<(), DriveError> {
        take_bytes(drive, upload, 0, &[])?;
        for (i, piece) in bytes.chunks(300_000).enumerate() {
            take_bytes(drive, upload, (i * 300_000) as u64, piece)?;
        }
        Ok(())
    }

    #[test]
    fn a_file_uploaded_by_a_page_is_recorded_under_its_content_once() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let begin = || drive.begin_upload(&network, "notes/../page.bin", bytes.len() as u64).unwrap();

        // A gap or a repeat is refused where it happens; too many bytes too.
        let mut upload = begin();
        take_bytes(&drive, &mut upload, 0, &bytes[..1000]).unwrap();
        assert!(matches!(
            take_bytes(&drive, &mut upload, 999, &bytes[999..2000]),
            Err(DriveError::UploadGap { offset: 999, expected: 1000 })
        ));
        let mut upload = begin();
        upload_like_a_page(&drive, &mut upload, &bytes).unwrap();
        assert!(take_bytes(&drive, &mut upload, bytes.len() as u64, b"!").is_err());
        assert!(drive.list().unwrap().is_empty(), "nothing is recorded before the end");

        let mut upload = begin();
        upload_like_a_page(&drive, &mut upload, &bytes).unwrap();
        let file = drive.finish_upload(&network, upload, 1).unwrap();
        assert_eq!(file.name, "notes..page.bin");
        assert_eq!(file.blake3, blake3::hash(&bytes).to_hex().as_str());
        let added = drive.add_bytes(&network, "same.bin", "application/octet-stream", None, &bytes, 2).unwrap();
        assert_eq!(added.id, file.id, "a page's upload is coded as the engine codes the same content");
        let mut again = begin();
        upload_like_a_page(&drive, &mut again, &bytes).unwrap();
        assert_eq!(drive.finish_upload(&network, again, 3).unwrap().id, file.id, "the same content again is that file");
        assert_eq!(drive.list().unwrap().len(), 1);
        let out = dir.path().join("out.bin");
        drive.get(&network, &file.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), bytes);

        // An empty file is complete before any byte.
        let mut upload = drive.begin_upload(&network, "empty", 0).unwrap();
        upload_like_a_page(&drive, &mut upload, &[]).unwrap();
        assert_eq!(drive.finish_upload(&network, upload, 3).unwrap().size, 0);
    }

    #[test]
    fn fragments_no_file_names_are_swept_once_they_are_old_enough() {
        use std::time::{Duration, SystemTime};
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let kept: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let file = drive.add_bytes(&network, "kept.bin", "application/octet-stream", None, &kept, 1).unwrap();
        let named = drive.store().list().len();

        // A page's upload that never finished: the chunks it completed were
        // stored, and no record names them.
        let gone: Vec<u8> = (0..3_000_000u32).map(|i| (i * 11 % 253) as u8).collect();
        let mut upload = drive.begin_upload(&network, "gone.bin", gone.len() as u64).unwrap();
        upload_like_a_page(&drive, &mut upload, &gone[..2_200_000]).unwrap();
        drop(upload);
        let left = drive.store().list().len() - named;
        assert!(left >= 12, "two chunks' fragments were left behind");

        // Recent ones may belong to an add under way whose record has not
        // come yet: kept.
        assert_eq!(drive.sweep_unreferenced(crate::clock::now() - Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(drive.sweep_unreferenced(crate::clock::now() + Duration::from_secs(60)).unwrap(), left);
        assert_eq!(drive.store().list().len(), named, "every fragment a file names stays");
        let out = dir.path().join("kept.out");
        drive.get(&network, &file.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), kept);

        // An old fragment an add stores again counts as new: the add may
        // still be under way when the sweep comes.
        let fragment = drive.store().list()[0];
        let bytes = drive.store().get(&fragment).unwrap();
        let path = dir.path().join("drive/fragments").join(&fragment.to_string()[..2]).join(fragment.to_string());
        let age =
            || crate::clock::now().duration_since(fs::metadata(&path).unwrap().modified().unwrap()).unwrap_or_default();
        let make_old =
            || fs::File::options().write(true).open(&path).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();
        make_old();
        drive.store().put_unsynced(&fragment, &bytes).unwrap();
        assert!(age() < Duration::from_secs(3600), "put_unsynced renews it");
        make_old();
        drive.store().put(&fragment, &bytes).unwrap();
        assert!(age() < Duration::from_secs(3600), "put renews it");
    }

    #[test]
    fn removing_a_file_keeps_the_fragments_a_longer_copy_shares() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let short: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i * 13 % 251) as u8).collect();
        let long = [&short[..], &[9u8; 1024 * 1024]].concat();
        let a = drive.add_bytes(&network, "a.bin", "application/octet-stream", None, &short, 1).unwrap();
        let b = drive.add_bytes(&network, "b.bin", "application/octet-stream", None, &long, 2).unwrap();
        let (_, ma) = drive.record(&a.id).unwrap();
        let (_, mb) = drive.record(&b.id).unwrap();
        assert_eq!(ma.chunk_ids(0), mb.chunk_ids(0), "their first chunks are the same fragments");
        drive.remove(&a.id, 3).unwrap();
        assert!(!drive.store().contains(&ma.chunk_ids(2)[0]), "what only the removed file named went");
        let out = dir.path().join("b.out");
        drive.get(&network, &b.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), long);

        let small = drive.add_bytes(&network, "c.txt", "text/plain", None, b"one chunk", 4).unwrap();
        let (_, mc) = drive.record(&small.id).unwrap();
        drive.remove(&small.id, 5).unwrap();
        assert!(mc.fragment_ids.iter().all(|id| !drive.store().contains(id)), "a one-chunk file leaves nothing");
    }

    #[test]
    fn a_pipe_or_a_folder_is_refused_in_words() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let pipe = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&pipe).status().unwrap().success());
        // Opening a pipe for reading waits for a writer: give it one that
        // writes nothing.
        let writer = {
            let pipe = pipe.clone();
            std::thread::spawn(move || drop(fs::OpenOptions::new().write(true).open(pipe)))
        };
        assert!(matches!(drive.add_path(&network, &pipe, 1), Err(DriveError::NotAFile(_))));
        writer.join().unwrap();
        assert!(matches!(drive.add_path(&network, dir.path(), 1), Err(DriveError::NotAFile(_))));
    }

    #[test]
    fn a_file_that_grows_or_shrinks_while_it_is_added_is_not_recorded() {
        let (_dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let bytes = vec![1u8; 3_000_000];
        for (read, stated) in [(&bytes[..], 2_000_000u64), (&bytes[..], 3_000_001)] {
            let open = || Ok((read, stated));
            let result = drive.add(&network, "edited.txt", "text/plain", None, 1, None, &mut KeepHere, open);
            assert!(matches!(result, Err(DriveError::Changed)), "{result:?}");
        }
        assert!(drive.list().unwrap().is_empty());
    }

    #[test]
    fn a_file_goes_in_and_comes_out_identical_and_once() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let added = drive.add_bytes(&network, "big.bin", "application/octet-stream", None, &bytes, 1).unwrap();
        assert_eq!(added.health.state, "full");
        assert_eq!(added.blake3, blake3::hash(&bytes).to_hex().to_string());
        let again = drive.add_bytes(&network, "copy.bin", "application/octet-stream", None, &bytes, 2).unwrap();
        assert_eq!(again.id, added.id, "the same content is stored once");
        assert_eq!(drive.list().unwrap().len(), 1);

        let out = dir.path().join("out.bin");
        drive.get(&network, &added.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), bytes);
        assert!(matches!(drive.get(&NetworkKey::from_bytes([8; 32]), &added.id, &out), Err(DriveError::Core(_))));

        let renamed = drive.rename(&added.id[..10], "  holiday/../big.bin ", 3).unwrap();
        assert_eq!(renamed.name, "holiday..big.bin", "no path in a name");
        let renamed = drive.rename(&added.id, "invoice\u{202E}fdp.exe", 3).unwrap();
        assert_eq!(renamed.name, "invoicefdp.exe", "no direction override in a name");
        assert!(matches!(drive.rename(&added.id, " ", 4), Err(DriveError::BadName)));
        drive.remove(&added.id, 5).unwrap();
        assert!(drive.list().unwrap().is_empty());
        assert!(matches!(drive.get(&network, &added.id, &out), Err(DriveError::NotFound(_))));
        assert!(matches!(drive.get(&network, "zz", &out), Err(DriveError::BadId(_))));
    }

    #[test]
    fn a_new_network_key_rewraps_every_file_and_the_old_one_opens_nothing() {
        let (dir, drive) = drive();
        let (old, new) = (NetworkKey::from_bytes([7; 32]), NetworkKey::from_bytes([9; 32]));
        let added = drive.add_bytes(&old, "a.txt", "text/plain", None, b"before the removal", 1).unwrap();
        assert_eq!(drive.rewrap(&old, &new).unwrap(), 1);
        assert_eq!(drive.rewrap(&old, &new).unwrap(), 0, "a second run has nothing to do");
        let out = dir.path().join("a.txt");
        drive.get(&new, &added.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"before the removal");
        assert!(drive.get(&old, &added.id, &out).is_err(), "the old key opens nothing");
    }

    #[test]
    fn a_restore_never_writes_through_a_link_planted_in_the_output_folder() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let added = drive.add_bytes(&network, "a.txt", "text/plain", None, b"the file", 1).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"not yours").unwrap();
        let downloads = dir.path().join("downloads");
        fs::create_dir(&downloads).unwrap();
        // Whoever can write to the output folder plants links where a
        // predictable temp file would be.
        for name in [".a.txt.mailmesh-partial", ".a.txt.tmp", "a.txt.part"] {
            std::os::unix::fs::symlink(&victim, downloads.join(name)).unwrap();
        }
        let out = downloads.join("a.txt");
        drive.get(&network, &added.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"the file");
        assert_eq!(fs::read(&victim).unwrap(), b"not yours", "nothing written through a link");
    }

    #[test]
    fn lost_fragments_beyond_parity_fail_cleanly_and_leave_no_partial_file() {
        let (dir, drive) = drive();
        let network = NetworkKey::from_bytes([7; 32]);
        let added = drive.add_bytes(&network, "a.txt", "text/plain", None, b"hello drive", 1).unwrap();
        let (_, manifest) = drive.record(&added.id).unwrap();
        // Two of six fragments lost: still readable.
        for id in &manifest.fragment_ids[..2] {
            drive.store.remove(id).unwrap();
        }
        assert_eq!(drive.list().unwrap()[0].health.state, "degraded");
        let out = dir.path().join("a.txt");
        drive.get(&network, &added.id, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello drive");
        // A third lost: a clear error, and the earlier output is untouched.
        drive.store.remove(&manifest.fragment_ids[2]).unwrap();
        let err = drive.get(&network, &added.id, &out).unwrap_err();
        assert!(err.to_string().contains("3 of the 4 fragments"), "{err}");
        assert_eq!(fs::read(&out).unwrap(), b"hello drive");
        assert_eq!(
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"))
                .count(),
            0
        );
    }
}
