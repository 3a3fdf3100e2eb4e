"""RTMP ingest and playback with real clients: ffmpeg publishes, ffprobe
plays over HTTP-FLV and RTMP, the JSON API reports the stream; bad input
closes only the session that sent it."""
import http.client
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import Oborod

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"


def publish(d, name, size="1280x720", rate=30, extra_key="", wait=True, duration=None):
    """Start ffmpeg publishing testsrc2 + sine as H.264/AAC to d; returns
    the Popen (in its own process group)."""
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=%s:rate=%d" % (size, rate),
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    if duration:
        cmd += ["-t", str(duration)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(rate),
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            "-f", "flv", "rtmp://127.0.0.1:%d/live/%s%s" % (d.rtmp_port, name, extra_key)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    harness._live.append(p)
    if wait:
        wait_stream(d, name)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in harness._live:
        harness._live.remove(p)


def wait_stream(d, name, timeout=15, packets=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = d.http_json("/api/streams/" + name)
        if status == 200 and body["packets_in"] >= packets:
            return body
        time.sleep(0.1)
    raise AssertionError("stream %s never came up:\n%s" % (name, d.log_text()[-3000:]))


def probe(url, timeout=20):
    r = subprocess.run([FFPROBE, "-hide_banner", "-v", "error", "-show_entries",
                        "stream=codec_type,codec_name,width,height", "-of", "json", url],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("ffprobe %s failed: %s" % (url, r.stderr.decode()))
    return {s["codec_type"]: s for s in json.loads(r.stdout)["streams"]}


def rtmp_connect(d):
    s = socket.create_connection(("127.0.0.1", d.rtmp_port), timeout=5)
    return s


def closed_by_peer(s, timeout=5.0):
    """True when the server closes the socket (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def simple_handshake(s):
    s.sendall(b"\x03" + b"\x00" * 1536)
    got = b""
    while len(got) < 1 + 2 * 1536:
        b = s.recv(8192)
        if not b:
            raise AssertionError("closed during handshake")
        got += b
    s.sendall(got[1:1 + 1536])  # C2 = S1


def read_video_ts(resp, count):
    """Read FLV tags from an HTTP response until count video frames
    (not sequence headers) have passed; return their timestamps."""
    out = []
    while len(out) < count:
        h = resp.read(11)
        assert len(h) == 11, "stream ended"
        size = int.from_bytes(h[1:4], "big")
        body = resp.read(size)
        resp.read(4)
        if h[0] == 9 and size > 1 and body[1] == 1:
            out.append(int.from_bytes(h[4:7], "big") | (h[7] << 24))
    return out


def chunk0(csid, ts, mtype, msid, payload):
    return (bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big") +
            bytes([mtype]) + struct.pack("<I", msid) + payload)


class RtmpPlaybackTest(unittest.TestCase):
    """One daemon and one 720p30 publisher for the playback checks."""

    @classmethod
    def setUpClass(cls):
        cls.d = Oborod()
        cls.pub = publish(cls.d, "main")

    @classmethod
    def tearDownClass(cls):
        stop(cls.pub)
        cls.d.close()

    def test_http_flv_probe(self):
        s = probe(self.d.url("/live/main.flv"))
        self.assertEqual(s["video"]["codec_name"], "h264")
        self.assertEqual((s["video"]["width"], s["video"]["height"]), (1280, 720))
        self.assertEqual(s["audio"]["codec_name"], "aac")

    def test_rtmp_play_probe(self):
        # ffprobe checks the digest S1/S2 of the handshake when it plays
        s = probe("rtmp://127.0.0.1:%d/live/main" % self.d.rtmp_port)
        self.assertEqual(s["video"]["codec_name"], "h264")
        self.assertEqual((s["video"]["width"], s["video"]["height"]), (1280, 720))
        self.assertEqual(s["audio"]["codec_name"], "aac")

    def test_five_seconds_no_gaps(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "copy.flv")
            r = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
                                "-i", self.d.url("/live/main.flv"), "-t", "5", "-c", "copy",
                                "-y", out], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries",
                                "packet=dts,flags", "-of", "csv=p=0", out],
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = [l.split(",") for l in r.stdout.decode().split() if l]
            dts = [int(x[0]) for x in rows]
            self.assertTrue(rows[0][1].startswith("K"), "the copy starts at a keyframe")
            # 5 s at 30 fps, whatever the cut: 150 frames, one either side
            self.assertGreaterEqual(len(dts), 149)
            self.assertLessEqual(len(dts), 151)
            gaps = [b - a for a, b in zip(dts, dts[1:])]
            self.assertTrue(all(30 <= g <= 37 for g in gaps), gaps)

    def test_api_streams(self):
        status, body = self.d.http_json("/api/streams")
        self.assertEqual(status, 200)
        st = [s for s in body["streams"] if s["name"] == "main"][0]
        self.assertEqual(st["app"], "live")
        self.assertEqual(st["source"], "push")
        self.assertEqual(st["video"]["codec"], "h264")
        self.assertEqual((st["video"]["width"], st["video"]["height"]), (1280, 720))
        self.assertEqual(st["audio"]["codec"], "aac")
        self.assertTrue(st["publishing"])
        self.assertIn("flv", st["viewers"])
        status, one = self.d.http_json("/api/streams/main")
        self.assertEqual(status, 200)
        self.assertEqual(one["name"], "main")
        status, _, _ = self.d.http_get("/api/streams/nope")
        self.assertEqual(status, 404)

    def test_viewer_counted_and_cors(self):
        req = urllib.request.Request(self.d.url("/live/main.flv"))
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.headers["Content-Type"], "video/x-flv")
            self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")
            head = r.read(13)
            self.assertEqual(head[:3], b"FLV")
            self.assertEqual(head[4], 5)  # audio and video
            _, one = self.d.http_json("/api/streams/main")
            self.assertEqual(one["viewers"]["flv"], 1)
            _, _, m = self.d.http_get("/metrics")
            self.assertIn('oboro_hub_viewers{proto="flv"} 1', m.decode())

    def test_merged_writes_only_under_load(self):
        """A stream that costs the loop next to nothing writes every read to
        its viewers at once (lowest latency); viewer-merge-load 0 forces
        merged writes, and back at the default the stream, measured while
        merged, returns to per-read writes."""
        def stream():
            return self.d.http_json("/api/streams/main")[1]

        def wait_merged(want):
            deadline = time.time() + 10
            while time.time() < deadline:
                st = stream()
                if st["merged"] == want:
                    return st
                time.sleep(0.1)
            self.fail("merged never became %s: %s" % (want, st))

        def metric(name):
            for line in self.d.http_get("/metrics")[2].decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            self.fail("no metric " + name)

        switches = metric("oboro_hub_merge_switches_total")
        with urllib.request.urlopen(self.d.url("/live/main.flv"), timeout=10) as r:
            r.read(13)
            time.sleep(1.5)   # longer than the hub's one-second window
            st = stream()
            self.assertFalse(st["merged"], st)
            self.assertLess(st["fanout_load_pct"], 10)
            self.assertEqual(metric("oboro_hub_merged_streams"), 0)
            self.assertEqual(metric("oboro_hub_merge_switches_total"), switches)
            try:
                self.assertIn(b"OK", self.d.redis_cli("CONFIG", "SET", "viewer-merge-load", "0").stdout)
                wait_merged(True)
                self.assertEqual(metric("oboro_hub_merged_streams"), 1)
                r.read(65536)   # still playing
                # merged writes are well-formed for new viewers of both kinds
                s = probe(self.d.url("/live/main.flv"))
                self.assertEqual((s["video"]["codec_name"], s["audio"]["codec_name"]), ("h264", "aac"))
                s = probe("rtmp://127.0.0.1:%d/live/main" % self.d.rtmp_port)
                self.assertEqual((s["video"]["width"], s["audio"]["codec_name"]), (1280, "aac"))
                # ... and lose nothing: held packets keep their order
                with urllib.request.urlopen(self.d.url("/live/main.flv"), timeout=10) as r2:
                    r2.read(13)
                    dts = read_video_ts(r2, 60)
                gaps = [b - a for a, b in zip(dts, dts[1:])]
                self.assertTrue(all(30 <= g <= 37 for g in gaps), gaps)
                self.assertTrue(stream()["merged"])
            finally:
                self.d.redis_cli("CONFIG", "SET", "viewer-merge-load", "10")
            wait_merged(False)
            self.assertEqual(metric("oboro_hub_merged_streams"), 0)
            self.assertEqual(metric("oboro_hub_merge_switches_total"), switches + 2)
            r.read(65536)

    def test_http10_close_delimited(self):
        s = socket.create_connection(("127.0.0.1", self.d.http_port), timeout=10)
        s.sendall(b"GET /live/main.flv HTTP/1.0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 20:
            data += s.recv(4096)
        s.close()
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head)
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(body[:3], b"FLV")

    def test_unknown_stream_404(self):
        status, headers, _ = self.d.http_get("/live/none.flv")
        self.assertEqual(status, 404)
        r = subprocess.run([FFPROBE, "-v", "error", "rtmp://127.0.0.1:%d/live/none" % self.d.rtmp_port],
                           capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("NetStream.Play.StreamNotFound", self.d.log_text())

    def test_second_publisher_refused(self):
        p = publish(self.d, "main", size="160x120", wait=False)
        try:
            p.wait(timeout=15)
        finally:
            stop(p)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("NetStream.Publish.BadName", self.d.log_text())
        # the first publisher is unaffected
        before = self.d.http_json("/api/streams/main")[1]["packets_in"]
        time.sleep(0.5)
        self.assertGreater(self.d.http_json("/api/streams/main")[1]["packets_in"], before)

    def test_bad_input_closes_only_that_session(self):
        cases = []
        s = rtmp_connect(self.d)          # wrong C0
        s.sendall(b"\x06" + os.urandom(1536))
        cases.append(("wrong C0", s))
        s = rtmp_connect(self.d)          # HTTP on the RTMP port
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        cases.append(("http", s))
        s = rtmp_connect(self.d)          # oversized message
        simple_handshake(s)
        s.sendall(chunk0(3, 0, 20, 0, b"")[:4] + (0xFFFFF0).to_bytes(3, "big") + b"\x14\x00\x00\x00\x00")
        cases.append(("oversized", s))
        s = rtmp_connect(self.d)          # invalid AMF
        simple_handshake(s)
        s.sendall(chunk0(3, 0, 20, 0, b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\x11"))
        cases.append(("bad amf", s))
        s = rtmp_connect(self.d)          # publish before connect
        simple_handshake(s)
        s.sendall(chunk0(3, 0, 20, 0, b"\x02\x00\x07publish\x00\x40\x00\x00\x00\x00\x00\x00\x00\x05"
                                      b"\x02\x00\x01x"))
        cases.append(("out of order", s))
        s = rtmp_connect(self.d)          # random bytes after a good handshake
        simple_handshake(s)
        s.sendall(os.urandom(4096))
        cases.append(("random", s))
        for what, s in cases:
            self.assertTrue(closed_by_peer(s), what)
            s.close()
        # the publisher kept publishing and playback still works
        before = self.d.http_json("/api/streams/main")[1]["packets_in"]
        time.sleep(0.3)
        self.assertGreater(self.d.http_json("/api/streams/main")[1]["packets_in"], before)
        self.assertEqual(self.d.http_get("/healthz")[0], 200)


class RtmpSessionTest(unittest.TestCase):
    def test_handshake_timeout(self):
        with Oborod(args=["--rtmp-handshake-timeout-ms", "300"]) as d:
            s = rtmp_connect(d)
            s.sendall(b"\x03" + b"\x00" * 100)  # never finishes C1
            t0 = time.time()
            self.assertTrue(closed_by_peer(s, timeout=5))
            self.assertLess(time.time() - t0, 4)
            s.close()
            self.assertIn("timed out", d.log_text())

    def test_publish_secret(self):
        import hashlib
        import hmac
        secret = "s3cret"
        with Oborod(args=["--publish-secret", secret]) as d:
            p = publish(d, "paid", size="160x120", wait=False)
            p.wait(timeout=15)
            stop(p)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("NetStream.Publish.Unauthorized", d.log_text())
            exp = int(time.time()) - 10
            sig = hmac.new(secret.encode(), ("paid:%d" % exp).encode(), hashlib.sha256).hexdigest()
            p = publish(d, "paid", size="160x120", extra_key="?exp=%d&sig=%s" % (exp, sig), wait=False)
            p.wait(timeout=15)
            stop(p)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("expired", d.log_text())
            exp = int(time.time()) + 600
            sig = hmac.new(secret.encode(), ("paid:%d" % exp).encode(), hashlib.sha256).hexdigest()
            p = publish(d, "paid", size="160x120", extra_key="?exp=%d&sig=%s&blur=1" % (exp, sig))
            try:
                status, st = d.http_json("/api/streams/paid")
                self.assertEqual(status, 200)
                self.assertEqual(st["options"], "blur=1")
            finally:
                stop(p)

    def test_republish_within_grace_keeps_viewer(self):
        with Oborod(args=["--publish-grace-ms", "8000"]) as d:
            p = publish(d, "re", size="320x240")
            conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
            conn.request("GET", "/live/re.flv")
            r = conn.getresponse()
            self.assertEqual(r.read(13)[:3], b"FLV")
            before = read_video_ts(r, 30)
            stop(p)
            time.sleep(0.5)
            status, st = d.http_json("/api/streams/re")
            self.assertEqual(status, 200)
            self.assertFalse(st["publishing"])
            self.assertEqual(st["viewers"]["flv"], 1)
            p = publish(d, "re", size="320x240")
            try:
                # the same response goes on with the new publisher's frames, on
                # one timeline: its timestamps never go back
                after = read_video_ts(r, 60)
                ts = before + after
                self.assertTrue(all(b >= a for a, b in zip(ts, ts[1:])), ts)
                self.assertGreater(ts[-1], before[-1])
            finally:
                stop(p)
                conn.close()

    def test_grace_over_ends_viewer_cleanly(self):
        with Oborod(args=["--publish-grace-ms", "300"]) as d:
            p = publish(d, "end", size="160x120")
            with urllib.request.urlopen(d.url("/live/end.flv"), timeout=10) as r:
                r.read(1000)
                stop(p)
                t0 = time.time()
                rest = r.read()  # returns at the clean end of the chunked body
                self.assertLess(time.time() - t0, 8)
            self.assertEqual(d.http_get("/live/end.flv")[0], 404)

    def test_slow_viewer_does_not_grow_memory(self):
        with Oborod(args=["--viewer-queue-bytes", "65536", "--viewer-queue-ms", "1500"]) as d:
            p = publish(d, "slow", size="640x360")
            try:
                v = socket.socket()
                v.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                v.connect(("127.0.0.1", d.http_port))
                v.sendall(b"GET /live/slow.flv HTTP/1.1\r\nHost: x\r\n\r\n")
                # never read: the queue must stay bounded, then the viewer is cut
                peak = 0
                deadline = time.time() + 20
                kicked = False
                while time.time() < deadline:
                    _, mem = d.http_json("/debug/memory")
                    peak = max(peak, mem["tags"]["hub.packets"]["bytes"])
                    _, _, m = d.http_get("/metrics")
                    if "oboro_hub_slow_viewers_disconnected_total 1" in m.decode():
                        kicked = True
                        break
                    time.sleep(0.2)
                v.close()
                self.assertTrue(kicked, "slow viewer never disconnected")
                self.assertIn("viewer too slow", d.log_text())
                _, st = d.http_json("/api/streams/slow")
                self.assertGreater(st["dropped"], 0)
                # the GOP cache (1 s of 640x360) plus the bounded queue
                self.assertLess(peak, 8 << 20)
            finally:
                stop(p)


if __name__ == "__main__":
    harness.main()
