//! The typed JSON messages spoken on the control socket and, unchanged, over
//! native messaging. `extension/shared/messages/native.js` mirrors them.
//!
//! A request is an object with a `type` and an optional numeric `id`; the
//! reply carries the same `id`. Replies and events are objects with a
//! `type`. Anything that does not parse gets an [`Reply::Error`] with a
//! stable [`ErrorCode`] and a sentence for the user — never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::{Account, Secret};
use crate::drive::FileView;
use crate::enroll::RosterMember;
use crate::mesh::peers::PeerView;

/// Bumped when a message changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client may ask of the engine. Unknown fields are ignored so that
/// a newer extension can talk to an older engine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message of a client: who it is. Answered with versions.
    Hello {
        #[serde(default)]
        client: String,
        #[serde(default)]
        version: String,
    },
    Status,
    Ping,
    /// Stops the engine gracefully (`mailmesh stop`).
    Stop,
    /// Makes sure an engine runs. The bridge answers it itself when no
    /// engine is up (by starting one); a running engine answers "up".
    StartEngine,
    /// Tries IMAP and SMTP logins with these settings; saves nothing.
    AccountTest {
        account: AccountInput,
    },
    /// Checks and saves the account, then mails the owner a confirmation.
    AccountSave {
        account: AccountInput,
        #[serde(default)]
        device_name: Option<String>,
    },
    /// The code from the confirmation mail, typed by the owner.
    ConfirmCode {
        code: String,
    },
    /// Asks the owner (by mail) to confirm removing a device.
    NodeRemove {
        node_id: String,
    },
    /// A one-time token for the loopback WebSocket (`/mesh` or `/bulk`).
    SocketToken,
    /// Adds a file from the engine's disk to the drive.
    FilesAdd {
        path: String,
    },
    FilesList,
    /// Restores a file to a path on the engine's disk. (`id` names the
    /// request itself, so files are named by `file_id`.)
    FilesGet {
        file_id: String,
        path: String,
    },
    FilesRemove {
        file_id: String,
    },
    FilesRename {
        file_id: String,
        name: String,
    },
    /// Imports the attachments of mail not imported yet, now.
    MailSync,
    /// Scrubs and repairs the drive now (it also happens periodically).
    FilesRepair,
    /// Other people seen on the LAN, with what is verified.
    PeopleList,
    /// Mails a person a challenge for their unverified nodes.
    PeopleVerify {
        email: String,
    },
    PeopleRename {
        email: String,
        name: String,
    },
    PeopleBlock {
        email: String,
        blocked: bool,
    },
    PeopleRemove {
        email: String,
    },
    /// The conversations, newest first, with unread counts.
    ChatList,
    /// One conversation (its id, or for a direct one the other address).
    ChatShow {
        conversation: String,
    },
    /// Writes into a conversation, or to an address (a direct conversation).
    ChatSend {
        conversation: String,
        text: String,
    },
    /// Marks a conversation read (read receipts go to its authors).
    ChatRead {
        conversation: String,
    },
    /// Starts a group of verified people.
    ChatGroupCreate {
        #[serde(default)]
        title: String,
        members: Vec<String>,
    },
    /// Adds and removes members of a group.
    ChatGroupMembers {
        conversation: String,
        #[serde(default)]
        add: Vec<String>,
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Offers a person a file: one on the engine's disk (`path`) or a drive
    /// file (`file_id`).
    SendFile {
        to: String,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
    },
    /// Transfers coming and going, newest first.
    SendList,
    /// Takes an offered file into the drive (`drive`) or a folder
    /// (`downloads`: `dir`, or the Downloads folder).
    SendAccept {
        transfer: String,
        to: String,
        #[serde(default)]
        dir: Option<String>,
    },
    /// Refuses an offered file; nothing of it is kept.
    SendDecline {
        transfer: String,
    },
    SendCancel {
        transfer: String,
    },
    /// Call rooms we started or were invited to.
    CallsList,
    /// Sends a mail from the owner's account, with drive files attached.
    MailSend {
        to: Vec<String>,
        subject: String,
        #[serde(default)]
        body: String,
        /// Drive file ids (or unique starts of them).
        #[serde(default)]
        attachments: Vec<String>,
    },
}

/// Account settings with the password, as the onboarding page and
/// `mailmesh init` send them. The password is never sent back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountInput {
    #[serde(flatten)]
    pub account: Account,
    pub password: Secret,
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

/// Where this node stands in joining the owner's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    /// `none`, `awaiting_confirmation` or `enrolled`.
    pub state: String,
    pub email: Option<String>,
    pub network_id: Option<String>,
}

/// A request together with the id the reply must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: Option<u64>,
    pub request: Request,
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
}

/// Stable, machine-readable error kinds; the message says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidUtf8,
    InvalidJson,
    InvalidMessage,
    UnknownType,
    MessageTooLarge,
    ReplyTooLarge,
    EngineUnavailable,
    InvalidAccount,
    MailFailed,
    ConfirmFailed,
    DriveFailed,
    PeopleFailed,
    ChatFailed,
    SendFailed,
    Internal,
}

