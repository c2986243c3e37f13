//! DTLS record header codec and the 64-entry anti-replay window (RFC 6347 §4.1, §4.1.2.6).
//!
//! Header: type(1) version(2) epoch(2) sequence_number(6) length(2) = 13 bytes.

/// Length of a DTLS record header.
pub(crate) const HEADER_LEN: usize = 13;
/// Largest plaintext in one record (RFC 6347 §4.1 via RFC 5246 §6.2.1).
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// Sequence numbers are 48 bits.
pub(crate) const MAX_SEQ: u64 = (1 << 48) - 1;

pub(crate) const DTLS1_0: u16 = 0xFEFF;
pub(crate) const DTLS1_2: u16 = 0xFEFD;
/// OpenSSL's `DTLS1_BAD_VER`, Cisco's pre-RFC DTLS (protocol.md §4.3).
pub(crate) const DTLS_BAD_VER: u16 = 0x0100;

/// Record content types (RFC 5246 §6.2.1).
pub(crate) mod content {
    pub(crate) const CHANGE_CIPHER_SPEC: u8 = 20;
    pub(crate) const ALERT: u8 = 21;
    pub(crate) const HANDSHAKE: u8 = 22;
    pub(crate) const APPLICATION_DATA: u8 = 23;
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) ty: u8,
    pub(crate) version: u16,
    pub(crate) epoch: u16,
    pub(crate) seq: u64,
    pub(crate) len: u16,
}

impl Header {
    /// The header at the start of `bytes`, if 13 bytes are there and the version is one of ours.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let [ty, v0, v1, e0, e1, s0, s1, s2, s3, s4, s5, l0, l1] = *h;
        let version = u16::from_be_bytes([v0, v1]);
        if !matches!(version, DTLS1_0 | DTLS1_2 | DTLS_BAD_VER) {
            return None;
        }
        Some(Self {
            ty,
            version,
            epoch: u16::from_be_bytes([e0, e1]),
            seq: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
            len: u16::from_be_bytes([l0, l1]),
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.ty;
        out[1..3].copy_from_slice(&self.version.to_be_bytes());
        out[3..11].copy_from_slice(&epoch_seq(self.epoch, self.seq));
        out[11..13].copy_from_slice(&self.len.to_be_bytes());
        out
    }
}

/// epoch(2) || seq(6): the GCM explicit nonce and the first 8 bytes of the AAD/MAC input.
pub(crate) fn epoch_seq(epoch: u16, seq: u64) -> [u8; 8] {
    let mut out = (seq & MAX_SEQ).to_be_bytes();
    out[..2].copy_from_slice(&epoch.to_be_bytes());
    out
}

/// Splits the first record off `datagram`: its header, body and the rest. `None` when the
/// header is bad or the length runs past the datagram (the rest of the datagram is then
/// dropped, RFC 6347 §4.1.2.7).
pub(crate) fn split_first(datagram: &mut [u8]) -> Option<(Header, &mut [u8], &mut [u8])> {
    let header = Header::parse(datagram)?;
    let rest = datagram.get_mut(HEADER_LEN..)?;
    let len = usize::from(header.len);
    if len > rest.len() {
        return None;
    }
    let (body, rest) = rest.split_at_mut(len);
    Some((header, body, rest))
}

/// Sliding anti-replay window over the last 64 sequence numbers of one epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayWindow {
    /// Highest authenticated sequence number, if any.
    top: Option<u64>,
    /// Bit `i` set = `top - i` was seen.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `seq` is new (call before decrypting; [`Self::mark`] after authenticating).
    pub(crate) fn is_fresh(&self, seq: u64) -> bool {
        let Some(top) = self.top else { return true };
        if seq > top {
            return true;
        }
        match top.checked_sub(seq) {
            Some(age) if age < 64 => self.seen & (1u64 << age) == 0,
            _ => false,
        }
    }

    /// Records an authenticated `seq`.
    pub(crate) fn mark(&mut self, seq: u64) {
        match self.top {
            Some(top) if seq <= top => {
                if let Some(age) = top.checked_sub(seq).filter(|a| *a < 64) {
                    self.seen |= 1u64 << age;
                }
            }
            Some(top) => {
                let shift = seq.saturating_sub(top);
                self.seen = if shift >= 64 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.top = Some(seq);
            }
            None => {
                self.top = Some(seq);
                self.seen = 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            ty: 23,
            version: DTLS1_2,
            epoch: 1,
            seq: 0x0102_0304_0506,
            len: 0x0708,
        };
        let bytes = h.to_bytes();
        assert_eq!(
            bytes,
            [23, 0xfe, 0xfd, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8],
            "RFC 6347 §4.1 layout"
        );
        assert_eq!(Header::parse(&bytes), Some(h));
        let mut tls = bytes;
        tls[1] = 3;
        assert_eq!(Header::parse(&tls), None);
        assert_eq!(Header::parse(&bytes[..12]), None);
    }

    #[test]
    fn split_respects_lengths() {
        let mut d = Header {
            ty: 22,
            version: DTLS1_2,
            epoch: 0,
            seq: 0,
            len: 3,
        }
        .to_bytes()
        .to_vec();
        d.extend_from_slice(&[1, 2, 3, 9]);
        let (h, body, rest) = split_first(&mut d).unwrap();
        assert_eq!((h.ty, &*body, &*rest), (22, &[1, 2, 3][..], &[9][..]));
        d.truncate(15);
        assert!(split_first(&mut d).is_none(), "length past the end");
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        assert!(w.is_fresh(5));
        w.mark(5);
        assert!(!w.is_fresh(5));
        assert!(w.is_fresh(4));
        assert!(w.is_fresh(6));
        w.mark(100);
        assert!(!w.is_fresh(5), "older than the window");
        assert!(w.is_fresh(99));
        assert!(w.is_fresh(37));
        assert!(!w.is_fresh(36), "exactly 64 behind is outside");
        w.mark(99);
        assert!(!w.is_fresh(99));
        assert!(!w.is_fresh(100));
        w.mark(MAX_SEQ);
        assert!(!w.is_fresh(MAX_SEQ));
        assert!(!w.is_fresh(100));
    }
}
