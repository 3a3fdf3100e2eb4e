"""oboro-bench fanout: HTTP-FLV viewers against a paced live origin that
can drop frames, stall or refuse; drops, stalls, throughput and the
server's CPU figure."""
import json
import os
import subprocess
import tempfile
import unittest

import harness
from harness import Oborod
from bench_peers import run_bench
from flv_origin import FlvOrigin


class BenchFanoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        flv = os.path.join(cls.tmp.name, "s.flv")
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "25", "-bf", "0", "-f", "flv", flv], check=True, timeout=60)
        cls.origin = FlvOrigin(flv, 0)

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()
        cls.tmp.cleanup()

    def fanout(self, name, *extra, duration="3s"):
        p = run_bench("fanout", "--url", "http://127.0.0.1:%d/live/%s.flv" % (self.origin.port, name),
                      "--viewers", 4, "--duration", duration, "--json", *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_clean_stream(self):
        res = self.fanout("clean", "--pid", os.getpid())
        self.assertEqual((res["viewers"], res["connected"], res["failed"]), (4, 4, 0))
        self.assertEqual(res["drops"], 0)
        self.assertEqual(res["stalls"], 0)
        for v in res["per_viewer"]:
            # 3 s of a 25 fps stream, paced: about 75 frames, a keyframe a second
            self.assertGreaterEqual(v["frames"], 60, v)
            self.assertLessEqual(v["frames"], 80, v)
            self.assertGreaterEqual(v["keyframes"], 3, v)
        self.assertEqual(res["bytes"], sum(v["bytes"] for v in res["per_viewer"]))
        self.assertIn("server_cpu", res)
        self.assertGreaterEqual(res["server_cpu"]["avg_pct"], 0)

    def test_drops_detected(self):
        res = self.fanout("drops", duration="2s")
        self.assertEqual(res["stalls"], 0)
        for v in res["per_viewer"]:
            self.assertGreaterEqual(v["drops"], 1, v)

    def test_stalls_detected(self):
        res = self.fanout("stalls")
        self.assertEqual(res["drops"], 0)
        for v in res["per_viewer"]:
            self.assertEqual(v["stalls"], 1, v)
            self.assertGreater(v["stalled_ms"], 1000, v)

    def test_refused_viewers_fail(self):
        res = self.fanout("missing", duration="1s")
        self.assertEqual((res["connected"], res["failed"]), (0, 4))
        self.assertEqual(res["per_viewer"][0]["error"], "HTTP 404")

    def test_text_and_usage(self):
        p = run_bench("fanout", "--url", "http://127.0.0.1:%d/live/clean.flv" % self.origin.port,
                      "--viewers", 2, "--duration", "1s")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^Viewers: 2 connected=2 failed=0 ended-early=0 ")
        self.assertRegex(p.stdout, r"(?m)^Drops: 0 in 0 viewers")
        for args in ([], ["--url", "rtmp://x/live/a"], ["--url", "http://h/a.flv", "--viewers", "0"]):
            self.assertEqual(run_bench("fanout", *args).returncode, 2, args)

    def test_oborod_live_stream(self):
        # a real publisher (ffmpeg, paced with -re) and 4 viewers on oborod
        with Oborod() as d:
            pub = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                 "testsrc=size=160x120:rate=25", "-t", "20", "-c:v", "libx264", "-preset", "ultrafast",
                 "-g", "25", "-bf", "0", "-f", "flv", "rtmp://127.0.0.1:%d/live/fan" % d.rtmp_port],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
            harness._live.append(pub)
            try:
                for _ in range(30):  # until the stream is live
                    p = run_bench("fanout", "--url", d.url("/live/fan.flv"), "--viewers", 1,
                                  "--duration", "300ms", "--json")
                    if json.loads(p.stdout)["connected"] == 1:
                        break
                res = json.loads(run_bench("fanout", "--url", d.url("/live/fan.flv"), "--viewers", 4,
                                           "--duration", "3s", "--json", "--pid", d.proc.pid).stdout)
                self.assertEqual((res["connected"], res["failed"]), (4, 0), res)
                for v in res["per_viewer"]:
                    self.assertGreater(v["frames"], 25, v)
                    self.assertGreaterEqual(v["keyframes"], 1, v)
                self.assertIn("server_cpu", res)
            finally:
                pub.kill()
                pub.wait()
                harness._live.remove(pub)

    def test_oborod_llhls_viewers(self):
        # LL-HLS viewers follow preload hints and blocking reloads
        with Oborod(args=["--llhls-segment-ms", "1000"]) as d:
            pub = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                 "testsrc=size=160x120:rate=25", "-t", "20", "-c:v", "libx264", "-preset", "ultrafast",
                 "-g", "25", "-bf", "0", "-f", "flv", "rtmp://127.0.0.1:%d/live/hfan" % d.rtmp_port],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
            harness._live.append(pub)
            url = d.url("/live/hfan/index.m3u8")
            try:
                for _ in range(30):  # until the stream has its first segment
                    p = run_bench("fanout", "--url", url, "--viewers", 1, "--duration", "500ms", "--json")
                    if json.loads(p.stdout)["per_viewer"][0]["frames"] > 0:
                        break
                res = json.loads(run_bench("fanout", "--url", url, "--viewers", 4, "--duration", "3s",
                                           "--json", "--pid", d.proc.pid).stdout)
                self.assertEqual(res["mode"], "llhls")
                self.assertEqual((res["connected"], res["failed"]), (4, 0), res)
                for v in res["per_viewer"]:
                    # 200 ms parts: about 15 in 3 s
                    self.assertGreaterEqual(v["frames"], 5, v)
                    self.assertGreater(v["bytes"], 0, v)
                self.assertIn("server_cpu", res)
                # each viewer is an LL-HLS session of the daemon
                _, _, body = d.http_get("/metrics")
                self.assertRegex(body.decode(), r"oboro_llhls_sessions [1-9]")
                p = run_bench("fanout", "--url", d.url("/live/nobody/index.m3u8"), "--viewers", 2,
                              "--duration", "1s", "--json")
                self.assertEqual([v["status"] for v in json.loads(p.stdout)["per_viewer"]], [404, 404])
            finally:
                pub.kill()
                pub.wait()
                harness._live.remove(pub)

    def test_oborod_unknown_stream(self):
        # oborod answers 404 for a stream nobody publishes
        with Oborod() as d:
            p = run_bench("fanout", "--url", d.url("/live/nobody.flv"), "--viewers", 2,
                          "--duration", "1s", "--json", "--pid", d.proc.pid)
            self.assertEqual(p.returncode, 0, p.stderr)
            res = json.loads(p.stdout)
            self.assertEqual(res["connected"], 0)
            self.assertEqual([v["status"] for v in res["per_viewer"]], [404, 404])


if __name__ == "__main__":
    harness.main()
