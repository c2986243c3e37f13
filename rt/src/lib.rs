//! Runtime helpers that main, sec-mod and the worker used to carry each in a copy of their own.
//!
//! Unlike `proto` this crate does I/O (sockets, stderr), but like `proto` it holds nothing
//! that is worth anything to an attacker: no key, no credential, no policy. Linking it gives a
//! process no power it did not have, so the worker may link it as well as sec-mod. Anything
//! secret or specific to one process's privileges stays in that process's crate.

pub mod caps;
pub mod ipc;
pub mod logger;
pub mod memory;
pub mod policy_files;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `mutex`, also when it is poisoned. A poisoned lock only means that a thread or task
/// panicked while holding it; every caller keeps its critical sections to single updates, so
/// the data is still consistent.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // test code
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_locks() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
