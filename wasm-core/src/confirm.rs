//! Confirming a node by mail: the rules for the link token and the short
//! code, without any IO.
//!
//! The engine draws a 256-bit token (for the link) and a short code (to
//! type), mails both to the owner, and keeps only their hashes here. A
//! confirmation succeeds once: the token and the code expire together
//! (15 minutes by default), are compared in constant time, and the code
//! allows only a few wrong tries before the whole confirmation is void and a
//! new mail is needed. Time is an input; nothing here reads a clock.
//!
//! Stored (mode 0600 by the host) as, little endian, version 1:
//! `"MMCF" | version u8 | token hash [32] | code hash [32] | expires_ms u64
//! | attempts_left u8 | used u8`.

use subtle::ConstantTimeEq;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"MMCF";
pub const CONFIRM_VERSION: u8 = 1;
pub const DEFAULT_TTL_MS: u64 = 15 * 60 * 1000;
pub const MAX_CODE_ATTEMPTS: u8 = 5;
/// Code alphabet: letters and digits without those easily confused when
/// read or typed (i, l, o, 0, 1). Eight of them carry ~40 bits, plenty
/// with five attempts.
const CODE_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";
const ENCODED_LEN: usize = 4 + 1 + 32 + 32 + 8 + 1 + 1;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfirmError {
    #[error("this confirmation has expired; ask for a new confirmation mail")]
    Expired,
    #[error("this confirmation was already used")]
    AlreadyUsed,
    #[error("this confirmation link is not valid (it may be from an older mail)")]
    WrongToken,
    #[error("wrong code; {attempts_left} attempts left")]
    WrongCode { attempts_left: u8 },
    #[error("too many wrong codes; ask for a new confirmation mail")]
    TooManyAttempts,
    #[error("the stored confirmation is damaged")]
    Corrupt,
}

/// What a node keeps while it waits for the owner to confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingConfirmation {
    token_hash: [u8; 32],
    code_hash: [u8; 32],
    expires_ms: u64,
    attempts_left: u8,
    used: bool,
}

