//! Joining an existing network through the owner's mailbox.
//!
//! The mailbox is the trust boundary: anyone may write to it, only the
//! owner (and the owner's nodes, which hold the credentials) can read it.
//! Every step therefore carries proof of a secret that only travelled
//! through the mailbox:
//!
//! ```text
//! new node N ── JoinRequest (N's keys, join secret J, signed by N) ──▶ mailbox
//! member M   ── Approval (hashes of link token T and code C, MAC by J) ──▶ mailbox
//!            (the human text of that mail holds T as a link and C)
//! owner      ── opens T or types C on N; N checks them against the Approval
//! N          ── JoinProof (MAC keyed by T or C) ──▶ mailbox
//! M          ── Welcome (roster with N signed in, network key sealed to N's
//!               X25519 key, MAC keyed by T or C) ──▶ mailbox
//! ```
//!
//! An outsider can mail a join request, but never learns T or C, so cannot
//! prove an approval; can mail a fake approval, but does not know J, so N
//! ignores it; can seal a fake network key to N, but without T or C, so N
//! ignores it. All randomness (secrets, ephemeral keys, nonces) is an input.
//!
//! Every message is `magic | version u8 | fields`, little endian.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use subtle::ConstantTimeEq;
use thiserror::Error;
use x25519_dalek::{PublicKey as XPublicKey, StaticSecret};

use crate::drive::NetworkKey;
use crate::identity::{NodeId, NodePublic, NodeSecrets};
use crate::roster::MAX_DEVICE_NAME;
use crate::wire::{self, Reader, WireError};

pub const JOIN_VERSION: u8 = 1;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JoinError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the device name is too long or not valid UTF-8")]
    BadName,
    #[error("the join request's signature does not match its key")]
    BadSignature,
    #[error("the {0} does not prove knowledge of the secret it needs (forged, or meant for another device)")]
    BadProof(&'static str),
    #[error("the sealed network key cannot be opened by this node")]
    Unseal,
}

fn header(magic: &[u8; 4]) -> Vec<u8> {
    wire::header(magic, JOIN_VERSION)
}

/// A reader of one join message (its errors convert into [`JoinError`]).
fn reader<'a>(bytes: &'a [u8], magic: &[u8; 4], what: &'static str) -> Result<Reader<'a>, JoinError> {
    Ok(Reader::new(bytes, magic, JOIN_VERSION, what)?)
}

fn mac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, message).as_bytes()
}

fn mac_ok(key: &[u8; 32], message: &[u8], tag: &[u8; 32]) -> bool {
    bool::from(mac(key, message).ct_eq(tag))
}

/// The key a link token or a typed code gives (codes compared without case,
/// dashes or spaces).
pub fn approval_key(secret_text: &str) -> [u8; 32] {
    let normalized: String =
        secret_text.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    blake3::derive_key("mailmesh join approval secret v1", normalized.as_bytes())
}

/// What the new node asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    pub node: NodePublic,
    pub join_secret: [u8; 32],
    pub loopback_port: u16,
    pub created_ms: u64,
    pub device_name: String,
}

const JOIN_REQUEST: &[u8; 4] = b"MMJR";

