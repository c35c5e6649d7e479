//! Importing the attachments of the owner's mail into the drive.
//!
//! Every message in the watched folders (`mail_folders` in `config.json`,
//! INBOX by default) that is not a mailmesh mail is read once, in UID
//! order, with BODY.PEEK on a read-only (EXAMINE) session; each of its
//! attachments becomes a drive file recording where it came from. The
//! checkpoint (UIDVALIDITY, last UID, per folder) moves after each message, so a restart
//! or a dropped connection neither skips nor repeats a message; if the
//! server renumbers the mailbox (new UIDVALIDITY) everything is read again,
//! and identical content is stored once anyway. A message that cannot be
//! parsed is skipped with a logged reason.

use crate::drive::attachments;
use crate::drive::index::Checkpoint;
use crate::mail::{imap, MailError};
use crate::mailbox::{examine, fetch_raw, uids_after, HEADER};

use super::Engine;
use crate::clock::now_ms;

impl Engine {
    /// Imports what arrived since the checkpoint. Returns how many messages
    /// were read and how many files they gave.
    pub async fn import_mail(&self) -> Result<(usize, usize), String> {
        let _one_at_a_time = self.importing.lock().await;
        let Some(network) = self.network_key().await else {
            return Ok((0, 0));
        };
        let (account, folders) = {
            let state = self.state.lock().await;
            (state.account.clone(), state.config.mail_folders.clone())
        };
        let Some((account, password)) = account else {
            return Ok((0, 0));
        };
        let host = account.imap.host.clone();
        let mut session = imap::connect(&account, &password).await.map_err(|e| e.to_string())?;
        let outcome = async {
            let text = |e: MailError| e.to_string();
            let index_error = |e: crate::drive::index::IndexError| e.to_string();
            let (mut messages, mut files) = (0, 0);
            for folder in &folders {
                let validity = match examine(&mut session, &host, folder).await {
                    Ok(validity) => validity,
                    Err(e) => {
                        tracing::warn!(folder, "cannot open a watched folder: {e}");
                        continue;
                    }
                };
                let mut checkpoint = match self.drive.index().checkpoint(folder).map_err(index_error)? {
                    Some(c) if c.uid_validity == validity => c,
                    _ => Checkpoint { uid_validity: validity, last_uid: 0 },
                };
                let criteria = format!("NOT HEADER {HEADER} \"\"");
                for uid in uids_after(&mut session, &host, checkpoint.last_uid, &criteria).await.map_err(text)? {
                    if let Some(raw) = fetch_raw(&mut session, &host, uid).await.map_err(text)? {
                        files += self.import_message(&network, uid, raw).await;
                    }
                    messages += 1;
                    checkpoint.last_uid = uid;
                    self.drive.index().set_checkpoint(folder, checkpoint).map_err(index_error)?;
                }
            }
            Ok::<_, String>((messages, files))
        }
        .await;
        let _ = session.logout().await;
        if let Ok((messages, files)) = outcome {
            if messages > 0 {
                tracing::info!(messages, files, "imported mail attachments");
            }
        }
        outcome
    }

    /// Adds one message's attachments; returns how many were added.
    async fn import_message(&self, network: &mailmesh_core::drive::NetworkKey, uid: u32, raw: Vec<u8>) -> usize {
        let network = network.clone();
        let added = self
            .drive_blocking(move |drive| {
                let (origin, found) = match attachments::extract(&raw) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        tracing::info!(uid, "skipping a message: {e}");
                        return Ok(Vec::new());
                    }
                };
                let mut added = Vec::new();
                for attachment in found {
                    match drive.add_bytes(
                        &network,
                        &attachment.name,
                        &attachment.media_type,
                        Some(origin.clone()),
                        &attachment.bytes,
                        now_ms(),
                    ) {
                        Ok(file) => added.push(file.id),
                        Err(e) => tracing::warn!(uid, name = %attachment.name, "could not import an attachment: {e}"),
                    }
                }
                Ok(added)
            })
            .await;
        let added = added.unwrap_or_default();
        for id in &added {
            self.spread(id.clone());
        }
        added.len()
    }
}
