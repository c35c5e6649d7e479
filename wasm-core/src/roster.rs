//! The roster: the signed list of the owner's confirmed nodes.
//!
//! The first node signs its own entry (the *genesis*); every later entry is
//! signed by a node already on the roster. The network id is derived from
//! the genesis key, so two rosters with different origins can never be
//! confused. [`Roster::verify`] checks the whole chain: an entry whose
//! signer is not an earlier member, or whose signature does not verify, is
//! rejected, whatever channel the roster came through.
//!
//! Binary, little endian, version 1:
//!
//! ```text
//! "MMRS" | version u8 | entry count u16 | entries
//! entry: kind u8 (0 add, 1 remove) | ed25519 [32] | x25519 [32] | at_ms u64
//!        | signer id [20]
//!        | name_len u8 | name utf-8 | signature [64]
//! ```

use std::fmt;

use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use thiserror::Error;

use crate::identity::{NodeId, NodePublic, NodeSecrets, NODE_ID_LEN};

const MAGIC: &[u8; 4] = b"MMRS";
pub const ROSTER_VERSION: u8 = 1;
pub const MAX_DEVICE_NAME: usize = 64;
pub const MAX_ENTRIES: usize = 1024;
const SIGN_CONTEXT: &[u8] = b"mailmesh roster entry v1";
const NETWORK_ID_CONTEXT: &str = "mailmesh 2026-11 network id v1";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RosterError {
    #[error("the roster is cut short ({0} is missing)")]
    Truncated(&'static str),
    #[error("this is not a mailmesh roster")]
    BadMagic,
    #[error("the roster has version {0}, newer than this mailmesh understands; update mailmesh")]
    NewerVersion(u8),
    #[error("the roster is empty")]
    Empty,
    #[error("the roster has {0} entries; at most {MAX_ENTRIES} are allowed")]
    TooMany(usize),
    #[error("a device name is longer than {MAX_DEVICE_NAME} bytes or not valid UTF-8")]
    BadName,
    #[error("the roster has {0} unexpected bytes at the end")]
    TrailingBytes(usize),
    #[error("entry {index} ({node}) is signed by {signer}, which is not an earlier member of the roster")]
    UnknownSigner { index: usize, node: NodeId, signer: NodeId },
    #[error("entry {index} ({node}) has a signature that does not verify")]
    BadSignature { index: usize, node: NodeId },
    #[error("entry {index} has a public key that is not a valid Ed25519 key")]
    BadKey { index: usize },
    #[error("node {0} appears twice in the roster")]
    Duplicate(NodeId),
    #[error("{0} is not a member of this roster")]
    NotMember(NodeId),
    #[error("entry {index} removes {node}, which is not a member")]
    RemoveNonMember { index: usize, node: NodeId },
    #[error("entry {index} adds {node}, which was removed before and cannot return")]
    Readded { index: usize, node: NodeId },
    #[error("entry {0} has an unknown kind")]
    BadKind(usize),
}

/// Whether an entry adds or removes a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Add = 0,
    Remove = 1,
}

/// One confirmed node and who vouched for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub kind: EntryKind,
    pub node: NodePublic,
    pub device_name: String,
    pub added_ms: u64,
    pub signer: NodeId,
    pub signature: [u8; 64],
}

impl fmt::Debug for RosterEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RosterEntry")
            .field("kind", &self.kind)
            .field("node", &self.node.node_id())
            .field("device_name", &self.device_name)
            .field("added_ms", &self.added_ms)
            .field("signer", &self.signer)
            .finish()
    }
}

