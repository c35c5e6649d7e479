//! Fragments on disk: one file per fragment, named by its BLAKE3 id
//! (`fragments/ab/abcdef…`), written atomically (temp file, fsync, rename)
//! and verified on every read, so a flipped bit is never served. What the
//! engine codes or receives in bulk goes around the page cache
//! ([`direct_io`]) and is made durable many at a time (`sync`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mailmesh_core::drive::FragmentId;
use thiserror::Error;

use super::direct_io;
use crate::home::write_private;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("fragment {0} is not stored here")]
    Missing(String),
    #[error("fragment {0} is damaged on disk (its bytes no longer match its id)")]
    Damaged(String),
    #[error("the bytes given do not match fragment id {0}")]
    WrongBytes(String),
    #[error("cannot write fragment {id}: {source}")]
    Write { id: String, source: io::Error },
    #[error("cannot read fragment {id}: {source}")]
    Read { id: String, source: io::Error },
}

pub struct FragmentStore {
    dir: PathBuf,
}

impl FragmentStore {
    pub fn open(dir: PathBuf) -> io::Result<FragmentStore> {
        fs::create_dir_all(&dir)?;
        Ok(FragmentStore { dir })
    }

    fn path(&self, id: &FragmentId) -> PathBuf {
        let hex = id.to_string();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Stores a fragment after checking that `bytes` are the fragment `id`.
    /// Storing one that is already there only marks it as just written.
    pub fn put(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), StoreError> {
        if FragmentId::of(bytes) != *id {
            return Err(StoreError::WrongBytes(id.to_string()));
        }
        let path = self.path(id);
        if self.get(id).is_ok() {
            return renew(&path).map_err(|source| StoreError::Write { id: id.to_string(), source });
        }
        let write = || -> io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            write_private(&path, bytes, 0o600)
        };
        write().map_err(|source| StoreError::Write { id: id.to_string(), source })
    }

