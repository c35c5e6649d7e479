//! Watching the mailbox: IMAP IDLE where the server offers it, polling
//! where it does not, reconnecting with backoff after any failure.
//!
//! Each pass hands every new mailmesh mail to `on_mail`, then calls
//! `after_pass` (which imports attachments from its own checkpoint). The
//! first pass after the engine starts reads the whole INBOX, so what arrived
//! while the node was off is handled too (the handlers are idempotent).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{Account, Secret};
use crate::mail::imap;
use crate::mailbox::{fetch_since, Found};

const IDLE_FOR: Duration = Duration::from_secs(5 * 60);
const POLL_EVERY: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Watches until `stop` is cancelled.
pub async fn watch<F, Fut, P, PassFut>(
    account: Account,
    password: Secret,
    stop: CancellationToken,
    mut on_mail: F,
    mut after_pass: P,
) where
    F: FnMut(Found) -> Fut,
    Fut: Future<Output = ()>,
    P: FnMut() -> PassFut,
    PassFut: Future<Output = ()>,
{
    let mut last_uid = 0u32;
    let mut backoff = Duration::from_secs(1);
    loop {
        let pass = async {
            let mut session = imap::connect(&account, &password).await?;
            let idle = session.capabilities().await.map(|c| c.has_str("IDLE")).unwrap_or(false);
            tracing::info!(idle, "watching the mailbox");
            loop {
                let (found, last) = fetch_since(&mut session, &account.imap.host, last_uid).await?;
                last_uid = last;
                for mail in found {
                    on_mail(mail).await;
                }
                after_pass().await;
                backoff = Duration::from_secs(1);
                if idle {
                    let mut handle = session.idle();
                    handle.init().await.map_err(|e| imap::classify(&account.imap.host, e))?;
                    let (wait, _interrupt) = handle.wait_with_timeout(IDLE_FOR);
                    wait.await.map_err(|e| imap::classify(&account.imap.host, e))?;
                    session = handle.done().await.map_err(|e| imap::classify(&account.imap.host, e))?;
                } else {
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), crate::mail::MailError>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            result = pass => if let Err(e) = result {
                tracing::warn!("mailbox watch interrupted: {e}; retrying in {backoff:?}");
            },
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
