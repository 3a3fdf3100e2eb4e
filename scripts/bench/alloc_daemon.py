#!/usr/bin/python3
"""Daemon-level memory benchmark: oborod against Debian's redis-server
(jemalloc) on the same workload, side by side.

    scripts/bench/alloc_daemon.py [--keys N]

For each server: SET N keys (default 600,000) of 300 bytes, DEL a random
90%, wait up to 15 s for the figures to settle (oborod compacts and purges
on its own; Redis gets MEMORY PURGE), then FLUSHALL and measure how long
anonymous RSS takes to come back within 5 MB of the empty server's. Prints
used_memory, private RSS (smaps_rollup Private_Clean + Private_Dirty),
anonymous RSS (RssAnon of /proc/PID/status: the heap and stacks, without
the pages of library code that only this process happens to map) and
their ratios to used_memory. Needs build/cmd/oborod (allocator=arena) and redis-server.
Takes about a minute."""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("OBORO_BIN", os.path.join(ROOT, "build", "cmd", "oborod"))

import redis  # noqa: E402

import harness  # noqa: E402

MB = 1024 * 1024


def private_rss(pid):
    total = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def anon_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def used_memory(r):
    return int(r.info("memory")["used_memory"])


def workload(name, r, pid, nkeys, purge):
    time.sleep(0.5)
    empty, empty_anon = private_rss(pid), anon_rss(pid)
    value = b"v" * 300
    pipe = r.pipeline(transaction=False)
    for i in range(nkeys):
        pipe.set(b"key:%07d" % i, value)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    full_used, full_rss, full_anon = used_memory(r), private_rss(pid), anon_rss(pid)
    rng = random.Random(7)
    for i in range(nkeys):
        if rng.random() < 0.9:
            pipe.delete(b"key:%07d" % i)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    # let the server settle: oborod compacts in 1 ms slices every 100 ms
    best = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        purge(r)
        used, rss, anon = used_memory(r), private_rss(pid), anon_rss(pid)
        if best is None or rss < best[1]:
            best = (used, rss, anon)
        if rss <= 1.2 * used + 2 * MB:
            break
        time.sleep(0.5)
    r.flushall()
    t0 = time.monotonic()
    back = None
    while time.monotonic() - t0 < 5:
        purge(r)
        # anonymous RSS: pages shared with a snapshot child for a moment
        # are not private, but they are still ours
        if anon_rss(pid) <= empty_anon + 5 * MB:
            back = time.monotonic() - t0
            break
        time.sleep(0.02)
    return {"name": name, "empty": empty, "empty_anon": empty_anon, "full_used": full_used,
            "full_rss": full_rss, "full_anon": full_anon, "used": best[0], "rss": best[1],
            "anon": best[2], "back": back, "after_flush": private_rss(pid),
            "after_flush_anon": anon_rss(pid)}


def oborod_run(nkeys):
    with harness.Oborod() as d:
        r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=60)
        try:
            return workload("oborod", r, d.proc.pid, nkeys, lambda r: None)
        finally:
            r.close()


def redis_run(nkeys):
    tmp = tempfile.mkdtemp(prefix="oboro-bench-")
    port = harness.free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", tmp],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=60)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        res = workload("redis-server", r, p.pid, nkeys,
                       lambda r: r.execute_command("MEMORY", "PURGE"))
        res["name"] += " " + r.info("server")["redis_version"]
        r.close()
        return res
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=600000)
    a = ap.parse_args()
    rows = [oborod_run(a.keys), redis_run(a.keys)]
    print("%d SETs of 300 B, random 90%% DEL, then FLUSHALL" % a.keys)
    print("%-32s %12s %12s %8s %12s %9s" % ("", "used_memory", "private RSS", "RSS/used",
                                            "anon RSS", "anon/used"))
    for x in rows:
        for label, used, rss, anon in (("empty", None, x["empty"], x["empty_anon"]),
                                       ("full", x["full_used"], x["full_rss"], x["full_anon"]),
                                       ("after 90% DEL", x["used"], x["rss"], x["anon"])):
            if used is None:
                print("%-32s %12s %10.1fMB %8s %10.1fMB %9s" % (x["name"] + " " + label, "",
                                                                rss / MB, "", anon / MB, ""))
                continue
            print("%-32s %10.1fMB %10.1fMB %8.2f %10.1fMB %9.2f" % (
                x["name"] + " " + label, used / MB, rss / MB, rss / used, anon / MB, anon / used))
    for x in rows:
        print("%s FLUSHALL: private RSS %.1f MB -> %.1f MB (empty server %.1f MB), "
              "anon RSS %.1f MB -> %.1f MB (empty %.1f MB), %s" % (
            x["name"], x["rss"] / MB, x["after_flush"] / MB, x["empty"] / MB,
            x["anon"] / MB, x["after_flush_anon"] / MB, x["empty_anon"] / MB,
            "within 5 MB of empty after %.2f s" % x["back"] if x["back"] is not None
            else "not within 5 MB of empty in 5 s"))

if __name__ == "__main__":
    main()
