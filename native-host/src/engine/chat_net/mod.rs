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
//!
//! [`ChatNet`] is a service: it owns the history and the sync states (one
//! lock, held for in-memory work only: the history's writer task does the
//! disk), reads the owner's address from the [`StandingWatch`] and the
//! contact book from the [`PeopleHandle`]'s snapshots, reaches nodes
//! through [`Links`], and announces [`Event::ChatChanged`]. Its unit tests
//! (`chat_net/tests.rs`) run two people's nodes over an in-memory mesh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use automerge::sync;
use mailmesh_core::chat::{
    check_incoming, direct_conversation, ChatMessage, ConversationId, Group, Known, MessageId, MessageKind, Receipt,
    ReceiptKind,
};
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::people::normalize_email;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use self::requests::{Request, Requests};
use super::people::trust::{self, TrustError};
use super::people::PeopleHandle;
use super::standing::StandingWatch;
use crate::api::{ConversationDetail, ConversationView, Event, MessageView};
use crate::chat::{History, HistoryError, HistoryWriter, Owed};
use crate::clock::now_ms;
use crate::mesh::links::Links;

pub mod requests;
#[cfg(test)]
mod tests;

const MESSAGE_TOPIC: &str = "chat.msg";
const RECEIPT_TOPIC: &str = "chat.receipt";
const SYNC_TOPIC: &str = "chat.sync";
pub const HISTORY_FILE: &str = "chat.bin";
/// Messages `chat_show` gives when not told how many: the newest.
pub const PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;
/// How often pending messages and receipts are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How far ahead of this machine's clock a message may be dated: clocks
/// drift, but a message from the far future would stay last forever.
/// Such a message is refused, not re-dated: each of the owner's nodes would
/// re-date it differently and store it twice.
const MAX_AHEAD_MS: u64 = 10 * 60 * 1000;

/// The history, one sync state per member, and the message requests.
struct ChatState {
    history: History,
    sync: HashMap<NodeId, sync::State>,
    writer: HistoryWriter,
    requests: Requests,
    /// When each pending message last went to each node: it goes again
    /// only [`RETRY_EVERY`] later, or when that node links up again, not
    /// at every wake (every message, receipt and link wakes delivery, and
    /// resending all that is unreceipted each time multiplied the traffic
    /// of a conversation and queued new messages behind old ones). Only
    /// pending messages are kept, so it is bounded by them.
    sent: HashMap<(MessageId, NodeId), tokio::time::Instant>,
}

impl ChatState {
    /// Queues the changes for the disk (written by the writer's task).
    fn save(&mut self) {
        self.writer.save(&mut self.history);
    }
}

/// What a user did wrong or what stands in the way, in words.
#[derive(Debug, thiserror::Error)]
pub enum ChatNetError {
    #[error(transparent)]
    Random(#[from] crate::rng::NoRandomness),
    #[error("no mail account is set up, so this node has no address to chat from")]
    NoAccount,
    #[error("{0} is not a conversation here, nor an address")]
    UnknownConversation(String),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("that is a direct conversation; start a group to chat with more people")]
    NotAGroup,
    #[error("you are no longer a member of this group")]
    NotAMember,
    #[error(transparent)]
    Chat(#[from] mailmesh_core::chat::ChatError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{0} is not verified yet: verify them (People) before answering")]
    Unverified(String),
    #[error("the message is dated more than ten minutes ahead of this computer's clock")]
    FromTheFuture,
}

pub struct ChatNet {
    state: Mutex<ChatState>,
    links: Arc<dyn Links>,
    people: PeopleHandle,
    standing: StandingWatch,
    events: broadcast::Sender<Event>,
    /// Wakes the delivery loop.
    wake: Notify,
}

impl ChatNet {
    pub fn new(
        history: History,
        links: Arc<dyn Links>,
        people: PeopleHandle,
        standing: StandingWatch,
        events: broadcast::Sender<Event>,
    ) -> Arc<ChatNet> {
        let writer = HistoryWriter::start(history.path().to_path_buf());
        Arc::new(ChatNet {
            state: Mutex::new(ChatState {
                history,
                sync: HashMap::new(),
                writer,
                requests: Requests::default(),
                sent: HashMap::new(),
            }),
            links,
            people,
            standing,
            events,
            wake: Notify::new(),
        })
    }

    fn chat(&self) -> MutexGuard<'_, ChatState> {
        crate::sync::lock(&self.state)
    }

    fn me(&self) -> Result<String, ChatNetError> {
        self.standing.borrow().address.clone().ok_or(ChatNetError::NoAccount)
    }

