//! Whole-pipeline tests: encode → fragments → any k → decode, tampering,
//! and the manifest format.

use proptest::prelude::*;

use super::*;

const NK: [u8; 32] = [0x42; 32];

struct Stored {
    manifest: Manifest,
    chunks: Vec<EncodedChunk>,
}

/// `data` stored as new files are (version 2), fed in pieces of `feed`.
fn store(data: &[u8], params: CodingParams, feed: usize) -> Stored {
    store_in(2, data, params, feed)
}

/// `data` stored in manifest `version` (1: one key from the whole file's
/// hash, as files added before version 2 are).
fn store_in(version: u8, data: &[u8], params: CodingParams, feed: usize) -> Stored {
    let network = NetworkKey::from_bytes(NK);
    let mut encoder = if version == 1 {
        let mut hasher = ContentHasher::new();
        hasher.update(data);
        let (file_id, file_key) = convergent_keys(&network, &hasher.finalize(), &params);
        FileEncoder::new(params, file_id, &file_key, data.len() as u64).unwrap()
    } else {
        FileEncoder::per_chunk(params, &network, data.len() as u64).unwrap()
    };
    let mut chunks = Vec::new();
    for piece in data.chunks(feed.max(1)) {
        encoder.push(piece).unwrap();
        while let Some(c) = encoder.poll_chunk() {
            chunks.push(c);
        }
    }
    while let Some(c) = encoder.poll_chunk() {
        chunks.push(c);
    }
    let Encoded { content_hash, fragment_ids, keys } = encoder.finish().unwrap();
    assert_eq!(content_hash, ContentHash(*blake3::hash(data).as_bytes()));
    let fields = ManifestFields {
        file_id: file_id_of(&network, &content_hash, &params),
        content_hash,
        size: data.len() as u64,
        params,
        created_ms: 1_700_000_000_000,
        modified_ms: 1_700_000_000_001,
        name: "report ü.pdf".into(),
        media_type: "application/pdf".into(),
        fragment_ids,
    };
    let manifest = Manifest::seal(fields, &keys, &network, [7; 24]).unwrap();
    assert_eq!(manifest.version, version);
    Stored { manifest, chunks }
}

/// Restores the file from the fragments `pick` keeps (by shard index).
fn restore(s: &Stored, pick: impl Fn(u64, usize) -> bool) -> Result<Vec<u8>, DriveError> {
    let manifest = Manifest::decode(&s.manifest.encode())?;
    let keys = manifest.open(&NetworkKey::from_bytes(NK))?;
    let decoder = FileDecoder::new(manifest.params, keys, manifest.size, manifest.fragment_ids.clone())?;
    let mut out = Vec::new();
    for chunk in &s.chunks {
        let fragments: Vec<Option<&[u8]>> =
            chunk.fragments().enumerate().map(|(i, f)| pick(chunk.index, i).then_some(f)).collect();
        out.extend(decoder.decode_chunk(chunk.index, &fragments)?);
    }
    Ok(out)
}

