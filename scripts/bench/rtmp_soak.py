#!/usr/bin/python3
"""Memory over time while publishing: ffmpeg publishes 720p30 H.264 + AAC
to oborod, some HTTP-FLV viewers come and go, and every interval the
daemon's RSS and live bytes per tag are printed; at the end, the growth
between the first and the last third of the run.

    scripts/bench/rtmp_soak.py [--minutes 60] [--interval 10] [--viewers 50]

Needs a built oborod (build/cmd/oborod) and ffmpeg; 127.0.0.1 only."""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(__file__))
from rtmp_fanout import OBOROD, ROOT, cleanup, free_port, get_json, procs, spawn, wait_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--viewers", type=int, default=50)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="oboro-soak-rtmp-")
    try:
        tool = os.path.join(tmp, "viewers")
        subprocess.run(["cc", "-O2", "-o", tool, os.path.join(ROOT, "scripts", "bench", "rtmp_flv_viewers.c")],
                       check=True)
        rtmp, http_port, resp, raft = free_port(), free_port(), free_port(), free_port()
        spawn([OBOROD, "--port", str(resp), "--rtmp-port", str(rtmp), "--http-port", str(http_port),
               "--raft-port", str(raft), "--dir", os.path.join(tmp, "data"), "--loglevel", "warning"],
              stdout=open(os.path.join(tmp, "oborod.log"), "w"), stderr=subprocess.STDOUT, cwd=tmp)
        wait_port(rtmp)
        # encode once, then publish it in a loop without re-encoding, so
        # the soak costs little CPU on a shared machine
        src = os.path.join(tmp, "src.flv")
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine", "-t", "20",
                        "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "2000k",
                        "-c:a", "aac", "-y", src], check=True)
        spawn(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", src,
               "-c", "copy", "-f", "flv", "rtmp://127.0.0.1:%d/live/soak" % rtmp],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        end = time.time() + args.minutes * 60
        rows = []
        print("%8s %12s %12s %12s %12s" % ("seconds", "rss_private", "hub.packets", "flv.tags", "rtmp.conn"))
        t0 = time.time()
        while time.time() < end:
            # viewers come and go: each batch watches for one interval
            v = subprocess.Popen([tool, "flv", "127.0.0.1", str(http_port), "soak", str(args.viewers),
                                  "0", str(max(1, args.interval - 1))],
                                 stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            procs.append(v)
            time.sleep(args.interval)
            v.wait()
            m = get_json(http_port, "/debug/memory")
            row = (time.time() - t0, m["rss_private"], m["tags"]["hub.packets"]["bytes"],
                   m["tags"]["flv.tags"]["bytes"], m["tags"]["rtmp.conn"]["bytes"])
            rows.append(row)
            print("%8.0f %12d %12d %12d %12d" % row, flush=True)
        third = max(1, len(rows) // 3)
        first = sum(r[1] for r in rows[:third]) / third
        last = sum(r[1] for r in rows[-third:]) / third
        print("# rss_private, mean of the first third %.1f MiB, of the last third %.1f MiB (%+.1f%%)"
              % (first / 2**20, last / 2**20, 100 * (last - first) / first))
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
