//! The binary's memory allocation (a module of `main.rs`, not of the
//! library, which forbids unsafe code).
//!
//! - Every thread allocates from glibc, with a single arena (see
//!   [`limit_malloc_arenas`]) and freed memory handed back every 10 s (see
//!   [`return_freed_memory`]): that keeps the log path's RSS low and flat.
//! - The proxy's event loops, marked with [`sidewatch::heap::use_own_heap`],
//!   allocate from a mimalloc heap of their own instead ([`Allocator`]).
//!   They allocate and free per request at a rate no other thread reaches,
//!   and on the one glibc arena they waited on its lock, for each other and
//!   for the log pipeline (0.11 `futex` waits per request with two loops and
//!   the access log on, and the CPU lost with them).
//! - So do batches of the proxy's access-log events while they are built
//!   ([`sidewatch::heap::with_own_heap`]): made on one thread and freed on
//!   another, a thousand at a time, they overflowed glibc's per-thread
//!   caches and went through its arena's lock and consolidation.
//! - With the `mimalloc` feature, mimalloc serves every thread instead.

#![allow(unsafe_code)]

/// With the `mimalloc` feature: the log hot path allocates and frees many
/// small objects per event (JSON keys, values, maps), which mimalloc serves
/// markedly cheaper than the system allocator, at about 1 MiB more idle RSS
/// (and a higher RSS under sustained log load: 31 against 24 MiB at 75k
/// lines/s in `benches/log_soak.sh`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: own_heaps::Allocator = own_heaps::Allocator;

/// glibc gives every thread that allocates a malloc arena of its own and
/// keeps freed memory in each. The log path allocates an event on one
/// worker thread and frees it on another, so with the default (8 arenas
/// per core) RSS settled at 37 MiB under 75k lines/s and crept to 43 MiB in
/// ten minutes; with one arena it stayed at 23 MiB, flat
/// (`benches/log_soak.sh`; 36 against 24 MiB measured again on 2026-12-03).
/// `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
pub fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // first thing in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Nothing to limit with another allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
pub fn limit_malloc_arenas() {}

/// How often freed heap memory is handed back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// glibc returns freed memory to the kernel only from the top of the heap,
/// so after a burst (a sink outage filling the queues, a restart replaying
/// the disk buffer while the tailer catches up) RSS stayed at its high-water
/// mark although the memory was free: the soak saw 44 MiB rise to 108 MiB
/// across outages and restarts and never come down. A thread that calls
/// `malloc_trim(0)` every [`TRIM_INTERVAL`] releases free pages anywhere in
/// the heap (after it, the soak's RSS stayed at 30–61 MiB, flat). Measured
/// on a 150 MiB glibc heap: 6.5 ms when it hands 137 MiB back, 0.03 ms when
/// there is nothing to hand back, so it costs nothing in a steady state.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
pub fn return_freed_memory() {
    let spawned = std::thread::Builder::new()
        .name("sidewatch-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            // SAFETY: malloc_trim only releases free memory held by the
            // allocator; it takes the allocator's own locks.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the memory trim thread");
    }
}

/// mimalloc hands freed memory back by itself.
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
pub fn return_freed_memory() {}

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
mod own_heaps {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Once;

    use libmimalloc_sys as mi;

    /// Address space reserved for the marked threads' heaps. Only what they
    /// touch becomes memory; beyond it (some 40k idle connections), their
    /// allocations fall back to glibc.
    const ARENA_BYTES: usize = 1 << 30;

