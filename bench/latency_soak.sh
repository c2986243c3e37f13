#!/bin/bash
# latency_soak.sh — tail latency of a sparse flow through the tunnel, idle and beside another
# user's bulk transfer, for several servers in one sitting.
#
#   bench/latency_soak.sh [NAME=CMD_TEMPLATE ...]
#
# Each argument is a server: a name and a command line in which {conf} becomes the generated
# ocserv.conf (the server stays in the foreground). Default: ocserv 1.1.6 and the release build
# of this repository:
#   ocserv="ocserv -f -d 1 -c {conf}"  rocserv="REPO/target/release/rocserv -f -c {conf}"
#
# Per run (RUNS), per server (alternated, so drift of the shared machine hits each alike), per
# channel in MODES (dtls: the victim waits for DTLS; tls: openconnect --no-dtls for both users):
#  - the victim (test1) pings the server's VPN address every INTERVAL s (ping -D, -O) for
#    DURATION s, once per load in LOADS:
#      idle  nothing else runs;
#      down  another user (test2, same channel) runs iperf3 -R (server -> client) meanwhile;
#      up    the same user runs iperf3 upload meanwhile.
#    Every ping crosses the tunnel both ways (request client->server, reply server->client).
#  - per (run, server, mode, load): p50 / p99 / p99.9 / max RTT, lost pings, and the bulk
#    user's Mbit/s.
# Last lines (one per server, mode, load): medians over the runs of each figure. The machine
# is shared and noisy: quote these medians, and compare servers only within one sitting.
#
# Reuses the shared harness (namespaces, PKI, openconnect wrapper): SHARED_BENCH, by default
# ../shared/bench next to this repository. Its scripts are copied into $STATE/harness and the
# namespaces get names of their own (lat-srv, lat-cli; 10.99.0.1 and 10.99.0.2 inside): this can
# run beside the shared bench. Traffic stays inside those two namespaces.
#
# Env: RUNS [3], DURATION [60] seconds per ping phase, INTERVAL [0.01], MODES ["dtls tls"],
#      LOADS ["idle down up"], STATE [/tmp/latsoak-bench], SHARED_BENCH, LAT_SRV_NS and
#      LAT_CLI_NS [lat-srv, lat-cli] (two sittings at once need other names and another STATE).
#      SHORT=1: a smoke check (RUNS=1, DURATION=5).
#      AFTER_CONNECT: a command run with the server's name and the mode once both users are up
#      (for experiments, e.g. changing the scheduling of the server's processes).
#      BULK_RATE: iperf3's -b for the bulk user (e.g. 600M), so every server carries the same
#      load (unset: as fast as it goes, which loads a faster server more).
#      TRACE=1: tcpdump (needs the tcpdump package) in the server namespace during each ping
#      phase, and latency_split.py tells how much of each RTT the server spent: in (client's
#      datagram/segment on the veth -> echo request into the tun), out (echo reply from the tun ->
#      datagram/segment on the veth), server (both plus the kernel's echo). Appended to RUN lines;
#      the capture costs CPU, so take the RTT figures from runs without it.
#
# Per-run lines:  RUN run=.. server=.. mode=.. load=.. p50_ms=.. p99_ms=.. p999_ms=.. max_ms=..
#                 lost=.. sent=.. bulk_mbps=..
# Last lines:     SOAK server=.. mode=.. load=.. p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. lost=..
#                 bulk_mbps=.. [server_p50_ms=.. server_p99_ms=.. server_p999_ms=.. server_max_ms=..
#                 with TRACE=1]   (medians over RUNS)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
if [ -z "${SHARED_BENCH:-}" ]; then
    SHARED_BENCH=$REPO/../shared/bench
    [ -r "$SHARED_BENCH/lib.sh" ] || SHARED_BENCH=$REPO/../../shared/bench   # from a worktree
fi
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
if [ "${SHORT:-0}" = 1 ]; then RUNS=${RUNS:-1}; DURATION=${DURATION:-5}; fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-60}
INTERVAL=${INTERVAL:-0.01}
MODES=${MODES:-dtls tls}
LOADS=${LOADS:-idle down up}
export STATE=${STATE:-/tmp/latsoak-bench}
export SRV_NS=${LAT_SRV_NS:-lat-srv} CLI_NS=${LAT_CLI_NS:-lat-cli}
VPN_SRV_IP=192.168.99.1
PORT=5201

