//! How the `jit-emulator` process uses the C allocator (glibc on Linux only).
//!
//! Why this exists: the emulator keeps a large, long-lived cache (the Resource Graph
//! table with each resource's rendered `properties`, see `state::graph`) and builds it
//! on whichever tokio worker serves the first query, between the short-lived allocations
//! of every other request. glibc gives each thread its own arena, so that cache ends up
//! spread over several arenas, each with free holes it never hands back: with the
//! 5,000-VM world of `bench/generate-world.py 10 20 25`, 220 MiB of live heap took
//! 330 MiB resident. One arena keeps the same work near 250 MiB; the emulator's threads
//! hardly contend for it (short critical sections, few cores). Freeing what loading the
//! world file left behind (`malloc_trim`) returns the parser's garbage too.
//!
//! Only the binary does this: the library also runs inside test processes, whose
//! allocator is theirs to tune.

/// Limits glibc to one malloc arena. Call first thing in `main`, before any thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn use_one_arena() {
    // SAFETY: `mallopt` only sets a tunable of the allocator; it is called before any
    // other thread exists, and a refusal (return value 0) leaves glibc's default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns free heap pages to the system (after the world is loaded).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: `malloc_trim` only releases memory the allocator holds free; no pointer
    // the program owns is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn use_one_arena() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() {}
