//! Joining an existing network through the mailbox: the state each side
//! keeps between mails. The messages and their proofs are
//! `mailmesh_core::join`'s; this module stores them (JSON, versioned, mode
//! 0600, secrets included, which is why it is private) and says what to do
//! next.

use std::fs;
use std::io;
use std::path::PathBuf;

use mailmesh_core::identity::{NodeId, NodePublic};
use mailmesh_core::join::{Approval, JoinRequest};
use serde::{Deserialize, Serialize};

use crate::home::{write_private, NodeHome};

pub const STATE_VERSION: u32 = 1;
/// How long a member's approval stays usable: long, because the new node
/// and the member may not be online at the same time.
pub const APPROVAL_TTL_MS: u64 = 24 * 60 * 60 * 1000;

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// The new node's side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Joining {
    pub version: u32,
    /// The signed join request as mailed (hex).
    pub request: String,
    /// Approvals seen in the mailbox that carry our join secret (hex).
    #[serde(default)]
    pub approvals: Vec<String>,
    /// The approval the owner confirmed here: member id and approval key.
    #[serde(default)]
    pub confirmed: Option<(String, String)>,
}

impl Joining {
    pub fn request(&self) -> Option<JoinRequest> {
        JoinRequest::decode(&hex::decode(&self.request).ok()?).ok()
    }

    pub fn approvals(&self) -> Vec<Approval> {
        let Some(secret) = self.request().map(|r| r.join_secret) else { return Vec::new() };
        self.approvals.iter().filter_map(|a| Approval::decode(&hex::decode(a).ok()?, &secret).ok()).collect()
    }

    pub fn confirmed_key(&self) -> Option<[u8; 32]> {
        self.confirmed.as_ref().and_then(|(_, key)| hex32(key))
    }
}

/// One approval a member issued, with its secrets (they are needed to check
/// the proof and key the welcome).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Issued {
    pub node_ed25519: String,
    pub node_x25519: String,
    pub device_name: String,
    pub token: String,
    pub code: String,
    pub expires_ms: u64,
    pub welcomed: bool,
}

impl Issued {
    pub fn node(&self) -> Option<NodePublic> {
        Some(NodePublic { ed25519: hex32(&self.node_ed25519)?, x25519: hex32(&self.node_x25519)? })
    }

    pub fn node_id(&self) -> Option<NodeId> {
        self.node().map(|n| n.node_id())
    }
}

/// The member's side: every approval it issued.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Issuer {
    pub version: u32,
    pub issued: Vec<Issued>,
}

/// A removal this member asked the owner to confirm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Removal {
    pub version: u32,
    pub node_id: String,
    /// `mailmesh_core::confirm::PendingConfirmation`, encoded (hex).
    pub pending: String,
}

fn removal_file(home: &NodeHome) -> PathBuf {
    home.root().join("removal.json")
}

pub fn load_removal(home: &NodeHome) -> io::Result<Option<Removal>> {
    load(removal_file(home))
}

pub fn save_removal(home: &NodeHome, removal: &Removal) -> io::Result<()> {
    save(removal_file(home), removal)
}

pub fn remove_removal(home: &NodeHome) {
    let _ = fs::remove_file(removal_file(home));
}

fn join_file(home: &NodeHome) -> PathBuf {
    home.root().join("join.json")
}

fn issuer_file(home: &NodeHome) -> PathBuf {
    home.root().join("approvals.json")
}

fn load<T: for<'de> Deserialize<'de>>(path: PathBuf) -> io::Result<Option<T>> {
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn save<T: Serialize>(path: PathBuf, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_private(&path, &bytes, 0o600)
}

pub fn load_joining(home: &NodeHome) -> io::Result<Option<Joining>> {
    load(join_file(home))
}

pub fn save_joining(home: &NodeHome, joining: &Joining) -> io::Result<()> {
    save(join_file(home), joining)
}

pub fn remove_joining(home: &NodeHome) {
    let _ = fs::remove_file(join_file(home));
}

pub fn load_issuer(home: &NodeHome) -> io::Result<Issuer> {
    Ok(load(issuer_file(home))?.unwrap_or(Issuer { version: STATE_VERSION, issued: Vec::new() }))
}

pub fn save_issuer(home: &NodeHome, issuer: &Issuer) -> io::Result<()> {
    save(issuer_file(home), issuer)
}
