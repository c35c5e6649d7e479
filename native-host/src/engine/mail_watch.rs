//! Watching one folder of the mailbox: IMAP IDLE where the server offers
//! it, polling where it does not, reconnecting with backoff after any
//! failure. IDLE tells of one folder only, so the engine runs one watch,
//! on a connection of its own, for INBOX and one for mailmesh's folder
//! (`mailbox::FOLDER`, made here if missing).
//!
//! Each pass hands every new mailmesh mail to `on_mail`, one at a time
//! (see `mailbox::read_mailmesh` for the size bounds), then runs the
//! watch's [`SessionWork`] on the same connection (for INBOX: finish a key
//! rotation, import attachments), so a node holds two IMAP connections.
//! Work with more to do gets the connection back at once (after the
//! mailmesh mails that came meanwhile); work that wants a pass while the
//! watch idles interrupts IDLE.
//! Where the mailmesh mails were read to is kept in the drive's index per
//! account and folder, so a start reads only what arrived meanwhile; a
//! renumbered folder is read again (the handlers are idempotent).

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{Account, Secret};
use crate::drive::index::Checkpoint;
use crate::drive::Drive;
use crate::mail::imap::{self, ImapSession};
use crate::mailbox::{read_mailmesh, Found, ImapReader, INBOX};

const IDLE_FOR: Duration = Duration::from_secs(5 * 60);
const POLL_EVERY: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Work done on a watch's connection after each pass.
pub trait SessionWork: Send + Sync {
    /// Runs with the session (any folder may be left open); `true` if it
    /// has more to do now.
    fn run<'a>(&'a mut self, session: &'a mut ImapSession, host: &'a str) -> BoxFuture<'a, bool>;
    /// Resolves when it wants a pass while the watch idles.
    fn wanted(&self) -> BoxFuture<'_, ()>;
    /// The server refused the watch: how long to wait before asking again,
    /// if the work knows better than the watch's own backoff (a server
    /// limiting the account says so for the import too).
    fn refused(&mut self, _error: &crate::mail::MailError) -> Option<Duration> {
        None
    }
}

/// Watches `folder` until `stop` is cancelled.
pub async fn watch<F, Fut>(
    folder: &'static str,
    account: Account,
    password: Secret,
    drive: Arc<Drive>,
    stop: CancellationToken,
    mut on_mail: F,
    mut work: Option<&mut dyn SessionWork>,
) where
    F: FnMut(Found) -> Fut,
    Fut: Future<Output = ()>,
{
    // INBOX keeps the key it had before there was a folder.
    let key = match folder {
        INBOX => format!("mailmesh mails of {}", account.email),
        _ => format!("mailmesh mails of {} in {folder}", account.email),
    };
    let mut checkpoint = load(&drive, &key).await;
    let mut backoff = Duration::from_secs(1);
    loop {
        let pass = async {
            let mut session = imap::connect(&account, &password).await?;
            if folder != INBOX {
                imap::ensure_folder(&mut session, &account.imap.host, folder).await?;
            }
            let idle = session.capabilities().await.map(|c| c.has_str("IDLE")).unwrap_or(false);
            tracing::info!(idle, folder, "watching the mailbox");
            let host = account.imap.host.as_str();
            loop {
                // What the folder holds as this pass begins: mail that comes
                // while it runs is told of in answers to its commands, not
                // by the IDLE after it, so the pass looks again if this
                // changed by then.
                let before = imap::folder_state(&mut session, host, folder).await?;
                let mut reader = ImapReader { session: &mut session, host: host.to_string() };
                let read = read_mailmesh(&mut reader, folder, checkpoint, &mut on_mail).await?;
                if checkpoint != Some(read) {
                    checkpoint = Some(read);
                    save(&drive, &key, read).await;
                }
                backoff = Duration::from_secs(1);
                if let Some(work) = work.as_deref_mut() {
                    if work.run(&mut session, host).await {
                        continue;
                    }
                }
                // IDLE tells of the open folder: this one again.
                if imap::folder_state(&mut session, host, folder).await? != before {
                    continue;
                }
                let wanted = async {
                    match work.as_deref() {
                        Some(work) => work.wanted().await,
                        None => std::future::pending().await,
                    }
                };
                tracing::debug!(folder, "idling");
                if idle {
                    let mut handle = session.idle();
                    handle.init().await.map_err(|e| imap::classify(&account.imap.host, e))?;
                    {
                        let (wait, interrupt) = handle.wait_with_timeout(IDLE_FOR);
                        tokio::pin!(wait);
                        let idled = tokio::select! {
                            done = &mut wait => done,
                            () = wanted => {
                                // Ends the IDLE; the wait then returns at once.
                                drop(interrupt);
                                wait.await
                            }
                        };
                        idled.map_err(|e| imap::classify(&account.imap.host, e))?;
                    }
                    session = handle.done().await.map_err(|e| imap::classify(&account.imap.host, e))?;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(POLL_EVERY) => {}
                        () = wanted => {}
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), crate::mail::MailError>(())
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            result = pass => result,
        };
        let mut wait = backoff;
        match outcome {
            // The server will not have mailmesh's folder (a namespace that
            // wants another name, a folder limit): mailmesh's mails then go
            // to the inbox (`engine/node/filing.rs`), which the INBOX watch
            // reads. Asking again changes nothing.
            Err(crate::mail::MailError::Rejected(why)) if folder != INBOX => {
                tracing::warn!(folder, "the server refuses mailmesh's folder ({why}); its mails go to the inbox");
                stop.cancelled().await;
                return;
            }
            Err(e) => {
                wait = work.as_deref_mut().and_then(|work| work.refused(&e)).unwrap_or(backoff);
                tracing::warn!(folder, "mailbox watch interrupted: {e}; retrying in {wait:?}");
            }
            Ok(()) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Where the mailmesh mails were read to (read on a blocking thread).
async fn load(drive: &Arc<Drive>, key: &str) -> Option<Checkpoint> {
    let (drive, key) = (drive.clone(), key.to_string());
    match tokio::task::spawn_blocking(move || drive.index().checkpoint(&key)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::warn!("cannot read where the mailbox was read to; reading it all: {e}");
            None
        }
        Err(_) => None,
    }
}

async fn save(drive: &Arc<Drive>, key: &str, checkpoint: Checkpoint) {
    let (drive, key) = (drive.clone(), key.to_string());
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || drive.index().set_checkpoint(&key, checkpoint)).await {
        tracing::warn!("cannot note where the mailbox was read to: {e}");
    }
}
