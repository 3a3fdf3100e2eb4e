"""LL-HLS end to end: ffmpeg publishes over RTMP, ffprobe and ffmpeg read
/live/NAME/index.m3u8, and plain HTTP checks blocking playlist reload,
_HLS_msn alone, delta updates, the preload hint, the fMP4 boxes and the
HTTP behaviour (types, caching, CORS)."""
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import Oborod

HINT_RE = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p(\d+)\.(\d+)\.m4s"')


def publish(d, name, seconds=None, size="640x360"):
    """ffmpeg publishing a 30 fps H.264 + AAC test signal, one key frame
    per second, in its own process group."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=%s:rate=30" % size,
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    if seconds:
        cmd += ["-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            "-f", "flv", "rtmp://127.0.0.1:%d/live/%s" % (d.rtmp_port, name)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    harness._live.append(p)
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


def segments(pl):
    return re.findall(r"^s(\d+)\.m4s$", pl, re.M)


class LLHLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Oborod(args=["--llhls-segment-ms", "1000", "--llhls-part-ms", "200"])
        cls.pub = publish(cls.d, "cam")
        cls.base = "/live/cam/"
        # the first plain request is held until the first part exists
        deadline = time.time() + 20
        while time.time() < deadline:
            status, _, _ = cls.d.http_get(cls.base + "index.m3u8")
            if status == 200:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no playlist:\n" + cls.d.log_text()[-3000:])

    @classmethod
    def tearDownClass(cls):
        stop(cls.pub)
        cls.d.close()

    def get(self, path, timeout=10):
        return self.d.http_get(self.base + path, timeout=timeout)

    def playlist(self, query=""):
        status, headers, body = self.get("index.m3u8" + query)
        self.assertEqual(status, 200, body)
        return body.decode()

    def wait_segments(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pl = self.playlist()
            if len(segments(pl)) >= n:
                return pl
            time.sleep(0.2)
        raise AssertionError("fewer than %d segments" % n)

    def test_ffprobe_and_ffmpeg_decode(self):
        url = self.d.url(self.base + "index.m3u8")
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_type,codec_name,width,height", "-of", "json", url],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        streams = {s["codec_type"]: s for s in json.loads(r.stdout)["streams"]}
        self.assertEqual(streams["video"]["codec_name"], "h264")
        self.assertEqual((streams["video"]["width"], streams["video"]["height"]), (640, 360))
        self.assertEqual(streams["audio"]["codec_name"], "aac")
        # 10 s decoded without a single error line
        r = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", url,
                            "-t", "10", "-f", "null", "-"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stderr.decode().strip(), "")

    def test_blocking_reload_for_the_next_part(self):
        pl = self.playlist()
        m = HINT_RE.search(pl)
        self.assertIsNotNone(m, pl)
        msn, part = int(m.group(1)), int(m.group(2))
        self.assertNotIn('URI="p%d.%d.m4s"' % (msn, part), pl.split("#EXT-X-PRELOAD-HINT")[0])
        results = {}

        def fetch_part():
            results["part"] = self.get("p%d.%d.m4s" % (msn, part))

        # the hinted part is requested at the same time (blocking preload)
        t = threading.Thread(target=fetch_part)
        t.start()
        t0 = time.time()
        pl2 = self.playlist("?_HLS_msn=%d&_HLS_part=%d" % (msn, part))
        held = time.time() - t0
        t.join(10)
        # released with the part it waited for, which is no longer the hint
        self.assertIn('URI="p%d.%d.m4s"' % (msn, part), pl2)
        m2 = HINT_RE.search(pl2)
        self.assertNotEqual((int(m2.group(1)), int(m2.group(2))), (msn, part))
        status, headers, body = results["part"]
        self.assertEqual(status, 200)
        self.assertEqual(body[4:8], b"moof")
        self.assertEqual(headers.get("Content-Type"), "video/mp4")
        print("blocking reload held %.0f ms" % (held * 1000))

    def test_msn_alone_means_part_zero(self):
        pl = self.playlist()
        m = HINT_RE.search(pl)
        nxt = int(m.group(1)) + 1
        pl2 = self.playlist("?_HLS_msn=%d" % nxt)
        self.assertIn('URI="p%d.0.m4s",INDEPENDENT=YES' % nxt, pl2)
        self.assertIn("s%d.m4s" % (nxt - 1), segments_text(pl2))

    def test_delta_update(self):
        self.wait_segments(9)
        for _ in range(10):
            full = self.playlist()
            m = HINT_RE.search(full)
            # the same state twice: block on the part that already exists
            msn, part = int(m.group(1)), int(m.group(2))
            q = "?_HLS_msn=%d&_HLS_part=%d" % (msn, part - 1) if part > 0 else \
                "?_HLS_msn=%d" % (msn - 1)
            full = self.playlist(q)
            delta = self.playlist(q + "&_HLS_skip=YES")
            if segments(full)[-1] == segments(delta)[-1]:
                break
        sk = re.search(r"^#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)$", delta, re.M)
        self.assertIsNotNone(sk, delta)
        skipped = int(sk.group(1))
        self.assertGreater(skipped, 0)
        seq = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", full, re.M).group(1)
        self.assertIn("#EXT-X-MEDIA-SEQUENCE:%s\n" % seq, delta)
        # the delta lists exactly the full list without its first `skipped`
        self.assertEqual(segments(delta), segments(full)[skipped:])
        # what was skipped ends at least CAN-SKIP-UNTIL (6 s) before the end
        until = float(re.search(r"CAN-SKIP-UNTIL=([\d.]+)", full).group(1))
        durs = [float(x) for x in re.findall(r"^#EXTINF:([\d.]+),", full, re.M)]
        self.assertGreaterEqual(sum(durs[skipped:]) + 0.001, until)
        self.assertNotIn("#EXT-X-SKIP", full)
        # v2 too; a plain playlist is never a delta
        v2 = self.playlist("?_HLS_skip=v2")
        self.assertRegex(v2, r'#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+,RECENTLY-REMOVED-DATERANGES=""')

    def test_playlist_tags(self):
        pl = self.playlist()
        self.assertTrue(pl.startswith("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"), pl)
        self.assertIn("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.000,"
                      "PART-HOLD-BACK=0.600\n", pl)
        self.assertIn("#EXT-X-PART-INF:PART-TARGET=0.200\n", pl)
        self.assertIn('#EXT-X-MAP:URI="init.mp4"\n', pl)
        self.assertRegex(pl, r"#EXT-X-PROGRAM-DATE-TIME:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n")
        self.assertRegex(pl, r"#EXT-X-MEDIA-SEQUENCE:[1-9]\d*\n")
        self.assertRegex(pl, r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p\d+\.\d+\.m4s"\n$')
        for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+),", pl):
            self.assertLessEqual(float(d), 0.2)

    def test_fmp4_boxes_validate(self):
        pl = self.wait_segments(2)
        seg = segments(pl)[-1]
        status, h, init = self.get("init.mp4")
        self.assertEqual(status, 200)
        self.assertEqual(init[4:8], b"ftyp")
        status, h, media = self.get("s%s.m4s" % seg)
        self.assertEqual(status, 200)
        self.assertEqual(h.get("Cache-Control"), "public, max-age=31536000, immutable")
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(init + media)
            f.flush()
            r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                "packet=codec_type,flags", "-of", "json", f.name],
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(r.stderr.decode().strip(), "")
            pkts = json.loads(r.stdout)["packets"]
            video = [p for p in pkts if p["codec_type"] == "video"]
            # one second at 30 fps, starting on a key frame
            self.assertGreaterEqual(len(video), 25)
            self.assertTrue(video[0]["flags"].startswith("K"))
            self.assertTrue(any(p["codec_type"] == "audio" for p in pkts))

    def test_http_behaviour(self):
        status, h, body = self.get("index.m3u8")
        self.assertEqual(h.get("Content-Type"), "application/vnd.apple.mpegurl")
        self.assertEqual(h.get("Cache-Control"), "no-store")
        self.assertEqual(h.get("Access-Control-Allow-Origin"), "*")
        status, h, body = self.get("master.m3u8")
        self.assertEqual(status, 200)
        text = body.decode()
        self.assertRegex(text, r'CODECS="avc1\.42c0[0-9a-f]{2},mp4a\.40\.2",RESOLUTION=640x360,'
                               r'FRAME-RATE=30\.000\n')
        sid = re.search(r"index\.m3u8\?sid=([0-9a-f]+)", text).group(1)
        status, h, body = self.get("index.m3u8?sid=%s&_HLS_skip=YES" % sid)
        self.assertEqual(status, 200)
        status, _, body = self.d.http_get("/metrics")
        self.assertRegex(body.decode(), r"oboro_llhls_sessions [1-9]")
        for bad in ("index.m3u8?_HLS_part=1", "index.m3u8?_HLS_msn=abc",
                    "index.m3u8?_HLS_msn=99999999", "index.m3u8?_HLS_skip=maybe"):
            self.assertEqual(self.get(bad)[0], 400, bad)
        for missing in ("p0.0.m4s", "s0.m4s", "nothing.txt"):
            self.assertEqual(self.get(missing)[0], 404, missing)
        self.assertEqual(self.d.http_get("/live/nobody/index.m3u8")[0], 404)
        # HTTP-FLV still answers on the same prefix
        req = urllib.request.Request(self.d.url("/live/cam.flv"), method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.headers.get("Content-Type"), "video/x-flv")


def segments_text(pl):
    return "\n".join("s%s.m4s" % s for s in segments(pl))


if __name__ == "__main__":
    harness.main()
