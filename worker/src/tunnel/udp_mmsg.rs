//! Reading a burst of datagrams with one `recvmmsg`: a bulk upload arrives as a stream of
//! datagrams, and one syscall per datagram was the largest user-visible cost left on that path.
//! The buffer is cut into equal slots, one datagram each; a datagram larger than its slot is
//! reported as truncated and dropped by the caller.
//!
//! `unsafe` here: `recvmmsg` is called through libc (the `mmsghdr` and `iovec` arrays point
//! into the slots, and live on the stack for the call).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Datagrams per call.
pub const BURST: usize = 32;

/// One received datagram: where it is and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub slot: usize,
    pub len: usize,
    /// It did not fit its slot (MSG_TRUNC): the bytes are incomplete.
    pub truncated: bool,
}

/// Receive up to [`BURST`] datagrams into the slots of `buf` (each `slot_len` bytes), without
/// blocking. `WouldBlock` when none is waiting.
pub fn recv_burst(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot_len: usize,
    out: &mut [Received; BURST],
) -> io::Result<usize> {
    let slots = buf.len().checked_div(slot_len).unwrap_or(0).min(BURST);
    if slots == 0 {
        return Err(io::Error::other("no room for a datagram"));
    }
    // SAFETY: all-zero is a valid iovec/mmsghdr (null pointers, zero lengths).
    let mut iov: [libc::iovec; BURST] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
    for (i, chunk) in buf.chunks_exact_mut(slot_len).take(slots).enumerate() {
        let (Some(v), Some(m)) = (iov.get_mut(i), msgs.get_mut(i)) else {
            break;
        };
        v.iov_base = chunk.as_mut_ptr().cast();
        v.iov_len = chunk.len();
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let count = libc::c_uint::try_from(slots).unwrap_or(0);
    // SAFETY: `msgs[..slots]` each point to one iovec in `iov`, which points into a distinct
    // `slot_len` chunk of `buf`; both arrays and `buf` outlive the call. No addresses or control
    // data are asked for (connected socket).
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            count,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    for (i, (m, r)) in msgs.iter().zip(out.iter_mut()).take(n).enumerate() {
        *r = Received {
            slot: i,
            len: usize::try_from(m.msg_len).unwrap_or(0),
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn a_burst_arrives_in_slots_and_oversized_ones_are_flagged() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        rx.connect(tx.local_addr().unwrap()).unwrap();
        let mut buf = vec![0u8; 4 * 100];
        let mut out = [Received {
            slot: 0,
            len: 0,
            truncated: false,
        }; BURST];
        let err = recv_burst(rx.as_fd(), &mut buf, 100, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        for (byte, len) in [(1u8, 10usize), (2, 100), (3, 150), (4, 1)] {
            tx.send(&vec![byte; len]).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..50 {
            match recv_burst(rx.as_fd(), &mut buf, 100, &mut out) {
                Ok(n) => got.extend_from_slice(&out[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got.len() == 4 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let lens: Vec<(usize, bool)> = got.iter().map(|r| (r.len, r.truncated)).collect();
        assert_eq!(lens, [(10, false), (100, false), (100, true), (1, false)]);
        let first = got[0];
        assert_eq!(&buf[first.slot * 100..first.slot * 100 + 10], &[1u8; 10]);
    }
}
