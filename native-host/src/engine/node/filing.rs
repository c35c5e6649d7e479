//! Where this node's mailmesh mails go. A kind only the owner's nodes read
//! is appended to mailmesh's folder (`mailbox::FOLDER`), keeping the inbox
//! the owner's; the rest is mailed.
//!
//! The transition: a mailmesh from before the folder reads only the inbox.
//! A mail of the folder's kinds found in the inbox without the copy mark
//! says such a node was heard from; for [`OLDER_VERSION_GRACE_MS`] after
//! the last one, every mail filed is also mailed to the inbox as a copy.
//! (Anyone can mail the owner such a mail: the worst it does is bring back
//! the inbox copies.) A server that refuses the folder gets the mail in
//! the inbox instead.

use super::NodeService;
use crate::clock::now_ms;
use crate::mail::MailError;
use crate::mailbox::{self, Kind};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// How long after an older node was last heard from the inbox copies go on.
pub const OLDER_VERSION_GRACE_MS: u64 = 30 * DAY_MS;

impl NodeService {
    /// Sends a mailmesh mail with the saved account: filed or mailed by kind.
    pub(super) async fn send_mail(
        &self,
        kind: Kind,
        subject: &str,
        text: String,
        payload: Vec<u8>,
    ) -> Result<(), MailError> {
        let Some((account, _)) = self.account().await else {
            return Err(MailError::Protocol("no mail account is set up".into()));
        };
        let mail = self.mail().await?;
        if !kind.for_own_nodes() {
            return mail.send(mailbox::build(&account, kind, subject, text, payload)?).await;
        }
        let filed = mail.file(mailbox::build(&account, kind, subject, text.clone(), payload.clone())?).await;
        if let Err(e) = &filed {
            tracing::warn!(
                kind = kind.as_str(),
                "could not file the mail in the {} folder, mailing it: {e}",
                mailbox::FOLDER
            );
        }
        if filed.is_err() || self.older_version_lately().await {
            mail.send(mailbox::build_inbox_copy(&account, kind, subject, text, payload)?).await?;
        }
        Ok(())
    }

    /// Notes that a node of a mailmesh before the folder was heard from
    /// (written at most once a day).
    pub(super) async fn heard_older_version(&self) {
        let mut state = self.lock().await;
        let now = now_ms();
        if now.saturating_sub(state.config.older_version_heard_ms) < DAY_MS {
            return;
        }
        state.config.older_version_heard_ms = now;
        tracing::info!("a device with an older mailmesh reads the inbox: mailmesh mails go there too for a while");
        if let Err(e) = crate::config::save(&self.home, &state.config) {
            tracing::warn!("cannot note that an older mailmesh was heard from: {e}");
        }
    }

    async fn older_version_lately(&self) -> bool {
        let heard = self.lock().await.config.older_version_heard_ms;
        heard != 0 && now_ms().saturating_sub(heard) < OLDER_VERSION_GRACE_MS
    }
}
