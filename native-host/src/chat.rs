//! The owner's chat history: one automerge document that every node of the
//! owner keeps and replicates to the others over their member links, sealed
//! on disk with the node's history key (`chat.bin`, 0600).
//!
//! Everything sits at the document's root as plain values under
//! structured keys, never in nested objects: two nodes that add the same
//! thing independently (both of Bob's nodes receiving one message) then
//! write the same keys, which automerge merges, instead of making two
//! competing objects of which one would hide the other's later edits.
//!
//! ```text
//! m/<conv>/<sent_at as 16 hex>/<msg id>  bytes  the ChatMessage as sent
//! i/<msg id>                             str    its m/ key
//! v/<msg id>                             bool   its sender was verified when it arrived
//! p/<msg id>/<email>                     bool   not yet delivered to email (author side)
//! d/<msg id>/<email>, r/<msg id>/<email> u64    delivered to / read by email, at
//! o/<d|r>/<msg id>/<email>               u64    a receipt owed to the author email
//! c/<conv>/kind                          str    "direct" or "group"
//! c/<conv>/peer                          str    the other address (direct)
//! c/<conv>/group, c/<conv>/group_at      bytes, u64   the latest member list seen
//! c/<conv>/read                          u64    read up to this send time (ours)
//! ```
//!
//! Keys under `m/<conv>/` sort by send time then id, which is the order of
//! [`mailmesh_core::chat::order_key`]: a conversation reads in one range
//! scan, in the same order on every node.

use std::path::PathBuf;

use crate::api::{ConversationView, MessageView};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ScalarValue, ScalarValueRef, ValueRef, ROOT};
use mailmesh_core::chat::{
    open_history, seal_history, ChatMessage, ConversationId, Group, MessageId, MessageKind, Receipt, ReceiptKind,
};
use mailmesh_core::people::normalize_email;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("cannot save the chat history: {0}")]
    Save(#[from] std::io::Error),
    #[error("the system's random number generator failed")]
    Random,
    #[error("a replication message from another node could not be read: {0}")]
    Sync(String),
    #[error("the chat history could not be changed: {0}")]
    Doc(#[from] automerge::AutomergeError),
}

/// A conversation as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    /// The other address of a direct conversation.
    pub peer: Option<String>,
    pub group: Option<Group>,
    /// The send time of the group list above (a later list wins).
    pub group_at: u64,
    pub read_up_to: u64,
}

impl Conversation {
    pub fn title(&self) -> String {
        match (&self.group, &self.peer) {
            (Some(group), _) if !group.title.is_empty() => group.title.clone(),
            (Some(group), _) => group.members.join(", "),
            (None, Some(peer)) => peer.clone(),
            (None, None) => String::new(),
        }
    }
}

/// A receipt this node still owes an author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub kind: ReceiptKind,
    pub message: MessageId,
    pub to: String,
    pub at_ms: u64,
}

pub struct History {
    doc: AutoCommit,
    path: PathBuf,
    key: [u8; 32],
    /// The conversation list for an address, until the next change: status
    /// and list requests come far more often than messages.
    summaries: std::cell::RefCell<Option<(String, Vec<ConversationView>)>>,
    /// Records in the file since it was last written whole (or
    /// `COMPACT_AFTER` when the next save must write it whole).
    records: usize,
}

/// Appended records after which the file is written whole again.
const COMPACT_AFTER: usize = 256;

impl History {
    /// The history saved at `path`, or an empty one. The file is a run of
    /// records (`len u32 | sealed`): a whole save, then the changes made
    /// since, each sealed on its own. A torn last record (a crash while
    /// appending) is dropped; a file whose first record does not open is
    /// moved aside (not lost) and the history starts over, and the
    /// owner's other nodes give it back by replication.
    pub fn load(path: PathBuf, key: [u8; 32]) -> History {
        let mut history = History { doc: AutoCommit::new(), path, key, records: 0, summaries: Default::default() };
        let Ok(bytes) = std::fs::read(&history.path) else { return history };
        let (plain, records) = open_records(&key, &bytes);
        match AutoCommit::load(&plain) {
            Ok(doc) if records > 0 => {
                history.doc = doc;
                // The first save after a load writes the file whole: it
                // drops any torn tail, and automerge's record of what was
                // saved starts afresh with a loaded document.
                history.records = COMPACT_AFTER.max(records);
            }
            loaded => {
                let why = loaded.err().map_or_else(|| "no readable record".to_string(), |e| e.to_string());
                tracing::warn!("the chat history cannot be read ({why}); it was moved aside and starts empty");
                let _ = std::fs::rename(&history.path, history.path.with_extension("bin.damaged"));
            }
        }
        history
    }

