//! Randomness from the operating system, the one place the engine asks it.
//!
//! There is deliberately no fallback: a key, a code or a nonce made without
//! randomness is worse than no key at all, so every caller gets an error it
//! must pass on (and the user sees "the operating system gave no
//! randomness") instead of a guessable value.

use thiserror::Error;

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("the operating system gave no randomness")]
pub struct NoRandomness;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], NoRandomness> {
    #[cfg(test)]
    if test_hook::failing() {
        return Err(NoRandomness);
    }
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| NoRandomness)?;
    Ok(out)
}

impl From<NoRandomness> for String {
    fn from(e: NoRandomness) -> String {
        e.to_string()
    }
}

/// Lets a test run code on a machine whose OS gives no randomness. Per
/// thread, so tests running side by side are not affected; the code under
/// test must run on the calling thread (a current-thread runtime).
#[cfg(test)]
pub mod test_hook {
    use std::cell::Cell;

    thread_local!(static FAILING: Cell<bool> = const { Cell::new(false) });

    pub fn failing() -> bool {
        FAILING.with(Cell::get)
    }

    pub fn without_randomness<T>(f: impl FnOnce() -> T) -> T {
        FAILING.with(|c| c.set(true));
        let out = f();
        FAILING.with(|c| c.set(false));
        out
    }

    pub async fn without_randomness_async<T>(f: impl std::future::Future<Output = T>) -> T {
        FAILING.with(|c| c.set(true));
        let out = f.await;
        FAILING.with(|c| c.set(false));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_randomness_is_an_error_never_zeros() {
        assert!(bytes::<32>().is_ok());
        assert_eq!(test_hook::without_randomness(bytes::<32>), Err(NoRandomness));
    }
}
