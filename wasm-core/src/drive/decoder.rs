//! Decoder: for each chunk, any `k` of its fragments back to plaintext.
//!
//! Chunks can be decoded in any order (downloads fetch several at once and
//! resume where they stopped); the caller writes them out in order.

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::{Binding, Coder, EncodedChunk};
use super::keys::{ChunkKey, FileId, FileKeys, FragmentId};
use super::params::CodingParams;
use super::DriveError;

/// What opens the chunks: version 1's one cipher (made once) and the id it
/// binds, or version 2's key per chunk.
enum Opening {
    Whole { cipher: ChaCha20Poly1305, file_id: FileId },
    PerChunk(Vec<ChunkKey>),
}

pub struct FileDecoder {
    coder: Coder,
    opening: Opening,
    size: u64,
    chunk_count: u64,
    ids: Vec<FragmentId>,
}

impl FileDecoder {
    /// `keys` as the manifest opens; `ids` are the fragment ids of every
    /// chunk, chunk by chunk, as the manifest lists them.
    pub fn new(
        params: CodingParams,
        keys: FileKeys,
        size: u64,
        ids: Vec<FragmentId>,
    ) -> Result<FileDecoder, DriveError> {
        params.check_size(size)?;
        let chunk_count = params.chunk_count(size);
        let expected = chunk_count as usize * params.shards();
        if ids.len() != expected {
            return Err(DriveError::IdCount { got: ids.len(), expected });
        }
        let opening = match keys {
            FileKeys::Whole { file_id, key } => {
                Opening::Whole { cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())), file_id }
            }
            FileKeys::PerChunk(keys) if keys.len() as u64 == chunk_count => Opening::PerChunk(keys),
            FileKeys::PerChunk(keys) => return Err(DriveError::KeyCount { got: keys.len(), expected: chunk_count }),
        };
        Ok(FileDecoder { coder: Coder::new(params)?, opening, size, chunk_count, ids })
    }

    pub fn chunk_count(&self) -> u64 {
        self.chunk_count
    }

    /// The fragment ids of chunk `index`, in shard order.
    pub fn chunk_ids(&self, index: u64) -> Result<&[FragmentId], DriveError> {
        if index >= self.chunk_count {
            return Err(DriveError::ChunkOutOfRange { chunk: index, count: self.chunk_count });
        }
        let shards = self.coder.params().shards();
        let start = index as usize * shards;
        Ok(&self.ids[start..start + shards])
    }

    /// Length every fragment of chunk `index` must have.
    pub fn shard_len(&self, index: u64) -> usize {
        self.coder.params().shard_len(self.size, index)
    }

    /// Restores chunk `index` from its fragments in shard order (`None` where
    /// a fragment is unavailable).
    pub fn decode_chunk(&self, index: u64, fragments: &[Option<&[u8]>]) -> Result<Vec<u8>, DriveError> {
        let ids = self.chunk_ids(index)?;
        let last = index + 1 == self.chunk_count;
        let plain_len = self.coder.params().plain_len(self.size, index);
        self.with_cipher(index, |cipher, binding| {
            self.coder.decode(cipher, binding, index, last, plain_len, ids, fragments)
        })
    }

    /// Runs `seal` with chunk `index`'s cipher and binding.
    fn with_cipher<T>(
        &self,
        index: u64,
        seal: impl FnOnce(&ChaCha20Poly1305, Binding) -> Result<T, DriveError>,
    ) -> Result<T, DriveError> {
        match &self.opening {
            Opening::Whole { cipher, file_id } => seal(cipher, Binding::File(file_id)),
            Opening::PerChunk(keys) => {
                let key = keys
                    .get(index as usize)
                    .ok_or(DriveError::ChunkOutOfRange { chunk: index, count: self.chunk_count })?;
                seal(&ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())), Binding::Chunk)
            }
        }
    }

    /// Re-creates every fragment of chunk `index` from any `k` of them (for
    /// repair). Sealing is deterministic, so the result is byte for byte
    /// the original; it is checked against the manifest's ids anyway.
    pub fn rebuild_chunk(&self, index: u64, fragments: &[Option<&[u8]>]) -> Result<EncodedChunk, DriveError> {
        let plain = self.decode_chunk(index, fragments)?;
        let last = index + 1 == self.chunk_count;
        let chunk =
            self.with_cipher(index, |cipher, binding| self.coder.encode(cipher, binding, index, last, &plain))?;
        if chunk.ids != self.chunk_ids(index)? {
            return Err(DriveError::Internal("a rebuilt chunk does not match its manifest".into()));
        }
        Ok(chunk)
    }
}
