//! mailmesh's own mails: how a machine-readable message travels through the
//! owner's mailbox, and how it is found again.
//!
//! A mailmesh mail is an ordinary mail from the owner to the owner with a
//! human-readable text, an `X-Mailmesh: <kind>/1` header, and the payload
//! as an `application/x-mailmesh` attachment. Nothing found this way is
//! believed for being there: every payload carries its own proof (see
//! `mailmesh_core::join` and `mailmesh_core::roster`).
//!
//! Reading never changes the mailbox: EXAMINE (read-only) and BODY.PEEK.

use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use mail_parser::{MessageParser, MimeHeaders};

use crate::api::{Account, Secret};
use crate::mail::imap::{classify, ImapSession};
use crate::mail::smtp::owner_mailbox;
use crate::mail::MailError;

pub const HEADER: &str = "X-Mailmesh";
const MEDIA_TYPE: &str = "application/x-mailmesh";

/// The kinds of mailmesh mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    JoinRequest,
    Approval,
    JoinProof,
    Welcome,
    Roster,
    Rekey,
    /// Another person's node asks this owner's nodes to prove they read
    /// this mailbox (see `mailmesh_core::people`).
    Challenge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::JoinRequest => "join-request",
            Kind::Approval => "approval",
            Kind::JoinProof => "join-proof",
            Kind::Welcome => "welcome",
            Kind::Roster => "roster",
            Kind::Rekey => "rekey",
            Kind::Challenge => "challenge",
        }
    }

    fn parse(header: &str) -> Option<Kind> {
        let (kind, version) = header.trim().split_once('/')?;
        if version != "1" {
            return None;
        }
        [Kind::JoinRequest, Kind::Approval, Kind::JoinProof, Kind::Welcome, Kind::Roster, Kind::Rekey, Kind::Challenge]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }
}

/// Builds a mailmesh mail to the owner.
pub fn build(
    account: &Account,
    kind: Kind,
    subject: &str,
    text: String,
    payload: Vec<u8>,
) -> Result<Message, MailError> {
    build_to(account, owner_mailbox(account)?, kind, subject, text, payload)
}

/// Builds a mailmesh mail from the owner to `to`.
pub fn build_to(
    account: &Account,
    to: Mailbox,
    kind: Kind,
    subject: &str,
    text: String,
    payload: Vec<u8>,
) -> Result<Message, MailError> {
    let owner = owner_mailbox(account)?;
    let attachment = Attachment::new(format!("{}.mailmesh", kind.as_str()))
        .body(payload, ContentType::parse(MEDIA_TYPE).map_err(|e| MailError::Protocol(e.to_string()))?);
    Message::builder()
        .from(owner)
        .to(to)
        .subject(subject)
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(HEADER), format!("{}/1", kind.as_str())))
        .multipart(MultiPart::mixed().singlepart(SinglePart::plain(text)).singlepart(attachment))
        .map_err(|e| MailError::Protocol(e.to_string()))
}

/// The kind and payload of a raw mail, if it is a well-formed mailmesh mail.
pub fn parse(raw: &[u8]) -> Option<(Kind, Vec<u8>)> {
    let message = MessageParser::default().parse(raw)?;
    let kind = Kind::parse(message.header_raw(HEADER)?)?;
    let payload = message.attachments().find(|a| a.is_content_type("application", "x-mailmesh"))?;
    Some((kind, payload.contents().to_vec()))
}

