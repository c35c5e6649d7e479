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
//! connection (`mail/watch.rs`), in slices, so a node holds two IMAP
//! connections: the INBOX watch (and import) and mailmesh's folder.
//!
//! [`MailImport`] is a service: one pass at a time (its own lock), the
//! mailbox read through a [`MailReader`], parsing, coding and checkpoints
//! on blocking threads, new files handed to the drive network to spread,
//! what it knows of the others in a private map locked only to read or
//! change it. Its unit tests (`tests.rs`) read in-memory mailboxes, three
//! nodes over an in-memory mesh.

mod ledger;
pub mod settings;
mod share;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::import::{day_of, importer, Budget};
use tokio::sync::{broadcast, Mutex, Notify};

use self::ledger::{Ledger, Pause, LEDGER_KEY};
use self::share::Shared;
pub use self::share::TOPIC;
use super::drive_net::DriveNet;
use crate::api::{Event, ImportView};
use crate::drive::attachments;
use crate::drive::index::Checkpoint;
use crate::drive::{Batch, DriveError};
use crate::mail::MailError;
use crate::mailbox::{MailReader, Which};
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
/// The first wait after the server says it is limiting the account, and
/// the longest (each refusal in a row doubles it).
const THROTTLE_FIRST_MS: u64 = 60_000;
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
}

impl Settings {
    pub fn from_env() -> Settings {
        let grace = std::env::var("MAILMESH_IMPORT_GRACE_SECS").ok().and_then(|s| s.parse::<u64>().ok());
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        Settings { grace_ms: grace.unwrap_or(30) * 1000, slice: Duration::from_secs(20), parallel }
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

/// The folder a pass imports from: where it stands, and what it added
/// since the last commit.
struct Open<'a> {
    folder: &'a str,
    checkpoint: Checkpoint,
    batch: Batch,
    committed: tokio::time::Instant,
}

/// The pass as a whole: when it began, when the others last heard, what
/// it fetched.
struct Run {
    started: tokio::time::Instant,
    last_share: tokio::time::Instant,
    bytes: u64,
}

/// One message's attachments being added on a blocking thread: the batch
/// of its files and how many.
type Job = tokio::task::JoinHandle<Result<(Batch, usize), DriveError>>;

/// A fetched message being worked on.
struct Work {
    uid: u32,
    /// Its size as listed, and the bytes that came.
    size: u32,
    fetched: u64,
    job: Job,
}

/// What [`MailImport::next_message`] found.
enum Next {
    /// Fetched (`raw` is `None` for a message gone or skipped).
    Fetched { uid: u32, size: u32, raw: Option<Vec<u8>> },
    /// Nothing left in the folder.
    Done,
    /// The pass stops here (or fails).
    Stop(Result<Flow, ImportError>),
}

/// Whether a pass goes on to the next folder.
enum Flow {
    Next,
    Stop,
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

    async fn import_folders(
        &self,
        busy: &mut Busy,
        mailbox: &mut dyn MailReader,
        plan: &Plan,
        slice: Option<Duration>,
        started: tokio::time::Instant,
        pass: &mut Pass,
    ) -> Result<(), ImportError> {
        busy.pending.retain(|p| plan.folders.contains(&p.folder));
        let mut run = Run { started, last_share: tokio::time::Instant::now(), bytes: 0 };
        for folder in &plan.folders {
            let validity = match mailbox.examine(folder).await {
                Ok(validity) => validity,
                Err(e) => {
                    tracing::warn!(folder, "cannot open a watched folder: {e}");
                    continue;
                }
            };
            let checkpoint = self.checkpoint(folder, validity).await?;
            let which = plan.since.map_or(Which::OwnerMail, Which::OwnerMailSince);
            let at = self.list_left(busy, mailbox, folder, validity, checkpoint.last_uid, which).await?;
            self.update_totals(busy);
            let mut open = Open { folder, checkpoint, batch: Batch::default(), committed: tokio::time::Instant::now() };
            let outcome = self.import_folder(busy, at, mailbox, plan, slice, &mut open, &mut run, pass).await;
            // Whatever stopped it, what was imported is made durable and
            // the checkpoint moves with it.
            self.commit(&mut open).await?;
            match outcome? {
                Flow::Next => {}
                Flow::Stop => return Ok(()),
            }
        }
        Ok(())
    }

