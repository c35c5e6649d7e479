//! Streaming encoder: file bytes in, coded chunks out, memory bounded by one
//! chunk plus whatever the caller has not yet taken.
//!
//! ```text
//! push(bytes) ─▶ fill current chunk ─▶ seal + code ─▶ queue ─▶ poll_chunk()
//! ```
//!
//! It also hashes what it is fed: the content hash, from which the file's
//! id is derived once the last byte is in (version 2, [`FileEncoder::per_chunk`],
//! needs nothing of the file before its first byte).
//!
//! The file size is declared up front: it fixes the chunk count and tells
//! the encoder which chunk is the last, which is authenticated.

use std::collections::VecDeque;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};

use super::chunk::{Binding, Coder, EncodedChunk};
use super::keys::{
    ChunkKey, ChunkKeyer, ContentHash, ContentHasher, FileId, FileKey, FileKeys, FragmentId, NetworkKey,
};
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

/// How the encoder seals each chunk.
enum Sealing {
    /// Version 1: the file's key, its id bound in every chunk.
    Whole { cipher: ChaCha20Poly1305, file_id: FileId, key: FileKey },
    /// Version 2: each chunk under a key from its own bytes (the keyer,
    /// a BLAKE3 state of 2 KiB, boxed: one per file).
    PerChunk { keyer: Box<ChunkKeyer>, keys: Vec<ChunkKey> },
}

/// What a finished encoding gives for the file's manifest.
#[derive(Debug)]
pub struct Encoded {
    /// BLAKE3 of every byte fed.
    pub content_hash: ContentHash,
    /// Every fragment id, chunk by chunk.
    pub fragment_ids: Vec<FragmentId>,
    /// What the chunks were sealed with.
    pub keys: FileKeys,
}

pub struct FileEncoder {
    chunker: Chunker,
    coder: Coder,
    sealing: Sealing,
    ready: VecDeque<EncodedChunk>,
    ids: Vec<FragmentId>,
    hasher: ContentHasher,
}

impl FileEncoder {
    /// A version 2 encoder (what new files are): each chunk is sealed under
    /// its own convergent key as soon as its bytes are in, so a file needs
    /// one pass; its id comes from the content hash at the end.
    pub fn per_chunk(params: CodingParams, network: &NetworkKey, size: u64) -> Result<FileEncoder, DriveError> {
        let keyer = Box::new(ChunkKeyer::new(network, &params));
        FileEncoder::with(params, size, Sealing::PerChunk { keyer, keys: Vec::new() })
    }

    /// A version 1 encoder: every chunk under `key`, which with `file_id`
    /// came from the whole file's hash (see `keys::convergent_keys`).
    pub fn new(params: CodingParams, file_id: FileId, key: &FileKey, size: u64) -> Result<FileEncoder, DriveError> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
        FileEncoder::with(params, size, Sealing::Whole { cipher, file_id, key: key.clone() })
    }

    fn with(params: CodingParams, size: u64, sealing: Sealing) -> Result<FileEncoder, DriveError> {
        let mut encoder = FileEncoder {
            chunker: Chunker::new(params, size)?,
            coder: Coder::new(params)?,
            sealing,
            ready: VecDeque::new(),
            ids: Vec::new(),
            hasher: ContentHasher::new(),
        };
        // An empty file's only chunk is complete before any byte arrives.
        encoder.push(&[])?;
        Ok(encoder)
    }

    /// Feeds the next bytes of the file. Call [`FileEncoder::poll_chunk`]
    /// until it returns `None` after each push to keep memory bounded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), DriveError> {
        let FileEncoder { chunker, coder, sealing, ready, ids, hasher } = self;
        hasher.update(data);
        chunker.push(data, |index, last, plain| {
            let chunk = match sealing {
                Sealing::Whole { cipher, file_id, .. } => {
                    coder.encode(cipher, Binding::File(file_id), index, last, plain)?
                }
                Sealing::PerChunk { keyer, keys } => {
                    let key = keyer.key(index, last, plain);
                    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
                    keys.push(key);
                    coder.encode(&cipher, Binding::Chunk, index, last, plain)?
                }
            };
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

    /// Ends the file: checks that exactly the declared size was fed and
    /// every chunk was taken, and returns what its manifest needs.
    pub fn finish(self) -> Result<Encoded, DriveError> {
        self.chunker.finish()?;
        if !self.ready.is_empty() {
            return Err(DriveError::Internal("finish() called before every chunk was polled".into()));
        }
        let keys = match self.sealing {
            Sealing::Whole { file_id, key, .. } => FileKeys::Whole { file_id, key },
            Sealing::PerChunk { keys, .. } => FileKeys::PerChunk(keys),
        };
        Ok(Encoded { content_hash: self.hasher.finalize(), fragment_ids: self.ids, keys })
    }
}
