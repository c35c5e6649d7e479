//! Node identity: key pairs, node ids, fingerprints and the key file.
//!
//! A node is an Ed25519 signing key (for signatures on roster entries and
//! signaling) plus an X25519 key (for boxes sealed to the node). The node id
//! is derived from the Ed25519 public key only, so it never changes while the
//! node exists. Both secrets come from the caller as seeds: this module never
//! draws randomness itself.
//!
//! Data flow: the host draws two 32-byte seeds on first start, builds a
//! [`NodeSecrets`], stores [`NodeSecrets::encode`] in a mode-0600 file and
//! later restores it with [`NodeSecrets::decode`]. Anyone holding the public
//! key computes the same [`NodeId`] with [`NodeId::from_public_key`].

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use thiserror::Error;
use x25519_dalek::{PublicKey as XPublicKey, StaticSecret};

/// Length in bytes of a node id (160 bits: plenty against collisions among
/// one person's devices and the people on one LAN, yet short to read aloud).
pub const NODE_ID_LEN: usize = 20;

/// Domain separation for the node id hash, so the digest of a public key
/// computed here can never be confused with any other BLAKE3 use.
const NODE_ID_CONTEXT: &str = "mailmesh 2026-11 node id v1";

/// A node's identifier: a BLAKE3 digest of its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; NODE_ID_LEN]);

impl NodeId {
    /// Derives the node id from an Ed25519 public key.
    pub fn from_public_key(ed25519_public: &[u8; 32]) -> NodeId {
        let digest = blake3::derive_key(NODE_ID_CONTEXT, ed25519_public);
        let mut id = [0u8; NODE_ID_LEN];
        id.copy_from_slice(&digest[..NODE_ID_LEN]);
        NodeId(id)
    }

    /// Like [`NodeId::from_public_key`], for a key of unchecked length that
    /// came from outside (JSON, JavaScript).
    pub fn from_public_key_slice(bytes: &[u8]) -> Result<NodeId, IdentityError> {
        let key: &[u8; 32] = bytes.try_into().map_err(|_| IdentityError::PublicKeyLength(bytes.len()))?;
        Ok(NodeId::from_public_key(key))
    }

    pub fn as_bytes(&self) -> &[u8; NODE_ID_LEN] {
        &self.0
    }

    pub fn from_bytes(bytes: [u8; NODE_ID_LEN]) -> NodeId {
        NodeId(bytes)
    }

    /// The fingerprint shown to people: the id in lowercase base32, in
    /// groups of four separated by dashes (`k4pq-7x2m-…`), so it can be
    /// compared by eye between two screens or read over the phone.
    pub fn fingerprint(&self) -> String {
        let text = self.to_string();
        let groups: Vec<&str> = text.as_bytes().chunks(4).map(|g| std::str::from_utf8(g).unwrap_or_default()).collect();
        groups.join("-")
    }
}

impl fmt::Display for NodeId {
    /// Lowercase base32 without padding: 32 characters for 20 bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl std::str::FromStr for NodeId {
    type Err = IdentityError;

    /// Parses the form [`fmt::Display`] writes; dashes (as in a
    /// fingerprint) and case are ignored.
    fn from_str(text: &str) -> Result<NodeId, IdentityError> {
        let compact: String = text.chars().filter(|c| *c != '-').collect::<String>().to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD.decode(compact.as_bytes()).map_err(|_| IdentityError::NodeIdText)?;
        let bytes: [u8; NODE_ID_LEN] = bytes.try_into().map_err(|_| IdentityError::NodeIdText)?;
        Ok(NodeId(bytes))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// The public half of a node's identity, safe to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePublic {
    pub ed25519: [u8; 32],
    pub x25519: [u8; 32],
}

impl NodePublic {
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.ed25519)
    }
}

/// Both secret keys of a node. `Debug` is deliberately not derived so that a
/// stray `{:?}` can never print a secret into a log.
#[derive(Clone)]
pub struct NodeSecrets {
    signing: SigningKey,
    agreement: StaticSecret,
}

/// Magic bytes at the start of a key file ("MailMesh Node Key").
const KEY_FILE_MAGIC: &[u8; 4] = b"MMNK";
/// Current version of the key file layout.
pub const KEY_FILE_VERSION: u8 = 1;
/// magic + version + Ed25519 seed + X25519 secret.
const KEY_FILE_LEN: usize = 4 + 1 + 32 + 32;

impl NodeSecrets {
    /// Builds the secrets from two caller-supplied 32-byte random seeds.
    pub fn from_seeds(ed25519_seed: [u8; 32], x25519_secret: [u8; 32]) -> NodeSecrets {
        NodeSecrets { signing: SigningKey::from_bytes(&ed25519_seed), agreement: StaticSecret::from(x25519_secret) }
    }

