//! The process allocator: mimalloc, called the way its own aligned entry point would
//! dispatch.
//!
//! Rust hands every allocation an alignment. mimalloc's `mi_malloc_aligned` first checks
//! whether plain `mi_malloc` already gives that alignment and then calls it; the packet
//! path allocates often enough (stream buffers, names, classifications) that the detour
//! shows (callgrind on the benchmark capture: 1.4% of all instructions). The test is the
//! one mimalloc makes (`mi_malloc_is_naturally_aligned` in `src/alloc-aligned.c` of
//! mimalloc 2.x): an alignment of at most `MI_MAX_ALIGN_SIZE` (16 bytes) and no larger
//! than the size is met by every block. Larger alignments take the aligned calls.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// `MI_MAX_ALIGN_SIZE`: the alignment every mimalloc block of at least this size has.
const MAX_NATURAL_ALIGN: usize = 16;

/// mimalloc as the global allocator.
pub struct MiMalloc;

/// Whether a plain allocation of `size` bytes is aligned to `align`.
#[inline(always)]
fn natural(size: usize, align: usize) -> bool {
    align <= MAX_NATURAL_ALIGN && align <= size
}

// SAFETY: every call forwards to mimalloc, which returns null on failure or a block of
// at least the requested size; the alignment is either requested from mimalloc or one
// its plain calls guarantee (see the module documentation). Blocks are freed with
// `mi_free`, which takes blocks from any of these calls.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if natural(new_size, layout.align()) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a program asks for comes back aligned, writable and
    /// zeroed where asked, and keeps its bytes through growing and shrinking, including
    /// across the line between plain and aligned calls.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [
                1usize,
                3,
                7,
                8,
                12,
                16,
                24,
                40,
                48,
                100,
                1000,
                70_000,
                1 << 20,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                for new in [size * 3, (size / 2).max(1)] {
                    // SAFETY: non-zero sizes; each block is used within its size and
                    // freed once with the layout it has at that point.
                    unsafe {
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        for i in 0..size {
                            p.add(i).write(i as u8);
                        }
                        let q = a.realloc(p, layout, new);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "{size}->{new} align {align}");
                        for i in 0..size.min(new) {
                            assert_eq!(q.add(i).read(), i as u8, "byte {i} after {size}->{new}");
                        }
                        a.dealloc(q, Layout::from_size_align(new, align).unwrap());
                    }
                }
                // SAFETY: as above.
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0, "zeroed size {size} align {align}");
                    assert!((0..size).all(|i| z.add(i).read() == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
