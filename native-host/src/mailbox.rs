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

use futures_util::TryStreamExt;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use mail_parser::{MessageParser, MimeHeaders};

use crate::api::Account;
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
    for uid in uids_after(session, host, after, &format!("HEADER {HEADER} \"\"")).await? {
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
