#!/usr/bin/env bash
# Run every fuzz target of proto/fuzz for a bounded time: FUZZ_SECONDS each (default 15), under
# AddressSanitizer, on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags).
# Called by tests/run-all.sh; also usable alone, e.g. `FUZZ_SECONDS=300 tests/fuzz.sh lzs_decompress`.
#
# The committed corpus (proto/fuzz/corpus/<target>, plus proto/fuzz/regressions/<target> when
# present) is read only: libFuzzer writes new inputs into the first corpus directory it is
# given, which here is a scratch directory removed at exit. A crash, leak, timeout (an input
# running over 10 s) or a run over the time guard fails the script after every target has run,
# and prints the reproducer, which libFuzzer leaves in proto/fuzz/artifacts/<target>/ (ignored by
# git). Needs cargo-fuzz (`cargo install --locked cargo-fuzz@0.13.2`, as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/../proto"

seconds=${FUZZ_SECONDS:-15}
# Startup and cargo's (no-op) rebuild check fit in a minute beyond the fuzzing time.
guard=$((seconds + 60))
# libFuzzer runs one process per target: as many targets at once as there are cores (the same
# time for each target, half the wall time on CI's 2 cores). FUZZ_JOBS overrides.
jobs=${FUZZ_JOBS:-$(nproc)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1

command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz is missing: cargo install --locked cargo-fuzz@0.13.2" >&2
    exit 1
}
# cargo fuzz has no --locked: insist here that fuzz/Cargo.lock needs no update.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

export RUSTC_BOOTSTRAP=1
cargo fuzz build -s address

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rocserv-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
stamp="$scratch/.start"
touch "$stamp"

# One target's run; its exit status goes to $scratch/<target>.status, the pid of its `timeout`
# (which leads a process group of its own and passes a TERM on to the fuzzer) to .pid.
run_one() {
    local target=$1 status=0
    local seeds=("fuzz/corpus/$target")
    [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
    timeout --kill-after=10 "$guard" \
        cargo fuzz run -s address "$target" "$scratch/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1 &
    echo "$!" >"$scratch/$target.pid"
    wait "$!" || status=$?
    echo "$status" >"$scratch/$target.status"
}
# Interrupted: end the fuzzers still running, not only this script.
stop_runs() {
    local f
    for f in "$scratch"/*.pid; do
        [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
    done
    wait
}
trap 'stop_runs; exit 130' INT TERM

for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_one "$target" &
done
wait

# Reported in the targets' order, whatever order they finished in.
failed=()
for target in "${targets[@]}"; do
    log="$scratch/$target.log"
    status=$(cat "$scratch/$target.status" 2>/dev/null || echo "no status")
    if [ "$status" = 0 ]; then
        runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1 || true)
        echo "fuzz $target: ok (${runs:-no summary line})"
        continue
    fi
    failed+=("$target")
    echo "fuzz $target: FAILED (exit status $status$([ "$status" = 124 ] && echo ': over the time guard'))" >&2
    tail -n 60 "$log" >&2
    found=0
    while IFS= read -r artifact; do
        found=1
        echo "fuzz $target: reproducer $PWD/$artifact" >&2
        echo "  replay: cd proto && RUSTC_BOOTSTRAP=1 cargo fuzz run -s address $target $artifact" >&2
        echo "  once fixed, keep it as a replayed regression: cp it to proto/fuzz/regressions/$target/" >&2
    done < <(find "fuzz/artifacts/$target" -type f -newer "$stamp")
    [ "$found" = 1 ] || echo "fuzz $target: no reproducer file was written (see the log above)" >&2
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, $jobs at a time, no findings"