    /// The reserved range: its start, and its length once mimalloc manages
    /// it (0 before, or if it could not be set up: nothing is inside).
    static ARENA_START: AtomicUsize = AtomicUsize::new(0);
    static ARENA_LEN: AtomicUsize = AtomicUsize::new(0);
    static ARENA_SETUP: Once = Once::new();
    /// mimalloc's ID of the arena (a pointer in mimalloc 3).
    static ARENA_ID: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        /// The marked thread's heap, made on its first allocation.
        static HEAP: Cell<*mut mi::mi_heap_t> = const { Cell::new(ptr::null_mut()) };
    }

    /// glibc for every thread but the marked ones, which allocate from a
    /// mimalloc heap of their own confined to one reserved address range.
    /// A block is freed by whichever allocator owns its address, so blocks
    /// may cross threads freely. When the range is full (or cannot be set
    /// up), marked threads fall back to glibc.
    pub struct Allocator;

    /// Whether mimalloc owns `block` (it lies in the reserved range).
    pub(super) fn is_own(block: *mut u8) -> bool {
        let start = ARENA_START.load(Ordering::Relaxed);
        (block as usize).wrapping_sub(start) < ARENA_LEN.load(Ordering::Relaxed)
    }

    /// Reserves the range and hands it to mimalloc as an exclusive arena
    /// (only heaps made for it allocate there), once per process.
    fn set_up_arena() {
        ARENA_SETUP.call_once(|| {
            // SAFETY: a fresh private anonymous mapping, inaccessible until
            // mimalloc commits (mprotect) the parts it uses.
            let start = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    ARENA_BYTES,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if start == libc::MAP_FAILED {
                return;
            }
            let mut id: mi::mi_arena_id_t = ptr::null_mut();
            // SAFETY: the range is ours, unused, and stays mapped for the
            // life of the process.
            let managed = unsafe {
                mi::mi_manage_os_memory_ex(
                    start,
                    ARENA_BYTES,
                    false,
                    false,
                    true,
                    -1,
                    true,
                    &mut id,
                )
            };
            if !managed {
                // SAFETY: the mapping made above, used by nothing.
                unsafe { libc::munmap(start, ARENA_BYTES) };
                return;
            }
            ARENA_ID.store(id as usize, Ordering::Relaxed);
            ARENA_START.store(start as usize, Ordering::Relaxed);
            ARENA_LEN.store(ARENA_BYTES, Ordering::Release);
        });
    }

    /// The calling thread's own heap, if it is marked and one can be made.
    fn own_heap() -> Option<*mut mi::mi_heap_t> {
        if !sidewatch::heap::uses_own_heap() {
            return None;
        }
        let heap = HEAP.try_with(Cell::get).ok()?;
        if !heap.is_null() {
            return Some(heap);
        }
        set_up_arena();
        if ARENA_LEN.load(Ordering::Acquire) == 0 {
            return None;
        }
        // SAFETY: the arena ID mimalloc gave back; the heap belongs to this
        // thread, which alone allocates from it.
        let heap = unsafe { mi::mi_heap_new_in_arena(ARENA_ID.load(Ordering::Relaxed) as _) };
        if heap.is_null() {
            return None;
        }
        HEAP.try_with(|cell| cell.set(heap)).ok()?;
        Some(heap)
    }

    /// Moves `block` (`layout`, owned by mimalloc) into a new glibc block
    /// of `new_size`: for threads without a heap of their own, and for
    /// marked threads once the range is full.
    ///
    /// # Safety
    /// As for [`GlobalAlloc::realloc`].
    unsafe fn move_to_system(block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let moved = System.alloc(new_layout);
        if !moved.is_null() {
            ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
            mi::mi_free(block.cast());
        }
        moved
    }

    // Each method is kept out of line: one copy, called like malloc (inlined
    // at every allocation site, it made the binary 1 MB larger).
    //
    // SAFETY: every block comes from exactly one allocator, decided by its
    // address, and goes back to that one; mimalloc blocks may be freed from
    // any thread; a marked thread's heap is used by that thread only.
    unsafe impl GlobalAlloc for Allocator {
        #[inline(never)]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if let Some(heap) = own_heap() {
                let block = mi::mi_heap_malloc_aligned(heap, layout.size(), layout.align());
                if !block.is_null() {
                    return block.cast();
                }
            }
            System.alloc(layout)
        }

        #[inline(never)]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if let Some(heap) = own_heap() {
                let block = mi::mi_heap_zalloc_aligned(heap, layout.size(), layout.align());
                if !block.is_null() {
                    return block.cast();
                }
            }
            System.alloc_zeroed(layout)
        }

        #[inline(never)]
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            if is_own(block) {
                mi::mi_free(block.cast::<c_void>());
            } else {
                System.dealloc(block, layout);
            }
        }

        #[inline(never)]
        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if !is_own(block) {
                return System.realloc(block, layout, new_size);
            }
            if let Some(heap) = own_heap() {
                let grown =
                    mi::mi_heap_realloc_aligned(heap, block.cast(), new_size, layout.align());
                if !grown.is_null() {
                    return grown.cast();
                }
            }
            // Not a marked thread (mimalloc would move the block into this
            // thread's default heap, outside the range), or the range is full.
            move_to_system(block, layout, new_size)
        }
    }
}

