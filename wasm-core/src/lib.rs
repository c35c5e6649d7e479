//! `mailmesh-core`: the formats and protocol rules of mailmesh, with no IO.
//!
//! The same code runs in three places: in the extension (compiled to
//! `wasm32-unknown-unknown` and bound with wasm-bindgen), in the native host
//! (linked as an ordinary Rust library), and in plain `cargo test`. To make
//! that possible the crate is *sans-IO*: callers hand in bytes, time and
//! randomness, and get bytes and actions back. Nothing here opens a file, a
//! socket, reads the clock or draws random numbers.
//!
//! Modules:
//! - [`chat`]: messages and receipts between people, the rules for taking
//!   one, and the sealed history on disk.
//! - [`confirm`]: the rules of confirming a node by mailed link or code.
//! - [`drive`]: the drive's data pipeline — chunk, seal, erasure-code,
//!   address, manifest, placement.
//! - [`identity`]: node key material, the node id derived from it, the
//!   human-readable fingerprint and the on-disk key file format.
//! - [`import`]: how the owner's nodes share the import of the mailbox —
//!   who imports, how far it got, the daily download budget.
//! - [`join`]: the messages by which a new node joins through the mailbox.
//! - [`names`]: names from other nodes made safe to show and to save.
//! - [`peer`]: links between nodes — the authenticated handshake, the
//!   encrypted host link, frames and liveness.
//! - [`people`]: other people — verification by email challenge and the
//!   contact book that pins what was verified.
//! - [`roster`]: the signed list of the owner's nodes and the network id.
//! - [`transfer`]: direct file send between people — offer, sealed chunks,
//!   acknowledgements and resume.
//! - [`wire`]: the bounds-checked reader of `magic | version | fields`
//!   messages.
//! - `wasm` (only on `wasm32`): the JavaScript-facing bindings.

pub mod chat;
pub mod confirm;
pub mod drive;
pub mod identity;
pub mod import;
pub mod join;
pub mod names;
pub mod password;
pub mod peer;
pub mod people;
pub mod roster;
pub mod rotation;
pub mod transfer;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// The version of this crate, shown by the host and the popup so a user can
/// tell which build is running on each side.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
