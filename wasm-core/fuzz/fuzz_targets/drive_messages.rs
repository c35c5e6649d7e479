//! Drive messages arrive from the owner's other engines, and a stolen or
//! buggy one may send anything: decoding any bytes must return a message or
//! an error, and a decoded message re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::drive::net::DriveMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = DriveMessage::decode(data) else { return };
    assert_eq!(message.encode(), data);
});
