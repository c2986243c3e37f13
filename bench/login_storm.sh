#!/bin/bash
# login_storm.sh — N simultaneous logins, then a reconnect storm of the same N sessions, with an
# established user pinging through the tunnel the whole time.
#
#   bench/login_storm.sh [-n NAME] [SERVER_CMD_TEMPLATE]
#
# SERVER_CMD_TEMPLATE is run in the server namespace, {conf} replaced by the generated config,
# as ../shared/bench/run_all.sh: default "BIN_DIR/rocserv -f -c {conf}" (BIN_DIR: target/release
# of this repository); "ocserv -f -d 1 -c {conf}" for the reference.
#
# Reuses the shared harness (PKI, openconnect wrapper): SHARED_BENCH, by default ../shared/bench
# next to this repository. Its scripts are copied into $STATE/harness; the namespaces have names
# of their own (lst-srv, lst-cli; 10.99.0.1 / 10.99.0.2 inside them), so this can run beside the
# shared bench. Users test1..test(N+1), password "pass" (the copy's ocpasswd is made that big).
#
# Per run:
#  1. the victim (test1, the only tunnel with a route to the server's tunnel address) connects and pings the
#     server through the tunnel every PING_MS; CONTROL seconds of that with nothing else going on
#     give the control gap (largest time between two consecutive replies);
#  2. login storm: N openconnect clients (test2..) start at once; sessions/s = N / time until
#     the last tunnel is configured, connect p50/max per client, server CPU per login (all the
#     server's processes, reaped workers included), the machine's busy share, the victim's gap;
#  3. reconnect storm: every worker of those N sessions is killed (SIGKILL, by PID: processes of
#     the server namespace that appeared with the storm), which the clients see as a dropped
#     connection; they reconnect with their cookies (openconnect's own reconnect, no password).
#     all_back_s = time from the kill until every one of the N reported its tunnel up again,
#     server CPU per reconnect, the victim's largest gap during the storm;
#  4. everybody disconnects, the server stops.
#
# CLIENT_NICE [unset]: the storm's openconnect processes run at this nice value (e.g. 19), the
# victim and its ping at the shell's: on one machine the storm's clients otherwise take the CPU
# from the victim's client, which a real server never sees, and the gap is mostly theirs.
# TRACE=1 (needs tcpdump): a capture in the server namespace of the victim's packets during each
# storm, and latency_split.py's split of every ping: how long the SERVER held the victim's
# packets (st_server_p99_ms, st_server_max_ms; re_... for the reconnect storm), apart from the
# client side's wait for a CPU. Every RUN line also has the victim's RTT p99 per storm
# (rtt_p99_ms, re_rtt_p99_ms), steadier than the largest gap on a shared machine.
# PERF=1 samples the whole machine during the login storm (`perf record -a -g`,
# $STATE/runN/perf-storm.data); bench/login_cpu_split.sh splits the CPU per process.
# Knobs: N [50], RUNS [3] (medians over the runs), CONTROL [5] s, PING_MS [10], TIMEOUT [120] s
# per storm, STATE [/tmp/loginstorm-bench], SHARED_BENCH, EXTRA_CONF (lines appended to the
# config). For a rocserv command the config also gets ROCSERV_CONF [`max-pre-auth-per-ip = 0`]: the
# storm comes from one address (see doc/decisions/0011-login-path.md). SHORT=1: N=10,
# RUNS=1, CONTROL=2 (a smoke check, ~1 min).
#
# Per-run line:  RUN name=.. run=.. n=.. ok=.. secs=.. sessions_per_s=.. connect_p50_s=..
#                connect_max_s=.. cpu_ms_per_login=.. busy=..% gap_ms=.. re_ok=.. all_back_s=..
#                re_cpu_ms_per_session=.. re_gap_ms=.. control_gap_ms=..
# Last line:     STORM name=.. (the same keys, medians over RUNS)
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
TEMPLATE=${1:-"$REPO/target/release/rocserv -f -c {conf}"}
if [ "${SHORT:-0}" = 1 ]; then N=${N:-10}; RUNS=${RUNS:-1}; CONTROL=${CONTROL:-2}; fi
N=${N:-50}
RUNS=${RUNS:-3}
CONTROL=${CONTROL:-5}
PING_MS=${PING_MS:-10}
TIMEOUT=${TIMEOUT:-120}
export STATE=${STATE:-/tmp/loginstorm-bench}
export SRV_NS=lst-srv CLI_NS=lst-cli

