//! Sharing the import of the owner's mailbox among the owner's nodes.
//!
//! Every node of a network could read the whole mailbox by itself, but a
//! provider counts what it serves per account (Gmail: about 2,500 MB a
//! day), so three nodes would reach the quota three times sooner. So one
//! node imports at a time — [`importer`], the online member with the
//! smallest id — and tells the others over the member links
//! (`node.import`) how far it got, what it fetched today and how the
//! import stands. A node that takes over starts where the last importer
//! stopped; a node that was offline fetches nothing another one imported.
//!
//! [`ImportState`]: `MMIS | version u8 | marks | day u32 | day_bytes u64 |
//! progress`, integers little-endian; a mark is `folder (len u32 | UTF-8)
//! | uid_validity u32 | last_uid u32`. The [`Budget`] rules decide whether
//! the account may be read on now, from what every node fetched today.

use thiserror::Error;

use crate::identity::NodeId;
use crate::wire::{self, Reader, WireError};

pub const IMPORT_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"MMIS";
/// More folders than anyone imports from.
pub const MAX_MARKS: usize = 64;
/// A folder's name, in bytes (IMAP names are rarely longer than 100).
pub const MAX_FOLDER: usize = 1024;
const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ImportError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("an import state names more than {MAX_MARKS} folders")]
    TooManyFolders,
}

/// How far one folder was imported: every message up to `last_uid` under
/// this `uid_validity` (a renumbered folder starts again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub folder: String,
    pub uid_validity: u32,
    pub last_uid: u32,
}

/// How the import stands, as the importing node sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub messages_done: u32,
    pub messages_total: u32,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second over the current run (0: not known yet).
    pub rate: u64,
    /// The import waits until then (ms since the epoch; 0: it does not):
    /// the day's budget is spent or the server asked to slow down.
    pub paused_until_ms: u64,
}

impl Progress {
    /// Seconds left at the current rate, if there is one.
    pub fn seconds_left(&self) -> Option<u64> {
        let left = self.bytes_total.saturating_sub(self.bytes_done);
        (self.rate > 0).then(|| left.div_ceil(self.rate))
    }
}

/// What one node tells the others about the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportState {
    pub marks: Vec<Mark>,
    /// The UTC day (days since the epoch) `day_bytes` counts.
    pub day: u32,
    /// What this node fetched from the account on `day`.
    pub day_bytes: u64,
    pub progress: Progress,
}

impl ImportState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MAGIC, IMPORT_VERSION);
        out.extend_from_slice(&(self.marks.len() as u32).to_le_bytes());
        for mark in &self.marks {
            wire::put_text(&mut out, &mark.folder);
            out.extend_from_slice(&mark.uid_validity.to_le_bytes());
            out.extend_from_slice(&mark.last_uid.to_le_bytes());
        }
        out.extend_from_slice(&self.day.to_le_bytes());
        out.extend_from_slice(&self.day_bytes.to_le_bytes());
        let p = &self.progress;
        for n in [p.messages_done, p.messages_total] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for n in [p.bytes_done, p.bytes_total, p.rate, p.paused_until_ms] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ImportState, ImportError> {
        let mut r = Reader::new(bytes, MAGIC, IMPORT_VERSION, "import state")?;
        let count = r.u32()? as usize;
        if count > MAX_MARKS {
            return Err(ImportError::TooManyFolders);
        }
        let mut marks = Vec::with_capacity(count);
        for _ in 0..count {
            marks.push(Mark { folder: r.text(MAX_FOLDER)?, uid_validity: r.u32()?, last_uid: r.u32()? });
        }
        let (day, day_bytes) = (r.u32()?, r.u64()?);
        let progress = Progress {
            messages_done: r.u32()?,
            messages_total: r.u32()?,
            bytes_done: r.u64()?,
            bytes_total: r.u64()?,
            rate: r.u64()?,
            paused_until_ms: r.u64()?,
        };
        r.end()?;
        Ok(ImportState { marks, day, day_bytes, progress })
    }
}

/// The node that imports now: the online member with the smallest id
/// (`online` may or may not hold `me`). Every node computes the same
/// answer from the same links, and a node alone imports for itself.
pub fn importer(me: NodeId, online: &[NodeId]) -> NodeId {
    online.iter().copied().chain([me]).min().unwrap_or(me)
}

