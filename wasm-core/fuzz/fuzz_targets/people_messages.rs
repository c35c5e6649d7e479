//! Challenges arrive by mail from anyone, answers over links from other
//! people's nodes, pins from the owner's other nodes: decoding any bytes
//! must give a message or an error, and a decoded message re-encodes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::people::{Answer, Challenge, Pins};

fuzz_target!(|data: &[u8]| {
    if let Ok(challenge) = Challenge::decode(data) {
        assert_eq!(challenge.encode(), data);
    }
    if let Ok(answer) = Answer::decode(data) {
        assert_eq!(answer.encode(), data);
    }
    if let Ok(pins) = Pins::decode(data) {
        assert_eq!(pins.encode(), data);
    }
});
