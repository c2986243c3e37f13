//! Allocator tuning for a process that holds one mostly idle tunnel.
//!
//! The tunnel keeps a few 64 KiB buffers (socket reads, frame reassembly, the GSO batch). From
//! glibc's heap they come zero-filled, so every page of them is resident in every worker even
//! while its client is idle; hundreds of workers make that the largest part of the memory per
//! session. Served by mmap instead, a buffer costs only the pages a packet actually touched.
#![allow(unsafe_code)]

/// Allocations of this size and above get their own anonymous mapping.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;

/// Call once at start-up, before the tunnel buffers are allocated.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists and takes no pointers. A failure (return 0) leaves glibc's default, which is only
    // less frugal, so the result is not checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// A zero-filled byte buffer in an anonymous mapping of its own, for the tunnel's send buffers.
///
/// Below [`MMAP_THRESHOLD`] a `vec![0; n]` comes from the heap, and glibc's `calloc` clears a
/// reused heap chunk by writing zeros to it: every page of a 16 KiB send buffer was resident in
/// every worker although an idle tunnel only writes the first one (32 kB of all-zero pages per
/// worker with DTLS, doc/performance.md "session 9: memory per idle worker"). A fresh mapping is
/// zero without being written: a page costs memory from the first packet written to it. If the
/// mapping cannot be made, the buffer comes from the heap as before.
pub struct PageBuf(Storage);

enum Storage {
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    Heap(Box<[u8]>),
}

// SAFETY: a `PageBuf` owns its mapping exclusively (nothing else holds the pointer), like a
// `Box<[u8]>`; moving it to or sharing `&` of it with another thread is as safe as for a Box.
unsafe impl Send for PageBuf {}
// SAFETY: see `Send`: `&PageBuf` only gives `&[u8]`.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// `len` zero bytes (none: an empty buffer, no mapping).
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            return Self(Storage::Heap(Box::default()));
        }
        // SAFETY: a new private anonymous mapping at an address of the kernel's choice: it
        // aliases nothing; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match std::ptr::NonNull::new(ptr.cast::<u8>()) {
            Some(ptr) if ptr.as_ptr().cast() != libc::MAP_FAILED => {
                Self(Storage::Mapped { ptr, len })
            }
            _ => Self(Storage::Heap(vec![0; len].into_boxed_slice())),
        }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            // SAFETY: `ptr` is a live mapping of `len` readable bytes owned by `self` (unmapped
            // only in `drop`); the borrow of `self` keeps `&mut` access out meanwhile.
            Storage::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            Storage::Heap(buf) => buf,
        }
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            // SAFETY: as in `deref`, and `&mut self` makes this the only access.
            Storage::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
            Storage::Heap(buf) => buf,
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if let Storage::Mapped { ptr, len } = self.0 {
            // SAFETY: the mapping made in `zeroed`, unmapped once; no slice of it outlives
            // `self`. A failure would only leak the mapping until the process exits.
            unsafe {
                libc::munmap(ptr.as_ptr().cast(), len);
            }
        }
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mapped = matches!(self.0, Storage::Mapped { .. });
        write!(f, "PageBuf({} bytes, mapped: {mapped})", self.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // test code
mod tests {
    use super::*;

    #[test]
    fn a_page_buffer_is_zero_writable_and_mapped() {
        let mut buf = PageBuf::zeroed(16_384);
        assert_eq!(buf.len(), 16_384);
        assert!(buf.iter().all(|b| *b == 0));
        buf[0] = 1;
        buf[16_383] = 2;
        assert_eq!((buf[0], buf[16_383]), (1, 2));
        assert!(format!("{buf:?}").contains("mapped: true"));
    }

    #[test]
    fn an_empty_page_buffer_maps_nothing() {
        let buf = PageBuf::zeroed(0);
        assert!(buf.is_empty());
        assert!(format!("{buf:?}").contains("mapped: false"));
    }
}
