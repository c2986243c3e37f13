#!/bin/sh
# Relink target/<dir>/rocserv-worker as a static PIE (doc/decisions/0014-static-pie-worker.md):
# the form the package ships and the tests run. `crt-static` is a target feature, which stable
# cargo applies to a whole invocation, and main and sec-mod must stay dynamic (glibc's NSS for
# run-as-user, PAM's dlopen'ed modules): hence this second invocation for the worker alone,
# after `cargo build --workspace --bins`.
#
#   dist/static-worker.sh [release|dev]        (default release)
set -eu
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in
release) dir=target/release ;;
dev) dir=target/debug ;;
*) echo "static-worker.sh: profile must be release or dev" >&2; exit 2 ;;
esac
cargo rustc --locked --profile "$profile" -p rocserv-worker --bin rocserv-worker -- \
    -C target-feature=+crt-static >&2
# A static PIE is position-independent (ELF type DYN, so ASLR places it) and has no program
# interpreter (PT_INTERP): refuse anything else, and a readelf that cannot tell.
headers=$(LC_ALL=C readelf -hlW "$dir/rocserv-worker") || {
    echo "static-worker.sh: cannot read $dir/rocserv-worker's ELF headers (readelf, binutils)" >&2
    exit 1
}
if ! printf '%s\n' "$headers" | grep -Eq '^ *Type: *DYN'; then
    echo "static-worker.sh: $dir/rocserv-worker is not position-independent" >&2
    exit 1
fi
if printf '%s\n' "$headers" | grep -q 'INTERP'; then
    echo "static-worker.sh: $dir/rocserv-worker is still dynamically linked" >&2
    exit 1
fi
