#!/usr/bin/python3
"""LL-HLS benchmark: one ffmpeg encode of a 30 fps H.264/AAC test signal
(1 s GOP) is published to oborod and to nginx-rtmp (Debian nginx +
libnginx-mod-rtmp, `hls on; hls_fragment 1s`) in the same run, and:

1. hls.js in headless Chromium (tests/browser/play.mjs) plays each for
   --play seconds; reported: hls.js live latency (distance to the
   playlist's live edge), how stale the newest media of a freshly fetched
   playlist is (edge lag: publisher clock minus the end of the newest
   listed media), and their sum, the end-to-end estimate; stalls.
2. oborod's own histogram of the time from a part's creation to the
   release of requests held for it (oboro_llhls_block_release_seconds).
3. N simulated LL-HLS viewers (blocking reload for the next part, then that
   part, on keep-alive connections, like hls.js) for --measure seconds per
   level: oborod's CPU, whether the viewers kept up, and viewers per core
   (N / cores used).

    scripts/bench/llhls_latency.py [--play 20] [--levels 100,300,1000] [--measure 6]
                                   [--part-ms 200] [--tuned '{"liveSyncDuration": 0.4}' ...]

hls.js runs with its defaults plus lowLatencyMode (it then aims at the
playlist's PART-HOLD-BACK); --tuned adds a row for oborod with those hls.js
settings laid over them, labelled as such (repeat it for several rows).

Needs a built oborod (build/cmd/oborod), ffmpeg, nginx, libnginx-mod-rtmp,
chromium, node and tests/browser/node_modules (scripts/test installs
them). Uses only 127.0.0.1 and temporary files; cleans up its processes.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import cleanup, cpu_seconds, free_port, spawn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OBOROD = os.environ.get("OBORO_BIN", os.path.join(ROOT, "build", "cmd", "oborod"))
PLAY = os.path.join(ROOT, "tests", "browser", "play.mjs")


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_url(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return get(url, timeout=5)
        except OSError:
            time.sleep(0.3)
    raise SystemExit("no answer from %s" % url)


def nginx_conf(tmp, rtmp_port, http_port):
    hls = os.path.join(tmp, "hls")
    os.makedirs(hls)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log warn;
events { worker_connections 1024; }
rtmp {
    server {
        listen 127.0.0.1:%(rtmp)d;
        application live {
            live on;
            hls on;
            hls_path %(hls)s;
            hls_fragment 1s;
            hls_playlist_length 6s;
            hls_fragment_naming timestamp;
        }
    }
}
http {
    access_log off;
    client_body_temp_path %(tmp)s;
    proxy_temp_path %(tmp)s;
    fastcgi_temp_path %(tmp)s;
    uwsgi_temp_path %(tmp)s;
    scgi_temp_path %(tmp)s;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    server {
        listen 127.0.0.1:%(http)d;
        location /hls/ {
            alias %(hls)s/;
            add_header Access-Control-Allow-Origin *;
            add_header Cache-Control no-cache;
        }
    }
}
""" % {"tmp": tmp, "hls": hls, "rtmp": rtmp_port, "http": http_port})
    return conf


def pdt_seconds(stamp):
    t = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return t + float("0" + stamp[19:23])


