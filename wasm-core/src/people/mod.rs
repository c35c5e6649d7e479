//! Other people: is the node on the LAN that claims `bob@x` really run by
//! whoever reads bob@x's mailbox? Verification by email challenge, and the
//! contact book that pins what was verified.
//!
//! ```text
//! Alice's node A ── Challenge (A, and for each of Bob's nodes seen: its id
//!                   and a fresh nonce) ──▶ mail to bob@x
//! Bob's node B   reads its own mailbox, finds the nonce for its own id
//! B ── Answer (nonce, A, B, bob@x; signed with B's node key) ──▶ A, over
//!      the LAN link whose handshake proved B's key
//! A              the nonce is one A sent for B and is fresh, the address is
//!                the one challenged, the signature is B's → B is verified
//!                and pinned (trust on first verification)
//! ```
//!
//! Only someone who reads bob@x's mail learns the nonce, so a node that
//! merely claims the address never answers. The challenge mail is untrusted
//! like all mail: answering it only proves, to the node that asked, what
//! the answering node already claims. A node that appears later for an
//! address with verified nodes is shown with a warning until it too is
//! verified. All randomness and time are inputs; nothing here does IO.
//!
//! Every message is `magic | version u8 | fields`, little endian.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::identity::{NodeId, NodeSecrets};
use crate::wire::{self, Reader, WireError};

pub const PEOPLE_VERSION: u8 = 1;
/// How long a challenge can be answered: mail may take a while, and the
/// other person's node may be off when it arrives.
pub const CHALLENGE_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest address or name kept (longer ones are refused, not cut).
pub const MAX_TEXT: usize = 320;
/// Most nodes one challenge names.
pub const MAX_NODES_PER_CHALLENGE: usize = 64;
/// Other people's nodes kept while nobody verified them or acted on them
/// (anyone on the LAN can make identities): the oldest are forgotten first,
/// and they are never saved.
pub const MAX_UNVERIFIED_DEVICES: usize = 256;

const CHALLENGE_MAGIC: &[u8; 4] = b"MMCH";
const ANSWER_MAGIC: &[u8; 4] = b"MMAN";
const BOOK_MAGIC: &[u8; 4] = b"MMPB";
const PINS_MAGIC: &[u8; 4] = b"MMPN";
/// Most pins one message carries.
pub const MAX_PINS: usize = 4096;
const ANSWER_CONTEXT: &[u8] = b"mailmesh 2026-11 people answer v1";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeopleError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("a text field of the {0} is too long or not valid UTF-8")]
    BadText(&'static str),
    #[error("the {0} names too many nodes")]
    TooMany(&'static str),
    #[error("{0} is not a contact")]
    UnknownPerson(String),
    #[error("{0} is blocked")]
    Blocked(String),
    #[error("nothing to verify: every node of {0} that was seen is verified")]
    NothingToVerify(String),
    #[error("the answer comes from a node that was never asked")]
    NotAsked,
    #[error("the answer's proof does not match the challenge (wrong or old nonce, or another address)")]
    WrongProof,
    #[error("the challenge expired; verify again")]
    Expired,
    #[error("the answer is not signed by the node's key")]
    BadSignature,
}

/// An address as compared and stored: trimmed, lowercase.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The challenge mailed to a person's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub from_node: NodeId,
    pub from_email: String,
    pub to_email: String,
    /// For each node of the person to verify: its id and the nonce it must
    /// send back.
    pub nonces: Vec<(NodeId, [u8; 32])>,
}

