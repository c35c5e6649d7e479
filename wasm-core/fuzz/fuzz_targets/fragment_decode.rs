//! Fragments arrive from other nodes: any bytes offered as any subset of a
//! chunk's fragments must either restore the exact chunk or fail with an
//! error — never panic, never return wrong bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailmesh_core::drive::{CodingParams, EncodedChunk, FileDecoder, FileEncoder, NetworkKey};

struct Fixture {
    plain: Vec<u8>,
    chunk: EncodedChunk,
    decoder: FileDecoder,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let params = CodingParams::new(3, 2, 4096).expect("valid parameters");
        let plain: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let network = NetworkKey::from_bytes([1; 32]);
        let mut encoder = FileEncoder::per_chunk(params, &network, plain.len() as u64).expect("encoder");
        encoder.push(&plain).expect("push");
        let chunk = encoder.poll_chunk().expect("one chunk");
        let encoded = encoder.finish().expect("finish");
        let decoder =
            FileDecoder::new(params, encoded.keys, plain.len() as u64, encoded.fragment_ids).expect("decoder");
        Fixture { plain, chunk, decoder }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mask, rest)) = data.split_first() else { return };
    // Bit i of the mask: offer fragment i; fragments are taken from the
    // fuzz input (possibly garbage) or, past its end, the real ones.
    let mut pieces = rest.chunks(f.chunk.shard_len.max(1));
    let fragments: Vec<Option<Vec<u8>>> = (0..5)
        .map(|i| {
            (mask >> i & 1 == 1).then(|| pieces.next().map(<[u8]>::to_vec).unwrap_or_else(|| f.chunk.fragment(i).to_vec()))
        })
        .collect();
    let borrowed: Vec<Option<&[u8]>> = fragments.iter().map(|f| f.as_deref()).collect();
    if let Ok(plain) = f.decoder.decode_chunk(0, &borrowed) {
        assert_eq!(plain, f.plain);
    }
});
