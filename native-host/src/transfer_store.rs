//! Direct sends on disk, so that a transfer goes on after a restart of
//! either side: one `transfers/<id>.json` (0600: it holds the transfer's
//! key) per transfer, and for a file coming in, `transfers/<id>.part` with
//! the chunks verified so far, in order. The receiver's progress *is* the
//! length of its part file; nothing else needs writing per chunk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailmesh_core::transfer::{Offer, TransferId};
use serde::{Deserialize, Serialize};

use crate::home::write_private;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Out,
    In,
}

/// Where a transfer stands, as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Waiting for the receiver to accept or decline.
    Offered,
    /// Accepted; chunks are flowing, or will when the link is back.
    Active,
    Done,
    Declined,
    Cancelled,
    Failed,
}

/// Where the receiver wants a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Destination {
    Drive,
    /// A folder on the receiver's disk (its Downloads by default).
    Folder {
        path: PathBuf,
    },
}

/// Everything kept about one transfer.
#[derive(Clone, Serialize, Deserialize)]
pub struct TransferRecord {
    pub direction: Direction,
    pub id: String,
    pub name: String,
    pub size: u64,
    pub media_type: String,
    pub chunk_size: u32,
    pub content_hash: String,
    /// The transfer key (hex); dropped once the transfer ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The other person's address.
    pub peer: String,
    /// The other side's node, once known (the sender's, or the receiver's
    /// that accepted).
    pub node: Option<String>,
    pub state: TransferState,
    /// Why it failed or was cancelled, in words.
    #[serde(default)]
    pub detail: String,
    /// Sender: the file read from.
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// Sender: the source is a copy made for this transfer (a drive file),
    /// to delete when it ends.
    #[serde(default)]
    pub owned_source: bool,
    #[serde(default)]
    pub destination: Option<Destination>,
    /// Receiver: where the file went (a path, or a drive file id).
    #[serde(default)]
    pub saved_as: Option<String>,
    pub created_ms: u64,
}

impl TransferRecord {
    pub fn new(direction: Direction, offer: &Offer, peer: &str, node: Option<String>, now_ms: u64) -> TransferRecord {
        TransferRecord {
            direction,
            id: offer.id.to_string(),
            name: offer.name.clone(),
            size: offer.size,
            media_type: offer.media_type.clone(),
            chunk_size: offer.chunk_size,
            content_hash: hex::encode(offer.content_hash),
            key: Some(hex::encode(offer.key)),
            peer: peer.to_string(),
            node,
            state: TransferState::Offered,
            detail: String::new(),
            source: None,
            owned_source: false,
            destination: None,
            saved_as: None,
            created_ms: now_ms,
        }
    }

    /// The offer again (only while the key is kept).
    pub fn offer(&self) -> Option<Offer> {
        let decode32 = |text: &str| hex::decode(text).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
        Some(Offer {
            id: self.id.parse().ok()?,
            name: self.name.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
            chunk_size: self.chunk_size,
            content_hash: decode32(&self.content_hash)?,
            key: decode32(self.key.as_deref()?)?,
        })
    }

    pub fn is_over(&self) -> bool {
        !matches!(self.state, TransferState::Offered | TransferState::Active)
    }
}

/// The `transfers/` folder of a home.
#[derive(Debug, Clone)]
pub struct TransferStore {
    dir: PathBuf,
}

impl TransferStore {
    pub fn open(home_root: &Path) -> std::io::Result<TransferStore> {
        let dir = home_root.join("transfers");
        std::fs::create_dir_all(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(TransferStore { dir })
    }

    pub fn part(&self, id: &TransferId) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    pub fn source_copy(&self, id: &TransferId) -> PathBuf {
        self.dir.join(format!("{id}.src"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save(&self, record: &TransferRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_private(&self.record_path(&record.id), &json, 0o600)
    }

    /// Forgets a transfer and every byte of it.
    pub fn remove(&self, id: &TransferId) {
        for path in [self.record_path(&id.to_string()), self.part(id), self.source_copy(id)] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Every transfer kept; unreadable records are skipped with a log line.
    pub fn load_all(&self) -> Vec<TransferRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                serde_json::from_slice(&bytes)
                    .map_err(|err| tracing::warn!("skipping {}: {err}", e.path().display()))
                    .ok()
            })
            .collect()
    }
}

/// Speed over the last few seconds, for "speed and time left".
#[derive(Debug, Default)]
pub struct Meter {
    samples: VecDeque<(Instant, u64)>,
}

const METER_SPAN: Duration = Duration::from_secs(3);

impl Meter {
    /// Notes that `done` bytes are done now.
    pub fn note(&mut self, done: u64) {
        let now = Instant::now();
        self.samples.push_back((now, done));
        while self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > METER_SPAN) {
            self.samples.pop_front();
        }
    }

    /// Bytes per second, 0 when idle for the whole span.
    pub fn rate(&self) -> u64 {
        let (Some((t0, b0)), Some((t1, b1))) = (self.samples.front(), self.samples.back()) else { return 0 };
        if Instant::now().duration_since(*t1) > METER_SPAN {
            return 0;
        }
        let secs = t1.duration_since(*t0).as_secs_f64();
        if secs < 0.05 {
            return 0;
        }
        (b1.saturating_sub(*b0) as f64 / secs) as u64
    }
}

/// A free name for `name` in `dir`: `name`, then `name (1)`, `name (2)`, …
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name.to_string(), String::new()),
    };
    (1..).map(|n| dir.join(format!("{stem} ({n}){ext}"))).find(|p| !p.exists()).unwrap_or(candidate)
}
