//! The messages the owner's engines trade about the drive, over their
//! member links (topic [`TOPIC`]): `magic "MMDN" | version u8 | kind u8 |
//! fields`, integers little-endian.
//!
//! - [`DriveMessage::Catalog`]: file records and deletions, pushed when they
//!   happen and traded whole when a link comes up. A record is the host's
//!   own versioned record (its JSON, with the sealed manifest inside); here
//!   it is bytes with a length.
//! - [`DriveMessage::Inventory`]: a node holds these fragments.
//! - [`DriveMessage::Put`] / [`DriveMessage::Stored`]: store this fragment;
//!   whether it was. [`DriveMessage::Get`] / [`DriveMessage::Fragment`]:
//!   send me this fragment; here it is (or not). A request's 32-bit id comes
//!   back in its answer.
//! - [`DriveMessage::Space`]: the free bytes a node's drive has.
//!
//! Decoding allocates at most in proportion to the bytes given: every count
//! is checked against what is left before anything is reserved.

use thiserror::Error;

use super::keys::{FileId, FragmentId};
use crate::identity::NodeId;
use crate::wire::{self, Reader, WireError};

/// The frame topic drive messages travel under.
pub const TOPIC: &str = "drive.msg";
/// Bumped when a message changes incompatibly.
pub const DRIVE_NET_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"MMDN";
/// The largest file record a catalog carries (a manifest of a very large
/// file lists many fragment ids).
pub const MAX_RECORD: usize = 4 * 1024 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DriveNetError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unknown drive message kind {0}; update mailmesh")]
    UnknownKind(u8),
    #[error("a file record in a catalog is larger than {MAX_RECORD} bytes")]
    RecordTooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveMessage {
    Catalog {
        records: Vec<Vec<u8>>,
        deleted: Vec<(FileId, u64)>,
    },
    Inventory {
        holder: NodeId,
        fragments: Vec<FragmentId>,
    },
    Put {
        request: u32,
        fragment: FragmentId,
        bytes: Vec<u8>,
    },
    Stored {
        request: u32,
        stored: bool,
    },
    Get {
        request: u32,
        fragment: FragmentId,
    },
    /// `None`: not stored there (or unreadable).
    Fragment {
        request: u32,
        bytes: Option<Vec<u8>>,
    },
    Space {
        free_bytes: u64,
    },
}

impl DriveMessage {
    fn kind(&self) -> u8 {
        match self {
            DriveMessage::Catalog { .. } => 0,
            DriveMessage::Inventory { .. } => 1,
            DriveMessage::Put { .. } => 2,
            DriveMessage::Stored { .. } => 3,
            DriveMessage::Get { .. } => 4,
            DriveMessage::Fragment { .. } => 5,
            DriveMessage::Space { .. } => 6,
        }
    }

