//! Bringing this node into the owner's network.
//!
//! First node: the engine mails the owner a link to its loopback confirm
//! endpoint and a short code ([`start_confirmation`]); opening the link or
//! typing the code ([`Enrollment::confirm`]) creates the network key and the
//! roster with this node as its genesis member. The confirmation rules
//! (single use, expiry, attempts) are `mailmesh_core::confirm`'s; this
//! module keeps the state on disk and writes the mail.
//!
//! Files in the home, all mode 0600: `confirmation.bin` while waiting,
//! then `network.key` and `roster.bin`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::Message;
use mailmesh_core::confirm::{code_text, token_text, ConfirmError, PendingConfirmation, DEFAULT_TTL_MS};
use mailmesh_core::drive::NetworkKey;
use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::roster::{Roster, RosterError};
use mailmesh_core::rotation::KeyRotation;
use thiserror::Error;

use crate::api::Account;
use crate::api::RosterMember;
use crate::home::{write_private, NodeHome};
use crate::joining::{load_joining, Joining};
use crate::mail::smtp::owner_mailbox;
use crate::mail::MailError;

#[derive(Debug, Error)]
pub enum EnrollError {
    #[error(transparent)]
    Confirm(#[from] ConfirmError),
    #[error("no confirmation is pending; save the mail account first (onboarding page or `mailmesh init`)")]
    NothingPending,
    #[error("this node is already confirmed")]
    AlreadyEnrolled,
    #[error("the stored roster is not valid: {0}")]
    Roster(#[from] RosterError),
    #[error("this node is not on its own roster")]
    NotOnRoster,
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} is damaged")]
    Corrupt(PathBuf),
    #[error("the operating system gave no randomness: {0}")]
    Random(String),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// The owner's network as this node knows it.
pub struct Network {
    pub key: NetworkKey,
    pub roster: Roster,
}

pub enum Enrollment {
    /// No account saved, or saved but not yet asked to confirm.
    None,
    /// First node, waiting for the owner to confirm it.
    Pending(PendingConfirmation),
    /// Joining an existing network through the mailbox.
    Joining(Joining),
    Enrolled(Network),
    /// Removed from the network by the owner: holds nothing secret any more.
    Removed(Roster),
}

fn files(home: &NodeHome) -> (PathBuf, PathBuf, PathBuf) {
    (home.root().join("confirmation.bin"), home.root().join("network.key"), home.root().join("roster.bin"))
}

fn rotation_file(home: &NodeHome) -> PathBuf {
    home.root().join("rotation.bin")
}

/// Saves a key rotation before any of it is done (see `mailmesh_core::rotation`).
pub fn save_rotation(home: &NodeHome, rotation: &KeyRotation) -> Result<(), EnrollError> {
    write(&rotation_file(home), &rotation.encode())
}

/// The key rotation under way, if any.
pub fn load_rotation(home: &NodeHome) -> Result<Option<KeyRotation>, EnrollError> {
    let path = rotation_file(home);
    let Some(bytes) = read_optional(&path)? else { return Ok(None) };
    KeyRotation::decode(&bytes).map(Some).map_err(|_| EnrollError::Corrupt(path))
}

/// The rotation is over: every record is under the new key and the rekey is mailed.
pub fn remove_rotation(home: &NodeHome) -> Result<(), EnrollError> {
    let path = rotation_file(home);
    match fs::remove_file(&path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(EnrollError::Io { path, source }),
        _ => Ok(()),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, EnrollError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EnrollError::Io { path: path.to_path_buf(), source }),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), EnrollError> {
    write_private(path, bytes, 0o600).map_err(|source| EnrollError::Io { path: path.to_path_buf(), source })
}

impl Enrollment {
    pub fn load(home: &NodeHome, me: &NodeSecrets) -> Result<Enrollment, EnrollError> {
        let (pending, key, roster) = files(home);
        if read_optional(&key)?.is_none() {
            if let Some(bytes) = read_optional(&roster)? {
                let roster = Roster::decode(&bytes)?;
                if roster.verify().is_ok() && roster.was_removed(&me.node_id()) {
                    return Ok(Enrollment::Removed(roster));
                }
            }
        }
        if let (Some(key), Some(roster_bytes)) = (read_optional(&key)?, read_optional(&roster)?) {
            let key: [u8; 32] = key.try_into().map_err(|_| EnrollError::Corrupt(files(home).1))?;
            let roster = Roster::decode(&roster_bytes)?;
            roster.verify()?;
            if !roster.contains(&me.node_id()) {
                return Err(EnrollError::NotOnRoster);
            }
            return Ok(Enrollment::Enrolled(Network { key: NetworkKey::from_bytes(key), roster }));
        }
        if let Some(joining) =
            load_joining(home).map_err(|source| EnrollError::Io { path: home.root().join("join.json"), source })?
        {
            return Ok(Enrollment::Joining(joining));
        }
        match read_optional(&pending)? {
            Some(bytes) => Ok(Enrollment::Pending(PendingConfirmation::decode(&bytes)?)),
            None => Ok(Enrollment::None),
        }
    }

    pub fn state(&self) -> &'static str {
        match self {
            Enrollment::None => "none",
            Enrollment::Pending(_) => "awaiting_confirmation",
            Enrollment::Joining(j) if j.confirmed.is_some() => "approved",
            Enrollment::Joining(_) => "awaiting_approval",
            Enrollment::Enrolled(_) => "enrolled",
            Enrollment::Removed(_) => "removed",
        }
    }

    pub fn network(&self) -> Option<&Network> {
        match self {
            Enrollment::Enrolled(n) => Some(n),
            _ => None,
        }
    }

    /// Checks a link token or a typed code; on success creates the network
    /// with this node as its first member. Every attempt is saved, so a
    /// restart does not reset the attempt count.
    pub fn confirm(
        &mut self,
        home: &NodeHome,
        me: &NodeSecrets,
        device_name: &str,
        proof: Proof<'_>,
        now_ms: u64,
    ) -> Result<(), EnrollError> {
        let pending = match self {
            Enrollment::Pending(p) => p,
            Enrollment::Enrolled(_) => return Err(EnrollError::AlreadyEnrolled),
            Enrollment::None | Enrollment::Joining(_) | Enrollment::Removed(_) => {
                return Err(EnrollError::NothingPending)
            }
        };
        let outcome = match proof {
            Proof::Token(t) => pending.confirm_token(t, now_ms),
            Proof::Code(c) => pending.confirm_code(c, now_ms),
        };
        let (pending_file, key_file, roster_file) = files(home);
        write(&pending_file, &pending.encode())?;
        outcome?;
        let network = Network {
            key: NetworkKey::from_bytes(crate::rng::bytes().map_err(|e| EnrollError::Random(e.to_string()))?),
            roster: Roster::genesis(me, device_name, now_ms)?,
        };
        write(&key_file, network.key.as_bytes())?;
        write(&roster_file, &network.roster.encode())?;
        let _ = fs::remove_file(pending_file);
        tracing::info!(network_id = %network.roster.network_id(), "this node is confirmed and created the network");
        *self = Enrollment::Enrolled(network);
        Ok(())
    }

    /// Adopts a network this node was welcomed into.
    pub fn adopt(&mut self, home: &NodeHome, network: Network) -> Result<(), EnrollError> {
        let (_, key_file, roster_file) = files(home);
        write(&key_file, network.key.as_bytes())?;
        write(&roster_file, &network.roster.encode())?;
        crate::joining::remove_joining(home);
        *self = Enrollment::Enrolled(network);
        Ok(())
    }

    /// This node was removed: forget the network key, keep the roster that
    /// says so.
    pub fn mark_removed(&mut self, home: &NodeHome, roster: Roster) -> Result<(), EnrollError> {
        let (_, key_file, roster_file) = files(home);
        write(&roster_file, &roster.encode())?;
        let _ = fs::remove_file(key_file);
        *self = Enrollment::Removed(roster);
        Ok(())
    }

    /// Commits a key rotation: the new key and roster, in memory and on
    /// disk. The rotation file stays until the caller has finished the rest
    /// (see `engine::node::removal`), so a crash in between repeats this.
    pub fn commit_rotation(&mut self, home: &NodeHome, key: NetworkKey, roster: Roster) -> Result<(), EnrollError> {
        let Enrollment::Enrolled(network) = self else { return Ok(()) };
        network.key = key;
        network.roster = roster;
        self.save_key(home)?;
        self.save_roster(home)
    }

    /// Stores a new network key (after a removal elsewhere).
    pub fn save_key(&self, home: &NodeHome) -> Result<(), EnrollError> {
        match self {
            Enrollment::Enrolled(n) => write(&files(home).1, n.key.as_bytes()),
            _ => Ok(()),
        }
    }

    /// Replaces the roster (after verifying the caller checked it extends ours).
    pub fn save_roster(&self, home: &NodeHome) -> Result<(), EnrollError> {
        match self {
            Enrollment::Enrolled(n) => write(&files(home).2, &n.roster.encode()),
            _ => Ok(()),
        }
    }

    pub fn roster_view(&self) -> Vec<RosterMember> {
        self.network().map(|n| roster_members(&n.roster)).unwrap_or_default()
    }
}

/// A roster's members as clients are shown them.
pub fn roster_members(roster: &Roster) -> Vec<RosterMember> {
    roster
        .members()
        .into_iter()
        .map(|e| RosterMember {
            node_id: e.node.node_id().to_string(),
            fingerprint: e.node.node_id().fingerprint(),
            device_name: mailmesh_core::names::visible(&e.device_name),
            added_ms: e.added_ms,
            signed_by: e.signer.to_string(),
        })
        .collect()
}

/// How the owner proved they read the confirmation mail.
pub enum Proof<'a> {
    Token(&'a str),
    Code(&'a str),
}

/// How long a confirmation stays valid (`MAILMESH_CONFIRM_TTL_SECS` to
/// shorten it in tests).
pub fn confirm_ttl_ms() -> u64 {
    std::env::var("MAILMESH_CONFIRM_TTL_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| s * 1000)
        .unwrap_or(DEFAULT_TTL_MS)
}

/// What goes into the confirmation mail.
pub struct ConfirmationMail<'a> {
    pub account: &'a Account,
    pub device_name: &'a str,
    pub fingerprint: &'a str,
    pub loopback_port: u16,
}

/// Makes a new confirmation and the mail that carries it. Nothing is stored
/// until the mail went out ([`save_pending`]).
pub fn start_confirmation(
    mail: ConfirmationMail<'_>,
    now_ms: u64,
) -> Result<(PendingConfirmation, Message), EnrollError> {
    let token = token_text(&crate::rng::bytes().map_err(|e| EnrollError::Random(e.to_string()))?);
    let code = code_text(&crate::rng::bytes().map_err(|e| EnrollError::Random(e.to_string()))?);
    let ttl = confirm_ttl_ms();
    let pending = PendingConfirmation::new(&token, &code, now_ms, ttl);
    let link = format!("http://127.0.0.1:{}/confirm/{token}", mail.loopback_port);
    let minutes = (ttl / 60_000).max(1);
    let body = format!(
        "Someone, hopefully you, set up mailmesh on the device \"{device}\" with this address.\n\n\
         To confirm it, open this link on that device:\n\n    {link}\n\n\
         or type this code in mailmesh there:\n\n    {code}\n\n\
         Device fingerprint: {fingerprint}\n\
         The link and the code work once, within {minutes} minutes.\n\n\
         If this was not you, ignore this mail: nothing happens without the link or the code.\n",
        device = mail.device_name,
        fingerprint = mail.fingerprint,
    );
    let owner = owner_mailbox(mail.account)?;
    let message = Message::builder()
        .from(owner.clone())
        .to(owner)
        .subject(format!("Confirm mailmesh on {}", mail.device_name))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Mailmesh"), "confirm/1".to_string()))
        .body(body)
        .map_err(|e| MailError::Protocol(e.to_string()))?;
    Ok((pending, message))
}

/// A plain-text mail from the owner to the owner.
pub fn plain_mail(account: &Account, subject: &str, body: String) -> Result<Message, MailError> {
    let owner = owner_mailbox(account)?;
    Message::builder()
        .from(owner.clone())
        .to(owner)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Protocol(e.to_string()))
}

/// Stores a confirmation whose mail was sent, replacing any earlier one.
pub fn save_pending(home: &NodeHome, pending: &PendingConfirmation) -> Result<(), EnrollError> {
    write(&files(home).0, &pending.encode())
}
