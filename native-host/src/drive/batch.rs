//! Files added together and made durable at once (the mail import's unit
//! of work): each file's fragments are written without a sync of their
//! own, then [`Drive::commit`](super::Drive::commit) syncs the fragment
//! store once and records every file in one index transaction, with the
//! import's checkpoint. Hundreds of small attachments then cost one sync
//! instead of two per fragment, and a file is still recorded only once
//! every fragment of it is durable.

use std::collections::HashMap;

use super::index::FileRecord;

#[derive(Default)]
pub struct Batch {
    records: Vec<([u8; 32], FileRecord)>,
    /// Where each file id is in `records` (the same content twice in a
    /// batch is one file).
    at: HashMap<[u8; 32], usize>,
    bytes: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The plaintext bytes of the files in it.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The ids of its files, hex, in the order they were added.
    pub fn file_ids(&self) -> Vec<String> {
        self.records.iter().map(|(_, r)| r.id.clone()).collect()
    }

    /// Takes in another batch's files.
    pub fn absorb(&mut self, other: Batch) {
        for (id, record) in other.records {
            let size = record.size;
            self.push(id, record, size);
        }
    }

    pub(super) fn get(&self, id: &[u8; 32]) -> Option<&FileRecord> {
        self.at.get(id).map(|&at| &self.records[at].1)
    }

    pub(super) fn push(&mut self, id: [u8; 32], record: FileRecord, size: u64) {
        if self.at.contains_key(&id) {
            return;
        }
        self.at.insert(id, self.records.len());
        self.records.push((id, record));
        self.bytes += size;
    }

    /// Its records (each clears a deletion mark of the same content: the
    /// owner deleted it once and it came again).
    pub(super) fn into_records(self) -> Vec<([u8; 32], FileRecord)> {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use mailmesh_core::drive::NetworkKey;

    use super::Batch;
    use crate::drive::index::Checkpoint;
    use crate::drive::Drive;
    use crate::home::NodeHome;

    #[test]
    fn a_batch_is_recorded_with_its_checkpoint_only_when_committed() {
        let home = tempfile::tempdir().unwrap();
        let key = NetworkKey::from_bytes([7; 32]);
        let drive = Drive::open(&NodeHome::at(home.path())).unwrap();
        let mut batch = Batch::default();
        let a = drive.add_bytes_to(&mut batch, &key, "a.txt", "text/plain", None, b"alpha", 1).unwrap();
        let again = drive.add_bytes_to(&mut batch, &key, "a copy.txt", "text/plain", None, b"alpha", 1).unwrap();
        assert_eq!(a.id, again.id, "the same content twice is one file");
        drive.add_bytes_to(&mut batch, &key, "b.txt", "text/plain", None, b"beta", 1).unwrap();
        assert_eq!(batch.file_ids().len(), 2);

        // Not committed (a crash now): nothing recorded, the checkpoint where it was.
        drop(batch);
        assert!(drive.list().unwrap().is_empty());
        assert_eq!(drive.index().checkpoint("INBOX").unwrap(), None);

        let mut batch = Batch::default();
        drive.add_bytes_to(&mut batch, &key, "a.txt", "text/plain", None, b"alpha", 1).unwrap();
        let checkpoint = Checkpoint { uid_validity: 3, last_uid: 9 };
        drive.commit(batch, Some(("INBOX", checkpoint))).unwrap();
        assert_eq!(drive.list().unwrap().len(), 1);
        assert_eq!(drive.index().checkpoint("INBOX").unwrap(), Some(checkpoint));
        let out = home.path().join("a.out");
        drive.get(&key, &a.id, &out).unwrap();
        assert_eq!(std::fs::read(out).unwrap(), b"alpha");
    }
}