    /// Imports what is left in one folder: messages are fetched one after
    /// the other on the session while up to [`Settings::parallel`] of them
    /// are parsed, coded and written on blocking threads; they are taken
    /// back in UID order, so the checkpoint only ever passes messages whose
    /// files are in the batch.
    #[allow(clippy::too_many_arguments)]
    async fn import_folder(
        &self,
        busy: &mut Busy,
        at: usize,
        mailbox: &mut dyn MailReader,
        plan: &Plan,
        slice: Option<Duration>,
        open: &mut Open<'_>,
        run: &mut Run,
        pass: &mut Pass,
    ) -> Result<Flow, ImportError> {
        let mut working: VecDeque<Work> = VecDeque::new();
        let flow = loop {
            if working.len() < self.settings.parallel {
                match self.next_message(busy, at, mailbox, plan, slice, open, run, pass).await {
                    Next::Fetched { uid, size, raw } => {
                        let fetched = raw.as_ref().map_or(0, |r| r.len() as u64);
                        working.push_back(Work { uid, size, fetched, job: self.start_work(uid, raw, plan.policy) });
                        continue;
                    }
                    Next::Stop(flow) => break flow,
                    Next::Done if working.is_empty() => break Ok(Flow::Next),
                    Next::Done => {}
                }
            }
            if let Some(work) = working.pop_front() {
                self.finish_work(work, open, run, pass).await?;
            }
        };
        // What was fetched is imported whatever stopped the pass.
        while let Some(work) = working.pop_front() {
            self.finish_work(work, open, run, pass).await?;
        }
        flow
    }

    /// The next message to import, fetched; or why there is none now.
    #[allow(clippy::too_many_arguments)]
    async fn next_message(
        &self,
        busy: &mut Busy,
        at: usize,
        mailbox: &mut dyn MailReader,
        plan: &Plan,
        slice: Option<Duration>,
        open: &Open<'_>,
        run: &Run,
        pass: &mut Pass,
    ) -> Next {
        let (folder, validity) = (open.folder, open.checkpoint.uid_validity);
        loop {
            let Some(&(uid, size)) = busy.pending[at].left.front() else { return Next::Done };
            // Another node imported it (it was importing when this one
            // took over), or another node imports now.
            if lock(&self.shared).heard_past(folder, validity, uid) {
                busy.pending[at].left.pop_front();
                continue;
            }
            if self.other_importer().is_some() {
                return Next::Stop(Ok(Flow::Stop));
            }
            if slice.is_some_and(|slice| run.started.elapsed() >= slice) {
                pass.more = true;
                return Next::Stop(Ok(Flow::Stop));
            }
            let now = (self.clock)();
            if let Err(resume) = self.within_budget(plan, now, size) {
                tracing::info!("the day's download budget is spent; the import goes on tomorrow");
                lock(&self.shared).pause(Pause::Budget, resume);
                self.wake_at(resume);
                return Next::Stop(Ok(Flow::Stop));
            }
            let raw = match mailbox.fetch_raw(uid).await {
                Ok(raw) => raw,
                Err(MailError::Throttled(why)) => {
                    let until = lock(&self.shared).throttled(now, THROTTLE_FIRST_MS, THROTTLE_MAX_MS);
                    tracing::warn!(folder, uid, "the server is limiting the account ({why}); the import waits");
                    self.wake_at(until);
                    return Next::Stop(Ok(Flow::Stop));
                }
                Err(e) => {
                    let at = (folder.to_string(), uid);
                    let tries = match &busy.failed {
                        Some((last, tries)) if *last == at => tries + 1,
                        _ => 1,
                    };
                    if tries < MAX_FETCH_ATTEMPTS {
                        busy.failed = Some((at, tries));
                        return Next::Stop(Err(e.into()));
                    }
                    tracing::warn!(folder, uid, "skipped a message the server failed to give {tries} times: {e}");
                    None
                }
            };
            busy.failed = None;
            busy.pending[at].left.pop_front();
            lock(&self.shared).fetched(day_of(now), raw.as_ref().map_or(0, |r| r.len() as u64));
            return Next::Fetched { uid, size, raw };
        }
    }

    /// Starts adding one message's attachments to a batch of its own on a
    /// blocking thread.
    fn start_work(&self, uid: u32, raw: Option<Vec<u8>>, policy: attachments::Policy) -> Job {
        let drive = self.drive.drive().clone();
        let network = self.drive.network_key();
        let now = (self.clock)();
        tokio::task::spawn_blocking(move || {
            let mut batch = Batch::default();
            let Some(raw) = raw else { return Ok((batch, 0)) };
            let network = network.ok_or(DriveError::NoNetwork)?;
            let mut added = 0;
            let outcome = attachments::extract(&raw, |origin, attachment| {
                if let Some(why) = policy.leaves_out(&attachment) {
                    return tracing::debug!(uid, name = %attachment.name, "not imported: {why}");
                }
                let (name, media_type) = (&attachment.name, &attachment.media_type);
                let origin = Some(origin.clone());
                match drive.add_bytes_to(&mut batch, &network, name, media_type, origin, &attachment.bytes, now) {
                    Ok(_) => added += 1,
                    Err(e) => tracing::warn!(uid, name = %attachment.name, "could not import an attachment: {e}"),
                }
            });
            match outcome {
                Ok(0) => {}
                Ok(left) => tracing::warn!(uid, left, "a message with too many attachments: the rest were skipped"),
                Err(e) => tracing::info!(uid, "skipping a message: {e}"),
            }
            Ok((batch, added))
        })
    }