impl Challenge {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(CHALLENGE_MAGIC);
        out.extend_from_slice(self.from_node.as_bytes());
        put_text(&mut out, &self.from_email);
        put_text(&mut out, &self.to_email);
        out.push(self.nonces.len() as u8);
        for (node, nonce) in &self.nonces {
            out.extend_from_slice(node.as_bytes());
            out.extend_from_slice(nonce);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Challenge, PeopleError> {
        let mut r = reader(bytes, CHALLENGE_MAGIC, "challenge")?;
        let from_node = r.node_id()?;
        let from_email = read_text(&mut r)?;
        let to_email = read_text(&mut r)?;
        let count = r.take(1)?[0] as usize;
        if count > MAX_NODES_PER_CHALLENGE {
            return Err(PeopleError::TooMany("challenge"));
        }
        let mut nonces = Vec::with_capacity(count);
        for _ in 0..count {
            nonces.push((r.node_id()?, r.array()?));
        }
        r.end()?;
        Ok(Challenge { from_node, from_email, to_email, nonces })
    }

    /// On the challenged side: the answer this node gives, if the challenge
    /// is for its owner's address and names this node.
    pub fn answer(&self, me: &NodeSecrets, my_email: &str) -> Option<Answer> {
        if normalize_email(&self.to_email) != normalize_email(my_email) {
            return None;
        }
        let my_id = me.node_id();
        let (_, nonce) = self.nonces.iter().find(|(node, _)| *node == my_id)?;
        Some(Answer::sign(me, *nonce, self.from_node, my_email))
    }
}

/// A node's proof that it read the challenge: sent over the LAN link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub nonce: [u8; 32],
    pub challenger: NodeId,
    pub responder: NodeId,
    pub email: String,
    pub signature: [u8; 64],
}

impl Answer {
    fn signed_bytes(nonce: &[u8; 32], challenger: &NodeId, responder: &NodeId, email: &str) -> Vec<u8> {
        let mut out = ANSWER_CONTEXT.to_vec();
        out.extend_from_slice(nonce);
        out.extend_from_slice(challenger.as_bytes());
        out.extend_from_slice(responder.as_bytes());
        out.extend_from_slice(normalize_email(email).as_bytes());
        out
    }

    pub fn sign(me: &NodeSecrets, nonce: [u8; 32], challenger: NodeId, email: &str) -> Answer {
        let responder = me.node_id();
        let signature = me.signing_key().sign(&Self::signed_bytes(&nonce, &challenger, &responder, email)).to_bytes();
        Answer { nonce, challenger, responder, email: normalize_email(email), signature }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(ANSWER_MAGIC);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(self.challenger.as_bytes());
        out.extend_from_slice(self.responder.as_bytes());
        put_text(&mut out, &self.email);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Answer, PeopleError> {
        let mut r = reader(bytes, ANSWER_MAGIC, "answer")?;
        let answer = Answer {
            nonce: r.array()?,
            challenger: r.node_id()?,
            responder: r.node_id()?,
            email: read_text(&mut r)?,
            signature: r.array()?,
        };
        r.end()?;
        Ok(answer)
    }

    fn verify(&self, key: &[u8; 32]) -> Result<(), PeopleError> {
        let key = VerifyingKey::from_bytes(key).map_err(|_| PeopleError::BadSignature)?;
        let bytes = Self::signed_bytes(&self.nonce, &self.challenger, &self.responder, &self.email);
        key.verify(&bytes, &Signature::from_bytes(&self.signature)).map_err(|_| PeopleError::BadSignature)
    }
}

/// What is known of one node of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Unverified,
    /// A challenge went out; `nonce` must come back before `expires_ms`.
    Pending {
        nonce: [u8; 32],
        expires_ms: u64,
    },
    Verified {
        at_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The Ed25519 key the node's link handshake proved.
    pub public_key: [u8; 32],
    pub first_seen_ms: u64,
    pub trust: Trust,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// The owner's name for them (empty: show the address).
    pub name: String,
    pub blocked: bool,
    pub devices: BTreeMap<NodeId, Device>,
}

impl Person {
    /// The owner named or blocked them: kept and saved even with no node
    /// verified.
    pub fn owner_acted(&self) -> bool {
        !self.name.is_empty() || self.blocked
    }

    /// Whether a node of theirs is worth saving: verified, or being verified.
    fn kept_devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values().filter(|d| d.trust != Trust::Unverified)
    }

    pub fn is_verified(&self) -> bool {
        self.devices.values().any(|d| matches!(d.trust, Trust::Verified { .. }))
    }

