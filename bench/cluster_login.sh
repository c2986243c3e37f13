#!/bin/bash
# bench/cluster_login.sh: what the cluster store (doc/cluster.md) costs a login.
#
# Runs our server twice on the same configuration, without `cluster-store` and with a
# redis-server in a namespace of its own (a veth away, like a store on the LAN), and drives
# N sequential `openconnect --authenticate` logins (the login: TLS, auth XML, password
# check, cookie; not the CONNECT) against each. Reports per mode the median and p90 login
# latency (wall clock, client side) and the server's CPU per login (main + sec-mod + the
# reaped workers, from /proc, ns precision), then the ratios, and the cost of one store round
# trip from the server's namespace (redis-benchmark PING, one connection, p50).
#
# Usage (root):  bench/cluster_login.sh [-n N] [-b PATH/TO/rocserv] [-o RESULT_FILE]
#   -n N      logins per mode [40]; `-n 5` is a smoke check (~30 s)
#   -b BIN    the rocserv binary [target/release/rocserv, else target/debug/rocserv]
#   -o FILE   also write the summary there
# Needs: openconnect, redis-server, redis-benchmark (redis-tools), openssl, ocpasswd
# (ocserv), iproute2. Namespaces of its own (rocbl-srv, rocbl-cli, rocbl-st), addresses in
# 10.241.0.0/24 and 10.242.0.0/24 inside them only; it kills only the processes it started
# (by PID) and deletes its namespaces on exit. Serialise with other benches if they share
# the machine: flock /tmp/bench.lock bench/cluster_login.sh

set -euo pipefail

N=40
BIN=
OUT=
while getopts "n:b:o:" opt; do
    case $opt in
    n) N=$OPTARG ;;
    b) BIN=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$BIN" ]; then
    BIN=$ROOT/target/release/rocserv
    [ -x "$BIN" ] || BIN=$ROOT/target/debug/rocserv
fi
[ -x "$BIN" ] || { echo "no rocserv binary ($BIN): cargo build --release" >&2; exit 1; }
for tool in openconnect redis-server redis-benchmark openssl ocpasswd ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

SRV=rocbl-srv CLI=rocbl-cli ST=rocbl-st
SRV_IP=10.241.0.1 CLI_IP=10.241.0.2 ST_IP=10.242.0.1 SRV_ST_IP=10.242.0.2
# One run at a time: cleanup deletes the fixed namespaces a second run would share.
exec 9> /tmp/cluster_login.lock
flock -n 9 || { echo "another cluster_login.sh is running" >&2; exit 1; }
DIR=$(mktemp -d /tmp/rocbl.XXXXXX)
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for ns in "$SRV" "$CLI" "$ST"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# --- namespaces: client -- server -- store
for ns in "$SRV" "$CLI" "$ST"; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip link add rocbl-s type veth peer name rocbl-c
ip link set rocbl-s netns "$SRV"; ip link set rocbl-c netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev rocbl-s; ip -n "$SRV" link set rocbl-s up
ip -n "$CLI" addr add "$CLI_IP/24" dev rocbl-c; ip -n "$CLI" link set rocbl-c up
ip link add rocbl-t type veth peer name rocbl-u
ip link set rocbl-t netns "$ST"; ip link set rocbl-u netns "$SRV"
ip -n "$ST" addr add "$ST_IP/24" dev rocbl-t; ip -n "$ST" link set rocbl-t up
ip -n "$SRV" addr add "$SRV_ST_IP/24" dev rocbl-u; ip -n "$SRV" link set rocbl-u up

# --- certificate, pin, users
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=vpn.test" -addext "subjectAltName=IP:$SRV_IP" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
PIN="pin-sha256:$(openssl x509 -in "$DIR/cert.pem" -pubkey -noout \
    | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)"
printf 'pw\npw\n' | ocpasswd -c "$DIR/ocpasswd" bench >/dev/null 2>&1

conf() { # conf FILE [extra lines...]
    local f=$1; shift
    cat > "$f" <<EOF
auth = "plain[passwd=$DIR/ocpasswd]"
tcp-port = 443
udp-port = 443
run-as-user = nobody
run-as-group = nogroup
server-cert = $DIR/cert.pem
server-key = $DIR/key.pem
pid-file = $DIR/rocserv.pid
socket-file = $DIR/rocserv.socket
session-db = $DIR/sessions.db
device = vpnbl
ipv4-network = 192.168.241.0/24
use-utmp = false
max-ban-score = 0
max-same-clients = 0
cookie-timeout = 300
EOF
    printf '%s\n' "$@" >> "$f"
}