#[cfg(all(
    test,
    target_os = "linux",
    target_env = "gnu",
    not(feature = "mimalloc")
))]
mod tests {
    use std::sync::Mutex;

    /// The range is one per process: tests that depend on its state run
    /// one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn owned<T>(block: *const T) -> bool {
        super::own_heaps::is_own(block as *mut u8)
    }

    /// Runs `work` on a new thread marked like a proxy loop.
    fn on_marked_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            sidewatch::heap::use_own_heap();
            work()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_marked_thread_s_blocks_come_from_its_heap_and_may_cross_threads() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (mut words, boxed) = on_marked_thread(|| {
            let words: Vec<String> = (0..1000).map(|i| format!("word {i}")).collect();
            (words, Box::new([7u64; 64]))
        });
        assert!(owned(words.as_ptr()) && owned(&*boxed));
        assert!(words.iter().all(|w| owned(w.as_ptr())));
        let here = String::from("unmarked");
        assert!(
            !owned(here.as_ptr()),
            "an unmarked thread allocated from a loop heap"
        );

        // Grown here, the vector leaves the loop heap for glibc, intact.
        words.reserve(100_000);
        assert!(!owned(words.as_ptr()));
        assert_eq!(words[999], "word 999");
        assert_eq!(boxed[63], 7);
        drop((words, boxed)); // freed on a thread other than the one that allocated

        // A marked thread grows and frees glibc blocks too.
        let grown = on_marked_thread(move || {
            let mut here = here;
            here.push_str(&"x".repeat(10_000));
            here
        });
        assert!(grown.starts_with("unmarkedxxx") && grown.len() == 10_008);
    }

    #[test]
    fn a_scoped_mark_allocates_from_the_heap_only_within_its_work() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (batch, after) = std::thread::spawn(|| {
            let batch: Vec<String> =
                sidewatch::heap::with_own_heap(|| (0..100).map(|i| format!("event {i}")).collect());
            (batch, String::from("after the work"))
        })
        .join()
        .unwrap();
        assert!(owned(batch.as_ptr()) && batch.iter().all(|e| owned(e.as_ptr())));
        assert!(!owned(after.as_ptr()), "the mark outlived the work");
        assert_eq!(batch[99], "event 99");
        drop(batch); // freed on another thread, as the sinks free events
    }

    #[test]
    fn a_full_range_falls_back_to_glibc() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // 16 × 128 MiB of address space, never touched: more than the range.
        let blocks = on_marked_thread(|| {
            (0..16)
                .map(|_| Vec::<u8>::with_capacity(128 << 20))
                .collect::<Vec<_>>()
        });
        let inside = blocks.iter().filter(|b| owned(b.as_ptr())).count();
        assert!(inside > 0, "nothing came from the loop heap");
        assert!(
            inside < blocks.len(),
            "the range never filled: {inside} of 16 inside"
        );
        drop(blocks);
    }
}
