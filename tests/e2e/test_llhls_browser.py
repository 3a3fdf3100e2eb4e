"""hls.js in headless Chromium plays the LL-HLS stream of an ffmpeg
publisher in low-latency mode for 30 s without a stall, and reports the
live latency it measured (a figure, not asserted).

Needs Debian's chromium and nodejs, and the npm packages hls.js and
playwright-core that scripts/test installs into tests/browser/node_modules;
without them the test fails and says what is missing."""
import json
import os
import shutil
import statistics
import subprocess
import unittest

import harness
from harness import Oborod
from test_llhls import publish, stop

SRC = os.environ.get("OBORO_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")
SECONDS = 30


class BrowserTest(unittest.TestCase):
    def test_hlsjs_low_latency_playback(self):
        for need in ("/usr/bin/chromium", shutil.which("node")):
            self.assertTrue(need and os.path.exists(need),
                            "missing %s: run scripts/test (it installs the test packages)" % need)
        for mod in ("hls.js", "playwright-core"):
            self.assertTrue(os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", mod)),
                            "npm package %s missing under tests/browser: run scripts/test" % mod)
        with Oborod(args=["--llhls-segment-ms", "1000", "--llhls-part-ms", "200"]) as d:
            # a small picture keeps the encoder on time on a busy machine
            pub = publish(d, "cam", size="426x240")
            try:
                r = subprocess.run(["node", os.path.join(BROWSER_DIR, "play.mjs"),
                                    d.url("/live/cam/master.m3u8"), str(SECONDS)],
                                   capture_output=True, timeout=SECONDS + 90,
                                   stdin=subprocess.DEVNULL, cwd=BROWSER_DIR)
            finally:
                stop(pub)
            self.assertEqual(r.returncode, 0, r.stderr.decode()[-3000:])
            rep = json.loads(r.stdout.decode().strip().splitlines()[-1])
            self.assertTrue(rep["supported"], "MSE not supported in this Chromium")
            self.assertIsNotNone(rep["started_after_ms"], "playback never started: %s" % rep)
            self.assertEqual(rep["level"]["partTarget"], 0.2)
            self.assertTrue(rep["level"]["canBlock"])
            # played the whole time, in low-latency mode, without a stall
            self.assertGreater(rep["played"], SECONDS - 3, rep)
            self.assertEqual(rep["stalls"], 0, rep)
            self.assertEqual(rep["waiting"], 0, rep)
            self.assertFalse([e for e in rep["errors"] if e.endswith("/fatal")], rep)
            # hls.js aims at the playlist's PART-HOLD-BACK (3 part targets),
            # not raised by a stall
            self.assertAlmostEqual(rep["target_latency"], 0.6, places=3, msg=rep)
            lat = rep["latency"]
            self.assertTrue(lat)
            print("hls.js %s: live latency median %.3f s, max %.3f s (PDT-based median %.3f s); "
                  "started after %.0f ms; seeks at %s, start-up waits %d"
                  % (rep["hlsjs"], statistics.median(lat), max(lat),
                     statistics.median(rep["pdt_latency"]), rep["started_after_ms"],
                     rep["seeks"], rep["startup_waiting"]))


if __name__ == "__main__":
    harness.main()
