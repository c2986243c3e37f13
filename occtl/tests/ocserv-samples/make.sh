#!/bin/bash
# Regenerates the ocserv occtl samples in this directory (see README.md).
#
# Runs the real ocserv and its occtl (Debian 12: ocserv 1.1.6; run as root) in two network
# namespaces this script creates, connects real `openconnect` clients, and stores what
# ocserv's occtl prints for every command, in JSON (`-j`) and text. Traffic stays inside
# the two namespaces (10.231.14.0/24); only the processes started here are killed, by PID.
#
#   usage: make.sh [OUTDIR]        (default: the directory of this script)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE}
mkdir -p "$OUT"
NS_S=occtl-smp-srv
NS_C=occtl-smp-cli
SRV=10.231.14.1
CLI=10.231.14.2
PORT=4443
W=$(mktemp -d /tmp/occtl-samples.XXXXXX)
chmod 755 "$W"
SOCK=$W/occtl.socket
PIDS=()

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -s "$W/ocserv.pid" ] && kill -TERM "$(cat "$W/ocserv.pid")" 2>/dev/null
    sleep 1
    ip netns del "$NS_C" 2>/dev/null
    ip netns del "$NS_S" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

for t in ocserv occtl openconnect certtool openssl stdbuf; do
    command -v "$t" >/dev/null || { echo "make.sh: $t is missing" >&2; exit 1; }
done

# --- namespaces -------------------------------------------------------------------------
ip netns add "$NS_S"
ip netns add "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip -n "$NS_S" link add veth-s type veth peer name veth-c
ip -n "$NS_S" link set veth-c netns "$NS_C"
ip -n "$NS_S" addr add "$SRV/24" dev veth-s
ip -n "$NS_C" addr add "$CLI/24" dev veth-c
ip -n "$NS_S" link set veth-s up
ip -n "$NS_C" link set veth-c up

# --- throwaway PKI and users ------------------------------------------------------------
cd "$W"
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile ca-key.pem 2>/dev/null
printf 'cn = "occtl samples CA"\nserial = 1\nexpiration_days = 30\nca\ncert_signing_key\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca-key.pem --template ca.tmpl --outfile ca.pem 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile key.pem 2>/dev/null
printf 'cn = "vpn.test"\nserial = 2\nexpiration_days = 30\nip_address = "%s"\nsigning_key\ntls_www_server\n' "$SRV" >srv.tmpl
certtool --generate-certificate --load-privkey key.pem --load-ca-certificate ca.pem \
    --load-ca-privkey ca-key.pem --template srv.tmpl --outfile cert.pem 2>/dev/null
