//! Replies and the events the engine pushes: what a client is answered and
//! told.

use serde::{Deserialize, Serialize};

use super::views::{
    AccountChecks, ConversationDetail, ConversationView, EnrollmentView, FileView, MessageView, PersonView, RoomView,
    ServersFound, Status, TransferView,
};

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
    ServersFound(Box<ServersFound>),
    /// Open this in a browser to sign in (OAuth 2).
    SignInUrl {
        url: String,
    },
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
    /// A page of a search: its files, how many match in all, where it starts.
    FilesPage {
        files: Vec<FileView>,
        total: usize,
        offset: usize,
    },
    /// One file (nested: a file's `id` must not meet the envelope's).
    File {
        file: Box<FileView>,
    },
    ImportSettings {
        settings: crate::views::ImportSettingsView,
    },
    MailSynced {
        /// Messages read since the last import.
        messages: usize,
        /// Files added to the drive from them.
        imported: usize,
    },
    People {
        people: Vec<PersonView>,
    },
    Conversations {
        conversations: Vec<ConversationView>,
        unread: u32,
    },
    /// One conversation (nested: its `id` must not meet the envelope's).
    Conversation {
        conversation: Box<ConversationDetail>,
    },
    ChatSent {
        message: Box<MessageView>,
    },
    /// The conversation a request made or changed.
    ChatDone {
        conversation: String,
    },
    Calls {
        calls: Vec<RoomView>,
    },
    Transfers {
        transfers: Vec<TransferView>,
    },
    Transfer {
        transfer: Box<TransferView>,
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

/// What changed in the engine: what its services announce, pushed to every
/// client as the `*_changed` reply of the same name (a page then re-reads
/// that view). Services speak these, never [`Reply`] itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    StatusChanged,
    PeersChanged,
    FilesChanged,
    ChatChanged,
    TransfersChanged,
    CallsChanged,
}

impl From<Event> for Reply {
    fn from(event: Event) -> Reply {
        match event {
            Event::StatusChanged => Reply::StatusChanged,
            Event::PeersChanged => Reply::PeersChanged,
            Event::FilesChanged => Reply::FilesChanged,
            Event::ChatChanged => Reply::ChatChanged,
            Event::TransfersChanged => Reply::TransfersChanged,
            Event::CallsChanged => Reply::CallsChanged,
        }
    }
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