    /// A node appeared for this address after others were verified: it may
    /// be a new device, or someone else claiming the address.
    pub fn has_unverified_newcomer(&self) -> bool {
        self.is_verified() && self.devices.values().any(|d| !matches!(d.trust, Trust::Verified { .. }))
    }
}

/// How a sighting changed the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Nothing new.
    Known,
    /// A person or device not seen before; shown unverified.
    New,
    /// A device not seen before for an address with verified devices:
    /// shown with a warning until verified.
    NewDeviceOfVerified,
}

/// The contact book: everyone whose nodes were seen, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contacts {
    people: BTreeMap<String, Person>,
}

impl Contacts {
    pub fn people(&self) -> impl Iterator<Item = (&String, &Person)> {
        self.people.iter()
    }

    pub fn person(&self, email: &str) -> Option<&Person> {
        self.people.get(&normalize_email(email))
    }

    /// The person a node belongs to, by the key its link proved.
    pub fn owner_of(&self, node: &NodeId) -> Option<(&String, &Person)> {
        self.people.iter().find(|(_, p)| p.devices.contains_key(node))
    }

    /// A node claiming `email` with `public_key` was seen on the LAN.
    pub fn seen(&mut self, email: &str, public_key: [u8; 32], now_ms: u64) -> Result<Seen, PeopleError> {
        let email = normalize_email(email);
        if email.is_empty() || email.len() > MAX_TEXT {
            return Err(PeopleError::BadText("address"));
        }
        let node = NodeId::from_public_key(&public_key);
        let person = self.people.entry(email).or_default();
        if person.devices.contains_key(&node) {
            return Ok(Seen::Known);
        }
        let warn = person.is_verified();
        person.devices.insert(node, Device { public_key, first_seen_ms: now_ms, trust: Trust::Unverified });
        self.forget_oldest_unverified();
        Ok(if warn { Seen::NewDeviceOfVerified } else { Seen::New })
    }

    /// Keeps at most [`MAX_UNVERIFIED_DEVICES`] unverified nodes: the ones
    /// seen longest ago go, and with them people the owner never acted on.
    fn forget_oldest_unverified(&mut self) {
        let mut unverified: Vec<(u64, String, NodeId)> = self
            .people
            .iter()
            .flat_map(|(email, p)| {
                p.devices
                    .iter()
                    .filter(|(_, d)| matches!(d.trust, Trust::Unverified))
                    .map(move |(id, d)| (d.first_seen_ms, email.clone(), *id))
            })
            .collect();
        let over = unverified.len().saturating_sub(MAX_UNVERIFIED_DEVICES);
        if over == 0 {
            return;
        }
        unverified.sort();
        for (_, email, id) in unverified.into_iter().take(over) {
            if let Some(person) = self.people.get_mut(&email) {
                person.devices.remove(&id);
                if person.devices.is_empty() && !person.owner_acted() {
                    self.people.remove(&email);
                }
            }
        }
    }

    /// Starts verifying every unverified node of `email`: the challenge to
    /// mail. `nonce` gives fresh randomness for each node.
    pub fn challenge(
        &mut self,
        email: &str,
        me: NodeId,
        my_email: &str,
        now_ms: u64,
        mut nonce: impl FnMut() -> [u8; 32],
    ) -> Result<Challenge, PeopleError> {
        let key = normalize_email(email);
        let person = self.people.get_mut(&key).ok_or_else(|| PeopleError::UnknownPerson(key.clone()))?;
        if person.blocked {
            return Err(PeopleError::Blocked(key));
        }
        let mut nonces = Vec::new();
        for (node, device) in person.devices.iter_mut().take(MAX_NODES_PER_CHALLENGE) {
            if matches!(device.trust, Trust::Verified { .. }) {
                continue;
            }
            let fresh = nonce();
            device.trust = Trust::Pending { nonce: fresh, expires_ms: now_ms.saturating_add(CHALLENGE_TTL_MS) };
            nonces.push((*node, fresh));
        }
        if nonces.is_empty() {
            return Err(PeopleError::NothingToVerify(key));
        }
        Ok(Challenge { from_node: me, from_email: normalize_email(my_email), to_email: key, nonces })
    }

