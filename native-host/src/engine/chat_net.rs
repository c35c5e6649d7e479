//! Chat on the network (issue 7): the `chat_*` requests, the chat frames
//! between engines, and the loop that delivers what is still pending.
//!
//! ```text
//! chat_send ─▶ History::add_own (pending for each recipient) ─▶ save
//!   ├─▶ chat.sync to every online member (automerge sync; the history is theirs too)
//!   └─▶ deliver: chat.msg to each recipient's *verified* linked nodes
//! their engine: check_incoming ─▶ add_incoming ─▶ chat.receipt (delivered) back
//! our engine (any node of ours): on_receipt clears pending ─▶ chat.sync
//! ```
//!
//! Delivery is retried every few seconds and whenever a link comes up, by
//! every node of the author: the pending marks replicate with the history,
//! so a message reaches someone who comes back even while the node that
//! wrote it is off. Receipts owed are kept the same way until a link of
//! their addressee takes them. Messages go only to nodes verified for the
//! address (pinned by the email challenge): a node that merely claims it
//! gets nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use automerge::sync;
use mailmesh_core::chat::{
    check_incoming, direct_conversation, ChatMessage, ConversationId, Group, MessageId, MessageKind, Receipt,
};
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::people::{normalize_email, Trust};

use super::Engine;
use crate::api::{ConversationDetail, ConversationView, Event, MessageView};
use crate::chat::{History, HistoryError, HistoryWriter, Owed};
use crate::clock::now_ms;

const MESSAGE_TOPIC: &str = "chat.msg";
const RECEIPT_TOPIC: &str = "chat.receipt";
const SYNC_TOPIC: &str = "chat.sync";
pub const HISTORY_FILE: &str = "chat.bin";
/// How often pending messages and receipts are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(3);

/// The engine's chat state: the history and one sync state per member.
pub struct ChatState {
    pub history: History,
    sync: HashMap<NodeId, sync::State>,
    writer: HistoryWriter,
}

impl ChatState {
    pub fn new(history: History) -> ChatState {
        let writer = HistoryWriter::start(history.path().to_path_buf());
        ChatState { history, sync: HashMap::new(), writer }
    }

    /// Queues the changes for the disk (written by the writer's task).
    fn save(&mut self) {
        self.writer.save(&mut self.history);
    }
}

