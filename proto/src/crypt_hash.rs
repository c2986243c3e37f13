//! The fields of a crypt(3) SHA hash string, `$5$` (SHA-256) or `$6$` (SHA-512):
//! `$id$[rounds=N$]salt$digest`, as password files hold them (ocpasswd writes `$5$`; panels and
//! `openssl passwd -5/-6` write either). Parsed here, sans-IO and fuzzed (`passwd` target);
//! sec-mod computes the digest (`sec-mod/src/auth/crypt.rs`).
//!
//! Format and limits: Drepper, "Unix crypt using SHA-256 and SHA-512"
//! (<https://www.akkadia.org/drepper/SHA-crypt.txt>), the public-domain specification.

/// Rounds when the hash names none (spec: 5000).
pub const ROUNDS_DEFAULT: usize = 5_000;
/// Fewer rounds than this are raised to it (spec).
pub const ROUNDS_MIN: usize = 1_000;
/// More rounds than this are lowered to it (spec).
pub const ROUNDS_MAX: usize = 999_999_999;

/// Which digest a hash uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$5$`.
    Sha256,
    /// `$6$`.
    Sha512,
}

/// Why a hash string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// Not a `$5$` or `$6$` hash (MD5 `$1$`, DES, yescrypt... are not supported).
    #[error("unsupported hash type (only $5$ and $6$ are supported)")]
    Unsupported,
    /// A `$5$`/`$6$` string that does not have the `$id$[rounds=N$]salt$hash` shape.
    #[error("malformed crypt hash")]
    Malformed,
}

/// A parsed hash string; `salt` and `digest` borrow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptHash<'a> {
    pub scheme: Scheme,
    /// Already clamped to [`ROUNDS_MIN`]..=[`ROUNDS_MAX`], as glibc does.
    pub rounds: usize,
    /// Everything up to the next `$` (the digest uses its first 16 bytes).
    pub salt: &'a str,
    /// The base-64 digest after the last `$` (not empty; not checked further: a wrong one simply
    /// never matches).
    pub digest: &'a str,
}

impl<'a> CryptHash<'a> {
    pub fn parse(hash: &'a str) -> Result<Self, CryptError> {
        let (scheme, rest) = if let Some(rest) = hash.strip_prefix("$5$") {
            (Scheme::Sha256, rest)
        } else if let Some(rest) = hash.strip_prefix("$6$") {
            (Scheme::Sha512, rest)
        } else {
            return Err(CryptError::Unsupported);
        };
        let mut parts = rest.split('$');
        let mut salt = parts.next().ok_or(CryptError::Malformed)?;
        let mut rounds = ROUNDS_DEFAULT;
        if let Some(n) = salt.strip_prefix("rounds=") {
            // glibc clamps out-of-range round counts instead of rejecting them.
            let n: u64 = n.parse().map_err(|_| CryptError::Malformed)?;
            rounds = usize::try_from(n)
                .unwrap_or(ROUNDS_MAX)
                .clamp(ROUNDS_MIN, ROUNDS_MAX);
            salt = parts.next().ok_or(CryptError::Malformed)?;
        }
        let digest = parts.next().ok_or(CryptError::Malformed)?;
        if parts.next().is_some() || digest.is_empty() {
            return Err(CryptError::Malformed);
        }
        Ok(Self {
            scheme,
            rounds,
            salt,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_spec_and_openssl_hashes() {
        let h = CryptHash::parse(
            "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
        )
        .unwrap();
        assert_eq!(h.scheme, Scheme::Sha256);
        assert_eq!(h.rounds, 10_000);
        assert_eq!(h.salt, "saltstringsaltst");
        assert_eq!(h.digest, "3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA");
        let h = CryptHash::parse("$6$q1w2e3r4t5y6u7i8$IjB8V").unwrap();
        assert_eq!(
            (h.scheme, h.rounds, h.salt),
            (Scheme::Sha512, ROUNDS_DEFAULT, "q1w2e3r4t5y6u7i8")
        );
    }

    #[test]
    fn rounds_are_clamped_like_glibc() {
        assert_eq!(
            CryptHash::parse("$5$rounds=10$s$d").unwrap().rounds,
            ROUNDS_MIN
        );
        assert_eq!(
            CryptHash::parse("$6$rounds=4000000000$s$d").unwrap().rounds,
            ROUNDS_MAX
        );
    }

    #[test]
    fn malformed_and_unsupported() {
        for h in [
            "$5$",
            "$5$salt",
            "$5$salt$",
            "$5$rounds=x$s$h",
            "$5$a$b$c",
            "$5$rounds=99999999999999999999$s$h",
            "$6$rounds=$s$h",
        ] {
            assert_eq!(CryptHash::parse(h), Err(CryptError::Malformed), "{h}");
        }
        for h in ["$1$abc$def", "abDEF", "", "$y$j9T$x$y", "$7$s$d"] {
            assert_eq!(CryptHash::parse(h), Err(CryptError::Unsupported), "{h}");
        }
    }
}
