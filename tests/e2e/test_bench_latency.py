"""oboro-bench latency: publish over RTMP, play back at once, per-frame
glass-to-glass latency. Against nginx-rtmp (RTMP play and HLS) as the
reference origin, and against oborod (HTTP-FLV; LL-HLS once it serves it)."""
import json
import socket
import unittest

import harness
from harness import Oborod
from bench_peers import NginxRtmp, run_bench


class BenchLatencyTest(unittest.TestCase):
    def test_nginx_rtmp_play_and_hls(self):
        with NginxRtmp() as n:
            p = run_bench("latency", "--publish", n.rtmp_url("probe"), "--play", n.rtmp_url("probe"),
                          "--play", n.hls_url("probe"), "--duration", "4s", "--fps", 25, "--grace", "2s",
                          "--json")
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            res = json.loads(p.stdout)
            self.assertIsNone(res["publish_error"])
            self.assertEqual(res["sent"], 100)  # 4 s at 25 fps
            rtmp, hls = res["players"]
            for pl in (rtmp, hls):
                self.assertTrue(pl["opened"], pl)
                # every frame read carries its stamp through the remux
                self.assertGreater(pl["frames"], 0, pl)
                self.assertEqual(pl["unstamped"], 0, pl)
                lat = pl["latency"]
                self.assertEqual(lat["count"], pl["frames"])
                # a stamp misread would give 0 or years; these are a frame's
                # path through one local server
                self.assertGreater(lat["min_ns"], 0)
                self.assertLess(lat["max_ns"], 30e9)
                self.assertTrue(lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"])
            # RTMP play joins before the first frame and loses none
            self.assertEqual(rtmp["frames"], 100)
            # HLS delivers whole 1 s segments: its frames wait for their segment
            self.assertGreater(hls["latency"]["p50_ns"], rtmp["latency"]["p50_ns"])

    def test_text_report(self):
        with NginxRtmp() as n:
            p = run_bench("latency", "--publish", n.rtmp_url("t"), "--play", n.rtmp_url("t"),
                          "--duration", "1s", "--fps", 10, "--grace", "500ms")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"(?m)^Published: rtmp://\S+  frames=10 at 10 fps")
            self.assertRegex(p.stdout, r"(?m)^Count: frames=10 failed=0 success%=100\.00$")
            self.assertRegex(p.stdout, r"(?m)^\s+AVG \|\s+50%ILE \|")
            self.assertRegex(p.stdout, r"(?m)^\s+10s ~ ")

    def test_publish_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = run_bench("latency", "--rtmp-port", port, "--http-port", port, "--duration", "1s",
                      "--json")
        self.assertEqual(p.returncode, 1)
        res = json.loads(p.stdout)
        self.assertRegex(res["publish_error"], r"^publish: ")
        self.assertEqual(res["sent"], 0)
        self.assertEqual([pl["url"] for pl in res["players"]],
                         ["http://127.0.0.1:%d/live/probe.flv" % port,
                          "http://127.0.0.1:%d/live/probe/index.m3u8" % port])

    def test_usage(self):
        for args in (["--fps", "0"], ["--size", "7x7"], ["--duration", "x"], ["extra"]):
            self.assertEqual(run_bench("latency", *args).returncode, 2, args)

    def test_against_oborod(self):
        with Oborod() as d:
            p = run_bench("latency", "--rtmp-port", d.rtmp_port, "--http-port", d.http_port,
                          "--duration", "4s", "--grace", "1s", "--json")
            res = json.loads(p.stdout)
            self.assertIsNone(res["publish_error"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(res["sent"], 120)
            flv = res["players"][0]
            # the player polls until the stream exists, then starts at the
            # GOP cache (a keyframe a second): at least a whole GOP arrives,
            # every frame with its stamp
            self.assertGreaterEqual(flv["frames"], 30, flv)
            self.assertEqual(flv["unstamped"], 0)
            self.assertGreater(flv["latency"]["min_ns"], 0)
            self.assertLess(flv["latency"]["max_ns"], 30e9)
            # LL-HLS once oborod serves it
            hls = res["players"][1]
            if hls["opened"]:
                self.assertGreater(hls["frames"], 0, hls)
                self.assertEqual(hls["unstamped"], 0)


if __name__ == "__main__":
    harness.main()
