//! Verifier: accepts a file that was coded elsewhere — in a browser page,
//! which encodes uploads itself so plaintext never crosses the loopback
//! socket — only if every chunk is exactly what [`super::FileEncoder`]
//! would have produced for the content hash the file was announced with.
//!
//! ```text
//! push_chunk(index, k+m fragments) ─▶ Coder::check (length, padding,
//!   parity, seal) ─▶ plaintext ─▶ ContentHasher ─▶ fragment ids
//! finish() ─▶ hash == announced? ─▶ fragment ids for the manifest
//! ```
//!
//! Why this matters: file ids are convergent, so a file stored under an
//! id is what every later import of the same content deduplicates to. A
//! wrongly coded upload must therefore never be recorded under that id.

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::Coder;
use super::keys::{ContentHash, ContentHasher, FileId, FileKey, FragmentId};
use super::params::CodingParams;
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

    /// Checks chunk `index` (all `k + m` fragments back to back, in shard
    /// order) and returns the ids of its fragments, in shard order.
    pub fn push_chunk(&mut self, index: u64, coded: &[u8]) -> Result<Vec<FragmentId>, DriveError> {
        if index != self.next || index >= self.chunk_count {
            return Err(DriveError::ChunkOrder { chunk: index, expected: self.next });
        }
        let params = *self.coder.params();
        let last = index + 1 == self.chunk_count;
        let plain_len = params.plain_len(self.size, index);
        let plain = self.coder.check(&self.cipher, &self.file_id, index, last, plain_len, coded)?;
        self.hasher.update(&plain);
        let shard_len = params.shard_len(self.size, index);
        let ids: Vec<FragmentId> = coded.chunks(shard_len.max(1)).map(FragmentId::of).collect();
        self.ids.extend_from_slice(&ids);
        self.next += 1;
        Ok(ids)
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
