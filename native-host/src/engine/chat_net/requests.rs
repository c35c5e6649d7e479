//! Message requests: what nodes nobody verified sent, kept apart from the
//! history.
//!
//! Anyone on the LAN can make a node that claims any address and send chat
//! messages. Those are never written to the history (nor fsynced, nor
//! replicated to the owner's other nodes, nor counted as unread): they wait
//! here, in memory, at most [`MAX_PER_SENDER`] per address and
//! [`MAX_REQUESTS`] in all, the oldest dropped first. When the owner
//! verifies the sender's node, its waiting messages join the history.

use std::collections::VecDeque;

use mailmesh_core::chat::ChatMessage;
use mailmesh_core::identity::NodeId;

/// Messages kept from one address.
pub const MAX_PER_SENDER: usize = 8;
/// Messages kept in all.
pub const MAX_REQUESTS: usize = 64;
/// How a request row's conversation id starts (never a history id: those
/// are hex).
pub const ID_PREFIX: &str = "request:";

pub struct Request {
    pub from: NodeId,
    /// The address the node claims (checked against its link's claim).
    pub email: String,
    pub message: ChatMessage,
}

#[derive(Default)]
pub struct Requests(VecDeque<Request>);

impl Requests {
    /// Keeps a request; false if it was here already.
    pub fn add(&mut self, request: Request) -> bool {
        if self.0.iter().any(|r| r.message.id == request.message.id) {
            return false;
        }
        let from_sender = self.0.iter().filter(|r| r.email == request.email).count();
        if from_sender >= MAX_PER_SENDER {
            if let Some(oldest) = self.0.iter().position(|r| r.email == request.email) {
                self.0.remove(oldest);
            }
        } else if self.0.len() >= MAX_REQUESTS {
            self.0.pop_front();
        }
        self.0.push_back(request);
        true
    }

    /// The addresses waiting, in order of their first request.
    pub fn senders(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.0 {
            if !out.contains(&r.email) {
                out.push(r.email.clone());
            }
        }
        out
    }

    pub fn from<'a>(&'a self, email: &'a str) -> impl Iterator<Item = &'a Request> {
        self.0.iter().filter(move |r| r.email == email)
    }

    /// Takes out the requests `done` says no longer wait (their node was
    /// verified, or the sender blocked or removed).
    pub fn take(&mut self, mut done: impl FnMut(&Request) -> bool) -> Vec<Request> {
        let (taken, kept): (Vec<Request>, Vec<Request>) =
            std::mem::take(&mut self.0).into_iter().partition(|r| done(r));
        self.0 = kept.into();
        taken
    }
}
