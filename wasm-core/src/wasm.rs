//! JavaScript bindings, compiled only for `wasm32`.
//!
//! Extension pages load the generated `extension/wasm/mailmesh_core.js`
//! and call these functions. Every function takes plain bytes or strings
//! and returns plain values, so the JavaScript side needs no knowledge of
//! Rust types; errors become JavaScript `Error`s with the same message a
//! native caller would see.

use wasm_bindgen::prelude::*;

use crate::identity::NodeId;

/// The human-readable fingerprint (`k4pq-7x2m-…`) of a node's Ed25519
/// public key.
#[wasm_bindgen(js_name = nodeFingerprint)]
pub fn node_fingerprint(ed25519_public: &[u8]) -> Result<String, JsError> {
    Ok(NodeId::from_public_key_slice(ed25519_public)?.fingerprint())
}

/// The node id (unbroken lowercase base32) of a node's Ed25519 public key.
#[wasm_bindgen(js_name = nodeId)]
pub fn node_id(ed25519_public: &[u8]) -> Result<String, JsError> {
    Ok(NodeId::from_public_key_slice(ed25519_public)?.to_string())
}

/// The version of the core compiled into this wasm module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    crate::VERSION.to_string()
}
