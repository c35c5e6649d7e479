//! Native messages come from the browser, and the control socket from any
//! process of the user: any byte stream must decode into frames and
//! requests, or typed errors — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_api as api;
use mailmesh_api::framing::{Decoded, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    // Feed in uneven pieces, as a pipe delivers them.
    for piece in data.chunks(7) {
        decoder.feed(piece);
        while let Some(decoded) = decoder.next_frame() {
            if let Decoded::Frame(body) = decoded {
                if let Err(reply) = api::decode_request(&body) {
                    let _ = reply.encode();
                }
            }
        }
    }
    let _ = decoder.finish();
    let _ = api::decode_request(data);
});