/// The link token as text: lowercase hex of 32 random bytes.
pub fn token_text(token: &[u8; 32]) -> String {
    token.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short code from random bytes, grouped for reading: `abcd-efgh`.
pub fn code_text(random: &[u8; 8]) -> String {
    let chars: String = random.iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Codes are compared without case, dashes or spaces.
fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

fn hash(label: &str, text: &str) -> [u8; 32] {
    blake3::derive_key(label, text.as_bytes())
}

impl PendingConfirmation {
    /// A confirmation for `token` (as [`token_text`]) and `code` (as
    /// [`code_text`]) that expires `ttl_ms` after `now_ms`.
    pub fn new(token: &str, code: &str, now_ms: u64, ttl_ms: u64) -> PendingConfirmation {
        PendingConfirmation {
            token_hash: hash("mailmesh confirm token v1", token),
            code_hash: hash("mailmesh confirm code v1", &normalize_code(code)),
            expires_ms: now_ms.saturating_add(ttl_ms),
            attempts_left: MAX_CODE_ATTEMPTS,
            used: false,
        }
    }

    fn usable(&self, now_ms: u64) -> Result<(), ConfirmError> {
        if self.used {
            Err(ConfirmError::AlreadyUsed)
        } else if now_ms >= self.expires_ms {
            Err(ConfirmError::Expired)
        } else if self.attempts_left == 0 {
            Err(ConfirmError::TooManyAttempts)
        } else {
            Ok(())
        }
    }

    /// Checks the token from the link. On success the confirmation is used
    /// up; a wrong token does not count as an attempt (it is 256 bits).
    pub fn confirm_token(&mut self, token: &str, now_ms: u64) -> Result<(), ConfirmError> {
        self.usable(now_ms)?;
        let presented = hash("mailmesh confirm token v1", token);
        if bool::from(presented.ct_eq(&self.token_hash)) {
            self.used = true;
            Ok(())
        } else {
            Err(ConfirmError::WrongToken)
        }
    }

    /// Checks a typed code; every wrong one uses up an attempt.
    pub fn confirm_code(&mut self, code: &str, now_ms: u64) -> Result<(), ConfirmError> {
        self.usable(now_ms)?;
        let presented = hash("mailmesh confirm code v1", &normalize_code(code));
        if bool::from(presented.ct_eq(&self.code_hash)) {
            self.used = true;
            Ok(())
        } else {
            self.attempts_left -= 1;
            if self.attempts_left == 0 {
                Err(ConfirmError::TooManyAttempts)
            } else {
                Err(ConfirmError::WrongCode { attempts_left: self.attempts_left })
            }
        }
    }

    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.extend_from_slice(MAGIC);
        out.push(CONFIRM_VERSION);
        out.extend_from_slice(&self.token_hash);
        out.extend_from_slice(&self.code_hash);
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out.push(self.attempts_left);
        out.push(self.used as u8);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PendingConfirmation, ConfirmError> {
        if bytes.len() != ENCODED_LEN
            || &bytes[..4] != MAGIC
            || bytes[4] != CONFIRM_VERSION
            || bytes[ENCODED_LEN - 1] > 1
        {
            return Err(ConfirmError::Corrupt);
        }
        let mut token_hash = [0u8; 32];
        let mut code_hash = [0u8; 32];
        let mut expires = [0u8; 8];
        token_hash.copy_from_slice(&bytes[5..37]);
        code_hash.copy_from_slice(&bytes[37..69]);
        expires.copy_from_slice(&bytes[69..77]);
        Ok(PendingConfirmation {
            token_hash,
            code_hash,
            expires_ms: u64::from_le_bytes(expires),
            attempts_left: bytes[77].min(MAX_CODE_ATTEMPTS),
            used: bytes[78] == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pending() -> (PendingConfirmation, String, String) {
        let token = token_text(&[7; 32]);
        let code = code_text(&[1, 2, 3, 4, 5, 6, 7, 8]);
        (PendingConfirmation::new(&token, &code, 1000, DEFAULT_TTL_MS), token, code)
    }

    #[test]
    fn a_token_works_once() {
        let (mut p, token, _) = pending();
        assert_eq!(p.confirm_token(&token, 2000), Ok(()));
        assert_eq!(p.confirm_token(&token, 2001), Err(ConfirmError::AlreadyUsed));
    }

    #[test]
    fn tokens_and_codes_expire() {
        let (mut p, token, code) = pending();
        let late = 1000 + DEFAULT_TTL_MS;
        assert_eq!(p.confirm_token(&token, late), Err(ConfirmError::Expired));
        assert_eq!(p.confirm_code(&code, late), Err(ConfirmError::Expired));
    }

    #[test]
    fn codes_are_typed_loosely_but_limited() {
        let (mut p, _, code) = pending();
        assert_eq!(p.clone().confirm_code(&code.to_uppercase().replace('-', " "), 2000), Ok(()));
        for left in (1..MAX_CODE_ATTEMPTS).rev() {
            assert_eq!(p.confirm_code("zzzz-zzzz", 2000), Err(ConfirmError::WrongCode { attempts_left: left }));
        }
        assert_eq!(p.confirm_code("zzzz-zzzz", 2000), Err(ConfirmError::TooManyAttempts));
        // Even the right code is refused now, and so is the link.
        assert_eq!(p.confirm_code(&code, 2000), Err(ConfirmError::TooManyAttempts));
        assert_eq!(p.confirm_token(&token_text(&[7; 32]), 2000), Err(ConfirmError::TooManyAttempts));
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let (mut p, _, _) = pending();
        assert_eq!(p.confirm_token(&token_text(&[8; 32]), 2000), Err(ConfirmError::WrongToken));
    }

    proptest! {
        #[test]
        fn pending_confirmations_round_trip(token in any::<[u8; 32]>(), code in any::<[u8; 8]>(), now in 0u64..1 << 50, tries in 0usize..5) {
            let mut p = PendingConfirmation::new(&token_text(&token), &code_text(&code), now, DEFAULT_TTL_MS);
            for _ in 0..tries {
                let _ = p.confirm_code("wrong", now);
            }
            prop_assert_eq!(PendingConfirmation::decode(&p.encode()), Ok(p));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = PendingConfirmation::decode(&bytes);
        }
    }
}
