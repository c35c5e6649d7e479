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
    /// Join requests waiting for the owner to approve them on a member
    /// device (anyone who can mail the owner can send one).
    #[serde(default)]
    pub requests: Vec<PendingJoin>,
}

/// A join request as it arrived, until the owner approves or declines it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingJoin {
    /// The signed request as mailed (hex).
    pub request: String,
    pub received_ms: u64,
}

impl PendingJoin {
    pub fn request(&self) -> Option<JoinRequest> {
        JoinRequest::decode(&hex::decode(&self.request).ok()?).ok()
    }
}

/// Join requests kept waiting for the owner, the oldest dropped first.
pub const MAX_PENDING_JOINS: usize = 8;
/// Approvals one member mails in an hour, and open (not yet welcomed, not
/// expired) at once: every approval is a mail from the owner's account.
pub const MAX_APPROVALS_PER_HOUR: usize = 5;
pub const MAX_OPEN_APPROVALS: usize = 8;
const HOUR_MS: u64 = 60 * 60 * 1000;

/// Why an approval was not mailed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApproveError {
    #[error("no device with id {0} is waiting to join")]
    NoRequest(String),
    #[error("{MAX_APPROVALS_PER_HOUR} devices were approved in the last hour; wait a while before approving another")]
    TooManyThisHour,
    #[error("{MAX_OPEN_APPROVALS} approvals are still open; finish or let them expire (24 hours) first")]
    TooManyOpen,
}

impl Issuer {
    /// Forgets what expired: requests and unfinished approvals older than
    /// [`APPROVAL_TTL_MS`], and finished ones past the hour that counts them.
    pub fn prune(&mut self, now_ms: u64) {
        self.requests.retain(|r| r.received_ms.saturating_add(APPROVAL_TTL_MS) > now_ms);
        self.issued.retain(|i| {
            let issued_ms = i.expires_ms.saturating_sub(APPROVAL_TTL_MS);
            if i.welcomed {
                issued_ms.saturating_add(HOUR_MS) > now_ms
            } else {
                i.expires_ms > now_ms
            }
        });
    }

    /// Keeps a join request for the owner to decide on; false if that device
    /// already waits or was approved.
    pub fn hold(&mut self, request: &JoinRequest, encoded: &[u8], now_ms: u64) -> bool {
        self.prune(now_ms);
        let node = request.node.node_id();
        let waiting = self.requests.iter().any(|r| r.request().is_some_and(|q| q.node.node_id() == node));
        if waiting || self.issued.iter().any(|i| i.node_id() == Some(node)) {
            return false;
        }
        if self.requests.len() >= MAX_PENDING_JOINS {
            self.requests.remove(0);
        }
        self.requests.push(PendingJoin { request: hex::encode(encoded), received_ms: now_ms });
        true
    }

    /// The waiting request of `node`, if the bounds allow one more approval.
    pub fn approvable(&mut self, node: &NodeId, now_ms: u64) -> Result<JoinRequest, ApproveError> {
        self.prune(now_ms);
        let request = self
            .requests
            .iter()
            .filter_map(PendingJoin::request)
            .find(|r| r.node.node_id() == *node)
            .ok_or_else(|| ApproveError::NoRequest(node.to_string()))?;
        let this_hour = self
            .issued
            .iter()
            .filter(|i| i.expires_ms.saturating_sub(APPROVAL_TTL_MS).saturating_add(HOUR_MS) > now_ms)
            .count();
        if this_hour >= MAX_APPROVALS_PER_HOUR {
            return Err(ApproveError::TooManyThisHour);
        }
        if self.issued.iter().filter(|i| !i.welcomed).count() >= MAX_OPEN_APPROVALS {
            return Err(ApproveError::TooManyOpen);
        }
        Ok(request)
    }

    /// Forgets the waiting request of `node` (approved, declined, or in the
    /// roster now).
    pub fn drop_request(&mut self, node: &NodeId) -> bool {
        let before = self.requests.len();
        self.requests.retain(|r| r.request().is_none_or(|q| q.node.node_id() != *node));
        self.requests.len() != before
    }
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
    Ok(load(issuer_file(home))?.unwrap_or(Issuer { version: STATE_VERSION, issued: Vec::new(), requests: Vec::new() }))
}

pub fn save_issuer(home: &NodeHome, issuer: &Issuer) -> io::Result<()> {
    save(issuer_file(home), issuer)
}

#[cfg(test)]
mod tests {
    use mailmesh_core::identity::NodeSecrets;

    use super::*;

    fn request(seed: u8) -> (JoinRequest, Vec<u8>) {
        let node = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
        let request = JoinRequest {
            node: node.public(),
            join_secret: [seed; 32],
            loopback_port: 1,
            created_ms: 0,
            device_name: format!("device {seed}"),
        };
        let encoded = request.encode(&node);
        (request, encoded)
    }

    fn issue(issuer: &mut Issuer, request: &JoinRequest, now_ms: u64) {
        issuer.drop_request(&request.node.node_id());
        issuer.issued.push(Issued {
            node_ed25519: hex::encode(request.node.ed25519),
            node_x25519: hex::encode(request.node.x25519),
            device_name: request.device_name.clone(),
            token: String::new(),
            code: String::new(),
            expires_ms: now_ms + APPROVAL_TTL_MS,
            welcomed: false,
        });
    }

    #[test]
    fn forged_requests_wait_in_a_bounded_list_and_expire() {
        let mut issuer = Issuer { version: STATE_VERSION, issued: Vec::new(), requests: Vec::new() };
        for seed in 0..100 {
            let (request, encoded) = request(seed);
            issuer.hold(&request, &encoded, 1_000);
        }
        assert_eq!(issuer.requests.len(), MAX_PENDING_JOINS, "the newest few wait");
        let (again, encoded) = request(99);
        assert!(!issuer.hold(&again, &encoded, 1_001), "one device waits once");
        issuer.prune(1_000 + APPROVAL_TTL_MS);
        assert!(issuer.requests.is_empty(), "a day later they are gone");
    }

    #[test]
    fn approvals_are_bounded_per_hour_and_open_at_once() {
        let mut issuer = Issuer { version: STATE_VERSION, issued: Vec::new(), requests: Vec::new() };
        let now = 10 * HOUR_MS;
        for seed in 0..=MAX_APPROVALS_PER_HOUR as u8 {
            let (request, encoded) = request(seed);
            issuer.hold(&request, &encoded, now);
        }
        for seed in 0..MAX_APPROVALS_PER_HOUR as u8 {
            let (request, _) = request(seed);
            let approvable = issuer.approvable(&request.node.node_id(), now).unwrap();
            issue(&mut issuer, &approvable, now);
        }
        let (last, _) = request(MAX_APPROVALS_PER_HOUR as u8);
        assert_eq!(issuer.approvable(&last.node.node_id(), now).unwrap_err(), ApproveError::TooManyThisHour);
        assert!(issuer.approvable(&last.node.node_id(), now + HOUR_MS).is_ok(), "an hour later it goes");
        let (stranger, _) = request(200);
        assert!(matches!(issuer.approvable(&stranger.node.node_id(), now), Err(ApproveError::NoRequest(_))));
        issuer.prune(now + APPROVAL_TTL_MS);
        assert!(issuer.issued.is_empty(), "unfinished approvals expire and are forgotten");
    }
}
