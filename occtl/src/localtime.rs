//! Local calendar time for a unix timestamp (`localtime_r`), the one place occtl needs libc's
//! time zone rules: ocserv's occtl prints dates in the local zone (`%Y-%m-%d %H:%M`).
#![allow(unsafe_code)]

/// `YYYY-MM-DD HH:MM` in the local time zone; `None` if the C library cannot convert it.
pub(crate) fn date_time(unix: u64) -> Option<String> {
    let t = libc::time_t::try_from(unix).ok()?;
    // SAFETY: `tm` is plain old data, fully written by localtime_r on success; both pointers
    // are valid for the duration of the call and localtime_r keeps neither.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    ))
}
