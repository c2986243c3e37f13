#!/usr/bin/env python3
"""smaps_by_mapping.py PID... -- memory of processes per mapping, averaged over the PIDs.

For each mapping (keyed by file name or [heap]/[stack]/anon, its permissions and its rank among
the mappings of that name, so that the same layout lines up across PIDs of one binary) prints the
mean Size, Rss, Pss, Private_Dirty, Anonymous, and Zero: the resident pages of a writable
private mapping that hold only zero bytes (/proc/PID/pagemap and /proc/PID/mem: memory that was
touched, or zero-filled, and never used). Totals at the end. Used by idle_sessions.sh (SMAPS=1)
on the workers; any PIDs will do (run as root).
"""
import collections
import os
import sys


PAGE = os.sysconf("SC_PAGE_SIZE")


def zero_kb(pid, lo, hi):
    """kB of present pages in [lo, hi) of process `pid` that are all zero bytes."""
    zero = 0
    blank = bytes(PAGE)
    with open(f"/proc/{pid}/pagemap", "rb") as pm, open(f"/proc/{pid}/mem", "rb") as mem:
        pm.seek(lo // PAGE * 8)
        entries = pm.read((hi - lo) // PAGE * 8)
        for i in range(len(entries) // 8):
            entry = int.from_bytes(entries[i * 8 : i * 8 + 8], "little")
            if entry >> 63 & 1:  # present in RAM
                mem.seek(lo + i * PAGE)
                if mem.read(PAGE) == blank:
                    zero += PAGE // 1024
    return zero


def mappings(pid):
    """Yields (key, {field: kB}) per mapping of one process."""
    rank = collections.Counter()
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                if cur:
                    yield cur
                perms = parts[1]
                name = parts[5] if len(parts) > 5 else "anon"
                name = os.path.basename(name) if name.startswith("/") else name
                rank[(name, perms)] += 1
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                key = f"{name} {perms} #{rank[(name, perms)]}"
                cur = (key, {"Size": (hi - lo) // 1024})
                if perms[1] == "w" and perms[3] == "p":
                    try:
                        cur[1]["Zero"] = zero_kb(pid, lo, hi)
                    except OSError:
                        pass
            elif cur and line.rstrip().endswith("kB"):
                cur[1][parts[0].rstrip(":")] = int(parts[1])
        if cur:
            yield cur


def main():
    pids = sys.argv[1:]
    if not pids:
        sys.exit(__doc__)
    fields = ["Size", "Rss", "Pss", "Private_Dirty", "Anonymous", "Zero"]
    sums = collections.defaultdict(lambda: collections.Counter())
    order = []
    n = 0
    for pid in pids:
        try:
            maps = list(mappings(pid))
        except OSError:
            continue
        n += 1
        for key, vals in maps:
            if key not in sums:
                order.append(key)
            for fld in fields:
                sums[key][fld] += vals.get(fld, 0)
    if n == 0:
        sys.exit("no readable PID")
    print(f"# mean over {n} processes, kB")
    print(f"{'mapping':44} " + " ".join(f"{f:>13}" for f in fields))
    total = collections.Counter()
    for key in order:
        row = sums[key]
        for fld in fields:
            total[fld] += row[fld]
        if row["Rss"] == 0 and row["Private_Dirty"] == 0:
            continue
        print(f"{key:44} " + " ".join(f"{row[f] / n:13.1f}" for f in fields))
    print(f"{'TOTAL':44} " + " ".join(f"{total[f] / n:13.1f}" for f in fields))


if __name__ == "__main__":
    main()