impl JoinRequest {
    fn body(&self) -> Vec<u8> {
        let mut out = header(JOIN_REQUEST);
        out.extend_from_slice(&self.node.ed25519);
        out.extend_from_slice(&self.node.x25519);
        out.extend_from_slice(&self.join_secret);
        out.extend_from_slice(&self.loopback_port.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.push(self.device_name.len() as u8);
        out.extend_from_slice(self.device_name.as_bytes());
        out
    }

    /// Encodes and signs with the new node's key (proving it holds it).
    pub fn encode(&self, me: &NodeSecrets) -> Vec<u8> {
        let mut out = self.body();
        let signature = me.signing_key().sign(&out).to_bytes();
        out.extend_from_slice(&signature);
        out
    }

    /// Decodes and checks the signature.
    pub fn decode(bytes: &[u8]) -> Result<JoinRequest, JoinError> {
        let mut r = reader(bytes, JOIN_REQUEST, "join request")?;
        let node = NodePublic { ed25519: r.array()?, x25519: r.array()? };
        let join_secret = r.array()?;
        let loopback_port = u16::from_le_bytes(r.array()?);
        let created_ms = r.u64()?;
        let len = r.take(1)?[0] as usize;
        if len > MAX_DEVICE_NAME {
            return Err(JoinError::BadName);
        }
        let device_name = std::str::from_utf8(r.take(len)?).map_err(|_| JoinError::BadName)?.to_string();
        let signature: [u8; 64] = r.array()?;
        r.end()?;
        let request = JoinRequest { node, join_secret, loopback_port, created_ms, device_name };
        let key = VerifyingKey::from_bytes(&node.ed25519).map_err(|_| JoinError::BadSignature)?;
        key.verify(&request.body(), &Signature::from_bytes(&signature)).map_err(|_| JoinError::BadSignature)?;
        Ok(request)
    }
}

/// A member's answer to a join request: what the owner must confirm on the
/// new node. The token and code themselves are only in the mail's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub member: NodeId,
    pub node: NodeId,
    pub token_key_hash: [u8; 32],
    pub code_key_hash: [u8; 32],
    pub expires_ms: u64,
}

const APPROVAL: &[u8; 4] = b"MMAP";

fn key_hash(key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("mailmesh join approval check v1", key)
}

impl Approval {
    pub fn new(member: NodeId, node: NodeId, token: &str, code: &str, expires_ms: u64) -> Approval {
        Approval {
            member,
            node,
            token_key_hash: key_hash(&approval_key(token)),
            code_key_hash: key_hash(&approval_key(code)),
            expires_ms,
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut out = header(APPROVAL);
        out.extend_from_slice(self.member.as_bytes());
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(&self.token_key_hash);
        out.extend_from_slice(&self.code_key_hash);
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out
    }

    /// Encodes with a MAC keyed by the request's join secret.
    pub fn encode(&self, join_secret: &[u8; 32]) -> Vec<u8> {
        let mut out = self.body();
        let tag = mac(join_secret, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Decodes and checks the MAC with this node's join secret.
    pub fn decode(bytes: &[u8], join_secret: &[u8; 32]) -> Result<Approval, JoinError> {
        let mut r = reader(bytes, APPROVAL, "approval")?;
        let approval = Approval {
            member: r.node_id()?,
            node: r.node_id()?,
            token_key_hash: r.array()?,
            code_key_hash: r.array()?,
            expires_ms: r.u64()?,
        };
        let tag: [u8; 32] = r.array()?;
        r.end()?;
        if !mac_ok(join_secret, &approval.body(), &tag) {
            return Err(JoinError::BadProof("approval"));
        }
        Ok(approval)
    }

    /// The approval key for what the owner gave (link token or code), if it
    /// is one of the two this approval names.
    pub fn accepts(&self, secret_text: &str) -> Option<[u8; 32]> {
        let key = approval_key(secret_text);
        let h = key_hash(&key);
        (bool::from(h.ct_eq(&self.token_key_hash)) || bool::from(h.ct_eq(&self.code_key_hash))).then_some(key)
    }
}

/// The new node's proof that the owner confirmed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinProof {
    pub node: NodeId,
    pub member: NodeId,
}

const JOIN_PROOF: &[u8; 4] = b"MMJP";

impl JoinProof {
    fn body(&self) -> Vec<u8> {
        let mut out = header(JOIN_PROOF);
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(self.member.as_bytes());
        out
    }

    /// Encodes with a MAC keyed by the approval key the owner gave.
    pub fn encode(&self, approval_key: &[u8; 32]) -> Vec<u8> {
        let mut out = self.body();
        let tag = mac(approval_key, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Decodes without checking; the member checks with [`JoinProof::verify`]
    /// against the keys of the approval it issued.
    pub fn decode(bytes: &[u8]) -> Result<(JoinProof, [u8; 32]), JoinError> {
        let mut r = reader(bytes, JOIN_PROOF, "join proof")?;
        let proof = JoinProof { node: r.node_id()?, member: r.node_id()? };
        let tag = r.array()?;
        r.end()?;
        Ok((proof, tag))
    }

    pub fn verify(&self, tag: &[u8; 32], approval_keys: &[[u8; 32]]) -> Option<[u8; 32]> {
        approval_keys.iter().find(|k| mac_ok(k, &self.body(), tag)).copied()
    }
}

/// The member's welcome: the roster with the new node in it and the network
/// key sealed to the new node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub node: NodeId,
    pub member: NodeId,
    pub roster: Vec<u8>,
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 24],
    pub sealed_key: [u8; 48],
}

const WELCOME: &[u8; 4] = b"MMWL";
const MAX_ROSTER_BYTES: usize = 1 << 20;

fn seal_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut material = Vec::with_capacity(96);
    material.extend_from_slice(shared);
    material.extend_from_slice(ephemeral);
    material.extend_from_slice(recipient);
    XChaCha20Poly1305::new(Key::from_slice(&blake3::derive_key("mailmesh sealed network key v1", &material)))
}

impl Welcome {
    /// Seals `network` to `recipient` with the caller's ephemeral secret and
    /// nonce (both random).
    pub fn new(
        node: &NodePublic,
        member: NodeId,
        roster: Vec<u8>,
        network: &NetworkKey,
        ephemeral_secret: [u8; 32],
        nonce: [u8; 24],
    ) -> Welcome {
        let eph = StaticSecret::from(ephemeral_secret);
        let ephemeral = XPublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&XPublicKey::from(node.x25519)).to_bytes();
        let mut sealed_key = [0u8; 48];
        sealed_key[..32].copy_from_slice(network.as_bytes());
        let (body, tag_out) = sealed_key.split_at_mut(32);
        if let Ok(tag) =
            seal_key(&shared, &ephemeral, &node.x25519).encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", body)
        {
            tag_out.copy_from_slice(&tag);
        }
        Welcome { node: node.node_id(), member, roster, ephemeral, nonce, sealed_key }
    }

