//! The binary message a page sends its engine for each chunk of an upload
//! over the `/bulk` socket: `[op 6][index u64 LE][the chunk sealed:
//! ciphertext, then the 16-byte tag]`. The page frames it with
//! [`put_chunk_header`] (through the wasm binding), the engine reads it with
//! [`decode_put_chunk`] and codes the fragments itself; the socket's JSON
//! commands are described in the host's `engine/transfers.rs`.
//!
//! Versions: op 6 (sealed chunks) replaced op 5 (all `k + m` fragments of
//! a chunk), which the engine no longer takes; page and engine ship
//! together.

use thiserror::Error;

/// The first byte of a chunk message (other values are the socket's raw
/// test operations).
pub const PUT_CHUNK: u8 = 6;
/// Bytes before the sealed chunk.
pub const HEADER_LEN: usize = 9;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    #[error("a chunk message is too short")]
    Short,
    #[error("not a chunk message")]
    NotAChunk,
}

/// The bytes that go before a sealed chunk.
pub fn put_chunk_header(index: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = PUT_CHUNK;
    header[1..].copy_from_slice(&index.to_le_bytes());
    header
}

/// Whether a binary message is a chunk of an upload.
pub fn is_put_chunk(message: &[u8]) -> bool {
    message.first() == Some(&PUT_CHUNK)
}

/// The chunk index and the sealed bytes of a chunk message.
pub fn decode_put_chunk(message: &[u8]) -> Result<(u64, &[u8]), UploadError> {
    if !is_put_chunk(message) {
        return Err(UploadError::NotAChunk);
    }
    let index: [u8; 8] =
        message.get(1..HEADER_LEN).ok_or(UploadError::Short)?.try_into().map_err(|_| UploadError::Short)?;
    Ok((u64::from_le_bytes(index), &message[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn chunk_messages_round_trip(index in any::<u64>(), coded in proptest::collection::vec(any::<u8>(), 0..64)) {
            let message = [&put_chunk_header(index)[..], &coded].concat();
            prop_assert_eq!(decode_put_chunk(&message), Ok((index, &coded[..])));
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = decode_put_chunk(&bytes);
        }
    }

    #[test]
    fn short_and_foreign_messages_are_named() {
        assert_eq!(decode_put_chunk(&[PUT_CHUNK, 1, 2]), Err(UploadError::Short));
        assert_eq!(decode_put_chunk(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), Err(UploadError::NotAChunk));
        assert_eq!(decode_put_chunk(&[]), Err(UploadError::NotAChunk));
    }
}