impl RosterEntry {
    fn signed_bytes(kind: EntryKind, node: &NodePublic, device_name: &str, added_ms: u64, signer: &NodeId) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGN_CONTEXT.len() + 100 + device_name.len());
        out.extend_from_slice(SIGN_CONTEXT);
        out.push(kind as u8);
        out.extend_from_slice(&node.ed25519);
        out.extend_from_slice(&node.x25519);
        out.extend_from_slice(&added_ms.to_le_bytes());
        out.extend_from_slice(signer.as_bytes());
        out.push(device_name.len() as u8);
        out.extend_from_slice(device_name.as_bytes());
        out
    }

    /// An entry for `node`, signed by `signer`.
    pub fn sign(
        signer: &NodeSecrets,
        kind: EntryKind,
        node: NodePublic,
        device_name: &str,
        added_ms: u64,
    ) -> Result<RosterEntry, RosterError> {
        if device_name.len() > MAX_DEVICE_NAME {
            return Err(RosterError::BadName);
        }
        let signer_id = signer.node_id();
        let message = Self::signed_bytes(kind, &node, device_name, added_ms, &signer_id);
        let signature = signer.signing_key().sign(&message).to_bytes();
        Ok(RosterEntry { kind, node, device_name: device_name.to_string(), added_ms, signer: signer_id, signature })
    }

    fn verify_with(&self, signer_key: &[u8; 32], index: usize) -> Result<(), RosterError> {
        let node = self.node.node_id();
        let key = VerifyingKey::from_bytes(signer_key).map_err(|_| RosterError::BadKey { index })?;
        let message = Self::signed_bytes(self.kind, &self.node, &self.device_name, self.added_ms, &self.signer);
        key.verify(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| RosterError::BadSignature { index, node })
    }
}

/// The network id shown to people: derived from the genesis node's key.
pub fn network_id(genesis: &NodePublic) -> String {
    let digest = blake3::derive_key(NETWORK_ID_CONTEXT, &genesis.ed25519);
    let mut id = [0u8; NODE_ID_LEN];
    id.copy_from_slice(&digest[..NODE_ID_LEN]);
    data_encoding::BASE32_NOPAD.encode(&id).to_ascii_lowercase()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    entries: Vec<RosterEntry>,
}

impl Roster {
    /// A new roster with `genesis` as its only, self-signed member.
    pub fn genesis(genesis: &NodeSecrets, device_name: &str, now_ms: u64) -> Result<Roster, RosterError> {
        Ok(Roster { entries: vec![RosterEntry::sign(genesis, EntryKind::Add, genesis.public(), device_name, now_ms)?] })
    }

    /// Adds `node`, vouched for by `signer`, who must be a member.
    pub fn add(
        &mut self,
        signer: &NodeSecrets,
        node: NodePublic,
        device_name: &str,
        now_ms: u64,
    ) -> Result<(), RosterError> {
        if !self.contains(&signer.node_id()) {
            return Err(RosterError::NotMember(signer.node_id()));
        }
        if self.entries.iter().any(|e| e.node.node_id() == node.node_id()) {
            return Err(RosterError::Duplicate(node.node_id()));
        }
        self.entries.push(RosterEntry::sign(signer, EntryKind::Add, node, device_name, now_ms)?);
        Ok(())
    }

    /// Removes member `node`, by `signer`, who must be a member.
    pub fn remove(&mut self, signer: &NodeSecrets, node: &NodeId, now_ms: u64) -> Result<(), RosterError> {
        if !self.contains(&signer.node_id()) {
            return Err(RosterError::NotMember(signer.node_id()));
        }
        let Some(public) = self.members().into_iter().find(|e| e.node.node_id() == *node).map(|e| e.node) else {
            return Err(RosterError::NotMember(*node));
        };
        self.entries.push(RosterEntry::sign(signer, EntryKind::Remove, public, "", now_ms)?);
        Ok(())
    }

    /// Every entry, in order (adds and removals).
    pub fn entries(&self) -> &[RosterEntry] {
        &self.entries
    }

    /// The add entries of the nodes that are members now.
    pub fn members(&self) -> Vec<&RosterEntry> {
        let removed: Vec<NodeId> =
            self.entries.iter().filter(|e| e.kind == EntryKind::Remove).map(|e| e.node.node_id()).collect();
        self.entries.iter().filter(|e| e.kind == EntryKind::Add && !removed.contains(&e.node.node_id())).collect()
    }

