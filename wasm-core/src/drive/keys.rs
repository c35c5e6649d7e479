//! Keys and ids of the drive: the network key, file ids, the keys chunks
//! are sealed with, the content hash, and wrapping keys under the network
//! key.
//!
//! **Convergent keys, keyed by the network.** A file's id, and the keys its
//! chunks are sealed with, are derived from its plaintext *and* a secret
//! derived from the network key. Version 2 ([`ChunkKeyer`]) keys each chunk
//! by a keyed BLAKE3 of that chunk's own bytes, so a chunk is sealed as soon
//! as it is read and a file is added in one pass; version 1
//! ([`convergent_keys`]: one key from the whole file's hash, which needed a
//! pass over the file before the first chunk could be sealed) is still
//! read. The same content imported twice
//! in one owner's network — the same attachment in two mails, or imported by
//! two nodes at once — therefore yields the same id and byte-identical
//! fragments, and is stored once. What this reveals: to the owner's own
//! nodes (which hold the network key and can read the files anyway), that
//! two files are equal. To anyone else, including a node removed from the
//! network after a key rotation for files added since, nothing: without the
//! secret they cannot compute the id of a guessed plaintext, and fragments of
//! equal files in different networks share nothing.

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use super::params::{CodingParams, TAG_LEN};
use super::DriveError;

const DEDUP_CONTEXT: &str = "mailmesh 2026-11 drive dedup secret v1";
const CHUNK_KEY_LABEL: &[u8] = b"chunk key v2\0";
const WRAP_CONTEXT: &str = "mailmesh 2026-11 drive key wrap v1";

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name([u8; 32]);

        impl $name {
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            /// Never prints the secret.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(…)"))
            }
        }
    };
}

macro_rules! public_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl fmt::Display for $name {
            /// Lowercase hex.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

secret_bytes!(
    /// The 256-bit key shared by the owner's nodes.
    NetworkKey
);
secret_bytes!(
    /// The key that seals every chunk of one file (version 1).
    FileKey
);
secret_bytes!(
    /// The key that seals one chunk (version 2).
    ChunkKey
);

impl NetworkKey {
    /// A short, non-secret name for this key (hex), so nodes can show and
    /// compare which key they hold without revealing it.
    pub fn key_id(&self) -> String {
        blake3::derive_key("mailmesh 2026-11 network key id v1", &self.0)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The pre-shared key mixed into every member-to-member link handshake
    /// (Noise `psk3`): only holders of the network key complete one.
    pub fn link_psk(&self) -> [u8; 32] {
        blake3::derive_key("mailmesh 2026-11 link psk v1", &self.0)
    }
}
public_bytes!(
    /// Identifies a stored file (same content, same network, same parameters
    /// → same id).
    FileId
);
public_bytes!(
    /// BLAKE3 of a file's plaintext.
    ContentHash
);
public_bytes!(
    /// BLAKE3 of a fragment's bytes: its name on every node.
    FragmentId
);

impl FragmentId {
    pub fn of(bytes: &[u8]) -> FragmentId {
        FragmentId(*blake3::hash(bytes).as_bytes())
    }
}

/// Streams a file's plaintext into its [`ContentHash`].
#[derive(Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn new() -> ContentHasher {
        ContentHasher(blake3::Hasher::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finalize(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

fn dedup_secret(network: &NetworkKey) -> [u8; 32] {
    blake3::derive_key(DEDUP_CONTEXT, network.as_bytes())
}

fn derive_from_content(network: &NetworkKey, label: &[u8], content: &ContentHash, params: &CodingParams) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&dedup_secret(network));
    h.update(label).update(&content.0).update(&params.to_bytes());
    *h.finalize().as_bytes()
}

/// The id of a file from its content hash, for one network and one set of
/// coding parameters (the same for both versions).
pub fn file_id_of(network: &NetworkKey, content: &ContentHash, params: &CodingParams) -> FileId {
    FileId(derive_from_content(network, b"file id\0", content, params))
}

/// The id and version-1 key of a file from its content hash (see the
/// module docs for what this reveals).
pub fn convergent_keys(network: &NetworkKey, content: &ContentHash, params: &CodingParams) -> (FileId, FileKey) {
    (file_id_of(network, content, params), FileKey(derive_from_content(network, b"file key\0", content, params)))
}

/// Derives version 2's chunk keys in one network: a keyed BLAKE3 (a PRF
/// under the network's dedup secret) of the coding parameters, the chunk's
/// index, whether it is the last, and its bytes. The index and the flag are
/// in the key, not only in the associated data, so one key and nonce never
/// seal two different (bytes, associated data) pairs: a Poly1305 one-time
/// key is used once.
pub struct ChunkKeyer {
    keyed: blake3::Hasher,
}

impl ChunkKeyer {
    pub fn new(network: &NetworkKey, params: &CodingParams) -> ChunkKeyer {
        let mut keyed = blake3::Hasher::new_keyed(&dedup_secret(network));
        keyed.update(CHUNK_KEY_LABEL).update(&params.to_bytes());
        ChunkKeyer { keyed }
    }

    pub fn key(&self, index: u64, last: bool, plain: &[u8]) -> ChunkKey {
        let mut h = self.keyed.clone();
        h.update(&index.to_le_bytes()).update(&[u8::from(last)]).update(plain);
        ChunkKey(*h.finalize().as_bytes())
    }
}

/// What a file's chunks are sealed with, as its manifest's wrap holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKeys {
    /// Version 1: one key, and the file's id bound into every chunk.
    Whole { file_id: FileId, key: FileKey },
    /// Version 2: a key per chunk, in order.
    PerChunk(Vec<ChunkKey>),
}

impl FileKeys {
    /// The manifest version these keys are sealed in.
    pub fn version(&self) -> u8 {
        match self {
            FileKeys::Whole { .. } => 1,
            FileKeys::PerChunk(_) => 2,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            FileKeys::Whole { key, .. } => key.as_bytes().to_vec(),
            FileKeys::PerChunk(keys) => keys.iter().flat_map(|k| *k.as_bytes()).collect(),
        }
    }
}

/// Keys sealed under the network key (XChaCha20-Poly1305): 32 bytes a key,
/// then the tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKeys {
    pub nonce: [u8; 24],
    pub sealed: Vec<u8>,
}