    /// What to write for the changes since the last write: a record to
    /// append (or, now and then, the whole history anew), so a message costs
    /// a small write. Seals here and touches no disk: [`HistoryWriter`]
    /// writes it, off the async workers and outside any lock.
    pub fn take_write(&mut self) -> Result<Option<HistoryWrite>, HistoryError> {
        let nonce: [u8; 24] = crate::rng::bytes().map_err(|_| HistoryError::Random)?;
        if self.records == 0 || self.records >= COMPACT_AFTER {
            let record = frame_record(&seal_history(&self.key, nonce, &self.doc.save()));
            self.records = 1;
            return Ok(Some(HistoryWrite::Whole(record)));
        }
        let changes = self.doc.save_incremental();
        if changes.is_empty() {
            return Ok(None);
        }
        self.records += 1;
        Ok(Some(HistoryWrite::Append(frame_record(&seal_history(&self.key, nonce, &changes)))))
    }

    /// A write was lost (its queue was full): the next one writes the whole
    /// history, which holds everything the lost one did.
    pub fn rewrite_whole(&mut self) {
        self.records = COMPACT_AFTER;
    }

    /// Writes the changes since the last write now, here (tests and tools;
    /// the engine goes through [`HistoryWriter`]).
    pub fn save(&mut self) -> Result<(), HistoryError> {
        if let Some(write) = self.take_write()? {
            write.apply(&self.path)?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.get_heads()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    // --- reading -------------------------------------------------------

    fn scalar(&self, key: &str) -> Option<ScalarValue> {
        match self.doc.get(ROOT, key).ok()?? {
            (automerge::Value::Scalar(value), _) => Some(value.into_owned()),
            _ => None,
        }
    }

    fn u64(&self, key: &str) -> Option<u64> {
        match self.scalar(key)? {
            ScalarValue::Uint(v) => Some(v),
            ScalarValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.scalar(key)? {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        match self.scalar(key)? {
            ScalarValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The keys under `prefix`, in order, with their values.
    fn range(&self, prefix: &str) -> Vec<(String, ValueRef<'_>)> {
        let end = format!("{prefix}\u{10ffff}");
        self.doc.map_range(ROOT, prefix.to_string()..end).map(|item| (item.key.into_owned(), item.value)).collect()
    }

    /// The last path component of the keys under `prefix`.
    fn names(&self, prefix: &str) -> Vec<String> {
        self.range(prefix).into_iter().map(|(k, _)| k[prefix.len()..].to_string()).collect()
    }

    pub fn conversation(&self, id: &ConversationId) -> Option<Conversation> {
        let base = format!("c/{id}/");
        let kind = self.text(&format!("{base}kind"))?;
        let group = self
            .bytes(&format!("{base}group"))
            .and_then(|b| ChatMessage::decode(&b).ok())
            .and_then(|m| m.group)
            .filter(|_| kind == "group");
        Some(Conversation {
            id: *id,
            peer: self.text(&format!("{base}peer")),
            group,
            group_at: self.u64(&format!("{base}group_at")).unwrap_or(0),
            read_up_to: self.u64(&format!("{base}read")).unwrap_or(0),
        })
    }

    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        let mut ids: Vec<ConversationId> =
            self.range("c/").into_iter().filter_map(|(k, _)| k.get(2..34).and_then(|id| id.parse().ok())).collect();
        ids.dedup();
        ids
    }

    /// A conversation's newest `limit` messages, in order, and how many
    /// come before them. Only the page's messages are decoded.
    pub fn newest_messages(&self, conversation: &ConversationId, limit: usize) -> (Vec<ChatMessage>, usize) {
        let all = self.range(&format!("m/{conversation}/"));
        let earlier = all.len().saturating_sub(limit);
        (all.into_iter().skip(earlier).filter_map(|(_, value)| decode_message(value)).collect(), earlier)
    }

    /// A conversation's messages sent after `after_ms`, in order. Message
    /// keys begin with the time, so only these are read: what is unread
    /// costs what is unread, not the whole conversation.
    fn messages_after(&self, conversation: &ConversationId, after_ms: u64) -> Vec<ChatMessage> {
        let from = format!("m/{conversation}/{:016x}", after_ms.saturating_add(1));
        let end = format!("m/{conversation}/\u{10ffff}");
        self.doc.map_range(ROOT, from..end).filter_map(|item| decode_message(item.value)).collect()
    }

    /// A conversation's messages, in order.
    pub fn messages(&self, conversation: &ConversationId) -> Vec<ChatMessage> {
        self.range(&format!("m/{conversation}/")).into_iter().filter_map(|(_, value)| decode_message(value)).collect()
    }

    pub fn message(&self, id: &MessageId) -> Option<ChatMessage> {
        let key = self.text(&format!("i/{id}"))?;
        ChatMessage::decode(&self.bytes(&key)?).ok()
    }

    pub fn view(&self, message: &ChatMessage) -> MessageView {
        let id = message.id;
        MessageView {
            id: id.to_string(),
            author: message.author.clone(),
            sent_at: message.sent_at_ms,
            kind: match message.kind {
                MessageKind::Text => "text",
                MessageKind::Members => "members",
            }
            .into(),
            text: message.text.clone(),
            verified: !matches!(self.scalar(&format!("v/{id}")), Some(ScalarValue::Boolean(false))),
            pending: self.names(&format!("p/{id}/")),
            delivered: self.names(&format!("d/{id}/")),
            read: self.names(&format!("r/{id}/")),
        }
    }

    fn unread_in(&self, conversation: &Conversation, me: &str) -> u32 {
        self.messages_after(&conversation.id, conversation.read_up_to).iter().filter(|m| m.author != me).count() as u32
    }

    pub fn summaries(&self, me: &str) -> Vec<ConversationView> {
        let me = normalize_email(me);
        if let Some((cached_for, list)) = &*self.summaries.borrow() {
            if *cached_for == me {
                return list.clone();
            }
        }
        let list = self.compute_summaries(&me);
        *self.summaries.borrow_mut() = Some((me, list.clone()));
        list
    }

    fn compute_summaries(&self, me: &str) -> Vec<ConversationView> {
        let me = me.to_string();
        let mut list: Vec<ConversationView> = self
            .conversation_ids()
            .iter()
            .filter_map(|id| self.conversation(id))
            .map(|c| {
                let (newest, _) = self.newest_messages(&c.id, 1);
                let last = newest.last();
                ConversationView {
                    id: c.id.to_string(),
                    kind: if c.group.is_some() { "group" } else { "direct" }.into(),
                    title: c.title(),
                    members: match (&c.group, &c.peer) {
                        (Some(g), _) => g.members.clone(),
                        (None, Some(peer)) => vec![me.clone(), peer.clone()],
                        (None, None) => vec![me.clone()],
                    },
                    unread: self.unread_in(&c, &me),
                    last_at: last.map_or(0, |m| m.sent_at_ms),
                    last_text: last.map(|m| m.text.clone()).unwrap_or_default(),
                }
            })
            .collect();
        list.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.id.cmp(&b.id)));
        list
    }

    pub fn unread_total(&self, me: &str) -> u32 {
        self.summaries(me).iter().map(|c| c.unread).sum()
    }

    /// Messages waiting for delivery, with the addresses still to reach.
    pub fn pending(&self) -> Vec<(ChatMessage, Vec<String>)> {
        let mut out: Vec<(ChatMessage, Vec<String>)> = Vec::new();
        for name in self.names("p/") {
            let Some((id, email)) = name.split_once('/') else { continue };
            let Ok(id) = id.parse::<MessageId>() else { continue };
            match out.last_mut() {
                Some((m, emails)) if m.id == id => emails.push(email.to_string()),
                _ => {
                    if let Some(message) = self.message(&id) {
                        out.push((message, vec![email.to_string()]));
                    }
                }
            }
        }
        out
    }

    pub fn owed(&self) -> Vec<Owed> {
        self.range("o/")
            .into_iter()
            .filter_map(|(key, value)| {
                let mut parts = key.splitn(4, '/').skip(1);
                let kind = match parts.next()? {
                    "d" => ReceiptKind::Delivered,
                    "r" => ReceiptKind::Read,
                    _ => return None,
                };
                let message = parts.next()?.parse().ok()?;
                let to = parts.next()?.to_string();
                let at_ms = match value {
                    ValueRef::Scalar(ScalarValueRef::Uint(v)) => v,
                    _ => 0,
                };
                Some(Owed { kind, message, to, at_ms })
            })
            .collect()
    }

    // --- changing ------------------------------------------------------

    fn put(&mut self, key: &str, value: impl Into<ScalarValue>) -> Result<(), HistoryError> {
        self.changed();
        self.doc.put(ROOT, key, value)?;
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), HistoryError> {
        self.changed();
        self.doc.delete(ROOT, key)?;
        Ok(())
    }

    fn changed(&self) {
        self.summaries.borrow_mut().take();
    }

    fn message_key(message: &ChatMessage) -> String {
        format!("m/{}/{:016x}/{}", message.conversation, message.sent_at_ms, message.id)
    }

    /// Records a conversation's kind and, if newer than what we have, its
    /// group list (carried by `message`).
    fn note_conversation(&mut self, message: &ChatMessage, peer: Option<&str>) -> Result<(), HistoryError> {
        let base = format!("c/{}/", message.conversation);
        let known = self.conversation(&message.conversation);
        match (&message.group, peer) {
            (Some(_), _) if known.as_ref().is_none_or(|c| message.sent_at_ms >= c.group_at) => {
                self.put(&format!("{base}kind"), "group")?;
                self.put(&format!("{base}group"), ScalarValue::Bytes(message.encode()))?;
                self.put(&format!("{base}group_at"), message.sent_at_ms)?;
            }
            (None, Some(peer)) if known.is_none() => {
                self.put(&format!("{base}kind"), "direct")?;
                self.put(&format!("{base}peer"), normalize_email(peer))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A message we wrote: stored, pending for each of `recipients`.
    pub fn add_own(
        &mut self,
        message: &ChatMessage,
        peer: Option<&str>,
        recipients: &[String],
    ) -> Result<(), HistoryError> {
        self.note_conversation(message, peer)?;
        let key = Self::message_key(message);
        self.put(&key, ScalarValue::Bytes(message.encode()))?;
        self.put(&format!("i/{}", message.id), key)?;
        for to in recipients {
            self.put(&format!("p/{}/{to}", message.id), true)?;
        }
        // What we answered, we read.
        self.read_up_to(&message.conversation, &message.author, message.sent_at_ms, message.sent_at_ms)?;
        Ok(())
    }

    /// A message from someone else, checked by the caller. Returns whether
    /// it was new. A delivered receipt is owed either way: the author
    /// resends until one reaches it.
    pub fn add_incoming(&mut self, message: &ChatMessage, verified: bool, at_ms: u64) -> Result<bool, HistoryError> {
        let id = message.id;
        self.put(&format!("o/d/{id}/{}", message.author), at_ms)?;
        if self.message(&id).is_some() {
            return Ok(false);
        }
        let peer = message.group.is_none().then_some(message.author.as_str());
        self.note_conversation(message, peer)?;
        let key = Self::message_key(message);
        self.put(&key, ScalarValue::Bytes(message.encode()))?;
        self.put(&format!("i/{id}"), key)?;
        self.put(&format!("v/{id}"), verified)?;
        Ok(true)
    }

    /// A receipt from `reader` (already checked against the link) for
    /// messages of ours. Returns whether anything changed.
    pub fn on_receipt(&mut self, receipt: &Receipt, me: &str) -> Result<bool, HistoryError> {
        let reader = normalize_email(&receipt.reader);
        let mut changed = false;
        for id in &receipt.messages {
            let Some(message) = self.message(id) else { continue };
            let peer = self.conversation(&message.conversation).and_then(|c| c.peer);
            let pending = format!("p/{id}/{reader}");
            // A member removed by this very message was sent it too.
            let was_sent = message.recipients(peer.as_deref()).contains(&reader) || self.scalar(&pending).is_some();
            if message.author != me || !was_sent {
                continue;
            }
            let kinds: &[&str] = match receipt.kind {
                ReceiptKind::Delivered => &["d"],
                // Read implies delivered.
                ReceiptKind::Read => &["d", "r"],
            };
            for kind in kinds {
                let key = format!("{kind}/{id}/{reader}");
                if self.u64(&key).is_none() {
                    self.put(&key, receipt.at_ms)?;
                    changed = true;
                }
            }
            if self.scalar(&pending).is_some() {
                self.delete(&pending)?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// A receipt was handed to a link of its addressee.
    pub fn paid(&mut self, owed: &Owed) -> Result<(), HistoryError> {
        let kind = match owed.kind {
            ReceiptKind::Delivered => "d",
            ReceiptKind::Read => "r",
        };
        self.delete(&format!("o/{kind}/{}/{}", owed.message, owed.to))?;
        Ok(())
    }

    fn advance_read(&mut self, conversation: &ConversationId, up_to: u64) -> Result<bool, HistoryError> {
        let key = format!("c/{conversation}/read");
        if self.u64(&key).is_some_and(|r| r >= up_to) {
            return Ok(false);
        }
        self.put(&key, up_to)?;
        Ok(true)
    }

    /// The owner opened a conversation: everything in it is read, and a
    /// read receipt is owed to the author of each message not read before.
    pub fn mark_read(&mut self, conversation: &ConversationId, me: &str, at_ms: u64) -> Result<bool, HistoryError> {
        let Some(last) = self.newest_messages(conversation, 1).0.last().map(|m| m.sent_at_ms) else { return Ok(false) };
        self.read_up_to(conversation, me, last, at_ms)
    }

    /// Marks read what `me` had before `up_to` (answering is reading too).
    fn read_up_to(
        &mut self,
        conversation: &ConversationId,
        me: &str,
        up_to: u64,
        at_ms: u64,
    ) -> Result<bool, HistoryError> {
        let Some(known) = self.conversation(conversation) else { return Ok(false) };
        let newly_read: Vec<ChatMessage> = self
            .messages_after(conversation, known.read_up_to)
            .into_iter()
            .filter(|m| m.author != me && m.sent_at_ms <= up_to)
            .collect();
        for m in newly_read {
            self.put(&format!("o/r/{}/{}", m.id, m.author), at_ms)?;
        }
        self.advance_read(conversation, up_to)
    }

    // --- replication ---------------------------------------------------

    /// What to send a member next, if anything.
    pub fn sync_message(&mut self, state: &mut sync::State) -> Option<Vec<u8>> {
        self.doc.sync().generate_sync_message(state).map(|m| m.encode())
    }

    /// Takes a member's sync message; returns whether the history changed.
    pub fn receive_sync(&mut self, state: &mut sync::State, bytes: &[u8]) -> Result<bool, HistoryError> {
        let message = sync::Message::decode(bytes).map_err(|e| HistoryError::Sync(e.to_string()))?;
        let before = self.doc.get_heads();
        self.doc.sync().receive_sync_message(state, message).map_err(|e| HistoryError::Sync(e.to_string()))?;
        let changed = self.doc.get_heads() != before;
        if changed {
            self.changed();
        }
        Ok(changed)
    }
}

/// One write of `chat.bin`, in the order [`History::take_write`] made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryWrite {
    /// The whole history: replaces the file.
    Whole(Vec<u8>),
    /// A record of changes: appended.
    Append(Vec<u8>),
}

impl HistoryWrite {
    /// Carries out writes queued in this order, with one fsync: a whole
    /// write makes everything before it moot, and the appends after the
    /// last one go in a single write.
    pub fn apply_all(writes: Vec<HistoryWrite>, path: &std::path::Path) -> std::io::Result<()> {
        let from = writes.iter().rposition(|w| matches!(w, HistoryWrite::Whole(_))).unwrap_or(0);
        let mut appended = Vec::new();
        for write in writes.into_iter().skip(from) {
            match write {
                whole @ HistoryWrite::Whole(_) => whole.apply(path)?,
                HistoryWrite::Append(bytes) => appended.extend_from_slice(&bytes),
            }
        }
        if appended.is_empty() {
            return Ok(());
        }
        HistoryWrite::Append(appended).apply(path)
    }

    /// Carries the write out, fsync included (blocking).
    pub fn apply(&self, path: &std::path::Path) -> std::io::Result<()> {
        match self {
            HistoryWrite::Whole(bytes) => crate::home::write_private(path, bytes, 0o600),
            HistoryWrite::Append(bytes) => {
                let mut file = crate::home::open_private_append(path)?;
                std::io::Write::write_all(&mut file, bytes)?;
                file.sync_data()
            }
        }
    }
}

/// Writes the history's records in order on a blocking thread: one task,
/// one queue of [`HistoryWriter::QUEUE`] writes. A write that finds the
/// queue full is not queued, and the caller makes the next one whole
/// ([`History::rewrite_whole`]), so nothing is lost and nothing waits.
pub struct HistoryWriter {
    queue: tokio::sync::mpsc::Sender<HistoryWrite>,
}

impl HistoryWriter {
    pub const QUEUE: usize = 64;

    pub fn start(path: PathBuf) -> HistoryWriter {
        let (queue, mut writes) = tokio::sync::mpsc::channel::<HistoryWrite>(Self::QUEUE);
        tokio::spawn(async move {
            while let Some(first) = writes.recv().await {
                // Whatever queued meanwhile goes in the same pass: one fsync
                // for a burst (a message and its receipt) instead of one each.
                let mut batch = vec![first];
                while let Ok(more) = writes.try_recv() {
                    batch.push(more);
                }
                let path = path.clone();
                match tokio::task::spawn_blocking(move || HistoryWrite::apply_all(batch, &path)).await {
                    Ok(Err(e)) => tracing::warn!("cannot save the chat history: {e}"),
                    Err(e) => tracing::warn!("cannot save the chat history: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        });
        HistoryWriter { queue }
    }

    /// Queues the changes since the last write of `history` (call it with
    /// the history locked, so writes queue in the order they were made).
    pub fn save(&self, history: &mut History) {
        match history.take_write() {
            Ok(Some(write)) => {
                if self.queue.try_send(write).is_err() {
                    tracing::warn!("the chat history's writer is behind; the next save writes it whole");
                    history.rewrite_whole();
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// A message as the history stores it (its encoding, as bytes).
fn decode_message(value: ValueRef<'_>) -> Option<ChatMessage> {
    match value {
        ValueRef::Scalar(ScalarValueRef::Bytes(bytes)) => ChatMessage::decode(&bytes).ok(),
        _ => None,
    }
}

fn frame_record(sealed: &[u8]) -> Vec<u8> {
    let mut out = (sealed.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(sealed);
    out
}

/// The plaintext of every record that opens, in order, up to the first
/// that does not (a torn tail), and how many opened.
fn open_records(key: &[u8; 32], mut bytes: &[u8]) -> (Vec<u8>, usize) {
    let mut plain = Vec::new();
    let mut records = 0;
    while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((record, rest)) = rest.split_at_checked(len) else { break };
        let Ok(opened) = open_history(key, record) else { break };
        plain.extend_from_slice(&opened);
        records += 1;
        bytes = rest;
    }
    (plain, records)
}

#[cfg(test)]
mod tests {
    use mailmesh_core::chat::direct_conversation;

    use super::*;

    fn history(dir: &tempfile::TempDir, name: &str) -> History {
        History::load(dir.path().join(name), [1; 32])
    }

    fn text(id: u8, from: &str, to: &str, at: u64) -> ChatMessage {
        ChatMessage::text(MessageId([id; 16]), direct_conversation(from, to), from, at, &format!("m{id}"), None)
            .unwrap()
    }

    fn bob() -> Vec<String> {
        vec!["bob@y.org".into()]
    }

    /// Runs the sync protocol between two histories until both are quiet.
    fn sync_pair(a: &mut History, b: &mut History) {
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        for _ in 0..20 {
            let from_a = a.sync_message(&mut sa);
            let from_b = b.sync_message(&mut sb);
            if from_a.is_none() && from_b.is_none() {
                return;
            }
            if let Some(m) = from_a {
                b.receive_sync(&mut sb, &m).unwrap();
            }
            if let Some(m) = from_b {
                a.receive_sync(&mut sa, &m).unwrap();
            }
        }
        panic!("sync did not settle");
    }

    #[test]
    fn a_conversation_reads_in_send_order_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = history(&dir, "chat.bin");
        h.add_own(&text(2, "alice@x.org", "bob@y.org", 20), Some("bob@y.org"), &bob()).unwrap();
        h.add_incoming(&text(1, "bob@y.org", "alice@x.org", 10), true, 30).unwrap();
        h.add_own(&text(3, "alice@x.org", "bob@y.org", 20), Some("bob@y.org"), &bob()).unwrap();
        h.save().unwrap();
        let h = history(&dir, "chat.bin");
        let conv = direct_conversation("alice@x.org", "bob@y.org");
        let texts: Vec<String> = h.messages(&conv).into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["m1", "m2", "m3"]);
        assert_eq!(h.conversation(&conv).unwrap().peer.as_deref(), Some("bob@y.org"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("chat.bin")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_write_lost_to_a_full_queue_is_made_good_by_the_next_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = history(&dir, "chat.bin");
        let path = dir.path().join("chat.bin");
        let conv = direct_conversation("alice@x.org", "bob@y.org");
        let add = |h: &mut History, i: u8| {
            h.add_own(&text(i, "alice@x.org", "bob@y.org", 10 + i as u64), Some("bob@y.org"), &bob()).unwrap();
            h.take_write().unwrap().expect("a change to write")
        };
        let first = add(&mut h, 1);
        assert!(matches!(first, HistoryWrite::Whole(_)), "a new file is written whole");
        first.apply(&path).unwrap();
        let second = add(&mut h, 2);
        assert!(matches!(second, HistoryWrite::Append(_)));
        second.apply(&path).unwrap();
        // The third write is dropped (its queue was full)...
        let _lost = add(&mut h, 3);
        h.rewrite_whole();
        assert_eq!(history(&dir, "chat.bin").messages(&conv).len(), 2, "the lost write is not on disk");
        // ...and the next write carries everything.
        let fourth = add(&mut h, 4);
        assert!(matches!(fourth, HistoryWrite::Whole(_)));
        fourth.apply(&path).unwrap();
        let texts: Vec<String> = history(&dir, "chat.bin").messages(&conv).into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["m1", "m2", "m3", "m4"]);
        assert_eq!(h.take_write().unwrap(), None, "nothing new, nothing to write");
    }

    #[test]
    fn appended_changes_load_back_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = history(&dir, "chat.bin");
        for i in 0..5u8 {
            h.add_own(&text(i, "alice@x.org", "bob@y.org", 10 + i as u64), Some("bob@y.org"), &bob()).unwrap();
            h.save().unwrap();
        }
        let path = dir.path().join("chat.bin");
        let conv = direct_conversation("alice@x.org", "bob@y.org");
        assert_eq!(history(&dir, "chat.bin").messages(&conv).len(), 5);
        // A crash while appending: half a record at the end.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(b"half");
        std::fs::write(&path, bytes).unwrap();
        let mut again = history(&dir, "chat.bin");
        assert_eq!(again.messages(&conv).len(), 5);
        again.add_own(&text(9, "alice@x.org", "bob@y.org", 99), Some("bob@y.org"), &bob()).unwrap();
        again.save().unwrap();
        assert_eq!(history(&dir, "chat.bin").messages(&conv).len(), 6, "the torn tail does not hide what follows");
    }

    #[test]
    fn a_damaged_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat.bin"), b"garbage").unwrap();
        let h = history(&dir, "chat.bin");
        assert!(h.conversation_ids().is_empty());
        assert!(dir.path().join("chat.bin.damaged").exists());
    }

    #[test]
    fn receipts_clear_pending_and_unread_counts_follow_the_read_mark() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = history(&dir, "a");
        let mine = text(1, "alice@x.org", "bob@y.org", 10);
        h.add_own(&mine, Some("bob@y.org"), &bob()).unwrap();
        assert_eq!(h.pending().len(), 1);
        let receipt =
            Receipt { kind: ReceiptKind::Read, reader: "bob@y.org".into(), at_ms: 11, messages: vec![mine.id] };
        // A receipt from someone the message was not for changes nothing.
        let stranger = Receipt { reader: "mallory@z.org".into(), ..receipt.clone() };
        assert!(!h.on_receipt(&stranger, "alice@x.org").unwrap());
        assert!(h.on_receipt(&receipt, "alice@x.org").unwrap());
        assert!(h.pending().is_empty());
        let view = h.view(&mine);
        assert_eq!((view.delivered, view.read), (vec!["bob@y.org".to_string()], vec!["bob@y.org".to_string()]));

        let theirs = text(2, "bob@y.org", "alice@x.org", 12);
        assert!(h.add_incoming(&theirs, true, 13).unwrap());
        assert!(!h.add_incoming(&theirs, true, 14).unwrap(), "a second delivery is the same message");
        assert_eq!(h.unread_total("alice@x.org"), 1);
        h.mark_read(&mine.conversation, "alice@x.org", 15).unwrap();
        assert_eq!(h.unread_total("alice@x.org"), 0);
        let owed: Vec<_> = h.owed().into_iter().map(|o| (o.kind, o.to)).collect();
        assert_eq!(owed, [(ReceiptKind::Delivered, "bob@y.org".into()), (ReceiptKind::Read, "bob@y.org".into())]);
    }

    #[test]
    fn two_nodes_that_both_received_a_message_agree_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b1, mut b2) = (history(&dir, "b1"), history(&dir, "b2"));
        let first = text(1, "alice@x.org", "bob@y.org", 10);
        b1.add_incoming(&first, true, 11).unwrap();
        b2.add_incoming(&first, true, 12).unwrap();
        b2.add_incoming(&text(2, "alice@x.org", "bob@y.org", 20), true, 21).unwrap();
        b1.mark_read(&first.conversation, "bob@y.org", 30).unwrap();
        sync_pair(&mut b1, &mut b2);
        let conv = first.conversation;
        assert_eq!(b1.messages(&conv), b2.messages(&conv));
        assert_eq!(b1.messages(&conv).len(), 2);
        assert_eq!(b1.summaries("bob@y.org"), b2.summaries("bob@y.org"));
    }

    #[test]
    fn a_later_group_list_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = history(&dir, "g");
        let conv = ConversationId([7; 16]);
        let mut message = text(1, "alice@x.org", "bob@y.org", 10);
        message.conversation = conv;
        message.group = Some(Group::new("trip", ["alice@x.org", "bob@y.org", "carol@z.org"]).unwrap());
        h.add_incoming(&message, true, 11).unwrap();
        let mut later = message.clone();
        later.id = MessageId([2; 16]);
        later.sent_at_ms = 20;
        later.group = Some(Group::new("trip", ["alice@x.org", "bob@y.org"]).unwrap());
        h.add_incoming(&later, true, 21).unwrap();
        let mut stale = message.clone();
        stale.id = MessageId([3; 16]);
        stale.sent_at_ms = 15;
        h.add_incoming(&stale, true, 22).unwrap();
        assert_eq!(h.conversation(&conv).unwrap().group.unwrap().members.len(), 2);
    }

    #[test]
    fn a_batch_of_writes_lands_as_the_writes_one_by_one_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.bin");
        let append = |b: &[u8]| HistoryWrite::Append(b.to_vec());
        HistoryWrite::apply_all(vec![append(b"a"), append(b"b")], &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ab");
        let batch = vec![append(b"c"), HistoryWrite::Whole(b"WHOLE".to_vec()), append(b"d"), append(b"e")];
        HistoryWrite::apply_all(batch, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"WHOLEde", "a whole write makes what came before it moot");
        HistoryWrite::apply_all(vec![append(b"f")], &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"WHOLEdef");
    }
}