chmod 644 ./*.pem
PIN="pin-sha256:$(openssl x509 -in cert.pem -noout -pubkey | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)"
H=$(openssl passwd -6 -salt occtlsamples pass)
printf 'alice:staff:%s\nbob::%s\n' "$H" "$H" >passwd
mkdir users
cat >users/alice <<CONF
# restrict-user-to-routes/ports are left out: ocserv applies them with iptables (ocserv-fw).
iroute = 10.50.0.0/255.255.0.0
route = 10.60.0.0/255.255.0.0
no-route = 192.168.98.128/255.255.255.128
rx-data-per-sec = 2000000
tx-data-per-sec = 3000000
CONF
chmod -R a+rX "$W"

cat >ocserv.conf <<CONF
auth = "plain[passwd=$W/passwd]"
tcp-port = $PORT
udp-port = $PORT
listen-host = $SRV
run-as-user = nobody
run-as-group = nogroup
socket-file = $W/ocserv-socket
occtl-socket-file = $SOCK
use-occtl = true
pid-file = $W/ocserv.pid
server-cert = $W/cert.pem
server-key = $W/key.pem
isolate-workers = true
max-clients = 16
max-same-clients = 0
rate-limit-ms = 0
keepalive = 32400
dpd = 90
mobile-dpd = 1800
try-mtu-discovery = false
auth-timeout = 240
min-reauth-time = 1
max-ban-score = 20
ban-points-wrong-password = 10
ban-reset-time = 1200
cookie-timeout = 300
deny-roaming = false
compression = false
log-level = 1
device = vpns
predictable-ips = true
default-domain = vpn.test
ipv4-network = 192.168.98.0
ipv4-netmask = 255.255.255.0
ipv6-network = fd00:98::/48
ipv6-subnet-prefix = 64
dns = 192.168.98.1
nbns = 192.168.98.2
split-dns = corp.test
route = 192.168.98.0/255.255.255.0
config-per-user = $W/users/
cisco-client-compat = true
dtls-legacy = true
# Default on in ocserv 1.1.6: it would write the host's utmp/wtmp.
use-utmp = false
CONF

# occtl runs in the server's namespace: it reads the RX/TX counters of the tun devices there.
OCCTL() { ip netns exec "$NS_S" occtl -s "$SOCK" "$@"; }

ip netns exec "$NS_S" ocserv -f -d 1 -c "$W/ocserv.conf" >"$W/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do OCCTL show status >/dev/null 2>&1 && break; sleep 0.1; done
OCCTL show status >/dev/null

# connect USER [openconnect args]: starts a client, waits until occtl lists it.
connect() {
    local user=$1; shift
    echo pass | ip netns exec "$NS_C" openconnect --non-inter --passwd-on-stdin -u "$user" \
        --servercert "$PIN" --script /bin/true --local-hostname client.test "$@" \
        "https://$SRV:$PORT/" >"$W/client-$user.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$user=$!"
    for _ in $(seq 150); do
        OCCTL -j show user "$user" 2>/dev/null | grep -q '"State":  "connected"' && return 0
        sleep 0.2
    done
    echo "make.sh: $user did not connect" >&2; tail -5 "$W/client-$user.log" >&2; tail -20 "$W/server.log" >&2; return 1
}
# bad_login USER: one failed password attempt from the client namespace.
bad_login() {
    echo wrong | ip netns exec "$NS_C" timeout 20 openconnect --non-inter --passwd-on-stdin \
        -u "$1" --servercert "$PIN" --script /bin/true "https://$SRV:$PORT/" >/dev/null 2>&1 || true
}
# run1 FILE ARGS...: one occtl output (JSON if ARGS has -j), exit status in exit-status.txt.
run1() {
    local file=$1; shift
    local rc=0
    OCCTL "$@" >"$OUT/$file" 2>"$W/err" || rc=$?
    echo "occtl $* -> $rc" >>"$OUT/exit-status.txt"
}
# run NAME ARGS...: ocserv's occtl output in JSON and text, exit status in exit-status.txt.
run() {
    local name=$1; shift
    local rc=0
    OCCTL -j "$@" >"$OUT/$name.json" 2>"$W/err" || rc=$?
    echo "occtl -j $* -> $rc" >>"$OUT/exit-status.txt"
    rc=0
    OCCTL "$@" >"$OUT/$name.txt" 2>>"$W/err" || rc=$?
    echo "occtl $* -> $rc" >>"$OUT/exit-status.txt"
}
# events NAME ACTION...: `show events` (JSON and text) around one action.
events() {
    local name=$1; shift
    # occtl leaves `show events` when it reads "q" on stdin.
    mkfifo "$W/ej" "$W/et"
    ip netns exec "$NS_S" stdbuf -o0 occtl -s "$SOCK" -j show events <"$W/ej" >"$OUT/$name.json" 2>/dev/null &
    local ej=$!
    ip netns exec "$NS_S" stdbuf -o0 occtl -s "$SOCK" show events <"$W/et" >"$OUT/$name.txt" 2>/dev/null &
    local et=$!
    PIDS+=("$ej" "$et")
    exec 3>"$W/ej" 4>"$W/et"
    sleep 1
    "$@"
    sleep 2
    echo q >&3
    echo q >&4
    exec 3>&- 4>&-
    wait "$ej" "$et" || true
    rm -f "$W/ej" "$W/et"
}

rm -f "$OUT"/*.json "$OUT"/*.txt; : >"$OUT/exit-status.txt"
connect alice
events show-events-connect connect bob --no-dtls
for _ in $(seq 100); do
    OCCTL -j show user alice | grep -q '"DTLS cipher"' && break
    sleep 0.2
done
bad_login carol
bad_login carol

SID=$(OCCTL -j show user alice | sed -n 's/^ *"Session": *"\(.*\)",*$/\1/p' | head -1)
AID=$(OCCTL -j show user alice | sed -n 's/^ *"ID": *\([0-9]*\),*$/\1/p' | head -1)
BID=$(OCCTL -j show user bob | sed -n 's/^ *"ID": *\([0-9]*\),*$/\1/p' | head -1)

run show-status show status
run show-status-debug --debug show status
run show-users show users
run show-users-debug --debug show users
run show-user show user alice
run show-user-bob show user bob
run show-id show id "$AID"
run show-iroutes show iroutes
run show-ip-bans show ip bans
run show-ip-ban-points show ip ban points
run show-sessions-all show sessions all
run show-sessions-valid show sessions valid
run show-session show session "$SID"
run show-session-debug --debug show session "$SID"
run show-user-missing show user nobody
run show-id-missing show id 99999
run show-session-missing show session zzzzzz

# How ocserv's occtl matches command words (which command ran is visible in the output).
: >"$OUT/matching.txt"
for line in "show ip bans points" "show ip ban points" "show session all" "show sessions all" \
    "show sessions" "show users" "show usersfoo" "show users extra words" "show user" \
    "SHOW USERS" "show   users" "sh users" "show us" "show" "show iroute" "show iroutes x" \
    "show cookies all" "show status now" "show idle" "help" "reload" "nosuch"; do
    rc=0
    # shellcheck disable=SC2086
    o=$(OCCTL $line 2>&1) || rc=$?
    {
        echo "=== occtl $line -> $rc"
        printf '%s\n' "$o" | head -3
    } >>"$OUT/matching.txt"
done

events show-events-disconnect run1 disconnect-id.json -j disconnect id "$BID"
run1 disconnect-user.txt disconnect user alice
run disconnect-user-missing disconnect user nobody
run disconnect-id-missing disconnect id 99999
run1 unban-ip.json -j unban ip "$CLI"
run unban-ip-missing unban ip 10.231.14.99
run reload reload
run1 stop.json -j stop now
echo "make.sh: samples written to $OUT"