/// A mailmesh mail found in the mailbox.
pub struct Found {
    pub uid: u32,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// Every mailmesh mail in INBOX with a UID above `after`, oldest first.
/// Opens INBOX read-only.
pub async fn fetch_since(session: &mut ImapSession, host: &str, after: u32) -> Result<(Vec<Found>, u32), MailError> {
    examine(session, host, "INBOX").await?;
    let mut found = Vec::new();
    let mut last = after;
    for uid in uids_after(session, host, after, &Which::Mailmesh.criteria()).await? {
        if let Some((kind, payload)) = fetch_raw(session, host, uid).await?.as_deref().and_then(parse) {
            found.push(Found { uid, kind, payload });
        }
        last = last.max(uid);
    }
    Ok((found, last))
}

/// Opens a folder read-only (EXAMINE: nothing in it can change, no flag is
/// set) and returns its UIDVALIDITY.
pub async fn examine(session: &mut ImapSession, host: &str, folder: &str) -> Result<u32, MailError> {
    let mailbox = session.examine(folder).await.map_err(|e| classify(host, e))?;
    Ok(mailbox.uid_validity.unwrap_or(0))
}

/// UIDs above `after` matching an IMAP search `criteria` (may be empty),
/// oldest first.
pub async fn uids_after(
    session: &mut ImapSession,
    host: &str,
    after: u32,
    criteria: &str,
) -> Result<Vec<u32>, MailError> {
    let mut uids: Vec<u32> = session
        .uid_search(format!("UID {}:* {criteria}", after.saturating_add(1)).trim_end())
        .await
        .map_err(|e| classify(host, e))?
        .into_iter()
        // `n:*` also matches the highest UID when it is below n.
        .filter(|uid| *uid > after)
        .collect();
    uids.sort_unstable();
    Ok(uids)
}

/// The whole raw message, fetched with BODY.PEEK (never marks it seen).
pub async fn fetch_raw(session: &mut ImapSession, host: &str, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
    let fetches: Vec<_> = session
        .uid_fetch(uid.to_string(), "BODY.PEEK[]")
        .await
        .map_err(|e| classify(host, e))?
        .try_collect()
        .await
        .map_err(|e| classify(host, e))?;
    Ok(fetches.iter().find_map(|f| f.body().map(<[u8]>::to_vec)))
}

/// Which messages of a folder a search means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The owner's own mail (no `X-Mailmesh` header): what import reads.
    OwnerMail,
    /// mailmesh's mails.
    Mailmesh,
}

impl Which {
    fn criteria(self) -> String {
        match self {
            Which::OwnerMail => format!("NOT HEADER {HEADER} \"\""),
            Which::Mailmesh => format!("HEADER {HEADER} \"\""),
        }
    }
}

/// Reading the owner's mailbox, read-only: what the services need of IMAP,
/// and the seam an in-memory mailbox fills in their unit tests.
pub trait MailReader: Send {
    /// Opens a folder read-only; its UIDVALIDITY.
    fn examine<'a>(&'a mut self, folder: &'a str) -> BoxFuture<'a, Result<u32, MailError>>;
    /// UIDs above `after` in the open folder, oldest first.
    fn uids_after(&mut self, after: u32, which: Which) -> BoxFuture<'_, Result<Vec<u32>, MailError>>;
    /// A whole raw message of the open folder.
    fn fetch_raw(&mut self, uid: u32) -> BoxFuture<'_, Result<Option<Vec<u8>>, MailError>>;
}

/// The owner's account as the enrollment service uses it: send a mail from
/// it, and find mailmesh's mails in it. A seam an in-memory mailbox fills
/// in unit tests.
pub trait MailAccount: Send + Sync {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>>;
    /// Every mailmesh mail in INBOX with a UID above `after`, oldest first,
    /// and the highest UID seen.
    fn mailmesh_mails(&self, after: u32) -> BoxFuture<'_, Result<(Vec<Found>, u32), MailError>>;
}

/// Makes the [`MailAccount`] for an account and its password.
pub type MailConnector = std::sync::Arc<dyn Fn(&Account, &Secret) -> Box<dyn MailAccount> + Send + Sync>;

/// The real servers: SMTP to send, an IMAP session of its own to read.
pub struct ServerAccount {
    pub account: Account,
    pub password: Secret,
}

impl ServerAccount {
    pub fn connector() -> MailConnector {
        std::sync::Arc::new(|account: &Account, password: &Secret| {
            Box::new(ServerAccount { account: account.clone(), password: password.clone() }) as Box<dyn MailAccount>
        })
    }
}

impl MailAccount for ServerAccount {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(crate::mail::smtp::send(&self.account, &self.password, message))
    }

    fn mailmesh_mails(&self, after: u32) -> BoxFuture<'_, Result<(Vec<Found>, u32), MailError>> {
        Box::pin(async move {
            let mut session = crate::mail::imap::connect(&self.account, &self.password).await?;
            let found = fetch_since(&mut session, &self.account.imap.host, after).await;
            let _ = session.logout().await;
            found
        })
    }
}

/// [`MailReader`] over an IMAP session.
pub struct ImapReader<'s> {
    pub session: &'s mut ImapSession,
    pub host: String,
}

impl MailReader for ImapReader<'_> {
    fn examine<'a>(&'a mut self, folder: &'a str) -> BoxFuture<'a, Result<u32, MailError>> {
        Box::pin(examine(self.session, &self.host, folder))
    }

    fn uids_after(&mut self, after: u32, which: Which) -> BoxFuture<'_, Result<Vec<u32>, MailError>> {
        Box::pin(async move { uids_after(self.session, &self.host, after, &which.criteria()).await })
    }

    fn fetch_raw(&mut self, uid: u32) -> BoxFuture<'_, Result<Option<Vec<u8>>, MailError>> {
        Box::pin(fetch_raw(self.session, &self.host, uid))
    }
}

