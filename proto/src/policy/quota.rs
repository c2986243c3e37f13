//! Usage limits of ours in the per-user and per-group files: `max-session-time-per-day`
//! (seconds a user may be connected per UTC day, all tunnels added up) and `traffic-quota` with
//! `traffic-quota-period` (bytes both ways per UTC day, ISO week or calendar month).
//!
//! Sans-IO: sec-mod keeps the usage per user and UTC day (its session database) and asks
//! [`Limits::exceeded`] with the sums and the time it read from its clock. Periods are UTC so
//! that a change of the server's time zone or daylight saving time never moves a boundary.

use serde::{Deserialize, Serialize};

use super::{Overrides, PolicyFile};

/// Seconds in a day (UTC has no leap seconds in unix time).
pub const DAY: u64 = 86_400;

/// `traffic-quota-period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Period {
    Day,
    /// Monday 00:00 UTC to the next Monday (ISO 8601 weeks).
    Week,
    /// The calendar month, UTC (the default: quotas are usually monthly).
    #[default]
    Month,
}

impl Period {
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(Self::Day),
            "week" | "weekly" => Ok(Self::Week),
            "month" | "monthly" => Ok(Self::Month),
            _ => Err(format!(
                "expected `day`, `week` or `month`, found \"{}\"",
                v.escape_debug()
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The first day (days since 1970-01-01, UTC) of the period holding `day`.
    pub fn first_day(self, day: u64) -> u64 {
        match self {
            Self::Day => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before a multiple of 7 plus 4.
            Self::Week => day.saturating_sub((day % 7).saturating_add(3) % 7),
            Self::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1)
            }
        }
    }
}

/// Days since 1970-01-01 of a unix time.
pub fn day_of(unix_secs: u64) -> u64 {
    unix_secs / DAY
}

/// The calendar functions take days up to this (year ~11.7 million), so that their arithmetic
/// cannot overflow; later days are treated as this one.
const MAX_DAYS: u64 = u32::MAX as u64;

/// `(year, month 1-12, day 1-31)` of days since 1970-01-01 (the proleptic Gregorian calendar;
/// the era arithmetic of H. Hinnant's public-domain "chrono-Compatible Low-Level Date
/// Algorithms").
#[allow(
    clippy::arithmetic_side_effects,
    reason = "days <= MAX_DAYS: every intermediate stays far below u64::MAX, and each \
              subtraction removes at most what the era/year division left"
)]
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.min(MAX_DAYS) + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a date from 1970 on (`y` as [`civil_from_days`] returns it,
/// `m` 1-12, `d` 1-31).
#[allow(
    clippy::arithmetic_side_effects,
    reason = "y comes from civil_from_days (>= 1970, bounded by MAX_DAYS), m and d are \
              calendar values: no intermediate overflows or goes below zero"
)]
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// A user's limits as their files decide them (none: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// `max-session-time-per-day`, seconds.
    pub time_per_day: Option<u64>,
    /// `traffic-quota` bytes (both directions) per `traffic-quota-period`.
    pub traffic: Option<(u64, Period)>,
}

/// What the user used: connected seconds today, and bytes in the traffic period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub seconds_today: u64,
    pub bytes_in_period: u64,
}

/// Which limit is used up, for the log line and the end reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Time {
        limit: u64,
        used: u64,
    },
    Traffic {
        limit: u64,
        period: Period,
        used: u64,
    },
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Time { limit, used } => write!(
                f,
                "max-session-time-per-day of {limit} s used up ({used} s today, UTC)"
            ),
            Self::Traffic {
                limit,
                period,
                used,
            } => write!(
                f,
                "traffic quota of {limit} bytes per {} used up ({used} bytes this {}, UTC)",
                period.name(),
                period.name()
            ),
        }
    }
}

impl Limits {
    /// The limits of one login: the group's file, then the user's, then the backend's values,
    /// each over the one before (as every other option); 0 in a later file lifts a limit.
    pub fn of(overrides: &Overrides) -> Self {
        let mut limits = Self::default();
        let mut period = None;
        for file in [&overrides.group, &overrides.user, &overrides.auth]
            .into_iter()
            .flatten()
        {
            limits.lay(file, &mut period);
        }
        if let Some((_, p)) = &mut limits.traffic {
            *p = period.unwrap_or_default();
        }
        limits
    }

    fn lay(&mut self, file: &PolicyFile, period: &mut Option<Period>) {
        if let Some(time) = file.max_session_time_per_day {
            self.time_per_day = time.map(u64::from);
        }
        if let Some(bytes) = file.traffic_quota {
            self.traffic = bytes.map(|b| (b, Period::default()));
        }
        if file.traffic_quota_period.is_some() {
            *period = file.traffic_quota_period;
        }
    }

    pub fn is_none(&self) -> bool {
        self.time_per_day.is_none() && self.traffic.is_none()
    }