    /// An answer arrived over the link of node `from` (whose handshake
    /// proved its key). Returns the address now verified for that node.
    pub fn handle_answer(
        &mut self,
        from: NodeId,
        me: NodeId,
        answer: &Answer,
        now_ms: u64,
    ) -> Result<String, PeopleError> {
        if answer.responder != from || answer.challenger != me {
            return Err(PeopleError::NotAsked);
        }
        let (email, device) = self
            .people
            .iter_mut()
            .find_map(|(email, p)| p.devices.get_mut(&from).map(|d| (email.clone(), d)))
            .ok_or(PeopleError::NotAsked)?;
        let Trust::Pending { nonce, expires_ms } = device.trust else { return Err(PeopleError::NotAsked) };
        if !bool::from(nonce.ct_eq(&answer.nonce)) || normalize_email(&answer.email) != email {
            return Err(PeopleError::WrongProof);
        }
        if now_ms > expires_ms {
            device.trust = Trust::Unverified;
            return Err(PeopleError::Expired);
        }
        answer.verify(&device.public_key)?;
        device.trust = Trust::Verified { at_ms: now_ms };
        Ok(email)
    }

    pub fn rename(&mut self, email: &str, name: &str) -> Result<(), PeopleError> {
        let name = crate::names::visible(name);
        if name.len() > MAX_TEXT {
            return Err(PeopleError::BadText("name"));
        }
        self.person_mut(email)?.name = name;
        Ok(())
    }

    pub fn set_blocked(&mut self, email: &str, blocked: bool) -> Result<(), PeopleError> {
        self.person_mut(email)?.blocked = blocked;
        Ok(())
    }

    /// Forgets a person and every pin; if their nodes are seen again they
    /// start over as unverified.
    pub fn remove(&mut self, email: &str) -> Result<Person, PeopleError> {
        let key = normalize_email(email);
        self.people.remove(&key).ok_or(PeopleError::UnknownPerson(key))
    }

    fn person_mut(&mut self, email: &str) -> Result<&mut Person, PeopleError> {
        let key = normalize_email(email);
        self.people.get_mut(&key).ok_or(PeopleError::UnknownPerson(key))
    }

    /// Every node verified in this book, to hand the owner's other nodes.
    pub fn verified_pins(&self) -> Pins {
        let pins = self
            .people
            .iter()
            .flat_map(|(email, person)| {
                person.devices.values().filter_map(move |d| match d.trust {
                    Trust::Verified { at_ms } => Some(Pin { email: email.clone(), public_key: d.public_key, at_ms }),
                    _ => None,
                })
            })
            .take(MAX_PINS)
            .collect();
        Pins(pins)
    }

    /// Takes a pin from another node of the same owner (over a member
    /// link: as trusted as our own verification). A node is added if never
    /// seen, or made verified if seen with the very same key. Returns
    /// whether the book changed.
    pub fn adopt_pin(&mut self, pin: &Pin) -> bool {
        let email = normalize_email(&pin.email);
        if email.is_empty() || email.len() > MAX_TEXT {
            return false;
        }
        let node = NodeId::from_public_key(&pin.public_key);
        // A node belongs to one address: a pin for it under another wins
        // only where we never saw it.
        if self.owner_of(&node).is_some_and(|(owner, _)| *owner != email) {
            return false;
        }
        let person = self.people.entry(email).or_default();
        let device = person.devices.entry(node).or_insert(Device {
            public_key: pin.public_key,
            first_seen_ms: pin.at_ms,
            trust: Trust::Unverified,
        });
        if device.public_key != pin.public_key || matches!(device.trust, Trust::Verified { .. }) {
            return false;
        }
        device.trust = Trust::Verified { at_ms: pin.at_ms };
        true
    }

