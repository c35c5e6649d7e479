//! Chat between people: the messages their engines trade, the rules for
//! accepting one, and the sealed form the history takes on disk.
//!
//! ```text
//! author's engine ── ChatMessage (chat.msg) ──▶ each recipient's verified nodes
//!                 ◀── Receipt delivered / read (chat.receipt) ──
//! ```
//!
//! A message travels over a link whose handshake proved the sending node's
//! key and the address it claims, so the message itself is not signed: a
//! receiver takes it only if its author is the address the link proved
//! ([`check_incoming`]). Any of the author's nodes may deliver it (the
//! history is replicated among them), so the receiver deduplicates by
//! [`MessageId`]. Every node orders a conversation the same way: by the
//! author's send time, then by id ([`order_key`]).
//!
//! A direct conversation's id follows from the two addresses
//! ([`direct_conversation`]), so both people name it alike without a
//! handshake. A group's id is drawn by its creator; every group message
//! carries the member list, and a change of members is a message of kind
//! [`MessageKind::Members`] sent to the old and new members alike.
//!
//! Every message is `magic | version u8 | fields`, little endian; texts
//! are `len u32 | UTF-8`. All randomness and time are inputs.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;

use crate::identity::NodeSecrets;
use crate::people::normalize_email;
use crate::wire::{self, Reader, WireError};

#[cfg(test)]
mod tests;

pub const CHAT_VERSION: u8 = 1;
/// Longest message text, in bytes: a chat line, not a document (files go
/// by direct send).
pub const MAX_TEXT: usize = 16 * 1024;
/// Longest group title or address.
pub const MAX_NAME: usize = 320;
/// Most members of one group.
pub const MAX_MEMBERS: usize = 64;
/// Most message ids one receipt names.
pub const MAX_RECEIPT_IDS: usize = 1024;

