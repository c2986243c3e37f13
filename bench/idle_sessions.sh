#!/bin/bash
# idle_sessions.sh — memory, bring-up time and idle CPU of N idle sessions (issue 12).
#
#   bench/idle_sessions.sh [-s] [SERVER_CMD_TEMPLATE...]
#
# Each template is one server to measure, in turn (`{conf}` is replaced by the generated
# configuration, `{bin}` by BIN_DIR). Default: "rocserv" (= "{bin}/rocserv -f -c {conf}") and
# "ocserv" (= "ocserv -f -d 1 -c {conf}"). BIN_DIR defaults to target/release of this repository.
# -s: the short mode (N=50, IDLE=10), a smoke check.
#
# Per server: start-up time (exec to "listening", the median of STARTS starts with no client),
# server PSS (every process in the server namespace, /proc/PID/smaps_rollup) idle at start,
# then N openconnect clients (PAR at a time, DTLS up) and the time to bring them all up, the
# server PSS with them all up, per session ((with - at start) / N), the server CPU while they
# idle for IDLE seconds, then all of them logged out and the server PSS after the burst.
#
# Reuses the shared harness (PKI, openconnect wrapper): SHARED_BENCH, by default ../shared/bench
# next to this repository, copied into $STATE/harness. Namespaces of its own (mem-srv, mem-cli,
# 10.99.0.1 and 10.99.0.2 inside them): this can run beside the shared bench. The address pool
# is a /21 so that N up to 2000 fits; users test1..test200 are reused round-robin
# (max-same-clients = 0).
#
# Env: N [1000], PAR [20], IDLE [60], STARTS [5], STATE [/tmp/idle-bench], SHARED_BENCH, BIN_DIR,
# HOLD [0] (seconds to keep the server up after the clients left, to inspect it by hand),
# NO_DTLS [0] (1: the clients run with --no-dtls, the tunnels are TLS only), SMAPS [0] (1: while
# the sessions idle, the per-connection processes' memory per mapping, averaged over them, by
# smaps_by_mapping.py, into $STATE/smaps-NAME.txt and printed).
#
# Last lines, one per server:
#   IDLE server=.. n=.. up=..s start_ms=.. pss_start_kb=.. pss_up_kb=.. pss_per_session_kb=..
#        idle_cpu_pct=.. pss_1s_after_kb=.. pss_after_kb=.. failed=..
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
N=${N:-1000}
PAR=${PAR:-20}
IDLE=${IDLE:-60}
STARTS=${STARTS:-5}
if [ "${1:-}" = -s ]; then N=50; IDLE=10; STARTS=3; shift; fi
BIN_DIR=${BIN_DIR:-$REPO/target/release}
export STATE=${STATE:-/tmp/idle-bench}
export SRV_NS=mem-srv CLI_NS=mem-cli
HZ=$(getconf CLK_TCK)
[ $# -gt 0 ] || set -- rocserv ocserv

# One run at a time (fixed namespace names): a second one waits.
exec 9> /tmp/idle_sessions.lock
flock -n 9 || { echo "another idle_sessions.sh is running: waiting" >&2; flock 9; }
rm -rf "$STATE"; mkdir -p "$STATE/harness"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
# The bench's configuration with a pool large enough for N sessions and no utmp (both servers
# read the same file).
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" \
    -e 's#^ipv4-network.*#ipv4-network = 10.200.0.0#' \
    -e 's#^ipv4-netmask.*#ipv4-netmask = 255.255.248.0#' \
    -e 's#^route = .*#route = 10.200.0.0/255.255.248.0#' \
    -e 's#^dns = .*#dns = 10.200.0.1#' \
    -e 's#^max-clients.*#max-clients = 4096#' \
    "$H/ocserv.conf" > "$STATE/ocserv.conf"
echo "use-utmp = false" >> "$STATE/ocserv.conf"

SERVER_PID=
CLIENTS=()
stop_clients() {
    local p f
    # also the clients whose connect.sh is done but were not collected yet (interrupted run)
    for f in "$STATE"/c*.pid; do [ -s "$f" ] && CLIENTS+=("$(cat "$f")"); rm -f "$f"; done
    for p in "${CLIENTS[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${CLIENTS[@]}"; do
        for _ in $(seq 1 100); do alive "$p" || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    CLIENTS=()
}
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
    # whatever the server left in its namespace (workers), by PID
    local p
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
}
cleanup() {
    stop_clients
    stop_server
    "$H/netns.sh" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$H/netns.sh" up || exit 1

# pss_kb: summed PSS of every process in the server namespace
pss_kb() {
    local sum=0 p v
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do
        v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
        sum=$(( sum + ${v:-0} ))
    done
    echo "$sum"
}
# settle: wait until the server's PSS stops changing (at most 10 s)
settle() {
    local a b
    a=$(pss_kb)
    for _ in $(seq 1 20); do
        sleep 0.5; b=$(pss_kb)
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$b"
}

start_server() { # template -> sets SERVER_PID, prints start-up ms
    local cmd=${1//\{conf\}/$STATE/ocserv.conf}
    cmd=${cmd//\{bin\}/$BIN_DIR}
    : > "$STATE/server.log"
    local t0 t1
    t0=$(now_us)
    # shellcheck disable=SC2086
    ip netns exec "$SRV_NS" $cmd >> "$STATE/server.log" 2>&1 &
    SERVER_PID=$!
    # ready = the TCP port is listening in the namespace (same test for both servers)
    for _ in $(seq 1 2000); do
        ip netns exec "$SRV_NS" ss -Hltn 'sport = :443' 2>/dev/null | grep -q . && break
        alive "$SERVER_PID" || { echo "server exited" >&2; tail "$STATE/server.log" >&2; return 1; }
        sleep 0.005
    done
    t1=$(now_us)
    echo $(( (t1 - t0) / 1000 ))
}

one_server() { # name template
    local name=$1 tmpl=$2 i ms starts=()
    for i in $(seq 1 "$STARTS"); do
        ms=$(start_server "$tmpl") || exit 1
        starts+=("$ms")
        stop_server
    done
    local start_ms
    start_ms=$(printf '%s\n' "${starts[@]}" | median)
    start_server "$tmpl" > /dev/null || exit 1
    sleep 1
    local pss0 pss1 pss1s pss2 t0 t1 c0 c1 failed=0 u running=0 waiters=()
    pss0=$(settle)
    t0=$(now_us)
    : > "$STATE/connect.out"
    local wait_dtls=1 extra=()
    [ "${NO_DTLS:-0}" = 1 ] && { wait_dtls=0; extra=(--no-dtls); }
    for i in $(seq 1 "$N"); do
        u=test$(( (i - 1) % 200 + 1 ))
        ( IFNAME=oc$i ROUTE= WAIT_DTLS=$wait_dtls TIMEOUT=120 SERVER=https://10.99.0.1:443/ \
            "$H/connect.sh" "$u" "${extra[@]}" >> "$STATE/connect.out" 2>&1; \
            mv "$STATE/oc-$u.pid" "$STATE/c$i.pid" 2>/dev/null ) &
        waiters+=($!)
        running=$(( running + 1 ))
        # the server never ends here, so `wait -n` returns when a connect subshell does
        if (( running >= PAR )); then wait -n; running=$(( running - 1 )); fi
    done
    wait "${waiters[@]}" 2>/dev/null # not plain `wait`: the server is a child too
    t1=$(now_us)
    for i in $(seq 1 "$N"); do
        [ -s "$STATE/c$i.pid" ] && CLIENTS+=("$(cat "$STATE/c$i.pid")") && rm -f "$STATE/c$i.pid"
    done
    failed=$(grep -c '^FAIL' "$STATE/connect.out")
    pss1=$(settle)
    local srv
    srv=$(ip netns pids "$SRV_NS" | tr '\n' ' ')
    c0=$(cpu_ticks $srv)
    sleep "$IDLE"
    c1=$(cpu_ticks $srv)
    if [ "${SMAPS:-0}" = 1 ]; then
        # the per-connection processes: those of the most frequent command name
        local comm workers
        comm=$(for p in $srv; do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c |
            sort -rn | awk 'NR==1{print $2}')
        workers=$(for p in $srv; do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ] && echo "$p"; done)
        # shellcheck disable=SC2086
        "$HERE/smaps_by_mapping.py" $workers | tee "$STATE/smaps-$name.txt"
    fi
    stop_clients
    # as the shared bench reads it: ~1 s after the logouts (before any periodic trim)
    sleep 1
    pss1s=$(pss_kb)
    sleep 1
    pss2=$(settle)
    # HOLD: seconds to keep the server up after the burst (to inspect it by hand)
    [ "${HOLD:-0}" -gt 0 ] && { echo "holding: server pid $SERVER_PID" >&2; sleep "$HOLD"; }
    stop_server
    local up per cpu
    up=$(fmt_us $(( t1 - t0 )))
    per=$(( (pss1 - pss0) / (N - failed > 0 ? N - failed : 1) ))
    cpu=$(echo "scale=2; 100 * ($c1 - $c0) / $HZ / $IDLE" | bc)
    echo "IDLE server=$name n=$N up=${up}s start_ms=$start_ms pss_start_kb=$pss0 pss_up_kb=$pss1 pss_per_session_kb=$per idle_cpu_pct=$cpu pss_1s_after_kb=$pss1s pss_after_kb=$pss2 failed=$failed"
}

# Several openconnect clients use the same user name: connect.sh keys its files by user, so
# the clients of one user are started one at a time (PAR distinct users at once at most).
(( PAR <= 200 )) || PAR=200
echo "kernel: $(uname -r)  cpus: $(nproc)  n: $N  par: $PAR  idle: ${IDLE}s"
for t in "$@"; do
    case "$t" in
        rocserv) one_server rocserv "{bin}/rocserv -f -c {conf}" ;;
        ocserv) one_server ocserv "ocserv -f -d 1 -c {conf}" ;;
        *) one_server "${t%% *}" "$t" ;;
    esac
done
