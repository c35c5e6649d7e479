//! mailmesh's own mails: how a machine-readable message travels through the
//! owner's mailbox, and how it is found again.
//!
//! A mailmesh mail is an ordinary mail from the owner to the owner with a
//! human-readable text, an `X-Mailmesh: <kind>/1` header, and the payload
//! as an `application/x-mailmesh` attachment. Nothing found this way is
//! believed for being there: every payload carries its own proof (see
//! `mailmesh_core::join` and `mailmesh_core::roster`).
//!
//! Mails only the owner's nodes read (roster, join request and proof,
//! welcome, rekey: [`Kind::for_own_nodes`]) are not mailed but appended
//! over IMAP to mailmesh's own folder ([`FOLDER`], created once), so the
//! inbox stays the owner's. Mails for the owner's eyes (confirmation,
//! approval and removal codes) and for other people (challenges) are
//! mailed. Both places are read. A mailmesh before the folder mailed every
//! kind to the inbox and reads only the inbox: while such a node was heard
//! from lately, the others also mail it a copy (marked [`COPY_HEADER`], so
//! a copy is never taken for an older node).
//!
//! Reading never changes the mailbox: EXAMINE (read-only) and BODY.PEEK;
//! the only change mailmesh makes is appending its own mails to its folder.

use futures_util::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use mail_parser::{MessageParser, MimeHeaders};

use crate::api::{Account, Secret};
use crate::drive::index::Checkpoint;
use crate::mail::imap::{classify, ImapSession};
use crate::mail::smtp::owner_mailbox;
use crate::mail::MailError;

pub const HEADER: &str = "X-Mailmesh";
/// Marks the inbox copy of a mail that is also in [`FOLDER`].
pub const COPY_HEADER: &str = "X-Mailmesh-Copy";
/// mailmesh's own folder, for the mails only the owner's nodes read.
pub const FOLDER: &str = "Mailmesh";
pub const INBOX: &str = "INBOX";
/// The largest mailmesh mail fetched of a kind that carries a roster
/// (roster, welcome, rekey: a roster of at most 1 MiB, base64 in a mail).
pub const MAX_ROSTER_MAIL: u32 = 2 << 20;
/// The largest mailmesh mail fetched of any other kind (a few hundred bytes
/// of payload).
pub const MAX_SMALL_MAIL: u32 = 64 << 10;
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
    /// The kinds whose payload holds a whole roster, and so may be large.
    pub const CARRYING_ROSTER: [Kind; 3] = [Kind::Roster, Kind::Welcome, Kind::Rekey];

    /// Whether only the owner's nodes read this kind: it goes to [`FOLDER`].
    pub fn for_own_nodes(self) -> bool {
        matches!(self, Kind::JoinRequest | Kind::JoinProof | Kind::Welcome | Kind::Roster | Kind::Rekey)
    }

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

/// Builds the inbox copy of a mail filed in [`FOLDER`], for older nodes.
pub fn build_inbox_copy(
    account: &Account,
    kind: Kind,
    subject: &str,
    text: String,
    payload: Vec<u8>,
) -> Result<Message, MailError> {
    let text =
        format!("{text}\n(A copy for your devices with an older mailmesh: newer ones read the {FOLDER} folder.)\n");
    compose(account, owner_mailbox(account)?, kind, subject, text, payload, Some((COPY_HEADER, FOLDER)))
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
    compose(account, to, kind, subject, text, payload, None)
}

fn compose(
    account: &Account,
    to: Mailbox,
    kind: Kind,
    subject: &str,
    text: String,
    payload: Vec<u8>,
    extra_header: Option<(&'static str, &str)>,
) -> Result<Message, MailError> {
    let owner = owner_mailbox(account)?;
    let attachment = Attachment::new(format!("{}.mailmesh", kind.as_str()))
        .body(payload, ContentType::parse(MEDIA_TYPE).map_err(|e| MailError::Protocol(e.to_string()))?);
    let mut builder = Message::builder()
        .from(owner)
        .to(to)
        .subject(subject)
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(HEADER), format!("{}/1", kind.as_str())));
    if let Some((name, value)) = extra_header {
        builder = builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string()));
    }
    builder
        .multipart(MultiPart::mixed().singlepart(SinglePart::plain(text)).singlepart(attachment))
        .map_err(|e| MailError::Protocol(e.to_string()))
}

