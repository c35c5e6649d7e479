//! One chunk, both ways: plaintext → sealed → `k + m` fragments, and any `k`
//! fragments → sealed → plaintext.
//!
//! Sealing: ChaCha20-Poly1305, nonce the chunk index. Version 2: under the
//! chunk's own key, derived from its bytes, its index and whether it is the
//! last (see `keys::ChunkKeyer`), so a key and nonce seal one plaintext
//! with one associated data only; the associated data ("MMC2", index, last
//! flag) keeps a chunk from being reordered or a file silently truncated,
//! and the manifest's fragment ids pin every chunk to its file. Version 1:
//! under the file's key (one per content), the associated data ("MMC1",
//! file id, index, last flag) binding the file as well.
//!
//! Coding: the sealed bytes are laid out in one buffer of `k + m` equal
//! shards (zero padded), and Reed-Solomon fills the `m` parity shards.

use super::gf::ReedSolomon;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

use super::keys::{FileId, FragmentId};
use super::params::{CodingParams, TAG_LEN};
use super::DriveError;

/// A coded chunk: all fragments back to back, each `shard_len` long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedChunk {
    pub index: u64,
    pub shard_len: usize,
    pub bytes: Vec<u8>,
    pub ids: Vec<FragmentId>,
}

impl EncodedChunk {
    /// Fragment `shard` (data shards first, then parity).
    pub fn fragment(&self, shard: usize) -> &[u8] {
        &self.bytes[shard * self.shard_len..(shard + 1) * self.shard_len]
    }

    pub fn fragments(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks(self.shard_len.max(1))
    }
}

fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_le_bytes());
    *Nonce::from_slice(&n)
}

/// What a chunk's seal binds besides its index and last flag: the file's
/// id (version 1) or nothing more (version 2, whose key is the chunk's own).
#[derive(Clone, Copy, Debug)]
pub enum Binding<'a> {
    File(&'a FileId),
    Chunk,
}

fn associated_data(binding: Binding, index: u64, last: bool) -> Vec<u8> {
    let mut ad = Vec::with_capacity(45);
    match binding {
        Binding::File(file_id) => {
            ad.extend_from_slice(b"MMC1");
            ad.extend_from_slice(&file_id.0);
        }
        Binding::Chunk => ad.extend_from_slice(b"MMC2"),
    }
    ad.extend_from_slice(&index.to_le_bytes());
    ad.push(last as u8);
    ad
}

/// Reed-Solomon for one parameter set, built once per file.
pub struct Coder {
    params: CodingParams,
    rs: ReedSolomon,
}

impl Coder {
    pub fn new(params: CodingParams) -> Result<Coder, DriveError> {
        // CodingParams already guarantees 1 <= k, 1 <= m, k + m <= 255.
        let rs = ReedSolomon::new(params.k(), params.m()).map_err(|e| DriveError::Internal(e.to_string()))?;
        Ok(Coder { params, rs })
    }

    pub fn params(&self) -> &CodingParams {
        &self.params
    }

    /// Seals `plain` as chunk `index` and codes it into fragments.
    pub fn encode(
        &self,
        cipher: &ChaCha20Poly1305,
        binding: Binding,
        index: u64,
        last: bool,
        plain: &[u8],
    ) -> Result<EncodedChunk, DriveError> {
        let mut bytes = Vec::with_capacity(self.coded_len(plain.len()));
        bytes.extend_from_slice(plain);
        bytes.resize(self.coded_len(plain.len()), 0);
        seal_in_place(cipher, binding, index, last, plain.len(), &mut bytes)?;
        self.fill_parity(index, bytes)
    }

    /// Bytes of all fragments of a chunk of `plain_len` bytes.
    fn coded_len(&self, plain_len: usize) -> usize {
        (plain_len + TAG_LEN).div_ceil(self.params.k()) * self.params.shards()
    }

