//! Mail the owner writes in the app page or with `mailmesh mail send`:
//!
//! ```text
//! recipients checked ─▶ each attached drive file restored into drive/tmp
//!   (fragments from whichever nodes are online) ─▶ one MIME file composed
//!   from them a block at a time (mail/compose.rs) ─▶ SMTP (mapped, not
//!   read) ─▶ temp files removed, whatever happened
//! ```

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use lettre::address::Envelope;
use thiserror::Error;

use super::Engine;
use crate::drive::DriveError;
use crate::mail::compose::{self, Attachment, ComposeError, Draft};
use crate::mail::{smtp, MailError};

#[derive(Debug, Error)]
pub enum OutboxError {
    #[error(transparent)]
    Random(#[from] crate::rng::NoRandomness),
    #[error("no mail account is set up")]
    NoAccount,
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("an attachment cannot be used: {0}")]
    Drive(#[from] DriveError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// Removes the files it holds when dropped, so no restored attachment or
/// composed mail outlives the send.
#[derive(Default)]
struct TempFiles(Vec<PathBuf>);

impl TempFiles {
    fn add(&mut self, dir: PathBuf, name: &str) -> Result<PathBuf, crate::rng::NoRandomness> {
        let path = dir.join(format!("mail-{}-{name}", hex::encode(crate::rng::bytes::<8>()?)));
        self.0.push(path.clone());
        Ok(path)
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct Sent {
    pub message_id: String,
    pub recipients: usize,
}

impl Engine {
    /// Sends a mail from the owner's account with drive files attached.
    pub async fn send_owner_mail(
        &self,
        to: Vec<String>,
        subject: String,
        body: String,
        attachments: Vec<String>,
    ) -> Result<Sent, OutboxError> {
        let (account, password) = self.node.login().await.ok_or(OutboxError::NoAccount)?;
        let from = smtp::owner_mailbox(&account)?;
        let recipients = compose::recipients(&to)?;
        let mut temps = TempFiles::default();
        let mut files = Vec::with_capacity(attachments.len());
        if !attachments.is_empty() {
            for (i, id) in attachments.into_iter().enumerate() {
                let path = temps.add(self.drive().temp_dir(), &format!("attachment-{i}"))?;
                let file = self.drive_net.restore(id, path.clone()).await?;
                files.push(Attachment { path, name: file.name, media_type: file.media_type });
            }
        }
        let draft = Draft { to, subject, body, attachments: files };
        let message = temps.add(self.drive().temp_dir(), "message.eml")?;
        let written = message.clone();
        let token = crate::rng::bytes::<16>()?;
        let message_id = tokio::task::spawn_blocking(move || -> Result<String, ComposeError> {
            let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&written)?;
            let mut out = std::io::BufWriter::new(file);
            let id = compose::write_message(&from, &draft, token, crate::clock::now(), &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(id)
        })
        .await
        .map_err(|e| ComposeError::Write(std::io::Error::other(e.to_string())))??;
        let envelope = Envelope::new(
            Some(smtp::owner_mailbox(&account)?.email),
            recipients.iter().map(|m| m.email.clone()).collect(),
        )
        .map_err(|e| MailError::Protocol(e.to_string()))?;
        smtp::send_file(&account, &password, &envelope, &message).await?;
        tracing::info!(recipients = recipients.len(), "sent a mail for the owner");
        Ok(Sent { message_id, recipients: recipients.len() })
    }
}
