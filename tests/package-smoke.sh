#!/usr/bin/env bash
# The Debian package's smoke test: build it (dist/debian/build-deb.sh; the dev profile by
# default, whose binaries the suite already built: PACKAGE_PROFILE=release for the shipped
# build), install it with apt-get (after removing ocserv, its user and group, as on a machine
# that never had them: the package conflicts with ocserv and its postinst creates the user), and
# run tests/tests/package.rs against the INSTALLED binaries at their installed paths: a
# real openconnect login through the installed rocserv, rocserv-sm, rocserv-worker, ocpasswd
# and occtl.
#
# The install happens inside a private mount namespace, on throw-away overlays of /usr, /etc
# and /var (upper layers on a tmpfs that vanishes with the namespace): the machine keeps its
# own packages (ocserv's ocpasswd, which tests/tests/auth.rs compares ours with) and no
# trace of the test install, so running the suite on a workstation is as safe as on CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --inside ]; then
    deb="$2" scratch="$3"
    mount -t tmpfs -o mode=0700 rocserv-pkg "$scratch"
    for d in usr etc var; do
        mkdir -p "$scratch/$d/upper" "$scratch/$d/work"
        mount -t overlay rocserv-pkg \
            -o "lowerdir=/$d,upperdir=$scratch/$d/upper,workdir=$scratch/$d/work" "/$d"
    done
    # As on a machine that never had ocserv: no ocserv package, user or group, so that
    # postinst's creation of the `ocserv` user (the example's run-as-user) is what is tested.
    if dpkg -s ocserv >/dev/null 2>&1; then dpkg --remove ocserv; fi
    if getent passwd ocserv >/dev/null; then deluser --quiet --system ocserv; fi
    if getent group ocserv >/dev/null; then delgroup --quiet --system ocserv; fi
    # Every dependency is already installed (the build machine linked against them), so apt
    # downloads nothing: it resolves and installs the file.
    apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confnew "$deb"
    dpkg -s rocserv | grep -E '^(Status|Version|Depends):'
    ROCSERV_PACKAGE_SMOKE=1 cargo test -p rocserv-e2e --test package --locked -- \
        --include-ignored --test-threads=1
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "package-smoke.sh: needs root (apt-get, mount and network namespaces)" >&2
    exit 1
fi
deb=$(dist/debian/build-deb.sh --profile "${PACKAGE_PROFILE:-dev}")
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
# Compiled before the namespace, which only runs it.
cargo test -p rocserv-e2e --test package --locked --no-run
scratch=$(mktemp -d /tmp/rocserv-pkg-XXXXXX)
status=0
unshare --mount --propagation private -- "$0" --inside "$PWD/$deb" "$scratch" || status=$?
rmdir "$scratch"
exit "$status"
