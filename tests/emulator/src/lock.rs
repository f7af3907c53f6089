//! A mutex lock that survives a panic elsewhere: every change the emulator makes under a
//! lock leaves its data consistent before anything can panic, so a poisoned lock is still
//! safe to use, and one failed request must not take the emulator down.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering the guard of a poisoned one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
