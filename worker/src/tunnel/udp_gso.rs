//! Batches of DTLS records for one `sendmsg` with UDP GSO (`UDP_SEGMENT`): the kernel cuts the
//! buffer into datagrams of the segment size, so a burst of tun packets costs one trip through
//! the UDP/IP stack instead of one per packet. GSO needs every segment but the last to have the
//! same size, so a batch holds records of one size, optionally closed by one shorter record; a
//! record of another size starts the next batch. Bulk TCP through the tunnel is mostly full-size
//! packets, which is where the saving is. When the kernel refuses GSO the batch is sent one
//! datagram at a time, and GSO is not tried again on this socket.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// The kernel's limit on segments per GSO send (UDP_MAX_SEGMENTS in older kernels).
const MAX_SEGMENTS: usize = 64;
/// Total payload of one GSO send must fit one IP datagram.
const MAX_BYTES: usize = 65_000;

/// Records waiting to leave in one send.
pub struct Batch {
    buf: Box<[u8]>,
    len: usize,
    segment: usize,
    count: usize,
    /// A shorter record ended the batch: nothing may follow it.
    closed: bool,
    gso: bool,
}

impl Batch {
    /// `record_room`: the largest record plus its slack; 0 = an unused batch (no buffer).
    pub fn new(record_room: usize) -> Self {
        let size = if record_room == 0 {
            0
        } else {
            MAX_BYTES.saturating_add(record_room)
        };
        Self {
            buf: vec![0; size].into_boxed_slice(),
            len: 0,
            segment: 0,
            count: 0,
            closed: false,
            gso: true,
        }
    }

    /// Where the next record is built (it may be moved to the front by [`Self::push`]).
    pub fn next_slot(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.len..).unwrap_or_default()
    }

    /// A record of `len` bytes was built at the start of [`Self::next_slot`]: add it, sending
    /// what must go first. Errors are those of the socket (the records concerned are dropped,
    /// as UDP would).
    pub fn push(&mut self, fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
        let mut result = Ok(());
        let fits =
            self.count == 0 || (!self.closed && len <= self.segment && self.count < MAX_SEGMENTS);
        if !fits {
            // The record sits behind the batch; send that, then move the record to the front.
            let at = self.len;
            result = self.flush(fd);
            let end = at.saturating_add(len);
            if end <= self.buf.len() {
                self.buf.copy_within(at..end, 0);
            }
        }
        if self.count == 0 {
            self.segment = len;
        } else if len < self.segment {
            self.closed = true;
        }
        self.count = self.count.saturating_add(1);
        self.len = self.len.saturating_add(len);
        if self.closed
            || self.count >= MAX_SEGMENTS
            || self.len.saturating_add(self.segment) > MAX_BYTES
        {
            let sent = self.flush(fd);
            result = result.and(sent);
        }
        result
    }

    /// Send what is batched.
    pub fn flush(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let data = self.buf.get(..self.len).unwrap_or_default();
        let result = match self.count {
            0 => Ok(()),
            1 => send_one(fd, data),
            _ if self.gso => match send_gso(fd, data, self.segment) {
                Err(err) if refused(&err) => {
                    log::debug!("UDP GSO refused ({err}); sending datagram by datagram");
                    self.gso = false;
                    send_each(fd, data, self.segment)
                }
                // Segments larger than the route's MTU: the kernel refuses GSO whatever
                // IP_MTU_DISCOVER says. One by one they are fragmented, or refused with DF
                // set (try-mtu-discovery then lowers the MTU: path_mtu.rs).
                Err(err) if err.raw_os_error() == Some(libc::EMSGSIZE) => {
                    send_each(fd, data, self.segment)
                }
                other => other,
            },
            _ => send_each(fd, data, self.segment),
        };
        self.len = 0;
        self.count = 0;
        self.segment = 0;
        self.closed = false;
        result
    }
}

fn send_gso(fd: BorrowedFd<'_>, data: &[u8], segment: usize) -> io::Result<()> {
    let size = u16::try_from(segment).map_err(|_| io::Error::other("segment too large"))?;
    let cmsg = [ControlMessage::UdpGsoSegments(&size)];
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(data)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

fn send_one(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    nix::sys::socket::send(fd.as_raw_fd(), data, MsgFlags::empty())?;
    Ok(())
}

fn send_each(fd: BorrowedFd<'_>, data: &[u8], segment: usize) -> io::Result<()> {
    let mut result = Ok(());
    for datagram in data.chunks(segment.max(1)) {
        result = result.and(send_one(fd, datagram));
    }
    result
}

/// Errors that mean "no GSO here" (old kernel, device without checksum offload).
fn refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (tx, rx)
    }

    fn push(batch: &mut Batch, tx: &UdpSocket, byte: u8, len: usize) {
        batch.next_slot()[..len].fill(byte);
        batch.push(tx.as_fd(), len).unwrap();
    }

    #[test]
    fn equal_records_then_a_short_one_arrive_as_separate_datagrams() {
        let (tx, rx) = pair();
        let mut batch = Batch::new(2000);
        push(&mut batch, &tx, 1, 1000);
        push(&mut batch, &tx, 2, 1000);
        push(&mut batch, &tx, 3, 400); // closes and sends the batch
        push(&mut batch, &tx, 4, 1200); // larger: a batch of its own
        push(&mut batch, &tx, 5, 1300); // larger again: sends the previous one
        batch.flush(tx.as_fd()).unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        for _ in 0..5 {
            let n = rx.recv(&mut buf).unwrap();
            assert!(buf[..n].iter().all(|b| *b == buf[0]));
            got.push((buf[0], n));
        }
        assert_eq!(got, [(1, 1000), (2, 1000), (3, 400), (4, 1200), (5, 1300)]);
    }
}
