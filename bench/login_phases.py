#!/usr/bin/env python3
"""login_phases.py MARKS N PERF_SCRIPT_TXT... -- helper of `login_cpu_split.sh PHASES=1`.

MARKS: lines "PHASE EPOCH_SECONDS" written by the script when each phase starts ("end" closes
the last). Each PERF_SCRIPT_TXT is `perf script -F pid,tid,comm,time,ip,sym,dso` of one
`perf record -e cpu-clock -c 50000 -k realtime -p PID` (file name phases-COMM-PID.txt): every
sample is 50 us of CPU of that process or of a descendant. Prints, per process kind (the
recorded process itself, or its children by their comm) and phase, the CPU per login (ms; N
logins) and its kernel share, then the top symbols of each bin.
"""
import collections
import os
import re
import sys

PERIOD_MS = 0.05
LINE = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def main():
    marks_file, n = sys.argv[1], max(int(sys.argv[2]), 1)
    marks = []
    with open(marks_file) as f:
        for line in f:
            name, t = line.split()
            marks.append((float(t), name))
    marks.sort()
    starts = [t for t, _ in marks]
    cpu = collections.Counter()
    kern = collections.Counter()
    syms = collections.defaultdict(collections.Counter)
    for path in sys.argv[3:]:
        m = re.match(r"phases-(.*)-(\d+)\.txt$", os.path.basename(path))
        if not m:
            continue
        root_comm, root_pid = m.group(1), m.group(2)
        with open(path, errors="replace") as f:
            for line in f:
                s = LINE.match(line)
                if not s:
                    continue
                comm, pid, _tid, t, ip, sym, dso = s.groups()
                t = float(t)
                # Which phase: the last mark at or before the sample.
                i = bisect_right(starts, t) - 1
                if i < 0 or marks[i][1] == "end":
                    phase = "outside"
                else:
                    phase = marks[i][1]
                kind = root_comm if pid == root_pid else "child:" + comm.strip()
                key = (kind, phase)
                cpu[key] += 1
                if ip.startswith("ffff"):
                    kern[key] += 1
                syms[key][sym if sym != "[unknown]" else "[" + os.path.basename(dso) + "]"] += 1
    total = collections.Counter()
    print("PHASE kind phase ms_per_login kernel_pct")
    for (kind, phase), c in sorted(cpu.items()):
        total[phase] += c
        print("PHASE %s %s %.3f %.0f" % (kind, phase, c * PERIOD_MS / n, 100.0 * kern[(kind, phase)] / c))
    for phase, c in sorted(total.items()):
        print("PHASE all %s %.3f" % (phase, c * PERIOD_MS / n))
    print("PHASE all total %.3f" % (sum(total.values()) * PERIOD_MS / n))
    for key, c in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if c * PERIOD_MS / n < 0.05:
            continue
        top = ", ".join("%s %.0f%%" % (s, 100.0 * k / c) for s, k in syms[key].most_common(8))
        print("TOP %s/%s: %s" % (key[0], key[1], top))


def bisect_right(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


if __name__ == "__main__":
    main()