    /// Something to deliver may have become deliverable (a link, a pin).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A person's node linked up: what is pending for it goes now.
    pub fn node_up(&self, node: NodeId) {
        self.chat().sent.retain(|(_, to), _| *to != node);
        self.wake();
    }

    /// Saves the history after a change, tells clients, and hands the
    /// change to the owner's other nodes.
    async fn changed(&self) {
        self.chat().save();
        let _ = self.events.send(Event::ChatChanged);
        self.replicate(None).await;
        self.wake();
    }

    /// The history's heads: unchanged heads mean nothing was written.
    #[cfg(test)]
    pub fn heads(&self) -> Vec<automerge::ChangeHash> {
        self.chat().history.heads()
    }

    /// The conversations, then a row per address with message requests.
    pub fn list(&self) -> Result<Vec<ConversationView>, ChatNetError> {
        let me = self.me()?;
        let chat = self.chat();
        let mut list = chat.history.summaries(&me);
        for email in chat.requests.senders() {
            let last = chat.requests.from(&email).last().map(|r| &r.message);
            list.push(ConversationView {
                id: format!("{}{email}", requests::ID_PREFIX),
                kind: "request".into(),
                title: format!("{email} (unverified)"),
                members: vec![email.clone()],
                unread: 0,
                last_at: last.map_or(0, |m| m.sent_at_ms),
                last_text: last.map(|m| m.text.clone()).unwrap_or_default(),
            });
        }
        Ok(list)
    }

    pub fn unread(&self) -> u32 {
        match self.me() {
            Ok(me) => self.chat().history.unread_total(&me),
            Err(_) => 0,
        }
    }

