//! How the process's allocator gives memory back.
//!
//! glibc maps each allocation of at least `M_MMAP_THRESHOLD` bytes (128 KiB at start) on its own
//! and unmaps it when it is freed. It also raises that threshold to the size of every such block
//! freed, up to 32 MiB, and from then on blocks below it come from its arenas, which keep what
//! is freed. A discovery of a large catalog frees many blocks of that size, so `sluice serve`
//! grew with each discovery of the same source: 284, 348 and 365 MiB at their peaks over a first,
//! an unchanged and a changed discovery of 100,000 tables. With the threshold fixed at its
//! starting value (which also stops the raising) the three peaked at 282, 292 and 292 MiB, and
//! `sluice catalog`'s time and peak were unchanged (`bench/catalog.sh` with `SERVE=1`, glibc's
//! `GLIBC_TUNABLES` choosing each setting in one run).
//!
//! An operator's own choice wins: when `GLIBC_TUNABLES` names the threshold or
//! `MALLOC_MMAP_THRESHOLD_` is set, nothing is changed. Elsewhere than glibc this does nothing.

/// glibc's starting threshold, kept.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold. Called first thing in `main`, before any thread is started.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_large_blocks_unmapped_on_free() {
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.to_string_lossy().contains("mmap_threshold") || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: `mallopt` sets one parameter of glibc's allocator and touches no memory of ours; it
    // runs before any other thread exists. Its result (1, or 0 for a refused value) needs no
    // handling: a refusal leaves glibc's default behaviour.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_large_blocks_unmapped_on_free() {}