impl WrappedKeys {
    /// Bytes `sealed` has for `keys` keys (saturating: a count no input
    /// can hold reads as cut short).
    pub fn sealed_len(keys: u64) -> usize {
        usize::try_from(keys.saturating_mul(32).saturating_add(TAG_LEN as u64)).unwrap_or(usize::MAX)
    }
}

fn wrap_cipher(network: &NetworkKey) -> XChaCha20Poly1305 {
    let key = blake3::derive_key(WRAP_CONTEXT, network.as_bytes());
    XChaCha20Poly1305::new(Key::from_slice(&key))
}

/// Seals a file's keys under the network key. `nonce` must be random (24
/// bytes make collisions negligible); `context` is authenticated with them,
/// so the wrap only opens for the manifest it was made for.
pub fn wrap_keys(network: &NetworkKey, keys: &FileKeys, nonce: [u8; 24], context: &[u8]) -> WrappedKeys {
    let mut sealed = keys.to_bytes();
    let body_len = sealed.len();
    // Encryption fails only past 256 GiB of keys.
    if let Ok(tag) = wrap_cipher(network).encrypt_in_place_detached(XNonce::from_slice(&nonce), context, &mut sealed) {
        sealed.extend_from_slice(&tag);
    }
    debug_assert_eq!(sealed.len(), body_len + TAG_LEN);
    WrappedKeys { nonce, sealed }
}

/// Opens wrapped keys; fails if the network key differs or `context` (the
/// manifest) was altered. The keys come back as bytes, 32 a key.
pub fn unwrap_keys(network: &NetworkKey, wrapped: &WrappedKeys, context: &[u8]) -> Result<Vec<[u8; 32]>, DriveError> {
    let body_len = wrapped.sealed.len().checked_sub(TAG_LEN).ok_or(DriveError::KeyUnwrap)?;
    let (body, tag) = wrapped.sealed.split_at(body_len);
    let mut body = body.to_vec();
    wrap_cipher(network)
        .decrypt_in_place_detached(
            XNonce::from_slice(&wrapped.nonce),
            context,
            &mut body,
            chacha20poly1305::Tag::from_slice(tag),
        )
        .map_err(|_| DriveError::KeyUnwrap)?;
    if !body.len().is_multiple_of(32) {
        return Err(DriveError::KeyUnwrap);
    }
    Ok(body.chunks_exact(32).map(|k| k.try_into().unwrap_or([0; 32])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_same_network_gives_the_same_keys() {
        let nk = NetworkKey::from_bytes([1; 32]);
        let params = CodingParams::default();
        let a = convergent_keys(&nk, &ContentHash([5; 32]), &params);
        let b = convergent_keys(&nk, &ContentHash([5; 32]), &params);
        assert_eq!(a, b);
        let other_content = convergent_keys(&nk, &ContentHash([6; 32]), &params);
        assert_ne!(a.0, other_content.0);
        let other_network = convergent_keys(&NetworkKey::from_bytes([2; 32]), &ContentHash([5; 32]), &params);
        assert_ne!(a.0, other_network.0);
        assert_ne!(a.1, other_network.1);
    }

    #[test]
    fn wrapped_keys_open_only_with_the_right_key_and_context() {
        let nk = NetworkKey::from_bytes([1; 32]);
        for keys in [
            FileKeys::Whole { file_id: FileId([4; 32]), key: FileKey::from_bytes([9; 32]) },
            FileKeys::PerChunk(vec![ChunkKey::from_bytes([5; 32]), ChunkKey::from_bytes([6; 32])]),
            FileKeys::PerChunk(Vec::new()),
        ] {
            let w = wrap_keys(&nk, &keys, [3; 24], b"manifest");
            assert_eq!(w.sealed.len(), WrappedKeys::sealed_len(keys.to_bytes().len() as u64 / 32));
            assert_eq!(unwrap_keys(&nk, &w, b"manifest").unwrap().concat(), keys.to_bytes());
            let other = NetworkKey::from_bytes([2; 32]);
            assert!(matches!(unwrap_keys(&other, &w, b"manifest"), Err(DriveError::KeyUnwrap)));
            assert!(matches!(unwrap_keys(&nk, &w, b"manifesT"), Err(DriveError::KeyUnwrap)));
        }
    }

    #[test]
    fn a_chunk_key_depends_on_the_network_the_bytes_the_index_and_the_last_flag() {
        let params = CodingParams::default();
        let keyer = ChunkKeyer::new(&NetworkKey::from_bytes([1; 32]), &params);
        let key = keyer.key(3, false, b"bytes");
        assert_eq!(key, ChunkKeyer::new(&NetworkKey::from_bytes([1; 32]), &params).key(3, false, b"bytes"));
        assert_ne!(key, keyer.key(3, false, b"bytez"));
        assert_ne!(key, keyer.key(4, false, b"bytes"));
        assert_ne!(key, keyer.key(3, true, b"bytes"));
        assert_ne!(key, ChunkKeyer::new(&NetworkKey::from_bytes([2; 32]), &params).key(3, false, b"bytes"));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", FileKey::from_bytes([7; 32])), "FileKey(…)");
    }
}
