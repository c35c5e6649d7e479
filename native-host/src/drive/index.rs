//! The drive's embedded index (redb, `drive/index.redb` in the home): the
//! files this node knows and the mail-import checkpoint.
//!
//! A file record is written only after every fragment of the file is
//! stored, in one transaction, so a crash mid-upload never leaves a file
//! that looks complete. The same transaction notes which fragments the
//! record's manifest names (`fragment_files`), so a delete or a sweep asks
//! whether any other file names a fragment instead of reading every record.

use std::path::Path;

use mailmesh_core::drive::{FragmentId, Manifest};
use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::sync::Mutex;

use super::search::{Fields, SearchIndex};
use crate::api::{FileQuery, Origin};
use crate::sync::lock;

/// File id (32 bytes) → [`FileRecord`] as JSON.
const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("files");
/// Mailbox name → `[uidvalidity u32][last uid u32]`, big-endian.
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("mail_checkpoints");
/// Name → the mail import's own state (JSON, `engine/import/ledger.rs`).
const IMPORT: TableDefinition<&str, &[u8]> = TableDefinition::new("import");
/// File ids deleted by the owner (tombstones, so a member that was offline
/// cannot bring a deleted file back).
const DELETED: TableDefinition<&[u8], u64> = TableDefinition::new("deleted");
/// Fragment id → the ids of the files whose manifests name it (files of
/// manifest version 2 share the fragments of equal chunks at equal places).
const FRAGMENT_FILES: MultimapTableDefinition<&[u8], &[u8]> = MultimapTableDefinition::new("fragment_files");
/// The index's notes on itself: [`FRAGMENT_FILES_BUILT`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Set once `fragment_files` holds every record's fragments (an index from
/// before it had none: it is built at the first open).
const FRAGMENT_FILES_BUILT: &str = "fragment_files_built";

pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub version: u32,
    /// The file id, hex.
    pub id: String,
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the plaintext, hex.
    pub blake3: String,
    pub media_type: String,
    pub added_ms: u64,
    /// When the owner last renamed it (0: never); the latest rename wins on
    /// every node.
    #[serde(default)]
    pub renamed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The sealed manifest (`mailmesh_core::drive::Manifest`), hex.
    pub manifest: String,
}

impl FileRecord {
    /// What searches look at.
    fn fields(&self) -> Fields<'_> {
        Fields {
            name: &self.name,
            media_type: &self.media_type,
            size: self.size,
            added_ms: self.added_ms,
            origin: self.origin.as_ref(),
        }
    }
}

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("the drive index is unreadable: {0}")]
    Database(String),
    #[error("a record in the drive index is damaged: {0}")]
    Record(String),
}

fn db_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Database(e.to_string())
}

/// Where the import of one mailbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uid_validity: u32,
    pub last_uid: u32,
}

pub struct Index {
    db: Database,
    /// What searches look at, built at the first one and kept current by
    /// every write here.
    search: Mutex<Option<SearchIndex>>,
}