/// The kind and payload of a raw mail, if it is a well-formed mailmesh mail.
pub fn parse(raw: &[u8]) -> Option<(Kind, Vec<u8>)> {
    found(0, raw, FOLDER).map(|f| (f.kind, f.payload))
}

/// A mailmesh mail found in the mailbox.
pub struct Found {
    pub uid: u32,
    pub kind: Kind,
    pub payload: Vec<u8>,
    /// A mail of a kind for the owner's nodes in the inbox, not a copy: a
    /// node of a mailmesh before [`FOLDER`] sent it (or anyone did).
    pub from_older_version: bool,
}

/// The mailmesh mail in `raw`, found in `folder`.
fn found(uid: u32, raw: &[u8], folder: &str) -> Option<Found> {
    let message = MessageParser::default().parse(raw)?;
    let kind = Kind::parse(message.header_raw(HEADER)?)?;
    let payload = message.attachments().find(|a| a.is_content_type("application", "x-mailmesh"))?;
    let from_older_version = folder == INBOX && kind.for_own_nodes() && message.header_raw(COPY_HEADER).is_none();
    Some(Found { uid, kind, payload: payload.contents().to_vec(), from_older_version })
}

/// Every mailmesh mail of `kinds`, in [`FOLDER`] (if there is one) and in
/// INBOX, oldest first in each (see [`read_mailmesh`] for the bounds).
/// Opens both read-only.
pub async fn fetch_all(session: &mut ImapSession, host: &str, kinds: &[Kind]) -> Result<Vec<Found>, MailError> {
    let mut found = Vec::new();
    let with_folder = crate::mail::imap::folder_exists(session, host, FOLDER).await?;
    let mut reader = ImapReader { session, host: host.to_string() };
    for folder in [FOLDER, INBOX].into_iter().filter(|f| *f == INBOX || with_folder) {
        read_mailmesh(&mut reader, folder, None, |mail| {
            if kinds.contains(&mail.kind) {
                found.push(mail);
            }
            async {}
        })
        .await?;
    }
    Ok(found)
}

/// Reads the mailmesh mails of `folder` after the checkpoint `from` (all of
/// them if none, or if the server renumbered the folder), handing each to
/// `on_mail` before the next is fetched; returns the checkpoint to keep.
///
/// Anyone can mail the owner a mail with the header, so sizes come first
/// (`RFC822.SIZE`): a mail larger than its kind can be ([`MAX_ROSTER_MAIL`]
/// for the kinds that carry a roster, [`MAX_SMALL_MAIL`] for the rest) is
/// skipped unread, and at most one mail is held at a time.
pub async fn read_mailmesh<F, Fut>(
    reader: &mut dyn MailReader,
    folder: &str,
    from: Option<Checkpoint>,
    mut on_mail: F,
) -> Result<Checkpoint, MailError>
where
    F: FnMut(Found) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let validity = reader.examine(folder).await?;
    let after = from.filter(|c| c.uid_validity == validity).map_or(0, |c| c.last_uid);
    let done = |last_uid| Checkpoint { uid_validity: validity, last_uid };
    let uids = reader.uids_after(after, Which::Mailmesh).await?;
    let Some(&last) = uids.last() else { return Ok(done(after)) };
    let bulky: std::collections::HashSet<u32> =
        reader.uids_after(after, Which::CarriesRoster).await?.into_iter().collect();
    for batch in uids.chunks(SIZES_PER_FETCH) {
        for (uid, size) in reader.sizes(batch).await? {
            let limit = if bulky.contains(&uid) { MAX_ROSTER_MAIL } else { MAX_SMALL_MAIL };
            if size > limit {
                tracing::info!(uid, size, limit, "skipped a mailmesh mail larger than its kind can be");
                continue;
            }
            if let Some(mail) = reader.fetch_raw(uid).await?.and_then(|raw| found(uid, &raw, folder)) {
                on_mail(mail).await;
            }
        }
    }
    Ok(done(last.max(after)))
}

