//! Streaming encoder: file bytes in, coded chunks out, memory bounded by one
//! chunk plus whatever the caller has not yet taken.
//!
//! ```text
//! push(bytes) ─▶ fill current chunk ─▶ seal + code ─▶ queue ─▶ poll_chunk()
//! ```
//!
//! Built with [`FileEncoder::checking`], it also hashes what it is fed and
//! refuses to finish unless that is the content hash the file's id and key
//! were derived from: the bytes are read a second time (from a disk that may
//! have changed, or from a page over a socket), and a file recorded under
//! a convergent id must be exactly that content, since every later add of
//! the same content deduplicates to it.
//!
//! The file size is declared up front: it fixes the chunk count and tells
//! the encoder which chunk is the last, which is authenticated.

use std::collections::VecDeque;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::{Coder, EncodedChunk};
use super::keys::{ContentHash, ContentHasher, FileId, FileKey, FragmentId};
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
            if self.pending.is_empty() && data.len() >= want {
                // A whole chunk in what was given (a reader's aligned
                // blocks): coded from there, not copied aside first.
                let last = self.index + 1 == self.chunk_count;
                complete(self.index, last, &data[..want])?;
                self.index += 1;
                data = &data[want..];
                continue;
            }
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
    /// The content hash the bytes must have, and the hash so far.
    check: Option<(ContentHash, ContentHasher)>,
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
            check: None,
        };
        // An empty file's only chunk is complete before any byte arrives.
        encoder.push(&[])?;
        Ok(encoder)
    }

    /// Has [`FileEncoder::finish`] fail with [`DriveError::ContentMismatch`]
    /// unless the bytes fed hash to `content`.
    pub fn checking(mut self, content: ContentHash) -> FileEncoder {
        self.check = Some((content, ContentHasher::new()));
        self
    }

    /// Feeds the next bytes of the file. Call [`FileEncoder::poll_chunk`]
    /// until it returns `None` after each push to keep memory bounded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), DriveError> {
        let FileEncoder { chunker, coder, cipher, file_id, ready, ids, check } = self;
        if let Some((_, hasher)) = check {
            hasher.update(data);
        }
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

    /// Plaintext bytes fed so far.
    pub fn fed_bytes(&self) -> u64 {
        self.chunker.fed
    }

    /// Ends the file: checks that exactly the declared size was fed (with
    /// the content hash, if [`FileEncoder::checking`]) and every chunk was
    /// taken, and returns all fragment ids (chunk by chunk) for the manifest.
    pub fn finish(self) -> Result<Vec<FragmentId>, DriveError> {
        self.chunker.finish()?;
        if !self.ready.is_empty() {
            return Err(DriveError::Internal("finish() called before every chunk was polled".into()));
        }
        if let Some((content, hasher)) = self.check {
            if hasher.finalize() != content {
                return Err(DriveError::ContentMismatch);
            }
        }
        Ok(self.ids)
    }
}
