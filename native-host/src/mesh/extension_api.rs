//! The messages on the extension's mesh socket (the loopback WebSocket the
//! offscreen document keeps open to its engine).
//! `extension/shared/messages/mesh.js` mirrors them.
//!
//! Text frames carry one JSON object each. Binary frames carry relayed
//! traffic: `[id length u8][node id, ASCII][frame …]`, where the frame is a
//! [`mailmesh_core::peer::frame::Frame`] (only `Data` is relayed).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{PeerPath, PeerView};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelRole {
    /// This side made the WebRTC offer and speaks first in the handshake.
    Initiator,
    Responder,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromExtension {
    /// WebRTC signaling for a peer's extension (offer, answer, candidate).
    Signal { to: String, payload: Value },
    /// A data channel to `peer` opened: authenticate it. The fingerprints
    /// are the `a=fingerprint` values of the local and remote SDP.
    ChannelOpen {
        peer: String,
        channel: String,
        role: ChannelRole,
        local_fingerprint: String,
        remote_fingerprint: String,
    },
    /// A handshake message that arrived on the data channel (base64).
    ChannelMessage { peer: String, channel: String, data: String },
    /// A frame (base64) that arrived on the data channel from another
    /// person's node, for the engine (chat).
    Deliver { from: String, frame: String },
    /// How the extension reaches `peer` now: `webrtc` with the channel's
    /// round-trip time, or `null` when its channel closed.
    Path {
        peer: String,
        path: Option<PeerPath>,
        #[serde(default)]
        rtt_ms: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToExtension {
    Hello {
        node_id: String,
    },
    Peers {
        peers: Vec<PeerView>,
    },
    Signal {
        from: String,
        payload: Value,
    },
    /// A handshake message to put on the data channel (base64).
    ChannelMessage {
        peer: String,
        channel: String,
        data: String,
    },
    /// The channel's handshake finished: `ok` with the proven peer, or why not.
    ChannelResult {
        peer: String,
        channel: String,
        ok: bool,
        error: Option<String>,
    },
    /// A frame for the engine of another person's node `to`, to put on the
    /// data channel (chat goes browser to browser when it can).
    Forward {
        to: String,
        #[serde(serialize_with = "as_base64")]
        frame: Vec<u8>,
    },
    /// Relayed traffic from `from` (sent as a binary frame).
    #[serde(skip)]
    Relayed {
        from: String,
        frame: Vec<u8>,
    },
}

fn as_base64<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&data_encoding::BASE64.encode(bytes))
}

/// Packs a relayed frame for a binary WebSocket message.
pub fn encode_relayed(peer: &str, frame: &[u8]) -> Vec<u8> {
    let id = peer.as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + frame.len());
    out.push(id.len().min(255) as u8);
    out.extend_from_slice(&id[..id.len().min(255)]);
    out.extend_from_slice(frame);
    out
}

/// Unpacks a binary WebSocket message into (peer, frame).
pub fn decode_relayed(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = len as usize;
    if rest.len() < len {
        return None;
    }
    let peer = std::str::from_utf8(&rest[..len]).ok()?;
    Some((peer, &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn relayed_frames_round_trip(peer in "[a-z2-7]{32}", frame in proptest::collection::vec(any::<u8>(), 0..512)) {
            let packed = encode_relayed(&peer, &frame);
            prop_assert_eq!(decode_relayed(&packed), Some((peer.as_str(), frame.as_slice())));
        }

        #[test]
        fn any_text_parses_or_fails_cleanly(text in ".{0,200}") {
            let _ = serde_json::from_str::<FromExtension>(&text);
        }
    }

    #[test]
    fn messages_parse() {
        let m: FromExtension =
            serde_json::from_str(r#"{"type":"path","peer":"x","path":"webrtc","rtt_ms":3}"#).unwrap();
        assert_eq!(m, FromExtension::Path { peer: "x".into(), path: Some(PeerPath::Webrtc), rtt_ms: Some(3) });
        assert!(decode_relayed(&[5, b'a']).is_none());
    }
}