if [ $# -eq 0 ]; then
    set -- "ocserv=ocserv -f -d 1 -c {conf}" "rocserv=$REPO/target/release/rocserv -f -c {conf}"
fi
NAMES=() CMDS=()
for s in "$@"; do
    NAMES+=("${s%%=*}"); CMDS+=("${s#*=}")
    read -r exe _ <<< "${s#*=}"
    command -v "$exe" >/dev/null || { echo "cannot run: $exe" >&2; exit 1; }
done
for t in iperf3 jq ping; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }; done

# One run at a time per namespace pair: cleanup kills every process in $SRV_NS and deletes
# the namespaces, which a second run would share.
exec 9> "/tmp/latency_soak.$SRV_NS.lock"
flock -n 9 || { echo "another latency_soak.sh uses these namespaces" >&2; exit 1; }
# STATE is removed and made again: only a directory under /tmp that this script made (marker).
case $STATE in
/tmp/*/* | /tmp/*..* | /tmp/) echo "STATE must be a plain /tmp/NAME directory" >&2; exit 1 ;;
/tmp/?*) ;;
*) echo "STATE must be under /tmp" >&2; exit 1 ;;
esac
if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ ! -e "$STATE/.latency_soak.sh" ]; }; then
    echo "$STATE was not made by latency_soak.sh: refusing to remove it (remove it yourself or set another STATE)" >&2; exit 1
fi
rm -rf "$STATE"; mkdir -p "$STATE/harness"; : > "$STATE/.latency_soak.sh"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"

SERVER_PID= IPERF_PID=
stop_server() {
    "$H/disconnect.sh" test1 test2 >/dev/null 2>&1
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
    # whatever the server left in its namespace (ocserv's sec-mod and workers), but not iperf3
    local p
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do
        [ "$p" = "$IPERF_PID" ] || kill -KILL "$p" 2>/dev/null
    done
}
cleanup() {
    stop_server
    [ -n "$IPERF_PID" ] && { kill "$IPERF_PID" 2>/dev/null; wait "$IPERF_PID" 2>/dev/null; }
    "$H/netns.sh" down >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$H/netns.sh" up || exit 1

ip netns exec "$SRV_NS" iperf3 -s -p "$PORT" > "$STATE/iperf3-server.log" 2>&1 &
IPERF_PID=$!
echo "$IPERF_PID" > "$STATE/helpers.pids"

start_server() { # index
    local cmd=${CMDS[$1]//\{conf\}/$STATE/ocserv.conf}
    # shellcheck disable=SC2086 # the template is a command line
    ip netns exec "$SRV_NS" $cmd > "$STATE/server-${NAMES[$1]}.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
        ip netns exec "$SRV_NS" ss -Hltn 'sport = :443' | grep -q . && break
        sleep 0.1
    done
    [ "$i" -lt 100 ] || { echo "${NAMES[$1]}: server not listening" >&2; tail "$STATE/server-${NAMES[$1]}.log" >&2; exit 1; }
    sleep 0.5 # ocserv: let its sec-mod instances finish starting
}

# stats FILE: "p50 p99 p99.9 max replies" of the time= values (ms), nearest rank
stats() {
    sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -g | awk '
        { v[NR] = $1 }
        function rank(p,  r) { r = int(p * NR / 100 + 0.999999); if (r < 1) r = 1; return v[r] }
        END { if (NR == 0) { print "NA NA NA NA 0"; exit }
              print rank(50), rank(99), rank(99.9), v[NR], NR }'
}

RESULTS="$STATE/results.txt"
: > "$RESULTS"
echo "kernel: $(uname -r)  cpus: $(nproc)  runs: $RUNS  duration: ${DURATION}s  interval: ${INTERVAL}s  servers: ${NAMES[*]}"
for run in $(seq 1 "$RUNS"); do
    for idx in "${!NAMES[@]}"; do
        name=${NAMES[$idx]}
        start_server "$idx"
        for mode in $MODES; do
            extra=(); wd=1
            [ "$mode" = tls ] && { extra=(--no-dtls); wd=0; }
            # the victim routes the server's VPN address through its tun; the bulk user has no
            # route and binds iperf3 to its own tun (SO_BINDTODEVICE)
            v=$(IFNAME=lat-v WAIT_DTLS=$wd QUIET=1 "$H/connect.sh" test1 "${extra[@]}") || { echo "$name $mode: victim: $v" >&2; exit 1; }
            b=$(IFNAME=lat-b ROUTE="" WAIT_DTLS=$wd QUIET=1 "$H/connect.sh" test2 "${extra[@]}") || { echo "$name $mode: bulk: $b" >&2; exit 1; }
            [ -n "${AFTER_CONNECT:-}" ] && $AFTER_CONNECT "$name" "$mode"
            for load in $LOADS; do
                f="$STATE/ping-$run-$name-$mode-$load.txt"
                bpid= mbps=0
                if [ "$load" != idle ]; then
                    rev=(); [ "$load" = down ] && rev=(-R)
                    [ -n "${BULK_RATE:-}" ] && rev+=(-b "$BULK_RATE")
                    ip netns exec "$CLI_NS" iperf3 -c "$VPN_SRV_IP" -p "$PORT" --bind-dev lat-b \
                        -t $(( ${DURATION%.*} + 2 )) "${rev[@]}" -J > "$STATE/iperf.json" 2>&1 &
                    bpid=$!
                    sleep 1 # let the transfer ramp up before the first ping
                fi
                cnt=$(awk -v d="$DURATION" -v i="$INTERVAL" 'BEGIN { printf "%d", d / i }')
                tpid=
                if [ "${TRACE:-0}" = 1 ]; then
                    # the victim's client ports (its CSTP connection and DTLS socket)
                    vp=$(cat "$STATE/oc-test1.pid")
                    ports=$(ip netns exec "$CLI_NS" ss -Hntup state all '( dport = :443 )' | awk -v p="pid=$vp," '
                        index($0, p) { n = split($5, a, ":"); printf "%s%s", s, a[n]; s = "," }')
                    pf=""; for pt in ${ports//,/ }; do pf+="${pf:+ or }port $pt"; done
                    ip netns exec "$SRV_NS" tcpdump -i any -tt -n -s 128 -B 8192 \
                        "icmp or ($pf)" > "$f.cap" 2>/dev/null &
                    tpid=$!
                    sleep 0.5
                fi
                ip netns exec "$CLI_NS" ping -n -D -O -i "$INTERVAL" -c "$cnt" -W 1 "$VPN_SRV_IP" > "$f" 2>&1
                split=
                if [ -n "$tpid" ]; then
                    sleep 0.2; kill -INT "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null
                    split=" $("$HERE/latency_split.py" "$f.cap" "$ports")"
                fi
                if [ -n "$bpid" ]; then
                    wait "$bpid"
                    mbps=$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$STATE/iperf.json" 2>/dev/null || echo NA)
                fi
                read -r p50 p99 p999 mx n <<< "$(stats "$f")"
                echo "RUN run=$run server=$name mode=$mode load=$load p50_ms=$p50 p99_ms=$p99 p999_ms=$p999 max_ms=$mx lost=$(( cnt - n )) sent=$cnt bulk_mbps=$mbps$split" | tee -a "$RESULTS"
            done
            [ "$mode" = dtls ] && ! grep -q "Established DTLS" "$STATE/oc-test1.log" && echo "WARNING: $name: victim without DTLS" >&2
            "$H/disconnect.sh" test1 test2 >/dev/null 2>&1
        done
        stop_server
    done
done

for name in "${NAMES[@]}"; do
    for mode in $MODES; do
        for load in $LOADS; do
            line="SOAK server=$name mode=$mode load=$load"
            keys="p50_ms p99_ms p999_ms max_ms lost bulk_mbps"
            [ "${TRACE:-0}" = 1 ] && keys+=" in_p99_ms out_p99_ms server_p50_ms server_p99_ms server_p999_ms server_max_ms"
            for k in $keys; do
                m=$(awk -v s="server=$name" -v mo="mode=$mode" -v l="load=$load" -v k="$k" \
                    '$3==s && $4==mo && $5==l { for (i=6;i<=NF;i++) { split($i,a,"="); if (a[1]==k) print a[2] } }' "$RESULTS" | median)
                line+=" $k=$m"
            done
            echo "$line"
        done
    done
done
