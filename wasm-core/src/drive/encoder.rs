//! Streaming encoder: file bytes in, coded chunks out, memory bounded by one
//! chunk plus whatever the caller has not yet taken.
//!
//! ```text
//! push(bytes) ─▶ fill current chunk ─▶ seal + code ─▶ queue ─▶ poll_chunk()
//! ```
//!
//! [`FileSealer`] does the same but only seals (a browser page's upload;
//! the engine codes).
//!
//! The file size is declared up front: it fixes the chunk count and tells
//! the encoder which chunk is the last, which is authenticated.

use std::collections::VecDeque;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::{Coder, EncodedChunk};
use super::keys::{FileId, FileKey, FragmentId};
use super::params::CodingParams;
use super::DriveError;

/// Cuts a file's bytes into chunks as they arrive (the declared size fixes
/// every chunk's length), handing each complete one on.
struct Chunker {
    params: CodingParams,
    size: u64,
    chunk_count: u64,
    /// Index of the chunk being filled.
    index: u64,
    pending: Vec<u8>,
    fed: u64,
}

impl Chunker {
    fn new(params: CodingParams, size: u64) -> Result<Chunker, DriveError> {
        params.check_size(size)?;
        Ok(Chunker {
            params,
            size,
            chunk_count: params.chunk_count(size),
            index: 0,
            pending: Vec::with_capacity(params.plain_len(size, 0)),
            fed: 0,
        })
    }

    /// Takes the next bytes; `complete(index, last, plain)` gets every chunk
    /// they complete.
    fn push(
        &mut self,
        mut data: &[u8],
        mut complete: impl FnMut(u64, bool, &[u8]) -> Result<(), DriveError>,
    ) -> Result<(), DriveError> {
        if self.fed + data.len() as u64 > self.size {
            return Err(DriveError::SizeExceeded { declared: self.size });
        }
        self.fed += data.len() as u64;
        loop {
            while self.index < self.chunk_count && self.pending.len() == self.params.plain_len(self.size, self.index) {
                let last = self.index + 1 == self.chunk_count;
                complete(self.index, last, &self.pending)?;
                self.pending.clear();
                self.index += 1;
            }
            if data.is_empty() || self.index >= self.chunk_count {
                return Ok(());
            }
            let want = self.params.plain_len(self.size, self.index) - self.pending.len();
            let take = want.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Checks that exactly the declared size was fed.
    fn finish(&self) -> Result<(), DriveError> {
        if self.fed != self.size {
            return Err(DriveError::SizeShort { declared: self.size, got: self.fed });
        }
        Ok(())
    }
}

pub struct FileEncoder {
    chunker: Chunker,
    coder: Coder,
    cipher: ChaCha20Poly1305,
    file_id: FileId,
    ready: VecDeque<EncodedChunk>,
    ids: Vec<FragmentId>,
}

impl FileEncoder {
    pub fn new(params: CodingParams, file_id: FileId, key: &FileKey, size: u64) -> Result<FileEncoder, DriveError> {
        let mut encoder = FileEncoder {
            chunker: Chunker::new(params, size)?,
            coder: Coder::new(params)?,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())),
            file_id,
            ready: VecDeque::new(),
            ids: Vec::new(),
        };
        // An empty file's only chunk is complete before any byte arrives.
        encoder.push(&[])?;
        Ok(encoder)
    }

    /// Feeds the next bytes of the file. Call [`FileEncoder::poll_chunk`]
    /// until it returns `None` after each push to keep memory bounded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), DriveError> {
        let FileEncoder { chunker, coder, cipher, file_id, ready, ids } = self;
        chunker.push(data, |index, last, plain| {
            let chunk = coder.encode(cipher, file_id, index, last, plain)?;
            ids.extend_from_slice(&chunk.ids);
            ready.push_back(chunk);
            Ok(())
        })
    }

    /// The next coded chunk, in order.
    pub fn poll_chunk(&mut self) -> Option<EncodedChunk> {
        self.ready.pop_front()
    }

    /// Ends the file: checks that exactly the declared size was fed and every
    /// chunk was taken, and returns all fragment ids (chunk by chunk) for the
    /// manifest.
    pub fn finish(self) -> Result<Vec<FragmentId>, DriveError> {
        self.chunker.finish()?;
        if !self.ready.is_empty() {
            return Err(DriveError::Internal("finish() called before every chunk was polled".into()));
        }
        Ok(self.ids)
    }
}

/// A chunk sealed but not coded: ciphertext and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedChunk {
    pub index: u64,
    pub bytes: Vec<u8>,
}

/// Like [`FileEncoder`], but it only seals: what a browser page sends its
/// engine, which codes the fragments itself as it verifies
/// (`FileVerifier::push_sealed`). A third fewer bytes cross the loopback
/// socket, and the page does no Reed-Solomon or fragment hashing.
pub struct FileSealer {
    chunker: Chunker,
    coder: Coder,
    cipher: ChaCha20Poly1305,
    file_id: FileId,
    ready: VecDeque<SealedChunk>,
}

impl FileSealer {
    pub fn new(params: CodingParams, file_id: FileId, key: &FileKey, size: u64) -> Result<FileSealer, DriveError> {
        let mut sealer = FileSealer {
            chunker: Chunker::new(params, size)?,
            coder: Coder::new(params)?,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())),
            file_id,
            ready: VecDeque::new(),
        };
        sealer.push(&[])?;
        Ok(sealer)
    }

    /// Feeds the next bytes of the file; take what they complete with
    /// [`FileSealer::poll_chunk`].
    pub fn push(&mut self, data: &[u8]) -> Result<(), DriveError> {
        let FileSealer { chunker, coder, cipher, file_id, ready } = self;
        chunker.push(data, |index, last, plain| {
            ready.push_back(SealedChunk { index, bytes: coder.seal(cipher, file_id, index, last, plain)? });
            Ok(())
        })
    }

    /// The next sealed chunk, in order.
    pub fn poll_chunk(&mut self) -> Option<SealedChunk> {
        self.ready.pop_front()
    }

    /// Ends the file: exactly the declared size was fed, every chunk taken.
    pub fn finish(self) -> Result<(), DriveError> {
        self.chunker.finish()?;
        if !self.ready.is_empty() {
            return Err(DriveError::Internal("finish() called before every chunk was polled".into()));
        }
        Ok(())
    }
}
