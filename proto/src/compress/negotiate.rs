//! Which compression a channel uses (protocol.md §5.1): the client offers a comma list per
//! channel (`X-CSTP-Accept-Encoding`, `X-DTLS-Accept-Encoding`), the server picks at most one
//! it offered, honouring `compression` (off by default; the draft says compression must not be
//! on by default) and the ocserv priorities (`oc-lz4` 90, `lzs` 80; higher wins), and names it
//! in `X-CSTP-Content-Encoding` / `X-DTLS-Content-Encoding`. The channels are independent:
//! [`choose`] is called once per channel, and a channel whose choice is `None` must never carry
//! a COMPRESSED packet.

use serde::{Deserialize, Serialize};

/// A compression algorithm rocserv can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// `oc-lz4`: raw LZ4 blocks (protocol.md §5.2).
    Lz4,
    /// `lzs`: Stac LZS (protocol.md §5.3).
    Lzs,
}

impl Algorithm {
    /// Every algorithm, in ocserv's default preference order.
    pub const ALL: [Self; 2] = [Self::Lz4, Self::Lzs];

    /// The token in the Accept-Encoding / Content-Encoding headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lz4 => "oc-lz4",
            Self::Lzs => "lzs",
        }
    }

    /// The algorithm a header token names (case-insensitive, as ocserv compares).
    pub fn from_name(token: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(token.trim()))
    }
}

/// ocserv's built-in priority of `oc-lz4`.
pub const DEFAULT_LZ4_PRIORITY: u32 = 90;
/// ocserv's built-in priority of `lzs`.
pub const DEFAULT_LZS_PRIORITY: u32 = 80;
/// ocserv's `no-compress-limit` default.
pub const DEFAULT_NO_COMPRESS_LIMIT: u32 = 256;
/// ocserv raises smaller `no-compress-limit` values to this.
pub const MIN_NO_COMPRESS_LIMIT: u32 = 64;

/// The server's compression settings (`compression`, `compression-algo-priority`,
/// `no-compress-limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `compression`: negotiate at all.
    pub enabled: bool,
    /// Priorities; the highest one the client offered wins.
    pub lz4_priority: u32,
    pub lzs_priority: u32,
    /// `no-compress-limit`: packets of at most this many bytes are sent uncompressed (VoIP
    /// packets stay fast); at least [`MIN_NO_COMPRESS_LIMIT`].
    pub no_compress_limit: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: false,
            lz4_priority: DEFAULT_LZ4_PRIORITY,
            lzs_priority: DEFAULT_LZS_PRIORITY,
            no_compress_limit: DEFAULT_NO_COMPRESS_LIMIT,
        }
    }
}

impl Policy {
    pub fn priority(&self, algorithm: Algorithm) -> u32 {
        match algorithm {
            Algorithm::Lz4 => self.lz4_priority,
            Algorithm::Lzs => self.lzs_priority,
        }
    }

    fn set_priority(&mut self, algorithm: Algorithm, priority: u32) {
        match algorithm {
            Algorithm::Lz4 => self.lz4_priority = priority,
            Algorithm::Lzs => self.lzs_priority = priority,
        }
    }
}

/// The algorithm for one channel, from that channel's Accept-Encoding header (`None` when the
/// header is absent, compression is off, or nothing offered is known). On equal priorities the
/// one the client listed first wins (ocserv's rule).
pub fn choose(accept_encoding: Option<&str>, policy: &Policy) -> Option<Algorithm> {
    if !policy.enabled {
        return None;
    }
    let mut best: Option<Algorithm> = None;
    for algorithm in accept_encoding?.split(',').filter_map(Algorithm::from_name) {
        if best.is_none_or(|b| policy.priority(algorithm) > policy.priority(b)) {
            best = Some(algorithm);
        }
    }
    best
}

/// A `compression-algo-priority` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriorityError {
    /// A name that is not `oc-lz4` (or `lz4`) or `lzs`.
    #[error("unknown compression algorithm `{0}`; expected `oc-lz4` or `lzs`")]
    UnknownAlgorithm(String),
    /// The number after the name is not a whole number of at least 1.
    #[error("expected a priority of at least 1 after `{0}:`")]
    BadPriority(String),
    /// Nothing usable in the value.
    #[error("expected `ALGORITHM:PRIORITY` (e.g. `lzs:100`) or a list such as `lzs:oc-lz4`")]
    Empty,
}

