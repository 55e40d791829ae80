//! Which threads allocate from a heap of their own. The proxy's event loops
//! allocate and free a few dozen blocks per request, at a rate no other
//! thread reaches; sharing glibc's single arena (the binary keeps one for
//! the log path's RSS) made them wait on its lock, for each other and for
//! the log pipeline. The library only marks those threads: the binary's
//! global allocator (`src/allocator.rs`) reads the mark, and without it (in
//! tests, say) the mark changes nothing.

use std::cell::Cell;

thread_local! {
    /// Set on a thread that should allocate from a heap of its own.
    static OWN_HEAP: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one whose allocations come from a heap of
/// its own (blocks it hands to other threads are still freed correctly).
pub fn use_own_heap() {
    OWN_HEAP.with(|own| own.set(true));
}

/// Whether the calling thread was marked by [`use_own_heap`]; `false` while
/// the thread's locals are being torn down.
pub fn uses_own_heap() -> bool {
    OWN_HEAP.try_with(Cell::get).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_per_thread() {
        assert!(!uses_own_heap());
        std::thread::spawn(|| {
            use_own_heap();
            assert!(uses_own_heap());
        })
        .join()
        .unwrap();
        assert!(!uses_own_heap(), "another thread's mark leaked here");
    }
}
