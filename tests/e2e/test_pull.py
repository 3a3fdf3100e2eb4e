"""Pull ingest against a real origin: nginx with libnginx-mod-rtmp, fed by
ffmpeg. oborod pulls on demand when a viewer asks (HTTP-FLV, RTMP play),
stops when the viewers are gone, survives an origin restart with the
viewer attached and its timestamps monotonic, reports bad origins with one
line and a status, and 100 start/stop cycles leave memory where it was."""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Oborod, free_port

NGINX_CONF = """load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            idle_streams off;
        }}
    }}
}}
"""


class Origin:
    """nginx-rtmp on a loopback port (kept across restart()), killed at
    close() whatever happens."""

    def __init__(self, port=None):
        self.tmp = tempfile.mkdtemp(prefix="oboro-origin-")
        self.port = port or free_port()
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port))
        self.proc = None
        self.pubs = []
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-c", self.conf, "-p", self.tmp],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        harness._live.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    def url(self, name):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.port, name)

    def publish(self, name, gop=25):
        """ffmpeg publishing a small H.264/AAC test stream to name."""
        p = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(gop),
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", self.url(name)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        harness._live.append(p)
        self.pubs.append(p)
        return p

    def kill(self):
        for p in self.pubs + [self.proc]:
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            if p is not None:
                p.wait()
                if p in harness._live:
                    harness._live.remove(p)
        self.pubs = []

    def close(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_for(pred, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def probe(url, timeout=20):
    r = subprocess.run(["ffprobe", "-hide_banner", "-v", "error", "-show_entries",
                        "stream=codec_type,codec_name,width,height", "-of", "json", url],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("ffprobe %s failed: %s" % (url, r.stderr.decode()))
    return {s["codec_type"]: s for s in json.loads(r.stdout)["streams"]}


def streams(d):
    status, body = d.http_json("/api/streams")
    assert status == 200
    return {s["app"] + "/" + s["name"]: s for s in body["streams"]}


def metric(d, name):
    _, _, body = d.http_get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class FlvReader(threading.Thread):
    """An HTTP-FLV viewer on a socket: counts bytes and checks that tag
    timestamps never go backwards per track."""

    def __init__(self, d, name):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", d.http_port), timeout=20)
        self.sock.sendall(b"GET /live/%s.flv HTTP/1.0\r\n\r\n" % name.encode())
        self.status = None
        self.bytes = 0
        self.tags = 0
        self.keyframes = 0
        self.backwards = []
        self.eof = False
        self.stop_flag = False
        self.start()

    def run(self):
        buf = b""
        last = {8: -1, 9: -1}
        try:
            while b"\r\n\r\n" not in buf:
                d = self.sock.recv(65536)
                if not d:
                    self.eof = not self.stop_flag
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            self.status = int(head.split()[1])
            if self.status != 200:
                return
            off = 13
            while not self.stop_flag:
                while len(buf) < off + 11:
                    d = self.sock.recv(65536)
                    if not d:
                        self.eof = not self.stop_flag
                        return
                    buf += d
                    self.bytes += len(d)
                t = buf[off]
                n = int.from_bytes(buf[off + 1:off + 4], "big")
                ts = int.from_bytes(buf[off + 4:off + 7], "big") | (buf[off + 7] << 24)
                while len(buf) < off + 11 + n + 4:
                    d = self.sock.recv(65536)
                    if not d:
                        self.eof = not self.stop_flag
                        return
                    buf += d
                    self.bytes += len(d)
                if t in last:
                    if ts < last[t]:
                        self.backwards.append((t, last[t], ts))
                    last[t] = ts
                if t == 9 and buf[off + 11] >> 4 == 1:
                    self.keyframes += 1
                self.tags += 1
                buf = buf[off + 11 + n + 4:]
                off = 0
        except OSError:
            self.eof = not self.stop_flag

    def close(self):
        self.stop_flag = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.join(5)


class OnDemandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.origin.publish("cam1")
        cls.origin.publish("cam2")
        cls.d = Oborod(args=["--pull", "live/cyc* %s" % cls.origin.url("cam1"),
                             "--pull", "live/* %s" % cls.origin.url("$name"),
                             "--pull-idle-ms", "300", "--pull-workers", "2"])
        time.sleep(1.0)   # the publishers reach nginx

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.close()
        finally:
            cls.origin.close()

    def test_1_http_flv_viewer_starts_pull(self):
        self.assertNotIn("live/cam1", streams(self.d))
        s = probe(self.d.url("/live/cam1.flv"))
        self.assertEqual(s["video"]["codec_name"], "h264")
        self.assertEqual((s["video"]["width"], s["video"]["height"]), (320, 240))
        self.assertEqual(s["audio"]["codec_name"], "aac")
        self.assertIn('msg="on-demand start" stream=live/cam1', self.d.log_text())

    def test_1b_llhls_viewer_starts_pull(self):
        # live/cyc* pulls the origin's cam1 under any name that matches
        s = probe(self.d.url("/live/cychls/index.m3u8"))
        self.assertEqual(s["video"]["codec_name"], "h264")
        self.assertEqual((s["video"]["width"], s["video"]["height"]), (320, 240))
        self.assertEqual(s["audio"]["codec_name"], "aac")
        self.assertIn('msg="on-demand start" stream=live/cychls', self.d.log_text())
        status, _, _ = self.d.http_get("/live/nosuch2/index.m3u8", timeout=20)
        self.assertEqual(status, 404)

    def test_2_api_and_idle_stop(self):
        r = FlvReader(self.d, "cam1")
        try:
            wait_for(lambda: r.keyframes >= 1, what="a keyframe")
            st = streams(self.d)["live/cam1"]
            self.assertEqual(st["source"], "pull")
            self.assertEqual(st["pull"]["url"], self.origin.url("cam1"))
            self.assertEqual(st["pull"]["state"], "live")
            self.assertEqual(st["pull"]["mode"], "on-demand")
            self.assertEqual(st["video"]["codec"], "h264")
            self.assertGreaterEqual(st["viewers"]["flv"], 1)
            self.assertGreaterEqual(metric(self.d, "oboro_pull_live"), 1)
        finally:
            r.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.backwards, [])
        # no viewer for pull-idle-ms: the pull stops and the stream is gone
        wait_for(lambda: "live/cam1" not in streams(self.d), what="idle stop")
        self.assertIn('msg="pull stopped" stream=live/cam1 reason="no viewers"', self.d.log_text())

    def test_3_rtmp_play_starts_pull(self):
        s = probe("rtmp://127.0.0.1:%d/live/cam2" % self.d.rtmp_port)
        self.assertEqual(s["video"]["codec_name"], "h264")
        self.assertEqual(s["audio"]["codec_name"], "aac")

    def test_4_origin_without_stream_is_404(self):
        status, _, body = self.d.http_get("/live/nosuch.flv", timeout=20)
        self.assertEqual(status, 404, body)
        self.assertIn("stream=live/nosuch", self.d.log_text())
        self.assertNotIn("live/nosuch", streams(self.d))
        # an invalid name never reaches an origin URL
        status, _, _ = self.d.http_get("/live/..%2f..%2fx.flv")
        self.assertEqual(status, 404)

    def test_5_start_stop_cycles_leave_memory_where_it_was(self):
        def tags():
            _, body = self.d.http_json("/debug/memory")
            return {k: body["tags"][k]["bytes"] for k in ("ingest", "hub.streams", "hub.packets", "flv.tags")}

        errors = []

        def cycles(k, n):
            for _ in range(n):
                r = FlvReader(self.d, "cyc%d" % k)
                try:
                    wait_for(lambda: r.keyframes >= 1 or r.eof, timeout=20, what="keyframe")
                    if r.keyframes < 1:
                        errors.append("cyc%d: no keyframe (status %s)" % (k, r.status))
                finally:
                    r.close()
                wait_for(lambda: "live/cyc%d" % k not in streams(self.d), what="stop")

        def run(n):
            threads = [threading.Thread(target=cycles, args=(k, n)) for k in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            # the workers' last messages are handled at the next loop turn
            wait_for(lambda: not any(k.startswith("live/cyc") for k in streams(self.d)),
                     what="quiet")
            time.sleep(0.3)

        run(1)   # the worker pool grows to 10 threads once
        before = tags()
        stopped = self.d.log_text().count('msg="pull stopped" stream=live/cyc')
        run(10)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(self.d.log_text().count('msg="pull stopped" stream=live/cyc'),
                                stopped + 100)
        after = {}

        def same():
            after.update(tags())
            return after == before
        try:
            wait_for(same, timeout=10, what="memory back")
        except AssertionError:
            self.fail("live bytes per tag before %s, after %s" % (before, after))


class AlwaysOnTest(unittest.TestCase):
    def test_always_on_runs_without_viewers(self):
        origin = Origin()
        try:
            origin.publish("cam3")
            with Oborod(args=["--pull", "tv/boot %s always" % origin.url("cam3"),
                              "--pull-idle-ms", "300"]) as d:
                self.check(d)
        finally:
            origin.close()

    def check(self, d):
        def live():
            st = streams(d).get("tv/boot")
            return st if st and st["publishing"] and st["packets_in"] > 50 else None

        st = wait_for(live, what="the always-on pull")
        self.assertEqual(st["pull"]["mode"], "always")
        self.assertEqual(st["viewers"]["total"], 0)
        time.sleep(0.6)   # twice pull-idle-ms: an always-on pull does not idle out
        self.assertTrue(streams(d)["tv/boot"]["publishing"])
        s = probe("rtmp://127.0.0.1:%d/tv/boot" % d.rtmp_port)
        self.assertEqual(s["video"]["codec_name"], "h264")


class LibavformatRtmpTest(unittest.TestCase):
    """rtmp:// through libavformat on a worker thread instead of the native
    client (pull-rtmp-client libavformat): same behaviour."""

    def test_pull_through_worker(self):
        origin = Origin()
        try:
            origin.publish("w1")
            time.sleep(0.8)
            with Oborod(args=["--pull", "live/* %s" % origin.url("$name"),
                              "--pull-rtmp-client", "libavformat", "--pull-idle-ms", "300"]) as d:
                s = probe(d.url("/live/w1.flv"))
                self.assertEqual(s["video"]["codec_name"], "h264")
                self.assertEqual(s["audio"]["codec_name"], "aac")
                self.assertIn("video=h264 audio=aac", d.log_text())
                status, _, _ = d.http_get("/live/nosuch.flv", timeout=20)
                self.assertEqual(status, 404)
                wait_for(lambda: not streams(d), what="idle stop")
                self.assertGreaterEqual(metric(d, "oboro_pull_workers"), 1)
        finally:
            origin.close()


class RelayTest(unittest.TestCase):
    """One oborod relays from another over RTMP play (the next hop of a
    shard): ffmpeg publishes to the first, the second pulls on demand, a
    viewer of the second gets the stream; with both pull clients."""

    def test_oborod_relays_from_oborod(self):
        from test_rtmp import publish, stop
        with Oborod() as first:
            pub = publish(first, "relay", size="320x240", rate=15)
            try:
                wait_for(lambda: "live/relay" in streams(first), what="publish on the first")
                url = "rtmp://127.0.0.1:%d/live/$name" % first.rtmp_port
                for client in ("native", "libavformat"):
                    with Oborod(args=["--pull", "live/* %s on-demand" % url,
                                      "--pull-rtmp-client", client,
                                      "--pull-idle-ms", "300"]) as second:
                        s = probe(second.url("/live/relay.flv"))
                        self.assertEqual(s["video"]["codec_name"], "h264")
                        self.assertEqual((s["video"]["width"], s["video"]["height"]), (320, 240))
                        self.assertEqual(s["audio"]["codec_name"], "aac")
                        self.assertEqual(streams(second)["live/relay"]["source"], "pull")
                        # the second node is an RTMP player of the first
                        st = streams(first)["live/relay"]
                        self.assertGreaterEqual(st["viewers"]["rtmp"], 1, st)
                        wait_for(lambda: not streams(second), what="idle stop on the second")
            finally:
                stop(pub)


class OriginOutageTest(unittest.TestCase):
    def test_origin_restart_resumes_viewer(self):
        origin = Origin()
        try:
            origin.publish("live1", gop=12)
            time.sleep(0.8)
            with Oborod(args=["--pull", "live/* %s" % origin.url("$name"),
                              "--publish-grace-ms", "20000", "--pull-timeout-ms", "2000"]) as d:
                r = FlvReader(d, "live1")
                try:
                    wait_for(lambda: r.keyframes >= 2, what="frames before the outage")
                    origin.kill()
                    wait_for(lambda: 'msg="origin lost" stream=live/live1' in d.log_text(),
                             what="loss detected")
                    st = streams(d)["live/live1"]
                    self.assertIn(st["pull"]["state"], ("backoff", "connecting"))
                    self.assertNotEqual(st["pull"]["last_error"], "")
                    self.assertEqual(st["viewers"]["flv"], 1)
                    seen = r.keyframes
                    origin.start()
                    origin.publish("live1", gop=12)
                    wait_for(lambda: r.keyframes >= seen + 3, timeout=30, what="frames after restart")
                    st = streams(d)["live/live1"]
                    self.assertEqual(st["pull"]["state"], "live")
                    self.assertGreaterEqual(st["pull"]["reconnects"], 1)
                    self.assertGreaterEqual(metric(d, "oboro_pull_reconnects_total"), 1)
                finally:
                    r.close()
                self.assertFalse(r.eof, "the viewer was dropped during the outage")
                self.assertEqual(r.backwards, [])
        finally:
            origin.close()


class QuietHTTPServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass   # oborod closing a connection early is expected


class BadOriginTest(unittest.TestCase):
    """Unreachable, 404, garbage and an unsupported codec: one warning line
    each, a status, no crash."""

    @classmethod
    def setUpClass(cls):
        cls.www = tempfile.mkdtemp(prefix="oboro-www-")
        with open(os.path.join(cls.www, "garbage.flv"), "wb") as f:
            f.write(os.urandom(200000))
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
                        "-i", "testsrc2=size=160x120:rate=10", "-t", "3", "-c:v", "flv1",
                        "-f", "flv", os.path.join(cls.www, "sorenson.flv")], check=True, timeout=60)
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=cls.www, **k)
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        cls.httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
        cls.hport = cls.httpd.server_address[1]
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()
        dead = free_port()
        base = "http://127.0.0.1:%d" % cls.hport
        # an origin that accepts and never answers
        cls.silent = socket.socket()
        cls.silent.bind(("127.0.0.1", 0))
        cls.silent.listen(64)
        cls.d = Oborod(args=["--pull", "live/silent* rtmp://127.0.0.1:%d/live/$name"
                             % cls.silent.getsockname()[1],
                             "--pull", "live/* %s/$name.flv" % base,
                             "--pull-start-timeout-ms", "1500", "--pull-timeout-ms", "3000",
                             "--pull", "tv/down rtmp://127.0.0.1:%d/live/x always" % dead,
                             "--pull-idle-ms", "200"])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.close()
        finally:
            cls.silent.close()
            cls.httpd.shutdown()
            cls.httpd.server_close()
            shutil.rmtree(cls.www, ignore_errors=True)

    def failed_line(self, name):
        lines = [l for l in self.d.log_text().splitlines()
                 if 'msg="pull failed"' in l and "stream=live/%s " % name in l]
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def test_http_404(self):
        status, _, _ = self.d.http_get("/live/missing.flv", timeout=20)
        self.assertEqual(status, 404)
        self.assertIn("404", self.failed_line("missing"))

    def test_garbage(self):
        status, _, _ = self.d.http_get("/live/garbage.flv", timeout=20)
        self.assertEqual(status, 404)
        self.failed_line("garbage")

    def test_unsupported_codec(self):
        status, _, _ = self.d.http_get("/live/sorenson.flv", timeout=20)
        self.assertEqual(status, 404)
        self.assertIn("unsupported video codec flv1", self.failed_line("sorenson"))

    def test_unreachable_always_on_retries_with_status(self):
        def down():
            st = streams(self.d).get("tv/down")
            return st if st and st["pull"]["reconnects"] >= 1 and st["pull"]["last_error"] else None

        st = wait_for(down, timeout=15, what="a reconnect of the always-on pull")
        self.assertEqual(st["source"], "pull")
        self.assertEqual(st["pull"]["mode"], "always")
        self.assertFalse(st["publishing"])
        self.assertIn("cannot connect to origin", st["pull"]["last_error"])
        self.assertEqual(self.d.proc.poll(), None)

    def test_silent_origin_times_out_and_leaving_viewers_are_forgotten(self):
        # viewers that give up while the pull starts
        for _ in range(5):
            c = socket.create_connection(("127.0.0.1", self.d.http_port))
            c.sendall(b"GET /live/silent1.flv HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
            c.close()
        # one that waits gets 504 after pull-start-timeout-ms
        status, _, body = self.d.http_get("/live/silent1.flv", timeout=20)
        self.assertEqual(status, 504, body)
        st = streams(self.d)["live/silent1"]
        self.assertEqual(st["pull"]["state"], "connecting")
        # an RTMP player waiting the same way is refused, not left hanging
        r = subprocess.run(["ffprobe", "-v", "error", "rtmp://127.0.0.1:%d/live/silent2"
                            % self.d.rtmp_port], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("stream did not start in time", self.d.log_text())
        # nobody waits any more: the pull stops, its worker interrupted
        wait_for(lambda: "live/silent1" not in streams(self.d), timeout=20, what="idle stop")
        self.assertIn('msg="pull stopped" stream=live/silent1 reason="no viewers"',
                      self.d.log_text())
        self.assertIsNone(self.d.proc.poll())

    def test_bad_rule_refused_at_start(self):
        code, _, err = harness.run_oborod(["--pull", "live rtmp://x/y", "--port", "0",
                                           "--rtmp-port", "0", "--http-port", "0",
                                           "--dir", tempfile.gettempdir() + "/oboro-bad-rule"])
        self.assertEqual(code, 2)
        self.assertIn("pull 'live rtmp://x/y': pattern must be APP/NAME", err)


if __name__ == "__main__":
    harness.main()