/// What the engine (or the bridge on its behalf) answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        host_version: String,
        core_version: String,
        protocol: u32,
    },
    Status(Box<Status>),
    Pong,
    Stopping,
    AccountTest(Box<AccountChecks>),
    Enrollment(Box<EnrollmentView>),
    /// A removal was asked for; the owner must confirm it from the mail.
    RemovalRequested {
        node_id: String,
    },
    SocketToken {
        port: u16,
        token: String,
    },
    Files {
        files: Vec<FileView>,
    },
    /// One file (nested: a file's `id` must not meet the envelope's).
    File {
        file: Box<FileView>,
    },
    MailSynced {
        /// Messages read since the last import.
        messages: usize,
        /// Files added to the drive from them.
        imported: usize,
    },
    People {
        people: Vec<crate::engine::people::PersonView>,
    },
    Conversations {
        conversations: Vec<crate::chat::ConversationView>,
        unread: u32,
    },
    /// One conversation (nested: its `id` must not meet the envelope's).
    Conversation {
        conversation: Box<crate::engine::ChatDetail>,
    },
    ChatSent {
        message: Box<crate::chat::MessageView>,
    },
    /// The conversation a request made or changed.
    ChatDone {
        conversation: String,
    },
    Calls {
        calls: Vec<crate::engine::RoomView>,
    },
    Transfers {
        transfers: Vec<crate::engine::TransferView>,
    },
    Transfer {
        transfer: Box<crate::engine::TransferView>,
    },
    MailSent {
        message_id: String,
        /// How many recipients the server accepted.
        recipients: usize,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Pushed by the engine, without an id, when its status changed (for
    /// example when the owner confirmed this node through the link).
    StatusChanged,
    /// Peers came, went or changed their path; `status` has the new view.
    PeersChanged,
    /// Files were added, spread or deleted; `files_list` has the new view.
    FilesChanged,
    /// Chat messages or receipts arrived or changed; `chat_list` has them.
    ChatChanged,
    /// A transfer was offered, answered or ended; `send_list` has them.
    TransfersChanged,
    /// Someone invited us to a call, or a call page joined or left one.
    CallsChanged,
    /// Pushed by the bridge, without an id, when the engine comes or goes.
    EngineState {
        state: EngineState,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineState {
    Up,
    Down,
}

/// A reply with the id of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub reply: Reply,
}

impl ReplyEnvelope {
    pub fn new(id: Option<u64>, reply: Reply) -> ReplyEnvelope {
        ReplyEnvelope { id, reply }
    }

    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> ReplyEnvelope {
        ReplyEnvelope::new(id, Reply::Error { code, message: message.into() })
    }

    /// One compact JSON line (no newline inside: strings escape theirs).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail; fall back to a fixed
        // error object rather than panicking if it ever did.
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"type":"error","code":"internal","message":"reply could not be encoded"}"#.to_vec()
        })
    }
}

/// The `id` of a message, if it has a numeric one.
pub fn message_id(value: &Value) -> Option<u64> {
    value.get("id").and_then(Value::as_u64)
}

/// Checks that a message is UTF-8 JSON. Errors come back as the reply to send.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ReplyEnvelope> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ReplyEnvelope::error(None, ErrorCode::InvalidUtf8, "the message is not valid UTF-8"))?;
    serde_json::from_str(text)
        .map_err(|e| ReplyEnvelope::error(None, ErrorCode::InvalidJson, format!("the message is not valid JSON: {e}")))
}

/// Parses a request line. Errors come back as the reply to send.
pub fn decode_request(bytes: &[u8]) -> Result<Envelope, ReplyEnvelope> {
    decode_request_value(parse_json(bytes)?)
}

/// Like [`decode_request`] for JSON already parsed.
pub fn decode_request_value(mut value: Value) -> Result<Envelope, ReplyEnvelope> {
    let id = message_id(&value);
    let Some(object) = value.as_object_mut() else {
        return Err(ReplyEnvelope::error(id, ErrorCode::InvalidMessage, "a message must be a JSON object"));
    };
    object.remove("id");
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(ReplyEnvelope::error(id, ErrorCode::InvalidMessage, "a message needs a string field \"type\""))
        }
    };
    match serde_json::from_value::<Request>(value) {
        Ok(request) => Ok(Envelope { id, request }),
        Err(e) if e.to_string().starts_with("unknown variant") => {
            Err(ReplyEnvelope::error(id, ErrorCode::UnknownType, format!("unknown message type {kind:?}")))
        }
        Err(e) => Err(ReplyEnvelope::error(id, ErrorCode::InvalidMessage, format!("bad {kind:?} message: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_of(bytes: &[u8]) -> ErrorCode {
        match decode_request(bytes).unwrap_err().reply {
            Reply::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn requests_decode_with_their_id() {
        let env = decode_request(br#"{"id":7,"type":"status"}"#).unwrap();
        assert_eq!(env, Envelope { id: Some(7), request: Request::Status });
        let env = decode_request(br#"{"type":"hello","client":"popup"}"#).unwrap();
        assert_eq!(env.request, Request::Hello { client: "popup".into(), version: String::new() });
    }

    #[test]
    fn malformed_requests_get_typed_errors() {
        assert_eq!(code_of(&[0xff, 0xfe]), ErrorCode::InvalidUtf8);
        assert_eq!(code_of(b"{not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of(b"[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code_of(br#"{"id":1}"#), ErrorCode::InvalidMessage);
        assert_eq!(code_of(br#"{"type":5}"#), ErrorCode::InvalidMessage);
        assert_eq!(code_of(br#"{"type":"launch_missiles"}"#), ErrorCode::UnknownType);
    }

    #[test]
    fn errors_keep_the_request_id() {
        let err = decode_request(br#"{"id":42,"type":"nope"}"#).unwrap_err();
        assert_eq!(err.id, Some(42));
    }

    proptest! {
        #[test]
        fn replies_round_trip(id in proptest::option::of(any::<u64>()), msg in ".{0,50}") {
            let env = ReplyEnvelope::error(id, ErrorCode::UnknownType, msg);
            let back: ReplyEnvelope = serde_json::from_slice(&env.encode()).unwrap();
            prop_assert_eq!(back, env);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_request(&bytes);
        }
    }
}
