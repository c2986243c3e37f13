#!/usr/bin/env bash
# Build the rocserv Debian package from this workspace with dpkg-deb (no cargo-deb: see
# doc/decisions/0008-debian-package-script.md). Usage:
#   dist/debian/build-deb.sh [--profile release|dev] [--out DIR]
# release (default) is what to ship; dev reuses the debug binaries the test suite already built
# (CI's smoke test checks the installed layout and a login, not speed). Prints the .deb's path.
# Needs dpkg-dev (dpkg-shlibdeps computes Depends from the binaries' libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=release
out=target/debian
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--out DIR]" >&2; exit 2 ;;
    esac
done
case "$profile" in
release) bindir=target/release ;;
dev) bindir=target/debug ;;
*) echo "build-deb.sh: profile must be release or dev" >&2; exit 2 ;;
esac

# The same set as tests/run-all.sh builds (--workspace --bins): a subset with -p would unify
# features differently (nix, tokio) and recompile half the workspace in CI.
cargo build --locked --profile "$profile" --workspace --bins >&2
# The worker ships as a static PIE (doc/decisions/0014-static-pie-worker.md).
dist/static-worker.sh "$profile"

version=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"name":"rocserv-main","version":"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "build-deb.sh: no version for rocserv-main" >&2; exit 1; }
arch=$(dpkg --print-architecture)
# An ordinary directory under target/, rebuilt each time (never a path outside the workspace).
root="target/debian/root"
rm -rf "$root"
mkdir -p "$root/DEBIAN"

# main starts rocserv-sm and rocserv-worker from the directory of its own executable
# (/proc/self/exe, which resolves the /usr/sbin symlink): the three live together in
# /usr/libexec/rocserv, and only rocserv is on root's PATH.
install -d "$root/usr/libexec/rocserv" "$root/usr/sbin" "$root/usr/bin"
for b in rocserv rocserv-sm rocserv-worker; do
    install -m 0755 "$bindir/$b" "$root/usr/libexec/rocserv/$b"
done
ln -s ../libexec/rocserv/rocserv "$root/usr/sbin/rocserv"
# ocserv's Debian package has occtl and ocpasswd in /usr/bin; same names, same place.
install -m 0755 "$bindir/occtl" "$bindir/ocpasswd" "$root/usr/bin/"
if [ "$profile" = release ]; then
    # Line tables only (profile.release debug = "line-tables-only"); strip for the package.
    strip --strip-unneeded "$root"/usr/libexec/rocserv/* "$root"/usr/bin/*
fi

# Man pages from the command-line definitions.
install -d "$root/usr/share/man/man8"
"$bindir/rocserv-mangen" "$root/usr/share/man/man8" "$bindir/occtl"
gzip -9n "$root"/usr/share/man/man8/*.8

# Whatever units dist/systemd/ holds (none is fine).
units="" services=""
if [ -d dist/systemd ]; then
    for unit in dist/systemd/*; do
        [ -f "$unit" ] || continue
        install -D -m 0644 "$unit" "$root/lib/systemd/system/$(basename "$unit")"
        # Templates (foo@.service) cannot be stopped or restarted by that name.
        case "$unit" in
        *@.*) ;;
        *.service) units="$units $(basename "$unit")" services="$services $(basename "$unit")" ;;
        *) units="$units $(basename "$unit")" ;;
        esac
    done
fi
units="${units# }" services="${services# }"

# Configuration: the example at the path rocserv reads by default, and PAM's service file
# (service name `ocserv`, as ocserv's). Both conffiles.
install -D -m 0644 ocserv.conf.example "$root/etc/ocserv/ocserv.conf"
install -D -m 0644 dist/debian/pam.ocserv "$root/etc/pam.d/ocserv"
printf '%s\n' /etc/ocserv/ocserv.conf /etc/pam.d/ocserv >"$root/DEBIAN/conffiles"

doc="$root/usr/share/doc/rocserv"
install -d "$doc/examples"
install -m 0644 dist/debian/copyright "$doc/copyright"
install -m 0644 README.md doc/config.md doc/packaging.md "$doc/"
install -m 0644 ocserv.conf.example "$doc/examples/ocserv.conf"

for script in postinst prerm postrm; do
    sed -e "s|@UNITS@|$units|g" -e "s|@SERVICES@|$services|g" "dist/debian/$script" >"$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done

# Depends: the shared libraries the binaries link (libc6, libpam0g, ...), as dpkg-shlibdeps
# computes them from the installed system's shlibs/symbols files, plus adduser (postinst).
work="target/debian/shlibdeps"
rm -rf "$work"
mkdir -p "$work/debian"
: >"$work/debian/control"
elves=()
for f in "$root"/usr/libexec/rocserv/* "$root"/usr/bin/*; do elves+=("$(realpath "$f")"); done
shlibs=$(cd "$work" && dpkg-shlibdeps -O "${elves[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
depends="adduser, $shlibs"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" -e "s|@MAINTAINER@|${DEBFULLNAME:-rocserv} <${DEBEMAIL:-rocserv@localhost}>|" \
    dist/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/rocserv_${version}_${arch}.deb"
# xz (the default) takes minutes over the unstripped debug binaries; gzip -1 takes seconds.
compress=()
[ "$profile" = dev ] && compress=(-Zgzip -z1)
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
