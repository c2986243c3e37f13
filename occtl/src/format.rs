//! ocserv occtl's human formats (protocol.md §7.2): byte counts, rates, compact ages, dates.

/// `123 bytes`, `1.2 kB`, `3.4 MB`, `5.6 GB` (powers of 1000), then `suffix`.
pub(crate) fn bytes(n: u64, suffix: &str) -> String {
    // Display only: the f64 rounding of huge counters does not matter.
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n >= 1_000_000_000 {
        format!("{:.1} GB{suffix}", f / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1} MB{suffix}", f / 1e6)
    } else if n > 1000 {
        format!("{:.1} kB{suffix}", f / 1e3)
    } else {
        format!("{n} bytes{suffix}")
    }
}

/// Average rate of `n` bytes over `secs` seconds, e.g. `1.2 kB/s`.
pub(crate) fn rate(n: u64, secs: u64) -> String {
    bytes(n.checked_div(secs).unwrap_or(0), "/s")
}

/// ocserv's 7-column age: ` 3days`, ` 2h:05m`, ` 4m:07s`, `    6s`; `   ?   ` when negative.
pub(crate) fn age(secs: i64) -> String {
    match secs {
        s if s < 0 => "   ?   ".to_owned(),
        s if s >= 48 * 3600 => format!("{:2}days", s / 86_400),
        s if s >= 3600 => format!("{:2}h:{:02}m", s / 3600, (s / 60) % 60),
        s if s > 60 => format!("{:2}m:{:02}s", s / 60, s % 60),
        s => format!("{s:5}s"),
    }
}

/// Seconds from `then` to `now` (negative if `then` is in the future).
pub(crate) fn since(now: u64, then: u64) -> i64 {
    i64::try_from(now)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(then).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD HH:MM`, local time.
pub(crate) fn date(unix: u64) -> String {
    crate::localtime::date_time(unix).unwrap_or_else(|| "unknown".to_owned())
}

/// A duration in seconds, compact (ocserv prints `Average session time` etc. this way).
pub(crate) fn duration(secs: u64) -> String {
    age(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_like_ocserv() {
        assert_eq!(bytes(0, ""), "0 bytes");
        assert_eq!(bytes(1000, ""), "1000 bytes");
        assert_eq!(bytes(1234, ""), "1.2 kB");
        assert_eq!(bytes(3_400_000, ""), "3.4 MB");
        assert_eq!(bytes(5_600_000_000, ""), "5.6 GB");
        assert_eq!(rate(2500, 2), "1.2 kB/s");
        assert_eq!(rate(5, 0), "0 bytes/s");
    }

    #[test]
    fn ages_are_seven_columns() {
        assert_eq!(age(6), "    6s");
        assert_eq!(age(60), "   60s");
        assert_eq!(age(247), " 4m:07s");
        assert_eq!(age(7500), " 2h:05m");
        assert_eq!(age(3 * 86_400), " 3days");
        assert_eq!(age(-1), "   ?   ");
        assert_eq!(since(10, 4), 6);
        assert_eq!(since(4, 10), -6);
    }

    #[test]
    fn dates_have_the_ocserv_shape() {
        let d = date(1_700_000_000);
        assert_eq!(d.len(), 16, "{d}");
        assert_eq!(&d[4..5], "-");
        assert_eq!(&d[13..14], ":");
    }
}
