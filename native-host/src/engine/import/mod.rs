//! Importing the attachments of the owner's mail into the drive, once for
//! all the owner's nodes.
//!
//! Every message in the watched folders (`mail_folders` in `config.json`,
//! INBOX by default) that is not a mailmesh mail is read once, in UID
//! order, with BODY.PEEK on a read-only (EXAMINE) session; each of its
//! attachments becomes a drive file recording where it came from. The
//! checkpoint (UIDVALIDITY, last UID, per folder) moves after each message,
//! so a restart or a dropped connection neither skips nor repeats a
//! message; if the server renumbers the mailbox (new UIDVALIDITY)
//! everything is read again, and identical content is stored once anyway.
//! A message that cannot be parsed is skipped with a logged reason, and so
//! is one the server fails to give in [`MAX_FETCH_ATTEMPTS`] passes in a
//! row (after a failure a pass stops, keeping its checkpoint; the same
//! message failing again counts).
//!
//! **One node imports** (`mailmesh_core::import::importer`: the online
//! member with the smallest id); it tells the others how far it got, what
//! it fetched today and how the import stands ([`share`]), and the others
//! adopt its checkpoints, so whoever imports next starts there and a node
//! that was offline fetches nothing already imported. Files reach the
//! others through the drive's catalog. A node that just started waits a
//! little for its fellow members before importing alone
//! ([`Settings::grace_ms`]).
//!
//! **Provider limits**: the account's daily budget (`Budget`, shared by
//! all nodes through their states) and the server's own word (a throttling
//! answer pauses the import, doubling from a minute to an hour); both
//! resume from the checkpoint. The import runs on the INBOX watch's
//! connection (`engine/mail_watch.rs`), in slices, so a node holds two IMAP
//! connections: the INBOX watch (and import) and mailmesh's folder.
//!
//! [`MailImport`] is a service: one pass at a time (its own lock), the
//! mailbox read through a [`MailReader`], parsing, coding and checkpoints
//! on blocking threads, new files handed to the drive network to spread,
//! what it knows of the others in a private map locked only to read or
//! change it. Its unit tests (`tests.rs`) read in-memory mailboxes, three
//! nodes over an in-memory mesh.

mod ledger;
mod pass;
pub mod settings;
mod share;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::import::{importer, Budget};
use tokio::sync::{broadcast, Mutex, Notify};

use self::ledger::{Ledger, LEDGER_KEY};
use self::share::Shared;
pub use self::share::TOPIC;
use super::drive_net::DriveNet;
use crate::api::{Event, ImportView};
use crate::drive::attachments;
use crate::drive::DriveError;
use crate::mail::MailError;
use crate::mailbox::MailReader;
use crate::mesh::links::Links;
use crate::sync::lock;

/// Passes in a row in which fetching one message may fail before it is
/// skipped: a message the server cannot serve must not block every later
/// one.
const MAX_FETCH_ATTEMPTS: u32 = 3;
/// Sizes asked per FETCH while listing what is left.
const SIZES_PER_FETCH: usize = 500;
/// The others hear how the import stands at least this often.
const SHARE_EVERY: Duration = Duration::from_secs(2);
/// What is imported is made durable (one sync, one index transaction)
/// once this much is written, or this long after the last time.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
const BATCH_EVERY: Duration = Duration::from_secs(2);
/// The longest wait after the server says it is limiting the account
/// (each refusal in a row doubles the first, [`Settings::backoff_ms`]).
const THROTTLE_MAX_MS: u64 = 3_600_000;

/// How the import behaves; the engine reads it from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a node that started waits for its fellow members before
    /// importing alone (`MAILMESH_IMPORT_GRACE_SECS`, default 30 s): one of
    /// them may be importing already.
    pub grace_ms: u64,
    /// The longest a pass imports before giving the connection back to
    /// the watch (which then reads mailmesh's own mails and comes back).
    pub slice: Duration,
    /// Messages parsed, coded and written at once (one per core, up to 4).
    pub parallel: usize,
    /// The first wait after the server says it is limiting the account
    /// (`MAILMESH_IMPORT_BACKOFF_SECS`, default a minute).
    pub backoff_ms: u64,
}

impl Settings {
    pub fn from_env() -> Settings {
        let secs = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        Settings {
            grace_ms: secs("MAILMESH_IMPORT_GRACE_SECS").unwrap_or(30) * 1000,
            slice: Duration::from_secs(20),
            parallel,
            backoff_ms: secs("MAILMESH_IMPORT_BACKOFF_SECS").unwrap_or(60) * 1000,
        }
    }
}

/// Unix milliseconds now: `crate::clock::now_ms` in the engine.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What a pass is to read and within what limits (from the account and
/// `config.json`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub folders: Vec<String>,
    pub budget: Option<Budget>,
    /// Mail that arrived before this day is passed over.
    pub since: Option<chrono::NaiveDate>,
    pub policy: attachments::Policy,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub messages: usize,
    pub files: usize,
    /// Its slice ended with messages left: call again soon.
    pub more: bool,
}

/// What is left in one folder, listed once and kept between passes (a
/// large mailbox is not listed again for every slice).
struct Pending {
    folder: String,
    validity: u32,
    /// Messages left, `(uid, size)`, oldest first.
    left: VecDeque<(u32, u32)>,
    /// The highest UID listed.
    listed_to: u32,
}

