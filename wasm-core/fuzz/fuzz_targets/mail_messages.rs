//! Everything mailmesh reads from the owner's mailbox, where anyone can
//! mail: join requests, approvals, proofs, welcomes, rekeys and rosters
//! (verified too, as the engine does); and what the owner's own devices
//! write or hand each other: the key-rotation file and password updates.
//! Decoding any bytes gives a message or an error, never a panic; a
//! rotation and a password update re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::join::{Approval, JoinProof, JoinRequest, Rekey, Welcome};
use mailmesh_core::password::PasswordUpdate;
use mailmesh_core::roster::Roster;
use mailmesh_core::rotation::KeyRotation;

fuzz_target!(|data: &[u8]| {
    let _ = JoinRequest::decode(data);
    let _ = Approval::decode(data, &[7; 32]);
    let _ = JoinProof::decode(data);
    let _ = Welcome::decode(data, &[7; 32]);
    let _ = Rekey::decode(data);
    if let Ok(roster) = Roster::decode(data) {
        let _ = roster.verify();
        let _ = roster.network_id();
    }
    if let Ok(rotation) = KeyRotation::decode(data) {
        assert_eq!(rotation.encode(), data);
    }
    if let Ok(update) = PasswordUpdate::decode(data) {
        assert_eq!(update.encode(), data);
    }
});
