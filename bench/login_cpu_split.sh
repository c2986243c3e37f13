#!/bin/bash
# login_cpu_split.sh — where a login's CPU goes: main (+ its workers) and sec-mod, per login.
#
#   bench/login_cpu_split.sh [-n NAME] [SERVER_CMD_TEMPLATE]   (as login_storm.sh)
#
# K sequential logins + logouts (openconnect, DTLS up) while `perf stat` counts software events
# (task-clock, page faults, context switches; they need no hardware counters, which this VM
# lacks) of every server process and everything it forks afterwards: `perf stat -p` inherits
# into new children and threads. Per process tree: main and its workers (ocserv: main and its
# workers), sec-mod (rocserv-sm / ocserv-sm). Also counts the worker's start alone: exec +
# dynamic linking of `rocserv-worker` with a bad argument (it exits at once) against /bin/true.
#
# RECORD=1 also samples each tree (`perf record -g`, $STATE/perf-KIND.data) for `perf report`.
# PHASES=1 splits each login's CPU by phase instead: every server process is sampled
# (`perf record -e cpu-clock -c 50000`, one sample per 50 us of CPU, realtime clock) while the
# script notes when each phase starts: login (openconnect started -> DTLS up), settle (0.3 s of
# nothing: timers, background work), logout (SIGINT to openconnect -> 0.3 s after it exited:
# worker exit, tun teardown, records). `login_phases.py` bins the samples per process kind
# (main, worker, sec-mod) and phase, and prints each bin's top symbols.
# Knobs: K [30], STATE [/tmp/logincpu-bench], SHARED_BENCH, BIN_DIR (for the exec figure;
# default target/release). Namespaces lcs-srv / lcs-cli.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
if [ -z "${SHARED_BENCH:-}" ]; then
    SHARED_BENCH=$REPO/../shared/bench
    [ -r "$SHARED_BENCH/lib.sh" ] || SHARED_BENCH=$REPO/../../shared/bench   # from a worktree
fi
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
NAME=rocserv
while getopts n: o; do
    case $o in n) NAME=$OPTARG ;; *) echo "usage: $0 [-n NAME] [SERVER_CMD_TEMPLATE]" >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
BIN_DIR=${BIN_DIR:-$REPO/target/release}
TEMPLATE=${1:-"$BIN_DIR/rocserv -f -c {conf}"}
K=${K:-30}
export STATE=${STATE:-/tmp/logincpu-bench}
export SRV_NS=lcs-srv CLI_NS=lcs-cli
command -v perf >/dev/null || { echo "needs perf (linux-perf)" >&2; exit 1; }

