//! Streaming encoder: file bytes in, coded chunks out, memory bounded by one
//! chunk plus whatever the caller has not yet taken.
//!
//! ```text
//! push(bytes) ─▶ fill current chunk ─▶ seal + code ─▶ queue ─▶ poll_chunk()
//! ```
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

pub struct FileEncoder {
    coder: Coder,
    cipher: ChaCha20Poly1305,
    file_id: FileId,
    size: u64,
    chunk_count: u64,
    /// Index of the chunk being filled.
    index: u64,
    pending: Vec<u8>,
    fed: u64,
    ready: VecDeque<EncodedChunk>,
    ids: Vec<FragmentId>,
}

impl FileEncoder {
    pub fn new(params: CodingParams, file_id: FileId, key: &FileKey, size: u64) -> Result<FileEncoder, DriveError> {
        params.check_size(size)?;
        let mut encoder = FileEncoder {
            coder: Coder::new(params)?,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())),
            file_id,
            size,
            chunk_count: params.chunk_count(size),
            index: 0,
            pending: Vec::with_capacity(params.plain_len(size, 0)),
            fed: 0,
            ready: VecDeque::new(),
            ids: Vec::new(),
        };
        // An empty file's only chunk is complete before any byte arrives.
        encoder.flush_complete()?;
        Ok(encoder)
    }

    /// Feeds the next bytes of the file. Call [`FileEncoder::poll_chunk`]
    /// until it returns `None` after each push to keep memory bounded.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), DriveError> {
        if self.fed + data.len() as u64 > self.size {
            return Err(DriveError::SizeExceeded { declared: self.size });
        }
        self.fed += data.len() as u64;
        while !data.is_empty() {
            let want = self.coder.params().plain_len(self.size, self.index) - self.pending.len();
            let take = want.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.flush_complete()?;
        }
        Ok(())
    }

    fn flush_complete(&mut self) -> Result<(), DriveError> {
        while self.index < self.chunk_count
            && self.pending.len() == self.coder.params().plain_len(self.size, self.index)
        {
            let last = self.index + 1 == self.chunk_count;
            let chunk = self.coder.encode(&self.cipher, &self.file_id, self.index, last, &self.pending)?;
            self.ids.extend_from_slice(&chunk.ids);
            self.ready.push_back(chunk);
            self.pending.clear();
            self.index += 1;
            if last {
                break;
            }
        }
        Ok(())
    }

    /// The next coded chunk, in order.
    pub fn poll_chunk(&mut self) -> Option<EncodedChunk> {
        self.ready.pop_front()
    }

    /// Ends the file: checks that exactly the declared size was fed and every
    /// chunk was taken, and returns all fragment ids (chunk by chunk) for the
    /// manifest.
    pub fn finish(self) -> Result<Vec<FragmentId>, DriveError> {
        if self.fed != self.size {
            return Err(DriveError::SizeShort { declared: self.size, got: self.fed });
        }
        if !self.ready.is_empty() {
            return Err(DriveError::Internal("finish() called before every chunk was polled".into()));
        }
        Ok(self.ids)
    }
}
