//! The views clients are shown: what `status`, `files_list`, `people_list`,
//! `chat_*`, `calls_list` and `send_list` answer with. Plain data, built by
//! the services that own the state behind them.

use serde::{Deserialize, Serialize};

use super::account::Server;

/// A file as clients see it (`mailmesh files list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub blake3: String,
    pub media_type: String,
    /// What a person calls it: `image`, `pdf`, `document`, `spreadsheet`,
    /// `presentation`, `text`, `audio`, `video`, `archive`, `mail` or
    /// `other` (from the media type and the name).
    #[serde(default)]
    pub kind: String,
    pub added_ms: u64,
    pub origin: Option<Origin>,
    pub health: Health,
}

/// Which files, in what order, which page (`files_search`). Every filter
/// given must match; text is matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileQuery {
    /// In the name, the sender or the subject of the mail it came from.
    #[serde(default)]
    pub text: Option<String>,
    /// In the sender's address.
    #[serde(default)]
    pub from: Option<String>,
    /// A [`FileView::kind`].
    #[serde(default)]
    pub kind: Option<String>,
    /// The file's date (the mail's, else when it was added), ms since the
    /// epoch, from (inclusive) and until (exclusive).
    #[serde(default)]
    pub since_ms: Option<u64>,
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// `date` (newest first), `name` (A to Z) or `size` (largest first).
    #[serde(default)]
    pub sort: Option<String>,
    /// The other way round.
    #[serde(default)]
    pub reverse: bool,
    #[serde(default)]
    pub offset: usize,
    /// At most this many (all if none).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Fragments present vs needed, over the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `full` (every fragment present), `degraded` (readable, some lost) or
    /// `unreadable` (some chunk has fewer than k fragments).
    pub state: String,
    pub fragments_present: usize,
    pub fragments_total: usize,
    /// Fragments each chunk needs (k).
    pub needed_per_chunk: usize,
}

/// Where an imported file came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub message_id: String,
    pub from: String,
    pub subject: String,
    /// RFC 3339, as the mail's `Date` says.
    pub date: String,
}

/// One row of `mailmesh status --json` → `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub id: String,
    pub fingerprint: String,
    pub name: String,
    pub email: String,
    /// In the owner's network (proved the network key and is in the roster).
    pub member: bool,
    /// Another person's node that answered our email challenge (set by the
    /// engine from its contact book; always false for members).
    #[serde(default)]
    pub verified: bool,
    pub online: bool,
    /// Unix milliseconds of the last sign of life; `None` if never seen.
    pub last_seen: Option<u64>,
    pub rtt_ms: Option<u32>,
    pub path: Option<PeerPath>,
}

/// How one peer is reached right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerPath {
    /// A WebRTC data channel between the two browsers.
    Webrtc,
    /// Through the two engines' LAN link (no data channel could be made).
    Relay,
}

/// One person as `people_list` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonView {
    pub email: String,
    pub name: String,
    pub blocked: bool,
    /// `verified` (some node verified, none new), `warning` (a node appeared
    /// beside verified ones), `pending` (a challenge is out) or `unverified`.
    pub state: String,
    pub devices: Vec<DeviceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub node_id: String,
    pub fingerprint: String,
    /// `verified`, `pending` or `unverified`.
    pub trust: String,
    pub online: bool,
}

/// One message with what its author's side knows of its fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub author: String,
    pub sent_at: u64,
    /// `text`, or `members` for a change of a group's members.
    pub kind: String,
    pub text: String,
    /// Whether the sender's node was verified when the message arrived
    /// (always true for our own).
    pub verified: bool,
    /// Addresses it has not reached yet.
    pub pending: Vec<String>,
    pub delivered: Vec<String>,
    pub read: Vec<String>,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: String,
    /// `direct`, `group`, or `request` (messages from a node nobody verified,
    /// kept apart until its sender is verified; its id is `request:ADDRESS`).
    pub kind: String,
    pub title: String,
    /// Everyone in it, us included.
    pub members: Vec<String>,
    pub unread: u32,
    pub last_at: u64,
    pub last_text: String,
}

/// A conversation with its messages, as `chat_show` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationView,
    /// The newest messages, oldest first.
    pub messages: Vec<MessageView>,
    /// How many older messages this page leaves out.
    #[serde(default)]
    pub earlier: u32,
}

/// A room as this engine knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub room: String,
    pub title: String,
    /// Everyone invited, us included.
    pub members: Vec<String>,
    pub invited_by: String,
    pub at: u64,
    /// Whether a call page of ours is in the room now.
    pub joined: bool,
}

/// One transfer as `send_list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub id: String,
    /// `out` (we send) or `in` (we receive).
    pub direction: String,
    pub peer: String,
    pub name: String,
    pub size: u64,
    /// Bytes the receiver holds, verified.
    pub done: u64,
    /// `offered`, `active`, `done`, `declined`, `cancelled` or `failed`.
    pub state: String,
    pub detail: String,
    pub rate_bps: u64,
    pub eta_secs: Option<u64>,
    pub saved_as: Option<String>,
}

/// What clients are shown of the enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMember {
    pub node_id: String,
    pub fingerprint: String,
    pub device_name: String,
    pub added_ms: u64,
    pub signed_by: String,
}

/// The outcome of one login check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// The outcome of both login checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChecks {
    pub imap: Check,
    pub smtp: Check,
}