/// The UTC day of a time in ms since the epoch.
pub fn day_of(ms: u64) -> u32 {
    (ms / DAY_MS) as u32
}

/// A daily download budget for the account, shared by all its nodes.
///
/// The provider's limit is not all the import's: a share is left for the
/// owner's own mail client, so it keeps working on a day the import
/// spends its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes a day the import may fetch (all nodes together).
    pub bytes_per_day: u64,
}

impl Budget {
    /// The part of a provider's daily limit the import takes: 80 %.
    pub fn of_provider_limit(limit_bytes: u64) -> Budget {
        Budget { bytes_per_day: limit_bytes / 5 * 4 }
    }

    /// Whether a message of `size` bytes may be fetched now, given what the
    /// nodes fetched on `now_ms`'s day (`spent`, every node's count for
    /// that day added up). `Err(resume_at_ms)`: the start of the next day.
    /// A message larger than a whole day's budget is fetched on a fresh
    /// day, or it could never be.
    pub fn allows(&self, now_ms: u64, spent: u64, size: u64) -> Result<(), u64> {
        if spent == 0 || spent.saturating_add(size) <= self.bytes_per_day {
            Ok(())
        } else {
            Err((u64::from(day_of(now_ms)) + 1) * DAY_MS)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state() -> impl Strategy<Value = ImportState> {
        let mark = ("\\PC{0,20}", any::<u32>(), any::<u32>()).prop_map(|(folder, uid_validity, last_uid)| Mark {
            folder,
            uid_validity,
            last_uid,
        });
        let progress =
            (any::<(u32, u32)>(), any::<(u64, u64, u64, u64)>()).prop_map(|((md, mt), (bd, bt, r, p))| Progress {
                messages_done: md,
                messages_total: mt,
                bytes_done: bd,
                bytes_total: bt,
                rate: r,
                paused_until_ms: p,
            });
        (proptest::collection::vec(mark, 0..5), any::<u32>(), any::<u64>(), progress)
            .prop_map(|(marks, day, day_bytes, progress)| ImportState { marks, day, day_bytes, progress })
    }

    proptest! {
        #[test]
        fn states_round_trip(state in state()) {
            prop_assert_eq!(ImportState::decode(&state.encode()), Ok(state));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ImportState::decode(&bytes);
        }

        #[test]
        fn a_cut_state_is_refused(state in state(), cut in 1usize..8) {
            let bytes = state.encode();
            prop_assert!(ImportState::decode(&bytes[..bytes.len() - cut]).is_err());
        }

        #[test]
        fn every_node_names_the_same_importer(ids in proptest::collection::vec(any::<[u8; 20]>(), 1..6)) {
            let ids: Vec<NodeId> = ids.into_iter().map(NodeId::from_bytes).collect();
            let chosen: Vec<NodeId> = ids.iter().map(|me| {
                let others: Vec<NodeId> = ids.iter().copied().filter(|id| id != me).collect();
                importer(*me, &others)
            }).collect();
            prop_assert!(chosen.iter().all(|c| *c == chosen[0]));
        }
    }

    #[test]
    fn a_state_naming_too_many_folders_is_refused_before_reading_them() {
        let mut bytes = wire::header(MAGIC, IMPORT_VERSION);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ImportState::decode(&bytes), Err(ImportError::TooManyFolders));
    }

    #[test]
    fn the_budget_stops_at_the_days_share_and_resumes_the_next_day() {
        let budget = Budget::of_provider_limit(2_500_000_000);
        assert_eq!(budget.bytes_per_day, 2_000_000_000, "a fifth is left for the owner's own client");
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(budget.allows(noon, 1_999_000_000, 1_000_000), Ok(()));
        assert_eq!(budget.allows(noon, 1_999_000_000, 1_000_001), Err(20_001 * DAY_MS));
        assert_eq!(budget.allows(noon, 0, 3_000_000_000), Ok(()), "a huge message goes on a fresh day");
    }

    #[test]
    fn progress_tells_the_time_left_once_there_is_a_rate() {
        let mut p = Progress { bytes_done: 100, bytes_total: 1100, ..Progress::default() };
        assert_eq!(p.seconds_left(), None);
        p.rate = 300;
        assert_eq!(p.seconds_left(), Some(4));
    }
}
