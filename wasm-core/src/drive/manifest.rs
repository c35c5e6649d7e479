//! The manifest: everything needed to find and restore one file.
//!
//! Binary, little endian, versions 1 and 2:
//!
//! ```text
//! "MMMF" | version u8 | file_id [32] | content_hash [32] | size u64
//! | chunk_size u32 | k u8 | m u8 | created_ms u64 | modified_ms u64
//! | name_len u16 | name utf-8 | type_len u8 | media type utf-8
//! | wrap nonce [24] | wrapped keys: v1 the file key [32 + 16],
//!                                  v2 a key per chunk [chunk_count × 32 + 16]
//! | chunk_count u64 | fragment ids [chunk_count × (k+m) × 32]
//! ```
//!
//! The wrapped keys are sealed with every other byte of the manifest as
//! associated data, so [`Manifest::open`] detects any change to any field
//! (the version included). Version 2 (chunks sealed under their own keys,
//! see `keys`) is what new files are; version 1 is still read.
//! [`Manifest::decode`] checks structure before it allocates anything: the
//! fragment table must be exactly as long as the declared size and
//! parameters imply.

use thiserror::Error;

use super::keys::{
    unwrap_keys, wrap_keys, ChunkKey, ContentHash, FileId, FileKey, FileKeys, FragmentId, NetworkKey, WrappedKeys,
};
use super::params::{CodingParams, ParamsError};
use super::DriveError;

