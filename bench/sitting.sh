#!/bin/bash
# sitting.sh — one back-to-back sitting of ocserv against this build (issue 12's figures), every
# part one after the other on an otherwise idle machine. Run as root from anywhere.
#
#   bench/sitting.sh OUTDIR [PART ...]      PART: shared startup storm idle soak (default: all)
#
# shared:  ../shared/bench/run_all.sh (RUNS=3 DURATION=8) for ocserv then rocserv, on a copy of
#          the harness whose ocserv.conf gets `use-utmp = false` and `max-pre-auth-per-ip = 0`
#          (its 50 logins come from one address; ocserv warns about the option it does not know).
# startup: bench/startup.sh (9 starts each).   storm: bench/login_storm.sh N=500, each server.
# idle:    bench/idle_sessions.sh N=1000 IDLE=30.   soak: bench/latency_soak.sh 2 runs x 10 s.
# About 35 minutes. Env: SHARED_BENCH [../shared/bench], BIN_DIR [target/release].
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
OUT=${1:?usage: bench/sitting.sh OUTDIR [PART ...]}; shift
PARTS=${*:-shared startup storm idle soak}
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
B=$(cd "${BIN_DIR:-$REPO/target/release}" && pwd)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
cd "$REPO"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$OUT/sitting.log"; }
# The package ships a static-pie worker (dist/static-worker.sh); say which one this sitting runs.
if ! headers=$(LC_ALL=C readelf -hlW "$B/rocserv-worker" 2>/dev/null); then
    log "worker: cannot tell how it is linked (readelf missing?)"
elif grep -q INTERP <<< "$headers"; then
    log "worker: dynamically linked (the package's is a static PIE: dist/static-worker.sh)"
elif grep -Eq '^ *Type: *DYN' <<< "$headers"; then
    log "worker: static PIE, as the package ships it"
else
    log "worker: static, NOT position-independent (not what the package ships)"
fi
for p in $PARTS; do
    case $p in
    shared)
        copy=$(mktemp -d /tmp/sitting-bench.XXXXXX)
        cp -a "$SHARED_BENCH"/. "$copy"/
        printf 'use-utmp = false\nmax-pre-auth-per-ip = 0\n' >> "$copy/ocserv.conf"
        log "shared bench: ocserv"
        (cd "$copy" && RUNS=3 DURATION=8 flock /tmp/bench.lock ./run_all.sh -n sitting-ocserv > "$OUT/shared-ocserv.out" 2>&1)
        log "shared bench: rocserv"
        (cd "$copy" && RUNS=3 DURATION=8 flock /tmp/bench.lock ./run_all.sh -n sitting-rocserv "$B/rocserv -f -c {conf}" > "$OUT/shared-rocserv.out" 2>&1)
        cp "$copy"/results/sitting-* "$OUT"/ 2>/dev/null
        (cd "$copy" && ./compare.sh results/sitting-ocserv.txt results/sitting-rocserv.txt > "$OUT/shared-compare.txt" 2>&1)
        ;;
    startup)
        log "startup"; RUNS=9 SHARED_BENCH=$SHARED_BENCH BIN_DIR=$B bench/startup.sh > "$OUT/startup.out" 2>&1 ;;
    storm)
        log "storm 500: ocserv"
        N=500 RUNS=1 TIMEOUT=300 SHARED_BENCH=$SHARED_BENCH bench/login_storm.sh -n ocserv-500 "ocserv -f -d 1 -c {conf}" > "$OUT/storm-ocserv.out" 2>&1
        log "storm 500: rocserv"
        N=500 RUNS=1 TIMEOUT=300 SHARED_BENCH=$SHARED_BENCH bench/login_storm.sh -n rocserv-500 "$B/rocserv -f -c {conf}" > "$OUT/storm-rocserv.out" 2>&1 ;;
    idle)
        log "idle 1000"; N=1000 IDLE=30 PAR=20 SHARED_BENCH=$SHARED_BENCH BIN_DIR=$B bench/idle_sessions.sh rocserv ocserv > "$OUT/idle.out" 2>&1 ;;
    soak)
        log "latency soak"
        RUNS=2 DURATION=10 SHARED_BENCH=$SHARED_BENCH bench/latency_soak.sh "ocserv=ocserv -f -d 1 -c {conf}" "rocserv=$B/rocserv -f -c {conf}" > "$OUT/soak.out" 2>&1 ;;
    *) echo "unknown part: $p" >&2; exit 2 ;;
    esac
done
log "done"
grep -h "^STARTUP\|^STORM\|^IDLE\|^SUMMARY" "$OUT"/*.out 2>/dev/null
