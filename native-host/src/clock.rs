//! Wall-clock time, the one place the engine reads it.
//!
//! Everything that stores or compares times uses Unix milliseconds from
//! here; timers that only measure a span use tokio's clock, which tests can
//! pause and advance.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 if the system clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Unix time in seconds.
pub fn now_unix() -> u64 {
    now_ms() / 1000
}

/// The wall clock as a `SystemTime` (for a mail's `Date` header).
pub fn now() -> SystemTime {
    SystemTime::now()
}
