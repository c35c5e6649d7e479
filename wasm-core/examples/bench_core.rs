//! Native half of `scripts/bench core`: encode and decode throughput of the
//! drive pipeline on one core, printed as one JSON line. Not a test: the
//! numbers are compared side by side with the wasm and JavaScript runs of
//! the same bench (tests/bench/core.js).
//!
//! Usage: `cargo run --release -p mailmesh-core --example bench_core -- [MiB]`

use std::time::Instant;

use mailmesh_core::drive::{CodingParams, FileDecoder, FileEncoder, FileId, FileKey, FileKeys};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let params = CodingParams::default();
    let size = mib * 1024 * 1024;
    // Incompressible, cheap to make: a xorshift stream.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let key = FileKey::from_bytes([7; 32]);
    let id = FileId([9; 32]);

    let mut best_encode = f64::MAX;
    let mut chunks = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        chunks.clear();
        let start = Instant::now();
        let mut encoder = FileEncoder::new(params, id, &key, size as u64).expect("encoder");
        for piece in data.chunks(1 << 20) {
            encoder.push(piece).expect("push");
            while let Some(c) = encoder.poll_chunk() {
                chunks.push(c);
            }
        }
        ids = encoder.finish().expect("finish").fragment_ids;
        best_encode = best_encode.min(start.elapsed().as_secs_f64());
    }

    let decoder = FileDecoder::new(params, FileKeys::Whole { file_id: id, key }, size as u64, ids).expect("decoder");
    let decode = |drop_data_shards: usize| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let mut total = 0usize;
            for c in &chunks {
                let fragments: Vec<Option<&[u8]>> =
                    c.fragments().enumerate().map(|(i, f)| (i >= drop_data_shards).then_some(f)).collect();
                total += decoder.decode_chunk(c.index, &fragments).expect("decode").len();
            }
            assert_eq!(total, size);
            best = best.min(start.elapsed().as_secs_f64());
        }
        best
    };
    let best_decode = decode(0);
    let best_repair = decode(params.m());

    let mb = size as f64 / 1e6;
    println!(
        "{{\"bytes\":{size},\"encode_mbps\":{:.1},\"decode_mbps\":{:.1},\"decode_with_reconstruction_mbps\":{:.1}}}",
        mb / best_encode,
        mb / best_decode,
        mb / best_repair
    );
}