fn params_strategy() -> impl Strategy<Value = CodingParams> {
    (1u8..=8, 1u8..=4, prop_oneof![Just(4096u32), Just(5000), Just(65536)])
        .prop_map(|(k, m, c)| CodingParams::new(k, m, c).unwrap())
}

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0), Just(1), Just(4096), Just(8192), Just(5000 * 3), 0usize..40_000]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_k_fragments_restore_the_exact_bytes(
        params in params_strategy(),
        size in size_strategy(),
        feed in 1usize..10_000,
        seed in any::<u64>(),
        version in 1u8..=2,
    ) {
        let data: Vec<u8> = (0..size).map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3]).collect();
        let stored = store_in(version, &data, params, feed);
        prop_assert_eq!(stored.chunks.len() as u64, params.chunk_count(size as u64));
        // A different random subset of exactly k fragments for every chunk.
        let n = params.shards();
        let k = params.k();
        let keep = |chunk: u64, shard: usize| {
            let start = (seed.wrapping_add(chunk.wrapping_mul(2654435761)) % n as u64) as usize;
            (shard + n - start) % n < k
        };
        prop_assert_eq!(restore(&stored, keep).unwrap(), data);
    }

    #[test]
    fn fewer_than_k_fragments_is_a_clear_error(params in params_strategy(), size in 1usize..20_000) {
        let data = vec![9u8; size];
        let stored = store(&data, params, 4096);
        let k = params.k();
        let err = restore(&stored, |_, shard| shard < k - 1).unwrap_err();
        prop_assert_eq!(err, DriveError::TooFewFragments { chunk: 0, have: k - 1, need: k });
    }

    #[test]
    fn a_flipped_bit_in_any_fragment_is_never_used(params in params_strategy(), size in 1usize..20_000, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut stored = store(&data, params, 4096);
        let chunk = &mut stored.chunks[0];
        let at = pos.index(chunk.bytes.len());
        chunk.bytes[at] ^= 1 << bit;
        let damaged_shard = at / chunk.shard_len;
        // With every fragment offered, the damaged one is skipped and a
        // healthy one takes its place.
        prop_assert_eq!(restore(&stored, |_, _| true).unwrap(), data.clone());
        // With the damaged one and only k - 1 healthy ones offered, the
        // damage is reported, not decoded.
        let k = params.k();
        let others: Vec<usize> = (0..params.shards()).filter(|s| *s != damaged_shard).take(k - 1).collect();
        let err = restore(&stored, |c, shard| c != 0 || shard == damaged_shard || others.contains(&shard)).unwrap_err();
        prop_assert_eq!(err, DriveError::DamagedFragments { chunk: 0, damaged: 1, have: k - 1, need: k });
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_manifest_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8, version in 1u8..=2) {
        let stored = store_in(version, &[b'x'; 9000], CodingParams::new(2, 1, 4096).unwrap(), 100);
        let mut bytes = stored.manifest.encode();
        let at = pos.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let outcome = Manifest::decode(&bytes).map_err(DriveError::from).and_then(|m| m.open(&NetworkKey::from_bytes(NK)));
        prop_assert!(outcome.is_err(), "flip at byte {} went unnoticed", at);
    }

    #[test]
    fn manifests_round_trip(params in params_strategy(), size in size_strategy(), name in "\\PC{0,60}", media in "[a-z]{1,20}/[a-z0-9.+-]{1,30}", version in 1u8..=2) {
        let data = vec![1u8; size];
        let mut stored = store_in(version, &data, params, 65536);
        stored.manifest.name = name;
        stored.manifest.media_type = media;
        let decoded = Manifest::decode(&stored.manifest.encode()).unwrap();
        prop_assert_eq!(decoded, stored.manifest);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Manifest::decode(&bytes);
        for version in [1, 2] {
            let mut with_header = b"MMMF".to_vec();
            with_header.push(version);
            with_header.extend(&bytes);
            let _ = Manifest::decode(&with_header);
        }
    }
}

#[test]
fn a_wrong_network_key_is_its_own_error() {
    let stored = store(b"secret", CodingParams::default(), 10);
    assert_eq!(stored.manifest.open(&NetworkKey::from_bytes([1; 32])), Err(DriveError::KeyUnwrap));
}

#[test]
fn a_wrong_key_fails_authentication_not_silently() {
    for version in [1, 2] {
        let stored = store_in(version, &[5u8; 10_000], CodingParams::new(2, 1, 4096).unwrap(), 4096);
        let m = &stored.manifest;
        let wrong = match m.open(&NetworkKey::from_bytes(NK)).unwrap() {
            FileKeys::Whole { file_id, .. } => FileKeys::Whole { file_id, key: FileKey::from_bytes([0; 32]) },
            FileKeys::PerChunk(keys) => FileKeys::PerChunk(vec![ChunkKey::from_bytes([0; 32]); keys.len()]),
        };
        let decoder = FileDecoder::new(m.params, wrong, m.size, m.fragment_ids.clone()).unwrap();
        let c = &stored.chunks[1];
        let fragments: Vec<Option<&[u8]>> = c.fragments().map(Some).collect();
        assert_eq!(decoder.decode_chunk(1, &fragments), Err(DriveError::ChunkAuthentication { chunk: 1 }));
    }
}

#[test]
fn a_version_2_decoder_needs_a_key_for_every_chunk() {
    let stored = store(&[5u8; 10_000], CodingParams::new(2, 1, 4096).unwrap(), 4096);
    let m = &stored.manifest;
    let keys = FileKeys::PerChunk(vec![ChunkKey::from_bytes([0; 32]); 2]);
    assert!(matches!(
        FileDecoder::new(m.params, keys, m.size, m.fragment_ids.clone()),
        Err(DriveError::KeyCount { got: 2, expected: 3 })
    ));
}

#[test]
fn both_versions_give_the_same_content_the_same_id_and_bytes() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 249) as u8).collect();
    let params = CodingParams::new(3, 2, 4096).unwrap();
    let (v1, v2) = (store_in(1, &data, params, 999), store_in(2, &data, params, 4096));
    assert_eq!(v1.manifest.file_id, v2.manifest.file_id, "an add deduplicates against either");
    assert_ne!(v1.manifest.fragment_ids, v2.manifest.fragment_ids);
    assert_eq!(restore(&v1, |_, _| true).unwrap(), data);
    assert_eq!(restore(&v2, |_, _| true).unwrap(), data);
}