pub struct MailImport {
    me: NodeId,
    drive: Arc<DriveNet>,
    links: Arc<dyn Links>,
    events: broadcast::Sender<Event>,
    settings: Settings,
    /// When this engine started (ms), for the grace.
    started_ms: u64,
    /// The wall clock (tests move it).
    clock: Clock,
    /// One pass at a time. It also holds the message that failed to come
    /// and how many times (a pass stops at the first failure), and what is
    /// left per folder.
    busy: Mutex<Busy>,
    /// What it knows of the others and its own ledger (locked only to read
    /// or change them, never across an await).
    shared: std::sync::Mutex<Shared>,
    /// Wakes the INBOX watch for a pass: a member came or went, a pause
    /// ended, the grace passed.
    wake: Notify,
    this: Weak<MailImport>,
}

#[derive(Default)]
struct Busy {
    failed: Option<((String, u32), u32)>,
    pending: Vec<Pending>,
}

/// Why an import pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Drive(#[from] DriveError),
}

impl MailImport {
    pub fn new(
        me: NodeId,
        drive: Arc<DriveNet>,
        links: Arc<dyn Links>,
        events: broadcast::Sender<Event>,
        settings: Settings,
        clock: Clock,
    ) -> Arc<MailImport> {
        let started_ms = clock();
        let ledger = drive
            .drive()
            .index()
            .import_state(LEDGER_KEY)
            .ok()
            .flatten()
            .map(|bytes| Ledger::decode(&bytes))
            .unwrap_or_default();
        Arc::new_cyclic(|this| MailImport {
            me,
            drive,
            links,
            events,
            settings,
            started_ms,
            clock,
            busy: Mutex::new(Busy::default()),
            shared: std::sync::Mutex::new(Shared::new(ledger)),
            wake: Notify::new(),
            this: this.clone(),
        })
    }

    /// Resolves when a pass should run now (see [`MailImport::wake`]).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// The longest a pass on the watch's connection imports.
    pub fn slice(&self) -> Duration {
        self.settings.slice
    }

    /// Asks the INBOX watch for a pass.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the watch at `at_ms` (a pause or the grace ends).
    fn wake_at(&self, at_ms: u64) {
        let Some(this) = self.this.upgrade() else { return };
        let wait = Duration::from_millis(at_ms.saturating_sub((self.clock)()));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            this.wake();
        });
    }

    /// The server said it is limiting the account (to the watch, or to a
    /// fetch): the import waits, longer each time in a row; how long.
    pub fn server_limits(&self, why: &str) -> Duration {
        let now = (self.clock)();
        let until = lock(&self.shared).throttled(now, self.settings.backoff_ms, THROTTLE_MAX_MS);
        tracing::warn!("the server is limiting the account ({why}); the import waits");
        self.wake_at(until);
        self.changed();
        Duration::from_millis(until - now)
    }

    /// How the import stands, for `status`; `None` outside a network.
    pub fn view(&self, budget: Option<Budget>) -> Option<ImportView> {
        self.drive.in_network().then(|| lock(&self.shared).view((self.clock)(), self.other_importer(), budget))
    }

    /// Who imports now, if not this node.
    fn other_importer(&self) -> Option<NodeId> {
        let chosen = importer(self.me, &self.links.online_members());
        (chosen != self.me).then_some(chosen)
    }

    /// Whether a node that just started should wait for its fellow
    /// members; when the wait ends if so.
    fn in_grace(&self) -> Option<u64> {
        let members = self.drive.members();
        let online = self.links.online_members();
        let missing = members.iter().any(|m| *m != self.me && !online.contains(m));
        let ends = self.started_ms + self.settings.grace_ms;
        (missing && (self.clock)() < ends).then_some(ends)
    }

    /// Imports what arrived since the checkpoints, if this node is the one
    /// to, for at most `slice`; nothing outside a network (there is no key
    /// to seal files with).
    pub async fn pass(
        &self,
        mailbox: &mut dyn MailReader,
        plan: &Plan,
        slice: Option<Duration>,
    ) -> Result<Pass, ImportError> {
        let mut busy = self.busy.lock().await;
        tracing::debug!(folders = ?plan.folders, "an import pass");
        if !self.drive.in_network() {
            return Ok(Pass::default());
        }
        if let Some(other) = self.other_importer() {
            lock(&self.shared).set_doing(share::Doing::ByMember(other));
            self.changed();
            return Ok(Pass::default());
        }
        if let Some(ends) = self.in_grace() {
            lock(&self.shared).set_doing(share::Doing::Waiting);
            self.wake_at(ends);
            return Ok(Pass::default());
        }
        let now = (self.clock)();
        if let Some(until) = lock(&self.shared).paused_until(now) {
            self.wake_at(until);
            return Ok(Pass::default());
        }
        let started = tokio::time::Instant::now();
        let mut pass = Pass::default();
        let outcome = self.import_folders(&mut busy, mailbox, plan, slice, started, &mut pass).await;
        let left: usize = busy.pending.iter().map(|p| p.left.len()).sum();
        {
            let mut shared = lock(&self.shared);
            if left == 0 && outcome.is_ok() {
                shared.run_finished();
            }
            shared.set_doing(if left == 0 { share::Doing::Idle } else { share::Doing::Importing });
        }
        self.save_ledger().await;
        self.share(&self.links.online_members()).await;
        self.changed();
        if pass.messages > 0 {
            tracing::info!(messages = pass.messages, files = pass.files, left, "imported mail attachments");
        }
        outcome.map(|()| pass)
    }

    async fn save_ledger(&self) {
        let bytes = lock(&self.shared).ledger.encode();
        let saved = self.drive.on_disk(move |d| Ok(d.index().set_import_state(LEDGER_KEY, &bytes)?)).await;
        if let Err(e) = saved {
            tracing::warn!("cannot note how the import stands: {e}");
        }
    }

    fn changed(&self) {
        let _ = self.events.send(Event::StatusChanged);
    }
}
