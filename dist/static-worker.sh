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
# A static PIE has no program interpreter (PT_INTERP): say so if the link did not give one.
if LC_ALL=C readelf -lW "$dir/rocserv-worker" | grep -q 'INTERP'; then
    echo "static-worker.sh: $dir/rocserv-worker is still dynamically linked" >&2
    exit 1
fi
