//! One import pass over the watched folders: what is left is listed
//! (once, then only what is new), each message fetched on the session and
//! handed to a blocking thread to parse, code and write (up to
//! `Settings::parallel` at once, taken back in UID order), and the files
//! committed in batches with the folder's checkpoint. The pass stops at the
//! slice's end, when another node should import, when the day's budget is
//! spent or the server says it is limiting the account, and commits what it
//! fetched whatever stopped it.

use std::collections::VecDeque;
use std::time::Duration;

use mailmesh_core::import::day_of;

use super::ledger::Pause;
use super::{Busy, ImportError, MailImport, Pass, Pending, Plan, MAX_FETCH_ATTEMPTS, SIZES_PER_FETCH};
use super::{BATCH_BYTES, BATCH_EVERY, SHARE_EVERY};
use crate::drive::attachments;
use crate::drive::index::Checkpoint;
use crate::drive::{Batch, DriveError};
use crate::mail::MailError;
use crate::mailbox::{MailReader, Which};
use crate::sync::lock;

/// The folder a pass imports from: where it stands, and what it added
/// since the last commit.
struct Open<'a> {
    folder: &'a str,
    checkpoint: Checkpoint,
    batch: Batch,
    committed: tokio::time::Instant,
}

/// The pass as a whole: the plan it follows, how long it may take and
/// when it began, when the others last heard, what it fetched, and the
/// tally it returns.
struct Run<'p> {
    plan: &'p Plan,
    slice: Option<Duration>,
    started: tokio::time::Instant,
    last_share: tokio::time::Instant,
    bytes: u64,
    pass: &'p mut Pass,
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

impl MailImport {
    pub(super) async fn import_folders(
        &self,
        busy: &mut Busy,
        mailbox: &mut dyn MailReader,
        plan: &Plan,
        slice: Option<Duration>,
        started: tokio::time::Instant,
        pass: &mut Pass,
    ) -> Result<(), ImportError> {
        busy.pending.retain(|p| plan.folders.contains(&p.folder));
        let mut run = Run { plan, slice, started, last_share: tokio::time::Instant::now(), bytes: 0, pass };
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
            let outcome = self.import_folder(busy, at, mailbox, &mut open, &mut run).await;
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
    async fn import_folder(
        &self,
        busy: &mut Busy,
        at: usize,
        mailbox: &mut dyn MailReader,
        open: &mut Open<'_>,
        run: &mut Run<'_>,
    ) -> Result<Flow, ImportError> {
        let mut working: VecDeque<Work> = VecDeque::new();
        let flow = loop {
            if working.len() < self.settings.parallel {
                match self.next_message(busy, at, mailbox, open, run).await {
                    Next::Fetched { uid, size, raw } => {
                        let fetched = raw.as_ref().map_or(0, |r| r.len() as u64);
                        let job = self.start_work(uid, raw, run.plan.policy);
                        working.push_back(Work { uid, size, fetched, job });
                        continue;
                    }
                    Next::Stop(flow) => break flow,
                    Next::Done if working.is_empty() => break Ok(Flow::Next),
                    Next::Done => {}
                }
            }
            if let Some(work) = working.pop_front() {
                self.finish_work(work, open, run).await?;
            }
        };
        // What was fetched is imported whatever stopped the pass.
        while let Some(work) = working.pop_front() {
            self.finish_work(work, open, run).await?;
        }
        flow
    }

    /// The next message to import, fetched; or why there is none now.
    async fn next_message(
        &self,
        busy: &mut Busy,
        at: usize,
        mailbox: &mut dyn MailReader,
        open: &Open<'_>,
        run: &mut Run<'_>,
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
            if run.slice.is_some_and(|slice| run.started.elapsed() >= slice) {
                run.pass.more = true;
                return Next::Stop(Ok(Flow::Stop));
            }
            let now = (self.clock)();
            if let Err(resume) = self.within_budget(run.plan, now, size) {
                tracing::info!("the day's download budget is spent; the import goes on tomorrow");
                lock(&self.shared).pause(Pause::Budget, resume);
                self.wake_at(resume);
                return Next::Stop(Ok(Flow::Stop));
            }
            let raw = match mailbox.fetch_raw(uid).await {
                Ok(raw) => raw,
                Err(MailError::Throttled(why)) => {
                    self.server_limits(&why);
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
    async fn finish_work(&self, work: Work, open: &mut Open<'_>, run: &mut Run<'_>) -> Result<(), ImportError> {
        let (batch, files) =
            work.job.await.unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))?;
        open.batch.absorb(batch);
        run.pass.files += files;
        run.pass.messages += 1;
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
}