const MAGIC: &[u8; 4] = b"MMMF";
/// The newest version this code reads.
pub const MANIFEST_VERSION: u8 = 2;
pub const MAX_NAME_LEN: usize = 1024;
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest is cut short: {field} is missing")]
    Truncated { field: &'static str },
    #[error("this is not a mailmesh manifest")]
    BadMagic,
    #[error("the manifest has version {0}, newer than this mailmesh understands (up to {MANIFEST_VERSION}); update mailmesh")]
    NewerVersion(u8),
    #[error("the manifest has version 0, which never existed")]
    ZeroVersion,
    #[error("the manifest's coding parameters are invalid: {0}")]
    Params(#[from] ParamsError),
    #[error("the manifest declares {declared} chunks, but a file of its size has {expected}")]
    ChunkCount { declared: u64, expected: u64 },
    #[error("the manifest's {field} is {len} bytes long; at most {max} are allowed")]
    FieldTooLong { field: &'static str, len: usize, max: usize },
    #[error("the manifest's {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("the manifest has {0} unexpected bytes at the end")]
    TrailingBytes(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// 1 or 2: what the wrap holds (see the module docs).
    pub version: u8,
    pub file_id: FileId,
    pub content_hash: ContentHash,
    pub size: u64,
    pub params: CodingParams,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub name: String,
    pub media_type: String,
    pub wrapped: WrappedKeys,
    /// Chunk by chunk, `k + m` ids each.
    pub fragment_ids: Vec<FragmentId>,
}

/// The fields a caller supplies; the key wrap is computed from them.
pub struct ManifestFields {
    pub file_id: FileId,
    pub content_hash: ContentHash,
    pub size: u64,
    pub params: CodingParams,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub name: String,
    pub media_type: String,
    pub fragment_ids: Vec<FragmentId>,
}

impl Manifest {
    /// Builds a manifest, wrapping `keys` under `network` with the random
    /// `wrap_nonce`; its version is the keys'.
    pub fn seal(
        fields: ManifestFields,
        keys: &FileKeys,
        network: &NetworkKey,
        wrap_nonce: [u8; 24],
    ) -> Result<Manifest, ManifestError> {
        let mut manifest = Manifest {
            version: keys.version(),
            file_id: fields.file_id,
            content_hash: fields.content_hash,
            size: fields.size,
            params: fields.params,
            created_ms: fields.created_ms,
            modified_ms: fields.modified_ms,
            name: fields.name,
            media_type: fields.media_type,
            wrapped: WrappedKeys { nonce: wrap_nonce, sealed: Vec::new() },
            fragment_ids: fields.fragment_ids,
        };
        manifest.validate()?;
        if let FileKeys::PerChunk(chunk_keys) = keys {
            let expected = manifest.chunk_count();
            if chunk_keys.len() as u64 != expected {
                return Err(ManifestError::ChunkCount { declared: chunk_keys.len() as u64, expected });
            }
        }
        manifest.wrapped = wrap_keys(network, keys, wrap_nonce, &manifest.authenticated_digest());
        Ok(manifest)
    }

    /// Unwraps the file's keys, proving the manifest unaltered and made in
    /// a network holding `network`.
    pub fn open(&self, network: &NetworkKey) -> Result<FileKeys, DriveError> {
        let mut keys = unwrap_keys(network, &self.wrapped, &self.authenticated_digest())?;
        match self.version {
            1 if keys.len() == 1 => {
                Ok(FileKeys::Whole { file_id: self.file_id, key: FileKey::from_bytes(keys.remove(0)) })
            }
            2 if keys.len() as u64 == self.chunk_count() => {
                Ok(FileKeys::PerChunk(keys.into_iter().map(ChunkKey::from_bytes).collect()))
            }
            _ => Err(DriveError::KeyCount { got: keys.len(), expected: self.chunk_count() }),
        }
    }

    /// Bytes of the wrapped keys a manifest of `version` has.
    fn wrapped_len(version: u8, chunk_count: u64) -> usize {
        WrappedKeys::sealed_len(if version == 1 { 1 } else { chunk_count })
    }

    /// The fragment ids of chunk `index`.
    pub fn chunk_ids(&self, index: u64) -> &[FragmentId] {
        let shards = self.params.shards();
        let start = (index as usize).saturating_mul(shards).min(self.fragment_ids.len());
        let end = start.saturating_add(shards).min(self.fragment_ids.len());
        &self.fragment_ids[start..end]
    }

    pub fn chunk_count(&self) -> u64 {
        self.params.chunk_count(self.size)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        self.params.check_size(self.size)?;
        check_len("name", self.name.len(), MAX_NAME_LEN)?;
        check_len("media type", self.media_type.len(), MAX_MEDIA_TYPE_LEN)?;
        let expected = self.params.chunk_count(self.size);
        let declared = (self.fragment_ids.len() / self.params.shards()) as u64;
        if !self.fragment_ids.len().is_multiple_of(self.params.shards()) || declared != expected {
            return Err(ManifestError::ChunkCount { declared, expected });
        }
        Ok(())
    }

    /// BLAKE3 of the encoding without the wrapped key: what the wrap binds.
    fn authenticated_digest(&self) -> [u8; 32] {
        *blake3::hash(&self.encode_inner(false)).as_bytes()
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_inner(true)
    }

    fn encode_inner(&self, with_key: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.name.len() + self.fragment_ids.len() * 32);
        out.extend_from_slice(MAGIC);
        out.push(self.version);
        out.extend_from_slice(&self.file_id.0);
        out.extend_from_slice(&self.content_hash.0);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.params.chunk_size().to_le_bytes());
        out.push(self.params.k() as u8);
        out.push(self.params.m() as u8);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.modified_ms.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.media_type.len() as u8);
        out.extend_from_slice(self.media_type.as_bytes());
        if with_key {
            out.extend_from_slice(&self.wrapped.nonce);
            out.extend_from_slice(&self.wrapped.sealed);
        }
        out.extend_from_slice(&self.chunk_count().to_le_bytes());
        for id in &self.fragment_ids {
            out.extend_from_slice(&id.0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader { bytes };
        if r.take(4, "magic")? != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = match r.u8("version")? {
            0 => return Err(ManifestError::ZeroVersion),
            known @ 1..=MANIFEST_VERSION => known,
            newer => return Err(ManifestError::NewerVersion(newer)),
        };
        let file_id = FileId(r.array("file id")?);
        let content_hash = ContentHash(r.array("content hash")?);
        let size = r.u64("size")?;
        let chunk_size = u32::from_le_bytes(r.array("chunk size")?);
        let k = r.u8("k")?;
        let m = r.u8("m")?;
        let params = CodingParams::new(k, m, chunk_size)?;
        params.check_size(size)?;
        let created_ms = r.u64("created time")?;
        let modified_ms = r.u64("modified time")?;
        let name_len = u16::from_le_bytes(r.array("name length")?) as usize;
        check_len("name", name_len, MAX_NAME_LEN)?;
        let name = std::str::from_utf8(r.take(name_len, "name")?).map_err(|_| ManifestError::NotUtf8("name"))?;
        let media_len = r.u8("media type length")? as usize;
        let media_type =
            std::str::from_utf8(r.take(media_len, "media type")?).map_err(|_| ManifestError::NotUtf8("media type"))?;
        let expected = params.chunk_count(size);
        // Bounded like the fragment table below: by the size check, and by
        // the input, which must hold all of it.
        let nonce = r.array("key nonce")?;
        let sealed = r.take(Manifest::wrapped_len(version, expected), "wrapped keys")?.to_vec();
        let wrapped = WrappedKeys { nonce, sealed };
        let declared = r.u64("chunk count")?;
        if declared != expected {
            return Err(ManifestError::ChunkCount { declared, expected });
        }
        // The count is now bounded by the size check, and the table must be
        // exactly this long, so the allocation below is at most the input's.
        let table_len = expected as usize * params.shards() * 32;
        let table = r.take(table_len, "fragment ids")?;
        if !r.bytes.is_empty() {
            return Err(ManifestError::TrailingBytes(r.bytes.len()));
        }
        let fragment_ids = table
            .chunks_exact(32)
            .map(|c| {
                let mut id = [0u8; 32];
                id.copy_from_slice(c);
                FragmentId(id)
            })
            .collect();
        Ok(Manifest {
            version,
            file_id,
            content_hash,
            size,
            params,
            created_ms,
            modified_ms,
            name: name.to_string(),
            media_type: media_type.to_string(),
            wrapped,
            fragment_ids,
        })
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), ManifestError> {
    if len > max {
        Err(ManifestError::FieldTooLong { field, len, max })
    } else {
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ManifestError> {
        if self.bytes.len() < n {
            return Err(ManifestError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ManifestError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, ManifestError> {
        Ok(self.take(1, field)?[0])
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}
