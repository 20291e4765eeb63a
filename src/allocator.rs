//! The setting the binaries give their allocator, mimalloc (the relay's `main`, and the
//! bench's floor with sled, which must be measured with the relay's allocator).

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e` of mimalloc 2 and 3;
/// the crate does not export it, "for stability reasons"). `main.rs` has the test that it
/// is the purge delay.
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Give memory back to the system as soon as it is freed, not a second later (mimalloc
/// 3's default). sled seals a 512 KiB log buffer every few hundred writes and frees it on
/// one of its IO threads once written; in a burst, a second's worth of freed buffers and
/// node copies stayed resident: peak RSS of a 50,000-event burst 221-286 MiB with the
/// default, 147-186 MiB with this (BENCHMARKS.md, change 10). It costs CPU only at full
/// load, where the purges are many. Call it first thing in `main`.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option of the allocator; any value is valid for it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}