    /// Fills the parity shards of `bytes` (sealed data, zero padded, then
    /// room for parity) and names every fragment.
    fn fill_parity(&self, index: u64, mut bytes: Vec<u8>) -> Result<EncodedChunk, DriveError> {
        let shard_len = bytes.len() / self.params.shards();
        {
            let mut shards: Vec<&mut [u8]> = bytes.chunks_mut(shard_len.max(1)).collect();
            self.rs.encode(&mut shards).map_err(|e| DriveError::Internal(e.to_string()))?;
        }
        let ids = bytes.chunks(shard_len.max(1)).map(FragmentId::of).collect();
        Ok(EncodedChunk { index, shard_len, bytes, ids })
    }

    /// Restores chunk `index` from fragments given in shard order (`None` for
    /// missing ones). Each fragment used is checked against `ids` first; a
    /// fragment that does not match is treated as missing.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        cipher: &ChaCha20Poly1305,
        binding: Binding,
        index: u64,
        last: bool,
        plain_len: usize,
        ids: &[FragmentId],
        fragments: &[Option<&[u8]>],
    ) -> Result<Vec<u8>, DriveError> {
        let k = self.params.k();
        let shards = self.params.shards();
        if fragments.len() != shards || ids.len() != shards {
            return Err(DriveError::FragmentCount { chunk: index, got: fragments.len(), expected: shards });
        }
        let sealed_len = plain_len + TAG_LEN;
        let shard_len = sealed_len.div_ceil(k);

        // Verify fragments in order until k good ones are found: the data
        // shards come first, so with all of them present no decoding work
        // beyond hashing is needed.
        let mut good: Vec<Option<&[u8]>> = vec![None; shards];
        let mut have = 0;
        let mut corrupt = 0;
        for (shard, fragment) in fragments.iter().enumerate() {
            if have == k {
                break;
            }
            let Some(bytes) = fragment else { continue };
            if bytes.len() == shard_len && FragmentId::of(bytes) == ids[shard] {
                good[shard] = Some(bytes);
                have += 1;
            } else {
                corrupt += 1;
            }
        }
        if have < k {
            return Err(if corrupt > 0 {
                DriveError::DamagedFragments { chunk: index, damaged: corrupt, have, need: k }
            } else {
                DriveError::TooFewFragments { chunk: index, have, need: k }
            });
        }
        let mut sealed = Vec::with_capacity(shard_len * k);
        if good[..k].iter().all(Option::is_some) {
            for shard in good.iter().take(k).flatten() {
                sealed.extend_from_slice(shard);
            }
        } else {
            let mut owned: Vec<Option<Vec<u8>>> = good.iter().map(|g| g.map(<[u8]>::to_vec)).collect();
            self.rs.reconstruct_data(&mut owned).map_err(|e| DriveError::Internal(e.to_string()))?;
            for shard in owned.into_iter().take(k) {
                sealed.extend_from_slice(&shard.unwrap_or_default());
            }
        }
        sealed.truncate(sealed_len);
        unseal(cipher, binding, index, last, sealed)
    }
}

/// Seals the first `plain_len` bytes of `buf` in place and writes the tag
/// right after them.
fn seal_in_place(
    cipher: &ChaCha20Poly1305,
    binding: Binding,
    index: u64,
    last: bool,
    plain_len: usize,
    buf: &mut [u8],
) -> Result<(), DriveError> {
    let ad = associated_data(binding, index, last);
    let tag = cipher
        .encrypt_in_place_detached(&nonce(index), &ad, &mut buf[..plain_len])
        .map_err(|_| DriveError::Internal("chunk too large to seal".into()))?;
    buf[plain_len..plain_len + TAG_LEN].copy_from_slice(&tag);
    Ok(())
}

/// Opens a sealed chunk (ciphertext then tag) in place.
fn unseal(
    cipher: &ChaCha20Poly1305,
    binding: Binding,
    index: u64,
    last: bool,
    mut sealed: Vec<u8>,
) -> Result<Vec<u8>, DriveError> {
    let plain_len = sealed.len().saturating_sub(TAG_LEN);
    let tag = Tag::clone_from_slice(&sealed[plain_len..]);
    sealed.truncate(plain_len);
    let ad = associated_data(binding, index, last);
    cipher
        .decrypt_in_place_detached(&nonce(index), &ad, &mut sealed, &tag)
        .map_err(|_| DriveError::ChunkAuthentication { chunk: index })?;
    Ok(sealed)
}
