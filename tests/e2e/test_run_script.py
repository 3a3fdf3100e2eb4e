"""scripts/run, as a newcomer uses it: it builds (nothing to do here, the
suite already built), prints what to do next, serves, and stops cleanly on
Ctrl-C; twice in a row."""
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import free_port

SRC = os.environ.get("OBORO_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")


class RunScriptTest(unittest.TestCase):
    def run_once(self, cwd):
        port, rtmp, http = free_port(), free_port(), free_port()
        out_path = os.path.join(cwd, "run.out")
        with open(out_path, "wb") as out:
            p = subprocess.Popen([os.path.join(SRC, "scripts", "run"), "--port", str(port),
                                  "--rtmp-port", str(rtmp), "--http-port", str(http),
                                  "--raft-port", str(free_port())],
                                 cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        harness._live.append(p)
        try:
            deadline = time.time() + 120
            ok = False
            while time.time() < deadline and p.poll() is None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % http,
                                                timeout=1) as r:
                        ok = r.status == 200
                        break
                except OSError:
                    time.sleep(0.1)
            with open(out_path) as f:
                text = f.read()
            self.assertTrue(ok, "scripts/run did not become ready (exit %s):\n%s" % (p.poll(), text))
            self.assertIn("rtmp://127.0.0.1:%d/live/" % rtmp, text)
            self.assertIn("http://127.0.0.1:%d/live/STREAM.flv" % http, text)
            self.assertIn("redis-cli -p %d" % port, text)
            r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                               timeout=10)
            self.assertEqual(r.stdout.strip(), b"PONG")
            self.assertTrue(os.path.isdir(os.path.join(cwd, "oboro-data")))
            os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
            self.assertEqual(p.wait(timeout=10), 0)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            harness._live.remove(p)

    def test_run_twice(self):
        with tempfile.TemporaryDirectory() as cwd:
            self.run_once(cwd)
            self.run_once(cwd)


if __name__ == "__main__":
    harness.main()
