//! Coding parameters of a file: chunk size, data shards `k`, parity shards
//! `m`, and the sizes that follow from them.
//!
//! Every size in the drive format is derived from these and the file size,
//! so a manifest stores no per-chunk lengths that could disagree.

use thiserror::Error;

/// Poly1305 tag appended to each sealed chunk.
pub const TAG_LEN: usize = 16;
/// Smallest chunk: below this the per-chunk overhead dominates.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest chunk: bounds the memory one chunk can take while coding.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Reed-Solomon over GF(2^8) allows at most 256 shards; stay within a byte.
pub const MAX_SHARDS: usize = 255;
/// Largest file the format accepts (256 TiB): rules out absurd sizes from a
/// damaged or hostile manifest before anything is allocated.
pub const MAX_FILE_SIZE: u64 = 1 << 48;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParamsError {
    #[error("k (data fragments per chunk) must be at least 1")]
    ZeroK,
    #[error("m (parity fragments per chunk) must be at least 1")]
    ZeroM,
    #[error("k + m = {0} fragments per chunk is more than the {MAX_SHARDS} Reed-Solomon allows")]
    TooManyShards(usize),
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes")]
    ChunkSize(u32),
    #[error("a file of {0} bytes is larger than mailmesh supports")]
    FileTooLarge(u64),
}

/// Validated coding parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodingParams {
    k: u8,
    m: u8,
    chunk_size: u32,
}

impl Default for CodingParams {
    /// 4 data + 2 parity fragments of 1 MiB chunks: survives the loss of any
    /// two fragment holders at 1.5x storage.
    fn default() -> Self {
        CodingParams { k: 4, m: 2, chunk_size: 1024 * 1024 }
    }
}

impl CodingParams {
    pub fn new(k: u8, m: u8, chunk_size: u32) -> Result<CodingParams, ParamsError> {
        if k == 0 {
            return Err(ParamsError::ZeroK);
        }
        if m == 0 {
            return Err(ParamsError::ZeroM);
        }
        let shards = k as usize + m as usize;
        if shards > MAX_SHARDS {
            return Err(ParamsError::TooManyShards(shards));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(ParamsError::ChunkSize(chunk_size));
        }
        Ok(CodingParams { k, m, chunk_size })
    }

    pub fn k(&self) -> usize {
        self.k as usize
    }
    pub fn m(&self) -> usize {
        self.m as usize
    }
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Fragments per chunk, `k + m`.
    pub fn shards(&self) -> usize {
        self.k() + self.m()
    }

    /// Checks that a file of `size` bytes can be coded.
    pub fn check_size(&self, size: u64) -> Result<(), ParamsError> {
        if size > MAX_FILE_SIZE {
            Err(ParamsError::FileTooLarge(size))
        } else {
            Ok(())
        }
    }

    /// Number of chunks of a file. An empty file still has one (empty)
    /// chunk, so that its emptiness is authenticated like any content.
    pub fn chunk_count(&self, size: u64) -> u64 {
        size.div_ceil(self.chunk_size as u64).max(1)
    }

    /// Plaintext length of chunk `index` of a file of `size` bytes.
    pub fn plain_len(&self, size: u64, index: u64) -> usize {
        let start = index.saturating_mul(self.chunk_size as u64);
        size.saturating_sub(start).min(self.chunk_size as u64) as usize
    }

    /// Sealed (ciphertext + tag) length of chunk `index`.
    pub fn sealed_len(&self, size: u64, index: u64) -> usize {
        self.plain_len(size, index) + TAG_LEN
    }

    /// Length of each fragment of chunk `index`.
    pub fn shard_len(&self, size: u64, index: u64) -> usize {
        self.sealed_len(size, index).div_ceil(self.k())
    }

    /// The parameters as bytes, for key derivation and the manifest.
    pub fn to_bytes(&self) -> [u8; 6] {
        let c = self.chunk_size.to_le_bytes();
        [self.k, self.m, c[0], c[1], c[2], c[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_from_the_file_size() {
        let p = CodingParams::new(4, 2, 4096).unwrap();
        assert_eq!(p.chunk_count(0), 1);
        assert_eq!(p.plain_len(0, 0), 0);
        assert_eq!(p.shard_len(0, 0), 4);
        assert_eq!(p.chunk_count(4096), 1);
        assert_eq!(p.chunk_count(4097), 2);
        assert_eq!(p.plain_len(4097, 1), 1);
        assert_eq!(p.sealed_len(4097, 0), 4096 + 16);
        assert_eq!(p.shard_len(4097, 0), 1028);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(CodingParams::new(0, 2, 4096), Err(ParamsError::ZeroK));
        assert_eq!(CodingParams::new(2, 0, 4096), Err(ParamsError::ZeroM));
        assert_eq!(CodingParams::new(200, 100, 4096), Err(ParamsError::TooManyShards(300)));
        assert_eq!(CodingParams::new(4, 2, 100), Err(ParamsError::ChunkSize(100)));
    }
}
