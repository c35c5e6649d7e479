//! Transfer messages arrive from other people's nodes: decoding any bytes
//! must return a message or an error, a decoded message re-encodes to the
//! same bytes, and a chunk never opens under a key it was not sealed with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::transfer::{Incoming, TransferMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = TransferMessage::decode(data) else { return };
    assert_eq!(message.encode(), data);
    if let TransferMessage::Offer(offer) = message {
        let mut receiver = Incoming::new(offer, 0);
        let _ = receiver.handle_chunk(0, data);
    }
});