/// UIDs whose sizes one FETCH asks.
const SIZES_PER_FETCH: usize = 500;

/// `(uid, RFC822.SIZE)` of each message of `uids` still there.
pub async fn sizes(session: &mut ImapSession, host: &str, uids: &[u32]) -> Result<Vec<(u32, u32)>, MailError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let set = uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut out = Vec::new();
    uid_fetch_checked(session, host, &set, "RFC822.SIZE", |uid, attribute| {
        if let async_imap::imap_proto::AttributeValue::Rfc822Size(size) = attribute {
            out.push((uid, *size));
        }
    })
    .await?;
    out.sort_unstable();
    Ok(out)
}

/// Runs `UID FETCH set query` and hands each attribute of each message to
/// `each` with its UID; a refusal is an error (throttling told apart).
///
/// The command is run and its answers read here rather than through
/// async-imap's `uid_fetch`, whose stream ends at the tagged answer
/// whatever it says: a server refusing the fetch (`NO [THROTTLED]`, a
/// bandwidth limit) would read as messages gone, and the import (or the
/// watch) would pass them over for good.
async fn uid_fetch_checked(
    session: &mut ImapSession,
    host: &str,
    set: &str,
    query: &str,
    mut each: impl FnMut(u32, &async_imap::imap_proto::AttributeValue<'_>),
) -> Result<(), MailError> {
    use async_imap::imap_proto::{AttributeValue, Response, Status};
    let tag = session.run_command(format!("UID FETCH {set} {query}")).await.map_err(|e| classify(host, e))?;
    loop {
        let response = match session.read_response().await {
            Ok(Some(response)) => response,
            Ok(None) => return Err(MailError::Protocol("the server closed the connection".into())),
            Err(e) => return Err(MailError::from_io(host, host, &e)),
        };
        match response.parsed() {
            Response::Fetch(_, attributes) => {
                let uid = attributes.iter().find_map(|a| match a {
                    AttributeValue::Uid(uid) => Some(*uid),
                    _ => None,
                });
                if let Some(uid) = uid {
                    attributes.iter().for_each(|a| each(uid, a));
                }
            }
            Response::Done { tag: done, status, outcome, .. } if *done == tag => {
                let text = outcome.information.as_deref().unwrap_or_default();
                return match status {
                    Status::Ok => Ok(()),
                    _ if crate::mail::refusal::is_throttling(text) => Err(MailError::Throttled(text.to_string())),
                    _ => Err(MailError::Protocol(format!("the server refused to give messages {set}: {text}"))),
                };
            }
            // Anything else (new mail, flags) is for the watch's next look.
            _ => {}
        }
    }
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

/// The whole raw message, fetched with BODY.PEEK (never marks it seen);
/// `None` if the folder no longer holds it.
pub async fn fetch_raw(session: &mut ImapSession, host: &str, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
    let mut body = None;
    uid_fetch_checked(session, host, &uid.to_string(), "BODY.PEEK[]", |found, attribute| {
        if let async_imap::imap_proto::AttributeValue::BodySection { data: Some(bytes), .. } = attribute {
            if found == uid {
                body = Some(bytes.to_vec());
            }
        }
    })
    .await?;
    Ok(body)
}

/// Which messages of a folder a search means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The owner's own mail (no `X-Mailmesh` header): what import reads.
    OwnerMail,
    /// The owner's own mail that arrived on or after a day.
    OwnerMailSince(chrono::NaiveDate),
    /// mailmesh's mails.
    Mailmesh,
    /// mailmesh's mails of the kinds that carry a roster (larger ones).
    CarriesRoster,
}

impl Which {
    fn criteria(self) -> String {
        match self {
            Which::OwnerMail => format!("NOT HEADER {HEADER} \"\""),
            Which::OwnerMailSince(day) => format!("NOT HEADER {HEADER} \"\" SINCE {}", day.format("%-d-%b-%Y")),
            Which::Mailmesh => format!("HEADER {HEADER} \"\""),
            Which::CarriesRoster => {
                let [a, b, c] = Kind::CARRYING_ROSTER.map(|k| format!("HEADER {HEADER} \"{}/\"", k.as_str()));
                format!("OR OR {a} {b} {c}")
            }
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
    /// `(uid, size in bytes)` of those of `uids` still in the open folder.
    fn sizes<'a>(&'a mut self, uids: &'a [u32]) -> BoxFuture<'a, Result<Vec<(u32, u32)>, MailError>>;
}

/// The owner's account as the enrollment service uses it: send a mail from
/// it, and find mailmesh's mails in it. A seam an in-memory mailbox fills
/// in unit tests.
pub trait MailAccount: Send + Sync {
    /// Mails it (SMTP).
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>>;
    /// Appends it, marked seen, to [`FOLDER`], made if missing (IMAP).
    fn file(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>>;
    /// Logs in to IMAP and out again: whether the server takes the password.
    fn login(&self) -> BoxFuture<'_, Result<(), MailError>>;
    /// Every mailmesh mail of `kinds`, in [`FOLDER`] and INBOX.
    fn mailmesh_mails(&self, kinds: &'static [Kind]) -> BoxFuture<'_, Result<Vec<Found>, MailError>>;
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

    fn login(&self) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async move {
            let mut session = crate::mail::imap::connect(&self.account, &self.password).await?;
            let _ = session.logout().await;
            Ok(())
        })
    }

    fn file(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async move {
            let host = &self.account.imap.host;
            let mut session = crate::mail::imap::connect(&self.account, &self.password).await?;
            crate::mail::imap::ensure_folder(&mut session, host, FOLDER).await?;
            let filed = crate::mail::imap::append_seen(&mut session, host, FOLDER, &message.formatted()).await;
            let _ = session.logout().await;
            filed
        })
    }

    fn mailmesh_mails(&self, kinds: &'static [Kind]) -> BoxFuture<'_, Result<Vec<Found>, MailError>> {
        Box::pin(async move {
            let mut session = crate::mail::imap::connect(&self.account, &self.password).await?;
            let found = fetch_all(&mut session, &self.account.imap.host, kinds).await;
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

    fn sizes<'a>(&'a mut self, uids: &'a [u32]) -> BoxFuture<'a, Result<Vec<(u32, u32)>, MailError>> {
        Box::pin(sizes(self.session, &self.host, uids))
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
        /// Their bytes.
        pub fetched_bytes: usize,
        /// UIDs whose fetch fails (a message the server cannot serve).
        pub failing: Vec<u32>,
        /// Every fetch is refused as a limited account's would be.
        pub throttled: bool,
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

        /// Every mailmesh mail in `folder` above `after`, and the highest
        /// UID there.
        pub fn mailmesh_mails(&self, folder: &str, after: u32) -> (Vec<Found>, u32) {
            let messages = self.folders.get(folder).map_or(&[][..], |f| f.messages.as_slice());
            let last = messages.last().map_or(after, |(uid, _)| after.max(*uid));
            let found = messages
                .iter()
                .filter(|(uid, _)| *uid > after)
                .filter_map(|(uid, raw)| found(*uid, raw, folder))
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
                    let head = String::from_utf8_lossy(&raw[..raw.len().min(64 << 10)]);
                    let head = head.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n", "\n");
                    let head = format!("\n{head}");
                    let matches = match which {
                        Which::OwnerMail => !head.contains(&marker),
                        Which::OwnerMailSince(day) => {
                            let date = mail_parser::MessageParser::default()
                                .parse_headers(raw)
                                .and_then(|m| {
                                    m.date().and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0))
                                })
                                .map(|d| d.date_naive());
                            !head.contains(&marker) && date.is_some_and(|d| d >= day)
                        }
                        Which::Mailmesh => head.contains(&marker),
                        Which::CarriesRoster => {
                            Kind::CARRYING_ROSTER.iter().any(|k| head.contains(&format!("{marker} {}/", k.as_str())))
                        }
                    };
                    *uid > after && matches
                })
                .map(|(uid, _)| *uid)
                .collect();
            Box::pin(async move { Ok(uids) })
        }

        fn fetch_raw(&mut self, uid: u32) -> BoxFuture<'_, Result<Option<Vec<u8>>, MailError>> {
            if self.throttled {
                let why = "[THROTTLED] Request is throttled.".to_string();
                return Box::pin(async move { Err(MailError::Throttled(why)) });
            }
            if self.failing.contains(&uid) {
                return Box::pin(
                    async move { Err(MailError::Protocol(format!("the server cannot read message {uid}"))) },
                );
            }
            let raw = self.messages().iter().find(|(u, _)| *u == uid).map(|(_, raw)| raw.clone());
            self.fetched += usize::from(raw.is_some());
            self.fetched_bytes += raw.as_ref().map_or(0, Vec::len);
            Box::pin(async move { Ok(raw) })
        }

        fn sizes<'a>(&'a mut self, uids: &'a [u32]) -> BoxFuture<'a, Result<Vec<(u32, u32)>, MailError>> {
            let sizes = self
                .messages()
                .iter()
                .filter(|(uid, _)| uids.contains(uid))
                .map(|(uid, raw)| (*uid, raw.len() as u32))
                .collect();
            Box::pin(async move { Ok(sizes) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Security, Server};

    /// An account on a server the tests never reach.
    fn account(email: &str) -> Account {
        let server = Server { host: "h".into(), port: 1, security: Security::Plain };
        let user = email.split('@').next().unwrap_or(email).into();
        Account {
            email: email.into(),
            imap: server.clone(),
            smtp: server,
            user,
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        }
    }

    #[test]
    fn a_built_mail_parses_back() {
        let account = account("owner@mailmesh.test");
        let mail = build(&account, Kind::Approval, "subject", "hello".into(), vec![0, 1, 2, 255]).unwrap();
        let (kind, payload) = parse(&mail.formatted()).unwrap();
        assert_eq!(kind, Kind::Approval);
        assert_eq!(payload, vec![0, 1, 2, 255]);
        assert!(parse(b"Subject: hi\r\n\r\nplain mail").is_none());
        assert!(parse(b"X-Mailmesh: approval/2\r\n\r\nnewer").is_none());
    }

    /// A forged mailmesh mail: the header, and `size` bytes of payload.
    fn forged(kind: &str, size: usize) -> Vec<u8> {
        let mut raw = format!("From: x@example.org\r\n{HEADER}: {kind}/1\r\nSubject: forged\r\n\r\n").into_bytes();
        raw.extend(std::iter::repeat_n(b'A', size));
        raw
    }

    #[tokio::test]
    async fn forged_mailmesh_mails_too_large_for_their_kind_are_never_fetched_and_each_is_handled_alone() {
        let account = account("me@example.org");
        let mut mailbox = memory::MemoryMailbox::default();
        let real = build(&account, Kind::JoinRequest, "join", "text".into(), vec![7; 300]).unwrap().formatted();
        mailbox.append("INBOX", real.clone());
        for i in 0..20 {
            // Five megabytes each, claiming kinds that are never that large.
            mailbox.append("INBOX", forged(if i % 2 == 0 { "roster" } else { "approval" }, 5 << 20));
            mailbox.append("INBOX", forged("approval", 200 << 10));
        }
        let mut handled = Vec::new();
        let checkpoint = read_mailmesh(&mut mailbox, INBOX, None, |mail| {
            handled.push(mail.kind);
            async {}
        })
        .await
        .unwrap();
        assert_eq!(checkpoint.last_uid, 41, "every UID is passed, fetched or not");
        assert_eq!(handled, vec![Kind::JoinRequest]);
        assert!(
            mailbox.fetched_bytes <= real.len() + (MAX_ROSTER_MAIL as usize),
            "{} bytes fetched for one small real mail",
            mailbox.fetched_bytes
        );

        // The next start goes on from the checkpoint: nothing is read again.
        let before = mailbox.fetched_bytes;
        let again = read_mailmesh(&mut mailbox, INBOX, Some(checkpoint), |_| async {}).await.unwrap();
        assert_eq!((again, mailbox.fetched_bytes), (checkpoint, before));
        // Unless the server renumbered INBOX.
        mailbox.renumber("INBOX");
        read_mailmesh(&mut mailbox, INBOX, Some(checkpoint), |_| async {}).await.unwrap();
        assert!(mailbox.fetched_bytes > before);
    }
}
