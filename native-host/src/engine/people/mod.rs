//! Other people on the LAN (issue 7): the contact book, verification by
//! email challenge, and the `people_*` requests.
//!
//! ```text
//! stranger link up ─▶ Contacts::seen (shown unverified, or a warning)
//! people_verify ─▶ Contacts::challenge ─▶ mailmesh mail "challenge" to them
//! their engine reads it in their mailbox ─▶ Challenge::answer ─▶
//!   `people.answer` over the link (kept until the link is up)
//! our engine ─▶ Contacts::handle_answer ─▶ verified and pinned
//! ```
//!
//! The book is owned by its service ([`service::PeopleHandle`]): one task
//! that writes `people.bin` (0600) after every change and publishes each
//! new book as a snapshot, which the rest of the engine reads without locks.
//! This file is the engine's side: link events, mail and requests in,
//! frames, mails and events out.

mod service;
pub mod trust;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::peer::handshake::PeerIdentity;
use mailmesh_core::people::{
    normalize_email, Answer, Challenge, Contacts, PeopleError, Person, Pins, Seen, Trust, MAX_NODES_PER_CHALLENGE,
};

pub use self::service::PeopleHandle;
use self::trust::{ByAddress, TrustError};
use super::Engine;
use crate::api::{DeviceView, PersonView};
use crate::clock::now_ms;
use crate::mailbox::{self, Kind};

const ANSWER_TOPIC: &str = "people.answer";
/// Verified nodes, handed between the owner's own nodes (member links only).
const PINS_TOPIC: &str = "people.pins";
pub const BOOK_FILE: &str = "people.bin";

/// The nodes verified for some address, of people not blocked.
pub fn trusted_nodes(book: &Contacts) -> std::collections::HashSet<NodeId> {
    book.people()
        .filter(|(_, p)| !p.blocked)
        .flat_map(|(_, p)| {
            p.devices.iter().filter(|(_, d)| matches!(d.trust, Trust::Verified { .. })).map(|(id, _)| *id)
        })
        .collect()
}

/// Keeps the mesh's set of trusted people's nodes (who get data channels
/// and signaling) in step with the book, until the service stops.
pub async fn keep_trusted(engine: std::sync::Arc<Engine>) {
    let mut book = engine.people.subscribe();
    loop {
        let trusted = trusted_nodes(&book.borrow_and_update());
        engine.mesh.set_trusted_people(trusted);
        if book.changed().await.is_err() {
            return;
        }
    }
}

impl Engine {
    /// The owner's address, normalized, once an account is saved.
    pub fn my_email(&self) -> Option<String> {
        self.standing.borrow().address.clone()
    }

    pub fn check_verified(&self, email: &str) -> Result<(), TrustError> {
        trust::check_verified(&self.people.book(), email)
    }

    pub fn sender_of(&self, from: &NodeId) -> Option<(String, bool)> {
        trust::sender_of(&self.people.book(), from)
    }

    /// People's nodes linked now: verified ones and all, by address.
    pub fn linked_people(&self) -> (ByAddress, ByAddress) {
        trust::linked_people(&self.people.book(), self.mesh.linked_strangers())
    }

    /// Another person's node linked up: note it, and hand it any answer
    /// that waited for this link.
    pub async fn on_stranger_up(&self, peer: PeerIdentity) {
        let own = self.my_email();
        if own.as_deref() != Some(normalize_email(&peer.email).as_str()) && !peer.email.trim().is_empty() {
            match self.people.seen(&peer.email, peer.ed25519, now_ms()).await {
                Ok(Seen::NewDeviceOfVerified) => {
                    tracing::warn!(email = %peer.email, node = %peer.node_id, "a new, unverified node claims a verified address")
                }
                Ok(_) => {}
                Err(e) => tracing::info!(node = %peer.node_id, "ignoring a node's address: {e}"),
            }
        }
        for answer in self.people.take_waiting(peer.node_id).await {
            self.send_answer(answer).await;
        }
        // Chat waiting for this person goes now.
        self.chat.node_up(peer.node_id);
        let _ = self.events.send(crate::api::Event::PeersChanged);
    }

    async fn send_answer(&self, answer: Answer) {
        let to = answer.challenger;
        let frame = Frame::Data { topic: ANSWER_TOPIC.into(), payload: answer.encode() };
        if self.mesh.send_to_linked(&to, frame).await.is_err() {
            // Not linked now: sent when that node's link comes up.
            self.people.wait_for_link(answer).await;
        }
    }

    /// A challenge mail in our owner's mailbox: answer it if it names us.
    pub async fn on_challenge_mail(&self, payload: &[u8]) -> Result<(), String> {
        let challenge = Challenge::decode(payload).map_err(|e| e.to_string())?;
        let email = self.node.account().await.map(|(a, _)| a.email).ok_or("no account")?;
        let answer = challenge.answer(&self.secrets, &email).ok_or("the challenge does not name this node")?;
        tracing::info!(from = %challenge.from_email, "answering a verification challenge");
        self.send_answer(answer).await;
        Ok(())
    }

