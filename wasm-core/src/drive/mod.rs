//! The drive's data pipeline: a file becomes encrypted, erasure-coded,
//! content-addressed fragments, and any sufficient set of fragments becomes
//! the exact file again.
//!
//! ```text
//! bytes ─▶ FileEncoder::per_chunk ─▶ per chunk: ChunkKeyer key ─▶ seal ─▶ EncodedChunk (k+m fragments, ids)
//!                └─ finish() ─▶ content hash, fragment ids, chunk keys ─▶ file_id_of ─▶ Manifest::seal
//! Manifest::decode ─▶ open(network key) ─▶ FileKeys ─▶ FileDecoder::decode_chunk(any k fragments) ─▶ bytes
//! placement::place_chunk / repair_plan: which node holds which fragment
//! ```
//!
//! - [`params`]: `CodingParams` (k, m, chunk size) and the sizes they imply.
//! - [`keys`]: network key, file ids and the keys chunks are sealed with
//!   (convergent, keyed by the network), fragment ids, key wrapping.
//! - [`chunk`]: sealing and coding of one chunk.
//! - [`gf`]: the Reed–Solomon field, vectorised on wasm `simd128`.
//! - [`encoder`], [`decoder`]: streaming over a whole file.
//! - [`manifest`]: the versioned manifest format.
//! - [`placement`]: fragment placement and repair plans.
//! - [`net`]: the messages engines trade about the drive.
//! - [`upload`]: the framing of the bytes a page uploads to its engine.

pub mod chunk;
pub mod decoder;
pub mod encoder;
pub mod gf;
pub mod keys;
pub mod manifest;
pub mod net;
pub mod params;
pub mod placement;
#[cfg(test)]
mod tests;
pub mod upload;

use thiserror::Error;

pub use chunk::EncodedChunk;
pub use decoder::FileDecoder;
pub use encoder::{Encoded, FileEncoder};
pub use keys::{
    convergent_keys, file_id_of, ChunkKey, ContentHash, ContentHasher, FileId, FileKey, FileKeys, FragmentId,
    NetworkKey,
};
pub use manifest::{Manifest, ManifestError, ManifestFields};
pub use params::{CodingParams, ParamsError};

/// Everything that can go wrong while coding or restoring a file, each with
/// a message a user can act on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DriveError {
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("more bytes arrived than the {declared} the file was declared to have")]
    SizeExceeded { declared: u64 },
    #[error("the file ended after {got} of its {declared} bytes; it changed or was cut short while being read")]
    SizeShort { declared: u64, got: u64 },
    #[error("chunk {chunk} does not exist: the file has {count} chunks")]
    ChunkOutOfRange { chunk: u64, count: u64 },
    #[error("chunk {chunk} needs {expected} fragment slots, {got} were given")]
    FragmentCount { chunk: u64, got: usize, expected: usize },
    #[error("the manifest lists {got} fragment ids where {expected} were expected")]
    IdCount { got: usize, expected: usize },
    #[error("chunk {chunk} cannot be restored: {have} of the {need} fragments it needs are available; bring more of your nodes online")]
    TooFewFragments { chunk: u64, have: usize, need: usize },
    #[error("chunk {chunk} cannot be restored: {damaged} of its fragments are damaged (they do not match their ids) and only {have} of the {need} needed are good; bring more of your nodes online so the damage can be repaired")]
    DamagedFragments { chunk: u64, damaged: usize, have: usize, need: usize },
    #[error("chunk {chunk} failed authentication: the file key is wrong or the fragments belong to another file")]
    ChunkAuthentication { chunk: u64 },
    #[error("chunk {chunk} arrived out of order: chunk {expected} was expected next")]
    ChunkOrder { chunk: u64, expected: u64 },
    #[error("chunk {chunk} is {got} bytes where {expected} were expected")]
    ChunkLength { chunk: u64, got: usize, expected: usize },
    #[error("chunk {chunk} was coded wrongly: its parity or padding does not match its data")]
    ParityMismatch { chunk: u64 },
    #[error("the file key cannot be unwrapped: this node has a different network key, or the manifest was altered")]
    KeyUnwrap,
    #[error("the manifest holds {got} chunk keys where the file has {expected} chunks")]
    KeyCount { got: usize, expected: u64 },
    #[error("internal error in the drive core: {0}")]
    Internal(String),
}