    /// A conversation named by its id or, for a direct one, by the other
    /// address (started if new).
    fn resolve(&self, target: &str) -> Result<(ConversationId, Option<String>, Option<Group>), ChatNetError> {
        let me = self.me()?;
        if let Some(email) = target.strip_prefix(requests::ID_PREFIX) {
            return Err(ChatNetError::Unverified(email.into()));
        }
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

    pub fn show(&self, target: &str) -> Result<ConversationDetail, ChatNetError> {
        self.show_page(target, None)
    }

    /// A conversation's newest `limit` messages ([`PAGE`] if `None`): what
    /// a page re-reads at every new message, so its cost is the page's, not
    /// the conversation's.
    pub fn show_page(&self, target: &str, limit: Option<u32>) -> Result<ConversationDetail, ChatNetError> {
        let limit = limit.map_or(PAGE, |l| (l as usize).clamp(1, MAX_PAGE));
        let me = self.me()?;
        if target.starts_with(requests::ID_PREFIX) {
            return self.show_request(target);
        }
        let (id, _, _) = self.resolve(target)?;
        let chat = self.chat();
        let summary = chat
            .history
            .summaries(&me)
            .into_iter()
            .find(|c| c.id == id.to_string())
            .ok_or_else(|| ChatNetError::UnknownConversation(target.into()))?;
        let (page, earlier) = chat.history.newest_messages(&id, limit);
        let messages = page.iter().map(|m| chat.history.view(m)).collect();
        Ok(ConversationDetail { summary, messages, earlier: earlier as u32 })
    }

    /// A request row and its messages, none verified.
    fn show_request(&self, target: &str) -> Result<ConversationDetail, ChatNetError> {
        let summary = self
            .list()?
            .into_iter()
            .find(|c| c.id == target)
            .ok_or_else(|| ChatNetError::UnknownConversation(target.into()))?;
        let chat = self.chat();
        let messages = chat
            .requests
            .from(&summary.members[0])
            .map(|r| MessageView { verified: false, pending: Vec::new(), ..chat.history.view(&r.message) })
            .collect();
        Ok(ConversationDetail { summary, messages, earlier: 0 })
    }

    fn check_verified(&self, email: &str) -> Result<(), TrustError> {
        trust::check_verified(&self.people.book(), email)
    }

    /// Writes `text` into a conversation (or to an address).
    pub async fn send(&self, target: &str, text: &str) -> Result<MessageView, ChatNetError> {
        let me = self.me()?;
        let (conversation, peer, group) = self.resolve(target)?;
        let recipients = match (&group, &peer) {
            (Some(g), _) if !g.has(&me) => return Err(ChatNetError::NotAMember),
            (Some(g), _) => g.members.iter().filter(|m| **m != me).cloned().collect(),
            (None, Some(peer)) => {
                self.check_verified(peer)?;
                vec![peer.clone()]
            }
            (None, None) => return Err(ChatNetError::UnknownConversation(target.into())),
        };
        let message = ChatMessage::text(MessageId(crate::rng::bytes()?), conversation, &me, now_ms(), text, group)?;
        self.post(message, peer.as_deref(), &recipients).await
    }

    async fn post(&self, message: ChatMessage, peer: Option<&str>, to: &[String]) -> Result<MessageView, ChatNetError> {
        let view = {
            let mut chat = self.chat();
            chat.history.add_own(&message, peer, to)?;
            chat.history.view(&message)
        };
        self.changed().await;
        Ok(view)
    }

    /// Starts a group of verified people (we are in it too).
    pub async fn group_create(&self, title: &str, members: &[String]) -> Result<String, ChatNetError> {
        let me = self.me()?;
        for member in members.iter().map(|m| normalize_email(m)).filter(|m| *m != me) {
            self.check_verified(&member)?;
        }
        let group = Group::new(title, members.iter().map(String::as_str).chain([me.as_str()]))?;
        let conversation = ConversationId(crate::rng::bytes()?);
        let text = format!("{me} started the group with {}", others(&group, &me));
        let recipients = group.members.iter().filter(|m| **m != me).cloned().collect::<Vec<_>>();
        self.post(members_message(conversation, &me, text, group)?, None, &recipients).await?;
        Ok(conversation.to_string())
    }

    /// Adds and removes members of a group; everyone old and new hears of it.
    pub async fn group_members(&self, target: &str, add: &[String], remove: &[String]) -> Result<(), ChatNetError> {
        let me = self.me()?;
        let (conversation, _, group) = self.resolve(target)?;
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
        self.post(members_message(conversation, &me, text, next)?, None, &recipients).await?;
        Ok(())
    }

    /// The owner read a conversation: read receipts go to its authors.
    pub async fn read(&self, target: &str) -> Result<(), ChatNetError> {
        let me = self.me()?;
        let (conversation, _, _) = self.resolve(target)?;
        let changed = self.chat().history.mark_read(&conversation, &me, now_ms())?;
        if changed {
            self.changed().await;
        }
        Ok(())
    }

    /// A `chat.*` frame from a node: syncs only from members, messages and
    /// receipts only from other people.
    pub async fn on_frame(&self, from: NodeId, member: bool, topic: &str, payload: &[u8]) {
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

    fn sender_of(&self, from: &NodeId) -> Result<(String, bool), ChatNetError> {
        trust::sender_of(&self.people.book(), from).ok_or_else(|| TrustError::Blocked(from.to_string()).into())
    }

    async fn on_message(&self, from: NodeId, payload: &[u8]) -> Result<(), ChatNetError> {
        let me = self.me()?;
        let message = ChatMessage::decode(payload)?;
        if message.sent_at_ms > now_ms().saturating_add(MAX_AHEAD_MS) {
            return Err(ChatNetError::FromTheFuture);
        }
        let (email, verified) = self.sender_of(&from)?;
        if !verified {
            let new = {
                let mut chat = self.chat();
                check(&chat.history, &message, &email, &me)?;
                chat.requests.add(Request { from, email, message })
            };
            if new {
                let _ = self.events.send(Event::ChatChanged);
            }
            return Ok(());
        }
        let again = self.chat().history.message(&message.id).is_some();
        if again {
            // Our receipt did not reach its author: say it again, and
            // write nothing.
            let receipt =
                Receipt { kind: ReceiptKind::Delivered, reader: me, at_ms: now_ms(), messages: vec![message.id] };
            let frame = Frame::Data { topic: RECEIPT_TOPIC.into(), payload: receipt.encode() };
            let _ = self.links.send_to_person(&from, frame).await;
            return Ok(());
        }
        self.take_in(&message, &email, &me)?;
        tracing::info!(from = %email, "chat message received");
        // A delivered receipt is owed; send it now.
        self.changed().await;
        Ok(())
    }

    /// Checks a verified sender's message and adds it to the history.
    fn take_in(&self, message: &ChatMessage, email: &str, me: &str) -> Result<bool, ChatNetError> {
        let mut chat = self.chat();
        check(&chat.history, message, email, me)?;
        Ok(chat.history.add_incoming(message, true, now_ms())?)
    }

    /// Requests whose node the owner has verified since join the history;
    /// those of people now blocked are dropped.
    async fn adopt_requests(&self) {
        let Ok(me) = self.me() else { return };
        let book = self.people.book();
        let done = self.chat().requests.take(|r| match trust::sender_of(&book, &r.from) {
            Some((email, verified)) => verified && email == r.email,
            None => true,
        });
        let mut adopted = 0;
        for request in done {
            if matches!(trust::sender_of(&book, &request.from), Some((_, true))) {
                match self.take_in(&request.message, &request.email, &me) {
                    Ok(_) => adopted += 1,
                    Err(e) => tracing::info!("a message request no longer fits: {e}"),
                }
            }
        }
        if adopted > 0 {
            self.changed().await;
        }
    }

    async fn on_receipt(&self, from: NodeId, payload: &[u8]) -> Result<(), ChatNetError> {
        let me = self.me()?;
        let receipt = Receipt::decode(payload)?;
        let (email, verified) = self.sender_of(&from)?;
        if normalize_email(&receipt.reader) != email {
            return Err(mailmesh_core::chat::ChatError::WrongAuthor { claimed: receipt.reader, proved: email }.into());
        }
        // Any node can claim an address on its link: only one verified for
        // it may say that person has (or read) a message.
        if !verified {
            return Err(TrustError::NotVerified(email).into());
        }
        let changed = self.chat().history.on_receipt(&receipt, &me)?;
        if changed {
            self.changed().await;
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
            self.changed().await;
        } else {
            self.replicate(Some(from)).await;
        }
        Ok(())
    }

    /// A member's link came up: start replication afresh with it.
    pub async fn on_member_up(&self, peer: NodeId) {
        self.chat().sync.insert(peer, sync::State::new());
        self.replicate(Some(peer)).await;
    }

    /// Sends each online member (or just `only`) what it lacks.
    async fn replicate(&self, only: Option<NodeId>) {
        let members = match only {
            Some(peer) => vec![peer],
            None => self.links.online_members(),
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
            let _ = self.links.send_to(&peer, Frame::Data { topic: SYNC_TOPIC.into(), payload }).await;
        }
    }

    /// Tries every pending message and owed receipt on the links up now.
    pub async fn deliver(&self) {
        self.adopt_requests().await;
        let Ok(me) = self.me() else { return };
        let (pending, owed) = {
            let mut chat = self.chat();
            let pending = chat.history.pending();
            let ids: HashSet<MessageId> = pending.iter().map(|(m, _)| m.id).collect();
            chat.sent.retain(|(id, _), _| ids.contains(id));
            (pending, chat.history.owed())
        };
        if pending.is_empty() && owed.is_empty() {
            return;
        }
        let (trusted, any) = trust::linked_people(&self.people.book(), self.links.linked_strangers());
        let now = tokio::time::Instant::now();
        let mut sends: Vec<(MessageId, NodeId, Frame)> = Vec::new();
        {
            let chat = self.chat();
            let due = |id: MessageId, node: NodeId| {
                chat.sent.get(&(id, node)).is_none_or(|at| now.duration_since(*at) >= RETRY_EVERY)
            };
            for (message, emails) in &pending {
                let payload = message.encode();
                for email in emails {
                    for node in trusted.get(email).into_iter().flatten().filter(|n| due(message.id, **n)) {
                        sends.push((
                            message.id,
                            *node,
                            Frame::Data { topic: MESSAGE_TOPIC.into(), payload: payload.clone() },
                        ));
                    }
                }
            }
        }
        for (id, node, frame) in sends {
            if self.links.send_to_person(&node, frame).await.is_ok() {
                self.chat().sent.insert((id, node), now);
            }
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
                    sent |= self.links.send_to_person(node, frame).await.is_ok();
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
            self.replicate(None).await;
        }
    }

    /// Delivers pending chat whenever woken (a change, a link up) and every
    /// few seconds, until `stop`.
    pub async fn deliver_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RETRY_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            self.deliver().await;
        }
    }
}

/// [`check_incoming`] against what the history knows of the conversation.
fn check(history: &History, message: &ChatMessage, email: &str, me: &str) -> Result<(), ChatNetError> {
    let conversation = history.conversation(&message.conversation);
    let members = conversation.as_ref().and_then(|c| c.group.as_ref()).map(|g| g.members.as_slice());
    let known = match (&conversation, members) {
        (None, _) => Known::New,
        (Some(_), Some(members)) => Known::Group(members),
        (Some(_), None) => Known::Direct,
    };
    Ok(check_incoming(message, email, me, known)?)
}

fn others(group: &Group, me: &str) -> String {
    group.members.iter().filter(|m| *m != me).cloned().collect::<Vec<_>>().join(", ")
}

fn members_message(
    conversation: ConversationId,
    me: &str,
    text: String,
    group: Group,
) -> Result<ChatMessage, crate::rng::NoRandomness> {
    Ok(ChatMessage {
        id: MessageId(crate::rng::bytes()?),
        conversation,
        author: me.to_string(),
        sent_at_ms: now_ms(),
        kind: MessageKind::Members,
        text,
        group: Some(group),
    })
}