    pub fn public(&self) -> NodePublic {
        NodePublic {
            ed25519: VerifyingKey::from(&self.signing).to_bytes(),
            x25519: XPublicKey::from(&self.agreement).to_bytes(),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.public().node_id()
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn agreement_secret(&self) -> &StaticSecret {
        &self.agreement
    }

    /// Serializes the key file: `MMNK`, version byte, Ed25519 seed, X25519
    /// secret. The caller is responsible for writing it with mode 0600.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_FILE_LEN);
        out.extend_from_slice(KEY_FILE_MAGIC);
        out.push(KEY_FILE_VERSION);
        out.extend_from_slice(&self.signing.to_bytes());
        out.extend_from_slice(&self.agreement.to_bytes());
        out
    }

    /// Parses a key file written by [`NodeSecrets::encode`].
    pub fn decode(bytes: &[u8]) -> Result<NodeSecrets, IdentityError> {
        if bytes.len() < 5 {
            return Err(IdentityError::KeyFileTruncated(bytes.len()));
        }
        if &bytes[..4] != KEY_FILE_MAGIC {
            return Err(IdentityError::KeyFileMagic);
        }
        if bytes[4] != KEY_FILE_VERSION {
            return Err(IdentityError::KeyFileVersion(bytes[4]));
        }
        if bytes.len() != KEY_FILE_LEN {
            return Err(IdentityError::KeyFileTruncated(bytes.len()));
        }
        let mut ed = [0u8; 32];
        let mut x = [0u8; 32];
        ed.copy_from_slice(&bytes[5..37]);
        x.copy_from_slice(&bytes[37..69]);
        Ok(NodeSecrets::from_seeds(ed, x))
    }
}

/// What can be wrong with identity material that came from outside.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("not a node id (32 characters of base32)")]
    NodeIdText,
    #[error("a public key must be 32 bytes long, this one has {0}")]
    PublicKeyLength(usize),
    #[error("the key file is not a mailmesh key file (wrong magic bytes)")]
    KeyFileMagic,
    #[error("the key file has version {0}, which this mailmesh does not know; update mailmesh")]
    KeyFileVersion(u8),
    #[error("the key file is damaged: it has {0} bytes instead of {KEY_FILE_LEN}")]
    KeyFileTruncated(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fingerprint_is_grouped_base32() {
        let id = NodeSecrets::from_seeds([7; 32], [9; 32]).node_id();
        let fp = id.fingerprint();
        assert_eq!(fp.len(), 32 + 7);
        assert_eq!(fp.replace('-', ""), id.to_string());
        assert!(fp.chars().all(|c| c == '-' || c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
    }

    #[test]
    fn node_id_depends_only_on_the_signing_key() {
        let a = NodeSecrets::from_seeds([1; 32], [2; 32]);
        let b = NodeSecrets::from_seeds([1; 32], [3; 32]);
        let c = NodeSecrets::from_seeds([4; 32], [2; 32]);
        assert_eq!(a.node_id(), b.node_id());
        assert_ne!(a.node_id(), c.node_id());
    }

    #[test]
    fn key_file_rejects_damage() {
        let good = NodeSecrets::from_seeds([5; 32], [6; 32]).encode();
        assert_eq!(NodeSecrets::decode(&good[..10]).err(), Some(IdentityError::KeyFileTruncated(10)));
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        assert_eq!(NodeSecrets::decode(&wrong_magic).err(), Some(IdentityError::KeyFileMagic));
        let mut newer = good.clone();
        newer[4] = 2;
        assert_eq!(NodeSecrets::decode(&newer).err(), Some(IdentityError::KeyFileVersion(2)));
        let mut long = good;
        long.push(0);
        assert!(NodeSecrets::decode(&long).is_err());
    }

    #[test]
    fn public_key_length_is_checked() {
        assert_eq!(NodeId::from_public_key_slice(&[0; 31]).err(), Some(IdentityError::PublicKeyLength(31)));
    }

    proptest! {
        #[test]
        fn node_ids_round_trip_through_text(bytes in any::<[u8; NODE_ID_LEN]>()) {
            let id = NodeId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
            prop_assert_eq!(id.fingerprint().to_uppercase().parse::<NodeId>(), Ok(id));
        }

        #[test]
        fn key_file_round_trips(ed in any::<[u8; 32]>(), x in any::<[u8; 32]>()) {
            let secrets = NodeSecrets::from_seeds(ed, x);
            let restored = NodeSecrets::decode(&secrets.encode()).expect("decodes");
            prop_assert_eq!(restored.public(), secrets.public());
            prop_assert_eq!(restored.encode(), secrets.encode());
        }

        #[test]
        fn key_file_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = NodeSecrets::decode(&bytes);
        }
    }
}