/// `[uidvalidity u32][last uid u32]`, big-endian.
fn checkpoint_bytes(checkpoint: Checkpoint) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&checkpoint.uid_validity.to_be_bytes());
    bytes[4..].copy_from_slice(&checkpoint.last_uid.to_be_bytes());
    bytes
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(FILES).map_err(db_error)?;
        txn.open_table(CHECKPOINTS).map_err(db_error)?;
        txn.open_table(DELETED).map_err(db_error)?;
        txn.open_table(IMPORT).map_err(db_error)?;
        txn.open_multimap_table(FRAGMENT_FILES).map_err(db_error)?;
        let built = txn.open_table(META).map_err(db_error)?.get(FRAGMENT_FILES_BUILT).map_err(db_error)?.is_some();
        if !built {
            build_fragment_files(&txn)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(Index { db, search: Mutex::new(None) })
    }

    /// Which of `fragments` some file's manifest names.
    pub fn named(&self, fragments: &[FragmentId]) -> Result<std::collections::HashSet<FragmentId>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_multimap_table(FRAGMENT_FILES).map_err(db_error)?;
        let mut named = std::collections::HashSet::new();
        for fragment in fragments {
            if table.get(&fragment.0[..]).map_err(db_error)?.next().is_some() {
                named.insert(*fragment);
            }
        }
        Ok(named)
    }

    /// Records that the owner deleted a file at `at_ms`; `None` clears it
    /// (the same content was added again later).
    pub fn set_deleted(&self, id: &[u8; 32], at_ms: Option<u64>) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(DELETED).map_err(db_error)?;
            match at_ms {
                Some(at) => table.insert(&id[..], at).map_err(db_error)?,
                None => table.remove(&id[..]).map_err(db_error)?,
            };
        }
        txn.commit().map_err(db_error)
    }

    /// When the file was deleted, if it was.
    pub fn deleted_at(&self, id: &[u8; 32]) -> Result<Option<u64>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(DELETED).map_err(db_error)?;
        Ok(table.get(&id[..]).map_err(db_error)?.map(|v| v.value()))
    }

    /// Every tombstone: (file id, deleted at).
    pub fn deleted(&self) -> Result<Vec<([u8; 32], u64)>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(DELETED).map_err(db_error)?;
        let mut ids = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (key, at) = entry.map_err(db_error)?;
            if let Ok(id) = <[u8; 32]>::try_from(key.value()) {
                ids.push((id, at.value()));
            }
        }
        Ok(ids)
    }

    pub fn put_file(&self, id: &[u8; 32], record: &FileRecord) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        write_record(&txn, id, record)?;
        txn.commit().map_err(db_error)?;
        if let Some(search) = lock(&self.search).as_mut() {
            search.put(*id, &record.fields());
        }
        Ok(())
    }

    pub fn file(&self, id: &[u8; 32]) -> Result<Option<FileRecord>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(FILES).map_err(db_error)?;
        let Some(value) = table.get(&id[..]).map_err(db_error)? else { return Ok(None) };
        serde_json::from_slice(value.value()).map(Some).map_err(|e| IndexError::Record(e.to_string()))
    }

    pub fn files(&self) -> Result<Vec<FileRecord>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(FILES).map_err(db_error)?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (_, value) = entry.map_err(db_error)?;
            match serde_json::from_slice::<FileRecord>(value.value()) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!("skipping a damaged drive record: {e}"),
            }
        }
        Ok(records)
    }

    pub fn remove_file(&self, id: &[u8; 32]) -> Result<Option<FileRecord>, IndexError> {
        // Read and removed in one transaction: no write can come between.
        let txn = self.db.begin_write().map_err(db_error)?;
        let record = {
            let mut files = txn.open_table(FILES).map_err(db_error)?;
            let removed = files.remove(&id[..]).map_err(db_error)?;
            removed
                .map(|old| serde_json::from_slice::<FileRecord>(old.value()))
                .transpose()
                .map_err(|e| IndexError::Record(e.to_string()))?
        };
        if let Some(record) = &record {
            unname_fragments(&txn, id, record)?;
        }
        txn.commit().map_err(db_error)?;
        if let Some(search) = lock(&self.search).as_mut() {
            search.remove(id);
        }
        Ok(record)
    }

    pub fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(CHECKPOINTS).map_err(db_error)?;
        let Some(value) = table.get(mailbox).map_err(db_error)? else { return Ok(None) };
        let bytes: [u8; 8] = value.value().try_into().map_err(|_| IndexError::Record("checkpoint".into()))?;
        Ok(Some(Checkpoint {
            uid_validity: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            last_uid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }))
    }

    pub fn set_checkpoint(&self, mailbox: &str, checkpoint: Checkpoint) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(CHECKPOINTS)
            .map_err(db_error)?
            .insert(mailbox, &checkpoint_bytes(checkpoint)[..])
            .map_err(db_error)?;
        txn.commit().map_err(db_error)
    }

    /// Records `files` (clearing their deletion marks) and moves a
    /// checkpoint, in one transaction.
    pub fn commit_batch(
        &self,
        files: &[([u8; 32], FileRecord)],
        checkpoint: Option<(&str, Checkpoint)>,
    ) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            for (id, record) in files {
                write_record(&txn, id, record)?;
            }
            let mut deleted = txn.open_table(DELETED).map_err(db_error)?;
            for (id, _) in files {
                deleted.remove(&id[..]).map_err(db_error)?;
            }
            if let Some((mailbox, checkpoint)) = checkpoint {
                txn.open_table(CHECKPOINTS)
                    .map_err(db_error)?
                    .insert(mailbox, &checkpoint_bytes(checkpoint)[..])
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        if let Some(search) = lock(&self.search).as_mut() {
            for (id, record) in files {
                search.put(*id, &record.fields());
            }
        }
        Ok(())
    }

    /// The ids of the page of files a query finds, in its order, and how
    /// many it finds in all. The first search reads every record once;
    /// later ones read none.
    pub fn search(&self, query: &FileQuery) -> Result<(Vec<[u8; 32]>, usize), IndexError> {
        let mut search = lock(&self.search);
        if search.is_none() {
            let mut built = SearchIndex::default();
            for record in self.files()? {
                if let Ok(id) = <[u8; 32]>::try_from(hex::decode(&record.id).unwrap_or_default()) {
                    built.put(id, &record.fields());
                }
            }
            *search = Some(built);
        }
        Ok(search.as_ref().map(|s| s.search(query)).unwrap_or_default())
    }

    /// The mail import's state saved under `name`, as it was written.
    pub fn import_state(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(IMPORT).map_err(db_error)?;
        Ok(table.get(name).map_err(db_error)?.map(|v| v.value().to_vec()))
    }

    pub fn set_import_state(&self, name: &str, bytes: &[u8]) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(IMPORT).map_err(db_error)?.insert(name, bytes).map_err(db_error)?;
        txn.commit().map_err(db_error)
    }
}