# cpu_ns PID: CPU of PID's threads plus its reaped children, in ns
cpu_ns() {
    local st f th=0 t r tick
    tick=$(( 1000000000 / $(getconf CLK_TCK) ))
    st=$(< "/proc/$1/stat"); st=${st##*) }
    read -r -a f <<< "$st"
    for t in /proc/"$1"/task/*/schedstat; do read -r r _ < "$t" && th=$(( th + r )); done
    (( th > (f[11] + f[12]) * tick )) || th=$(( (f[11] + f[12]) * tick ))
    echo $(( th + (f[13] + f[14]) * tick ))
}
# server_cpu_ns: every process in the server namespace but the store helpers
server_cpu_ns() {
    local sum=0 p
    for p in $(ip netns pids "$SRV"); do sum=$(( sum + $(cpu_ns "$p" 2>/dev/null || echo 0) )); done
    echo "$sum"
}
median() { sort -g | awk '{a[NR]=$1} END{ if(NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
p90() { sort -g | awk '{a[NR]=$1} END{ i=int(0.9*NR+0.999999); if(i<1)i=1; printf "%.6f\n", a[i] }'; }

login() {
    echo pw | ip netns exec "$CLI" openconnect --protocol=anyconnect --non-inter \
        --servercert "$PIN" --passwd-on-stdin --authenticate --user=bench \
        "https://$SRV_IP/" >/dev/null 2>&1
}

# run MODE: N logins against a fresh server; prints "MODE median_s p90_s cpu_ms_per_login"
run() {
    local mode=$1 extra=() log="$DIR/server-$1.log"
    [ "$mode" = store ] && extra=("cluster-store = redis://$ST_IP:6379/0" "cluster-node = bench")
    conf "$DIR/$mode.conf" "${extra[@]}"
    ip netns exec "$SRV" "$BIN" -f -c "$DIR/$mode.conf" > "$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local i
    for i in $(seq 100); do login && break; sleep 0.2; done
    if [ "$mode" = store ]; then
        for i in $(seq 100); do grep -q "reachable: sessions" "$log" && break; sleep 0.1; done
        grep -q "reachable: sessions" "$log" || { echo "the server never reached the store" >&2; exit 1; }
    fi
    login # warm-up
    local t0 t1 c0 c1 lat=()
    c0=$(server_cpu_ns)
    for i in $(seq "$N"); do
        t0=$EPOCHREALTIME
        login || { echo "login $i failed ($mode)" >&2; exit 1; }
        t1=$EPOCHREALTIME
        lat+=("$(echo "$t1 - $t0" | bc -l)")
    done
    c1=$(server_cpu_ns)
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    local med p
    med=$(printf '%s\n' "${lat[@]}" | median)
    p=$(printf '%s\n' "${lat[@]}" | p90)
    echo "$mode $med $p $(echo "($c1 - $c0) / $N / 1000000" | bc -l | xargs printf '%.2f')"
}

ip netns exec "$ST" redis-server --bind "$ST_IP" --port 6379 --save "" --appendonly no \
    --protected-mode no --daemonize no --loglevel warning --dir "$DIR" > "$DIR/redis.log" 2>&1 &
PIDS+=("$!")
for i in $(seq 100); do
    ip netns exec "$SRV" redis-cli -h "$ST_IP" PING 2>/dev/null | grep -q PONG && break
    sleep 0.1
done

A=$(run nostore)
B=$(run store)
RTT=$(ip netns exec "$SRV" redis-benchmark -h "$ST_IP" -p 6379 -c 1 -n 5000 -t ping -q 2>/dev/null \
    | awk -F'p50=' '/PING_MBULK/{split($2,a," "); print a[1]}')
read -r _ am ap ac <<< "$A"
read -r _ bm bp bc_ <<< "$B"
{
    echo "# cluster_login: $N sequential logins per mode, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-8s %12s %12s %16s\n' mode median_s p90_s cpu_ms/login
    printf '%-8s %12s %12s %16s\n' nostore "$am" "$ap" "$ac"
    printf '%-8s %12s %12s %16s\n' store "$bm" "$bp" "$bc_"
    echo "ratio store/nostore: latency $(echo "$bm / $am" | bc -l | xargs printf '%.2f'), cpu $(echo "$bc_ / $ac" | bc -l | xargs printf '%.2f')"
    echo "store round trip (PING, 1 connection, p50): ${RTT:-NA} ms"
} | tee ${OUT:+"$OUT"}
