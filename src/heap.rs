//! Gives the system back the memory the allocator keeps after the program freed it.
//!
//! glibc's allocator spreads threads over heaps of their own (arenas, up to eight per core)
//! and returns freed memory to the system only from the top of each heap. An actor's activation allocates
//! short-lived rows and vectors beside the state it keeps, so after a wave of activations
//! the freed pages between live allocations stay resident: about 2.9 KiB for each active
//! user with a typical state (`cargo bench --bench actor_memory`, docs/performance.md).
//! [`release_free_memory`] hands those pages back (`malloc_trim(0)`, which `madvise`s every
//! free page of every arena); [`trim_periodically`] does it once a minute, on a blocking
//! thread, as the server's housekeeping.
//!
//! Elsewhere (musl, other systems) it does nothing: those allocators return memory on their
//! own, or have no such call.

use std::time::{Duration, Instant};

/// How often the server hands freed memory back.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Asks the allocator to return the free pages of every arena to the system. Returns whether
/// it gave any back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "malloc_trim is a C function")]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc serializes it with
    // every other allocator call, arena by arena.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return the free pages of every arena to the system: nothing to do
/// with this allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// Runs [`release_free_memory`] every `every`, on a blocking thread: the walk over a large
/// heap takes milliseconds, and holds one arena's lock at a time while it does.
pub async fn trim_periodically(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: nothing has been freed yet at start-up.
    tick.tick().await;
    loop {
        tick.tick().await;
        let began = Instant::now();
        match tokio::task::spawn_blocking(release_free_memory).await {
            Ok(released) => tracing::debug!(
                released,
                took_ms = began.elapsed().as_secs_f64() * 1e3,
                "heap trimmed"
            ),
            Err(error) => tracing::warn!(%error, "heap trim did not finish"),
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process (each test runs in a process of its own under nextest).
    fn rss() -> u64 {
        let sample = crate::loadgen::procstat::sample_path(std::path::Path::new("/proc/self"))
            .expect("read /proc/self");
        sample.rss_bytes
    }

    #[test]
    fn freed_memory_between_live_allocations_goes_back_to_the_system() {
        // 64 MiB in 1 KiB blocks, every 64th kept: the freed blocks sit below live ones, so
        // the heap's top cannot shrink and free() alone returns nothing.
        const BLOCKS: usize = 64 * 1024;
        let mut blocks: Vec<Option<Box<[u8]>>> = (0..BLOCKS)
            .map(|i| Some(vec![i as u8; 1024].into_boxed_slice()))
            .collect();
        for (i, block) in blocks.iter_mut().enumerate() {
            if i % 64 != 0 {
                *block = None;
            }
        }
        let before = rss();
        assert!(release_free_memory(), "nothing was released");
        let after = rss();
        assert!(
            after + 32 * 1024 * 1024 < before,
            "RSS went from {before} to {after} bytes"
        );
        let kept = blocks.iter().flatten().count();
        assert_eq!(kept, BLOCKS / 64);
        assert!(
            blocks
                .iter()
                .flatten()
                .enumerate()
                .all(|(n, b)| b[0] == (n * 64) as u8)
        );
    }
}