/// What a user did wrong or what stands in the way, in words.
#[derive(Debug, thiserror::Error)]
pub enum ChatNetError {
    #[error("no mail account is set up, so this node has no address to chat from")]
    NoAccount,
    #[error("{0} is not a conversation here, nor an address")]
    UnknownConversation(String),
    #[error("{0} has no verified device yet: verify them under People first")]
    NotVerified(String),
    #[error("{0} is blocked")]
    Blocked(String),
    #[error("that is a direct conversation; start a group to chat with more people")]
    NotAGroup,
    #[error("you are no longer a member of this group")]
    NotAMember,
    #[error(transparent)]
    Chat(#[from] mailmesh_core::chat::ChatError),
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl Engine {
    fn chat(&self) -> MutexGuard<'_, ChatState> {
        crate::sync::lock(&self.chat)
    }

    pub(super) async fn my_email(&self) -> Result<String, ChatNetError> {
        let state = self.state.lock().await;
        state.account.as_ref().map(|(a, _)| normalize_email(&a.email)).ok_or(ChatNetError::NoAccount)
    }

    /// Whether `email` has a verified device and is not blocked.
    pub(super) fn check_verified(&self, email: &str) -> Result<(), ChatNetError> {
        match self.people.book().person(email) {
            Some(person) if person.blocked => Err(ChatNetError::Blocked(email.into())),
            Some(person) if person.is_verified() => Ok(()),
            _ => Err(ChatNetError::NotVerified(email.into())),
        }
    }

    /// Saves the history after a change, tells clients, and hands the
    /// change to the owner's other nodes.
    async fn chat_changed(&self) {
        self.chat().save();
        self.notify(Event::ChatChanged);
        self.replicate_chat(None).await;
        self.chat_wake.notify_one();
    }

    pub async fn chat_list(&self) -> Result<Vec<ConversationView>, ChatNetError> {
        let me = self.my_email().await?;
        Ok(self.chat().history.summaries(&me))
    }

    pub async fn chat_unread(&self) -> u32 {
        match self.my_email().await {
            Ok(me) => self.chat().history.unread_total(&me),
            Err(_) => 0,
        }
    }

    /// A conversation named by its id or, for a direct one, by the other
    /// address (started if new).
    async fn resolve(&self, target: &str) -> Result<(ConversationId, Option<String>, Option<Group>), ChatNetError> {
        let me = self.my_email().await?;
        if let Ok(id) = target.parse::<ConversationId>() {
            let known = self.chat().history.conversation(&id);
            let known = known.ok_or_else(|| ChatNetError::UnknownConversation(target.into()))?;
            return Ok((id, known.peer, known.group));
        }
        if !target.contains('@') {
            return Err(ChatNetError::UnknownConversation(target.into()));
        }
        let peer = normalize_email(target);
        Ok((direct_conversation(&me, &peer), Some(peer), None))
    }

    pub async fn chat_show(&self, target: &str) -> Result<ConversationDetail, ChatNetError> {
        let me = self.my_email().await?;
        let (id, _, _) = self.resolve(target).await?;
        let chat = self.chat();
        let summary = chat
            .history
            .summaries(&me)
            .into_iter()
            .find(|c| c.id == id.to_string())
            .ok_or_else(|| ChatNetError::UnknownConversation(target.into()))?;
        let messages = chat.history.messages(&id).iter().map(|m| chat.history.view(m)).collect();
        Ok(ConversationDetail { summary, messages })
    }

    /// Writes `text` into a conversation (or to an address).
    pub async fn chat_send(&self, target: &str, text: &str) -> Result<MessageView, ChatNetError> {
        let me = self.my_email().await?;
        let (conversation, peer, group) = self.resolve(target).await?;
        let recipients = match (&group, &peer) {
            (Some(g), _) if !g.has(&me) => return Err(ChatNetError::NotAMember),
            (Some(g), _) => g.members.iter().filter(|m| **m != me).cloned().collect(),
            (None, Some(peer)) => {
                self.check_verified(peer)?;
                vec![peer.clone()]
            }
            (None, None) => return Err(ChatNetError::UnknownConversation(target.into())),
        };
        let message =
            ChatMessage::text(MessageId(crate::rng::bytes_or_zeros()), conversation, &me, now_ms(), text, group)?;
        self.post(message, peer.as_deref(), &recipients).await
    }

    async fn post(&self, message: ChatMessage, peer: Option<&str>, to: &[String]) -> Result<MessageView, ChatNetError> {
        let view = {
            let mut chat = self.chat();
            chat.history.add_own(&message, peer, to)?;
            chat.history.view(&message)
        };
        self.chat_changed().await;
        Ok(view)
    }

    /// Starts a group of verified people (we are in it too).
    pub async fn chat_group_create(&self, title: &str, members: &[String]) -> Result<String, ChatNetError> {
        let me = self.my_email().await?;
        for member in members.iter().map(|m| normalize_email(m)).filter(|m| *m != me) {
            self.check_verified(&member)?;
        }
        let group = Group::new(title, members.iter().map(String::as_str).chain([me.as_str()]))?;
        let conversation = ConversationId(crate::rng::bytes_or_zeros());
        let text = format!("{me} started the group with {}", others(&group, &me));
        let recipients = group.members.iter().filter(|m| **m != me).cloned().collect::<Vec<_>>();
        self.post(members_message(conversation, &me, text, group), None, &recipients).await?;
        Ok(conversation.to_string())
    }

    /// Adds and removes members of a group; everyone old and new hears of it.
    pub async fn chat_group_members(
        &self,
        target: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ChatNetError> {
        let me = self.my_email().await?;
        let (conversation, _, group) = self.resolve(target).await?;
        let group = group.ok_or(ChatNetError::NotAGroup)?;
        if !group.has(&me) {
            return Err(ChatNetError::NotAMember);
        }
        let add: Vec<String> = add.iter().map(|m| normalize_email(m)).collect();
        let remove: Vec<String> = remove.iter().map(|m| normalize_email(m)).collect();
        for member in add.iter().filter(|m| !group.has(m)) {
            self.check_verified(member)?;
        }
        let members = group.members.iter().filter(|m| !remove.contains(m)).chain(add.iter());
        let next = Group::new(&group.title, members)?;
        let mut words = Vec::new();
        if !add.is_empty() {
            words.push(format!("added {}", add.join(", ")));
        }
        if !remove.is_empty() {
            words.push(format!("removed {}", remove.join(", ")));
        }
        let text = format!("{me} {}", words.join(" and "));
        let mut recipients: Vec<String> =
            group.members.iter().chain(next.members.iter()).filter(|m| **m != me).cloned().collect();
        recipients.sort();
        recipients.dedup();
        self.post(members_message(conversation, &me, text, next), None, &recipients).await?;
        Ok(())
    }

    /// The owner read a conversation: read receipts go to its authors.
    pub async fn chat_read(&self, target: &str) -> Result<(), ChatNetError> {
        let me = self.my_email().await?;
        let (conversation, _, _) = self.resolve(target).await?;
        let changed = self.chat().history.mark_read(&conversation, &me, now_ms())?;
        if changed {
            self.chat_changed().await;
        }
        Ok(())
    }

    /// A `chat.*` frame from a node.
    pub async fn on_chat_frame(&self, from: NodeId, member: bool, topic: &str, payload: &[u8]) {
        let outcome = match (topic, member) {
            (SYNC_TOPIC, true) => self.on_sync(from, payload).await,
            (MESSAGE_TOPIC, false) => self.on_message(from, payload).await,
            (RECEIPT_TOPIC, false) => self.on_receipt(from, payload).await,
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::info!(node = %from, topic, "refused a chat frame: {e}");
        }
    }

    /// The address a stranger link proved, unless that person is blocked.
    pub(super) fn sender_of(&self, from: &NodeId) -> Option<(String, bool)> {
        let book = self.people.book();
        let (email, person) = book.owner_of(from)?;
        if person.blocked {
            return None;
        }
        let verified = matches!(person.devices.get(from).map(|d| &d.trust), Some(Trust::Verified { .. }));
        Some((email.clone(), verified))
    }

    async fn on_message(&self, from: NodeId, payload: &[u8]) -> Result<(), ChatNetError> {
        let me = self.my_email().await?;
        let message = ChatMessage::decode(payload)?;
        let Some((email, verified)) = self.sender_of(&from) else {
            return Err(ChatNetError::Blocked(from.to_string()));
        };
        let new = {
            let mut chat = self.chat();
            let members = chat.history.conversation(&message.conversation).and_then(|c| c.group).map(|g| g.members);
            check_incoming(&message, &email, &me, members.as_deref())?;
            chat.history.add_incoming(&message, verified, now_ms())?
        };
        if new {
            tracing::info!(from = %email, "chat message received");
        }
        // Either way a delivered receipt is owed; send it now.
        self.chat_changed().await;
        Ok(())
    }

    async fn on_receipt(&self, from: NodeId, payload: &[u8]) -> Result<(), ChatNetError> {
        let me = self.my_email().await?;
        let receipt = Receipt::decode(payload)?;
        let Some((email, _)) = self.sender_of(&from) else {
            return Err(ChatNetError::Blocked(from.to_string()));
        };
        if normalize_email(&receipt.reader) != email {
            return Err(mailmesh_core::chat::ChatError::WrongAuthor { claimed: receipt.reader, proved: email }.into());
        }
        let changed = self.chat().history.on_receipt(&receipt, &me)?;
        if changed {
            self.chat_changed().await;
        }
        Ok(())
    }

    async fn on_sync(&self, from: NodeId, payload: &[u8]) -> Result<(), ChatNetError> {
        let changed = {
            let mut chat = self.chat();
            let ChatState { history, sync, .. } = &mut *chat;
            history.receive_sync(sync.entry(from).or_default(), payload)?
        };
        if changed {
            self.chat_changed().await;
        } else {
            self.replicate_chat(Some(from)).await;
        }
        Ok(())
    }

    /// A member's link came up: start replication afresh with it.
    pub async fn on_member_up_chat(&self, peer: NodeId) {
        self.chat().sync.insert(peer, sync::State::new());
        self.replicate_chat(Some(peer)).await;
    }

    /// Sends each online member (or just `only`) what it lacks.
    async fn replicate_chat(&self, only: Option<NodeId>) {
        let members = match only {
            Some(peer) => vec![peer],
            None => self.mesh.online_members(),
        };
        let frames: Vec<(NodeId, Vec<u8>)> = {
            let mut chat = self.chat();
            let ChatState { history, sync, .. } = &mut *chat;
            members
                .into_iter()
                .filter_map(|m| history.sync_message(sync.entry(m).or_default()).map(|b| (m, b)))
                .collect()
        };
        for (peer, payload) in frames {
            let _ = self.mesh.send_to(&peer, Frame::Data { topic: SYNC_TOPIC.into(), payload }).await;
        }
    }

    /// Other people's nodes linked now, by the address they proved (blocked
    /// people left out): those verified for it, and all of them.
    pub(super) fn linked_people(&self) -> (BTreeMap<String, Vec<NodeId>>, BTreeMap<String, Vec<NodeId>>) {
        let linked = self.mesh.linked_strangers();
        let book = self.people.book();
        let mut trusted: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        let mut any: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for (node, claimed) in linked {
            let Some((email, person)) = book.owner_of(&node) else { continue };
            if person.blocked || *email != normalize_email(&claimed) {
                continue;
            }
            any.entry(email.clone()).or_default().push(node);
            if matches!(person.devices.get(&node).map(|d| &d.trust), Some(Trust::Verified { .. })) {
                trusted.entry(email.clone()).or_default().push(node);
            }
        }
        (trusted, any)
    }

    /// Tries every pending message and owed receipt on the links up now.
    pub async fn deliver_chat(&self) {
        let Ok(me) = self.my_email().await else { return };
        let (pending, owed) = {
            let chat = self.chat();
            (chat.history.pending(), chat.history.owed())
        };
        if pending.is_empty() && owed.is_empty() {
            return;
        }
        let (trusted, any) = self.linked_people();
        let mut sends: Vec<(NodeId, Frame)> = Vec::new();
        for (message, emails) in &pending {
            let payload = message.encode();
            for email in emails {
                for node in trusted.get(email).into_iter().flatten() {
                    sends.push((*node, Frame::Data { topic: MESSAGE_TOPIC.into(), payload: payload.clone() }));
                }
            }
        }
        for (node, frame) in sends {
            let _ = self.mesh.send_to_person(&node, frame).await;
        }
        // Receipts: one per (kind, addressee), to every linked node of theirs.
        let mut batches: BTreeMap<(u8, String), Vec<Owed>> = BTreeMap::new();
        for o in owed {
            batches.entry((o.kind as u8, o.to.clone())).or_default().push(o);
        }
        let mut paid = Vec::new();
        for ((_, to), batch) in batches {
            let Some(nodes) = any.get(&to) else { continue };
            for chunk in batch.chunks(mailmesh_core::chat::MAX_RECEIPT_IDS) {
                let receipt = Receipt {
                    kind: chunk[0].kind,
                    reader: me.clone(),
                    at_ms: chunk.iter().map(|o| o.at_ms).max().unwrap_or(0),
                    messages: chunk.iter().map(|o| o.message).collect(),
                };
                let mut sent = false;
                for node in nodes {
                    let frame = Frame::Data { topic: RECEIPT_TOPIC.into(), payload: receipt.encode() };
                    sent |= self.mesh.send_to_person(node, frame).await.is_ok();
                }
                if sent {
                    paid.extend(chunk.iter().cloned());
                }
            }
        }
        if !paid.is_empty() {
            {
                let mut chat = self.chat();
                for o in &paid {
                    if let Err(e) = chat.history.paid(o) {
                        tracing::warn!("{e}");
                    }
                }
                chat.save();
            }
            self.replicate_chat(None).await;
        }
    }
}

fn others(group: &Group, me: &str) -> String {
    group.members.iter().filter(|m| *m != me).cloned().collect::<Vec<_>>().join(", ")
}

fn members_message(conversation: ConversationId, me: &str, text: String, group: Group) -> ChatMessage {
    ChatMessage {
        id: MessageId(crate::rng::bytes_or_zeros()),
        conversation,
        author: me.to_string(),
        sent_at_ms: now_ms(),
        kind: MessageKind::Members,
        text,
        group: Some(group),
    }
}

/// Delivers pending chat whenever woken (a change, a link up) and every
/// few seconds.
pub async fn deliver_loop(engine: Arc<Engine>) {
    loop {
        tokio::select! {
            _ = engine.chat_wake.notified() => {}
            _ = tokio::time::sleep(RETRY_EVERY) => {}
            _ = engine.shutdown.cancelled() => return,
        }
        engine.deliver_chat().await;
    }
}
