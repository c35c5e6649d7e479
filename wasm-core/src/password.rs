//! `node.password`: the mail password the owner gave one of their devices
//! after changing it at the provider (a removed device knew the old one),
//! handed to the others over member links, which carry only the owner's own
//! devices and are encrypted end to end. The newest (`set_ms`) wins; a
//! device stores it only after the mail server takes it.
//!
//! `MMPW | version u8 | set_ms u64 | len u32 | password (UTF-8)`

use thiserror::Error;

use crate::wire::{self, Reader, WireError};

pub const PASSWORD_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"MMPW";
/// Longer than any provider's password or app password.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PasswordError {
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[derive(Clone, PartialEq, Eq)]
pub struct PasswordUpdate {
    /// When the owner gave it (ms since the epoch, the giving device's clock).
    pub set_ms: u64,
    pub password: String,
}

impl std::fmt::Debug for PasswordUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("PasswordUpdate").field("set_ms", &self.set_ms).finish_non_exhaustive()
    }
}

impl PasswordUpdate {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MAGIC, PASSWORD_VERSION);
        out.extend_from_slice(&self.set_ms.to_le_bytes());
        wire::put_text(&mut out, &self.password);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PasswordUpdate, PasswordError> {
        let mut r = Reader::new(bytes, MAGIC, PASSWORD_VERSION, "password update")?;
        let set_ms = r.u64()?;
        let password = r.text(MAX_PASSWORD)?;
        r.end()?;
        Ok(PasswordUpdate { set_ms, password })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn updates_round_trip(set_ms in any::<u64>(), password in "\\PC{0,64}") {
            let update = PasswordUpdate { set_ms, password };
            prop_assert_eq!(PasswordUpdate::decode(&update.encode()).unwrap(), update);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PasswordUpdate::decode(&bytes);
        }
    }

    #[test]
    fn an_oversized_password_is_refused() {
        let update = PasswordUpdate { set_ms: 1, password: "x".repeat(MAX_PASSWORD + 1) };
        assert!(PasswordUpdate::decode(&update.encode()).is_err());
    }
}