/// The servers found for an address, to fill in for the owner (who can
/// still edit them). All None when nothing was found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServersFound {
    /// The provider's name ("Gmail"), when known.
    pub provider: Option<String>,
    pub imap: Option<Server>,
    pub smtp: Option<Server>,
    /// The login name, when it is not the address.
    #[serde(default)]
    pub user: Option<String>,
    /// Set when the provider signs in with OAuth 2 (the client id is the
    /// engine's to fill in).
    #[serde(default)]
    pub oauth: Option<crate::account::OAuth>,
    /// The provider takes no passwords at all, only OAuth 2.
    #[serde(default)]
    pub oauth_only: bool,
    /// Where the servers came from, in words ("mailmesh's list of
    /// providers", "the SRV records of example.org", …).
    #[serde(default)]
    pub source: Option<String>,
    /// What the provider wants instead of the account password.
    pub advice: Option<String>,
}

/// Where this node stands in joining the owner's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    /// `none`, `awaiting_confirmation` or `enrolled`.
    pub state: String,
    pub email: Option<String>,
    pub network_id: Option<String>,
    /// The networks whose rosters setup found in the mailbox (anyone can
    /// mail one): shown so the owner can tell theirs, or make a new one.
    #[serde(default)]
    pub networks_found: Vec<NetworkFound>,
}

/// A network whose roster is in the owner's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFound {
    pub network_id: String,
    pub members: Vec<RosterMember>,
}

/// Everything the engine reports about itself (`mailmesh status --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub fingerprint: String,
    /// Ed25519 public key, lowercase hex.
    pub public_key: String,
    /// X25519 public key, lowercase hex.
    pub x25519_public_key: String,
    pub device_name: String,
    pub version: String,
    pub core_version: String,
    pub protocol: u32,
    pub home: String,
    pub engine_pid: u32,
    /// Unix seconds when this engine process started.
    pub started_at: u64,
    /// The loopback HTTP port (confirmation links).
    pub loopback_port: u16,
    pub account_email: Option<String>,
    pub enrolled: bool,
    /// `none`, `awaiting_confirmation` or `enrolled`.
    pub enrollment: String,
    pub network_id: Option<String>,
    /// A short non-secret name of the network key this node holds.
    pub network_key_id: Option<String>,
    /// The current members.
    pub roster: Vec<RosterMember>,
    /// The LAN port other engines link to.
    pub link_port: u16,
    /// Nodes on the LAN and the owner's devices, online or not.
    pub peers: Vec<PeerView>,
    /// Chat messages from others not read yet, in all conversations.
    #[serde(default)]
    pub chat_unread: u32,
    /// Devices that asked by mail to join, waiting for the owner to approve
    /// or decline them on this device.
    #[serde(default)]
    pub join_requests: Vec<JoinRequestView>,
    /// A device was removed: the mail password it knew should be changed
    /// (at the provider), then given here (`mailmesh account password`).
    #[serde(default)]
    pub change_password: bool,
    /// The account signs in with OAuth 2 and its sign-in expired or was
    /// revoked: the owner must sign in again.
    #[serde(default)]
    pub sign_in_again: bool,
    /// An OAuth 2 sign-in is under way (the browser has not come back).
    #[serde(default)]
    pub signing_in: bool,
    /// Why the last sign-in failed, until the next one starts.
    #[serde(default)]
    pub sign_in_failed: Option<String>,
    /// How the import of the mailbox's attachments stands (in a network).
    #[serde(default)]
    pub import: Option<ImportView>,
    /// While joining: the networks setup found in the mailbox.
    #[serde(default)]
    pub networks_found: Vec<NetworkFound>,
}

/// A device waiting to join the owner's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequestView {
    pub node_id: String,
    pub fingerprint: String,
    /// As the request names it, with nothing hidden in it.
    pub device_name: String,
    /// When the request arrived (ms since the epoch).
    pub requested_at: u64,
}

/// How the import of the mailbox stands. One of the owner's nodes imports
/// at a time; the others show its progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportView {
    /// `idle` (nothing left), `importing`, `waiting_for_devices` (just
    /// started: the others may be importing), `by_device` (another of the
    /// owner's devices imports), `paused_budget` (the day's download
    /// budget is spent), `paused_server` (the server is limiting the
    /// account).
    pub state: String,
    /// The node id of the device that imports, when it is another one.
    pub by_device: Option<String>,
    pub messages_done: u32,
    pub messages_total: u32,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// At the current rate; `None` until there is one.
    pub seconds_left: Option<u64>,
    /// When a paused import goes on (ms since the epoch).
    pub resumes_at_ms: Option<u64>,
    /// What the owner's devices fetched from the account today (UTC).
    pub today_bytes: u64,
    /// The daily download budget, if the account has one.
    pub budget_bytes_per_day: Option<u64>,
}

/// What to change of how the mail import behaves; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSettingsChange {
    /// The daily download budget in MB for all devices together; `0`:
    /// none.
    #[serde(default)]
    pub budget_mb: Option<u64>,
    /// The folders whose attachments are imported.
    #[serde(default)]
    pub folders: Option<Vec<String>>,
    /// `YYYY-MM-DD`: mail that arrived before is not imported; `""`: all.
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub max_attachment_mb: Option<u64>,
    /// Inline images under this size are not imported; `0`: all are.
    #[serde(default)]
    pub inline_images_under_kb: Option<u64>,
}

/// How the mail import behaves (`config.json`, `mailmesh mail settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSettingsView {
    pub folders: Vec<String>,
    /// `YYYY-MM-DD`, if mail before that day is passed over.
    pub since: Option<String>,
    pub max_attachment_bytes: u64,
    pub inline_images_under_bytes: u64,
    /// The daily download budget in bytes, all devices together.
    pub budget_bytes_per_day: Option<u64>,
    /// Where the budget comes from: `config` (the owner's), `provider`
    /// (the provider's published limit, less a share for the owner's own
    /// mail client) or `none`.
    pub budget_source: String,
}
