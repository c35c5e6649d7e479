//! What the import knows of the owner's other nodes, and what it tells
//! them (`node.import`, a [`mailmesh_core::import::ImportState`]): how far
//! each folder was imported, what this node fetched today, and how the
//! import stands. The importing node tells the online members every few
//! seconds and at the end of each pass; every node tells a member whose
//! link comes up. A member's marks are adopted (and saved, when they
//! extend this node's own checkpoint under the same UIDVALIDITY), so the
//! next importer starts there.

use std::collections::HashMap;

use mailmesh_core::identity::NodeId;
use mailmesh_core::import::{day_of, Budget, ImportState, Mark, Progress};
use mailmesh_core::peer::frame::Frame;

use super::ledger::{Ledger, Pause};
use super::MailImport;
use crate::api::ImportView;
use crate::drive::index::Checkpoint;
use crate::sync::lock;

/// The topic import states travel under (the `node.` route: members only).
pub const TOPIC: &str = "node.import";

/// What this node's import is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    Idle,
    Importing,
    /// It just started and waits for its fellow members.
    Waiting,
    /// Another member imports.
    ByMember(NodeId),
}

pub struct Shared {
    pub ledger: Ledger,
    doing: Doing,
    /// Per folder, the furthest mark another node told of.
    heard: HashMap<String, Mark>,
    /// What each other node fetched on which UTC day.
    spent: HashMap<NodeId, (u32, u64)>,
    /// How the import stands, as each other node last told.
    theirs: HashMap<NodeId, Progress>,
    /// This node's own checkpoints, as far as this run knows them.
    marks: HashMap<String, Checkpoint>,
    /// Bytes per second over the last pass.
    rate: u64,
}

impl Shared {
    pub fn new(ledger: Ledger) -> Shared {
        Shared {
            ledger,
            doing: Doing::Idle,
            heard: HashMap::new(),
            spent: HashMap::new(),
            theirs: HashMap::new(),
            marks: HashMap::new(),
            rate: 0,
        }
    }

    pub fn set_doing(&mut self, doing: Doing) {
        self.doing = doing;
    }

    /// Until when the import waits, if it does at `now_ms`; a wait that
    /// ended is forgotten.
    /// A spent budget is checked again at every pass (the owner may have
    /// raised it); the server's word is waited out.
    pub fn paused_until(&mut self, now_ms: u64) -> Option<u64> {
        if self.ledger.pause == Some(Pause::Server) && self.ledger.paused(now_ms) {
            return Some(self.ledger.paused_until_ms);
        }
        self.ledger.pause = None;
        None
    }

    pub fn pause(&mut self, why: Pause, until_ms: u64) {
        self.ledger.pause = Some(why);
        self.ledger.paused_until_ms = until_ms;
    }

    /// The server is limiting the account: wait a minute, then twice as
    /// long each time in a row, up to an hour. Until when.
    pub fn throttled(&mut self, now_ms: u64, first_ms: u64, max_ms: u64) -> u64 {
        let wait = match self.ledger.backoff_ms {
            0 => first_ms,
            last => (last * 2).min(max_ms),
        };
        self.ledger.backoff_ms = wait;
        self.pause(Pause::Server, now_ms + wait);
        now_ms + wait
    }

    /// Another node's mark for `folder` under `validity`.
    pub fn heard(&self, folder: &str, validity: u32) -> Option<u32> {
        self.heard.get(folder).filter(|m| m.uid_validity == validity).map(|m| m.last_uid)
    }

    /// Whether another node said it imported `uid` already.
    pub fn heard_past(&self, folder: &str, validity: u32, uid: u32) -> bool {
        self.heard(folder, validity).is_some_and(|last| uid <= last)
    }

    /// What all the owner's nodes fetched on `now_ms`'s UTC day.
    pub fn spent_today(&self, now_ms: u64) -> u64 {
        let day = day_of(now_ms);
        let others: u64 = self.spent.values().filter(|(d, _)| *d == day).map(|(_, bytes)| bytes).sum();
        self.ledger.spent_on(day) + others
    }

    /// `bytes` came from the account on `day` (they count against its
    /// budget).
    pub fn fetched(&mut self, day: u32, bytes: u64) {
        self.ledger.fetched(day, bytes);
        self.ledger.backoff_ms = 0;
    }

    /// One message of listed `size` was imported (not durable yet: see
    /// `committed`); the pass fetched `pass_bytes` since `started`.
    pub fn imported(&mut self, size: u32, pass_bytes: u64, started: tokio::time::Instant) {
        self.ledger.run_messages += 1;
        self.ledger.run_bytes += u64::from(size);
        self.ledger.left_messages = self.ledger.left_messages.saturating_sub(1);
        self.ledger.left_bytes = self.ledger.left_bytes.saturating_sub(u64::from(size));
        let millis = started.elapsed().as_millis() as u64;
        if millis >= 500 {
            self.rate = pass_bytes * 1000 / millis;
        }
    }

    /// What was imported up to `checkpoint` is durable: the others may
    /// hear of it.
    pub fn committed(&mut self, folder: &str, checkpoint: Checkpoint) {
        self.marks.insert(folder.to_string(), checkpoint);
    }

