//! The frames nodes exchange once a link is authenticated, on every path:
//! inside a WebRTC data channel, and inside the encrypted host-to-host link
//! (where `Signal` carries WebRTC signaling and `Data` is relayed traffic).
//!
//! Layout (version 1), all integers big-endian:
//!
//! ```text
//! [version u8 = 1][kind u8][body]
//!   Ping / Pong: [seq u32][sent_ms u64]
//!   Data:        [topic_len u8][topic, UTF-8][payload …]
//!   Signal:      [payload …]   (JSON written by the extension)
//!   Close:       [reason, UTF-8 …]
//! ```

use thiserror::Error;

pub const FRAME_VERSION: u8 = 1;
/// The largest encoded frame: Chrome's data-channel message limit (the
/// SDP's `max-message-size`), so one frame is always one channel message.
pub const MAX_FRAME: usize = 256 * 1024;
pub const MAX_TOPIC: usize = 64;
/// The largest frame on the engines' own link, which also carries drive
/// fragments (a quarter of a 1 MiB chunk plus headers, and room to grow).
pub const MAX_LINK_FRAME: usize = 4 * 1024 * 1024;
/// Largest frame another person's node may send over a link: a direct-send
/// chunk ([`crate::transfer::CHUNK_SIZE`]) and its header, nothing the size
/// of a drive fragment.
pub const MAX_STRANGER_FRAME: usize = crate::transfer::CHUNK_SIZE as usize + 4096;
/// A payload this large fits in a `Data` frame whatever the topic (a short
/// topic leaves room for a little more).
pub const MAX_PAYLOAD: usize = MAX_FRAME - 3 - MAX_TOPIC;
/// Signaling messages are small JSON objects (an SDP is a few KiB).
pub const MAX_SIGNAL: usize = 64 * 1024;
const MAX_REASON: usize = 256;

const KIND_PING: u8 = 1;
const KIND_PONG: u8 = 2;
const KIND_DATA: u8 = 3;
const KIND_SIGNAL: u8 = 4;
const KIND_CLOSE: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Asks the other side to echo `sent_ms`; the round trip is measured on
    /// the sender's own clock, so the two clocks never need to agree.
    Ping {
        seq: u32,
        sent_ms: u64,
    },
    Pong {
        seq: u32,
        sent_ms: u64,
    },
    /// Application bytes for a named consumer (for example `mesh.echo`).
    Data {
        topic: String,
        payload: Vec<u8>,
    },
    /// A WebRTC offer, answer or ICE candidate between two extensions.
    Signal(Vec<u8>),
    /// The sender is closing the link on purpose, with a reason for logs.
    Close(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("the frame is empty or cut short")]
    Truncated,
    #[error("frame version {0} is not supported (this build speaks version {FRAME_VERSION})")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("the frame is larger than this path allows")]
    TooLarge,
    #[error("a topic must be 1 to {MAX_TOPIC} bytes of UTF-8")]
    Topic,
    #[error("a signaling message must be at most {MAX_SIGNAL} bytes")]
    SignalTooLarge,
    #[error("text in the frame is not UTF-8")]
    Utf8,
}

