//! crypt(3) SHA-256 (`$5$`) and SHA-512 (`$6$`) hashes: verify, and make new `$5$` hashes the way
//! ocserv's ocpasswd does (16 salt characters from `[0-9a-zA-Z./]`, default rounds).
//!
//! The algorithm is Drepper's public-domain specification "Unix crypt using SHA-256 and
//! SHA-512" (<https://www.akkadia.org/drepper/SHA-crypt.txt>), written here over ring's digests:
//! sha-crypt 0.5 runs on sha2's portable code, and the hash is half of sec-mod's CPU per login
//! (doc/performance.md, "2026-12-05, session 9: login CPU"). Step numbers below are the spec's.

use ring::digest::{Algorithm, Context, SHA256, SHA512};
pub use rocserv_proto::crypt_hash::CryptError;
use rocserv_proto::crypt_hash::{CryptHash, Scheme, ROUNDS_DEFAULT};

/// Only the first 16 salt bytes count (spec).
const SALT_MAX: usize = 16;
/// crypt(3)'s base-64 alphabet (not RFC 4648's).
const B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Salt alphabet of crypt(3) (and of ocserv's ocpasswd).
const SALT_ALPHABET: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./";
/// ocpasswd's salt length (ocserv src/ocpasswd/ocpasswd.c `SALT_SIZE`).
pub const SALT_LEN: usize = 16;

/// Whether `password` matches `hash`. The final comparison takes constant time.
pub fn verify(password: &str, hash: &str) -> Result<bool, CryptError> {
    let parsed = CryptHash::parse(hash)?;
    let computed = compute(password, &parsed);
    Ok(constant_time_eq(
        computed.as_bytes(),
        parsed.digest.as_bytes(),
    ))
}

/// Spend what verifying `password` against `like` costs (same scheme, rounds and salt) and
/// throw the result away: an unknown user must cost what a known one does. `false` when
/// `like` is not a hash we can compute.
pub fn burn(password: &str, like: &str) -> bool {
    CryptHash::parse(like)
        .map(|parsed| std::hint::black_box(compute(password, &parsed)))
        .is_ok()
}

#[cfg(test)]
thread_local! {
    /// Every digest computed on this thread: (5 or 6, rounds). Tests count hashing with it
    /// instead of timing it.
    pub(crate) static COMPUTED: std::cell::RefCell<Vec<(u8, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn compute(password: &str, parsed: &CryptHash<'_>) -> String {
    #[cfg(test)]
    COMPUTED.with(|c| {
        let id = match parsed.scheme {
            Scheme::Sha256 => 5,
            Scheme::Sha512 => 6,
        };
        c.borrow_mut().push((id, parsed.rounds));
    });
    // The parser only accepts what `$id$[rounds=N$]salt$hash` allows; the salt may be anything
    // up to the next `$`, of which the first 16 bytes count.
    sha_crypt(
        parsed.scheme,
        password.as_bytes(),
        parsed.salt.as_bytes(),
        parsed.rounds,
    )
}

/// The spec's digest of `password` with `salt` and `rounds` (already clamped), in crypt's
/// base 64: the part of the hash string after the last `$`.
fn sha_crypt(id: Scheme, password: &[u8], salt: &[u8], rounds: usize) -> String {
    let alg: &'static Algorithm = match id {
        Scheme::Sha256 => &SHA256,
        Scheme::Sha512 => &SHA512,
    };
    let salt = &salt[..salt.len().min(SALT_MAX)];
    // Steps 4-8: B = H(password, salt, password).
    let b = {
        let mut ctx = Context::new(alg);
        ctx.update(password);
        ctx.update(salt);
        ctx.update(password);
        ctx.finish()
    };
    let b = b.as_ref();
    // Steps 1-3, 9-12: A.
    let a = {
        let mut ctx = Context::new(alg);
        ctx.update(password);
        ctx.update(salt);
        let mut left = password.len();
        while left > b.len() {
            ctx.update(b);
            left -= b.len();
        }
        ctx.update(&b[..left]);
        let mut bits = password.len();
        while bits > 0 {
            ctx.update(if bits & 1 == 1 { b } else { password });
            bits >>= 1;
        }
        ctx.finish()
    };
    let a = a.as_ref();
    // Steps 13-16: P, the password's length of H(password repeated once per byte).
    let dp = {
        let mut ctx = Context::new(alg);
        for _ in 0..password.len() {
            ctx.update(password);
        }
        ctx.finish()
    };
    let p = repeat_to(dp.as_ref(), password.len());
    // Steps 17-20: S, the salt's length of H(salt repeated 16 + A[0] times).
    let ds = {
        let mut ctx = Context::new(alg);
        for _ in 0..16 + usize::from(a[0]) {
            ctx.update(salt);
        }
        ctx.finish()
    };
    let s = repeat_to(ds.as_ref(), salt.len());
    // Step 21: the rounds. Each round's input (one or two blocks) is gathered in one buffer and
    // hashed in one call (1 % fewer instructions than four context updates, callgrind).
    let n = a.len();
    let mut c = [0u8; 64];
    c[..n].copy_from_slice(a);
    let mut input = Vec::with_capacity(2 * n + 2 * p.len() + s.len());
    for i in 0..rounds {
        input.clear();
        let prev = &c[..n];
        input.extend_from_slice(if i & 1 == 1 { &p } else { prev });
        if i % 3 != 0 {
            input.extend_from_slice(&s);
        }
        if i % 7 != 0 {
            input.extend_from_slice(&p);
        }
        input.extend_from_slice(if i & 1 == 1 { prev } else { &p });
        c[..n].copy_from_slice(ring::digest::digest(alg, &input).as_ref());
    }
    encode(id, &c[..n])
}

/// `len` bytes of `digest` repeated (steps 16 and 20).
fn repeat_to(digest: &[u8], len: usize) -> Vec<u8> {
    digest.iter().copied().cycle().take(len).collect()
}

/// Step 22: the digest's bytes in the spec's order, three at a time into four characters, the
/// first byte of each triple the most significant.
fn encode(id: Scheme, c: &[u8]) -> String {
    let mut out = String::with_capacity(86);
    let mut put = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = u32::from(b2) << 16 | u32::from(b1) << 8 | u32::from(b0);
        for _ in 0..n {
            out.push(char::from(B64[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    // The spec's triples are {k, k + t, k + 2t} (t = a third of the digest, rounded down),
    // rotated by k % 3 (one way for SHA-256, the other for SHA-512); the last one or two bytes
    // go alone.
    let (t, triples) = match id {
        Scheme::Sha256 => (10, 10),
        Scheme::Sha512 => (21, 21),
    };
    for k in 0..triples {
        let (x, y, z) = (c[k], c[k + t], c[k + 2 * t]);
        match (id, k % 3) {
            (_, 0) => put(x, y, z, 4),
            (Scheme::Sha256, 1) => put(z, x, y, 4),
            (Scheme::Sha256, _) => put(y, z, x, 4),
            (Scheme::Sha512, 1) => put(y, z, x, 4),
            (Scheme::Sha512, _) => put(z, x, y, 4),
        }
    }
    match id {
        Scheme::Sha256 => put(0, c[31], c[30], 3),
        Scheme::Sha512 => put(0, 0, c[63], 2),
    }
    out
}

/// A new `$5$` hash of `password` with the salt made from `salt_bytes` (pass random bytes).
pub fn hash_sha256(password: &str, salt_bytes: &[u8; SALT_LEN]) -> String {
    let salt: String = salt_bytes
        .iter()
        .map(|b| char::from(SALT_ALPHABET[usize::from(b % 64)]))
        .collect();
    let digest = sha_crypt(
        Scheme::Sha256,
        password.as_bytes(),
        salt.as_bytes(),
        ROUNDS_DEFAULT,
    );
    format!("$5${salt}${digest}")
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
    use rocserv_proto::crypt_hash::ROUNDS_MIN;

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
    fn spec_vectors_sha512() {
        // Test vectors of Drepper's SHA-crypt specification (`$6$`).
        for (pw, h) in [
            (
                "Hello world!",
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            ),
            (
                "Hello world!",
                "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
            ),
            (
                "we have a short salt string but not a short password",
                "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0",
            ),
            (
                "a very much longer text to encrypt.  This one even stretches over morethan one line.",
                "$6$rounds=1400$anotherlongsaltstring$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
            ),
            (
                "the minimum number is still observed",
                "$6$rounds=10$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
            ),
        ] {
            assert_eq!(verify(pw, h), Ok(true), "{h}");
        }
    }

    #[test]
    fn agrees_with_the_sha_crypt_crate() {
        // Passwords and salts around the digest and block lengths, both schemes.
        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for pw_len in [0usize, 1, 5, 31, 32, 33, 63, 64, 65, 100, 128, 200] {
            let pw: String = (0..pw_len)
                .map(|_| char::from(SALT_ALPHABET[(next() % 64) as usize]))
                .collect();
            let salt_len = 1 + (next() % 20) as usize;
            let salt: String = (0..salt_len)
                .map(|_| char::from(SALT_ALPHABET[(next() % 64) as usize]))
                .collect();
            let rounds = ROUNDS_MIN + (next() % 500) as usize;
            let p5 = sha_crypt::Sha256Params::new(rounds).unwrap();
            let p6 = sha_crypt::Sha512Params::new(rounds).unwrap();
            let want5 = sha_crypt::sha256_crypt_b64(pw.as_bytes(), salt.as_bytes(), &p5).unwrap();
            let want6 = sha_crypt::sha512_crypt_b64(pw.as_bytes(), salt.as_bytes(), &p6).unwrap();
            let salt16 = &salt[..salt.len().min(SALT_MAX)];
            assert_eq!(
                verify(&pw, &format!("$5$rounds={rounds}${salt16}${want5}")),
                Ok(true)
            );
            assert_eq!(
                verify(&pw, &format!("$6$rounds={rounds}${salt16}${want6}")),
                Ok(true)
            );
            assert_eq!(
                sha_crypt(Scheme::Sha512, pw.as_bytes(), salt.as_bytes(), rounds),
                want6,
                "pw {pw_len} salt {salt_len}"
            );
        }
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