    /// The book as saved: people the owner acted on and nodes verified or
    /// being verified. Unverified nodes live only in memory (anyone can make
    /// them); they are seen again when they link up.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(BOOK_MAGIC);
        let saved: Vec<(&String, &Person)> =
            self.people.iter().filter(|(_, p)| p.owner_acted() || p.kept_devices().next().is_some()).collect();
        out.extend_from_slice(&(saved.len() as u32).to_le_bytes());
        for (email, person) in saved {
            put_text(&mut out, email);
            put_text(&mut out, &person.name);
            out.push(u8::from(person.blocked));
            out.extend_from_slice(&(person.kept_devices().count() as u32).to_le_bytes());
            for device in person.kept_devices() {
                out.extend_from_slice(&device.public_key);
                out.extend_from_slice(&device.first_seen_ms.to_le_bytes());
                match &device.trust {
                    Trust::Unverified => out.push(0),
                    Trust::Pending { nonce, expires_ms } => {
                        out.push(1);
                        out.extend_from_slice(nonce);
                        out.extend_from_slice(&expires_ms.to_le_bytes());
                    }
                    Trust::Verified { at_ms } => {
                        out.push(2);
                        out.extend_from_slice(&at_ms.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Contacts, PeopleError> {
        let mut r = reader(bytes, BOOK_MAGIC, "contact book")?;
        let mut people = BTreeMap::new();
        for _ in 0..r.u32()? {
            let email = read_text(&mut r)?;
            let person_name = read_text(&mut r)?;
            let blocked = r.take(1)?[0] != 0;
            let mut devices = BTreeMap::new();
            for _ in 0..r.u32()? {
                let public_key: [u8; 32] = r.array()?;
                let first_seen_ms = r.u64()?;
                let trust = match r.take(1)?[0] {
                    0 => Trust::Unverified,
                    1 => Trust::Pending { nonce: r.array()?, expires_ms: r.u64()? },
                    2 => Trust::Verified { at_ms: r.u64()? },
                    _ => return Err(WireError::Version("contact book").into()),
                };
                devices.insert(NodeId::from_public_key(&public_key), Device { public_key, first_seen_ms, trust });
            }
            people.insert(email, Person { name: person_name, blocked, devices });
        }
        r.end()?;
        Ok(Contacts { people })
    }
}

/// One verified node of a person, as the owner's nodes share them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub email: String,
    pub public_key: [u8; 32],
    pub at_ms: u64,
}

/// The pins one node hands another of the same owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pins(pub Vec<Pin>);

impl Pins {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(PINS_MAGIC);
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        for pin in &self.0 {
            put_text(&mut out, &pin.email);
            out.extend_from_slice(&pin.public_key);
            out.extend_from_slice(&pin.at_ms.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Pins, PeopleError> {
        let mut r = reader(bytes, PINS_MAGIC, "pins")?;
        let count = r.u32()? as usize;
        if count > MAX_PINS {
            return Err(PeopleError::TooMany("pins"));
        }
        let pins = (0..count)
            .map(|_| Ok(Pin { email: read_text(&mut r)?, public_key: r.array()?, at_ms: r.u64()? }))
            .collect::<Result<Vec<_>, PeopleError>>()?;
        r.end()?;
        Ok(Pins(pins))
    }
}

fn header(magic: &[u8; 4]) -> Vec<u8> {
    wire::header(magic, PEOPLE_VERSION)
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(MAX_TEXT)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A reader of one people message (its errors convert into [`PeopleError`]).
fn reader<'a>(bytes: &'a [u8], magic: &[u8; 4], what: &'static str) -> Result<Reader<'a>, PeopleError> {
    Ok(Reader::new(bytes, magic, PEOPLE_VERSION, what)?)
}

/// A `u16` length and that many bytes of UTF-8, at most [`MAX_TEXT`].
fn read_text(r: &mut Reader<'_>) -> Result<String, PeopleError> {
    let len = u16::from_le_bytes(r.array()?) as usize;
    if len > MAX_TEXT {
        return Err(PeopleError::BadText(r.what));
    }
    String::from_utf8(r.take(len)?.to_vec()).map_err(|_| PeopleError::BadText(r.what))
}

#[cfg(test)]
mod tests;
