//! Verifier: accepts a file that was sealed elsewhere — in a browser page,
//! which seals uploads itself so plaintext never crosses the loopback
//! socket — only if every chunk is exactly what [`super::FileEncoder`]
//! would have produced for the content hash the file was announced with.
//!
//! ```text
//! push_sealed(index, sealed) ─▶ length ─▶ unseal (the tag) ─▶ plaintext
//!   ─▶ ContentHasher; Coder::code_sealed ─▶ k+m fragments and their ids
//! finish() ─▶ hash == announced? ─▶ fragment ids for the manifest
//! ```
//!
//! The page sends chunks sealed, not coded: the engine codes the fragments
//! itself, so it never has parity to check, and a third fewer bytes cross
//! the socket than if the page sent all `k + m` fragments.
//!
//! Why this matters: file ids are convergent, so a file stored under an
//! id is what every later import of the same content deduplicates to. A
//! wrongly coded upload must therefore never be recorded under that id.

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::{unseal, Coder, EncodedChunk};
use super::keys::{ContentHash, ContentHasher, FileId, FileKey, FragmentId};
use super::params::{CodingParams, TAG_LEN};
use super::DriveError;

pub struct FileVerifier {
    coder: Coder,
    cipher: ChaCha20Poly1305,
    file_id: FileId,
    size: u64,
    content: ContentHash,
    chunk_count: u64,
    next: u64,
    hasher: ContentHasher,
    ids: Vec<FragmentId>,
}

impl FileVerifier {
    /// A verifier for a file of `size` bytes announced with hash `content`,
    /// coded under `file_id` and `key`.
    pub fn new(
        params: CodingParams,
        file_id: FileId,
        key: &FileKey,
        size: u64,
        content: ContentHash,
    ) -> Result<FileVerifier, DriveError> {
        params.check_size(size)?;
        Ok(FileVerifier {
            coder: Coder::new(params)?,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())),
            file_id,
            size,
            content,
            chunk_count: params.chunk_count(size),
            next: 0,
            hasher: ContentHasher::new(),
            ids: Vec::new(),
        })
    }

    /// Chunks still expected.
    pub fn remaining(&self) -> u64 {
        self.chunk_count - self.next
    }

    /// Plaintext bytes verified so far.
    pub fn verified_bytes(&self) -> u64 {
        self.next.saturating_mul(self.coder.params().chunk_size() as u64).min(self.size)
    }

    /// Checks sealed chunk `index` (ciphertext and tag) and codes it:
    /// its fragments, and their ids in shard order.
    pub fn push_sealed(&mut self, index: u64, sealed: &[u8]) -> Result<EncodedChunk, DriveError> {
        let (last, plain_len) = self.next_chunk(index)?;
        let expected = plain_len + TAG_LEN;
        if sealed.len() != expected {
            return Err(DriveError::ChunkLength { chunk: index, got: sealed.len(), expected });
        }
        let plain = unseal(&self.cipher, &self.file_id, index, last, sealed.to_vec())?;
        self.hasher.update(&plain);
        let chunk = self.coder.code_sealed(index, sealed)?;
        self.ids.extend_from_slice(&chunk.ids);
        self.next += 1;
        Ok(chunk)
    }

    /// Whether chunk `index` is the last, and its plaintext length, if it
    /// is the one expected next.
    fn next_chunk(&self, index: u64) -> Result<(bool, usize), DriveError> {
        if index != self.next || index >= self.chunk_count {
            return Err(DriveError::ChunkOrder { chunk: index, expected: self.next });
        }
        Ok((index + 1 == self.chunk_count, self.coder.params().plain_len(self.size, index)))
    }

    /// Ends the file: every chunk came and the content matches its hash.
    /// Returns every fragment id (chunk by chunk) for the manifest.
    pub fn finish(self) -> Result<Vec<FragmentId>, DriveError> {
        if self.next != self.chunk_count {
            return Err(DriveError::SizeShort { declared: self.size, got: self.verified_bytes() });
        }
        if self.hasher.finalize() != self.content {
            return Err(DriveError::ContentMismatch);
        }
        Ok(self.ids)
    }
}
