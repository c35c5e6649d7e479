//! The first records of a link come from anyone on the LAN: a listener fed
//! any first message, and an initiator fed any answer, must refuse cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::peer::handshake::HandshakeConfig;
use mailmesh_core::peer::session::Session;

fuzz_target!(|data: &[u8]| {
    let secrets = NodeSecrets::from_seeds([1; 32], [2; 32]);
    let config = HandshakeConfig { network_psk: Some([3; 32]), binding: Vec::new(), name: "n".into(), email: "e".into() };
    if let Ok(mut session) = Session::accept(&secrets, config.clone(), data, [4; 32], 0) {
        let _ = session.handle_record(1, data);
    }
    let mut initiator = Session::connect(&secrets, config, [5; 32], 0).expect("a handshake starts");
    let _ = initiator.handle_record(1, data);
});