    /// A `people.*` message from a node's link.
    pub async fn on_people_message(&self, from: NodeId, topic: &str, payload: &[u8]) {
        match topic {
            ANSWER_TOPIC => self.on_answer(from, payload).await,
            // Only one of the owner's own nodes may vouch for someone.
            PINS_TOPIC if self.mesh.online_members().contains(&from) => self.on_pins(from, payload).await,
            _ => {}
        }
    }

    async fn on_answer(&self, from: NodeId, payload: &[u8]) {
        let outcome = match Answer::decode(payload) {
            Ok(answer) => self.people.answer(from, self.secrets.node_id(), answer, now_ms()).await,
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(email) => {
                tracing::info!(%email, node = %from, "verified");
                let _ = self.events.send(crate::api::Event::PeersChanged);
                self.share_pins(None).await;
            }
            Err(e) => tracing::info!(node = %from, "refused an answer: {e}"),
        }
    }

    async fn on_pins(&self, from: NodeId, payload: &[u8]) {
        let pins = match Pins::decode(payload) {
            Ok(pins) => pins,
            Err(e) => return tracing::info!(node = %from, "refused pins: {e}"),
        };
        if self.people.adopt_pins(pins).await {
            tracing::info!(node = %from, "took verified people from another of our devices");
            let _ = self.events.send(crate::api::Event::PeersChanged);
            self.chat.wake();
        }
    }

    /// Hands the people we verified to our other nodes (or one of them), so
    /// that a person verified on one device is verified on all.
    pub async fn share_pins(&self, to: Option<NodeId>) {
        let pins = self.people.book().verified_pins();
        if pins.0.is_empty() {
            return;
        }
        let payload = pins.encode();
        let members = to.map_or_else(|| self.mesh.online_members(), |m| vec![m]);
        for member in members {
            let frame = Frame::Data { topic: PINS_TOPIC.into(), payload: payload.clone() };
            let _ = self.mesh.send_to(&member, frame).await;
        }
    }

    /// Mails `email` a challenge for each of their unverified nodes.
    pub async fn verify_person(&self, email: &str) -> Result<PersonView, String> {
        let (account, password) = self.node.login().await.ok_or("no mail account is set up")?;
        let nonces = (0..MAX_NODES_PER_CHALLENGE).map(|_| crate::rng::bytes::<32>()).collect::<Result<_, _>>()?;
        let challenge: Challenge = self
            .people
            .challenge(email, self.secrets.node_id(), &account.email, now_ms(), nonces)
            .await
            .map_err(|e| e.to_string())?;
        let to = challenge.to_email.parse().map_err(|_| format!("{email:?} is not an email address"))?;
        let text = format!(
            "{} asks to verify that the mailmesh devices on their network that say they are yours really are.\n\
             Your mailmesh devices answer this by themselves; you can ignore this mail.\n",
            account.email
        );
        let message =
            mailbox::build_to(&account, to, Kind::Challenge, "mailmesh: verification", text, challenge.encode())
                .map_err(|e| e.to_string())?;
        crate::mail::smtp::send(&account, &password, message).await.map_err(|e| e.to_string())?;
        self.person_view(email).ok_or_else(|| format!("{email} is not a contact"))
    }

    /// Rename, block, unblock or forget a contact.
    pub async fn edit_people(
        &self,
        edit: impl FnOnce(&mut Contacts) -> Result<(), PeopleError> + Send + 'static,
    ) -> Result<(), String> {
        self.people.edit(Box::new(edit)).await.map_err(|e| e.to_string())
    }

    pub fn people_list(&self) -> Vec<PersonView> {
        let book = self.people.book();
        book.people().map(|(email, person)| self.view(email, person)).collect()
    }

    fn person_view(&self, email: &str) -> Option<PersonView> {
        let book = self.people.book();
        let person = book.person(email)?;
        Some(self.view(&normalize_email(email), person))
    }

    fn view(&self, email: &str, person: &Person) -> PersonView {
        let devices: Vec<DeviceView> = person
            .devices
            .iter()
            .map(|(node, device)| DeviceView {
                node_id: node.to_string(),
                fingerprint: node.fingerprint(),
                trust: match device.trust {
                    Trust::Unverified => "unverified",
                    Trust::Pending { .. } => "pending",
                    Trust::Verified { .. } => "verified",
                }
                .into(),
                online: self.mesh.last_seen(node).is_some_and(|t| now_ms().saturating_sub(t) < 10_000),
            })
            .collect();
        let state = if person.has_unverified_newcomer() {
            "warning"
        } else if person.is_verified() {
            "verified"
        } else if devices.iter().any(|d| d.trust == "pending") {
            "pending"
        } else {
            "unverified"
        };
        PersonView {
            email: email.to_string(),
            name: person.name.clone(),
            blocked: person.blocked,
            state: state.into(),
            devices,
        }
    }
}
