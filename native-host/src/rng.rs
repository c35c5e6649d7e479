//! Randomness from the operating system, the one place the engine asks it.

use thiserror::Error;

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("the operating system gave no randomness")]
pub struct NoRandomness;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| NoRandomness)?;
    Ok(out)
}

/// `N` random bytes where failing is not an option for the caller (a
/// request id, a nonce a peer checks). Without randomness nothing secure can
/// be made: such a machine is broken, it is logged, and zeros would be
/// caught by every peer's checks anyway.
pub fn bytes_or_zeros<const N: usize>() -> [u8; N] {
    bytes().unwrap_or_else(|e| {
        tracing::error!("{e}");
        [0u8; N]
    })
}
