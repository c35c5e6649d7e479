//! What the import keeps about itself across restarts, beside the
//! per-folder checkpoints: what this node fetched today (the budget is
//! per account and per day), the run under way (for progress), and why
//! and until when it waits. Saved as JSON in the drive index's `import`
//! table, on a blocking thread, with the checkpoints' batches.

use serde::{Deserialize, Serialize};

pub const LEDGER_KEY: &str = "ledger";
const LEDGER_VERSION: u32 = 1;

/// Why the import waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pause {
    /// The day's download budget is spent.
    Budget,
    /// The server said it is limiting the account.
    Server,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    /// The UTC day `day_bytes` counts, and what this node fetched on it.
    pub day: u32,
    pub day_bytes: u64,
    /// The run under way (it ends when nothing is left to import):
    /// messages and bytes done since it began.
    pub run_messages: u32,
    pub run_bytes: u64,
    /// What was left when last listed, so progress reads right after a
    /// restart too.
    #[serde(default)]
    pub left_messages: u32,
    #[serde(default)]
    pub left_bytes: u64,
    /// Waiting until then (ms since the epoch), and why.
    pub paused_until_ms: u64,
    pub pause: Option<Pause>,
    /// The last wait the server imposed, doubled while it keeps refusing.
    pub backoff_ms: u64,
}

impl Ledger {
    pub fn decode(bytes: &[u8]) -> Ledger {
        serde_json::from_slice::<Ledger>(bytes).ok().filter(|l| l.version == LEDGER_VERSION).unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        let ledger = Ledger { version: LEDGER_VERSION, ..self.clone() };
        serde_json::to_vec(&ledger).unwrap_or_default()
    }

    /// Counts `bytes` fetched on `day`.
    pub fn fetched(&mut self, day: u32, bytes: u64) {
        if self.day != day {
            self.day = day;
            self.day_bytes = 0;
        }
        self.day_bytes += bytes;
    }

    /// What this node fetched on `day`.
    pub fn spent_on(&self, day: u32) -> u64 {
        if self.day == day {
            self.day_bytes
        } else {
            0
        }
    }

    /// Whether it waits at `now_ms`.
    pub fn paused(&self, now_ms: u64) -> bool {
        self.pause.is_some() && now_ms < self.paused_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_round_trips_and_a_damaged_one_starts_afresh() {
        let mut ledger = Ledger::default();
        ledger.fetched(3, 10);
        ledger.fetched(3, 5);
        assert_eq!(ledger.spent_on(3), 15);
        ledger.fetched(4, 1);
        assert_eq!((ledger.spent_on(3), ledger.spent_on(4)), (0, 1), "a new day starts at zero");
        let back = Ledger::decode(&ledger.encode());
        assert_eq!(back.day_bytes, 1);
        assert_eq!(Ledger::decode(b"{not json"), Ledger::default());
    }
}