def media_end_oborod(pl):
    """Wall clock (by PROGRAM-DATE-TIME) of the end of the newest listed
    part."""
    last = pl.split("#EXT-X-PROGRAM-DATE-TIME:")[-1]
    t = pdt_seconds(last.split("\n", 1)[0])
    rest = last.split("\n", 1)[1]
    extinf = re.findall(r"#EXTINF:([\d.]+),", rest)
    tail = rest.split("#EXTINF:")[-1].split("\n", 2)[-1] if extinf else rest
    media = (float(extinf[-1]) if extinf else 0.0) + \
        sum(float(x) for x in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", tail))
    return t + media


def edge_lag_oborod(url, t0, pdt0):
    """Seconds between the publisher's clock and the end of the newest
    listed part: its media time is its PROGRAM-DATE-TIME minus that of
    segment 1 (media time 0)."""
    pl = get(url)
    now = time.time()
    return (now - t0) - (media_end_oborod(pl) - pdt0)


def edge_lag_nginx(url, t0):
    """Seconds between the publisher's clock and the end of the newest
    fragment (hls_fragment_naming timestamp: named by its first 90 kHz
    timestamp)."""
    pl = get(url)
    now = time.time()
    frags = re.findall(r"#EXTINF:([\d.]+),\n[^\n]*?(\d+)\.ts", pl)
    dur, ts = frags[-1]
    return (now - t0) - (int(ts) / 90000.0 + float(dur))


def play(url, seconds, config=None):
    r = subprocess.run(["node", PLAY, url, str(seconds)] + ([config] if config else []),
                       capture_output=True,
                       timeout=seconds + 120, stdin=subprocess.DEVNULL,
                       cwd=os.path.dirname(PLAY))
    if r.returncode != 0:
        raise SystemExit("play.mjs failed: " + r.stderr.decode()[-2000:])
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def histogram(metrics_text, name):
    buckets = []
    count = total = 0.0
    for line in metrics_text.splitlines():
        m = re.match(r'%s_bucket\{le="([^"]+)"\} (\d+)' % name, line)
        if m:
            buckets.append((m.group(1), float(m.group(2))))
        elif line.startswith(name + "_count "):
            count = float(line.split()[1])
        elif line.startswith(name + "_sum "):
            total = float(line.split()[1])
    return buckets, count, total


# ---- simulated LL-HLS viewers -------------------------------------------

HINT = re.compile(rb'PRELOAD-HINT:TYPE=PART,URI="p(\d+)\.(\d+)\.m4s"')


async def request(reader, writer, path):
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    m = re.search(rb"Content-Length: (\d+)", head)
    if m:
        body = await reader.readexactly(int(m.group(1)))
    else:  # chunked
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return status, body


async def viewer(port, name, stop_at, stats, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    base = "/live/%s/" % name
    try:
        status, pl = await request(reader, writer, base + "index.m3u8?sid=v%d" % i)
        m = HINT.search(pl)
        msn, part = int(m.group(1)), int(m.group(2))
        while time.time() < stop_at:
            status, pl = await request(reader, writer,
                                       base + "index.m3u8?sid=v%d&_HLS_msn=%d&_HLS_part=%d"
                                       % (i, msn, part))
            if status != 200:
                stats["errors"] += 1
                continue
            stats["playlists"] += 1
            status, body = await request(reader, writer, base + "p%d.%d.m4s" % (msn, part))
            if status == 200:
                stats["parts"] += 1
                stats["bytes"] += len(body)
            else:
                stats["missed"] += 1
            m = HINT.search(pl)
            msn, part = int(m.group(1)), int(m.group(2))
        stats["last"].append((msn, part))
    finally:
        writer.close()


async def viewers(port, name, n, seconds):
    stats = {"playlists": 0, "parts": 0, "bytes": 0, "errors": 0, "missed": 0, "last": []}
    stop_at = time.time() + seconds
    await asyncio.gather(*(viewer(port, name, stop_at, stats, i) for i in range(n)))
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--play", type=int, default=20)
    ap.add_argument("--levels", default="100,300,1000")
    ap.add_argument("--measure", type=int, default=6)
    ap.add_argument("--part-ms", type=int, default=200, help="oborod's llhls-part-ms")
    ap.add_argument("--tuned", action="append", default=[],
                    help="hls.js settings (JSON) for an extra oborod row; may be repeated")
    args = ap.parse_args()
    for tool in ("ffmpeg", "nginx", "node", "/usr/bin/chromium"):
        if not shutil.which(tool):
            raise SystemExit("missing %s" % tool)
    tmp = tempfile.mkdtemp(prefix="oboro-bench-llhls-")
    try:
        o_rtmp, o_http, n_rtmp, n_http = free_port(), free_port(), free_port(), free_port()
        od = spawn([OBOROD, "--port", str(free_port()), "--rtmp-port", str(o_rtmp),
                    "--http-port", str(o_http), "--raft-port", str(free_port()),
                    "--dir", os.path.join(tmp, "data"), "--loglevel", "warning",
                    "--llhls-segment-ms", "1000", "--llhls-part-ms", str(args.part_ms)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        spawn(["nginx", "-c", nginx_conf(tmp, n_rtmp, n_http), "-p", tmp],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        t0 = time.time()
        spawn(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
               "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
               "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-flags", "+global_header",
               "-map", "0:v", "-map", "1:a",
               "-f", "tee",
               "[f=flv:onfail=ignore]rtmp://127.0.0.1:%d/live/cam|"
               "[f=flv:onfail=ignore]rtmp://127.0.0.1:%d/live/cam" % (o_rtmp, n_rtmp)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        o_url = "http://127.0.0.1:%d/live/cam/master.m3u8" % o_http
        o_media = "http://127.0.0.1:%d/live/cam/index.m3u8" % o_http
        n_url = "http://127.0.0.1:%d/hls/cam.m3u8" % n_http
        first = wait_url(o_media)
        # media time 0 of oborod's timeline: segment 1's PROGRAM-DATE-TIME
        pdt0 = pdt_seconds(re.search(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", first).group(1))
        wait_url(n_url)
        time.sleep(4)  # nginx needs a few fragments before a player starts

        print("== player latency, hls.js in headless Chromium, %d s each, same stream" % args.play)
        rows = []
        o_lag = lambda: edge_lag_oborod(o_media, t0, pdt0)
        runs = [("oborod LL-HLS (%d ms parts)" % args.part_ms, o_url, o_lag, None)]
        for i, config in enumerate(args.tuned):
            runs.append(("oborod, hls.js tuned #%d" % (i + 1), o_url, o_lag, config))
        runs.append(("nginx-rtmp HLS (hls_fragment 1s)", n_url, lambda: edge_lag_nginx(n_url, t0),
                     None))
        for label, url, lag, config in runs:
            rep = play(url, args.play, config)
            lags = [lag() for _ in range(10) if time.sleep(0.37) is None]
            lat = statistics.median(rep["latency"]) if rep["latency"] else float("nan")
            rows.append((label, lat, statistics.median(lags), rep))
        print("%-34s %12s %12s %12s %7s %7s %13s %9s" % (
            "server", "hls.js lat", "edge lag", "end-to-end", "stalls", "played",
            "lat min-max", "startup"))
        for label, lat, lag, rep in rows:
            lats = rep["latency"] or [float("nan")]
            print("%-34s %11.3fs %11.3fs %11.3fs %7d %6.1fs %6.2f-%4.2fs %8.2fs" % (
                label, lat, lag, lat + lag, rep["stalls"] + rep["waiting"], rep["played"],
                min(lats), max(lats), (rep["started_after_ms"] or float("nan")) / 1000))
        for i, config in enumerate(args.tuned):
            rep = rows[1 + i][3]
            print("hls.js tuned #%d: %s (target latency at the end %.3f s, top playback rate %.2f)"
                  % (i + 1, config, rep["target_latency"] or 0, rep["max_rate"]))
        print("hls.js default target latency (PART-HOLD-BACK): %.3f s" % (
            rows[0][3]["target_latency"] or 0))
        print("ratio nginx-rtmp / oborod end-to-end latency: %.1fx" % (
            (rows[-1][1] + rows[-1][2]) / (rows[0][1] + rows[0][2])))

        print("\n== part creation -> release of requests held for it (oborod, during playback)")
        buckets, count, total = histogram(get("http://127.0.0.1:%d/metrics" % o_http),
                                          "oboro_llhls_block_release_seconds")
        if count:
            print("held requests released: %d, mean %.3f ms" % (count, total / count * 1000))
            for le, c in buckets:
                print("  <= %-6s s: %5.1f%%" % (le, 100.0 * c / count))

        print("\n== simulated LL-HLS viewers of one stream (blocking reload + part, keep-alive)")
        print("%8s %10s %10s %12s %10s %10s %14s" % ("viewers", "cpu cores", "parts/s", "MB/s out",
                                                  "at edge", "served", "viewers/core"))
        for n in [int(x) for x in args.levels.split(",") if x]:
            c0, w0 = cpu_seconds(od.pid), time.time()
            stats = asyncio.run(viewers(o_http, "cam", n, args.measure))
            cores = (cpu_seconds(od.pid) - c0) / (time.time() - w0)
            # a viewer kept up when, at the end, it waits for the part the
            # server hints (or already has it)
            pl = get("http://127.0.0.1:%d/live/cam/index.m3u8" % o_http).encode()
            durs = [float(x) for x in re.findall(rb"#EXT-X-PART:DURATION=([\d.]+)", pl)]
            part_rate = len(durs) / sum(durs)  # parts per second a viewer needs
            m = HINT.search(pl)
            edge = (int(m.group(1)), int(m.group(2)))
            kept = sum(1 for x in stats["last"] if x >= edge or
                       (x[0] == edge[0] and x[1] + 1 == edge[1])) / float(n)
            # the client shares the machine: count the viewers actually served
            # in full (parts delivered / parts a viewer needs) per core used
            served = stats["parts"] / args.measure / part_rate
            print("%8d %10.3f %10.0f %12.1f %9.0f%% %10.0f %14.0f" % (
                n, cores, stats["parts"] / args.measure, stats["bytes"] / args.measure / 1e6,
                100 * kept, served, served / cores if cores > 0 else float("inf")))
            if stats["errors"] or stats["missed"]:
                print("         errors %d, missed parts %d" % (stats["errors"], stats["missed"]))
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
