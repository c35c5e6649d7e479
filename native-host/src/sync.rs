//! Plain mutexes that outlive a panicked holder.
//!
//! A panic in one request must not take every later request down with a
//! poisoned lock: the state behind these locks is kept consistent by each
//! holder's own steps, so the guard is taken over as it is.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking the guard over if a holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
