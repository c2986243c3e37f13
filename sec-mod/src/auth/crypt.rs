//! crypt(3) SHA-256 (`$5$`) and SHA-512 (`$6$`) hashes: verify, and make new `$5$` hashes the way
//! ocserv's ocpasswd does (16 salt characters from `[0-9a-zA-Z./]`, default rounds).
//!
//! sha-crypt's own `sha256_check` unwraps on a malformed hash, so the `$id$[rounds=N$]salt$hash`
//! string is split here and only the digest function of the crate is used.

use sha_crypt::{
    sha256_crypt_b64, sha512_crypt_b64, Sha256Params, Sha512Params, ROUNDS_DEFAULT, ROUNDS_MAX,
    ROUNDS_MIN,
};

/// Salt alphabet of crypt(3) (and of ocserv's ocpasswd).
const SALT_ALPHABET: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./";
/// ocpasswd's salt length (ocserv src/ocpasswd/ocpasswd.c `SALT_SIZE`).
pub const SALT_LEN: usize = 16;

/// Why a hash could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// Not a `$5$` or `$6$` hash (MD5 `$1$`, DES, yescrypt... are not supported).
    #[error("unsupported hash type (only $5$ and $6$ are supported)")]
    Unsupported,
    /// A `$5$`/`$6$` string that does not have the `$id$[rounds=N$]salt$hash` shape.
    #[error("malformed crypt hash")]
    Malformed,
}

/// Whether `password` matches `hash`. The final comparison takes constant time.
pub fn verify(password: &str, hash: &str) -> Result<bool, CryptError> {
    let parsed = Parsed::new(hash)?;
    let computed = compute(password, &parsed)?;
    Ok(constant_time_eq(
        computed.as_bytes(),
        parsed.digest.as_bytes(),
    ))
}

/// Spend what verifying `password` against `like` costs (same scheme, rounds and salt) and
/// throw the result away: an unknown user must cost what a known one does. `false` when
/// `like` is not a hash we can compute.
pub fn burn(password: &str, like: &str) -> bool {
    Parsed::new(like)
        .and_then(|parsed| compute(password, &parsed))
        .map(std::hint::black_box)
        .is_ok()
}

#[cfg(test)]
thread_local! {
    /// Every digest computed on this thread: (5 or 6, rounds). Tests count hashing with it
    /// instead of timing it.
    pub(crate) static COMPUTED: std::cell::RefCell<Vec<(u8, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn compute(password: &str, parsed: &Parsed<'_>) -> Result<String, CryptError> {
    #[cfg(test)]
    COMPUTED.with(|c| {
        let id = match parsed.id {
            Id::Sha256 => 5,
            Id::Sha512 => 6,
        };
        c.borrow_mut().push((id, parsed.rounds));
    });
    match parsed.id {
        Id::Sha256 => {
            let params = Sha256Params::new(parsed.rounds).map_err(|_| CryptError::Malformed)?;
            sha256_crypt_b64(password.as_bytes(), parsed.salt.as_bytes(), &params)
        }
        Id::Sha512 => {
            let params = Sha512Params::new(parsed.rounds).map_err(|_| CryptError::Malformed)?;
            sha512_crypt_b64(password.as_bytes(), parsed.salt.as_bytes(), &params)
        }
    }
    .map_err(|_| CryptError::Malformed)
}

/// A new `$5$` hash of `password` with the salt made from `salt_bytes` (pass random bytes).
pub fn hash_sha256(password: &str, salt_bytes: &[u8; SALT_LEN]) -> String {
    let salt: String = salt_bytes
        .iter()
        .map(|b| char::from(SALT_ALPHABET[usize::from(b % 64)]))
        .collect();
    // The default rounds are in range, so the only error path of the crate cannot happen; an
    // empty digest would simply never verify.
    let digest = Sha256Params::new(ROUNDS_DEFAULT)
        .and_then(|p| sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &p))
        .unwrap_or_default();
    format!("$5${salt}${digest}")
}

enum Id {
    Sha256,
    Sha512,
}

struct Parsed<'a> {
    id: Id,
    rounds: usize,
    salt: &'a str,
    digest: &'a str,
}