    /// Stores a fragment this node just encoded (its id was computed from
    /// these very bytes, so they are not hashed again) without making it
    /// durable: [`FragmentStore::sync`] does, for many at once. It is
    /// written under its own name at once: until the sync a crash can leave
    /// it cut short, which its id then tells (it is never served, and
    /// `scrub` removes it), and no record names it before the sync.
    pub fn put_unsynced(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(id);
        let create = || direct_io::create_new(&path);
        let write = || -> io::Result<()> {
            let mut file = match create() {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
                    create()?
                }
                // Stored already (whole, or cut short by a crash).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if self.get(id).is_ok() {
                        return renew(&path);
                    }
                    fs::remove_file(&path)?;
                    create()?
                }
                Err(e) => return Err(e),
            };
            direct_io::write_all(&mut file, bytes)
        };
        write().map_err(|source| StoreError::Write { id: id.to_string(), source })
    }

    /// Like [`FragmentStore::put_unsynced`] for bytes from elsewhere: checks
    /// first that they are the fragment `id`.
    pub fn put_checked_unsynced(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), StoreError> {
        if FragmentId::of(bytes) != *id {
            return Err(StoreError::WrongBytes(id.to_string()));
        }
        self.put_unsynced(id, bytes)
    }

    /// Makes everything written to the store durable (`syncfs` of its
    /// filesystem: one call for any number of fragments and renames).
    pub fn sync(&self) -> io::Result<()> {
        let dir = fs::File::open(&self.dir)?;
        rustix::fs::syncfs(&dir).map_err(io::Error::from)
    }

    /// Reads a fragment and proves it is what its id says.
    pub fn get(&self, id: &FragmentId) -> Result<Vec<u8>, StoreError> {
        let bytes = match direct_io::read(&self.path(id)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::Missing(id.to_string())),
            Err(source) => return Err(StoreError::Read { id: id.to_string(), source }),
        };
        if FragmentId::of(&bytes) != *id {
            return Err(StoreError::Damaged(id.to_string()));
        }
        Ok(bytes)
    }

    /// Every fragment id stored here (by file name; `scrub` checks bytes).
    pub fn list(&self) -> Vec<FragmentId> {
        let mut ids = Vec::new();
        for shard in read_dir(&self.dir).unwrap_or_default() {
            for file in read_dir(&shard).unwrap_or_default() {
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                if let Ok(bytes) = <[u8; 32]>::try_from(hex::decode(name).unwrap_or_default()) {
                    ids.push(FragmentId(bytes));
                }
            }
        }
        ids
    }

    /// The fragments last written before `cutoff` (by their files' times;
    /// a fragment stored again counts as written then).
    pub fn written_before(&self, cutoff: SystemTime) -> Vec<FragmentId> {
        let mut ids = Vec::new();
        for shard in read_dir(&self.dir).unwrap_or_default() {
            for file in read_dir(&shard).unwrap_or_default() {
                let old = fs::metadata(&file).and_then(|m| m.modified()).is_ok_and(|at| at < cutoff);
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if let (true, Ok(bytes)) = (old, <[u8; 32]>::try_from(hex::decode(name).unwrap_or_default())) {
                    ids.push(FragmentId(bytes));
                }
            }
        }
        ids
    }

    pub fn contains(&self, id: &FragmentId) -> bool {
        self.path(id).exists()
    }

    pub fn remove(&self, id: &FragmentId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Re-reads every fragment; returns the ids of damaged ones (which the
    /// caller repairs) after deleting them, so they are never served.
    pub fn scrub(&self) -> io::Result<Vec<String>> {
        let mut damaged = Vec::new();
        for shard in read_dir(&self.dir)? {
            for file in read_dir(&shard)? {
                let Some(name) = file.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
                let Ok(bytes) = direct_io::read(&file) else { continue };
                if FragmentId::of(&bytes).to_string() != name {
                    let _ = fs::remove_file(&file);
                    damaged.push(name);
                }
            }
        }
        Ok(damaged)
    }
}

/// Marks a fragment stored again as just written: an add that finds it
/// here names it in a record only later, and until then the sweep of
/// unnamed fragments must take it for new.
fn renew(path: &Path) -> io::Result<()> {
    fs::File::options().write(true).open(path)?.set_modified(crate::clock::now())
}

fn read_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // Temp files of an interrupted write are not fragments.
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_cut_short_by_a_crash_before_the_sync_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path().join("fragments")).unwrap();
        let bytes = b"fragment bytes, whole".to_vec();
        let id = FragmentId::of(&bytes);
        store.put_unsynced(&id, &bytes[..8]).unwrap();
        assert!(matches!(store.get(&id), Err(StoreError::Damaged(_))), "never served cut short");
        store.put_unsynced(&id, &bytes).unwrap();
        store.sync().unwrap();
        assert_eq!(store.get(&id).unwrap(), bytes);
        store.put_unsynced(&id, &bytes).unwrap();
        assert_eq!(store.get(&id).unwrap(), bytes, "a second put of what is there changes nothing");
    }

    #[test]
    fn fragments_round_trip_and_damage_is_caught_and_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path().join("fragments")).unwrap();
        let bytes = b"fragment bytes".to_vec();
        let id = FragmentId::of(&bytes);
        assert!(matches!(store.put(&FragmentId::of(b"other"), &bytes), Err(StoreError::WrongBytes(_))));
        store.put(&id, &bytes).unwrap();
        store.put(&id, &bytes).unwrap();
        assert_eq!(store.get(&id).unwrap(), bytes);

        let mut rotten = bytes.clone();
        rotten[3] ^= 0x10;
        fs::write(store.path(&id), &rotten).unwrap();
        assert!(matches!(store.get(&id), Err(StoreError::Damaged(_))), "a flipped bit is never served");
        assert_eq!(store.scrub().unwrap(), vec![id.to_string()]);
        assert!(matches!(store.get(&id), Err(StoreError::Missing(_))));
    }

    #[test]
    fn the_same_fragment_stored_at_once_by_many_writers_is_stored_once_and_every_writer_succeeds() {
        // An import and a member's put can write one fragment together;
        // neither may fail nor leave a torn or stray file.
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path().join("fragments")).unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let id = FragmentId::of(&bytes);
        for _round in 0..20 {
            std::thread::scope(|s| {
                let writers: Vec<_> = (0..8).map(|_| s.spawn(|| store.put(&id, &bytes))).collect();
                for writer in writers {
                    writer.join().unwrap().unwrap();
                }
            });
            assert_eq!(store.get(&id).unwrap(), bytes);
            let files: Vec<_> = fs::read_dir(store.path(&id).parent().unwrap()).unwrap().collect();
            assert_eq!(files.len(), 1, "only the fragment itself is left");
            store.remove(&id).unwrap();
        }
    }

    #[test]
    fn a_scrub_leaves_a_write_in_progress_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path().join("fragments")).unwrap();
        let bytes = b"a stored fragment".to_vec();
        let id = FragmentId::of(&bytes);
        store.put(&id, &bytes).unwrap();
        // What `write_private` has open while a put runs: a dot file beside
        // the fragment, with no valid name and bytes that are not yet whole.
        let shard = store.path(&id).parent().unwrap().to_path_buf();
        let in_progress = shard.join(".a1b2c3.tmp");
        fs::write(&in_progress, b"half of a fragm").unwrap();
        assert_eq!(store.scrub().unwrap(), Vec::<String>::new(), "nothing damaged");
        assert!(in_progress.exists(), "the writer's temp file is not deleted under it");
        assert_eq!(store.list(), vec![id]);
    }
}
