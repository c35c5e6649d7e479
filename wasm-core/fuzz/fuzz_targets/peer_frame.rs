//! Frames arrive from peers on data channels and the relay: decoding any
//! bytes must return a frame or an error, and a decoded frame re-encodes
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::peer::frame::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = frame.encode().expect("a decoded frame encodes");
        assert_eq!(Frame::decode(&again).expect("and decodes again"), frame);
    }
});