/// The fragments a record's manifest names.
fn fragments_of(record: &FileRecord) -> Result<Vec<FragmentId>, IndexError> {
    let bytes =
        hex::decode(&record.manifest).map_err(|e| IndexError::Record(format!("manifest of {}: {e}", record.id)))?;
    let manifest =
        Manifest::decode(&bytes).map_err(|e| IndexError::Record(format!("manifest of {}: {e}", record.id)))?;
    Ok(manifest.fragment_ids)
}

/// Writes a record in place of any the file had, and the fragments its
/// manifest names in place of those the old one named.
fn write_record(txn: &WriteTransaction, id: &[u8; 32], record: &FileRecord) -> Result<(), IndexError> {
    let json = serde_json::to_vec(record).map_err(|e| IndexError::Record(e.to_string()))?;
    let fragments = fragments_of(record)?;
    let mut files = txn.open_table(FILES).map_err(db_error)?;
    let old = files.insert(&id[..], &json[..]).map_err(db_error)?;
    if let Some(old) = old.and_then(|old| serde_json::from_slice::<FileRecord>(old.value()).ok()) {
        unname_fragments(txn, id, &old)?;
    }
    name_fragments(txn, id, &fragments)
}

/// Forgets that file `id` names the fragments `record`'s manifest names
/// (a manifest that cannot be read named none here).
fn unname_fragments(txn: &WriteTransaction, id: &[u8; 32], record: &FileRecord) -> Result<(), IndexError> {
    let Ok(fragments) = fragments_of(record) else { return Ok(()) };
    let mut table = txn.open_multimap_table(FRAGMENT_FILES).map_err(db_error)?;
    for fragment in &fragments {
        table.remove(&fragment.0[..], &id[..]).map_err(db_error)?;
    }
    Ok(())
}

/// Notes that file `id` names `fragments`.
fn name_fragments(txn: &WriteTransaction, id: &[u8; 32], fragments: &[FragmentId]) -> Result<(), IndexError> {
    let mut table = txn.open_multimap_table(FRAGMENT_FILES).map_err(db_error)?;
    for fragment in fragments {
        table.insert(&fragment.0[..], &id[..]).map_err(db_error)?;
    }
    Ok(())
}

