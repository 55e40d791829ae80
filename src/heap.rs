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

/// Runs `work` with the calling thread marked as by [`use_own_heap`], then
/// puts the mark back as it was: for a burst of allocations made on a
/// shared thread and freed on another, such as a batch of the proxy's
/// access-log events (see [`crate::proxy::access`]). `work` must not yield
/// to other tasks of the thread, which would allocate from the heap too.
pub fn with_own_heap<T>(work: impl FnOnce() -> T) -> T {
    /// Puts the mark back, even if `work` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = OWN_HEAP.try_with(|own| own.set(self.0));
        }
    }
    let _restore = Restore(OWN_HEAP.with(|own| own.replace(true)));
    work()
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

    #[test]
    fn a_scoped_mark_is_put_back() {
        assert!(with_own_heap(uses_own_heap));
        assert!(!uses_own_heap(), "the scoped mark outlived its work");
        let panicked = std::panic::catch_unwind(|| with_own_heap(|| panic!("in the work")));
        assert!(panicked.is_err());
        assert!(!uses_own_heap(), "a panic left the thread marked");
        use_own_heap();
        with_own_heap(|| ());
        assert!(uses_own_heap(), "a marked thread lost its mark");
    }
}