    fn body(&self) -> Vec<u8> {
        let mut out = header(WELCOME);
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(self.member.as_bytes());
        out.extend_from_slice(&(self.roster.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.roster);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.sealed_key);
        out
    }

    pub fn encode(&self, approval_key: &[u8; 32]) -> Vec<u8> {
        let mut out = self.body();
        let tag = mac(approval_key, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Decodes and checks the MAC with the approval key this node holds.
    pub fn decode(bytes: &[u8], approval_key: &[u8; 32]) -> Result<Welcome, JoinError> {
        let mut r = reader(bytes, WELCOME, "welcome")?;
        let node = r.node_id()?;
        let member = r.node_id()?;
        let len = u32::from_le_bytes(r.array()?) as usize;
        if len > MAX_ROSTER_BYTES {
            return Err(WireError::Length("welcome").into());
        }
        let roster = r.take(len)?.to_vec();
        let welcome =
            Welcome { node, member, roster, ephemeral: r.array()?, nonce: r.array()?, sealed_key: r.array()? };
        let tag: [u8; 32] = r.array()?;
        r.end()?;
        if !mac_ok(approval_key, &welcome.body(), &tag) {
            return Err(JoinError::BadProof("welcome"));
        }
        Ok(welcome)
    }

    /// Opens the network key with this node's X25519 secret.
    pub fn open(&self, me: &NodeSecrets) -> Result<NetworkKey, JoinError> {
        let mine = me.public().x25519;
        let shared = me.agreement_secret().diffie_hellman(&XPublicKey::from(self.ephemeral)).to_bytes();
        let mut body = [0u8; 32];
        body.copy_from_slice(&self.sealed_key[..32]);
        let tag = chacha20poly1305::Tag::from_slice(&self.sealed_key[32..]);
        seal_key(&shared, &self.ephemeral, &mine)
            .decrypt_in_place_detached(XNonce::from_slice(&self.nonce), b"", &mut body, tag)
            .map_err(|_| JoinError::Unseal)?;
        Ok(NetworkKey::from_bytes(body))
    }
}

/// A network key sealed to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedKey {
    pub node: NodeId,
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 24],
    pub sealed_key: [u8; 48],
}