const MESSAGE_MAGIC: &[u8; 4] = b"MMCM";
const RECEIPT_MAGIC: &[u8; 4] = b"MMCR";
const HISTORY_MAGIC: &[u8; 4] = b"MMHS";
const DIRECT_CONTEXT: &str = "mailmesh 2026-12 chat direct conversation v1";
const HISTORY_KEY_CONTEXT: &str = "mailmesh 2026-12 chat history at rest v1";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChatError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("a text of the {0} is too long or not valid UTF-8")]
    BadText(&'static str),
    #[error("the {0} names too many entries")]
    TooMany(&'static str),
    #[error("the {0} has an unknown kind")]
    UnknownKind(&'static str),
    #[error("the message says it is by {claimed}, but the node that sent it is {proved}'s")]
    WrongAuthor { claimed: String, proved: String },
    #[error("the message is not for {0}")]
    NotForUs(String),
    #[error("{0} is not a member of that group")]
    NotAMember(String),
    #[error("a message needs some text")]
    Empty,
    #[error("a direct conversation cannot become a group")]
    NotAGroup,
    #[error("the chat history cannot be opened (damaged, or another node's)")]
    History,
}

crate::wire::id16!(
    /// Names one conversation, the same on every node of every participant.
    ConversationId
);
crate::wire::id16!(
    /// Names one message: drawn at random by the author's node.
    MessageId
);

/// The conversation between two addresses, whoever writes first.
pub fn direct_conversation(a: &str, b: &str) -> ConversationId {
    let (a, b) = (normalize_email(a), normalize_email(b));
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = blake3::Hasher::new_derive_key(DIRECT_CONTEXT);
    for email in [first, second] {
        hasher.update(&(email.len() as u32).to_le_bytes());
        hasher.update(email.as_bytes());
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    ConversationId(id)
}

/// A group's title and members (addresses, normalized, sorted, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub title: String,
    pub members: Vec<String>,
}

impl Group {
    pub fn new(title: &str, members: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Group, ChatError> {
        let mut members: Vec<String> = members.into_iter().map(|m| normalize_email(m.as_ref())).collect();
        members.retain(|m| !m.is_empty());
        members.sort();
        members.dedup();
        if members.len() > MAX_MEMBERS {
            return Err(ChatError::TooMany("group"));
        }
        let title = title.trim().to_string();
        if title.len() > MAX_NAME || members.iter().any(|m| m.len() > MAX_NAME) {
            return Err(ChatError::BadText("group"));
        }
        Ok(Group { title, members })
    }

    pub fn has(&self, email: &str) -> bool {
        self.members.binary_search(&normalize_email(email)).is_ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Words from the author.
    Text,
    /// The author changed the group's members; the text says how.
    Members,
}

/// One chat message, as its author's engine sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: MessageId,
    pub conversation: ConversationId,
    /// The author's address, normalized.
    pub author: String,
    /// The author's clock when it was written (milliseconds since 1970).
    pub sent_at_ms: u64,
    pub kind: MessageKind,
    pub text: String,
    /// For a group conversation: its title and members as the author saw
    /// them. `None` for a direct conversation.
    pub group: Option<Group>,
}

impl ChatMessage {
    /// A text message; refuses an empty or overlong text.
    pub fn text(
        id: MessageId,
        conversation: ConversationId,
        author: &str,
        sent_at_ms: u64,
        text: &str,
        group: Option<Group>,
    ) -> Result<ChatMessage, ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        if text.len() > MAX_TEXT {
            return Err(ChatError::BadText("message"));
        }
        Ok(ChatMessage {
            id,
            conversation,
            author: normalize_email(author),
            sent_at_ms,
            kind: MessageKind::Text,
            text: text.to_string(),
            group,
        })
    }

    /// Everyone the message is for but its author.
    pub fn recipients(&self, direct_peer: Option<&str>) -> Vec<String> {
        match (&self.group, direct_peer) {
            (Some(group), _) => group.members.iter().filter(|m| **m != self.author).cloned().collect(),
            (None, Some(peer)) => vec![normalize_email(peer)],
            (None, None) => Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MESSAGE_MAGIC, CHAT_VERSION);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.conversation.0);
        wire::put_text(&mut out, &self.author);
        out.extend_from_slice(&self.sent_at_ms.to_le_bytes());
        out.push(match self.kind {
            MessageKind::Text => 0,
            MessageKind::Members => 1,
        });
        wire::put_text(&mut out, &self.text);
        match &self.group {
            None => out.push(0),
            Some(group) => {
                out.push(1);
                wire::put_text(&mut out, &group.title);
                out.extend_from_slice(&(group.members.len() as u32).to_le_bytes());
                for member in &group.members {
                    wire::put_text(&mut out, member);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ChatMessage, ChatError> {
        let mut r = Reader::new(bytes, MESSAGE_MAGIC, CHAT_VERSION, "chat message")?;
        let id = MessageId(r.array()?);
        let conversation = ConversationId(r.array()?);
        let author = r.text(MAX_NAME)?;
        let sent_at_ms = r.u64()?;
        let kind = match r.array::<1>()?[0] {
            0 => MessageKind::Text,
            1 => MessageKind::Members,
            _ => return Err(ChatError::UnknownKind("chat message")),
        };
        let text = r.text(MAX_TEXT)?;
        let group = match r.array::<1>()?[0] {
            0 => None,
            1 => {
                let title = r.text(MAX_NAME)?;
                let count = r.u32()? as usize;
                if count > MAX_MEMBERS {
                    return Err(ChatError::TooMany("group"));
                }
                let members = (0..count).map(|_| r.text(MAX_NAME)).collect::<Result<Vec<_>, _>>()?;
                let group = Group::new(&title, &members)?;
                // Only the canonical form is accepted, so that equal
                // messages are equal bytes on every node.
                if group.members != members || group.title != title {
                    return Err(ChatError::BadText("group"));
                }
                Some(group)
            }
            _ => return Err(ChatError::UnknownKind("chat message")),
        };
        r.end()?;
        if author != normalize_email(&author) {
            return Err(ChatError::BadText("chat message"));
        }
        Ok(ChatMessage { id, conversation, author, sent_at_ms, kind, text, group })
    }
}

/// The order of a conversation, the same on every node.
pub fn order_key(message: &ChatMessage) -> (u64, MessageId) {
    (message.sent_at_ms, message.id)
}

/// What the receiver already knows of a message's conversation.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// Nothing yet.
    New,
    /// A direct conversation between two addresses.
    Direct,
    /// A group, with its members as the receiver knows them.
    Group(&'a [String]),
}

/// Whether `me` takes `message`, which came over a link that proved the
/// address `link_email`, into a conversation it knows as `known`. Only a
/// member may write to (or change) a known group, and a direct
/// conversation never becomes a group: its id is the two addresses', and
/// anyone could otherwise claim it.
pub fn check_incoming(message: &ChatMessage, link_email: &str, me: &str, known: Known<'_>) -> Result<(), ChatError> {
    let (proved, me) = (normalize_email(link_email), normalize_email(me));
    if message.author != proved {
        return Err(ChatError::WrongAuthor { claimed: message.author.clone(), proved });
    }
    match &message.group {
        None => {
            if message.conversation != direct_conversation(&message.author, &me) {
                return Err(ChatError::NotForUs(me));
            }
        }
        Some(_)
            if matches!(known, Known::Direct) || message.conversation == direct_conversation(&message.author, &me) =>
        {
            return Err(ChatError::NotAGroup);
        }
        Some(group) => {
            let members = match known {
                Known::Group(members) => Some(members),
                _ => None,
            };
            if let Some(members) = members {
                if !members.contains(&message.author) {
                    return Err(ChatError::NotAMember(message.author.clone()));
                }
            }
            // A change of members reaches those it removed, to tell them.
            let hears_of_removal = message.kind == MessageKind::Members && members.is_some_and(|m| m.contains(&me));
            if !(group.has(&me) || hears_of_removal) {
                return Err(ChatError::NotForUs(me));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// A node of the reader has the message.
    Delivered,
    /// The reader opened the conversation after it arrived.
    Read,
}

/// Tells an author that messages reached (or were read by) a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    /// The reader's address (checked against the link, like an author).
    pub reader: String,
    pub at_ms: u64,
    pub messages: Vec<MessageId>,
}

impl Receipt {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(RECEIPT_MAGIC, CHAT_VERSION);
        out.push(match self.kind {
            ReceiptKind::Delivered => 0,
            ReceiptKind::Read => 1,
        });
        wire::put_text(&mut out, &self.reader);
        out.extend_from_slice(&self.at_ms.to_le_bytes());
        out.extend_from_slice(&(self.messages.len() as u32).to_le_bytes());
        for id in &self.messages {
            out.extend_from_slice(&id.0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Receipt, ChatError> {
        let mut r = Reader::new(bytes, RECEIPT_MAGIC, CHAT_VERSION, "chat receipt")?;
        let kind = match r.array::<1>()?[0] {
            0 => ReceiptKind::Delivered,
            1 => ReceiptKind::Read,
            _ => return Err(ChatError::UnknownKind("chat receipt")),
        };
        let reader = r.text(MAX_NAME)?;
        let at_ms = r.u64()?;
        let count = r.u32()? as usize;
        if count > MAX_RECEIPT_IDS {
            return Err(ChatError::TooMany("chat receipt"));
        }
        let messages = (0..count).map(|_| r.array().map(MessageId)).collect::<Result<Vec<_>, _>>()?;
        r.end()?;
        Ok(Receipt { kind, reader, at_ms, messages })
    }
}

/// The key a node seals its chat history with on disk: derived from its
/// own node key, so a copy of the history file alone reads as noise.
pub fn history_key(secrets: &NodeSecrets) -> [u8; 32] {
    blake3::derive_key(HISTORY_KEY_CONTEXT, &secrets.signing_key().to_bytes())
}

/// Seals the saved history under `key` with a fresh `nonce`.
pub fn seal_history(key: &[u8; 32], nonce: [u8; 24], history: &[u8]) -> Vec<u8> {
    let mut out = wire::header(HISTORY_MAGIC, CHAT_VERSION);
    out.extend_from_slice(&nonce);
    let header = out.clone();
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: history, aad: &header })
        // Encryption fails only for inputs beyond 256 GiB.
        .unwrap_or_default();
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal_history`] wrote.
pub fn open_history(key: &[u8; 32], bytes: &[u8]) -> Result<Vec<u8>, ChatError> {
    let mut r = Reader::new(bytes, HISTORY_MAGIC, CHAT_VERSION, "chat history")?;
    let nonce: [u8; 24] = r.array()?;
    let header = &bytes[..bytes.len() - r.rest_len()];
    let sealed = r.rest();
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(&nonce), Payload { msg: sealed, aad: header })
        .map_err(|_| ChatError::History)
}
