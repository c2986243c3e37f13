#!/usr/bin/env bash
# The whole test suite, in the order a reviewer would want failures reported: style, lints,
# the purity of proto, unit tests with vectors and fuzz-corpus replay, every fuzz target run for
# FUZZ_SECONDS (default 15 s each, one per core at a time: ~3 min on 2 cores) under
# AddressSanitizer on stable through RUSTC_BOOTSTRAP=1 (tests/fuzz.sh), then (as root) the
# end-to-end tests with the real openconnect in network namespaces, and the Debian package's
# smoke test (tests/package-smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "run-all.sh: the end-to-end tests need root (network namespaces, tun devices, PAM users)." >&2
    echo "run-all.sh: run it as root, e.g. sudo tests/run-all.sh" >&2
    exit 1
fi
for tool in openconnect ip tc ping nft iperf3 gnutls-cli certtool openssl curl cc cargo-fuzz freeradius dpkg-deb dpkg-shlibdeps apt-get systemd-socket-activate systemd-analyze unshare utmpdump ss fail2ban-regex haproxy redis-server redis-cli readelf; do
    command -v "$tool" >/dev/null || { echo "run-all.sh: $tool is missing (see .ci/run for the packages)" >&2; exit 1; }
done

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "proto stays pure (no I/O crates)"
# Direct dependencies only: ring (proto's AES-GCM/HMAC) reaches libc through getrandom, which
# proto never calls (clippy.toml bans ring::rand; randomness is passed in).
if cargo tree -p rocserv-proto -e normal --depth 1 --prefix none --locked | grep -Eq '^(tokio|mio|libc|nix|rustix|socket2|rustls) '; then
    echo "proto depends on an I/O crate:" >&2
    cargo tree -p rocserv-proto -e normal --locked >&2
    exit 1
fi

step "build binaries"
cargo build --workspace --bins --locked

step "unit, vector, corpus-replay and interop tests (including the root-only ones)"
cargo test --workspace --exclude rocserv-e2e --locked -- --include-ignored

if [ -f proto/fuzz/Cargo.toml ]; then
    # A crash fails the run and names its reproducer; the committed corpus is only read.
    step "fuzz targets, ${FUZZ_SECONDS:-15} s each (AddressSanitizer)"
    tests/fuzz.sh
fi

# The worker as the package ships it, a static PIE (doc/decisions/0014-static-pie-worker.md),
# relinked here because the unit tests above rebuild the dynamic one for worker/tests/.
step "static-pie worker for the end-to-end tests"
dist/static-worker.sh dev

# One at a time: several tests assert latency bounds (a slow connect-script must not stall
# another user's pings by 50 ms) that two tests sharing the 2 cores could blur.
step "end-to-end tests with the real openconnect"
cargo test -p rocserv-e2e --locked -- --include-ignored --test-threads=1 \
    --skip installed_package_serves_a_login

# Builds the .deb from the binaries above, installs it on throw-away overlays in a private mount
# namespace (the machine is left as it was) and logs in through the installed binaries.
step "Debian package: build, install, smoke test with the real openconnect"
tests/package-smoke.sh
