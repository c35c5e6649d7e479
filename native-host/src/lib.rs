//! `mailmesh-host`: the native half of a mailmesh node.
//!
//! One *engine* runs per node home. It owns the node's identity and (in
//! later issues) mail, the disk store and LAN links, and it serves requests
//! on a Unix control socket inside the home. Everything else is a client of
//! that socket:
//!
//! - the CLI (`mailmesh status`, `stop`, …), see [`cli`];
//! - the native-messaging bridge that Chrome starts for the extension, see
//!   [`native_host`]: it turns length-prefixed native messages into socket
//!   lines and back, and starts the engine when none runs.
//!
//! ```text
//! extension ──native messaging──▶ bridge (per browser) ──┐
//! mailmesh status / stop ───────────────────────────────┼──▶ engine.sock ──▶ engine
//! ```
//!
//! The JSON messages on both hops are the same typed [`api`] messages, from
//! the `mailmesh-api` crate (a leaf: it imports nothing of this crate).

pub use mailmesh_api as api;
pub use mailmesh_api::framing;

pub mod account;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod doctor;
pub mod drive;
pub mod engine;
pub mod enroll;
pub mod home;
pub mod identity;
pub mod install;
pub mod joining;
pub mod logging;
pub mod mail;
pub mod mailbox;
pub mod mesh;
pub mod native_host;
pub mod rng;
pub mod spawn;
pub mod sync;
pub mod transfer_store;

/// The version of the host binary, reported to the extension and the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The name of the native messaging host, as registered with the browsers.
pub const HOST_NAME: &str = "org.mailmesh.host";

/// The extension id, fixed by the `key` in `extension/manifest.json`.
pub const EXTENSION_ID: &str = "pjbfgnkmdcidapkfndhmnmhimjcloilo";
