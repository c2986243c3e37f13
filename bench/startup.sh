#!/bin/bash
# startup.sh — start-up time of a server (issue 12, item 3): exec -> listening and exec -> first
# successful login, the median of RUNS starts per server, servers alternated within each round.
#
#   bench/startup.sh [-s] [NAME=CMD_TEMPLATE ...]
#
# CMD_TEMPLATE: `{conf}` is replaced by the generated configuration, `{bin}` by BIN_DIR.
# Default servers: "ocserv=ocserv -f -d 1 -c {conf}" and "rocserv={bin}/rocserv -f -c {conf}".
# -s: the short mode (RUNS=3), a smoke check.
#
# The configuration is the shared bench's ocserv.conf as it is (SHARED_BENCH, by default
# ../shared/bench next to this repository, copied with its PKI into $STATE/harness). Namespaces
# of its own (sup-srv, sup-cli; 10.99.0.1 and 10.99.0.2 inside them): this can run beside the
# shared bench and the other bench/ scripts. One run at a time (/tmp/startup_bench.lock, waited
# for).
#
# listening: the server's PID is inside the namespace and /proc/PID/net/tcp{,6} shows a LISTEN
# socket on port 443, read every POLL_MS (no fork per poll, no connection made; the shared
# bench's `ss` poll every 50 ms cannot tell 1 ms from 12 ms). login: the first
# `openconnect --authenticate` (user test1) from the client namespace that gets a cookie; the
# first attempt starts as soon as the port listens, a refused one is retried after RETRY_MS. The
# client's own time (exec, TLS handshake, ~10-20 ms here) is in that figure, the same for every
# server.
#
# Env: RUNS [9], POLL_MS [1], RETRY_MS [5], LOGIN [1] (0: listening only), STATE
# [/tmp/startup-bench], SHARED_BENCH, BIN_DIR [target/release], EXTRA_CONF (lines appended to the
# configuration, e.g. "use-utmp = false").
# Output: one `RUN` line per start, then per server
#   STARTUP server=.. runs=.. listen_ms=MEDIAN (MIN-MAX) login_ms=MEDIAN (MIN-MAX) failed_..=..
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
export RUNS=${RUNS:-9}
if [ "${1:-}" = -s ]; then RUNS=3; shift; fi
BIN_DIR=${BIN_DIR:-$REPO/target/release}
export STATE=${STATE:-/tmp/startup-bench}
export SRV_NS=sup-srv CLI_NS=sup-cli
[ $# -gt 0 ] || set -- "ocserv=ocserv -f -d 1 -c {conf}" "rocserv={bin}/rocserv -f -c {conf}"

exec 9> /tmp/startup_bench.lock
flock 9
rm -rf "$STATE"; mkdir -p "$STATE/harness" "$STATE/logs"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"
[ -n "${EXTRA_CONF:-}" ] && printf '%s\n' "$EXTRA_CONF" >> "$STATE/ocserv.conf"

cleanup() {
    local p
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null) $(ip netns pids "$CLI_NS" 2>/dev/null); do
        kill -KILL "$p" 2>/dev/null
    done
    "$H/netns.sh" down > /dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$H/netns.sh" up || exit 1

args=()
for s in "$@"; do
    s=${s//\{conf\}/$STATE/ocserv.conf}
    args+=("${s//\{bin\}/$BIN_DIR}")
done
echo "# startup.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) runs=$RUNS load=$(cut -d' ' -f1-3 /proc/loadavg)"
PIN=$(cat "$H/pki/server-pin.txt") LOG_DIR="$STATE/logs" python3 "$HERE/startup_probe.py" "${args[@]}"
