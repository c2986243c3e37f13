#!/bin/bash
# login_syscalls.sh — what ONE login costs in processes and system calls, per server process.
#
#   bench/login_syscalls.sh [-n NAME] [SERVER_CMD_TEMPLATE]   (as login_cpu_split.sh)
#
# One `openconnect` login (auth + CONNECT + DTLS) and logout with every server process under
# `strace -f`: per process (main, its workers, sec-mod) the number of system calls, the
# clone/fork/vfork and execve calls, and the ten most frequent calls. Traces stay in
# $STATE/st-PID for a closer look (which socket a message went to, ...). Needs strace.
# Knobs: STATE [/tmp/loginsys-bench], SHARED_BENCH. Namespaces lsc-srv / lsc-cli.
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
export STATE=${STATE:-/tmp/loginsys-bench}
export SRV_NS=lsc-srv CLI_NS=lsc-cli
command -v strace >/dev/null || { echo "needs strace" >&2; exit 1; }
exec 9> "/tmp/login_syscalls.lock"
flock -n 9 || { echo "another login_syscalls.sh uses these namespaces" >&2; exit 1; }
case $STATE in
/tmp/*/* | /tmp/*..* | /tmp/) echo "STATE must be a plain /tmp/NAME directory" >&2; exit 1 ;;
/tmp/?*) ;;
*) echo "STATE must be under /tmp" >&2; exit 1 ;;
esac
if [ -L "$STATE" ] || { [ -e "$STATE" ] && [ ! -e "$STATE/.login_syscalls.sh" ]; }; then
    echo "$STATE was not made by login_syscalls.sh: refusing to remove it" >&2; exit 1
fi
rm -rf "$STATE"; mkdir -p "$STATE/harness"; : > "$STATE/.login_syscalls.sh"
cp "$SHARED_BENCH"/*.sh "$SHARED_BENCH/ocserv.conf" "$STATE/harness/"
H="$STATE/harness"
. "$H/lib.sh"
"$H/pki.sh" > "$STATE/pki.out" || { echo "pki.sh failed" >&2; exit 1; }
sed -e "s#@BENCH@#$H#g" -e "s#/tmp/vpnbench#$STATE#g" "$H/ocserv.conf" > "$STATE/ocserv.conf"
# As the other login scripts: one client address; ocserv skips the option with a warning.
printf 'max-pre-auth-per-ip = 0\nuse-utmp = false\n' >> "$STATE/ocserv.conf"
CMD=${TEMPLATE//\{conf\}/$STATE/ocserv.conf}

SERVER_PID= STRACES=()
cleanup() {
    for p in "${STRACES[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    STRACES=()
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
kinds=()
for p in $(server_pids); do
    strace -f -qq -tt -o "$STATE/st-$p" -p "$p" &
    STRACES+=($!); kinds+=("$(< "/proc/$p/comm")-$p")
done
sleep 1
TIMEOUT=30 WAIT_DTLS=1 "$H/connect.sh" test1 > "$STATE/connect.out" || { echo "login failed" >&2; exit 1; }
sleep 0.5
"$H/disconnect.sh" test1
sleep 1
for p in "${STRACES[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
STRACES=()
for kind in "${kinds[@]}"; do
    f="$STATE/st-${kind##*-}"
    # Per process id of the trace: its comm after the last execve (or the traced process's).
    awk -v kind="$kind" -v name="$NAME" '
        { pid = $1; call = $3; sub(/\(.*/, "", call)
          if (call == "<...") next
          n[pid]++; c[pid, call]++
          if (call ~ /^(clone|clone3|fork|vfork)$/) forks[pid]++
          if (call == "execve") { execs[pid]++; split($0, a, "\""); exe[pid] = a[2] } }
        END { for (p in n) {
                line = sprintf("SYSCALLS name=%s tree=%s pid=%s exe=%s calls=%d forks=%d execs=%d top=", name, kind, p, (p in exe) ? exe[p] : "-", n[p], forks[p] + 0, execs[p] + 0)
                m = 0; delete seen
                while (m < 10) { best = ""; bv = 0
                    for (k in c) { split(k, kk, SUBSEP); if (kk[1] != p || (kk[2] in seen)) continue
                        if (c[k] > bv) { bv = c[k]; best = kk[2] } }
                    if (best == "") break
                    seen[best] = 1; line = line best ":" bv ","; m++ }
                print line } }' "$f"
done
