#!/bin/bash
# login_profile.sh — instructions per login, per server process, under callgrind.
#
#   bench/login_profile.sh [BIN_DIR]      (default: target/release of this repository)
#
# Instruction counts do not depend on the load of the machine, unlike CPU time: this is the
# repeatable figure for "CPU per login". The whole server runs under
# `valgrind --tool=callgrind --trace-children=yes` (main, sec-mod and every worker each write
# their own profile), K sequential logins + logouts (openconnect, DTLS up) run against it, and
# the server is stopped. sec-mod is left out (valgrind does not know the `seccomp` system call its
# hardening makes; see its CPU time in login_storm.sh). The workers run with `isolate-workers = false`: valgrind's own system
# calls would trip the seccomp filter. So the filter's compilation is missing from the worker's
# count (see `cargo bench -p rocserv-worker` / doc/decisions/0011-login-path.md for that).
#
# Prints per process kind: instructions in total and per login, and the top functions
# (inclusive) of the first worker. Profiles stay in $STATE/cg (callgrind_annotate them).
#
# Knobs: K [5], STATE [/tmp/loginprofile-bench], SHARED_BENCH. Namespaces lpr-srv / lpr-cli.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
if [ -z "${SHARED_BENCH:-}" ]; then
    SHARED_BENCH=$REPO/../shared/bench
    [ -r "$SHARED_BENCH/lib.sh" ] || SHARED_BENCH=$REPO/../../shared/bench   # from a worktree
fi
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
BIN=${1:-$REPO/target/release}
K=${K:-5}
export STATE=${STATE:-/tmp/loginprofile-bench}
export SRV_NS=lpr-srv CLI_NS=lpr-cli
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

# One run at a time per namespace pair: cleanup kills every process in $SRV_NS and deletes
# the namespaces, which a second run would share.
exec 9> "/tmp/login_profile.lock"
flock -n 9 || { echo "another login_profile.sh uses these namespaces" >&2; exit 1; }
# STATE is removed and made again: only a directory under /tmp that this script made (marker).
case $STATE in
/tmp/*/* | /tmp/*..* | /tmp/) echo "STATE must be a plain /tmp/NAME directory" >&2; exit 1 ;;
/tmp/?*) ;;
*) echo "STATE must be under /tmp" >&2; exit 1 ;;
esac
if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ ! -e "$STATE/.login_profile.sh" ]; }; then
    echo "$STATE was not made by login_profile.sh: refusing to remove it (remove it yourself or set another STATE)" >&2; exit 1
fi
rm -rf "$STATE"; mkdir -p "$STATE/harness" "$STATE/cg"; : > "$STATE/.login_profile.sh"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" \
    -e 's/^isolate-workers = true/isolate-workers = false/' "$H/ocserv.conf" > "$STATE/ocserv.conf"
# Under valgrind everything is ~50x slower.
echo "auth-timeout = 240" >> "$STATE/ocserv.conf"

SERVER_PID=
cleanup() {
    "$H/disconnect.sh" test1 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 300); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
    fi
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    "$H/netns.sh" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$H/netns.sh" up >/dev/null || exit 1
ip netns exec "$SRV_NS" valgrind --tool=callgrind --trace-children=yes \
    --trace-children-skip="*rocserv-sm*" \
    --callgrind-out-file="$STATE/cg/callgrind.%p" \
    "$BIN/rocserv" -f -c "$STATE/ocserv.conf" > "$STATE/server.log" 2>&1 &
SERVER_PID=$!
# The workers drop to run-as-user (nobody) before they exit, and callgrind writes its profile at
# exit into the file it made as root at exec: hand each new file to that user meanwhile.
owner=$(sed -n 's/^run-as-user = //p' "$STATE/ocserv.conf")
( while alive "$SERVER_PID"; do chown "$owner" "$STATE"/cg/callgrind.* 2>/dev/null; sleep 0.05; done ) &
CHOWN_PID=$!
for _ in $(seq 1 600); do
    ip netns exec "$SRV_NS" ss -Hltn 'sport = :443' | grep -q . && break
    alive "$SERVER_PID" || { echo "server died, see $STATE/server.log" >&2; exit 1; }
    sleep 0.1
done
ok=0
for i in $(seq 1 "$K"); do
    r=$(TIMEOUT=120 WAIT_DTLS=1 "$H/connect.sh" test1) && ok=$((ok + 1))
    echo "$r"
    WAIT=60 "$H/disconnect.sh" test1
    sleep 1
done
cleanup
SERVER_PID=
wait "$CHOWN_PID" 2>/dev/null
trap - EXIT

# Each profile's command line says which process it was.
total() { sed -n 's/^summary: \([0-9]*\).*/\1/p' "$1"; }
declare -A sum count
first_worker=
for f in "$STATE"/cg/callgrind.*; do
    cmd=$(sed -n 's/^cmd: *//p' "$f" | head -1)
    case "$cmd" in
        *rocserv-worker*) kind=worker; [ -z "$first_worker" ] && first_worker=$f ;;
        *rocserv-sm*) kind=sec-mod ;;
        *rocserv\ *|*rocserv) kind=main ;;
        *) kind="other(${cmd%% *})" ;;
    esac
    t=$(total "$f"); [ -n "$t" ] || { echo "no profile in $f ($cmd)" >&2; continue; }
    sum[$kind]=$(( ${sum[$kind]:-0} + t ))
    count[$kind]=$(( ${count[$kind]:-0} + 1 ))
done
echo "logins=$ok of $K"
for kind in "${!sum[@]}"; do
    awk -v k="$kind" -v s="${sum[$kind]}" -v c="${count[$kind]}" -v n="$ok" \
        'BEGIN{ printf "PROFILE %s processes=%d instr_total=%d instr_per_login=%.0f\n", k, c, s, (n>0 ? s/n : 0) }'
done
if [ -n "$first_worker" ]; then
    echo "top of one worker (inclusive):"
    callgrind_annotate --inclusive=yes "$first_worker" 2>/dev/null | sed -n '1,60p' | grep -E '^ *[0-9,]+ ' | head -40
fi
