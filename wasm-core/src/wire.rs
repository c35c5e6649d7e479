//! Reading and writing the `magic | version u8 | fields` messages of
//! [`crate::join`], [`crate::people`] and [`crate::chat`]: one bounds-checked reader, so no
//! message parser indexes bytes it has not checked.

use thiserror::Error;

use crate::identity::{NodeId, NODE_ID_LEN};

/// Why a message could not be read; each module turns it into its own error.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    #[error("the {0} is cut short or has extra bytes")]
    Length(&'static str),
    #[error("this is not a mailmesh {0}")]
    BadMagic(&'static str),
    #[error("the {0} has a version this mailmesh does not understand; update mailmesh")]
    Version(&'static str),
    #[error("a text of the {0} is too long or not valid UTF-8")]
    Text(&'static str),
}

/// Appends `len u32 | UTF-8`, the text field of chat and transfer messages.
pub fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// `magic | version`, the start of every message.
pub fn header(magic: &[u8; 4], version: u8) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.push(version);
    out
}

pub struct Reader<'a> {
    bytes: &'a [u8],
    pub what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the magic and version of a `what` and reads on after them.
    pub fn new(bytes: &'a [u8], magic: &[u8; 4], version: u8, what: &'static str) -> Result<Reader<'a>, WireError> {
        let mut r = Reader { bytes, what };
        if r.take(4)? != magic {
            return Err(WireError::BadMagic(what));
        }
        if r.take(1)?[0] != version {
            return Err(WireError::Version(what));
        }
        Ok(r)
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Length(self.what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A `len u32 | UTF-8` text of at most `max` bytes (see [`put_text`]).
    pub fn text(&mut self, max: usize) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(WireError::Text(self.what));
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| WireError::Text(self.what))
    }
    pub fn node_id(&mut self) -> Result<NodeId, WireError> {
        Ok(NodeId::from_bytes(self.array::<NODE_ID_LEN>()?))
    }
    /// How many bytes are left.
    pub fn rest_len(&self) -> usize {
        self.bytes.len()
    }
    /// What is left, consuming it.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
    pub fn end(self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Length(self.what))
        }
    }
}

/// A 16-byte id written as 32 lowercase hex digits.
macro_rules! id16 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::wire::WireError;
            fn from_str(text: &str) -> Result<$name, crate::wire::WireError> {
                let bytes = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(text.trim().as_bytes())
                    .map_err(|_| crate::wire::WireError::Length(stringify!($name)))?;
                let bytes: [u8; 16] = bytes.try_into().map_err(|_| crate::wire::WireError::Length(stringify!($name)))?;
                Ok($name(bytes))
            }
        }
    };
}
pub(crate) use id16;