# One run at a time per namespace pair: cleanup kills every process in $SRV_NS and deletes
# the namespaces, which a second run would share.
exec 9> "/tmp/login_storm.lock"
flock -n 9 || { echo "another login_storm.sh uses these namespaces" >&2; exit 1; }
# STATE is removed and made again: only a directory under /tmp that this script made (marker).
case $STATE in
/tmp/*/* | /tmp/*..* | /tmp/) echo "STATE must be a plain /tmp/NAME directory" >&2; exit 1 ;;
/tmp/?*) ;;
*) echo "STATE must be under /tmp" >&2; exit 1 ;;
esac
if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ ! -e "$STATE/.login_storm.sh" ]; }; then
    echo "$STATE was not made by login_storm.sh: refusing to remove it (remove it yourself or set another STATE)" >&2; exit 1
fi
rm -rf "$STATE"; mkdir -p "$STATE/harness"; : > "$STATE/.login_storm.sh"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
NUSERS=$(( N + 1 > 200 ? N + 1 : 200 )) "$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
# The harness's pool is a /24: above 250 sessions both servers get a /21 (10.200.0.0, the
# server's tunnel address 10.200.0.1, which the victim pings) from the same file.
VPN_SRV=192.168.99.1
if [ $((N + 1)) -gt 250 ]; then
    VPN_SRV=10.200.0.1
    sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" \
        -e 's#^ipv4-network.*#ipv4-network = 10.200.0.0#' \
        -e 's#^ipv4-netmask.*#ipv4-netmask = 255.255.248.0#' \
        -e 's#^route = .*#route = 10.200.0.0/255.255.248.0#' \
        -e 's#^dns = .*#dns = 10.200.0.1#' \
        -e 's#^max-clients.*#max-clients = 4096#' \
        "$H/ocserv.conf" > "$STATE/ocserv.conf"
else
    sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"
fi
case "$TEMPLATE" in
    *rocserv*) printf '%s\n' "${ROCSERV_CONF-max-pre-auth-per-ip = 0}" >> "$STATE/ocserv.conf" ;;
esac
[ -n "${EXTRA_CONF:-}" ] && printf '%s\n' "$EXTRA_CONF" >> "$STATE/ocserv.conf"
CMD=${TEMPLATE//\{conf\}/$STATE/ocserv.conf}

client_nice=
[ -n "${CLIENT_NICE:-}" ] && client_nice="nice -n $CLIENT_NICE"
users=()
for i in $(seq 2 $(( N + 1 ))); do users+=("test$i"); done
SERVER_PID= PING_PID=
stop_all() {
    [ -n "$PING_PID" ] && { kill "$PING_PID" 2>/dev/null; wait "$PING_PID" 2>/dev/null; PING_PID=; }
    WAIT=20 "$H/disconnect.sh" test1 "${users[@]}" 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
    # Whatever the server left in its namespace (ocserv's workers, if any): by PID.
    for p in $(ip netns pids "$SRV_NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
}
cleanup() { stop_all; "$H/netns.sh" down >/dev/null 2>&1; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# gap_ms FILE: the largest time between two consecutive replies in `ping -D` output, in ms.
gap_ms() {
    awk -F'[][]' '/icmp_seq=/{ t=$2+0; if (p) { d=t-p; if (d>m) m=d } p=t } END{ printf "%.0f", m*1000 }' "$1"
}
ping_start() {
    ip netns exec "$CLI_NS" ping -D -n -i "$(awk -v m="$PING_MS" 'BEGIN{print m/1000}')" \
        -W 1 "$VPN_SRV" > "$1" 2>&1 &
    PING_PID=$!
}
ping_stop() { kill -INT "$PING_PID" 2>/dev/null; wait "$PING_PID" 2>/dev/null; PING_PID=; }
# rtt_p99 FILE: the 99th percentile of the replies' time= (ms), nearest rank.
rtt_p99() {
    sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "NA"; exit } r = int(0.99 * NR + 0.999999); print v[r] }'
}
# TRACE=1: trace_start FILE / trace_stop FILE PREFIX (prints " PREFIXserver_p99_ms=.. ...").
TRACE_PID= VICTIM_PORTS=
trace_start() {
    [ "${TRACE:-0}" = 1 ] || return 0
    local vp pf="" pt
    vp=$(cat "$STATE/oc-test1.pid")
    VICTIM_PORTS=$(ip netns exec "$CLI_NS" ss -Hntup state all '( dport = :443 )' | awk -v p="pid=$vp," '
        index($0, p) { n = split($5, a, ":"); printf "%s%s", s, a[n]; s = "," }')
    for pt in ${VICTIM_PORTS//,/ }; do pf+="${pf:+ or }port $pt"; done
    if [ -z "$pf" ]; then
        echo "TRACE: the victim's client has no connection to the server: no capture" >&2
        return 0
    fi
    ip netns exec "$SRV_NS" tcpdump -i any -tt -n -s 128 -B 8192 "icmp or ($pf)" > "$1" 2>/dev/null &
    TRACE_PID=$!
    sleep 0.5
}
trace_stop() {
    [ -n "$TRACE_PID" ] || return 0
    kill -INT "$TRACE_PID" 2>/dev/null; wait "$TRACE_PID" 2>/dev/null; TRACE_PID=
    "$HERE/latency_split.py" "$1" "$VICTIM_PORTS" | tr ' ' '\n' | grep -E '^(in|server)_(p99|max)_ms=' |
        sed "s/^/$2/" | tr '\n' ' ' | sed 's/^/ /; s/ $//'
}
# ms_per CPU_NS_DELTA N
ms_per() { awk -v d="$1" -v n="$2" 'BEGIN{ if (n>0) printf "%.2f", d/1e6/n; else print "NA" }'; }

one_run() {
    local run=$1 out="$STATE/run$run" p u
    mkdir -p "$out"
    "$H/netns.sh" up >/dev/null || { echo "netns up failed" >&2; return 1; }
    : > "$STATE/helpers.pids"
    # shellcheck disable=SC2086
    ip netns exec "$SRV_NS" $CMD > "$out/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        ip netns exec "$SRV_NS" ss -Hltn 'sport = :443' | grep -q . && break
        alive "$SERVER_PID" || { echo "server died, see $out/server.log" >&2; return 1; }
        sleep 0.1
    done
    sleep 0.5
    local idle; idle=" $(server_pids | tr '\n' ' ') "
    # 1. the victim and the control
    r=$(ROUTE="$VPN_SRV" TIMEOUT=30 WAIT_DTLS=1 "$H/connect.sh" test1) || { echo "victim: $r" >&2; return 1; }
    local before=" $(server_pids | tr '\n' ' ') "
    ping_start "$out/ping-control.txt"; sleep "$CONTROL"; ping_stop
    local control; control=$(gap_ms "$out/ping-control.txt")

    # 2. the login storm
    local pids=() c0 c1 a0 a1 t0 t1 ok=0 st_split re_split
    trace_start "$out/storm.cap"
    ping_start "$out/ping-storm.txt"; sleep 0.5
    local perf_pid=
    if [ "${PERF:-0}" = 1 ]; then
        perf record -q -e cpu-clock -a -g -o "$out/perf-storm.data" > /dev/null 2>&1 &
        perf_pid=$!; sleep 0.5
    fi
    c0=$(cpu_ns_incl $(server_pids)); read -r _ a0 <<< "$(sys_cpu)"
    t0=$(now_us)
    for u in "${users[@]}"; do
        ROUTE="" TIMEOUT="$TIMEOUT" IFNAME="s-$u" $client_nice "$H/connect.sh" "$u" > "$out/conc-$u.txt" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
    t1=$(now_us)
    read -r _ a1 <<< "$(sys_cpu)"; c1=$(cpu_ns_incl $(server_pids))
    [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null; }
    sleep 0.5; ping_stop
    st_split=$(trace_stop "$out/storm.cap" st_)
    local secs rate p50 max cpu busy gap
    secs=$(fmt_us $(( t1 - t0 )))
    rate=$(awk -v n="$ok" -v us=$(( t1 - t0 )) 'BEGIN{printf "%.2f", n/(us/1e6)}')
    p50=$(cat "$out"/conc-*.txt | sed -n 's/.* secs=\([0-9.]*\).*/\1/p' | percentile 50)
    max=$(cat "$out"/conc-*.txt | sed -n 's/.* secs=\([0-9.]*\).*/\1/p' | sort -g | tail -1)
    cpu=$(ms_per $(( c1 - c0 )) "$ok")
    busy=$(awk -v d="$(( ${a1%% *} - ${a0%% *} ))" -v t="$(( ${a1##* } - ${a0##* } ))" 'BEGIN{ if(t>0) printf "%.0f", d/t*100; else print "NA"}')
    gap=$(gap_ms "$out/ping-storm.txt")
    grep -h FAIL "$out"/conc-*.txt | head -3 >&2

    # 3. the reconnect storm: kill the storm's workers, wait for every client's tunnel again
    sleep 1
    local kill=() left re_ok=0 deadline back
    for p in $(server_pids); do
        [[ "$before" == *" $p "* ]] || kill+=("$p")
    done
    # Only the clients that got in: a refused one (a cap) has no session to come back to.
    local up=()
    for u in "${users[@]}"; do grep -q '^UP' "$out/conc-$u.txt" && up+=("$u"); done
    for u in "${up[@]}"; do rm -f "$STATE/oc-$u.up"; done
    trace_start "$out/re.cap"
    ping_start "$out/ping-re.txt"; sleep 0.5
    c0=$(cpu_ns_incl $(server_pids))
    t0=$(now_us)
    kill -KILL "${kill[@]}" 2>/dev/null
    deadline=$(( t0 + TIMEOUT * 1000000 ))
    while :; do
        left=0
        for u in "${up[@]}"; do [ -e "$STATE/oc-$u.up" ] || left=$((left + 1)); done
        [ "$left" = 0 ] && break
        (( $(now_us) > deadline )) && break
        sleep 0.05
    done
    t1=$(now_us)
    c1=$(cpu_ns_incl $(server_pids))
    sleep 0.5; ping_stop
    re_split=$(trace_stop "$out/re.cap" re_)
    re_ok=$(( ${#up[@]} - left ))
    back=$(fmt_us $(( t1 - t0 )))
    local re_cpu re_gap
    re_cpu=$(ms_per $(( c1 - c0 )) "$re_ok")
    re_gap=$(gap_ms "$out/ping-re.txt")
    echo "RUN name=$NAME run=$run n=$N ok=$ok secs=$secs sessions_per_s=$rate connect_p50_s=$p50 connect_max_s=$max cpu_ms_per_login=$cpu busy=${busy}% gap_ms=$gap killed=${#kill[@]} re_ok=$re_ok all_back_s=$back re_cpu_ms_per_session=$re_cpu re_gap_ms=$re_gap control_gap_ms=$control rtt_p99_ms=$(rtt_p99 "$out/ping-storm.txt") re_rtt_p99_ms=$(rtt_p99 "$out/ping-re.txt") control_rtt_p99_ms=$(rtt_p99 "$out/ping-control.txt")$st_split$re_split"
    stop_all
}

: > "$STATE/runs.txt"
for run in $(seq 1 "$RUNS"); do
    one_run "$run" | tee -a "$STATE/runs.txt"
done
keys="ok secs sessions_per_s connect_p50_s connect_max_s cpu_ms_per_login busy gap_ms re_ok all_back_s re_cpu_ms_per_session re_gap_ms control_gap_ms rtt_p99_ms re_rtt_p99_ms control_rtt_p99_ms"
[ "${TRACE:-0}" = 1 ] && keys+=" st_in_p99_ms st_server_p99_ms st_server_max_ms re_in_p99_ms re_server_p99_ms re_server_max_ms"
line="STORM name=$NAME n=$N runs=$RUNS client_nice=${CLIENT_NICE:-}"
for k in $keys; do
    m=$(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" "$STATE/runs.txt" | median)
    line+=" $k=$m"
done
echo "$line"
