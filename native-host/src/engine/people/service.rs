//! The contact book as a service that owns it: one task holds the book and
//! the answers waiting for a link, takes commands (each with its reply
//! channel) one at a time, writes the book on a blocking thread after every
//! change, and publishes each new book as a snapshot. Readers (chat, calls,
//! direct send, the mesh's trusted set) look at the latest snapshot and
//! never take a lock of this service.
//!
//! ```text
//! PeopleHandle ──Command{…, reply}──▶ service task ── Contacts (core, sans-IO)
//!      ▲                                  │ after a change
//!      └──── book() ◀── watch<Arc<Contacts>> ◀─┤
//!                                         └── people.bin (spawn_blocking)
//! ```
//!
//! Bounds: the command queue holds [`COMMANDS`] (senders wait); answers
//! waiting for a link are kept for at most [`MAX_WAITING_NODES`] nodes,
//! [`MAX_ANSWERS_PER_NODE`] each, the oldest dropped first (anyone can mail
//! the owner challenges; each costs at most one slot).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use mailmesh_core::identity::NodeId;
use mailmesh_core::people::{Answer, Challenge, Contacts, PeopleError, Pins, Seen};
use tokio::sync::{mpsc, oneshot, watch};

/// Commands queued before senders wait.
const COMMANDS: usize = 64;
/// Unlinked nodes we keep answers for.
pub const MAX_WAITING_NODES: usize = 64;
/// Answers kept for one unlinked node.
pub const MAX_ANSWERS_PER_NODE: usize = 4;

/// An edit of the book by the owner (rename, block, remove).
pub type Edit = Box<dyn FnOnce(&mut Contacts) -> Result<(), PeopleError> + Send>;

enum Command {
    Seen {
        email: String,
        key: [u8; 32],
        now_ms: u64,
        reply: oneshot::Sender<Result<Seen, PeopleError>>,
    },
    TakeWaiting {
        node: NodeId,
        reply: oneshot::Sender<Vec<Answer>>,
    },
    Wait {
        answer: Answer,
    },
    Answer {
        from: NodeId,
        me: NodeId,
        answer: Answer,
        now_ms: u64,
        reply: oneshot::Sender<Result<String, PeopleError>>,
    },
    Pins {
        pins: Pins,
        reply: oneshot::Sender<bool>,
    },
    Challenge {
        email: String,
        me: NodeId,
        my_email: String,
        now_ms: u64,
        nonces: Vec<[u8; 32]>,
        reply: oneshot::Sender<Result<Challenge, PeopleError>>,
    },
    Edit {
        edit: Edit,
        reply: oneshot::Sender<Result<(), PeopleError>>,
    },
    /// Answered once every command before it is done (and saved).
    Settled {
        reply: oneshot::Sender<()>,
    },
}

/// The service's state, driven by its task.
struct PeopleService {
    book: Contacts,
    waiting: HashMap<NodeId, VecDeque<Answer>>,
    /// Nodes in the order their first waiting answer came, for eviction.
    waiting_order: VecDeque<NodeId>,
    path: PathBuf,
    published: watch::Sender<Arc<Contacts>>,
}

/// The way to the service; cheap to clone.
#[derive(Clone)]
pub struct PeopleHandle {
    commands: mpsc::Sender<Command>,
    book: watch::Receiver<Arc<Contacts>>,
}

/// Why the service could not answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeopleServiceError {
    #[error(transparent)]
    People(#[from] PeopleError),
    #[error("the contact book service has stopped")]
    Stopped,
}

impl PeopleHandle {
    /// Starts the service on the book saved at `path` (or an empty one: a
    /// damaged file is moved aside, not lost). Runs until every handle is gone.
    pub fn start(path: PathBuf) -> PeopleHandle {
        let book = load(&path);
        let (published, snapshot) = watch::channel(Arc::new(book.clone()));
        let (commands, inbox) = mpsc::channel(COMMANDS);
        let service = PeopleService { book, waiting: HashMap::new(), waiting_order: VecDeque::new(), path, published };
        tokio::spawn(service.run(inbox));
        PeopleHandle { commands, book: snapshot }
    }

    /// The book as of the last change.
    pub fn book(&self) -> Arc<Contacts> {
        self.book.borrow().clone()
    }

