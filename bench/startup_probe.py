#!/usr/bin/env python3
"""startup_probe.py: helper of bench/startup.sh (issue 12, item 3).

Starts each server command in turn (alternating, RUNS rounds) inside the server namespace and
measures, from the moment before the exec:
  listen_ms  the TCP port is in LISTEN state in that namespace (/proc/PID/net/tcp{,6} of the
             server's own PID, read every POLL_MS: no fork per poll, no connection made);
  login_ms   the first `openconnect --authenticate` from the client namespace that succeeds
             (the first attempt starts at once, a refused one is retried after RETRY_MS);
  warm_login_ms  one more such login right after (not from exec): the client's and a login's
             own time, to subtract from login_ms to see what the start costs a user.
Then stops the server (SIGTERM, then SIGKILL of whatever is left in the namespace, by PID).

Environment: SRV_NS, CLI_NS, PORT [443], SERVER_URL, PIN, USER_ [test1], PASS [pass], RUNS [9],
POLL_MS [1], RETRY_MS [5], LOGIN [1] (0: listening only), LOG_DIR.
Arguments: NAME=CMD ... (CMD already has {conf} substituted, split with shlex).
Output: one `RUN` line per start and one `STARTUP` line per server (medians).
"""

import os
import shlex
import signal
import statistics
import subprocess
import sys
import time

SRV_NS = os.environ["SRV_NS"]
CLI_NS = os.environ["CLI_NS"]
PORT = int(os.environ.get("PORT", "443"))
URL = os.environ.get("SERVER_URL", "https://10.99.0.1:443/")
PIN = os.environ["PIN"]
USER = os.environ.get("USER_", "test1")
PASS = os.environ.get("PASS", "pass")
RUNS = int(os.environ.get("RUNS", "9"))
POLL = float(os.environ.get("POLL_MS", "1")) / 1000
RETRY = float(os.environ.get("RETRY_MS", "5")) / 1000
LOGIN = os.environ.get("LOGIN", "1") == "1"
LOG_DIR = os.environ.get("LOG_DIR", "/tmp")
TIMEOUT = 20.0


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


NS_INO = ns_inode(f"/run/netns/{SRV_NS}")
PORT_HEX = f":{PORT:04X}"


def listening(pid):
    """True once PID is in the server namespace and a socket listens on PORT there."""
    if ns_inode(f"/proc/{pid}/ns/net") != NS_INO:
        return False  # `ip netns exec` has not entered the namespace yet
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    # local_address ends with :PORT; st 0A = LISTEN
                    if fields[1].endswith(PORT_HEX) and fields[3] == "0A":
                        return True
        except OSError:
            return False
    return False


def ns_pids(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for p in ns_pids(SRV_NS):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(100):
        if not ns_pids(SRV_NS):
            break
        time.sleep(0.02)


def login_once():
    r = subprocess.run(
        ["ip", "netns", "exec", CLI_NS, "openconnect", "--protocol=anyconnect", "--authenticate",
         f"--user={USER}", "--passwd-on-stdin", "--non-inter", f"--servercert={PIN}", URL],
        input=PASS + "\n", capture_output=True, text=True, timeout=TIMEOUT)
    return r.returncode == 0 and "COOKIE=" in r.stdout


def one_start(name, argv, i):
    log = open(os.path.join(LOG_DIR, f"server-{name}-{i}.log"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(["ip", "netns", "exec", SRV_NS] + argv, stdout=log,
                            stderr=subprocess.STDOUT)
    listen_ms = login_ms = warm_ms = None
    attempts = 0
    try:
        while time.monotonic() - t0 < TIMEOUT:
            if listening(proc.pid):
                listen_ms = (time.monotonic() - t0) * 1000
                break
            if proc.poll() is not None:
                break
            time.sleep(POLL)
        if listen_ms is not None and LOGIN:
            while time.monotonic() - t0 < TIMEOUT and proc.poll() is None:
                attempts += 1
                if login_once():
                    login_ms = (time.monotonic() - t0) * 1000
                    break
                time.sleep(RETRY)
        if login_ms is not None:
            # the same login on the started server: what the client and a login cost anyway
            t1 = time.monotonic()
            if login_once():
                warm_ms = (time.monotonic() - t1) * 1000
    finally:
        stop(proc)
        log.close()
    return listen_ms, login_ms, warm_ms, attempts


def fmt(v):
    return "fail" if v is None else f"{v:.1f}"


def main():
    servers = []
    for arg in sys.argv[1:]:
        name, _, cmd = arg.partition("=")
        servers.append((name, shlex.split(cmd)))
    res = {name: ([], [], []) for name, _ in servers}
    for i in range(RUNS):
        # alternate the order each round, so that neither server always runs right after the
        # other one's teardown
        order = servers if i % 2 == 0 else list(reversed(servers))
        for name, argv in order:
            listen_ms, login_ms, warm_ms, attempts = one_start(name, argv, i)
            print(f"RUN server={name} i={i} listen_ms={fmt(listen_ms)} login_ms={fmt(login_ms)} "
                  f"warm_login_ms={fmt(warm_ms)} login_attempts={attempts}", flush=True)
            if listen_ms is not None:
                res[name][0].append(listen_ms)
            if login_ms is not None:
                res[name][1].append(login_ms)
            if warm_ms is not None:
                res[name][2].append(warm_ms)
            time.sleep(0.2)
    for name, _ in servers:
        lis, log, warm = res[name]
        med = lambda xs: f"{statistics.median(xs):.1f}" if xs else "fail"
        rng = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}" if xs else "-"
        print(f"STARTUP server={name} runs={RUNS} listen_ms={med(lis)} ({rng(lis)}) "
              f"login_ms={med(log)} ({rng(log)}) warm_login_ms={med(warm)} failed_listen={RUNS - len(lis)} "
              f"failed_login={(RUNS - len(log)) if LOGIN else 0}", flush=True)


if __name__ == "__main__":
    main()