    /// Takes one message's work back: its files join the open batch and
    /// the checkpoint passes it; the batch is committed when large or old
    /// enough, and the others hear how far the import got.
    async fn finish_work(
        &self,
        work: Work,
        open: &mut Open<'_>,
        run: &mut Run,
        pass: &mut Pass,
    ) -> Result<(), ImportError> {
        let (batch, files) =
            work.job.await.unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))?;
        open.batch.absorb(batch);
        pass.files += files;
        pass.messages += 1;
        run.bytes += work.fetched;
        open.checkpoint.last_uid = work.uid;
        lock(&self.shared).imported(work.size, run.bytes, run.started);
        if open.batch.bytes() >= BATCH_BYTES || open.committed.elapsed() >= BATCH_EVERY {
            self.commit(open).await?;
        }
        if run.last_share.elapsed() >= SHARE_EVERY {
            run.last_share = tokio::time::Instant::now();
            self.save_ledger().await;
            self.share(&self.links.online_members()).await;
            self.changed();
        }
        Ok(())
    }

    /// Whether a message of `size` may be fetched now; when the budget
    /// allows more if not.
    fn within_budget(&self, plan: &Plan, now: u64, size: u32) -> Result<(), u64> {
        let Some(budget) = plan.budget else { return Ok(()) };
        let spent = lock(&self.shared).spent_today(now);
        budget.allows(now, spent, u64::from(size)).inspect_err(|_| {
            tracing::info!(
                spent,
                budget = budget.bytes_per_day,
                "the day's download budget is spent; the import goes on tomorrow"
            );
        })
    }

    /// Makes the open batch durable with the folder's checkpoint, then
    /// spreads its files and tells the others how far the import got.
    async fn commit(&self, open: &mut Open<'_>) -> Result<(), DriveError> {
        let batch = std::mem::take(&mut open.batch);
        let ids = batch.file_ids();
        let (name, checkpoint) = (open.folder.to_string(), open.checkpoint);
        self.drive.on_disk(move |d| d.commit(batch, Some((&name, checkpoint)))).await?;
        open.committed = tokio::time::Instant::now();
        lock(&self.shared).committed(open.folder, checkpoint);
        for id in ids {
            self.drive.spread(id);
        }
        Ok(())
    }

    /// Where the import of `folder` stands: its own checkpoint, or what
    /// another node said, whichever is further under this UIDVALIDITY.
    async fn checkpoint(&self, folder: &str, validity: u32) -> Result<Checkpoint, DriveError> {
        let name = folder.to_string();
        let own = self.drive.on_disk(move |d| Ok(d.index().checkpoint(&name)?)).await?;
        let own = own.filter(|c| c.uid_validity == validity).map_or(0, |c| c.last_uid);
        let heard = lock(&self.shared).heard(folder, validity).unwrap_or(0);
        Ok(Checkpoint { uid_validity: validity, last_uid: own.max(heard) })
    }

    /// Lists what is left in `folder` past `after` (only what is new since
    /// the last listing, when the folder was not renumbered); its index in
    /// `busy.pending`.
    async fn list_left(
        &self,
        busy: &mut Busy,
        mailbox: &mut dyn MailReader,
        folder: &str,
        validity: u32,
        after: u32,
        which: Which,
    ) -> Result<usize, MailError> {
        let at = match busy.pending.iter().position(|p| p.folder == folder && p.validity == validity) {
            Some(at) => at,
            None => {
                busy.pending.retain(|p| p.folder != folder);
                busy.pending.push(Pending {
                    folder: folder.to_string(),
                    validity,
                    left: VecDeque::new(),
                    listed_to: after,
                });
                busy.pending.len() - 1
            }
        };
        let pending = &mut busy.pending[at];
        while pending.left.front().is_some_and(|(uid, _)| *uid <= after) {
            pending.left.pop_front();
        }
        let from = pending.listed_to.max(after);
        let uids = mailbox.uids_after(from, which).await?;
        for batch in uids.chunks(SIZES_PER_FETCH) {
            let mut sizes = mailbox.sizes(batch).await?;
            sizes.sort_unstable();
            pending.left.extend(sizes);
        }
        pending.listed_to = uids.last().copied().unwrap_or(from).max(from);
        Ok(at)
    }

    /// The run's totals: what was done in it and what is left.
    fn update_totals(&self, busy: &Busy) {
        let left = busy.pending.iter().flat_map(|p| p.left.iter());
        let (messages, bytes) = left.fold((0u32, 0u64), |(m, b), (_, size)| (m + 1, b + u64::from(*size)));
        lock(&self.shared).left(messages, bytes);
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