impl<'a> Parsed<'a> {
    fn new(hash: &'a str) -> Result<Self, CryptError> {
        let (id, rest) = if let Some(rest) = hash.strip_prefix("$5$") {
            (Id::Sha256, rest)
        } else if let Some(rest) = hash.strip_prefix("$6$") {
            (Id::Sha512, rest)
        } else {
            return Err(CryptError::Unsupported);
        };
        let mut parts = rest.split('$');
        let mut first = parts.next().ok_or(CryptError::Malformed)?;
        let mut rounds = ROUNDS_DEFAULT;
        if let Some(n) = first.strip_prefix("rounds=") {
            // glibc clamps out-of-range round counts instead of rejecting them.
            let n: u64 = n.parse().map_err(|_| CryptError::Malformed)?;
            rounds = usize::try_from(n)
                .unwrap_or(ROUNDS_MAX)
                .clamp(ROUNDS_MIN, ROUNDS_MAX);
            first = parts.next().ok_or(CryptError::Malformed)?;
        }
        let digest = parts.next().ok_or(CryptError::Malformed)?;
        if parts.next().is_some() || digest.is_empty() {
            return Err(CryptError::Malformed);
        }
        Ok(Self {
            id,
            rounds,
            salt: first,
            digest,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl passwd -5 / -6 -salt ...` (the same strings as in
    // proto/tests/vectors/passwd/ocpasswd.txt).
    const ALICE: &str = "$5$Xy3kP0qL9mN2bV7c$gJJI/14Y0iflfoo8mRxLTlu8dh7KbR0TrtV.Zdnmkv0";
    const BOB: &str = "$6$q1w2e3r4t5y6u7i8$IjB8V/CJBmwVzddhFYKSitZ3K5AkvW4SkLh8p2mF1.qKbZeCc12h5oFgG79U5KLOh4hlBQgQUb4tiN8UHhsmh.";

    #[test]
    fn verifies_openssl_hashes() {
        assert_eq!(verify("alicepw", ALICE), Ok(true));
        assert_eq!(verify("alicepx", ALICE), Ok(false));
        assert_eq!(verify("bobpw", BOB), Ok(true));
        assert_eq!(verify("", BOB), Ok(false));
    }

    #[test]
    fn rounds_are_honoured() {
        // `openssl passwd -5 -salt 'saltstring' 'Hello world!'` with rounds=10000 is the
        // vector from Drepper's SHA-crypt specification.
        let h = "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA";
        assert_eq!(verify("Hello world!", h), Ok(true));
        // rounds=10 is clamped to 1000 like glibc (spec vector).
        let h = "$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC";
        assert_eq!(verify("the minimum number is still observed", h), Ok(true));
    }

    #[test]
    fn generated_hash_verifies() {
        let h = hash_sha256("s3cret", &[7u8; SALT_LEN]);
        assert!(h.starts_with("$5$7777777777777777$"), "{h}");
        assert_eq!(verify("s3cret", &h), Ok(true));
        assert_eq!(verify("s3cre", &h), Ok(false));
    }

    #[test]
    fn malformed_hashes_are_errors_not_panics() {
        for h in [
            "$5$",
            "$5$salt",
            "$5$salt$",
            "$5$salt$!!!!",
            "$5$rounds=x$s$h",
            "$5$a$b$c",
            "$6$salt$short",
            "$5$rounds=99999999999999999999$s$h",
        ] {
            assert!(matches!(verify("pw", h), Err(_) | Ok(false)), "{h}");
        }
        assert_eq!(verify("pw", "$1$abc$def"), Err(CryptError::Unsupported));
        assert_eq!(verify("pw", "abDEF"), Err(CryptError::Unsupported));
        assert_eq!(verify("pw", ""), Err(CryptError::Unsupported));
    }
}