#[test]
fn chunks_cannot_be_swapped() {
    let stored = store(&[3u8; 3 * 4096], CodingParams::new(2, 1, 4096).unwrap(), 4096);
    let m = &stored.manifest;
    let keys = m.open(&NetworkKey::from_bytes(NK)).unwrap();
    // A manifest whose chunk table lists chunk 1's fragments as chunk 0.
    let mut ids = m.fragment_ids.clone();
    ids.swap(0, 3);
    ids.swap(1, 4);
    ids.swap(2, 5);
    let decoder = FileDecoder::new(m.params, keys, m.size, ids).unwrap();
    let fragments: Vec<Option<&[u8]>> = stored.chunks[1].fragments().map(Some).collect();
    assert_eq!(decoder.decode_chunk(0, &fragments), Err(DriveError::ChunkAuthentication { chunk: 0 }));
}

#[test]
fn the_same_content_is_stored_once() {
    let a = store(b"the same attachment", CodingParams::default(), 3);
    let b = store(b"the same attachment", CodingParams::default(), 7);
    assert_eq!(a.manifest.file_id, b.manifest.file_id);
    assert_eq!(a.manifest.fragment_ids, b.manifest.fragment_ids);
    let c = store(b"another attachment!", CodingParams::default(), 7);
    assert_ne!(a.manifest.file_id, c.manifest.file_id);
}

#[test]
fn feeding_the_wrong_amount_is_refused() {
    let params = CodingParams::default();
    let mut e = FileEncoder::new(params, FileId([1; 32]), &FileKey::from_bytes([2; 32]), 10).unwrap();
    assert_eq!(e.push(&[0; 11]), Err(DriveError::SizeExceeded { declared: 10 }));
    e.push(&[0; 4]).unwrap();
    assert!(matches!(e.finish(), Err(DriveError::SizeShort { declared: 10, got: 4 })));
}

#[test]
fn manifest_errors_are_specific() {
    let stored = store(b"abc", CodingParams::new(2, 1, 4096).unwrap(), 1);
    let good = stored.manifest.encode();
    assert_eq!(Manifest::decode(&good[..3]), Err(ManifestError::Truncated { field: "magic" }));
    let mut v = good.clone();
    v[4] = 9;
    assert_eq!(Manifest::decode(&v), Err(ManifestError::NewerVersion(9)));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(Manifest::decode(&long), Err(ManifestError::TrailingBytes(1)));
    // An absurd size is refused before any allocation.
    let mut huge = good.clone();
    huge[69..77].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Manifest::decode(&huge), Err(ManifestError::Params(ParamsError::FileTooLarge(_)))));
    // A chunk count that does not match the size.
    let mut count = good.clone();
    let at = good.len() - 3 * 32 - 8;
    count[at..at + 8].copy_from_slice(&1000u64.to_le_bytes());
    assert_eq!(Manifest::decode(&count), Err(ManifestError::ChunkCount { declared: 1000, expected: 1 }));
}

/// Pinned output for fixed inputs. The same vector is checked in the wasm
/// build (tests/e2e/core-wasm.test.js): both builds must code identically.
#[test]
fn known_answer() {
    let params = CodingParams::new(4, 2, 4096).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut e = FileEncoder::new(params, FileId([2; 32]), &FileKey::from_bytes([1; 32]), data.len() as u64).unwrap();
    e.push(&data).unwrap();
    while e.poll_chunk().is_some() {}
    let ids = e.finish().unwrap().fragment_ids;
    assert_eq!(ids.len(), 18);
    let digest = blake3::hash(&ids.iter().flat_map(|id| id.0).collect::<Vec<u8>>());
    assert_eq!(digest.to_hex().as_str(), KNOWN_ANSWER);
}

pub const KNOWN_ANSWER: &str = "98113f66e6b45fa0ef2cc21db93070f9ecb9ad6283782396fd368651e189c9e2";

#[test]
fn any_k_fragments_rebuild_the_lost_ones_exactly() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let s = store(&data, CodingParams::default(), 65_536);
    let manifest = &s.manifest;
    let keys = manifest.open(&NetworkKey::from_bytes(NK)).unwrap();
    let decoder = FileDecoder::new(manifest.params, keys, manifest.size, manifest.fragment_ids.clone()).unwrap();
    for chunk in &s.chunks {
        // Only the two parity fragments and two data fragments survive.
        let kept: Vec<Option<&[u8]>> = chunk.fragments().enumerate().map(|(i, f)| (i >= 2).then_some(f)).collect();
        let rebuilt = decoder.rebuild_chunk(chunk.index, &kept).unwrap();
        assert_eq!(rebuilt.bytes, chunk.bytes, "chunk {} comes back byte for byte", chunk.index);
    }
}