/// Fills `fragment_files` from every record, once, for an index from before
/// it. A record that cannot be read is left out, as a search leaves it out.
fn build_fragment_files(txn: &WriteTransaction) -> Result<(), IndexError> {
    let mut named = Vec::new();
    {
        let files = txn.open_table(FILES).map_err(db_error)?;
        for entry in files.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let Ok(id) = <[u8; 32]>::try_from(key.value()) else { continue };
            let fragments = serde_json::from_slice::<FileRecord>(value.value())
                .map_err(|e| IndexError::Record(e.to_string()))
                .and_then(|record| fragments_of(&record));
            match fragments {
                Ok(fragments) => named.push((id, fragments)),
                Err(e) => tracing::warn!("a damaged drive record names no fragments: {e}"),
            }
        }
    }
    for (id, fragments) in &named {
        name_fragments(txn, id, fragments)?;
    }
    txn.open_table(META).map_err(db_error)?.insert(FRAGMENT_FILES_BUILT, 1).map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mailmesh_core::drive::NetworkKey;

    use super::*;
    use crate::drive::Drive;
    use crate::home::NodeHome;

    /// Real records (their manifests name real fragments): a drive in
    /// `home` adds each of `contents`, then lets its index go.
    fn records(home: &Path, contents: &[&[u8]]) -> Vec<([u8; 32], FileRecord)> {
        let drive = Drive::open(&NodeHome::at(home)).unwrap();
        let network = NetworkKey::from_bytes([7; 32]);
        let mut out = Vec::new();
        for (n, bytes) in contents.iter().enumerate() {
            let view = drive.add_bytes(&network, &format!("f{n}.txt"), "text/plain", None, bytes, 5).unwrap();
            let id: [u8; 32] = hex::decode(&view.id).unwrap().try_into().unwrap();
            out.push((id, drive.index().file(&id).unwrap().unwrap()));
        }
        out
    }

    fn index_of(home: &Path) -> Index {
        Index::open(&home.join("drive/index.redb")).unwrap()
    }

    #[test]
    fn records_and_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let [(id, record)] = records(dir.path(), &[b"abc"]).try_into().unwrap();
        {
            let index = index_of(dir.path());
            index.set_checkpoint("INBOX", Checkpoint { uid_validity: 7, last_uid: 42 }).unwrap();
        }
        let index = index_of(dir.path());
        assert_eq!(index.files().unwrap(), vec![record.clone()]);
        assert_eq!(index.checkpoint("INBOX").unwrap(), Some(Checkpoint { uid_validity: 7, last_uid: 42 }));
        assert_eq!(index.remove_file(&id).unwrap(), Some(record));
        assert!(index.files().unwrap().is_empty());
    }

    #[test]
    fn a_fragment_is_named_while_any_file_that_names_it_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let [(a, ra), (b, rb)] = records(dir.path(), &[b"one", b"two"]).try_into().unwrap();
        let index = index_of(dir.path());
        let (fa, fb) = (fragments_of(&ra).unwrap(), fragments_of(&rb).unwrap());
        let all: Vec<FragmentId> = fa.iter().chain(&fb).copied().collect();
        assert_eq!(index.named(&all).unwrap().len(), all.len());

        // A second file naming a's fragments (as an equal chunk would).
        let copy = [0xcc; 32];
        index.put_file(&copy, &ra).unwrap();
        index.remove_file(&a).unwrap();
        assert_eq!(index.named(&fa).unwrap().len(), fa.len(), "still named by the copy");
        index.remove_file(&copy).unwrap();
        assert!(index.named(&fa).unwrap().is_empty());

        // A record written again in place of another names only its own.
        index.put_file(&b, &ra).unwrap();
        assert!(index.named(&fb).unwrap().is_empty(), "the old record's fragments are no longer named");
        assert_eq!(index.named(&fa).unwrap().len(), fa.len());
    }

    #[test]
    fn an_index_from_before_the_fragment_table_builds_it_at_its_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let [(_, record)] = records(dir.path(), &[b"old"]).try_into().unwrap();
        let fragments = fragments_of(&record).unwrap();
        {
            // As an engine before the table left it.
            let db = Database::create(dir.path().join("drive/index.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_multimap_table(FRAGMENT_FILES).unwrap();
            txn.open_table(META).unwrap().remove(FRAGMENT_FILES_BUILT).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(index_of(dir.path()).named(&fragments).unwrap().len(), fragments.len());
    }

    #[test]
    fn a_record_whose_manifest_cannot_be_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let [(_, record)] = records(dir.path(), &[b"x"]).try_into().unwrap();
        let index = index_of(dir.path());
        let broken = FileRecord { manifest: "00".into(), ..record };
        assert!(matches!(index.put_file(&[1; 32], &broken), Err(IndexError::Record(_))));
        assert!(index.file(&[1; 32]).unwrap().is_none());
    }
}
