#!/usr/bin/env python3
"""latency_split.py CAPTURE PORTS: where the time of each ping went, from a tcpdump taken in the
server namespace (`tcpdump -i any -tt -n`, see latency_soak.sh TRACE=1).

For each echo request seen on the server's tun device: `in` = from the victim's last datagram or
TLS segment with payload that reached the veth before it, to the request leaving the worker into
the tun device (decrypt + the worker's wake-up); `out` = from the echo reply on the tun device to
the victim's first datagram or segment with payload leaving the veth after it (the worker's wake-up
+ encrypt). `server` = in + kernel echo handling + out. PORTS: the victim's client ports
(comma-separated), so another user's traffic is not counted. Prints one line of percentiles (ms).
"""
import bisect
import re
import sys

ECHO = re.compile(r"^(\d+\.\d+) (\S+) +(In|Out) +IP \S+ > \S+: ICMP echo (request|reply), id \d+, seq (\d+)")
WIRE = re.compile(r"^(\d+\.\d+) (\S+) +(In|Out) +IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): .*length (\d+)")


def pct(vals, p):
    if not vals:
        return float("nan")
    vals = sorted(vals)
    r = max(1, -(-len(vals) * p // 100))
    return vals[min(len(vals), int(r)) - 1]


def main():
    path, ports = sys.argv[1], {int(p) for p in sys.argv[2].split(",") if p}
    req, rep, rx, tx = {}, {}, [], []
    with open(path, errors="replace") as f:
        for line in f:
            m = ECHO.match(line)
            if m:
                (req if m.group(4) == "request" else rep)[int(m.group(5))] = float(m.group(1))
                continue
            m = WIRE.match(line)
            if not m or int(m.group(8)) == 0:
                continue
            t, sport, dport = float(m.group(1)), int(m.group(5)), int(m.group(7))
            if sport in ports and dport == 443:
                rx.append(t)
            elif sport == 443 and dport in ports:
                tx.append(t)
    rx.sort()
    tx.sort()
    ins, outs, tot = [], [], []
    for seq, t in req.items():
        r = rep.get(seq)
        i = bisect.bisect_right(rx, t) - 1
        o = bisect.bisect_left(tx, r) if r is not None else len(tx)
        if r is None or i < 0 or o >= len(tx):
            continue
        a, b = (t - rx[i]) * 1e3, (tx[o] - r) * 1e3
        ins.append(a)
        outs.append(b)
        tot.append((tx[o] - rx[i]) * 1e3)
    line = f"pings={len(tot)}"
    for name, v in (("in", ins), ("out", outs), ("server", tot)):
        for p in (50, 99, 99.9):
            line += f" {name}_p{str(p).replace('.', '')}_ms={pct(v, p):.3f}"
        line += f" {name}_max_ms={max(v) if v else float('nan'):.3f}"
    print(line)


if __name__ == "__main__":
    main()
