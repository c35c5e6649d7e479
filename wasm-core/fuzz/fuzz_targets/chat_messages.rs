//! Chat messages and receipts arrive from other people's nodes: decoding
//! any bytes must return a value or an error, and a decoded value
//! re-encodes to the very same bytes (one canonical form on every node).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::chat::{ChatMessage, Receipt};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ChatMessage::decode(data) {
        assert_eq!(message.encode(), data);
    }
    if let Ok(receipt) = Receipt::decode(data) {
        assert_eq!(receipt.encode(), data);
    }
});
