#!/bin/bash
# udp_flood.sh — a garbage flood at the DTLS port while a user transfers over DTLS.
#
#   bench/udp_flood.sh [BIN_DIR [OLD_BIN_DIR]]
#
# BIN_DIR holds rocserv, rocserv-worker and rocserv-sm (default: target/release of this
# repository). With OLD_BIN_DIR (another build, e.g. of the commit before the change), the same
# measurements run for it too.
#
# Reuses the shared harness (namespaces, PKI, openconnect wrapper): SHARED_BENCH, by default
# ../shared/bench next to this repository. Its scripts are copied into $STATE/harness, so the
# PKI and pid files live there, and the namespaces get names of their own (ufl-srv, ufl-cli;
# 10.99.0.1 and 10.99.0.2 inside them): this can run beside the shared bench.
#
# Per build and per run, three iperf3 uploads of DURATION seconds through the tunnel (user
# test1, DTLS established): with no flood, with a flood of garbage (1..1400 random bytes whose
# first byte is never 22 or 23: nothing a DTLS server could use) and with a flood of fake
# ClientHellos (well-formed, random unknown session ids: they pass any cheap check and cost
# main a lookup each). The flood is one python3 process in the client namespace sending as fast
# as it can to 10.99.0.1:443 only, for DURATION + 1 seconds at most.
#
# main_cpu: CPU time of the rocserv main process (all its threads) during the run, % of one
# core. udp_errs: the server namespace's UDP InErrors during the run (datagrams the socket
# filter or a full queue dropped); rcvbuf: RcvbufErrors (full queue only).
#
# Env: RUNS [3], DURATION [15], STATE [/tmp/udpflood-bench], SHARED_BENCH, KINDS
# ["none garbage hello"], RATE [0 = as fast as python can; else datagrams per second, the same
# load for every build: unlimited, a flood that the server makes cheaper gets more of the
# shared CPU and sends faster].
#
# Per-run lines:  RUN build=.. kind=.. run=.. mbps=.. main_cpu=..% sent=.. pps=.. udp_errs=.. rcvbuf=..
# Last lines:     FLOOD build=.. kind=.. mbps=.. main_cpu=..% pps=.. (medians over RUNS)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
[ -r "$SHARED_BENCH/lib.sh" ] || { echo "no shared harness at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
NEW_BIN=${1:-$REPO/target/release}
OLD_BIN=${2:-}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
KINDS=${KINDS:-none garbage hello}
RATE=${RATE:-0}
export STATE=${STATE:-/tmp/udpflood-bench}
export SRV_NS=ufl-srv CLI_NS=ufl-cli
SRV_IP=10.99.0.1
VPN_SRV_IP=192.168.99.1
PORT=5201
HZ=$(getconf CLK_TCK)

for b in "$NEW_BIN" ${OLD_BIN:+"$OLD_BIN"}; do
    for f in rocserv rocserv-worker rocserv-sm; do
        [ -x "$b/$f" ] || { echo "missing $b/$f" >&2; exit 1; }
    done
done
command -v iperf3 >/dev/null || { echo "needs iperf3" >&2; exit 1; }

rm -rf "$STATE"; mkdir -p "$STATE/harness"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"

SERVER_PID= IPERF_PID=
stop_server() {
    "$H/disconnect.sh" test1 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
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

# udp_counter NAME: a Udp: counter of /proc/net/snmp in the server namespace
udp_counter() {
    ip netns exec "$SRV_NS" awk -v k="$1" '/^Udp:/{ if (!h) { for (i=1;i<=NF;i++) if ($i==k) c=i; h=1 } else { print $c; exit } }' /proc/net/snmp
}

# flood KIND SECONDS: prints the number of datagrams sent
flood() {
    ip netns exec "$CLI_NS" python3 - "$1" "$2" "$SRV_IP" "$RATE" <<'PY'
import os, random, socket, sys, time
kind, seconds, ip, rate = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = random.Random(7)
def garbage():
    d = bytearray(os.urandom(rng.randint(1, 1400)))
    if d[0] in (22, 23):
        d[0] = 0xff
    return bytes(d)
def hello():
    # record header (handshake, DTLS 1.0, epoch 0), ClientHello header, version, random,
    # a random 32-byte session id: the shape openconnect sends, for no session of ours.
    body = bytes([0xfe, 0xfd]) + os.urandom(32) + bytes([32]) + os.urandom(32) + bytes([0, 0, 2, 0, 0x2f, 1, 0])
    hs = bytes([1]) + len(body).to_bytes(3, "big") + bytes(2) + bytes(3) + len(body).to_bytes(3, "big") + body
    return bytes([22, 0xfe, 0xff, 0, 0]) + bytes(6) + len(hs).to_bytes(2, "big") + hs
make = garbage if kind == "garbage" else hello
payloads = [make() for _ in range(512)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
end = start + seconds
n = 0
while time.monotonic() < end:
    for p in payloads:
        try:
            s.sendto(p, (ip, 443))
            n += 1
        except OSError:
            pass
    if rate:
        ahead = start + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
print(n)
PY
}

RESULTS="$STATE/results.txt"
: > "$RESULTS"
one_build() { # name bin_dir
    local name=$1 bin=$2
    ip netns exec "$SRV_NS" "$bin/rocserv" -f -c "$STATE/ocserv.conf" > "$STATE/server-$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do grep -q "ready: listening" "$STATE/server-$name.log" && break; sleep 0.1; done
    grep -q "ready: listening" "$STATE/server-$name.log" || { echo "$name: server not ready" >&2; tail "$STATE/server-$name.log" >&2; exit 1; }
    WAIT_DTLS=1 STATE="$STATE" "$H/connect.sh" test1 || exit 1
    local run kind fpid c0 c1 t0 t1 e0 e1 r0 r1 mbps sent cpu
    for run in $(seq 1 "$RUNS"); do
        for kind in $KINDS; do
            fpid=
            if [ "$kind" != none ]; then
                flood "$kind" $(( DURATION + 1 )) > "$STATE/flood.out" &
                fpid=$!
                sleep 0.5 # let the flood reach full speed before the transfer
            fi
            e0=$(udp_counter InErrors); r0=$(udp_counter RcvbufErrors)
            c0=$(cpu_ticks "$SERVER_PID"); t0=$(now_us)
            ip netns exec "$CLI_NS" iperf3 -c "$VPN_SRV_IP" -p "$PORT" -t "$DURATION" -J > "$STATE/iperf.json" 2>&1
            c1=$(cpu_ticks "$SERVER_PID"); t1=$(now_us)
            e1=$(udp_counter InErrors); r1=$(udp_counter RcvbufErrors)
            sent=0
            if [ -n "$fpid" ]; then wait "$fpid"; sent=$(cat "$STATE/flood.out"); fi
            mbps=$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$STATE/iperf.json" 2>/dev/null || echo NA)
            cpu=$(echo "scale=1; 100 * ($c1 - $c0) * 1000000 / $HZ / ($t1 - $t0)" | bc)
            echo "RUN build=$name kind=$kind run=$run mbps=$mbps main_cpu=$cpu% sent=$sent pps=$(( sent / (DURATION + 1) )) udp_errs=$(( e1 - e0 )) rcvbuf=$(( r1 - r0 ))" | tee -a "$RESULTS"
        done
    done
    grep -q "Established DTLS" "$STATE/oc-test1.log" || echo "WARNING: $name: DTLS was not established" >&2
    stop_server
}

echo "kernel: $(uname -r)  cpus: $(nproc)  duration: ${DURATION}s  runs: $RUNS"
one_build new "$NEW_BIN"
[ -n "$OLD_BIN" ] && one_build old "$OLD_BIN"

for name in new ${OLD_BIN:+old}; do
    for kind in $KINDS; do
        m=$(awk -v b="build=$name" -v k="kind=$kind" '$2==b && $3==k { sub("mbps=","",$5); print $5 }' "$RESULTS" | median)
        c=$(awk -v b="build=$name" -v k="kind=$kind" '$2==b && $3==k { sub("main_cpu=","",$6); sub("%","",$6); print $6 }' "$RESULTS" | median)
        p=$(awk -v b="build=$name" -v k="kind=$kind" '$2==b && $3==k { sub("pps=","",$8); print $8 }' "$RESULTS" | median)
        echo "FLOOD build=$name kind=$kind mbps=$m main_cpu=$c% pps=$p"
    done
done