#[cfg(test)]
pub mod memory {
    //! A mailbox in memory for the services' unit tests: folders of raw
    //! messages with UIDs, as a server would number them.

    use std::collections::BTreeMap;

    use super::*;

    /// One folder: its UIDVALIDITY and its messages by UID.
    struct Folder {
        validity: u32,
        messages: Vec<(u32, Vec<u8>)>,
    }

    #[derive(Default)]
    pub struct MemoryMailbox {
        folders: BTreeMap<String, Folder>,
        open: Option<String>,
        /// Messages fetched so far (what a server would have served).
        pub fetched: usize,
    }

    impl MemoryMailbox {
        /// Appends a message to a folder; its UID.
        pub fn append(&mut self, folder: &str, raw: Vec<u8>) -> u32 {
            let folder = self.folders.entry(folder.to_string()).or_insert(Folder { validity: 1, messages: Vec::new() });
            let uid = folder.messages.last().map_or(1, |(uid, _)| uid + 1);
            folder.messages.push((uid, raw));
            uid
        }

        /// The server renumbers a folder (a new UIDVALIDITY).
        pub fn renumber(&mut self, folder: &str) {
            if let Some(folder) = self.folders.get_mut(folder) {
                folder.validity += 1;
            }
        }

        /// Every raw message of a folder, oldest first.
        pub fn raw(&self, folder: &str) -> Vec<&[u8]> {
            self.folders.get(folder).map_or(Vec::new(), |f| f.messages.iter().map(|(_, raw)| raw.as_slice()).collect())
        }

        /// The mailmesh mails in INBOX above `after`, as `fetch_since` finds them.
        pub fn mailmesh_mails(&self, after: u32) -> (Vec<Found>, u32) {
            let inbox = self.folders.get("INBOX").map_or(&[][..], |f| f.messages.as_slice());
            let mut last = after;
            let found = inbox
                .iter()
                .filter(|(uid, _)| *uid > after)
                .filter_map(|(uid, raw)| {
                    last = last.max(*uid);
                    parse(raw).map(|(kind, payload)| Found { uid: *uid, kind, payload })
                })
                .collect();
            (found, last)
        }

        fn messages(&self) -> &[(u32, Vec<u8>)] {
            self.open.as_ref().and_then(|f| self.folders.get(f)).map_or(&[], |f| f.messages.as_slice())
        }
    }

    impl MailReader for MemoryMailbox {
        fn examine<'a>(&'a mut self, folder: &'a str) -> BoxFuture<'a, Result<u32, MailError>> {
            let found = self.folders.get(folder).map(|f| f.validity);
            self.open = found.map(|_| folder.to_string());
            Box::pin(async move { found.ok_or_else(|| MailError::Protocol(format!("no folder {folder}"))) })
        }

        fn uids_after(&mut self, after: u32, which: Which) -> BoxFuture<'_, Result<Vec<u32>, MailError>> {
            let marker = format!("\n{HEADER}:");
            let uids = self
                .messages()
                .iter()
                .filter(|(uid, raw)| {
                    let head = String::from_utf8_lossy(raw);
                    let head = head.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n", "\n");
                    let ours = format!("\n{head}").contains(&marker);
                    *uid > after && ours == (which == Which::Mailmesh)
                })
                .map(|(uid, _)| *uid)
                .collect();
            Box::pin(async move { Ok(uids) })
        }

        fn fetch_raw(&mut self, uid: u32) -> BoxFuture<'_, Result<Option<Vec<u8>>, MailError>> {
            let raw = self.messages().iter().find(|(u, _)| *u == uid).map(|(_, raw)| raw.clone());
            self.fetched += usize::from(raw.is_some());
            Box::pin(async move { Ok(raw) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Security, Server};

    #[test]
    fn a_built_mail_parses_back() {
        let server = Server { host: "h".into(), port: 1, security: Security::Plain };
        let account = Account {
            email: "owner@mailmesh.test".into(),
            imap: server.clone(),
            smtp: server,
            user: "owner".into(),
            tls_ca: None,
            accept_invalid_certs: false,
        };
        let mail = build(&account, Kind::Approval, "subject", "hello".into(), vec![0, 1, 2, 255]).unwrap();
        let (kind, payload) = parse(&mail.formatted()).unwrap();
        assert_eq!(kind, Kind::Approval);
        assert_eq!(payload, vec![0, 1, 2, 255]);
        assert!(parse(b"Subject: hi\r\n\r\nplain mail").is_none());
        assert!(parse(b"X-Mailmesh: approval/2\r\n\r\nnewer").is_none());
    }
}
