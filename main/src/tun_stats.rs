//! A tun device's kernel packet counters, for main's idle-timeout backstop: the worker's own
//! idle timer is the worker's word, the kernel's counters are not (see [`crate::limits::IdleWatch`]).
//!
//! Read from `/proc/self/net/dev`, which always shows the reader's network namespace (sysfs
//! may show another one where it was mounted elsewhere). The device is checked by name *and*
//! interface index, since names are reused: a device that is gone or was replaced reads as
//! `None` (no traffic of this connection).

/// Whether `device` is still the interface `ifindex` (names are reused).
pub fn ifindex_is(device: &str, ifindex: u32) -> bool {
    nix::net::if_::if_nametoindex(device).is_ok_and(|i| i == ifindex)
}

/// The bytes the device received (from the client, written by the worker) and sent.
pub fn bytes(device: &str) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    bytes_in(&table, device)
}

/// rx_bytes and tx_bytes of `device` in the text of /proc/net/dev.
pub fn bytes_in(table: &str, device: &str) -> Option<(u64, u64)> {
    let numbers = fields(table, device)?;
    Some((*numbers.first()?, *numbers.get(8)?))
}

/// The numbers of `device`'s line in the text of /proc/net/dev: two header lines, then
/// `name: rx_bytes rx_packets (6 more rx fields) tx_bytes tx_packets ...`.
fn fields(table: &str, device: &str) -> Option<Vec<u64>> {
    table.lines().find_map(|line| {
        let (name, fields) = line.split_once(':')?;
        if name.trim() != device {
            return None;
        }
        fields
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()
    })
}

/// The packets the device received plus those it sent, if it is still the device `ifindex`.
pub fn packets(device: &str, ifindex: u32) -> Option<u64> {
    if nix::net::if_::if_nametoindex(device).ok()? != ifindex {
        return None;
    }
    let table = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    packets_in(&table, device)
}

/// rx_packets + tx_packets of `device` in the text of /proc/net/dev.
pub fn packets_in(table: &str, device: &str) -> Option<u64> {
    let numbers = fields(table, device)?;
    Some(numbers.get(1)?.saturating_add(*numbers.get(9)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     240       4    0    0    0     0          0         0      240       4    0    0    0     0       0          0
vpns10:    1000      7    0    0    0     0          0         0     2000      11    0    0    0     0       0          0
 vpns1: 123456789012 5 0 0 0 0 0 0 9 3 0 0 0 0 0 0
";

    #[test]
    fn reads_bytes_of_the_named_device_only() {
        assert_eq!(bytes_in(TABLE, "vpns10"), Some((1000, 2000)));
        assert_eq!(bytes_in(TABLE, "vpns1"), Some((123456789012, 9)));
        assert_eq!(bytes_in(TABLE, "vpns"), None);
    }

    #[test]
    fn reads_packets_of_the_named_device_only() {
        assert_eq!(packets_in(TABLE, "vpns10"), Some(18));
        assert_eq!(packets_in(TABLE, "vpns1"), Some(8));
        assert_eq!(packets_in(TABLE, "lo"), Some(8));
        assert_eq!(packets_in(TABLE, "vpns"), None);
        assert_eq!(packets_in(TABLE, "vpns0"), None);
        assert_eq!(packets_in("vpns0: 1 2 x", "vpns0"), None);
        assert_eq!(packets_in("vpns0: 1 2", "vpns0"), None);
    }
}
