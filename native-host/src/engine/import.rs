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
//! parsed is skipped with a logged reason, and so is one the server fails to
//! give in [`MAX_FETCH_ATTEMPTS`] passes in a row (after a failure a pass
//! stops, keeping its checkpoint; the same message failing again counts).
//!
//! [`MailImport`] is a service: one import at a time (its own lock, held
//! for the whole pass), the mailbox read through a [`MailReader`], parsing,
//! coding and checkpoints on blocking threads, new files handed to the
//! drive network to spread. Its unit tests read an in-memory mailbox.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::drive_net::DriveNet;
use crate::clock::now_ms;
use crate::drive::attachments;
use crate::drive::index::Checkpoint;
use crate::drive::DriveError;
use crate::mailbox::{MailReader, Which};

/// Passes in a row in which fetching one message may fail before it is
/// skipped: a message the server cannot serve must not block every later
/// one.
const MAX_FETCH_ATTEMPTS: u32 = 3;

pub struct MailImport {
    drive: Arc<DriveNet>,
    /// One import at a time (the watcher's and `mail sync`); it also holds
    /// the message that failed to come and how many times (one at most: a
    /// pass stops at the first failure).
    busy: Mutex<Option<((String, u32), u32)>>,
}

/// Why an import pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error(transparent)]
    Drive(#[from] DriveError),
}

impl MailImport {
    pub fn new(drive: Arc<DriveNet>) -> MailImport {
        MailImport { drive, busy: Mutex::new(None) }
    }

    /// Imports what arrived since each folder's checkpoint. Returns how
    /// many messages were read and how many files they gave; nothing
    /// outside a network (there is no key to seal files with).
    pub async fn run(&self, mailbox: &mut dyn MailReader, folders: &[String]) -> Result<(usize, usize), ImportError> {
        let mut failed = self.busy.lock().await;
        if !self.drive.in_network() {
            return Ok((0, 0));
        }
        let (mut messages, mut files) = (0, 0);
        for folder in folders {
            let validity = match mailbox.examine(folder).await {
                Ok(validity) => validity,
                Err(e) => {
                    tracing::warn!(folder, "cannot open a watched folder: {e}");
                    continue;
                }
            };
            let name = folder.clone();
            let mut checkpoint = match self.drive.on_disk(move |d| Ok(d.index().checkpoint(&name)?)).await? {
                Some(c) if c.uid_validity == validity => c,
                _ => Checkpoint { uid_validity: validity, last_uid: 0 },
            };
            for uid in mailbox.uids_after(checkpoint.last_uid, Which::OwnerMail).await? {
                let raw = match mailbox.fetch_raw(uid).await {
                    Ok(raw) => raw,
                    Err(e) => {
                        let at = (folder.clone(), uid);
                        let tries = match &*failed {
                            Some((last, tries)) if *last == at => tries + 1,
                            _ => 1,
                        };
                        if tries < MAX_FETCH_ATTEMPTS {
                            *failed = Some((at, tries));
                            return Err(e.into());
                        }
                        tracing::warn!(folder, uid, "skipped a message the server failed to give {tries} times: {e}");
                        None
                    }
                };
                *failed = None;
                if let Some(raw) = raw {
                    files += self.import_message(uid, raw).await?;
                }
                messages += 1;
                checkpoint.last_uid = uid;
                let name = folder.clone();
                self.drive.on_disk(move |d| Ok(d.index().set_checkpoint(&name, checkpoint)?)).await?;
            }
        }
        if messages > 0 {
            tracing::info!(messages, files, "imported mail attachments");
        }
        Ok((messages, files))
    }