    /// Whether `node` is a member now.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.members().iter().any(|e| e.node.node_id() == *node)
    }

    /// Whether `node` was a member and was removed.
    pub fn was_removed(&self, node: &NodeId) -> bool {
        self.entries.iter().any(|e| e.kind == EntryKind::Remove && e.node.node_id() == *node)
    }

    /// Every node ever removed from this network.
    pub fn removed(&self) -> Vec<NodeId> {
        self.entries.iter().filter(|e| e.kind == EntryKind::Remove).map(|e| e.node.node_id()).collect()
    }

    pub fn network_id(&self) -> String {
        network_id(&self.entries[0].node)
    }

    /// Checks every entry's signature and that each signer was already a
    /// member when it signed (the genesis entry signs itself).
    pub fn verify(&self) -> Result<(), RosterError> {
        let Some(genesis) = self.entries.first() else { return Err(RosterError::Empty) };
        if genesis.kind != EntryKind::Add {
            return Err(RosterError::BadKind(0));
        }
        let mut members: Vec<NodePublic> = Vec::new();
        let mut removed: Vec<NodeId> = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let node = entry.node.node_id();
            let signer = if index == 0 {
                (entry.signer == node).then_some(entry.node)
            } else {
                members.iter().copied().find(|n| n.node_id() == entry.signer)
            };
            let Some(signer) = signer else {
                return Err(RosterError::UnknownSigner { index, node, signer: entry.signer });
            };
            entry.verify_with(&signer.ed25519, index)?;
            match entry.kind {
                EntryKind::Add if removed.contains(&node) => return Err(RosterError::Readded { index, node }),
                EntryKind::Add if members.iter().any(|m| m.node_id() == node) => {
                    return Err(RosterError::Duplicate(node))
                }
                EntryKind::Add => members.push(entry.node),
                EntryKind::Remove => {
                    let Some(at) = members.iter().position(|m| m.node_id() == node) else {
                        return Err(RosterError::RemoveNonMember { index, node });
                    };
                    members.remove(at);
                    removed.push(node);
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(ROSTER_VERSION);
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        for e in &self.entries {
            out.push(e.kind as u8);
            out.extend_from_slice(&e.node.ed25519);
            out.extend_from_slice(&e.node.x25519);
            out.extend_from_slice(&e.added_ms.to_le_bytes());
            out.extend_from_slice(e.signer.as_bytes());
            out.push(e.device_name.len() as u8);
            out.extend_from_slice(e.device_name.as_bytes());
            out.extend_from_slice(&e.signature);
        }
        out
    }

    /// Parses a roster. Structure only: call [`Roster::verify`] before
    /// believing it.
    pub fn decode(bytes: &[u8]) -> Result<Roster, RosterError> {
        let mut r = bytes;
        let mut take = |n: usize, what: &'static str| -> Result<&[u8], RosterError> {
            if r.len() < n {
                return Err(RosterError::Truncated(what));
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Ok(head)
        };
        if take(4, "magic")? != MAGIC {
            return Err(RosterError::BadMagic);
        }
        let version = take(1, "version")?[0];
        if version != ROSTER_VERSION {
            return Err(RosterError::NewerVersion(version));
        }
        let count = u16::from_le_bytes([take(1, "count")?[0], take(1, "count")?[0]]) as usize;
        if count == 0 {
            return Err(RosterError::Empty);
        }
        if count > MAX_ENTRIES {
            return Err(RosterError::TooMany(count));
        }
        let mut entries = Vec::with_capacity(count.min(64));
        for index in 0..count {
            let kind = match take(1, "kind")?[0] {
                0 => EntryKind::Add,
                1 => EntryKind::Remove,
                _ => return Err(RosterError::BadKind(index)),
            };
            let ed25519 = to_array::<32>(take(32, "public key")?);
            let x25519 = to_array::<32>(take(32, "agreement key")?);
            let added_ms = u64::from_le_bytes(to_array::<8>(take(8, "time")?));
            let signer = NodeId::from_bytes(to_array::<NODE_ID_LEN>(take(NODE_ID_LEN, "signer")?));
            let name_len = take(1, "name length")?[0] as usize;
            if name_len > MAX_DEVICE_NAME {
                return Err(RosterError::BadName);
            }
            let device_name =
                std::str::from_utf8(take(name_len, "name")?).map_err(|_| RosterError::BadName)?.to_string();
            let signature = to_array::<64>(take(64, "signature")?);
            entries.push(RosterEntry {
                kind,
                node: NodePublic { ed25519, x25519 },
                device_name,
                added_ms,
                signer,
                signature,
            });
        }
        if !r.is_empty() {
            return Err(RosterError::TrailingBytes(r.len()));
        }
        Ok(Roster { entries })
    }
}

fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(seed: u8) -> NodeSecrets {
        NodeSecrets::from_seeds([seed; 32], [seed.wrapping_add(100); 32])
    }

    #[test]
    fn members_vouch_for_new_members() {
        let (a, b, c) = (node(1), node(2), node(3));
        let mut roster = Roster::genesis(&a, "laptop", 1).unwrap();
        roster.add(&a, b.public(), "phone", 2).unwrap();
        roster.add(&b, c.public(), "nas", 3).unwrap();
        roster.verify().unwrap();
        assert_eq!(Roster::decode(&roster.encode()).unwrap(), roster);
        assert_eq!(roster.network_id(), network_id(&a.public()));
    }

    #[test]
    fn an_outsider_cannot_sign_anyone_in() {
        let (a, outsider, c) = (node(1), node(9), node(3));
        let mut roster = Roster::genesis(&a, "laptop", 1).unwrap();
        assert_eq!(roster.add(&outsider, c.public(), "x", 2), Err(RosterError::NotMember(outsider.node_id())));
        // Forged by appending an entry signed by a non-member.
        roster.entries.push(RosterEntry::sign(&outsider, EntryKind::Add, c.public(), "x", 2).unwrap());
        assert!(matches!(roster.verify(), Err(RosterError::UnknownSigner { index: 1, .. })));
    }

    #[test]
    fn a_tampered_entry_fails_its_signature() {
        let (a, b) = (node(1), node(2));
        let mut roster = Roster::genesis(&a, "laptop", 1).unwrap();
        roster.add(&a, b.public(), "phone", 2).unwrap();
        roster.entries[1].device_name = "evil".into();
        assert!(matches!(roster.verify(), Err(RosterError::BadSignature { index: 1, .. })));
        // A member impersonating the signer of an entry it did not sign.
        let mut claimed = Roster::genesis(&a, "laptop", 1).unwrap();
        let mut forged = RosterEntry::sign(&node(7), EntryKind::Add, b.public(), "phone", 2).unwrap();
        forged.signer = a.node_id();
        claimed.entries.push(forged);
        assert!(matches!(claimed.verify(), Err(RosterError::BadSignature { index: 1, .. })));
    }

    #[test]
    fn removed_members_lose_their_voice_and_never_return() {
        let (a, b, c) = (node(1), node(2), node(3));
        let mut roster = Roster::genesis(&a, "laptop", 1).unwrap();
        roster.add(&a, b.public(), "phone", 2).unwrap();
        roster.remove(&a, &b.node_id(), 3).unwrap();
        roster.verify().unwrap();
        assert!(!roster.contains(&b.node_id()));
        assert!(roster.was_removed(&b.node_id()));
        assert_eq!(roster.members().len(), 1);
        // The removed node signs nobody in.
        assert_eq!(roster.add(&b, c.public(), "x", 4), Err(RosterError::NotMember(b.node_id())));
        let mut forged = roster.clone();
        forged.entries.push(RosterEntry::sign(&b, EntryKind::Add, c.public(), "x", 4).unwrap());
        assert!(matches!(forged.verify(), Err(RosterError::UnknownSigner { index: 3, .. })));
        // Nor comes back.
        let mut back = roster.clone();
        back.entries.push(RosterEntry::sign(&a, EntryKind::Add, b.public(), "phone", 5).unwrap());
        assert!(matches!(back.verify(), Err(RosterError::Readded { index: 3, .. })));
        assert_eq!(Roster::decode(&roster.encode()).unwrap(), roster);
    }

    proptest! {
        #[test]
        fn rosters_round_trip(n in 1usize..6, name in "[a-z ]{0,20}") {
            let nodes: Vec<NodeSecrets> = (0..n as u8).map(|i| node(i + 1)).collect();
            let mut roster = Roster::genesis(&nodes[0], &name, 1).unwrap();
            for (i, nd) in nodes.iter().enumerate().skip(1) {
                roster.add(&nodes[i - 1], nd.public(), &name, i as u64).unwrap();
            }
            let back = Roster::decode(&roster.encode()).unwrap();
            back.verify().unwrap();
            prop_assert_eq!(back, roster);
        }

        #[test]
        fn any_flipped_bit_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut roster = Roster::genesis(&node(1), "laptop", 1).unwrap();
            roster.add(&node(1), node(2).public(), "phone", 2).unwrap();
            let mut bytes = roster.encode();
            let at = pos.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let outcome = Roster::decode(&bytes).and_then(|r| r.verify());
            prop_assert!(outcome.is_err(), "flip at {} accepted", at);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Roster::decode(&bytes).map(|r| r.verify());
        }
    }
}