    /// The request an answer answers, if it is one.
    pub fn answers(&self) -> Option<u32> {
        match self {
            DriveMessage::Stored { request, .. } | DriveMessage::Fragment { request, .. } => Some(*request),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MAGIC, DRIVE_NET_VERSION);
        out.push(self.kind());
        match self {
            DriveMessage::Catalog { records, deleted } => {
                out.extend_from_slice(&(records.len() as u32).to_le_bytes());
                for record in records {
                    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
                    out.extend_from_slice(record);
                }
                out.extend_from_slice(&(deleted.len() as u32).to_le_bytes());
                for (file, at) in deleted {
                    out.extend_from_slice(&file.0);
                    out.extend_from_slice(&at.to_le_bytes());
                }
            }
            DriveMessage::Inventory { holder, fragments } => {
                out.extend_from_slice(holder.as_bytes());
                out.extend_from_slice(&(fragments.len() as u32).to_le_bytes());
                for id in fragments {
                    out.extend_from_slice(&id.0);
                }
            }
            DriveMessage::Put { request, fragment, bytes } => {
                out.extend_from_slice(&request.to_le_bytes());
                out.extend_from_slice(&fragment.0);
                out.extend_from_slice(bytes);
            }
            DriveMessage::Stored { request, stored } => {
                out.extend_from_slice(&request.to_le_bytes());
                out.push(u8::from(*stored));
            }
            DriveMessage::Get { request, fragment } => {
                out.extend_from_slice(&request.to_le_bytes());
                out.extend_from_slice(&fragment.0);
            }
            DriveMessage::Fragment { request, bytes } => {
                out.extend_from_slice(&request.to_le_bytes());
                match bytes {
                    Some(bytes) => {
                        out.push(1);
                        out.extend_from_slice(bytes);
                    }
                    None => out.push(0),
                }
            }
            DriveMessage::Space { free_bytes } => out.extend_from_slice(&free_bytes.to_le_bytes()),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<DriveMessage, DriveNetError> {
        let mut r = Reader::new(bytes, MAGIC, DRIVE_NET_VERSION, "drive message")?;
        let kind = r.array::<1>()?[0];
        let message = match kind {
            0 => {
                let count = counted(&mut r, 4)?;
                let mut records = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = r.u32()? as usize;
                    if len > MAX_RECORD {
                        return Err(DriveNetError::RecordTooLarge);
                    }
                    records.push(r.take(len)?.to_vec());
                }
                let count = counted(&mut r, 40)?;
                let mut deleted = Vec::with_capacity(count);
                for _ in 0..count {
                    deleted.push((FileId(r.array()?), r.u64()?));
                }
                DriveMessage::Catalog { records, deleted }
            }
            1 => {
                let holder = r.node_id()?;
                let count = counted(&mut r, 32)?;
                let mut fragments = Vec::with_capacity(count);
                for _ in 0..count {
                    fragments.push(FragmentId(r.array()?));
                }
                DriveMessage::Inventory { holder, fragments }
            }
            2 => DriveMessage::Put { request: r.u32()?, fragment: FragmentId(r.array()?), bytes: r.rest().to_vec() },
            3 => {
                let request = r.u32()?;
                match r.array::<1>()?[0] {
                    flag @ (0 | 1) => DriveMessage::Stored { request, stored: flag == 1 },
                    _ => return Err(WireError::Length("drive message").into()),
                }
            }
            4 => DriveMessage::Get { request: r.u32()?, fragment: FragmentId(r.array()?) },
            5 => {
                let request = r.u32()?;
                let bytes = match r.array::<1>()?[0] {
                    0 => None,
                    1 => Some(r.rest().to_vec()),
                    _ => return Err(WireError::Length("drive message").into()),
                };
                DriveMessage::Fragment { request, bytes }
            }
            6 => DriveMessage::Space { free_bytes: r.u64()? },
            other => return Err(DriveNetError::UnknownKind(other)),
        };
        r.end()?;
        Ok(message)
    }
}

/// A `count u32` of items at least `item_len` bytes long each, refused if
/// the bytes left cannot hold them (so nothing is reserved for a lie).
fn counted(r: &mut Reader<'_>, item_len: usize) -> Result<usize, WireError> {
    let count = r.u32()? as usize;
    if count.saturating_mul(item_len) > r.rest_len() {
        return Err(WireError::Length(r.what));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message() -> impl Strategy<Value = DriveMessage> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
        let fragment = || any::<[u8; 32]>().prop_map(FragmentId);
        prop_oneof![
            (
                proptest::collection::vec(bytes(), 0..4),
                proptest::collection::vec((any::<[u8; 32]>().prop_map(FileId), any::<u64>()), 0..4)
            )
                .prop_map(|(records, deleted)| DriveMessage::Catalog { records, deleted }),
            (any::<[u8; 20]>(), proptest::collection::vec(fragment(), 0..8)).prop_map(|(holder, fragments)| {
                DriveMessage::Inventory { holder: NodeId::from_bytes(holder), fragments }
            }),
            (any::<u32>(), fragment(), bytes()).prop_map(|(request, fragment, bytes)| DriveMessage::Put {
                request,
                fragment,
                bytes
            }),
            (any::<u32>(), any::<bool>()).prop_map(|(request, stored)| DriveMessage::Stored { request, stored }),
            (any::<u32>(), fragment()).prop_map(|(request, fragment)| DriveMessage::Get { request, fragment }),
            (any::<u32>(), proptest::option::of(bytes()))
                .prop_map(|(request, bytes)| DriveMessage::Fragment { request, bytes }),
            any::<u64>().prop_map(|free_bytes| DriveMessage::Space { free_bytes }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(message in message()) {
            prop_assert_eq!(DriveMessage::decode(&message.encode()), Ok(message));
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = DriveMessage::decode(&bytes);
        }

        #[test]
        fn a_cut_message_is_refused(message in message(), cut in 1usize..8) {
            let bytes = message.encode();
            let cut = cut.min(bytes.len() - 6);
            // Put and Fragment end in raw bytes, so a cut there is still a
            // shorter fragment; every other kind must notice.
            if !matches!(message, DriveMessage::Put { .. } | DriveMessage::Fragment { bytes: Some(_), .. }) && cut > 0 {
                prop_assert!(DriveMessage::decode(&bytes[..bytes.len() - cut]).is_err());
            }
        }
    }

    #[test]
    fn a_count_larger_than_the_bytes_is_refused_before_allocating() {
        let mut bytes = wire::header(MAGIC, DRIVE_NET_VERSION);
        bytes.push(1);
        bytes.extend_from_slice(&[7; 20]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(DriveMessage::decode(&bytes), Err(WireError::Length("drive message").into()));
    }

    #[test]
    fn other_versions_and_kinds_are_named() {
        let mut bytes = DriveMessage::Space { free_bytes: 1 }.encode();
        bytes[4] = DRIVE_NET_VERSION + 1;
        assert_eq!(DriveMessage::decode(&bytes), Err(WireError::Version("drive message").into()));
        let mut bytes = DriveMessage::Space { free_bytes: 1 }.encode();
        bytes[5] = 99;
        assert_eq!(DriveMessage::decode(&bytes), Err(DriveNetError::UnknownKind(99)));
    }
}