    /// Adds one message's attachments; returns how many were added.
    async fn import_message(&self, uid: u32, raw: Vec<u8>) -> Result<usize, DriveError> {
        let network = self.drive.network_key().ok_or(DriveError::NoNetwork)?;
        let added = self
            .drive
            .on_disk(move |drive| {
                let mut added = Vec::new();
                let outcome = attachments::extract(&raw, |origin, attachment| {
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
                });
                match outcome {
                    Ok(0) => {}
                    Ok(left) => tracing::warn!(uid, left, "a message with too many attachments: the rest were skipped"),
                    Err(e) => tracing::info!(uid, "skipping a message: {e}"),
                }
                Ok(added)
            })
            .await?;
        for id in &added {
            self.drive.spread(id.clone());
        }
        Ok(added.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mailmesh_core::drive::NetworkKey;
    use mailmesh_core::identity::NodeSecrets;
    use tokio::sync::{broadcast, watch};

    use super::MailImport;
    use crate::engine::drive_net::DriveNet;
    use crate::engine::standing::{Membership, Standing};
    use crate::engine::testkit;
    use crate::mailbox::memory::MemoryMailbox;

    fn service(home: &std::path::Path, network: bool) -> (MailImport, Arc<DriveNet>) {
        let secrets = NodeSecrets::from_seeds([1; 32], [1; 32]);
        let members = vec![secrets.node_id()];
        let network = network.then(|| Membership { key: NetworkKey::from_bytes([7; 32]), members });
        let (_, standing) =
            watch::channel(Standing { address: Some("owner@example.org".into()), network, mesh: Default::default() });
        let net = testkit::lone_drive(home, &secrets, standing, broadcast::channel(16).0);
        (MailImport::new(net.clone()), net)
    }

    /// A mail with one attachment per `(name, content)`.
    fn mail(subject: &str, attachments: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = format!(
            "From: friend@example.org\r\nTo: owner@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        );
        for (name, content) in attachments {
            raw += &format!(
                "--b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{content}\r\n"
            );
        }
        raw += "--b--\r\n";
        raw.into_bytes()
    }

    fn names(net: &DriveNet) -> Vec<String> {
        let mut names: Vec<String> = net.drive().list().unwrap().into_iter().map(|f| f.name).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn each_message_is_read_once_and_a_restart_reads_only_what_is_new() {
        let home = tempfile::tempdir().unwrap();
        let (import, net) = service(home.path(), true);
        let mut mailbox = MemoryMailbox::default();
        let folders = vec!["INBOX".to_string()];
        mailbox.append("INBOX", mail("q3", &[("q3.csv", "a,b,c"), ("logo.bin", "xyz")]));
        mailbox.append("INBOX", b"not a mail at all".to_vec());
        let account = crate::api::Account {
            email: "owner@example.org".into(),
            imap: crate::api::Server { host: "h".into(), port: 1, security: crate::api::Security::Plain },
            smtp: crate::api::Server { host: "h".into(), port: 1, security: crate::api::Security::Plain },
            user: "owner".into(),
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        };
        let ours = crate::mailbox::build(&account, crate::mailbox::Kind::Roster, "roster", "x".into(), vec![1]);
        mailbox.append("INBOX", ours.unwrap().formatted());

        assert_eq!(import.run(&mut mailbox, &folders).await.unwrap(), (2, 2), "mailmesh's own mail is not read");
        assert_eq!(names(&net), vec!["logo.bin", "q3.csv"]);
        assert_eq!(mailbox.fetched, 2);

        // A later pass (or a restart, with a new service on the same home)
        // reads only what came since.
        drop(import);
        let import = MailImport::new(net.clone());
        mailbox.append("INBOX", mail("minutes", &[("minutes.txt", "agreed")]));
        assert_eq!(import.run(&mut mailbox, &folders).await.unwrap(), (1, 1));
        assert_eq!(mailbox.fetched, 3);
        assert_eq!(names(&net), vec!["logo.bin", "minutes.txt", "q3.csv"]);

        // The server renumbers the folder: all read again, stored once.
        mailbox.renumber("INBOX");
        assert_eq!(import.run(&mut mailbox, &folders).await.unwrap(), (3, 3));
        assert_eq!(names(&net).len(), 3);
    }

    #[tokio::test]
    async fn outside_a_network_nothing_is_read() {
        let home = tempfile::tempdir().unwrap();
        let (import, _) = service(home.path(), false);
        let mut mailbox = MemoryMailbox::default();
        mailbox.append("INBOX", mail("q3", &[("q3.csv", "a,b,c")]));
        assert_eq!(import.run(&mut mailbox, &["INBOX".to_string()]).await.unwrap(), (0, 0));
        assert_eq!(mailbox.fetched, 0);
    }

    #[tokio::test]
    async fn a_mail_of_ten_thousand_parts_gives_a_bounded_number_of_files() {
        let home = tempfile::tempdir().unwrap();
        let (import, net) = service(home.path(), true);
        let mut mailbox = MemoryMailbox::default();
        let parts: Vec<(String, String)> = (0..10_000).map(|i| (format!("f{i}.bin"), format!("part {i}"))).collect();
        let parts: Vec<(&str, &str)> = parts.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
        mailbox.append("INBOX", mail("bomb", &parts));
        mailbox.append("INBOX", mail("later", &[("later.txt", "still imported")]));
        import.run(&mut mailbox, &["INBOX".to_string()]).await.unwrap();
        let names = names(&net);
        assert!(names.len() <= crate::drive::attachments::MAX_ATTACHMENTS + 1, "{} files", names.len());
        assert!(names.contains(&"later.txt".to_string()), "the next message is imported");
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_fetched_is_skipped_after_a_few_tries_and_the_rest_goes_on() {
        let home = tempfile::tempdir().unwrap();
        let (import, net) = service(home.path(), true);
        let mut mailbox = MemoryMailbox::default();
        let folders = vec!["INBOX".to_string()];
        let poison = mailbox.append("INBOX", mail("poison", &[("poison.bin", "x")]));
        mailbox.append("INBOX", mail("later", &[("later.txt", "y")]));
        mailbox.failing.push(poison);
        for _ in 0..super::MAX_FETCH_ATTEMPTS {
            let _ = import.run(&mut mailbox, &folders).await;
        }
        assert_eq!(names(&net), vec!["later.txt"], "the message after it is imported");
        // Fixed on the server later or not, it is not tried again.
        mailbox.failing.clear();
        import.run(&mut mailbox, &folders).await.unwrap();
        assert_eq!(names(&net), vec!["later.txt"]);
    }

    #[tokio::test]
    async fn an_attached_messages_name_is_sanitized_like_any_attachment() {
        let home = tempfile::tempdir().unwrap();
        let (import, net) = service(home.path(), true);
        let mut mailbox = MemoryMailbox::default();
        let raw = "From: friend@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfwd\r\n\
                   --b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\n\
                   Subject: ../../invoice\u{202E}fdp.exe\r\n\r\nhello\r\n--b--\r\n";
        mailbox.append("INBOX", raw.as_bytes().to_vec());
        import.run(&mut mailbox, &["INBOX".to_string()]).await.unwrap();
        let names = names(&net);
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(!names[0].contains('/') && !names[0].contains('\u{202E}'), "{:?}", names[0]);
    }
}