impl SealedKey {
    /// Seals `network` to `recipient` with a random ephemeral secret and nonce.
    pub fn seal(
        recipient: &NodePublic,
        network: &NetworkKey,
        ephemeral_secret: [u8; 32],
        nonce: [u8; 24],
    ) -> SealedKey {
        let w = Welcome::new(recipient, recipient.node_id(), Vec::new(), network, ephemeral_secret, nonce);
        SealedKey { node: w.node, ephemeral: w.ephemeral, nonce: w.nonce, sealed_key: w.sealed_key }
    }

    pub fn open(&self, me: &NodeSecrets) -> Result<NetworkKey, JoinError> {
        let w = Welcome {
            node: self.node,
            member: self.node,
            roster: Vec::new(),
            ephemeral: self.ephemeral,
            nonce: self.nonce,
            sealed_key: self.sealed_key,
        };
        w.open(me)
    }
}

/// After a removal: the new roster and a new network key sealed to each
/// remaining member, signed by the member who made the change. The removed
/// node is not among the recipients, so it learns nothing new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rekey {
    pub signer: NodeId,
    pub roster: Vec<u8>,
    pub keys: Vec<SealedKey>,
}

const REKEY: &[u8; 4] = b"MMRK";
const MAX_REKEY_RECIPIENTS: usize = 1024;

impl Rekey {
    fn body(&self) -> Vec<u8> {
        let mut out = header(REKEY);
        out.extend_from_slice(self.signer.as_bytes());
        out.extend_from_slice(&(self.roster.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.roster);
        out.extend_from_slice(&(self.keys.len() as u16).to_le_bytes());
        for k in &self.keys {
            out.extend_from_slice(k.node.as_bytes());
            out.extend_from_slice(&k.ephemeral);
            out.extend_from_slice(&k.nonce);
            out.extend_from_slice(&k.sealed_key);
        }
        out
    }

    /// Encodes and signs with the signer's key.
    pub fn encode(&self, signer: &NodeSecrets) -> Vec<u8> {
        let mut out = self.body();
        let signature = signer.signing_key().sign(&out).to_bytes();
        out.extend_from_slice(&signature);
        out
    }

    /// Decodes; the signature is checked by [`Rekey::verify`] once the
    /// signer's key is known from the roster.
    pub fn decode(bytes: &[u8]) -> Result<(Rekey, [u8; 64]), JoinError> {
        let mut r = reader(bytes, REKEY, "new network key")?;
        let signer = r.node_id()?;
        let len = u32::from_le_bytes(r.array()?) as usize;
        if len > MAX_ROSTER_BYTES {
            return Err(WireError::Length("new network key").into());
        }
        let roster = r.take(len)?.to_vec();
        let count = u16::from_le_bytes(r.array()?) as usize;
        if count > MAX_REKEY_RECIPIENTS {
            return Err(WireError::Length("new network key").into());
        }
        let mut keys = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            keys.push(SealedKey {
                node: r.node_id()?,
                ephemeral: r.array()?,
                nonce: r.array()?,
                sealed_key: r.array()?,
            });
        }
        let signature = r.array()?;
        r.end()?;
        Ok((Rekey { signer, roster, keys }, signature))
    }

    pub fn verify(&self, signature: &[u8; 64], signer: &NodePublic) -> Result<(), JoinError> {
        if signer.node_id() != self.signer {
            return Err(JoinError::BadSignature);
        }
        let key = VerifyingKey::from_bytes(&signer.ed25519).map_err(|_| JoinError::BadSignature)?;
        key.verify(&self.body(), &Signature::from_bytes(signature)).map_err(|_| JoinError::BadSignature)
    }