# One run at a time per namespace pair: cleanup kills every process in $SRV_NS and deletes
# the namespaces, which a second run would share.
exec 9> "/tmp/login_cpu_split.lock"
flock -n 9 || { echo "another login_cpu_split.sh uses these namespaces" >&2; exit 1; }
# STATE is removed and made again: only a directory under /tmp that this script made (marker).
case $STATE in
/tmp/*/* | /tmp/*..* | /tmp/) echo "STATE must be a plain /tmp/NAME directory" >&2; exit 1 ;;
/tmp/?*) ;;
*) echo "STATE must be under /tmp" >&2; exit 1 ;;
esac
if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ ! -e "$STATE/.login_cpu_split.sh" ]; }; then
    echo "$STATE was not made by login_cpu_split.sh: refusing to remove it (remove it yourself or set another STATE)" >&2; exit 1
fi
rm -rf "$STATE"; mkdir -p "$STATE/harness"; : > "$STATE/.login_cpu_split.sh"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"
CMD=${TEMPLATE//\{conf\}/$STATE/ocserv.conf}

SERVER_PID= PERF_PIDS=()
cleanup() {
    for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    PERF_PIDS=()
    "$H/disconnect.sh" test1 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    "$H/netns.sh" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$H/netns.sh" up >/dev/null || exit 1
# shellcheck disable=SC2086
ip netns exec "$SRV_NS" $CMD > "$STATE/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    ip netns exec "$SRV_NS" ss -Hltn 'sport = :443' | grep -q . && break
    alive "$SERVER_PID" || { echo "server died, see $STATE/server.log" >&2; exit 1; }
    sleep 0.1
done
sleep 1
# One perf per process there is now: main (its future workers are inherited) and sec-mod.
kinds=()
PHASES=${PHASES:-0}
for p in $(server_pids); do
    kind=$(< "/proc/$p/comm")
    if [ "$PHASES" = 1 ]; then
        perf record -q -e cpu-clock -c 50000 -k realtime -p "$p" -o "$STATE/phases-$kind-$p.data" > /dev/null 2>&1 &
        PERF_PIDS+=($!)
    fi
    perf stat -x, -e task-clock,page-faults,context-switches -p "$p" -o "$STATE/perf-$kind-$p.csv" &
    PERF_PIDS+=($!); kinds+=("$kind-$p")
    if [ "${RECORD:-0}" = 1 ]; then
        perf record -q -e cpu-clock -g -p "$p" -o "$STATE/perf-$kind-$p.data" > /dev/null 2>&1 &
        PERF_PIDS+=($!)
    fi
done
sleep 0.5
ok=0 first=
: > "$STATE/marks"
for i in $(seq 1 "$K"); do
    echo "login $EPOCHREALTIME" >> "$STATE/marks"
    r=$(TIMEOUT=30 WAIT_DTLS=1 "$H/connect.sh" test1) && ok=$((ok + 1))
    # The first login after the start: what one-time work at the first login costs in latency.
    [ "$i" = 1 ] && first=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<< "$r")
    if [ "$PHASES" = 1 ]; then echo "settle $EPOCHREALTIME" >> "$STATE/marks"; sleep 0.3; fi
    echo "logout $EPOCHREALTIME" >> "$STATE/marks"
    "$H/disconnect.sh" test1
    [ "$PHASES" = 1 ] && sleep 0.3
done
echo "end $EPOCHREALTIME" >> "$STATE/marks"
sleep 1   # the last worker's exit
for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
PERF_PIDS=()
line="SPLIT name=$NAME k=$K ok=$ok first_connect_s=${first:-NA}"
for kind in "${kinds[@]}"; do
    f="$STATE/perf-$kind.csv"
    tc=$(awk -F, '$3=="task-clock"{print $1}' "$f")
    pf=$(awk -F, '$3=="page-faults"{print $1}' "$f")
    cs=$(awk -F, '$3=="context-switches"{print $1}' "$f")
    line+=$(awk -v k="$kind" -v tc="$tc" -v pf="$pf" -v cs="$cs" -v n="$ok" \
        'BEGIN{ if (n == 0) n = 1; printf " %s_ms=%.2f %s_faults=%.0f %s_cswitch=%.0f", k, tc/n, k, pf/n, k, cs/n }')
done
echo "$line"
if [ "$PHASES" = 1 ]; then
    for f in "$STATE"/phases-*.data; do
        perf script -i "$f" -F pid,tid,comm,time,ip,sym,dso > "${f%.data}.txt" 2>/dev/null
    done
    python3 "$HERE/login_phases.py" "$STATE/marks" "$ok" "$STATE"/phases-*.txt
fi

if [ -x "$BIN_DIR/rocserv-worker" ]; then
    w=$(perf stat -x, -r 200 -e task-clock "$BIN_DIR/rocserv-worker" --bad 2>&1 >/dev/null | awk -F, '$3=="task-clock"{print $1}')
    t=$(perf stat -x, -r 200 -e task-clock /bin/true 2>&1 >/dev/null | awk -F, '$3=="task-clock"{print $1}')
    echo "EXEC worker_exec_exit_ms=$w true_exec_exit_ms=$t"
fi