/// Apply one `compression-algo-priority` line to `policy`. ocserv's form is `NAME:PRIORITY`
/// (one algorithm per line, e.g. `lzs:100`; ocserv src/worker-http.c `switch_comp_priority`).
/// rocserv also takes a colon list of names in order of preference (`lzs:oc-lz4`), which puts the
/// listed algorithms above the unlisted ones in that order. `lz4` is accepted for `oc-lz4`.
pub fn apply_priority(value: &str, policy: &mut Policy) -> Result<(), PriorityError> {
    let parts: Vec<&str> = value.split(':').map(str::trim).collect();
    let algorithm = |name: &str| match name.to_ascii_lowercase().as_str() {
        "lz4" | "oc-lz4" => Ok(Algorithm::Lz4),
        "lzs" => Ok(Algorithm::Lzs),
        _ => Err(PriorityError::UnknownAlgorithm(name.to_owned())),
    };
    match parts.as_slice() {
        [] | [""] => Err(PriorityError::Empty),
        [name, number] if number.starts_with(|c: char| c.is_ascii_digit()) => {
            let algorithm = algorithm(name)?;
            let priority = number
                .parse::<u32>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| PriorityError::BadPriority((*name).to_owned()))?;
            policy.set_priority(algorithm, priority);
            Ok(())
        }
        names => {
            let order = names
                .iter()
                .map(|n| algorithm(n))
                .collect::<Result<Vec<_>, _>>()?;
            // Above every other priority, in the listed order.
            let top = Algorithm::ALL
                .iter()
                .map(|a| policy.priority(*a))
                .max()
                .unwrap_or(0);
            let mut next = top.saturating_add(u32::try_from(order.len()).unwrap_or(u32::MAX));
            for algorithm in order {
                policy.set_priority(algorithm, next);
                next = next.saturating_sub(1);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> Policy {
        Policy {
            enabled: true,
            ..Policy::default()
        }
    }

    #[test]
    fn off_by_default() {
        assert_eq!(choose(Some("oc-lz4,lzs"), &Policy::default()), None);
    }

    #[test]
    fn openconnect_offer_picks_lz4() {
        assert_eq!(choose(Some("oc-lz4,lzs"), &on()), Some(Algorithm::Lz4));
        assert_eq!(choose(Some("lzs,oc-lz4"), &on()), Some(Algorithm::Lz4));
        assert_eq!(choose(Some(" LZS , deflate"), &on()), Some(Algorithm::Lzs));
        assert_eq!(choose(Some("deflate"), &on()), None);
        assert_eq!(choose(Some(""), &on()), None);
        assert_eq!(choose(None, &on()), None);
        // `lz4` is a config spelling only; clients say `oc-lz4`.
        assert_eq!(choose(Some("lz4"), &on()), None);
    }

    #[test]
    fn ocserv_priority_form() {
        let mut p = on();
        apply_priority("lzs:1000", &mut p).unwrap();
        assert_eq!(p.lzs_priority, 1000);
        assert_eq!(choose(Some("oc-lz4,lzs"), &p), Some(Algorithm::Lzs));
        apply_priority("OC-LZ4:2000", &mut p).unwrap();
        assert_eq!(choose(Some("oc-lz4,lzs"), &p), Some(Algorithm::Lz4));
        assert_eq!(
            apply_priority("lzs:0", &mut p),
            Err(PriorityError::BadPriority("lzs".into()))
        );
        assert_eq!(
            apply_priority("zstd:5", &mut p),
            Err(PriorityError::UnknownAlgorithm("zstd".into()))
        );
        assert_eq!(apply_priority("", &mut p), Err(PriorityError::Empty));
    }

    #[test]
    fn order_list_form() {
        let mut p = on();
        apply_priority("lzs:lz4", &mut p).unwrap();
        assert!(p.lzs_priority > p.lz4_priority);
        assert_eq!(choose(Some("oc-lz4,lzs"), &p), Some(Algorithm::Lzs));
        apply_priority("lzs", &mut p).unwrap();
        assert_eq!(choose(Some("oc-lz4,lzs"), &p), Some(Algorithm::Lzs));
        apply_priority("oc-lz4:lzs", &mut p).unwrap();
        assert_eq!(choose(Some("lzs,oc-lz4"), &p), Some(Algorithm::Lz4));
        assert!(apply_priority("lzs:bogus", &mut p).is_err());
    }

    #[test]
    fn equal_priorities_keep_the_clients_order() {
        let mut p = on();
        p.lzs_priority = p.lz4_priority;
        assert_eq!(choose(Some("lzs,oc-lz4"), &p), Some(Algorithm::Lzs));
        assert_eq!(choose(Some("oc-lz4,lzs"), &p), Some(Algorithm::Lz4));
    }
}
