//! The drive's embedded index (redb, `drive/index.redb` in the home): the
//! files this node knows and the mail-import checkpoint.
//!
//! A file record is written only after every fragment of the file is
//! stored, in one transaction, so a crash mid-upload never leaves a file
//! that looks complete.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
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
        txn.commit().map_err(db_error)?;
        Ok(Index { db, search: Mutex::new(None) })
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
        let json = serde_json::to_vec(record).map_err(|e| IndexError::Record(e.to_string()))?;
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(FILES).map_err(db_error)?.insert(&id[..], &json[..]).map_err(db_error)?;
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
        let record = self.file(id)?;
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(FILES).map_err(db_error)?.remove(&id[..]).map_err(db_error)?;
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
            let mut table = txn.open_table(FILES).map_err(db_error)?;
            for (id, record) in files {
                let json = serde_json::to_vec(record).map_err(|e| IndexError::Record(e.to_string()))?;
                table.insert(&id[..], &json[..]).map_err(db_error)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let record = FileRecord {
            version: RECORD_VERSION,
            id: "ab".repeat(32),
            name: "a.txt".into(),
            size: 3,
            blake3: "cd".repeat(32),
            media_type: "text/plain".into(),
            added_ms: 5,
            renamed_ms: 0,
            origin: None,
            manifest: "00".into(),
        };
        {
            let index = Index::open(&path).unwrap();
            index.put_file(&[0xab; 32], &record).unwrap();
            index.set_checkpoint("INBOX", Checkpoint { uid_validity: 7, last_uid: 42 }).unwrap();
        }
        let index = Index::open(&path).unwrap();
        assert_eq!(index.files().unwrap(), vec![record.clone()]);
        assert_eq!(index.checkpoint("INBOX").unwrap(), Some(Checkpoint { uid_validity: 7, last_uid: 42 }));
        assert_eq!(index.remove_file(&[0xab; 32]).unwrap(), Some(record));
        assert!(index.files().unwrap().is_empty());
    }
}