    /// This node's copy of the new key, if it has one.
    pub fn open(&self, me: &NodeSecrets) -> Result<NetworkKey, JoinError> {
        self.keys.iter().find(|k| k.node == me.node_id()).ok_or(JoinError::Unseal)?.open(me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(seed: u8) -> NodeSecrets {
        NodeSecrets::from_seeds([seed; 32], [seed ^ 0x55; 32])
    }

    #[test]
    fn the_whole_exchange_works_and_each_forgery_fails() {
        let (n, m, outsider) = (node(1), node(2), node(3));
        let request = JoinRequest {
            node: n.public(),
            join_secret: [9; 32],
            loopback_port: 4242,
            created_ms: 1,
            device_name: "phone".into(),
        };
        let wire = request.encode(&n);
        assert_eq!(JoinRequest::decode(&wire).unwrap(), request);
        // A request claiming N's key but signed by someone else.
        assert_eq!(JoinRequest::decode(&request.encode(&outsider)), Err(JoinError::BadSignature));

        let approval = Approval::new(m.node_id(), n.node_id(), "t0ken", "abcd-efgh", 100);
        let wire = approval.encode(&request.join_secret);
        let seen = Approval::decode(&wire, &request.join_secret).unwrap();
        // An outsider's approval, made without the join secret.
        assert_eq!(
            Approval::decode(&approval.encode(&[0; 32]), &request.join_secret),
            Err(JoinError::BadProof("approval"))
        );
        let key = seen.accepts("ABCD EFGH").expect("the code opens it");
        assert!(seen.accepts("zzzz-zzzz").is_none());

        let proof = JoinProof { node: n.node_id(), member: m.node_id() };
        let (back, tag) = JoinProof::decode(&proof.encode(&key)).unwrap();
        assert_eq!(back.verify(&tag, &[approval_key("t0ken"), approval_key("abcd-efgh")]), Some(key));
        let (_, forged) = JoinProof::decode(&proof.encode(&approval_key("guess"))).unwrap();
        assert_eq!(back.verify(&forged, &[approval_key("t0ken"), approval_key("abcd-efgh")]), None);

        let nk = NetworkKey::from_bytes([7; 32]);
        let welcome = Welcome::new(&n.public(), m.node_id(), b"roster".to_vec(), &nk, [5; 32], [6; 24]);
        let wire = welcome.encode(&key);
        let got = Welcome::decode(&wire, &key).unwrap();
        assert_eq!(got.open(&n).unwrap(), nk);
        assert_eq!(got.open(&outsider), Err(JoinError::Unseal));
        assert_eq!(Welcome::decode(&welcome.encode(&approval_key("guess")), &key), Err(JoinError::BadProof("welcome")));
    }

    #[test]
    fn a_rekey_reaches_only_its_recipients_and_only_from_its_signer() {
        let (a, b, removed) = (node(1), node(2), node(3));
        let nk = NetworkKey::from_bytes([8; 32]);
        let rekey = Rekey {
            signer: a.node_id(),
            roster: b"roster".to_vec(),
            keys: vec![
                SealedKey::seal(&a.public(), &nk, [1; 32], [1; 24]),
                SealedKey::seal(&b.public(), &nk, [2; 32], [2; 24]),
            ],
        };
        let (back, signature) = Rekey::decode(&rekey.encode(&a)).unwrap();
        back.verify(&signature, &a.public()).unwrap();
        assert_eq!(back.open(&b).unwrap(), nk);
        assert_eq!(back.open(&removed), Err(JoinError::Unseal));
        let (forged, signature) = Rekey::decode(&rekey.encode(&removed)).unwrap();
        assert_eq!(forged.verify(&signature, &a.public()), Err(JoinError::BadSignature));
    }

    proptest! {
        #[test]
        fn join_requests_round_trip(secret in any::<[u8; 32]>(), port in any::<u16>(), t in any::<u64>(), name in "[a-z]{0,30}") {
            let n = node(4);
            let request = JoinRequest { node: n.public(), join_secret: secret, loopback_port: port, created_ms: t, device_name: name };
            prop_assert_eq!(JoinRequest::decode(&request.encode(&n)).unwrap(), request);
        }

        #[test]
        fn welcomes_round_trip(roster in proptest::collection::vec(any::<u8>(), 0..300), key in any::<[u8; 32]>()) {
            let w = Welcome::new(&node(1).public(), node(2).node_id(), roster, &NetworkKey::from_bytes([1; 32]), [2; 32], [3; 24]);
            prop_assert_eq!(Welcome::decode(&w.encode(&key), &key).unwrap(), w);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = JoinRequest::decode(&bytes);
            let _ = Approval::decode(&bytes, &[0; 32]);
            let _ = JoinProof::decode(&bytes);
            let _ = Welcome::decode(&bytes, &[0; 32]);
            let _ = Rekey::decode(&bytes);
        }
    }
}