impl Frame {
    /// Encodes a frame for a data channel (at most [`MAX_FRAME`]).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        self.encode_limited(MAX_FRAME)
    }

    /// Decodes a frame from a data channel (at most [`MAX_FRAME`]).
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        Frame::decode_limited(bytes, MAX_FRAME)
    }

    /// Encodes a frame of at most `max` bytes.
    pub fn encode_limited(&self, max: usize) -> Result<Vec<u8>, FrameError> {
        let mut out = vec![FRAME_VERSION];
        match self {
            Frame::Ping { seq, sent_ms } | Frame::Pong { seq, sent_ms } => {
                out.push(if matches!(self, Frame::Ping { .. }) { KIND_PING } else { KIND_PONG });
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&sent_ms.to_be_bytes());
            }
            Frame::Data { topic, payload } => {
                if topic.is_empty() || topic.len() > MAX_TOPIC {
                    return Err(FrameError::Topic);
                }
                if 3 + topic.len() + payload.len() > max {
                    return Err(FrameError::TooLarge);
                }
                out.reserve(2 + topic.len() + payload.len());
                out.push(KIND_DATA);
                out.push(topic.len() as u8);
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Signal(payload) => {
                if payload.len() > MAX_SIGNAL {
                    return Err(FrameError::SignalTooLarge);
                }
                out.push(KIND_SIGNAL);
                out.extend_from_slice(payload);
            }
            Frame::Close(reason) => {
                out.push(KIND_CLOSE);
                let mut end = reason.len().min(MAX_REASON);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&reason.as_bytes()[..end]);
            }
        }
        Ok(out)
    }

    /// Decodes a frame of at most `max` bytes.
    pub fn decode_limited(bytes: &[u8], max: usize) -> Result<Frame, FrameError> {
        if bytes.len() > max {
            return Err(FrameError::TooLarge);
        }
        let [version, kind, body @ ..] = bytes else {
            return Err(FrameError::Truncated);
        };
        if *version != FRAME_VERSION {
            return Err(FrameError::Version(*version));
        }
        match *kind {
            KIND_PING | KIND_PONG => {
                let body: &[u8; 12] = body.try_into().map_err(|_| FrameError::Truncated)?;
                let seq = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let mut ms = [0u8; 8];
                ms.copy_from_slice(&body[4..]);
                let sent_ms = u64::from_be_bytes(ms);
                Ok(if *kind == KIND_PING { Frame::Ping { seq, sent_ms } } else { Frame::Pong { seq, sent_ms } })
            }
            KIND_DATA => {
                let [len, rest @ ..] = body else {
                    return Err(FrameError::Truncated);
                };
                let len = *len as usize;
                if len == 0 || len > MAX_TOPIC {
                    return Err(FrameError::Topic);
                }
                if rest.len() < len {
                    return Err(FrameError::Truncated);
                }
                let topic = std::str::from_utf8(&rest[..len]).map_err(|_| FrameError::Topic)?.to_string();
                let payload = rest[len..].to_vec();
                Ok(Frame::Data { topic, payload })
            }
            KIND_SIGNAL => {
                if body.len() > MAX_SIGNAL {
                    return Err(FrameError::SignalTooLarge);
                }
                Ok(Frame::Signal(body.to_vec()))
            }
            KIND_CLOSE => {
                // Exactly what `encode` writes: at most MAX_REASON bytes.
                if body.len() > MAX_REASON {
                    return Err(FrameError::TooLarge);
                }
                Ok(Frame::Close(std::str::from_utf8(body).map_err(|_| FrameError::Utf8)?.to_string()))
            }
            other => Err(FrameError::Kind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u32>(), any::<u64>()).prop_map(|(seq, sent_ms)| Frame::Ping { seq, sent_ms }),
            (any::<u32>(), any::<u64>()).prop_map(|(seq, sent_ms)| Frame::Pong { seq, sent_ms }),
            ("[a-z.]{1,64}", proptest::collection::vec(any::<u8>(), 0..2048))
                .prop_map(|(topic, payload)| Frame::Data { topic, payload }),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Frame::Signal),
            "[ -~]{0,256}".prop_map(Frame::Close),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(frame in frames()) {
            prop_assert_eq!(Frame::decode(&frame.encode().unwrap()).unwrap(), frame);
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
        }
    }

    #[test]
    fn the_largest_data_frame_fits_and_one_more_byte_does_not() {
        let topic = "t".repeat(MAX_TOPIC);
        let frame = Frame::Data { topic: topic.clone(), payload: vec![7; MAX_PAYLOAD] };
        let bytes = frame.encode().unwrap();
        assert!(bytes.len() <= MAX_FRAME);
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
        let too_big = Frame::Data { topic, payload: vec![7; MAX_PAYLOAD + 1] };
        assert_eq!(too_big.encode(), Err(FrameError::TooLarge));
    }

    #[test]
    fn bad_frames_are_named() {
        assert_eq!(Frame::decode(&[]), Err(FrameError::Truncated));
        assert_eq!(Frame::decode(&[2, KIND_PING]), Err(FrameError::Version(2)));
        assert_eq!(Frame::decode(&[1, 99]), Err(FrameError::Kind(99)));
        assert_eq!(Frame::decode(&[1, KIND_PING, 0, 0]), Err(FrameError::Truncated));
        assert_eq!(Frame::decode(&[1, KIND_DATA, 5, b'a']), Err(FrameError::Truncated));
        assert_eq!(Frame::decode(&[1, KIND_DATA, 0]), Err(FrameError::Topic));
    }
}
