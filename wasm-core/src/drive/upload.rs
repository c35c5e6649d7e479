//! The binary message a page sends its engine for each piece of a file it
//! uploads over the `/bulk` socket: `[op 7][offset u64 LE][the file's bytes
//! from offset]`. The page frames it with [`put_bytes_header`] (through the
//! wasm binding), the engine reads it with [`decode_put_bytes`] and seals,
//! codes and places the file itself; the socket's JSON commands are
//! described in the host's `engine/transfers.rs`.
//!
//! The offset is not needed to put the bytes in place (a WebSocket keeps
//! order) but lets the engine refuse a gap or a repeat instead of coding
//! a different file.
//!
//! Versions: op 7 (the file's bytes, any piece size) replaced op 6 (chunks
//! sealed in the page) and op 5 (all `k + m` fragments of a chunk), which
//! the engine no longer takes; page and engine ship together.

use thiserror::Error;

/// The first byte of an upload message (other values are the socket's raw
/// test operations).
pub const PUT_BYTES: u8 = 7;
/// Bytes before the file's bytes.
pub const HEADER_LEN: usize = 9;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    #[error("an upload message is too short")]
    Short,
    #[error("not an upload message")]
    NotAnUpload,
}

/// The bytes that go before the file's bytes from `offset`.
pub fn put_bytes_header(offset: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = PUT_BYTES;
    header[1..].copy_from_slice(&offset.to_le_bytes());
    header
}

/// Whether a binary message is part of an upload.
pub fn is_put_bytes(message: &[u8]) -> bool {
    message.first() == Some(&PUT_BYTES)
}

/// The offset and the file's bytes of an upload message.
pub fn decode_put_bytes(message: &[u8]) -> Result<(u64, &[u8]), UploadError> {
    if !is_put_bytes(message) {
        return Err(UploadError::NotAnUpload);
    }
    let offset: [u8; 8] =
        message.get(1..HEADER_LEN).ok_or(UploadError::Short)?.try_into().map_err(|_| UploadError::Short)?;
    Ok((u64::from_le_bytes(offset), &message[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn upload_messages_round_trip(offset in any::<u64>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let message = [&put_bytes_header(offset)[..], &bytes].concat();
            prop_assert_eq!(decode_put_bytes(&message), Ok((offset, &bytes[..])));
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = decode_put_bytes(&bytes);
        }
    }

    #[test]
    fn short_and_foreign_messages_are_named() {
        assert_eq!(decode_put_bytes(&[PUT_BYTES, 1, 2]), Err(UploadError::Short));
        assert_eq!(decode_put_bytes(&[6, 0, 0, 0, 0, 0, 0, 0, 0]), Err(UploadError::NotAnUpload));
        assert_eq!(decode_put_bytes(&[]), Err(UploadError::NotAnUpload));
    }
}
