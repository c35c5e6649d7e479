//! Requests: what a client may ask, and how a line of JSON becomes one.
//!
//! A request is an object with a `type` and an optional numeric `id`; the
//! reply carries the same `id`. Anything that does not parse gets a
//! [`Reply::Error`](super::Reply::Error) with a stable [`ErrorCode`] and a sentence for the user —
//! never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::account::{Account, Secret};
use super::reply::{ErrorCode, ReplyEnvelope};

/// What a client may ask of the engine. Unknown fields are ignored so that
/// a newer extension can talk to an older engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Finds an address's servers (onboarding fills them in).
    AccountDiscover {
        email: String,
        /// A CA file the owner trusts, trusted for the autoconfig fetch too.
        #[serde(default)]
        tls_ca: Option<std::path::PathBuf>,
    },
    /// Tries IMAP and SMTP logins with these settings; saves nothing.
    AccountTest {
        account: AccountInput,
    },
    /// Checks and saves the account, then mails the owner a confirmation.
    AccountSave {
        account: AccountInput,
        #[serde(default)]
        device_name: Option<String>,
        /// Create a new network even if the mailbox holds a roster.
        #[serde(default)]
        new_network: bool,
    },
    /// Starts signing in with OAuth 2 (the account's `oauth` says where;
    /// the engine completes it from its client files): replies with the URL
    /// to open in a browser. The issuer answers to the engine's loopback
    /// endpoint, which then sets the account up as `account_save` does.
    SignInStart {
        account: Account,
        #[serde(default)]
        device_name: Option<String>,
        #[serde(default)]
        new_network: bool,
    },
    /// Signs the saved OAuth 2 account in again (after "sign in again"):
    /// replies with the URL to open, as `sign_in_start` does.
    SignInAgain,
    /// Stop joining the network found in the mailbox and create a new one
    /// with the saved account (the owner did not recognise the network).
    NetworkNew,
    /// The code from the confirmation mail, typed by the owner.
    ConfirmCode {
        code: String,
    },
    /// Asks the owner (by mail) to confirm removing a device.
    NodeRemove {
        node_id: String,
    },
    /// The owner approves a device waiting to join: this device mails the
    /// code to type on it.
    JoinApprove {
        node_id: String,
    },
    /// The owner declines a device waiting to join.
    JoinDecline {
        node_id: String,
    },
    /// The owner changed the mail password at the provider: the new one.
    AccountPassword {
        password: Secret,
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
    /// A page of the files that match, in order.
    FilesSearch {
        #[serde(flatten)]
        query: crate::views::FileQuery,
    },
    /// Imports the attachments of mail not imported yet, now.
    MailSync,
    /// Changes how the mail import behaves (what is given), and answers
    /// with how it behaves now.
    ImportSettings {
        #[serde(flatten)]
        change: crate::views::ImportSettingsChange,
    },
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
    /// One conversation (its id, or for a direct one the other address):
    /// its newest `limit` messages (100 if left out, at most 1,000).
    ChatShow {
        conversation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
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

impl Request {
    /// The request as one line of JSON with the `id` its reply will carry.
    pub fn encode_line(&self, id: u64) -> String {
        // A plain tagged enum always serializes to an object.
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(object) = value.as_object_mut() {
            object.insert("id".into(), id.into());
        }
        value.to_string()
    }
}

/// Account settings with the password, as the onboarding page and
/// `mailmesh init` send them. The password is never sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInput {
    #[serde(flatten)]
    pub account: Account,
    pub password: Secret,
}

/// A request together with the id the reply must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: Option<u64>,
    pub request: Request,
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
    use crate::account::{Security, Server};
    use crate::reply::{Reply, ReplyEnvelope};
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
    fn requests_encoded_by_a_client_decode_as_sent() {
        let account = Account {
            email: "owner@mailmesh.test".into(),
            imap: Server { host: "imap.mailmesh.test".into(), port: 993, security: Security::Tls },
            smtp: Server { host: "smtp.mailmesh.test".into(), port: 465, security: Security::Tls },
            user: "owner".into(),
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        };
        let requests = [
            Request::Status,
            Request::AccountSave {
                account: AccountInput { account, password: Secret::new("pässword \"quoted\"".into()) },
                device_name: Some("laptop".into()),
                new_network: true,
            },
            Request::FilesGet { file_id: "ab12".into(), path: "/tmp/out".into() },
            Request::ChatGroupMembers { conversation: "c".into(), add: vec!["a@b.c".into()], remove: vec![] },
            Request::SendFile { to: "a@b.c".into(), path: None, file_id: Some("ab".into()) },
            Request::MailSend {
                to: vec!["a@b.c".into()],
                subject: "s".into(),
                body: "b\nc".into(),
                attachments: vec![],
            },
        ];
        for (id, request) in requests.into_iter().enumerate() {
            let line = request.encode_line(id as u64);
            assert!(!line.contains('\n'), "one line: {line}");
            assert_eq!(decode_request(line.as_bytes()).unwrap(), Envelope { id: Some(id as u64), request });
        }
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
