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

/// How far below the caller [`release_stack_below`] reaches: more than the login's deepest call
/// chain, well inside the stack's reserved range (nothing else is mapped within the stack
/// rlimit, at least 128 MiB, below the stack's top).
const STACK_RELEASE: usize = 256 * 1024;

/// Give back the stack pages below the caller's frame: the login's deep call chains (TLS
/// handshake, tokio's `block_on`) touched them once; a page the tunnel reaches again comes back
/// as a fresh zero page. Only on the main thread (whose stack has that reserved range; a thread's
/// stack is a mapping of its own, possibly smaller than [`STACK_RELEASE`]) or a thread with a
/// stack larger than it (the unit test's): on any other thread this does nothing.
pub fn release_stack_below() {
    // SAFETY: getpid and gettid take nothing and cannot fail.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    if main_thread {
        release_below_here();
    }
}

/// [`release_stack_below`] without the main-thread check (its unit test runs on a thread with a
/// 2 MiB stack).
#[inline(never)]
fn release_below_here() {
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let page = 4096;
    // Skip this frame's page and the next two (the `madvise` call itself runs there).
    let end = (here & !(page - 1)).saturating_sub(2 * page);
    let start = end.saturating_sub(STACK_RELEASE);
    // SAFETY: [start, end) lies below every live frame (this one and its callers are above
    // `end`; this function calls nothing else that lives past the call), inside the part of
    // the address space reserved for the stack: only dead stack pages or unmapped addresses
    // (ENOMEM, ignored). MADV_DONTNEED on dead stack pages only drops their contents.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
    std::hint::black_box(&marker);
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

    #[inline(never)]
    fn deep(n: u32) -> u64 {
        let buf = std::hint::black_box([n as u8; 4096]);
        if n == 0 {
            buf.iter().map(|b| u64::from(*b)).sum()
        } else {
            deep(n - 1) + u64::from(buf[7])
        }
    }

    #[test]
    fn releasing_the_stack_below_keeps_the_callers_frames() {
        // Touch some stack below us first, then drop it: what our frames hold must survive.
        let here = std::hint::black_box([0x5au8; 8192]);
        assert_eq!(deep(16), (1..=16).sum::<u64>());
        release_below_here();
        assert!(here.iter().all(|b| *b == 0x5a));
        // The released pages come back (zeroed) when the stack grows again.
        assert_eq!(deep(16), (1..=16).sum::<u64>());
    }

    #[test]
    fn an_empty_page_buffer_maps_nothing() {
        let buf = PageBuf::zeroed(0);
        assert!(buf.is_empty());
        assert!(format!("{buf:?}").contains("mapped: false"));
    }
}
