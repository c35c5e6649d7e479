//! The engine's contract with its clients: the typed JSON messages spoken on
//! the control socket and, unchanged, over native messaging.
//! `extension/shared/messages/native.js` mirrors them, and a test checks
//! that every request and event has its counterpart there.
//!
//! **A leaf**: nothing here imports the rest of the crate. Services build the
//! views; only the engine's router and the clients (CLI, bridge) speak
//! [`Request`] and [`Reply`].

pub mod account;
pub mod framing;
mod reply;
mod request;
pub mod views;

pub use account::{Account, OAuth, Secret, Security, Server};
pub use reply::{EngineState, ErrorCode, Event, Reply, ReplyEnvelope};
pub use request::{decode_request, decode_request_value, message_id, parse_json, AccountInput, Envelope, Request};
pub use views::*;

/// Bumped when a message changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
