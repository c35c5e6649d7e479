//! `rotation.bin`: a change of the network key that is under way, saved
//! before anything is rewrapped so a node killed at any point finishes the
//! change when it starts again.
//!
//! A rotation holds both keys: every file record opens with one of them, so
//! the rewrap can be run again from wherever it stopped. It holds the new
//! roster, and, on the member that made the change, the signed rekey mail
//! until the mail server has taken it.
//!
//! `MMKR | version u8 | old key 32 | new key 32 | len u32 | roster |
//!  len u32 | rekey payload (empty: none to send)`

use thiserror::Error;

use crate::drive::NetworkKey;
use crate::wire::{self, Reader, WireError};

pub const ROTATION_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"MMKR";
/// A roster or a rekey of more than this is not one mailmesh wrote.
const MAX_PART_BYTES: usize = 4 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RotationError {
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[derive(Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub old_key: NetworkKey,
    pub new_key: NetworkKey,
    pub roster: Vec<u8>,
    /// The signed rekey still to be mailed, or empty.
    pub rekey: Vec<u8>,
}

impl std::fmt::Debug for KeyRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("KeyRotation")
            .field("roster_bytes", &self.roster.len())
            .field("rekey_bytes", &self.rekey.len())
            .finish_non_exhaustive()
    }
}

impl KeyRotation {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MAGIC, ROTATION_VERSION);
        out.extend_from_slice(self.old_key.as_bytes());
        out.extend_from_slice(self.new_key.as_bytes());
        for part in [&self.roster, &self.rekey] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyRotation, RotationError> {
        let mut r = Reader::new(bytes, MAGIC, ROTATION_VERSION, "key rotation")?;
        let old_key = NetworkKey::from_bytes(r.array()?);
        let new_key = NetworkKey::from_bytes(r.array()?);
        let mut part = || -> Result<Vec<u8>, WireError> {
            let len = r.u32()? as usize;
            if len > MAX_PART_BYTES {
                return Err(WireError::Length("key rotation"));
            }
            Ok(r.take(len)?.to_vec())
        };
        let roster = part()?;
        let rekey = part()?;
        r.end()?;
        Ok(KeyRotation { old_key, new_key, roster, rekey })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn rotations_round_trip(
            old in any::<[u8; 32]>(),
            new in any::<[u8; 32]>(),
            roster in proptest::collection::vec(any::<u8>(), 0..300),
            rekey in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let r = KeyRotation { old_key: NetworkKey::from_bytes(old), new_key: NetworkKey::from_bytes(new), roster, rekey };
            prop_assert_eq!(KeyRotation::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn cut_or_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..200) {
            let _ = KeyRotation::decode(&bytes);
            let whole = KeyRotation {
                old_key: NetworkKey::from_bytes([1; 32]),
                new_key: NetworkKey::from_bytes([2; 32]),
                roster: vec![3; 40],
                rekey: vec![4; 40],
            }
            .encode();
            prop_assert!(KeyRotation::decode(&whole[..cut.min(whole.len() - 1)]).is_err());
        }
    }
}
