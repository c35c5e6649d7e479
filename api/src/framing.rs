//! Chrome native messaging framing: a 32-bit length in native byte order,
//! then that many bytes of UTF-8 JSON.
//!
//! [`FrameDecoder`] is sans-IO: feed it whatever bytes arrived on stdin and
//! take out whole frames. A frame longer than the browser may send
//! ([`MAX_INBOUND`]) is reported and its body skipped, so one bad message
//! does not kill the connection. [`encode_frame`] refuses bodies larger than
//! what Chrome accepts from a host ([`MAX_OUTBOUND`]).

use byteorder::{ByteOrder, NativeEndian};
use thiserror::Error;

/// Chrome sends at most 64 MiB per message to a host.
pub const MAX_INBOUND: usize = 64 * 1024 * 1024;
/// Chrome accepts at most 1 MB per message from a host.
pub const MAX_OUTBOUND: usize = 1024 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a message of {0} bytes is larger than the {MAX_INBOUND}-byte limit for messages from the browser")]
    InboundTooLarge(usize),
    #[error("a reply of {0} bytes is larger than the {MAX_OUTBOUND}-byte limit for messages to the browser")]
    OutboundTooLarge(usize),
    #[error("the browser closed the connection in the middle of a message ({0} bytes of it had arrived)")]
    Truncated(usize),
}

/// What the decoder produced from the bytes fed so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Frame(Vec<u8>),
    /// A frame over the limit was announced; its body is being skipped.
    Oversized(usize),
}

/// Incremental decoder for a stream of native-messaging frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of an oversized frame still to be thrown away.
    skip: usize,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Decoded> {
        if self.skip > 0 || self.buf.len() < 4 {
            return None;
        }
        let len = NativeEndian::read_u32(&self.buf[..4]) as usize;
        if len > MAX_INBOUND {
            let available = self.buf.len() - 4;
            let dropped = available.min(len);
            self.skip = len - dropped;
            self.buf.drain(..4 + dropped);
            return Some(Decoded::Oversized(len));
        }
        if self.buf.len() < 4 + len {
            return None;
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Some(Decoded::Frame(body))
    }

    /// Call at end of stream: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() && self.skip == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buf.len()))
        }
    }
}

/// Prefixes `body` with its length, refusing bodies the browser would reject.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() > MAX_OUTBOUND {
        return Err(FrameError::OutboundTooLarge(body.len()));
    }
    let mut out = vec![0u8; 4];
    NativeEndian::write_u32(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(stream: &[u8], piece: usize) -> (Vec<Decoded>, Result<(), FrameError>) {
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            dec.feed(chunk);
            while let Some(d) = dec.next_frame() {
                out.push(d);
            }
        }
        (out, dec.finish())
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_pieces(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..8),
            piece in 1usize..700,
        ) {
            let mut stream = Vec::new();
            for b in &bodies {
                stream.extend(encode_frame(b).unwrap());
            }
            let (frames, end) = decode_all(&stream, piece);
            prop_assert_eq!(end, Ok(()));
            let expected: Vec<Decoded> = bodies.into_iter().map(Decoded::Frame).collect();
            prop_assert_eq!(frames, expected);
        }

        #[test]
        fn a_cut_stream_is_reported_truncated(body in proptest::collection::vec(any::<u8>(), 1..500), cut in 1usize..500) {
            let stream = encode_frame(&body).unwrap();
            let cut = cut.min(stream.len() - 1);
            let (frames, end) = decode_all(&stream[..cut], 7);
            prop_assert!(frames.is_empty());
            prop_assert!(matches!(end, Err(FrameError::Truncated(_))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all(&bytes, 13);
        }
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_one_decodes() {
        let mut stream = Vec::new();
        let mut header = [0u8; 4];
        let huge = MAX_INBOUND + 10;
        NativeEndian::write_u32(&mut header, huge as u32);
        stream.extend_from_slice(&header);
        stream.extend(std::iter::repeat_n(b'x', huge));
        stream.extend(encode_frame(b"{}").unwrap());
        let (frames, end) = decode_all(&stream, 1 << 20);
        assert_eq!(frames, vec![Decoded::Oversized(huge), Decoded::Frame(b"{}".to_vec())]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn outbound_limit_is_enforced() {
        assert!(encode_frame(&vec![b'a'; MAX_OUTBOUND]).is_ok());
        assert_eq!(encode_frame(&vec![b'a'; MAX_OUTBOUND + 1]), Err(FrameError::OutboundTooLarge(MAX_OUTBOUND + 1)));
    }
}
