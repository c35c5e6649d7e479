//! Keys and ids of the drive: the network key, per-file keys and ids, the
//! content hash, and wrapping a file key under the network key.
//!
//! **Convergent keys, keyed by the network.** A file's key and id are
//! derived from the BLAKE3 hash of its plaintext *and* a secret derived from
//! the network key ([`convergent_keys`]). The same content imported twice
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
    /// The key that seals every chunk of one file.
    FileKey
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

/// The id and key of a file from its content hash, for one network and one
/// set of coding parameters (see the module docs for what this reveals).
pub fn convergent_keys(network: &NetworkKey, content: &ContentHash, params: &CodingParams) -> (FileId, FileKey) {
    let secret = blake3::derive_key(DEDUP_CONTEXT, network.as_bytes());
    let derive = |label: &[u8]| {
        let mut h = blake3::Hasher::new_keyed(&secret);
        h.update(label).update(&content.0).update(&params.to_bytes());
        *h.finalize().as_bytes()
    };
    (FileId(derive(b"file id\0")), FileKey(derive(b"file key\0")))
}

/// A file key sealed under the network key (XChaCha20-Poly1305).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    pub nonce: [u8; 24],
    pub sealed: [u8; 32 + TAG_LEN],
}

fn wrap_cipher(network: &NetworkKey) -> XChaCha20Poly1305 {
    let key = blake3::derive_key(WRAP_CONTEXT, network.as_bytes());
    XChaCha20Poly1305::new(Key::from_slice(&key))
}

/// Seals `file_key` under the network key. `nonce` must be random (24 bytes
/// make collisions negligible); `context` is authenticated with it, so the
/// wrapped key only opens for the manifest it was made for.
pub fn wrap_key(network: &NetworkKey, file_key: &FileKey, nonce: [u8; 24], context: &[u8]) -> WrappedKey {
    let mut sealed = [0u8; 32 + TAG_LEN];
    sealed[..32].copy_from_slice(file_key.as_bytes());
    let (body, tag_out) = sealed.split_at_mut(32);
    // Encryption of a fixed-size buffer cannot fail.
    if let Ok(tag) = wrap_cipher(network).encrypt_in_place_detached(XNonce::from_slice(&nonce), context, body) {
        tag_out.copy_from_slice(&tag);
    }
    WrappedKey { nonce, sealed }
}

/// Opens a wrapped key; fails if the network key differs or `context` (the
/// manifest) was altered.
pub fn unwrap_key(network: &NetworkKey, wrapped: &WrappedKey, context: &[u8]) -> Result<FileKey, DriveError> {
    let mut body = [0u8; 32];
    body.copy_from_slice(&wrapped.sealed[..32]);
    let tag = chacha20poly1305::Tag::from_slice(&wrapped.sealed[32..]);
    wrap_cipher(network)
        .decrypt_in_place_detached(XNonce::from_slice(&wrapped.nonce), context, &mut body, tag)
        .map_err(|_| DriveError::KeyUnwrap)?;
    Ok(FileKey(body))
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
        let fk = FileKey::from_bytes([9; 32]);
        let w = wrap_key(&nk, &fk, [3; 24], b"manifest");
        assert_eq!(unwrap_key(&nk, &w, b"manifest").unwrap(), fk);
        assert!(matches!(unwrap_key(&NetworkKey::from_bytes([2; 32]), &w, b"manifest"), Err(DriveError::KeyUnwrap)));
        assert!(matches!(unwrap_key(&nk, &w, b"manifesT"), Err(DriveError::KeyUnwrap)));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", FileKey::from_bytes([7; 32])), "FileKey(…)");
    }
}
