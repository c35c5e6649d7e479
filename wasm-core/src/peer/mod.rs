//! Links between nodes: who is on the other end, and the frames they trade.
//!
//! - [`handshake`]: Noise XX (members: XXpsk0 with the network key) plus a
//!   signed identity proof, optionally bound to a WebRTC channel's DTLS
//!   fingerprints. Used for every link.
//! - [`session`]: the encrypted host-to-host link over a byte stream:
//!   handshake, then frames in Noise transport records, with pings.
//! - [`frame`]: the frames (ping, pong, data, signal, close), the same on
//!   every path.
//! - [`liveness`]: ping schedule, round-trip time and the rule for "gone".
//!
//! Data flow: the host's TCP link feeds records into a [`session::Session`]
//! and writes out what it returns; a data channel's handshake runs as a bare
//! [`handshake::Handshake`] in the host, after which the two browsers trade
//! [`frame::Frame`]s over DTLS, which the handshake has bound.

pub mod frame;
pub mod handshake;
pub mod liveness;
pub mod session;

#[cfg(test)]
mod tests;

/// The binding of a data-channel handshake: both DTLS fingerprints, the
/// initiator's first, exactly as each browser read them from the SDP.
pub fn dtls_binding(initiator_fingerprint: &str, responder_fingerprint: &str) -> Vec<u8> {
    let normalize = |fp: &str| fp.trim().to_ascii_lowercase();
    format!("dtls\0{}\0{}", normalize(initiator_fingerprint), normalize(responder_fingerprint)).into_bytes()
}