    /// What is left, as just listed.
    pub fn left(&mut self, messages: u32, bytes: u64) {
        self.ledger.left_messages = messages;
        self.ledger.left_bytes = bytes;
    }

    /// Nothing is left: the next message starts a new run.
    pub fn run_finished(&mut self) {
        self.ledger.run_messages = 0;
        self.ledger.run_bytes = 0;
        self.left(0, 0);
    }

    fn progress(&self) -> Progress {
        Progress {
            messages_done: self.ledger.run_messages,
            messages_total: self.ledger.run_messages + self.ledger.left_messages,
            bytes_done: self.ledger.run_bytes,
            bytes_total: self.ledger.run_bytes + self.ledger.left_bytes,
            rate: self.rate,
            paused_until_ms: if self.ledger.pause.is_some() { self.ledger.paused_until_ms } else { 0 },
        }
    }

    fn state(&self, now_ms: u64) -> ImportState {
        let day = day_of(now_ms);
        let marks = self
            .marks
            .iter()
            .map(|(folder, c)| Mark { folder: folder.clone(), uid_validity: c.uid_validity, last_uid: c.last_uid })
            .collect();
        ImportState { marks, day, day_bytes: self.ledger.spent_on(day), progress: self.progress() }
    }

    /// Takes in what a member told; the marks that go further than what
    /// was heard before (to save where they extend this node's own).
    fn merge(&mut self, from: NodeId, state: ImportState) -> Vec<Mark> {
        self.spent.insert(from, (state.day, state.day_bytes));
        // One node imports at a time: one that takes over goes on counting
        // the same run.
        if self.doing != Doing::Importing {
            let p = &state.progress;
            self.ledger.run_messages = p.messages_done;
            self.ledger.run_bytes = p.bytes_done;
            self.left(p.messages_total.saturating_sub(p.messages_done), p.bytes_total.saturating_sub(p.bytes_done));
        }
        self.theirs.insert(from, state.progress);
        let mut further = Vec::new();
        for mark in state.marks {
            let known = self.heard.get(&mark.folder);
            if known.is_none_or(|k| k.uid_validity != mark.uid_validity || k.last_uid < mark.last_uid) {
                self.heard.insert(mark.folder.clone(), mark.clone());
                further.push(mark);
            }
        }
        further
    }

    pub fn view(&self, now_ms: u64, other: Option<NodeId>, budget: Option<Budget>) -> ImportView {
        let mut progress = self.progress();
        let state = match (other, self.doing) {
            (Some(other), _) => {
                progress = self.theirs.get(&other).copied().unwrap_or_default();
                "by_device"
            }
            (None, Doing::Waiting) => "waiting_for_devices",
            (None, _) if self.ledger.paused(now_ms) => match self.ledger.pause {
                Some(Pause::Budget) => "paused_budget",
                _ => "paused_server",
            },
            (None, Doing::Importing) => "importing",
            (None, _) => "idle",
        };
        ImportView {
            state: state.into(),
            by_device: other.map(|id| id.to_string()),
            messages_done: progress.messages_done,
            messages_total: progress.messages_total,
            bytes_done: progress.bytes_done,
            bytes_total: progress.bytes_total,
            seconds_left: progress.seconds_left(),
            resumes_at_ms: (progress.paused_until_ms > now_ms).then_some(progress.paused_until_ms),
            today_bytes: self.spent_today(now_ms),
            budget_bytes_per_day: budget.map(|b| b.bytes_per_day),
        }
    }
}

impl MailImport {
    /// Tells `peers` how the import stands here.
    pub async fn share(&self, peers: &[NodeId]) {
        if peers.is_empty() {
            return;
        }
        let payload = lock(&self.shared).state((self.clock)()).encode();
        for peer in peers {
            let frame = Frame::Data { topic: TOPIC.into(), payload: payload.clone() };
            let _ = self.links.send_to(peer, frame).await;
        }
    }

    /// A member's link came up: tell it, and see whether this node is
    /// still the one to import (or now is).
    pub async fn on_member_up(&self, peer: NodeId) {
        self.share(&[peer]).await;
        self.wake();
    }

    /// What a member told (from the `node.` route: members only).
    pub async fn on_state(&self, from: NodeId, payload: &[u8]) {
        let state = match ImportState::decode(payload) {
            Ok(state) => state,
            Err(e) => return tracing::info!(%from, "ignoring an import state: {e}"),
        };
        let further = lock(&self.shared).merge(from, state);
        if !further.is_empty() {
            let saved = self
                .drive
                .on_disk(move |drive| {
                    for mark in further {
                        let own = drive.index().checkpoint(&mark.folder)?;
                        if own.is_none_or(|c| c.uid_validity == mark.uid_validity && c.last_uid < mark.last_uid) {
                            let checkpoint = Checkpoint { uid_validity: mark.uid_validity, last_uid: mark.last_uid };
                            drive.index().set_checkpoint(&mark.folder, checkpoint)?;
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = saved {
                tracing::warn!("cannot note how far another device imported: {e}");
            }
        }
        self.changed();
    }
}