    /// Follows the book's changes (the mesh's trusted set is kept from it).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Contacts>> {
        self.book.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, PeopleServiceError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| PeopleServiceError::Stopped)?;
        answer.await.map_err(|_| PeopleServiceError::Stopped)
    }

    /// Another person's node linked up, claiming `email` with `key`.
    pub async fn seen(&self, email: &str, key: [u8; 32], now_ms: u64) -> Result<Seen, PeopleServiceError> {
        Ok(self.ask(|reply| Command::Seen { email: email.into(), key, now_ms, reply }).await??)
    }

    /// The answers that waited for `node`'s link (now up).
    pub async fn take_waiting(&self, node: NodeId) -> Vec<Answer> {
        self.ask(|reply| Command::TakeWaiting { node, reply }).await.unwrap_or_default()
    }

    /// Keeps an answer until its challenger's link is up.
    pub async fn wait_for_link(&self, answer: Answer) {
        let _ = self.commands.send(Command::Wait { answer }).await;
    }

    /// An answer that came over `from`'s link: the address now verified.
    pub async fn answer(
        &self,
        from: NodeId,
        me: NodeId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<String, PeopleServiceError> {
        Ok(self.ask(|reply| Command::Answer { from, me, answer, now_ms, reply }).await??)
    }

    /// Pins from another of the owner's nodes: whether any was new.
    pub async fn adopt_pins(&self, pins: Pins) -> bool {
        self.ask(|reply| Command::Pins { pins, reply }).await.unwrap_or(false)
    }

    /// Starts verifying `email`'s unverified nodes: the challenge to mail.
    pub async fn challenge(
        &self,
        email: &str,
        me: NodeId,
        my_email: &str,
        now_ms: u64,
        nonces: Vec<[u8; 32]>,
    ) -> Result<Challenge, PeopleServiceError> {
        let (email, my_email) = (email.to_string(), my_email.to_string());
        Ok(self.ask(|reply| Command::Challenge { email, me, my_email, now_ms, nonces, reply }).await??)
    }

    /// Returns once every command sent before is carried out and its
    /// change written.
    pub async fn settled(&self) {
        let _ = self.ask(|reply| Command::Settled { reply }).await;
    }

    /// Renames, blocks, unblocks or forgets a contact.
    pub async fn edit(&self, edit: Edit) -> Result<(), PeopleServiceError> {
        Ok(self.ask(|reply| Command::Edit { edit, reply }).await??)
    }
}

fn load(path: &std::path::Path) -> Contacts {
    match std::fs::read(path) {
        Ok(bytes) => Contacts::decode(&bytes).unwrap_or_else(|e| {
            tracing::warn!("the contact book cannot be read ({e}); it was moved aside and starts empty");
            let _ = std::fs::rename(path, path.with_extension("bin.damaged"));
            Contacts::default()
        }),
        Err(_) => Contacts::default(),
    }
}