    /// The first limit `usage` reaches, if any (reaching it is enough: nothing is left).
    pub fn exceeded(&self, usage: Usage) -> Option<Exceeded> {
        if let Some(limit) = self.time_per_day {
            if usage.seconds_today >= limit {
                return Some(Exceeded::Time {
                    limit,
                    used: usage.seconds_today,
                });
            }
        }
        if let Some((limit, period)) = self.traffic {
            if usage.bytes_in_period >= limit {
                return Some(Exceeded::Traffic {
                    limit,
                    period,
                    used: usage.bytes_in_period,
                });
            }
        }
        None
    }
}

/// `traffic-quota`: bytes, with an optional binary suffix `K`, `M`, `G` or `T` (1024-based),
/// e.g. `10G`; 0 = no quota.
pub fn parse_bytes(v: &str) -> Result<Option<u64>, String> {
    let bad = || {
        format!(
            "expected a number of bytes such as 500000000 or 10G (K, M, G, T: powers of 1024), \
             found \"{}\"",
            v.escape_debug()
        )
    };
    let suffixes = [('K', 10), ('M', 20), ('G', 30), ('T', 40)];
    let (digits, shift) = suffixes
        .iter()
        .find_map(|&(c, shift)| {
            v.strip_suffix(c)
                .or_else(|| v.strip_suffix(c.to_ascii_lowercase()))
                .map(|d| (d, shift))
        })
        .unwrap_or((v, 0));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let n = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    Ok((n != 0).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05 (a Saturday) 12:00 UTC.
    const SAT: u64 = 1_796_472_000;

    #[test]
    fn periods_start_where_the_calendar_says() {
        let day = day_of(SAT);
        assert_eq!(civil_from_days(day), (2026, 12, 5));
        assert_eq!(Period::Day.first_day(day), day);
        // Monday 2026-11-30.
        assert_eq!(civil_from_days(Period::Week.first_day(day)), (2026, 11, 30));
        assert_eq!(civil_from_days(Period::Month.first_day(day)), (2026, 12, 1));
        // A Monday is its own week's first day; 1970-01-01 (Thursday) belongs to the week of
        // Monday 1969-12-29, which clamps to day 0.
        let monday = Period::Week.first_day(day);
        assert_eq!(Period::Week.first_day(monday), monday);
        assert_eq!(Period::Week.first_day(0), 0);
        // Leap years: 2024-02-29 and 2100-03-01 (not a leap year).
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        // Every day of 1970-2200 round-trips and its month starts on the 1st.
        for d in 0..days_from_civil(2200, 1, 1) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
            assert_eq!(civil_from_days(Period::Month.first_day(d)).2, 1);
            assert!(d - Period::Week.first_day(d) < 7);
        }
    }

    fn file(
        time: Option<Option<u32>>,
        bytes: Option<Option<u64>>,
        p: Option<Period>,
    ) -> Option<Box<PolicyFile>> {
        Some(Box::new(PolicyFile {
            max_session_time_per_day: time,
            traffic_quota: bytes,
            traffic_quota_period: p,
            ..Default::default()
        }))
    }

    #[test]
    fn the_user_file_lays_over_the_group_file() {
        let o = Overrides {
            group: file(Some(Some(3600)), Some(Some(1000)), Some(Period::Week)),
            user: file(Some(None), None, None),
            auth: None,
        };
        let l = Limits::of(&o);
        assert_eq!(l.time_per_day, None, "the user's 0 lifts the group's limit");
        assert_eq!(l.traffic, Some((1000, Period::Week)));
        let o = Overrides {
            group: None,
            user: file(None, Some(Some(5)), None),
            auth: None,
        };
        assert_eq!(Limits::of(&o).traffic, Some((5, Period::Month)));
        assert!(Limits::of(&Overrides::default()).is_none());
    }

    #[test]
    fn reaching_a_limit_exceeds_it() {
        let l = Limits {
            time_per_day: Some(60),
            traffic: Some((1000, Period::Day)),
        };
        let under = Usage {
            seconds_today: 59,
            bytes_in_period: 999,
        };
        assert_eq!(l.exceeded(under), None);
        let bytes = Usage {
            bytes_in_period: 1000,
            ..under
        };
        assert_eq!(
            l.exceeded(bytes).map(|e| e.to_string()).as_deref(),
            Some("traffic quota of 1000 bytes per day used up (1000 bytes this day, UTC)")
        );
        let time = Usage {
            seconds_today: 60,
            ..under
        };
        assert!(matches!(
            l.exceeded(time),
            Some(Exceeded::Time {
                limit: 60,
                used: 60
            })
        ));
    }

    #[test]
    fn byte_values() {
        assert_eq!(parse_bytes("0"), Ok(None));
        assert_eq!(parse_bytes("1500"), Ok(Some(1500)));
        assert_eq!(parse_bytes("2k"), Ok(Some(2048)));
        assert_eq!(parse_bytes("10G"), Ok(Some(10 << 30)));
        assert_eq!(parse_bytes("1T"), Ok(Some(1 << 40)));
        for bad in [
            "",
            "G",
            "-1",
            "1.5G",
            "1 G",
            "99999999999999999999",
            "20000000T",
            "1P",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(Period::parse("Week"), Ok(Period::Week));
        assert!(Period::parse("year").is_err());
    }
}
