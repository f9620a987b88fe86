//! Which tests may run at the same time. Every end-to-end test shares one process and runs
//! on a thread of its own beside others (as many as the machine has cores). Most overlap
//! freely; two kinds must not meet: tests that load the machine (processes under traffic,
//! bursts of requests, password hashing, a browser) and tests that assert how soon
//! something happened. On two cores a heavy test beside a timed one makes the timed one
//! fail now and then, and two heavy ones push each other past their limits.
//!
//! A heavy test holds [`heavy`] for its whole run: no other heavy or timed test runs
//! meanwhile. A timed test holds [`timed`]: timed tests overlap each other, as they did
//! when each file was a binary of its own, but never a heavy one. Light tests take
//! neither. Bind the guard to a name (`let _heavy = heavy().await;`): `let _ =` drops it
//! at once.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Written by heavy tests, read by timed ones. Tokio's lock serves waiters in turn, so a
/// heavy test is not kept waiting by a stream of timed ones, and it works across the
/// runtime each test makes for itself.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Held by a test that loads the machine: it runs alone among heavy and timed tests.
pub async fn heavy() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Held by a test that asserts how long something took: it never runs beside a heavy one.
pub async fn timed() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// [`timed`] for a test that is not async (it must not be called on a runtime).
pub fn timed_blocking() -> RwLockReadGuard<'static, ()> {
    MACHINE.blocking_read()
}