impl PeopleService {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        while let Some(command) = inbox.recv().await {
            let changed = self.handle(command);
            if changed {
                self.save().await;
            }
        }
    }

    /// Carries out one command; whether the book changed.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Seen { email, key, now_ms, reply } => {
                let seen = self.book.seen(&email, key, now_ms);
                let changed = matches!(&seen, Ok(seen) if *seen != Seen::Known);
                self.reply(reply, seen, changed)
            }
            Command::TakeWaiting { node, reply } => {
                self.waiting_order.retain(|n| *n != node);
                let _ = reply.send(self.waiting.remove(&node).map(Vec::from).unwrap_or_default());
                false
            }
            Command::Wait { answer } => {
                self.keep_waiting(answer);
                false
            }
            Command::Answer { from, me, answer, now_ms, reply } => {
                let verified = self.book.handle_answer(from, me, &answer, now_ms);
                let changed = verified.is_ok();
                self.reply(reply, verified, changed)
            }
            Command::Pins { pins, reply } => {
                let changed = pins.0.iter().fold(false, |changed, pin| self.book.adopt_pin(pin) | changed);
                self.reply(reply, changed, changed)
            }
            Command::Challenge { email, me, my_email, now_ms, nonces, reply } => {
                let mut nonces = nonces.into_iter();
                // Nodes past the nonces given get none and are not asked.
                let challenge = self.book.challenge(&email, me, &my_email, now_ms, || nonces.next().unwrap_or([0; 32]));
                let changed = challenge.is_ok();
                self.reply(reply, challenge, changed)
            }
            Command::Edit { edit, reply } => {
                let edited = edit(&mut self.book);
                let changed = edited.is_ok();
                self.reply(reply, edited, changed)
            }
            Command::Settled { reply } => {
                let _ = reply.send(());
                false
            }
        }
    }

    /// Publishes the book if it `changed`, then answers: whoever hears
    /// back finds the change in every snapshot from then on.
    fn reply<T>(&mut self, reply: oneshot::Sender<T>, value: T, changed: bool) -> bool {
        if changed {
            self.published.send_replace(Arc::new(self.book.clone()));
        }
        let _ = reply.send(value);
        changed
    }

    fn keep_waiting(&mut self, answer: Answer) {
        let node = answer.challenger;
        if !self.waiting.contains_key(&node) {
            if self.waiting_order.len() >= MAX_WAITING_NODES {
                if let Some(oldest) = self.waiting_order.pop_front() {
                    self.waiting.remove(&oldest);
                }
            }
            self.waiting_order.push_back(node);
        }
        let answers = self.waiting.entry(node).or_default();
        if answers.len() >= MAX_ANSWERS_PER_NODE {
            answers.pop_front();
        }
        answers.push_back(answer);
    }

    /// Writes the published book, off the async workers.
    async fn save(&mut self) {
        let book = self.published.borrow().clone();
        let path = self.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::home::write_private(&path, &book.encode(), 0o600)).await;
        if let Ok(Err(e)) = written {
            tracing::warn!("cannot save the contact book: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use mailmesh_core::identity::NodeSecrets;

    use super::*;

    fn node(seed: u8) -> NodeSecrets {
        NodeSecrets::from_seeds([seed; 32], [seed.wrapping_add(100); 32])
    }

    #[tokio::test]
    async fn a_person_is_verified_by_their_nodes_answer_and_the_book_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.bin");
        let (me, bob) = (node(1), node(2));
        let people = PeopleHandle::start(path.clone());

        // Bob's node links up: seen, unverified.
        assert_eq!(people.seen("Bob@Example.org", bob.public().ed25519, 10).await, Ok(Seen::New));
        // A challenge goes by mail; Bob's node reads it in Bob's mailbox and answers.
        let challenge =
            people.challenge("bob@example.org", me.node_id(), "me@example.org", 20, vec![[7; 32]]).await.unwrap();
        let delivered = Challenge::decode(&challenge.encode()).unwrap();
        let answer = delivered.answer(&bob, "bob@example.org").expect("names Bob's node");
        // A forged answer over someone else's link changes nothing.
        let stranger = node(3).node_id();
        assert!(people.answer(stranger, me.node_id(), answer.clone(), 30).await.is_err());
        assert_eq!(people.answer(bob.node_id(), me.node_id(), answer, 30).await, Ok("bob@example.org".into()));

        let verified = |book: &Contacts| book.person("bob@example.org").is_some_and(|p| p.is_verified());
        assert!(verified(&people.book()), "the snapshot shows it at once");
        people.settled().await;
        assert!(verified(&load(&path)), "written, so kept across a restart");
    }

    #[tokio::test]
    async fn answers_waiting_for_links_stay_bounded_whatever_the_mail_brings() {
        let dir = tempfile::tempdir().unwrap();
        let people = PeopleHandle::start(dir.path().join("people.bin"));
        let me = node(1);
        // A flood of challenges from made-up nodes, none of them linked.
        for i in 0..1000u32 {
            let challenger = NodeId::from_bytes([
                (i % 250) as u8,
                (i / 250) as u8,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
            ]);
            people.wait_for_link(Answer::sign(&me, [i as u8; 32], challenger, "me@example.org")).await;
        }
        let mut kept = 0;
        for i in 0..1000u32 {
            let challenger = NodeId::from_bytes([
                (i % 250) as u8,
                (i / 250) as u8,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
            ]);
            kept += people.take_waiting(challenger).await.len();
        }
        assert_eq!(kept, MAX_WAITING_NODES, "one answer each for the newest nodes, nothing more");

        // One node's many answers keep only the newest few.
        let one = node(5).node_id();
        for i in 0..10u8 {
            people.wait_for_link(Answer::sign(&me, [i; 32], one, "me@example.org")).await;
        }
        let nonces: Vec<u8> = people.take_waiting(one).await.iter().map(|a| a.nonce[0]).collect();
        assert_eq!(nonces, vec![6, 7, 8, 9]);
    }
}
